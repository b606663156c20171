"""The content-addressed store of rendered audio.

Layout under the cache directory (``cache/`` in the project by default;
``[project] cache`` or the ``MIXDOWN_CACHE`` environment variable move it)::

    objects/ab/abcdef….wav    float32 WAV, immutable, named by content key (a compact
                              object: 24-bit FLAC, the record's ``"codec"`` and ``"scale"``;
                              the file keeps its name whatever its codec, so a key has one path)
    objects/ab/abcdef….json   metadata: renderer, safe params, duration, …
    objects/ab/abcdef….*      files that go with a key (:meth:`Cache.side_path`): a
                              mix's analysis.npz, a long master's recipe.json, a short
                              one's streamed.json in a compact cache

A short mix in a compact cache is kept as a record only (:class:`RecordWriter`:
its record's ``"codec"`` is :data:`RECORD`, its ``.wav`` empty): the build that
made it holds its samples in memory, and whatever reads it later mixes it
again from its section pre-mixes (:func:`mixdown.actions.mix.mix_source`), the
same samples. Every reader here refuses such an object whose samples it does
not hold, in one line.

An object exists only once it is complete: audio and record are written to
temporary files in the same directory and renamed into place, the record
first and the audio last. A crash leaves at most a stray ``.tmp`` file, never
a half-written object, and the next build that writes in its shard removes
it (:mod:`mixdown.store.files`). The presence of the ``.wav`` is what marks a key
as rendered.

Objects are kept compactly: a float WAV's long runs of silence are left
unwritten, holes in a sparse file that read as zeros and take no disk
(:meth:`ObjectWriter.write_at`: every sample reads back as written), and
mixes, section pre-mixes and masters, when the show keeps them compact
(``[cache] compact``), are stored as 24-bit FLAC (:mod:`mixdown.codecs.flac24`). Every
reader (:meth:`Cache.get`, :meth:`Cache.source`, :meth:`Cache.mapped`,
:meth:`ObjectWriter.copy_from`) gives float32 samples whatever the codec.

A key is checked, made and stored under its lock, ``objects/ab/KEY.lock``
(:meth:`Cache.lock`, :mod:`mixdown.store.locks`), removed when it is let go:
two builds of one show at once make each key once, the second waiting for the first.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import AudioError, MixdownError
from . import files
from .files import temporary_beside
from .listing import scan
from .locks import holding

if TYPE_CHECKING:  # loading a show must not pay for numpy; rendering does
    import numpy as np

    from ..codecs.wav import WavWriter

__all__ = ["RECORD", "Cache", "ObjectWriter", "RecordWriter", "safe_params"]

_UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)
#: bytes of decoded compact objects a cache keeps mapped (unnamed temporary files beside it)
DECODED_BYTES = 1 << 30
#: bytes of the compact objects a cache last wrote that it keeps in memory as they read back
RECENT_BYTES = 1 << 27
#: an object being written whose samples take no more bytes than this is held in memory
#: (:class:`ObjectWriter`): the largest a cache keeps of its recent objects
IN_MEMORY_BYTES = RECENT_BYTES // 2
#: the ``"codec"`` of an object kept as a record, not as samples (:class:`RecordWriter`)
RECORD = "record"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # a record's object: an empty file
_SECRET = re.compile(r"(api[_-]?key|token|secret|password|authorization|credential)", re.I)


def safe_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Drop any setting whose name looks like a credential."""
    return {k: v for k, v in params.items() if not _SECRET.search(k)}


