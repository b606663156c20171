"""Audio files: reading any format, and WAV/RF64 written and read block by block.

Audio read here follows :mod:`mixdown.dsp.signal`'s convention (float32,
``[shape=(n, channels)]``). A float WAV (every cache object) is read by
positional reads straight into numpy blocks; WAVs over 4 GiB are RF64.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, overload

import numpy as np

from ..dsp.signal import BLOCK, Stream
from ..errors import AudioError

_RIFF_BYTES = (1 << 32) - (1 << 16)  # the samples a RIFF WAV can hold, with room for its header
_WIDTHS = {"FLOAT": 4, "PCM_24": 3, "PCM_16": 2}  # bytes per sample of the WAV subtypes written here

__all__ = [
    "FloatHeader",
    "Source",
    "WavWriter",
    "blocks_between",
    "float_wav_header",
    "mapped",
    "read_at",
    "read_audio",
    "sounding_runs",
    "wav_container",
    "write_at",
    "write_audio_atomic",
    "write_blocks_atomic",
]


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read any file libsndfile decodes; returns float32 ``(n, channels)`` and its rate."""
    import soundfile as sf

    try:
        y, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(f"{path}: cannot read audio ({err}); use WAV, FLAC, OGG or MP3") from None
    return y, int(sr)


def write_audio_atomic(
    path: str | os.PathLike[str],
    y: np.ndarray,
    sr: int,
    *,
    format: str = "WAV",
    subtype: str | None = None,
) -> None:
    """Write ``y`` to ``path`` so that readers never see a half-written file.

    The audio goes to a temporary file in the same directory, is flushed to
    disk, and is renamed over ``path`` in one step.
    """
    import soundfile as sf

    from ..store.files import discard, publish, temporary_beside

    path = Path(path)
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            sf.write(fh, y, sr, format=format, subtype=subtype)
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise


