"""Mastering a long programme in parallel parts: every core limits, writes, meters and encodes.

One limiting pass over an hour streams through one core while LAME keeps
another busy for as long again. Here the programme is cut into parts of
:data:`PART_SECONDS` (fixed by the programme's length, never by the
machine, so the master is the same everywhere), and a pool of threads (the
heavy work, numpy, libsndfile and LAME, releases the GIL) takes them in
turn. Each part task reads its part of the mix with a lead-in and a
tail, runs its own :class:`~mixdown.dsp.dynamics.Limiter` (the lead-in brings it
to the state the whole-stream limiter has there: its release is 80 ms, the
lead-in over a second), and then

* writes the part into the WAV file at its own offset
  (:class:`~mixdown.codecs.wav.WavWriter`), keeping a CRC of the bytes written;
* meters it (:class:`~mixdown.dsp.loudness.PartMeter`: hop energies and true
  peak with its real neighbours; the hop energies from the mix's where the
  limiter left the signal alone), the parts joining into the programme's
  measurement;
* encodes it to MP3 frames without bit reservoir, with a few frames of
  audio on either side, keeping the frames that belong to it
  (:mod:`mixdown.codecs.mp3`); the frames are appended to the file in order as
  parts finish.

The spec checks run on the same threads as soon as what they read is
complete: each part of the WAV is read back by CRC (its samples are
exactly what was metered; the header is read through libsndfile once the
file is closed), and each part of the MP3 is decoded from the file and
metered. Programmes under two parts take the streaming path
(:func:`~mixdown.dsp.master.master_stream`).

A part is a pure function of its stretch of the mix (:func:`spans`) and of
the pass's settings. After an edit, a pass given a ``reuse``
(:class:`mixdown.codecs.splice.Reuse`) makes only the parts whose stretch
changed and copies the others from the files published before: the WAV's
samples in place, the MP3's frames in order, their measurements as kept.

The master itself is not written out: its samples are a function of the
mix and of the pass's settings (:class:`Recipe`), which the cache keeps
instead of 1.4 GB of float32 an hour. A later reader (a delivery at another
loudness or rate, a file to encode again) has :func:`write_master` make the
samples, in parallel parts, exactly as the pass made them.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import RenderFailed
from .energies import Energies

if TYPE_CHECKING:
    from .splice import Reuse
    from .wav import Source

__all__ = [
    "PART_SECONDS",
    "Recipe",
    "ParallelPasses",
    "bounds",
    "grid",
    "lead_in",
    "spans",
    "usable",
    "write_master",
]

# Short enough that an edit makes little again (a splice makes whole parts: mixdown.codecs.splice),
# long enough that a part's lead-in (1.2 s) and MP3 margin (12 frames) cost little (benchmarks/).
PART_SECONDS = 30.0
_LEAD_GRIDS = 2  # lead-in, in grid units (1.2 s at 48 kHz): limiter release, K-weighting, MP3 priming
_MP3_LEAD = 8  # MP3 frames encoded before a part and dropped
_MP3_TAIL = 4  # and after it
# Frames a part takes through all its steps at a time: 1 MiB of stereo float32. Each step
# costs a little per call (Python, a system call, LAME's entry), so smaller chunks cost more;
# larger ones gain nothing and hold more memory per thread (benchmarks/longform.py).
_CHUNK = 1 << 17
_TAIL = 8192  # input read past a part: the limiter's look-ahead, the MP3 tail, the true peak's context


def grid(sr: int) -> int:
    """Part boundaries fall on multiples of this: 100 ms hops, limiter rows and MP3 frames."""
    from ..dsp.loudness import ROW, part_grid
    from .mp3 import samples_per_frame

    return math.lcm(part_grid(sr), ROW, samples_per_frame(sr))


def lead_in(sr: int) -> int:
    """Samples of programme before a part that bring its limiter and meter to the state of one
    pass from the start (a whole number of :func:`grid` units)."""
    return _LEAD_GRIDS * grid(sr)


def bounds(frames: int, sr: int, seconds: float | None = None) -> list[tuple[int, int]]:
    """The parts ``[(start, stop), …]`` of a programme of ``frames`` samples.

    Parts of :data:`PART_SECONDS`, but for a programme of three or
    more the last two are cut in quarters: the threads then run out of work
    within a short part of each other, instead of one core encoding and
    checking a whole last part alone.
    """
    step = grid(sr)
    length = max(step, round((seconds or PART_SECONDS) * sr / step) * step)
    starts = list(range(0, frames, length))
    if len(starts) > 2:
        starts = starts[:-2] + list(range(starts[-2], frames, max(step, length // 4 // step * step)))
    return [(start, min(stop, frames)) for start, stop in zip(starts, [*starts[1:], frames], strict=True)]


def spans(frames: int, sr: int, seconds: float | None = None) -> list[tuple[int, int]]:
    """The stretch ``[start, end)`` of the mix each part of :func:`bounds` is made from.

    A part's samples, MP3 frames and measurement depend on these samples of
    the mix (its lead-in, itself and its tail), on the pass's settings, and
    on whether the stretch ends the programme (the limiter is flushed there).
    """
    lead = lead_in(sr)
    return [
        (start - min(start, lead), min(stop + _TAIL, frames)) for start, stop in bounds(frames, sr, seconds)
    ]


def usable(frames: int, sr: int, seconds: float | None = None) -> bool:
    """Whether a programme is long enough to be mastered in parts (two or more)."""
    return len(bounds(frames, sr, seconds)) >= 2


@dataclass(frozen=True)
class Recipe:
    """What makes a parted master from its mix: the last pass's settings.

    ``gain_db``, ``aim`` and ``trim`` are a :data:`mixdown.dsp.master.Pass`'s
    arguments, ``ceiling_dbtp`` the limiters' ceiling and ``seconds`` the
    parts' length (:func:`bounds`); ``frames``, ``sample_rate`` and
    ``channels`` describe the mix it applies to. The same code on the same
    mix makes the same samples (:func:`write_master`); a change to what
    they make changes :data:`mixdown.plan.model.MASTER_VERSION`, and with it the
    key the recipe is kept under.
    """

    sample_rate: int
    channels: int
    frames: int
    ceiling_dbtp: float
    gain_db: float
    aim: float
    trim: float
    seconds: float

    def record(self) -> dict[str, Any]:
        """The recipe as JSON-ready values (see :meth:`from_record`)."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: Any) -> Recipe | None:
        """The recipe in ``record``, or None if it is not one."""
        try:
            values = {f.name: record[f.name] for f in fields(cls)}
            return cls(**values)
        except (KeyError, TypeError):
            return None