class Cache:
    """A directory of immutable, content-addressed audio objects."""

    def __init__(self, root: str | os.PathLike[str], *, index: str | os.PathLike[str] | None = None) -> None:
        """``index`` names a local file where the listing of each shard is kept
        between runs (see :meth:`keys`); without it every run lists every shard."""
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.index = Path(index) if index is not None else None
        self._known: set[str] | None = None
        self._lock = threading.Lock()
        self._decoded: OrderedDict[str, np.ndarray] = OrderedDict()  # see mapped()
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()  # see remember()

    def __repr__(self) -> str:
        return f"Cache({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """Where the audio of ``key`` lives (whether or not it exists yet)."""
        return self.objects / key[:2] / f"{key}.wav"

    def side_path(self, key: str, name: str) -> Path:
        """Where a file that goes with the object ``key`` lives (written before the object)."""
        return self.objects / key[:2] / f"{key}.{name}"

    def put_side(self, key: str, name: str, data: bytes) -> Path:
        """Write the file ``name`` that goes with ``key`` atomically; return its path."""
        path = self.side_path(key, name)
        files.write_bytes_atomic(path, data)
        return path

    def lock(
        self,
        key: str,
        *,
        target: str,
        waiting: Callable[[], None] = lambda: None,
        check: Callable[[], None] = lambda: None,
    ) -> AbstractContextManager[None]:
        """Hold ``key``'s lock (``objects/ab/KEY.lock``) while it is checked, made and stored.

        Another build, or another thread of this one, making the same key
        waits: ``waiting`` is called once when it starts to, ``check`` every
        poll (it raises to give up). The same thread may take it again inside.
        Taking it also proves the cache writable before anything is paid
        for: a read-only cache raises :class:`MixdownError` naming ``target``.
        The first lock taken in a shard sweeps it (:func:`mixdown.store.files.sweep`).
        """
        shard = self.objects / key[:2]
        try:
            shard.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise self._unwritable(err, target) from None
        files.sweep_once(shard, locks=True)
        return holding(
            str(self.side_path(key, "lock")), waiting, check, lambda err: self._unwritable(err, target)
        )

    def _unwritable(self, err: OSError, target: str) -> Exception:
        if err.errno not in _UNWRITABLE:
            return err
        return MixdownError(
            f"{target}: the cache {self.root} is not writable ({err.strerror}); nothing was rendered: "
            "make it writable, or set MIXDOWN_CACHE to a directory that is"
        )

    def meta_path(self, key: str) -> Path:
        """Where the metadata record of ``key`` lives."""
        return self.objects / key[:2] / f"{key}.json"

    def keys(self) -> set[str]:
        """Every key with a complete object, listed once (:func:`mixdown.store.listing.scan`)."""
        with self._lock:
            if self._known is None:
                self._known = scan(self.objects, self.index)
            return self._known

    def __contains__(self, key: str) -> bool:
        return key in self.keys() or self.path(key).exists()

    def put(self, key: str, audio: np.ndarray, sample_rate: int, meta: Mapping[str, Any]) -> Path:
        """Store ``audio`` under ``key`` with its metadata record; return the path.

        ``meta`` is filtered through :func:`safe_params` at every level that
        names parameters, so credentials never reach disk.
        """
        from ..dsp.signal import valid_audio

        audio = valid_audio(audio, what=f"cache object {key[:12]}")
        with self.writer(key, sample_rate, int(audio.shape[1]), frames=len(audio)) as writer:
            writer.write(audio)
            return writer.commit(meta, digest=True)

    def writer(self, key: str, sample_rate: int, channels: int, *, frames: int) -> ObjectWriter:
        """Start writing the object ``key`` block by block (see :class:`ObjectWriter`).

        ``frames`` is the expected length: objects over 4 GiB are written as
        RF64 (a WAV with 64-bit sizes, read like any other).
        """
        return ObjectWriter(self, key, sample_rate, channels, frames=frames)

    def record_writer(self, key: str, sample_rate: int, channels: int, *, frames: int) -> RecordWriter:
        """Start writing the object ``key``, to be kept as a record (see :class:`RecordWriter`)."""
        return RecordWriter(self, key, sample_rate, channels, frames=frames)

    def kept_as_record(self, key: str) -> bool:
        """Whether the object ``key`` is kept as a record, its samples not stored (:data:`RECORD`).

        Only an empty object can be: any other is told by its size, without reading its record.
        """
        try:
            return os.path.getsize(self.path(key)) == 0 and self.meta(key).get("codec") == RECORD
        except (OSError, ValueError):
            return False

    def remembered(self, key: str) -> np.ndarray | None:
        """The samples of ``key`` this cache holds in memory (:meth:`remember`), or None."""
        with self._lock:
            return self._recent.get(key)

    def _stored_at(self, key: str, record: Mapping[str, Any]) -> Path:
        """Where the samples of ``key`` (whose record is ``record``) are read from; an object kept
        as a record has none to read, and says so in one line."""
        if record.get("codec") == RECORD:
            raise AudioError(
                f"cache object {key[:12]}: it is kept as a record of how it was made, not as samples, and "
                "only its build can make them again; run `doit` for the target that reads it"
            )
        return self.path(key)

    def info(self, key: str) -> tuple[int, int, int]:
        """The length in samples, the sample rate and the channels of the object ``key``, from its header.

        An object the cache wrote holds every frame its header declares (it is
        published only once complete); one that holds fewer was cut short on
        disk since. It is removed, so that the next build makes it again, and
        :class:`AudioError` says so.
        """
        frames, rate, channels, _ = self._described(key)
        return frames, rate, channels

    def _described(self, key: str) -> tuple[int, int, int, dict[str, Any]]:
        """:meth:`info`, and the record it read: none (``{}``) for a float object, whose header
        says all a reader needs (its samples are stored at scale 1)."""
        import soundfile as sf

        from ..codecs.wav import float_wav_header

        path = self.path(key)
        found = float_wav_header(path)  # what the cache writes: read straight from the header
        if found is not None and found.frames is not None:
            held, declared, rate = found.frames, found.declared, found.sample_rate
            if declared is not None and held < declared:
                self.remove(key)
                raise AudioError(
                    f"cache object {key[:12]}: the file holds {held:,} of the {declared:,} frames it was "
                    f"written with ({held / rate:.1f} of {declared / rate:.1f} s: damaged on disk); "
                    "it was removed: run the build again to make it again"
                )
            return held, rate, found.channels, {}
        record = self.meta(key)
        if record.get("codec") == RECORD:
            return int(record["frames"]), int(record["sample_rate"]), int(record["channels"]), record
        info = sf.info(str(path))
        frames, rate = int(info.frames), int(info.samplerate)
        if record.get("codec"):
            # a compact object's header says how long it was made, whatever is left of it: its size
            # is what tells that it was cut short
            held, size = os.path.getsize(path), record.get("size")
            if isinstance(size, int) and held != size:
                self.remove(key)
                raise AudioError(
                    f"cache object {key[:12]}: the file holds {held:,} of the {size:,} bytes it was "
                    f"written with ({frames / rate:.1f} s of FLAC: damaged on disk); "
                    "it was removed: run the build again to make it again"
                )
        return frames, rate, int(info.channels), record

    def remove(self, key: str) -> None:
        """Delete the object ``key`` and its record (it reads as missing from now on)."""
        self.path(key).unlink(missing_ok=True)
        self.meta_path(key).unlink(missing_ok=True)
        self.forget(key)

    def forget(self, key: str) -> None:
        """Note that ``key``'s files were removed (``mixdown gc``): it reads as missing from now on."""
        with self._lock:
            if self._known is not None:
                self._known.discard(key)
            self._recent.pop(key, None)
            self._decoded.pop(key, None)

    def _added(self, key: str) -> None:
        with self._lock:
            if self._known is not None:
                self._known.add(key)

    def remember(self, key: str, samples: np.ndarray) -> None:
        """Keep the samples of the compact object ``key`` just written (or mixed again), read-only,
        as it reads back: the master of a short programme reads its mix right after it is made,
        and the mix its sections' pre-mixes, and need not decode them (the last
        :data:`RECENT_BYTES`)."""
        samples.flags.writeable = False
        with self._lock:
            self._recent[key] = samples
            while sum(a.nbytes for a in self._recent.values()) > RECENT_BYTES and len(self._recent) > 1:
                self._recent.popitem(last=False)

    def get(self, key: str) -> tuple[np.ndarray, int]:
        """Read the audio of ``key`` as float32 ``(n, channels)`` and its rate (checked as
        :meth:`info` checks it)."""
        from ..codecs.wav import read_audio

        _, rate, _, record = self._described(key)
        recent = self.remembered(key)
        if recent is not None:
            return recent.copy(), rate
        y, sr = read_audio(self._stored_at(key, record))
        scale = float(record.get("scale", 1.0))
        if scale != 1:
            y *= y.dtype.type(scale)  # a power of two: exact
        return y, sr

    def source(self, key: str) -> Any:
        """The object ``key`` as a :class:`~mixdown.codecs.wav.Source` read in blocks (checked as
        :meth:`info` checks it)."""
        from ..codecs.wav import Source

        _, rate, _, record = self._described(key)
        recent = self.remembered(key)
        if recent is not None:
            return Source.of_array(recent, rate)
        return Source.of_file(self._stored_at(key, record), scale=float(record.get("scale", 1.0)))

    def mapped(self, key: str) -> np.ndarray:
        """The samples of ``key`` as a read-only float32 array ``[shape=(frames, channels)]`` read
        from disk only where used: a float object's file memory-mapped, a compact one's decoded
        first into an unnamed temporary file beside the cache (gone with the array).

        The last compact objects decoded are kept (up to :data:`DECODED_BYTES`): a
        section shared by every variant is read by each variant's mix and stems.
        """
        from ..codecs.wav import float_samples_at, mapped

        path = self.path(key)
        if float_samples_at(path) is not None:
            return mapped(path)
        with self._lock:
            found = self._decoded.get(key)
            if found is not None:
                self._decoded.move_to_end(key)
                return found
            recent = self._recent.get(key)
            if recent is not None:
                return recent
        decoded = self._decode(key)
        with self._lock:
            self._decoded[key] = decoded
            while sum(a.nbytes for a in self._decoded.values()) > DECODED_BYTES and len(self._decoded) > 1:
                self._decoded.popitem(last=False)
        return decoded

    def _decode(self, key: str) -> np.ndarray:
        """A compact object's samples, decoded into a memory-mapped unnamed temporary file."""
        import tempfile

        import numpy as np
        import soundfile as sf

        frames, _, channels, record = self._described(key)
        path = self._stored_at(key, record)
        scale = np.float32(record.get("scale", 1.0))
        with tempfile.TemporaryFile(prefix=".decoded-", dir=self.root) as scratch:
            out = np.memmap(scratch, dtype="<f4", mode="w+", shape=(max(frames, 1), channels))
            with sf.SoundFile(str(path)) as fh:
                for at in range(0, frames, 1 << 18):
                    block = out[at : min(at + (1 << 18), frames)]
                    if fh.read(out=block).shape[0] != len(block):
                        raise AudioError(f"cache object {key[:12]}: it ends before frame {frames}")
                    if scale != 1:
                        block *= scale  # a power of two: exact
            out.flags.writeable = False
            return out[:frames]

    def meta(self, key: str) -> dict[str, Any]:
        """The metadata record of ``key``."""
        data: dict[str, Any] = json.loads(self.meta_path(key).read_text("utf-8"))
        return data

    def adopt(self, key: str, tmp: str | os.PathLike[str], record: bytes, sides: Mapping[str, bytes]) -> Path:
        """Publish an object made elsewhere (a download from a remote cache) under ``key``.

        ``tmp`` is its audio, already checked, in a temporary file from
        :func:`mixdown.store.files.temporary_beside` beside :meth:`path`;
        ``record`` its record's bytes and ``sides`` its side files. They are
        published in the order the cache writes its own: side files, record,
        then the object, which marks the key as present.
        """
        for name, data in sides.items():
            self.put_side(key, name, data)
        files.write_bytes_atomic(self.meta_path(key), record)
        path = self.path(key)
        files.publish(tmp, path)
        self._added(key)
        return path

    def digest(self, key: str) -> dict[str, Any]:
        """The record of ``key`` with its object's ``sha256`` and ``size``, added to the
        record (atomically) the first time they are asked for."""
        record = self.meta(key)
        if "sha256" not in record:
            path = self.path(key)
            record = {**record, "sha256": files.sha256_of(path), "size": os.path.getsize(path)}
            text = json.dumps(record, indent=1, sort_keys=True)
            files.write_bytes_atomic(self.meta_path(key), text.encode("utf-8"))
        return record