class Source:
    """Audio that a stage reads in blocks, as often as it needs: an array or a file.

    A file is read block by block (libsndfile), never whole, so a ten-hour
    programme costs a block of memory per pass.
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int,
        frames: int,
        *,
        array: np.ndarray | None = None,
        path: Path | None = None,
        scale: float = 1.0,
    ) -> None:
        self.sample_rate, self.channels, self.frames = sample_rate, channels, frames
        self._array, self._path = array, path
        self._scale = np.float32(scale)  # a compact cache object's (mixdown.codecs.flac24)

    @classmethod
    def of_array(cls, y: np.ndarray, sr: int) -> Source:
        """A source over an in-memory array ``[shape=(n, channels)]``."""
        return cls(sr, y.shape[1], len(y), array=y)

    @classmethod
    def of_file(cls, path: str | os.PathLike[str], *, scale: float = 1.0) -> Source:
        """A source over an audio file (read lazily), its samples multiplied by ``scale``."""
        import soundfile as sf

        try:
            info = sf.info(os.fspath(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise AudioError(f"{path}: cannot read audio ({err}); use WAV, FLAC, OGG or MP3") from None
        return cls(int(info.samplerate), int(info.channels), int(info.frames), path=Path(path), scale=scale)

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """Yield float32 blocks ``[shape=(<= size, channels)]`` from the start."""
        if self._array is not None:
            for start in range(0, len(self._array), size):
                yield self._array[start : start + size]
            return
        import soundfile as sf

        assert self._path is not None
        with sf.SoundFile(os.fspath(self._path)) as fh:
            while True:
                block = fh.read(size, dtype="float32", always_2d=True)
                if not len(block):
                    return
                yield self._scaled(block)

    def between(self, start: int, stop: int, size: int = BLOCK) -> Iterator[np.ndarray]:
        """Yield frames ``[start, stop)`` as float32 blocks of up to ``size`` (new arrays: the
        caller may change them), from any thread."""
        if self._array is not None:
            for first in range(start, stop, size):
                yield self._array[first : min(first + size, stop)].copy()
            return
        assert self._path is not None
        for block in blocks_between(self._path, start, stop, size):
            yield self._scaled(block)

    def _scaled(self, block: np.ndarray) -> np.ndarray:
        if self._scale != 1:
            block *= self._scale  # a power of two: exact
        return block


def wav_container(audio: Stream | tuple[int, int], subtype: str) -> str:
    """``"WAV"``, or ``"RF64"`` when the samples will not fit a RIFF WAV's 4 GiB.

    ``audio`` is a stream, or ``(frames, channels)`` of what will be written.
    RF64 is the same file with 64-bit sizes; libsndfile reads it like a WAV.
    """
    frames, channels = audio if isinstance(audio, tuple) else (audio.frames, audio.channels)
    width = _WIDTHS.get(subtype, 4)
    return "RF64" if frames * channels * width > _RIFF_BYTES else "WAV"


def read_at(fd: int, out: np.ndarray, offset: int) -> bool:
    """Fill the C-contiguous array ``out`` from byte ``offset`` of the file ``fd`` (positional:
    any thread); False if the file ends first."""
    data = out.data.cast("B")
    while len(data):
        done = os.preadv(fd, [data], offset)
        if done <= 0:
            return False
        data, offset = data[done:], offset + done
    return True


def float_samples_at(path: str | os.PathLike[str]) -> tuple[int, int] | None:
    """Where the samples of a 32-bit float WAV or RF64 file (as the cache writes them) start,
    and its channels: ``(byte offset, channels)``; None for any other file (libsndfile reads those)."""
    found = float_wav_header(path)
    return None if found is None else (found.offset, found.channels)


def mapped(path: str | os.PathLike[str]) -> np.ndarray:
    """The samples of a 32-bit float WAV or RF64 file (a cache object) as a read-only memory map
    ``[shape=(frames, channels)]``: read from disk only where they are used."""
    found = float_wav_header(path)
    if found is None:
        raise AudioError(f"{path}: not a 32-bit float WAV file")
    size = os.stat(path).st_size - found.offset
    frames = size // (found.channels * 4) if found.frames is None else found.frames
    if frames == 0:
        return np.zeros((0, found.channels), dtype=np.float32)
    return np.memmap(path, dtype="<f4", mode="r", offset=found.offset, shape=(frames, found.channels))


class FloatHeader(NamedTuple):
    """What the header of a 32-bit float WAV or RF64 file says (see :func:`float_wav_header`)."""

    offset: int  # byte offset of the samples
    channels: int
    sample_rate: int
    frames: int | None  # what the file holds (as libsndfile reads a file cut short); None for RF64
    declared: int | None  # what the header says; None for RF64 (its size is in its ds64 chunk)


def float_wav_header(path: str | os.PathLike[str]) -> FloatHeader | None:
    """The :class:`FloatHeader` of a 32-bit float WAV or RF64 file, read from its header;
    None for any other file."""
    import struct

    with open(path, "rb") as fh:
        head = fh.read(1 << 12)
        length = os.fstat(fh.fileno()).st_size
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None
    pos, channels, rate = 12, 0, 0
    while pos + 8 <= len(head):
        kind, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if kind == b"fmt " and size >= 16:
            tag, count, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            if tag == 0xFFFE and size >= 40:  # WAVE_FORMAT_EXTENSIBLE: the subformat GUID's first field
                tag = struct.unpack_from("<H", head, pos + 32)[0]
            channels = count if tag == 3 and bits == 32 else 0
        elif kind == b"data":
            if not channels:
                return None
            if head[:4] == b"RF64":
                return FloatHeader(pos + 8, channels, rate, None, None)
            # what the file holds, if it is shorter than its header says (as libsndfile reads it)
            held = min(size, length - pos - 8) // (channels * 4)
            return FloatHeader(pos + 8, channels, rate, held, size // (channels * 4))
        pos += 8 + size + (size & 1)
    return None


def write_at(fd: int, data: memoryview, offset: int) -> None:
    """Write all of ``data`` at byte ``offset`` of the file ``fd`` (positional: any thread)."""
    while len(data):
        done = os.pwrite(fd, data, offset)
        data, offset = data[done:], offset + done


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range of a file to disk now, without waiting for it (Linux).

    The programme's files are made durable (fsync) before they are published;
    an hour is over a gigabyte, which the kernel would otherwise keep in
    memory until then, and the fsync would wait for all of it with the cores
    idle. Writing each block back as it is written leaves that fsync little
    to do. Elsewhere, a no-op.
    """
    call = _sync_file_range()
    if call is not None and length > 0:
        call(fd, offset, length, 2)  # SYNC_FILE_RANGE_WRITE: queue the dirty pages, do not wait