class ParallelPasses:
    """The limiting passes of one master, run in parallel parts (see the module's notes).

    ``mix`` is the programme's float file; ``wav`` a
    :class:`~mixdown.codecs.wav.WavWriter` (or None);
    ``mp3`` the MP3 file and settings ``(path, bitrate, vbr, quality)`` (or
    None); ``progress`` is told the frames done so far in the pass;
    ``mix_hops``, the mix's hop energies (its analysis), spare the master
    most of its K-weighting (:class:`~mixdown.codecs.energies.Energies`);
    ``reuse`` names the parts to copy from published files instead of
    making them (a splice). Call it as a :data:`mixdown.dsp.master.Pass`;
    then close the WAV and :meth:`check_wav_header`; :attr:`recipe` is the
    last pass's, and :attr:`measures`, :attr:`mp3_measures`,
    :meth:`wav_crcs` and :meth:`mp3_sizes` its parts'.
    """

    def __init__(
        self,
        mix: Source,
        sr: int,
        channels: int,
        frames: int,
        ceiling_dbtp: float,
        *,
        wav: Any = None,
        mp3: tuple[Path, int, bool, int] | None = None,
        seconds: float | None = None,
        progress: Callable[[int], None] | None = None,
        mix_hops: np.ndarray | None = None,
        reuse: Reuse | None = None,
    ) -> None:
        self.mix = mix  # read by range from every core (Source.between)
        self.sr, self.channels, self.frames = sr, channels, frames
        # the mix's hop energies (its analysis): the master's, where the limiter leaves it alone
        self.mix_hops = mix_hops if mix_hops is not None and sr % 10 == 0 else None
        self.ceiling_dbtp = ceiling_dbtp
        self.wav, self.mp3 = wav, mp3
        self.seconds = seconds or PART_SECONDS
        self.bounds = bounds(frames, sr, self.seconds)
        self.spans = spans(frames, sr, self.seconds)
        self.reuse = reuse
        self._progress = progress or (lambda _: None)
        self._crcs: list[int] = [-1] * len(self.bounds)
        self._frames_mp3: list[tuple[bytes, np.ndarray]] = [(b"", np.zeros(1, np.int64))] * len(self.bounds)
        self._starts: list[np.ndarray] = []  # where each MP3 frame starts in the file, per part spliced
        self._ends: list[int] = []  # and where each part's frames end
        self._lock = threading.Lock()
        self._spare = False  # a pass makes fewer parts than there are cores (see _part)
        self._done = 0
        self.wav_sha256: str | None = None  # the last pass's WAV file, read back part by part
        self.found: Any = None  # the last pass's measurement of the master (and of the WAV)
        self.mp3_found: Any = None  # and of its MP3, decoded
        self.recipe: Recipe | None = None  # and what makes its samples again
        self.measures: list[Any] = []  # the last pass's parts' measurements (PartMeter's)
        self.mp3_measures: list[Any] | None = None  # and its MP3's, if it wrote one

    # -- a pass --------------------------------------------------------------------

    def __call__(self, gain_db: float, aim: float, trim: float) -> tuple[Any, float, Callable[[], None]]:
        """Run one limiting pass over every part; return (measurement, integrated, discard).

        Parts are taken in order, a core's worth at a time; as each is
        done its MP3 frames are appended to the file, and the checks of what
        is complete (its WAV bytes, the MP3 part before it) go to the same
        threads, ahead of the parts still to start. With :attr:`reuse`, the
        parts it keeps are copied in their turn instead.
        """
        from ..dsp.loudness import joined
        from ..dsp.signal import db_to_gain
        from .mp3 import samples_per_frame

        self._done, self._starts, self._ends = 0, [], []
        parts, bad, measured = self._run(np.float32(db_to_gain(gain_db)), aim, trim)
        if bad and self.reuse is not None and all(not self.reuse.dirty[i] for i in bad):
            self.reuse.differs(bad[0])  # a part copied from the published WAV is not what was kept
        if bad:
            assert self.wav is not None
            raise RenderFailed(
                f"{self.wav.path.name}: the file does not read back as written from "
                f"{self.bounds[bad[0]][0] / self.sr:.1f} s (disk or filesystem error); nothing was published"
            )
        self.measures, self.mp3_measures = parts, measured if self.mp3 is not None else None
        if self.mp3 is not None:
            total = sum(len(starts) for starts in self._starts)
            self.mp3_found = joined(self.sr, self.channels, total * samples_per_frame(self.sr), measured)
        found = self.found = joined(self.sr, self.channels, self.frames, parts)
        self.recipe = Recipe(
            self.sr, self.channels, self.frames, self.ceiling_dbtp, gain_db, aim, trim, self.seconds
        )
        return found, found.integrated, lambda: None  # a new pass overwrites every part

    def _run(self, gain: np.float32, aim: float, trim: float) -> tuple[list[Any], list[int], list[Any]]:
        """The pass's loop: (each part's measurement, the parts that did not read back, each
        part's MP3 measurement)."""
        count, reuse = len(self.bounds), self.reuse
        made = [i for i in range(count) if reuse is None or reuse.dirty[i]]
        # every core, even for a splice that makes one part: the others read back what was copied
        workers = max(1, min(os.cpu_count() or 1, count))
        self._spare = len(made) < workers
        parts: list[Any] = [None] * count
        checks: list[tuple[int, Future[Any]]] = []
        mp3_parts: list[Any] = []  # futures, or what reuse kept
        pending: dict[int, Future[Any]] = {}
        queued = 0  # of made
        hashing = _WavHash(self.wav, self.bounds) if self.wav is not None else None
        self.wav_sha256 = None
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-part") as pool:
            try:
                out = open(self.mp3[0], "wb") if self.mp3 is not None else None  # noqa: SIM115
                try:
                    for index in range(count):
                        while queued < len(made) and len(pending) <= workers:
                            ahead, queued = made[queued], queued + 1
                            pending[ahead] = pool.submit(self._part, ahead, gain, aim, trim)
                        if index not in pending:
                            parts[index] = self._reused(index, out)
                        else:
                            parts[index] = pending.pop(index).result()
                            if out is not None:
                                self._splice(index, out)
                        if hashing is not None:
                            hashing.part(index)
                            checks.append((index, pool.submit(self._wav_reads_back, index)))
                        if out is not None and index:
                            mp3_parts.append(self._mp3_part(pool, index - 1))
                    if out is not None:
                        mp3_parts.append(self._mp3_part(pool, count - 1))
                finally:
                    if out is not None:
                        out.close()
                bad = [i for i, check in checks if not check.result()]
                measured = [p.result() if isinstance(p, Future) else p for p in mp3_parts]
                self.wav_sha256 = hashing.result() if hashing is not None else None
            except BaseException:
                for future in [*pending.values(), *(c for _, c in checks), *mp3_parts]:
                    if isinstance(future, Future):
                        future.cancel()
                raise
            finally:
                if hashing is not None:
                    hashing.close()
        return parts, bad, measured

    def _reused(self, index: int, out: Any) -> Any:
        """Copy part ``index`` from the published files (:attr:`reuse`); its measurement as kept."""
        assert self.reuse is not None
        start, stop = self.bounds[index]
        if self.wav is not None:
            self.reuse.copy_wav(self.wav, start, stop)
            self._crcs[index] = self.reuse.crc(index)  # read back as the others are
        if out is not None:
            sizes = self.reuse.copy_mp3(index, out)
            base = self._ends[-1] if self._ends else 0
            self._starts.append(base + np.concatenate([[0], np.cumsum(sizes[:-1])]).astype(np.int64))
            self._ends.append(base + int(sizes.sum()))
        self._count(stop - start)
        return self.reuse.measure(index)

    def _mp3_part(self, pool: ThreadPoolExecutor, index: int) -> Any:
        """Part ``index``'s MP3 measurement: decoded from the file on ``pool``, or as :attr:`reuse`
        kept it when neither it nor a neighbour (whose frames its decoder reads) was made again."""
        if self.reuse is not None and not self.reuse.remeasure_mp3(index):
            return self.reuse.mp3_measure(index)
        return pool.submit(self._measure_mp3, index)

    def wav_crcs(self) -> list[int] | None:
        """The CRC-32 of each part's WAV bytes, as the last pass wrote them (None: no WAV)."""
        return list(self._crcs) if self.wav is not None else None

    def mp3_sizes(self) -> list[np.ndarray]:
        """The byte size of every MP3 frame of each part, as the last pass wrote them."""
        return [np.diff(np.append(starts, end)) for starts, end in zip(self._starts, self._ends, strict=True)]

    def _splice(self, index: int, out: Any) -> None:
        """Append part ``index``'s MP3 frames to the file, noting where each frame starts."""
        data, offsets = self._frames_mp3[index]
        base = self._ends[-1] if self._ends else 0
        self._starts.append(offsets[:-1] + base)
        self._ends.append(base + len(data))
        out.write(data)
        out.flush()
        self._frames_mp3[index] = (b"", offsets[:1])  # in the file now: memory stays at a few parts

    def _measure_mp3(self, index: int) -> tuple[np.ndarray, float, float]:
        """Decode and meter part ``index``'s frames as the file holds them (the next one is spliced)."""
        from . import mp3

        assert self.mp3 is not None
        upto = min(index + 1, len(self._starts) - 1)  # the frame after the part is its peaks' context
        offsets = np.append(np.concatenate(self._starts[: upto + 1]), self._ends[upto])
        first = sum(len(starts) for starts in self._starts[:index])
        last = first + len(self._starts[index])
        fd = os.open(self.mp3[0], os.O_RDONLY)
        try:
            return mp3.measure_part(
                lambda a, b: os.pread(fd, b - a, a),
                offsets,
                mp3.samples_per_frame(self.sr),
                self.sr,
                self.channels,
                first,
                last,
            )
        finally:
            os.close(fd)

    def _wav_reads_back(self, index: int) -> bool:
        """Whether part ``index``'s bytes read back from the WAV as they were written (CRC-32)."""
        assert self.wav is not None
        start, stop = self.bounds[index]
        return bool(self.wav.crc(start, stop - start) == self._crcs[index])

    def _outputs(
        self, index: int, gain: np.float32, aim: float, trim: float
    ) -> Iterator[tuple[np.ndarray, int, Any]]:
        """Part ``index``'s limited output from the start of its lead-in, a chunk at a time:
        ``(samples, where they start in that output, limiter)``, the limiter's
        :attr:`~mixdown.dsp.dynamics.Limiter.touched` describing the samples until the next chunk is
        asked for. The pass and :func:`write_master` both make the master here, so that they
        make the same samples."""
        from ..dsp.dynamics import Limiter
        from ..dsp.loudness import ENVELOPE_AFTER

        start, stop = self.bounds[index]
        first, end = self.spans[index]
        lead = start - first
        limiter = Limiter(self.sr, self.channels, ceiling_dbtp=self.ceiling_dbtp)
        limiter.aim *= aim
        made = 0

        def out(y: np.ndarray) -> tuple[np.ndarray, int, Any]:
            nonlocal made
            made += len(y)
            if trim != 1.0:
                y = y * np.float32(trim)  # a copy: the limiter may hand out views of its input
            return y, made - len(y), limiter

        for x in self.mix.between(start - lead, end, _CHUNK):
            x *= gain
            yield out(limiter.process(x))
        if end == self.frames:
            yield out(limiter.flush())
        if made < lead + min(stop + ENVELOPE_AFTER, self.frames) - start:
            raise AssertionError("a part's tail is shorter than the limiter's look-ahead")

    def _part(self, index: int, gain: np.float32, aim: float, trim: float) -> tuple[np.ndarray, float, float]:
        """Limit, write, encode and meter part ``index``, a chunk at a time (each chunk goes
        through every step while it is in the CPU's cache)."""
        from ..dsp.loudness import PartMeter

        start, stop = self.bounds[index]
        n, lead = stop - start, start - self.spans[index][0]
        known = None
        if self.mix_hops is not None:
            known = Energies(self.mix_hops, self.sr, self.channels, start, lead, n, float(gain) * trim)
        meter = PartMeter(self.sr, self.channels, lead, n, energies=known is None)
        mp3 = _PartMp3(self, index, lead) if self.mp3 is not None else None
        # With a core to spare (a splice making fewer parts than there are cores), LAME encodes
        # the part on a thread of its own, a chunk behind the limiter, instead of taking turns.
        encoding = ThreadPoolExecutor(1, thread_name_prefix="mixdown-lame") if mp3 and self._spare else None
        encoded: list[Future[None]] = []
        crc = 0  # of the WAV bytes written
        try:
            for y, at, limiter in self._outputs(index, gain, aim, trim):
                if self.wav is not None:
                    offset, body = _body(y, at, lead, n)
                    if len(body):
                        crc = self.wav.write_at(start + offset, body, crc)
                if mp3 is not None and encoding is not None:
                    encoded.append(encoding.submit(mp3.take, y.copy(), at))
                elif mp3 is not None:
                    mp3.take(y, at)
                if known is not None:
                    known.take(y, at, limiter.touched)
                meter.add(y)
            for done in encoded:
                done.result()
            if mp3 is not None:
                self._frames_mp3[index] = mp3.frames()
        finally:
            if encoding is not None:
                encoding.shutdown(cancel_futures=True)
            if mp3 is not None:
                mp3.encoder.close()
        self._crcs[index] = crc
        part = meter.result()
        if known is not None:
            part = (known.result(), *part[1:])
        self._count(n)
        return part

    def _count(self, frames: int) -> None:
        with self._lock:
            self._done += frames
            self._progress(self._done)

    def write_body(self, index: int, gain: np.float32, aim: float, trim: float, writer: Any) -> None:
        """Write part ``index`` of the master (no lead-in, no tail) with ``writer.write_at``."""
        start, stop = self.bounds[index]
        n, lead = stop - start, start - self.spans[index][0]
        for y, at, _ in self._outputs(index, gain, aim, trim):
            offset, body = _body(y, at, lead, n)
            if len(body):
                writer.write_at(start + offset, body)
        self._count(n)

    # -- the files -------------------------------------------------------------------

    def check_wav_header(self) -> None:
        """The closed WAV's header, as libsndfile reads it, describes what was written.

        Its samples were read back part by part during the pass (by
        CRC against the bytes written: exactly the samples that were metered).
        """
        import soundfile as sf

        assert self.wav is not None
        info = sf.info(os.fspath(self.wav.path))
        found = (info.frames, info.channels, info.samplerate, info.subtype)
        if found != (self.frames, self.channels, self.sr, self.wav.subtype):
            raise RenderFailed(f"{self.wav.path.name}: the file's header does not describe what was written")