class ObjectWriter:
    """A cache object written in blocks: it exists only once :meth:`commit` succeeds.

    The audio is written in order (:meth:`write`) or at any position from any
    thread (:meth:`write_at`: parts of a programme made in parallel). An
    object of up to :data:`IN_MEMORY_BYTES` of float32 samples (a section's
    pre-mix, a short programme's mix) is held in memory and its file is made
    whole at :meth:`commit`: a night of short variants makes three of them a
    listener, and a temporary float WAV for each, written, read back for its
    FLAC and deleted, cost about as much again as the FLAC itself. A longer
    object goes to a temporary float32 WAV of ``frames`` frames beside it.
    :meth:`commit` checks that every frame was written, makes the file durable,
    writes the record and renames the audio into place (the same order as
    :meth:`Cache.put`); :meth:`discard` lets it go. Used as a context manager,
    an exception discards.
    """

    def __init__(self, cache: Cache, key: str, sample_rate: int, channels: int, *, frames: int) -> None:
        import numpy as np

        from ..codecs.wav import WavWriter

        self.cache, self.key, self.sample_rate, self.channels = cache, key, sample_rate, channels
        self.frames = 0  # written so far
        self.peak = 0.0  # the largest magnitude, once committed compactly
        self._expected = frames
        self._samples: np.ndarray | None = None  # a short compact object's, as it reads back
        self._lock = threading.Lock()
        self._memory: np.ndarray | None = None
        self._file: WavWriter | None = None
        self._tmp: Path | None = None
        if 4 * frames * channels <= IN_MEMORY_BYTES:
            self._memory = np.zeros((frames, channels), np.float32)  # pages are taken as written
            return
        fd, name = temporary_beside(cache.path(key))
        os.close(fd)
        self._tmp = Path(name)
        try:
            self._file = WavWriter(name, sample_rate, channels, "FLOAT", frames)
        except BaseException:
            files.discard(self._tmp)
            raise

    def write(self, block: np.ndarray) -> None:
        """Append samples ``[shape=(n, channels)]`` after the last appended."""
        self.write_at(self.frames, block)

    def write_at(self, start: int, block: np.ndarray) -> None:
        """Write samples ``[shape=(n, channels)]`` at frame ``start`` (each frame once).

        Long runs of silence are not written to a file: it is a hole of its
        whole length, which reads as zeros, so they cost no disk (a section's
        SFX bus is mostly silence, its voice bus has gaps between lines).
        """
        if self._memory is not None:
            if start < 0 or start + len(block) > self._expected:
                raise ValueError(
                    f"frames {start}..{start + len(block)} are outside the object's {self._expected}"
                )
            self._memory[start : start + len(block)] = block
        else:
            assert self._file is not None
            _write_sounding(self._file, start, block)
        with self._lock:
            self.frames += len(block)

    def copy_from(self, key: str, start: int, stop: int, at: int | None = None) -> None:
        """Copy frames ``[start, stop)`` of the cached object ``key`` (same rate and channels)
        to this one's frames from ``at`` (by default the same frames): what an earlier version
        of it already holds. A float WAV is copied in the kernel into a file, otherwise decoded."""
        from ..codecs.wav import float_samples_at

        path = self.cache.path(key)
        position = start if at is None else at
        if self._file is not None and float_samples_at(path) is not None:
            self._file.copy_from(path, start, stop, at)
        else:
            for block in self.cache.source(key).between(start, stop):
                if self._memory is not None:
                    self._memory[position : position + len(block)] = block
                else:
                    assert self._file is not None
                    self._file.write_at(position, block)
                position += len(block)
            if position - (start if at is None else at) != stop - start:
                raise AudioError(f"cache object {key[:12]}: it ends before frame {stop}")
        with self._lock:
            self.frames += stop - start

    def blocks(self, start: int, stop: int, size: int = 1 << 16) -> Iterator[np.ndarray]:
        """Read back frames ``[start, stop)`` as written so far, in float32 blocks."""
        if self._memory is None:
            assert self._file is not None
            return self._file.blocks(start, stop, size)
        memory = self._memory
        return (memory[first : min(first + size, stop)] for first in range(start, stop, size))

    def reset(self) -> None:
        """Start the count of written frames again: everything is about to be written anew."""
        with self._lock:
            self.frames = 0

    def commit(
        self, meta: Mapping[str, Any], *, digest: bool = False, flac: bool = False, scale: float = 1.0
    ) -> Path:
        """Make the object visible under its key with the record ``meta``; return its path.

        With ``digest`` the record also holds the file's ``sha256`` and ``size``
        (what a remote copy is checked against, and what ``mixdown.lock`` pins):
        every rendered asset has them; a mix's are taken when it is shared
        (:meth:`Cache.digest`), as reading a long one back costs time. With
        ``flac`` the object is stored as 24-bit FLAC in steps of ``scale / 2**23``
        (:mod:`mixdown.codecs.flac24`; its record's ``"codec"`` and ``"scale"``),
        unless it has more channels than FLAC takes; :attr:`peak` is then the
        largest magnitude written (what went beyond ``scale`` was clipped).
        """
        from ..codecs.flac24 import MAX_CHANNELS

        incomplete = _incomplete(self.key, self.frames, self._expected)
        if incomplete is not None:
            self.discard()
            raise incomplete
        flac = flac and self.channels <= MAX_CHANNELS
        try:
            if flac:
                self._compact(scale)
            elif self._memory is not None:
                self._unpack()
            else:
                assert self._file is not None
                self._file.flush()
                self._file.close()
        except BaseException:
            self.discard()
            raise
        assert self._tmp is not None
        sums: dict[str, Any] = {"sha256": files.sha256_of(self._tmp)} if digest else {}
        if digest or flac:  # a compact object's size: what tells it whole (see Cache.info)
            sums["size"] = os.path.getsize(self._tmp)
        stored = {
            **sums,
            **({"codec": "flac24"} if flac else {}),
            **({"scale": scale} if flac and scale != 1 else {}),
        }
        _write_record(self, meta, stored)
        path = self.cache.path(self.key)
        files.publish(self._tmp, path)
        self.cache._added(self.key)
        if self._samples is not None:
            self.cache.remember(self.key, self._samples)
        return path

    def _compact(self, scale: float) -> None:
        """Make the object's file a 24-bit FLAC of what was written (a float WAV is let go).

        The samples of one held in memory become what the FLAC reads back as, in place,
        block by block: the cache keeps them (:meth:`Cache.remember`).
        """
        from ..codecs.flac24 import write_flac24

        fd, name = temporary_beside(self.cache.path(self.key))
        self._samples = self._memory  # a longer object is not kept: it passes IN_MEMORY_BYTES
        try:
            blocks = self.blocks(0, self._expected)
            self.peak = write_flac24(
                name, blocks, self.sample_rate, self.channels, scale=scale, into=self._samples
            )
            os.fsync(fd)  # durable before it is published, as the float WAV would have been
        except BaseException:
            files.discard(Path(name))
            raise
        finally:
            os.close(fd)
        self._let_go()
        self._tmp = Path(name)

    def _unpack(self) -> None:
        """Write the samples held in memory to a new float WAV (silences left as holes)."""
        from ..codecs.wav import WavWriter

        memory = self._memory
        assert memory is not None
        fd, name = temporary_beside(self.cache.path(self.key))
        os.close(fd)
        self._tmp = Path(name)
        wav = WavWriter(name, self.sample_rate, self.channels, "FLOAT", self._expected)
        try:
            for first in range(0, self._expected, 1 << 16):
                _write_sounding(wav, first, memory[first : first + (1 << 16)])
            wav.flush()
        finally:
            wav.close()
        self._memory = None

    def _let_go(self) -> None:
        """Close and remove the temporary float WAV, or drop the samples held in memory."""
        self._memory = None
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            files.discard(self._tmp)
            self._tmp = None

    def discard(self) -> None:
        """Throw away what was written."""
        self._samples = None
        self._let_go()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is not None:
            self.discard()