@lru_cache(maxsize=1)
def _sync_file_range() -> Any:
    import sys

    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    call.restype = ctypes.c_int
    return call


class WavWriter:
    """A WAV file of a known length whose samples are written at any position, from any thread.

    The header (RIFF, or RF64 when the samples pass 4 GiB: see
    :func:`wav_container`) is written first for ``frames`` frames, and each
    :meth:`write_at` puts a block at its own offset, so parts of a programme
    made in parallel go straight into place. Subtypes: ``FLOAT`` (32-bit
    float), ``PCM_24`` and ``PCM_16``; PCM samples are ``round(x * 2**(bits-1))``
    clipped to the format's range, which libsndfile reads back as ``q / 2**(bits-1)``
    exactly (see :meth:`quantized`).
    """

    def __init__(
        self, path: str | os.PathLike[str], sr: int, channels: int, subtype: str, frames: int
    ) -> None:
        import struct

        if subtype not in _WIDTHS:
            raise ValueError(f"WavWriter writes {', '.join(_WIDTHS)}, not {subtype}")
        self.path, self.sample_rate, self.channels, self.frames = Path(path), sr, channels, frames
        self.subtype, self.width = subtype, _WIDTHS[subtype]
        align = channels * self.width
        data = frames * align
        tag, bits = (3, 32) if subtype == "FLOAT" else (1, self.width * 8)
        fmt = struct.pack("<HHIIHH", tag, channels, sr, sr * align, align, bits)
        if tag == 3:  # non-PCM: a cbSize field and a fact chunk
            fmt += struct.pack("<H", 0)
            extra = b"fact" + struct.pack("<II", 4, min(frames, 0xFFFFFFFF))
        else:
            extra = b""
        chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra
        if wav_container((frames, channels), subtype) == "RF64":
            ds64 = struct.pack("<QQQI", 4 + 36 + len(chunks) + 8 + data, data, frames, 0)
            header = (
                b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"ds64" + struct.pack("<I", len(ds64))
            )
            header += ds64 + chunks + b"data" + struct.pack("<I", 0xFFFFFFFF)
        else:
            header = b"RIFF" + struct.pack("<I", 4 + len(chunks) + 8 + data) + b"WAVE" + chunks
            header += b"data" + struct.pack("<I", data)
        self._offset = len(header)
        self._fmt = b"fmt " + struct.pack("<I", len(fmt)) + fmt  # what copy_from checks a source against
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)  # read back: crc, blocks
        try:
            os.pwrite(self._fd, header, 0)
            os.ftruncate(self._fd, self._offset + data)
        except BaseException:
            os.close(self._fd)
            raise

    def quantized(self, block: np.ndarray) -> np.ndarray:
        """``block`` as float32 holding exactly what the file will read back."""
        if self.subtype == "FLOAT":
            return np.asarray(block, dtype=np.float32)
        q = self._steps(block)
        q /= self._scale()
        q += 0.0  # -0.0 (a small negative sample rounded) reads back as +0.0
        return q

    def _scale(self) -> np.float32:
        return np.float32(1 << (self.width * 8 - 1))

    def _steps(self, block: np.ndarray) -> np.ndarray:
        """PCM samples as whole float32 steps: ``round(x * 2**(bits-1))``, clipped to the format's range."""
        scale = self._scale()
        q: np.ndarray = np.multiply(block, scale, dtype=np.float32)
        np.rint(q, out=q)
        np.clip(q, -scale, scale - 1, out=q)
        return q

    @overload
    def write_at(self, start: int, block: np.ndarray) -> None: ...

    @overload
    def write_at(self, start: int, block: np.ndarray, crc: int) -> int: ...

    def write_at(self, start: int, block: np.ndarray, crc: int | None = None) -> int | None:
        """Write ``block`` ``[shape=(n, channels)]`` at frame ``start`` (quantized as :meth:`quantized`).

        Given ``crc`` (that of the bytes just before them, for a range written
        in consecutive blocks; 0 to start one), returns the CRC-32 of the
        bytes written continuing it (see :meth:`crc`).
        """
        import zlib

        if start < 0 or start + len(block) > self.frames:
            raise ValueError(f"frames {start}..{start + len(block)} are outside the file's {self.frames}")
        if not len(block):
            return crc
        data = self._bytes(block)
        offset = self._offset + start * self.channels * self.width
        write_at(self._fd, data, offset)
        start_writeback(self._fd, offset, len(data))
        return None if crc is None else zlib.crc32(data, crc)

    def copy_from(self, path: str | os.PathLike[str], start: int, stop: int, at: int | None = None) -> None:
        """Copy frames ``[start, stop)`` of the WAV at ``path`` to this file's frames from ``at``
        (by default ``start``: the same frames).

        ``path`` must hold the same kind of samples (rate, channels and
        subtype) in a header of the same length: an earlier file of this
        programme, whose unchanged stretches are copied instead of made again.
        The copy stays in the kernel (``os.copy_file_range``) where it can.
        """
        at = start if at is None else at
        if start < 0 or at < 0 or start > stop or at + stop - start > self.frames:
            raise ValueError(f"frames {at}..{at + stop - start} are outside the file's {self.frames}")
        align = self.channels * self.width
        left, offset = (stop - start) * align, start * align
        shift = (at - start) * align  # from a byte of the source to the same byte here
        source = os.open(path, os.O_RDONLY)
        try:
            head = os.pread(source, self._offset, 0)
            if head[self._offset - 8 : self._offset - 4] != b"data" or self._fmt not in head:
                raise AudioError(f"{path}: not a file of the same format and header as {self.path.name}")
            while left:
                done = _copy_range(
                    source, self._fd, left, self._offset + offset, self._offset + offset + shift
                )
                if not done:
                    raise AudioError(f"{path}: the file ends before frame {stop}")
                left, offset = left - done, offset + done
        finally:
            os.close(source)
        start_writeback(self._fd, self._offset + at * align, (stop - start) * align)

    def hash_into(self, digest: Any, start: int, frames: int, *, header: bool = False) -> int:
        """Update ``digest`` (a :mod:`hashlib` object) with the bytes of ``frames`` frames from
        ``start``, read back from the file, the header's first with ``header``; return how many
        bytes that was (-1 if the file ends before them). Ranges fed in order from frame 0 with
        its header hash the file's bytes from the start."""
        if header and start:
            raise ValueError("the header comes before frame 0: hash it with the range from there")
        align = self.channels * self.width
        offset = 0 if header else self._offset + start * align
        left = size = self._offset + (start + frames) * align - offset
        while left:
            data = os.pread(self._fd, min(left, 1 << 22), offset)
            if not data:
                return -1
            digest.update(data)
            left, offset = left - len(data), offset + len(data)
        return size

    def crc(self, start: int, frames: int) -> int:
        """The CRC-32 of the sample bytes of ``frames`` frames from ``start``, read back from the file."""
        import zlib

        align = self.channels * self.width
        crc, left, offset = 0, frames * align, self._offset + start * align
        while left:
            data = os.pread(self._fd, min(left, 1 << 22), offset)
            if not data:
                return -1
            crc, left, offset = zlib.crc32(data, crc), left - len(data), offset + len(data)
        return crc

    def blocks(self, start: int, stop: int, size: int = BLOCK) -> Iterator[np.ndarray]:
        """Read frames ``[start, stop)`` back as written, in float32 blocks (``FLOAT`` files)."""
        if self.subtype != "FLOAT":
            raise ValueError(f"WavWriter reads back FLOAT files, not {self.subtype}")
        align = self.channels * 4
        for first in range(start, stop, size):
            block = np.empty((min(size, stop - first), self.channels), dtype=np.float32)
            if not read_at(self._fd, block, self._offset + first * align):
                raise AudioError(f"{self.path}: the file ends before frame {stop}")
            yield block

    def _bytes(self, block: np.ndarray) -> memoryview:
        if self.subtype == "FLOAT":
            return np.ascontiguousarray(block, dtype="<f4").data.cast("B")
        q = self._steps(block)
        if self.width == 2:
            pcm: np.ndarray = q.astype("<i2")
            return pcm.data.cast("B")
        # 24-bit: four samples' low three bytes packed into three 32-bit words (no byte strides)
        v = q.astype("<i4").view(np.uint32).reshape(-1)
        n = len(v)
        if n % 4:
            v = np.concatenate([v, np.zeros(-n % 4, np.uint32)])
        four = v.reshape(-1, 4)
        out = np.empty((len(four), 3), "<u4")
        out[:, 0] = (four[:, 0] & 0xFFFFFF) | (four[:, 1] << 24)
        out[:, 1] = ((four[:, 1] >> 8) & 0xFFFF) | (four[:, 2] << 16)
        out[:, 2] = ((four[:, 2] >> 16) & 0xFF) | (four[:, 3] << 8)
        return out.data.cast("B")[: n * 3]

    def flush(self) -> None:
        """Make what was written durable (fsync)."""
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _copy_range(source: int, target: int, count: int, offset: int, to: int) -> int:
    """Copy up to ``count`` bytes at ``offset`` of one file to ``to`` of another; return how
    many were copied (0 at the source's end)."""
    try:
        return os.copy_file_range(source, target, min(count, 1 << 30), offset, to)
    except OSError as err:
        import errno

        if err.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    data = os.pread(source, min(count, 1 << 22), offset)
    if data:
        write_at(target, memoryview(data), to)
    return len(data)