class _WavHash:
    """The sha256 of a parted master's WAV file, hashed on a thread of its own as its parts are
    done, in order (each read back from the file, as :func:`~mixdown.store.files.sha256_of`
    would read it): at the end of the pass the digest is ready, instead of a gigabyte to read
    again while the other cores wait."""

    def __init__(self, wav: Any, bounds: list[tuple[int, int]]) -> None:
        import hashlib

        self.wav, self.bounds = wav, bounds
        self.digest = hashlib.sha256()
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixdown-sha256")
        self.done: list[Future[int]] = []

    def part(self, index: int) -> None:
        """Hash part ``index`` (its WAV bytes are final; the parts before it were handed in)."""
        start, stop = self.bounds[index]
        self.done.append(
            self.thread.submit(self.wav.hash_into, self.digest, start, stop - start, header=not index)
        )

    def result(self) -> str | None:
        """The file's sha256, or None if it could not be read back whole."""
        sizes = [done.result() for done in self.done]
        whole = len(sizes) == len(self.bounds) and min(sizes) >= 0
        return self.digest.hexdigest() if whole and sum(sizes) == os.path.getsize(self.wav.path) else None

    def close(self) -> None:
        self.thread.shutdown(cancel_futures=True)


def _body(y: np.ndarray, at: int, lead: int, n: int) -> tuple[int, np.ndarray]:
    """Where in its part the output ``y`` (from output sample ``at``, counted from the start
    of a ``lead``-sample lead-in) starts to belong, and the samples of ``y`` that do (of ``n``)."""
    return max(0, at - lead), y[max(0, lead - at) : max(0, lead + n - at)]