class RecordWriter:
    """An object written into memory and kept as a record, not as samples (:data:`RECORD`).

    A short mix in a compact cache is read right after it is made, by its
    master in the same build, and seldom again; its 24-bit FLAC costs more CPU
    than the rest of its mix. Written in blocks like an :class:`ObjectWriter`
    (:meth:`write_at`, from any thread), it is committed as 24-bit steps
    (:func:`mixdown.codecs.flac24.quantize`), exactly what its FLAC would read
    back as: the cache keeps its record and an empty ``.wav`` (the key is
    present, its record and side files travel to a remote cache like any
    object's) and holds the samples in memory (:meth:`Cache.remember`). What
    reads it in another build mixes it again (:func:`mixdown.actions.mix.mix_source`).
    """

    def __init__(self, cache: Cache, key: str, sample_rate: int, channels: int, *, frames: int) -> None:
        import numpy as np

        self.cache, self.key, self.sample_rate, self.channels = cache, key, sample_rate, channels
        self.frames = 0  # written so far
        self.peak = 0.0  # the largest magnitude, once committed
        self._expected = frames
        self.samples = np.zeros((frames, channels), np.float32)
        self._lock = threading.Lock()

    def write(self, block: np.ndarray) -> None:
        """Append samples ``[shape=(n, channels)]`` after the last appended."""
        self.write_at(self.frames, block)

    def write_at(self, start: int, block: np.ndarray) -> None:
        """Write samples ``[shape=(n, channels)]`` at frame ``start`` (each frame once)."""
        if start + len(block) > self._expected:
            raise AudioError(f"cache object {self.key[:12]}: frame {start + len(block)} is past its end")
        self.samples[start : start + len(block)] = block
        with self._lock:
            self.frames += len(block)

    def quantize(self, scale: float) -> None:
        """Make the samples whole 24-bit steps of ``scale / 2**23``, as a compact object holds
        them; :attr:`peak` is the largest magnitude before (beyond ``scale`` was clipped)."""
        from ..codecs.flac24 import quantize

        self.peak = quantize(self.samples, scale)

    def commit(self, meta: Mapping[str, Any], *, flac: bool = True, scale: float = 1.0) -> Path:
        """Keep the object as a record with ``meta``, its samples made 24-bit steps of ``scale``
        as :meth:`ObjectWriter.commit` with ``flac`` stores them (whatever ``flac`` says: a
        record is compact); return its path."""
        incomplete = _incomplete(self.key, self.frames, self._expected)
        if incomplete is not None:
            raise incomplete
        self.quantize(scale)
        # the empty file's sha256 and size: what a remote copy is checked against
        _write_record(
            self,
            meta,
            {"codec": RECORD, "scale": scale, "frames": self.frames, "sha256": _EMPTY_SHA256, "size": 0},
        )
        path = self.cache.path(self.key)
        files.write_bytes_atomic(path, b"")  # the key is present
        self.cache._added(self.key)
        self.cache.remember(self.key, self.samples)
        return path

    def discard(self) -> None:
        """Throw away what was written."""
        self.frames = 0

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if kind is not None:
            self.discard()