def sounding_runs(block: np.ndarray, *, min_silence: int = 2048) -> list[tuple[int, int]]:
    """The runs ``[a, b)`` of frames of float32 ``block`` ``[shape=(n, channels)]`` that are not
    silent, in order: the rest is runs of at least ``min_silence`` frames whose every sample
    is +0.0, bit for bit (a -0.0 sounds here: it would not read back the same from a hole).
    """
    if not len(block):
        return []
    bits = np.ascontiguousarray(block, dtype=np.float32).view(np.uint32)
    if np.count_nonzero(bits) == bits.size:  # no +0.0 sample at all: the common case, found fast
        return [(0, len(block))]
    bits = bits.reshape(len(bits), -1)
    # a frame sounds if any of its samples has a bit set; any(axis=1) over a row of one or two
    # is numpy's slow path, so a stereo frame is read as one 64-bit word, other counts by column
    if bits.shape[1] == 2:
        loud = bits.view(np.uint64)[:, 0] != 0
    else:
        loud = bits[:, 0] != 0
        for column in bits.T[1:]:
            loud |= column != 0
    edged = np.zeros(len(loud) + 2, dtype=bool)  # silent before and after: every run has both edges
    edged[1:-1] = loud
    edges = np.flatnonzero(edged[1:] != edged[:-1])
    starts, stops = edges[0::2], edges[1::2]
    if not len(starts):
        return []
    # silences shorter than min_silence (inside the block) are written with their neighbours
    apart = np.flatnonzero(starts[1:] - stops[:-1] >= min_silence)
    firsts = np.concatenate(([starts[0]], starts[apart + 1]))
    lasts = np.concatenate((stops[apart], [stops[-1]]))
    return [(int(a), int(b)) for a, b in zip(firsts, lasts, strict=True)]