def write_master(
    recipe: Recipe, mix: Source, writer: Any, *, progress: Callable[[int], None] | None = None
) -> None:
    """Make the master ``recipe`` describes from ``mix`` (a cache object's
    :class:`~mixdown.codecs.wav.Source`) into ``writer`` (its
    ``write_at``, from any thread), every core taking parts in turn; ``progress`` is told the
    frames done so far."""
    from ..dsp.signal import db_to_gain

    passes = ParallelPasses(
        mix, recipe.sample_rate, recipe.channels, recipe.frames, recipe.ceiling_dbtp,
        seconds=recipe.seconds, progress=progress,
    )  # fmt: skip
    gain = np.float32(db_to_gain(recipe.gain_db))
    count = len(passes.bounds)
    workers = max(1, min(os.cpu_count() or 1, count))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-part") as pool:
        futures = [
            pool.submit(passes.write_body, index, gain, recipe.aim, recipe.trim, writer)
            for index in range(count)
        ]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


class _PartMp3:
    """The MP3 frames of one part, encoded as its output is made.

    LAME takes the part with a few frames of audio on either side
    (:data:`_MP3_LEAD` before, :data:`_MP3_TAIL` after, but for the ends of
    the programme); the frames that belong to the part are kept.
    """

    def __init__(self, parted: ParallelPasses, index: int, lead: int) -> None:
        from . import mp3

        assert parted.mp3 is not None
        _, bitrate, vbr, quality = parted.mp3
        start, stop = parted.bounds[index]
        self.index, self.n, self.last = index, stop - start, stop == parted.frames
        self.spf = spf = mp3.samples_per_frame(parted.sr)
        before = min(lead, _MP3_LEAD * spf)
        self.skip = before // spf  # frames before the part's own
        # the output samples encoded (counted from the lead-in's start)
        tail = 0 if self.last else min(_MP3_TAIL * spf, parted.frames - stop)  # the programme may end first
        self.first, self.stop = lead - before, lead + self.n + tail
        self.encoder = mp3.Encoder(parted.sr, parted.channels, bitrate=bitrate, vbr=vbr, quality=quality)
        self.data: list[bytes] = []
        self.made = 0  # output samples taken so far

    def take(self, y: np.ndarray, at: int) -> None:
        """Encode what of the output ``y`` (which starts at output sample ``at``) is in range."""
        self.made = at + len(y)
        part = y[max(0, self.first - at) : max(0, self.stop - at)]
        if len(part):
            self.data.append(self.encoder.encode(part))

    def frames(self) -> tuple[bytes, np.ndarray]:
        """The part's frames and where each starts (with the end), once its output is all taken."""
        from . import mp3

        if self.made < self.stop:
            raise AssertionError("a part's tail is shorter than its MP3 tail")
        data = b"".join([*self.data, self.encoder.finish()])
        offsets, _, _, _ = mp3.frame_index(data)
        keep = len(offsets) - 1 if self.last else self.skip + self.n // self.spf
        if keep > len(offsets) - 1:
            raise RenderFailed(
                f"MP3: part {self.index} came out {len(offsets) - 1} frames long, short of {keep}"
            )
        kept = offsets[self.skip : keep + 1]
        return data[kept[0] : kept[-1]], kept - kept[0]