def _write_sounding(wav: WavWriter, start: int, block: np.ndarray) -> None:
    """Write ``block`` at frame ``start`` of ``wav`` but its long runs of silence (holes)."""
    from ..codecs.wav import sounding_runs

    for a, b in sounding_runs(block):
        wav.write_at(start + a, block[a:b])


def _incomplete(key: str, frames: int, expected: int) -> AudioError | None:
    """Why an object of which ``frames`` of ``expected`` were written is not stored, if it is not."""
    if frames == 0:
        return AudioError(f"cache object {key[:12]}: refusing to store empty audio")
    if frames != expected:
        return AudioError(f"cache object {key[:12]}: {frames} frames written of {expected}; not stored")
    return None


def _write_record(
    writer: ObjectWriter | RecordWriter, meta: Mapping[str, Any], stored: Mapping[str, Any]
) -> None:
    """Write the record of what ``writer`` wrote: ``meta`` (its credentials left out, at every
    level that names parameters), how it is ``stored``, and its shape and time."""
    record = {
        **{k: v for k, v in safe_params(meta).items() if k != "params"},
        **stored,
        "params": safe_params(meta.get("params", {})),
        "key": writer.key,
        "duration": round(writer.frames / writer.sample_rate, 6),
        "sample_rate": writer.sample_rate,
        "channels": writer.channels,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    text = json.dumps(record, indent=1, sort_keys=True)
    files.write_bytes_atomic(writer.cache.meta_path(writer.key), text.encode("utf-8"))