def write_blocks_atomic(path: str | os.PathLike[str], source: Source, *, subtype: str) -> None:
    """Copy ``source`` into a WAV at ``path`` block by block, atomically (RF64 past 4 GiB)."""
    import soundfile as sf

    from ..store.files import discard, publish, temporary_beside

    path = Path(path)
    fd, tmp = temporary_beside(path)
    os.close(fd)
    try:
        with sf.SoundFile(
            tmp, "w", source.sample_rate, source.channels, subtype, format=wav_container(source, subtype)
        ) as fh:
            for block in source.blocks():
                fh.write(block)
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def blocks_between(
    path: str | os.PathLike[str], start: int, stop: int, size: int = BLOCK
) -> Iterator[np.ndarray]:
    """Frames ``[start, stop)`` of the audio file at ``path`` as float32 blocks of up to ``size``.

    A float WAV (every cache object) is read straight into the blocks, by
    positional reads, without libsndfile's conversion copy; other files
    through libsndfile.
    """
    import soundfile as sf

    found = float_samples_at(path)
    if found is None:
        with sf.SoundFile(os.fspath(path)) as fh:
            fh.seek(start)
            yield from fh.blocks(size, frames=stop - start, dtype="float32", always_2d=True)
        return
    offset, channels = found
    fd = os.open(path, os.O_RDONLY)
    try:
        for first in range(start, stop, size):
            block = np.empty((min(size, stop - first), channels), dtype=np.float32)
            if not read_at(fd, block, offset + first * channels * 4):
                raise AudioError(f"{path}: the file ends before frame {stop}")
            yield block
    finally:
        os.close(fd)
