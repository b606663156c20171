"""MP3 for long programmes: parts encoded on every core and spliced, and checked in parallel.

LAME keeps one core busy for 45-55 s per hour of 48 kHz stereo, the
slowest step of mastering a long programme. :func:`encode` drives LAME
through its own API (the library ``lameenc`` is built from, loaded with
``ctypes``) with the bit reservoir off: every frame then carries all of its
own data, so parts encoded side by side, each with a few frames of the
audio before and after it, splice into one stream at frame boundaries
(:func:`frame_index` finds them). A decoder reads the spliced stream as one;
only the encoder's choices differ at a splice, inaudibly.

:func:`measure` decodes an MP3 in parts on threads (libsndfile's mpg123
releases the GIL), each part starting early enough (two frames, plus the
bit reservoir's 511 bytes) that the decoder's state at its first sample is
exactly that of a decode from the start, and meters the parts as
:func:`mixdown.dsp.loudness.part_loudness` describes. It reads any MP3 of
Layer III frames, with a reservoir or without.
"""

from __future__ import annotations

import ctypes
import io
import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RenderFailed

__all__ = ["Encoder", "available", "encode", "frame_index", "measure", "measure_part", "samples_per_frame"]

_RESERVOIR = 511  # bytes: how far back a frame's data may start (main_data_begin), when it has a reservoir
_PART_SECONDS = 60.0  # a part of a parallel check
_INIT = threading.Lock()  # LAME's tables are set up by the first lame_init_params: one at a time

_BITRATES = {  # kbps by bitrate index, Layer III
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


@lru_cache(maxsize=1)
def _lame() -> Any:
    """LAME's C API from the ``lameenc`` extension (which links LAME in), or None."""
    try:
        import lameenc

        lib = ctypes.CDLL(lameenc.__file__)
        void, num = ctypes.c_void_p, ctypes.c_int
        lib.lame_init.restype = void
        lib.lame_init.argtypes = []
        for name in (
            "lame_set_in_samplerate",
            "lame_set_out_samplerate",
            "lame_set_num_channels",
            "lame_set_brate",
            "lame_set_quality",
            "lame_set_disable_reservoir",
            "lame_set_bWriteVbrTag",
            "lame_set_VBR",
            "lame_set_VBR_mean_bitrate_kbps",
        ):
            getattr(lib, name).argtypes = [void, num]
        lib.lame_set_scale.argtypes = [void, ctypes.c_float]
        lib.lame_get_scale.argtypes = [void]
        lib.lame_get_scale.restype = ctypes.c_float
        lib.lame_init_params.argtypes = [void]
        lib.lame_close.argtypes = [void]
        lib.lame_encode_buffer_interleaved_ieee_float.argtypes = [void, void, num, void, num]
        lib.lame_encode_buffer_ieee_float.argtypes = [void, void, void, num, void, num]
        lib.lame_encode_flush.argtypes = [void, void, num]
    except (ImportError, OSError, AttributeError):
        return None
    return lib


def available() -> bool:
    """Whether parts can be encoded (LAME's API is reachable)."""
    return _lame() is not None


def samples_per_frame(sr: int) -> int:
    """Samples per Layer III frame at ``sr``: 1152 (MPEG-1, 32 kHz and up), else 576."""
    return 1152 if sr >= 32000 else 576


def encode(samples: np.ndarray, sr: int, *, bitrate: int, vbr: bool, quality: int) -> bytes:
    """Encode float samples ``[shape=(n, channels)]`` into MP3 frames with no bit reservoir and no tag frame."""
    encoder = Encoder(sr, samples.shape[1], bitrate=bitrate, vbr=vbr, quality=quality)
    try:
        return encoder.encode(samples) + encoder.finish()
    finally:
        encoder.close()


class Encoder:
    """A LAME encoder fed float blocks ``[shape=(n, channels)]`` in order (see :func:`encode`).

    LAME takes the floats as they are (its ``ieee_float`` input): no 16-bit
    rounding on the way, and no conversion pass here. By default frames have
    no bit reservoir (each stands on its own: parts splice); there is no
    tag frame. The level is the input's: LAME's bitrate presets scale the
    input down (by 0.95 at 128 kbps, 0.97 at 192) to spare decoders from
    clipping, which would leave every MP3 0.3-0.45 dB under the loudness it
    was mastered to; the master's true-peak limiting already leaves room
    for the codec, and the spec check reads the decoded peaks.
    """

    _STEP = 1 << 16  # frames per call into LAME

    def __init__(
        self, sr: int, channels: int, *, bitrate: int, vbr: bool, quality: int, reservoir: bool = False
    ) -> None:
        lib = _lame()
        if lib is None:
            raise RenderFailed("MP3: LAME's API is not reachable through lameenc; reinstall mixdown")
        self._lib, self.channels = lib, channels
        settings = (sr, channels, bitrate, vbr, quality, reservoir)
        self._gfp = _configured(lib, *settings, scale=_unity_scale(*settings))
        self._buffer = ctypes.create_string_buffer(self._STEP * 5 // 4 + 7200)

    def encode(self, samples: np.ndarray) -> bytes:
        """The frames completed by the next ``samples``."""
        pcm = np.ascontiguousarray(samples, dtype=np.float32)
        out = bytearray()
        for first in range(0, len(pcm), self._STEP):
            part = pcm[first : first + self._STEP]  # rows of a C-contiguous array: contiguous
            if self.channels == 1:  # LAME's interleaved entry reads two samples a frame, always
                n = self._lib.lame_encode_buffer_ieee_float(
                    self._gfp, part.ctypes.data, None, len(part), self._buffer, len(self._buffer)
                )
            else:
                n = self._lib.lame_encode_buffer_interleaved_ieee_float(
                    self._gfp, part.ctypes.data, len(part), self._buffer, len(self._buffer)
                )
            if n < 0:
                raise RenderFailed(f"MP3: LAME failed ({n})")
            out += ctypes.string_at(self._buffer, n)
        return bytes(out)

    def finish(self) -> bytes:
        """The last frames (the input ends here)."""
        n = self._lib.lame_encode_flush(self._gfp, self._buffer, len(self._buffer))
        if n < 0:
            raise RenderFailed(f"MP3: LAME failed to finish ({n})")
        return ctypes.string_at(self._buffer, n)

    def close(self) -> None:
        if self._gfp:
            self._lib.lame_close(self._gfp)
            self._gfp = None


def _configured(
    lib: Any, sr: int, channels: int, bitrate: int, vbr: bool, quality: int, reservoir: bool, *, scale: float
) -> Any:
    """A LAME encoder with these settings, its parameters initialised (close it with ``lame_close``)."""
    gfp = lib.lame_init()
    try:
        lib.lame_set_in_samplerate(gfp, sr)
        lib.lame_set_out_samplerate(gfp, sr)
        lib.lame_set_num_channels(gfp, channels)
        lib.lame_set_quality(gfp, quality)
        lib.lame_set_disable_reservoir(gfp, 0 if reservoir else 1)
        lib.lame_set_bWriteVbrTag(gfp, 0)
        lib.lame_set_scale(gfp, scale)
        if vbr:
            lib.lame_set_VBR(gfp, 4)  # vbr_mtrh, as lameenc's set_vbr(4)
            lib.lame_set_VBR_mean_bitrate_kbps(gfp, bitrate)
        else:
            lib.lame_set_brate(gfp, bitrate)
        with _INIT:
            if lib.lame_init_params(gfp) < 0:
                raise RenderFailed(f"MP3: LAME refused {sr} Hz, {channels} channels at {bitrate} kbps")
    except BaseException:
        lib.lame_close(gfp)
        raise
    return gfp


@lru_cache(maxsize=32)
def _unity_scale(sr: int, channels: int, bitrate: int, vbr: bool, quality: int, reservoir: bool) -> float:
    """The input scale that cancels what LAME's preset for these settings multiplies it by."""
    lib = _lame()
    gfp = _configured(lib, sr, channels, bitrate, vbr, quality, reservoir, scale=1.0)
    try:
        preset = float(lib.lame_get_scale(gfp))
    finally:
        lib.lame_close(gfp)
    return 1.0 / preset if preset > 0 else 1.0


def frame_index(data: bytes | memoryview | Any) -> tuple[np.ndarray, int, int, int]:
    """The byte offset of every MPEG audio Layer III frame in ``data`` (which starts with one).

    Returns ``(offsets, samples_per_frame, sample_rate, channels)``; ``offsets``
    has one more entry than there are frames: the end of the last. Raises
    :class:`RenderFailed` on anything that is not a run of Layer III frames.
    """
    offsets: list[int] = []
    pos, size = 0, len(data)
    spf = sr = channels = 0
    while pos + 4 <= size:
        b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
        version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
        index, rate = b2 >> 4, (b2 >> 2) & 3
        if (
            data[pos] != 0xFF
            or (b1 & 0xE0) != 0xE0
            or layer != 1
            or version == 1
            or index in (0, 15)
            or rate == 3
        ):
            raise RenderFailed(f"MP3: no Layer III frame at byte {pos}")
        mpeg1 = version == 3
        kbps = _BITRATES[1 if mpeg1 else 2][index]
        sr = _RATES[version][rate]
        spf = 1152 if mpeg1 else 576
        channels = 1 if (b3 >> 6) == 3 else 2
        offsets.append(pos)
        pos += (144000 if mpeg1 else 72000) * kbps // sr + ((b2 >> 1) & 1)
    offsets.append(min(pos, size))
    return np.array(offsets, dtype=np.int64), spf, sr, channels


def decode(data: bytes, channels: int) -> np.ndarray:
    """Decode MP3 frames (bytes starting on a frame) to float32 ``[shape=(n, channels)]``."""
    blocks = list(decoded(data, channels))
    return np.concatenate(blocks) if blocks else np.zeros((0, channels), dtype=np.float32)


def decoded(data: bytes, channels: int, size: int = 1 << 16) -> Iterator[np.ndarray]:
    """:func:`decode` in float32 blocks of up to ``size`` frames: every frame's samples, exactly.

    libsndfile reads a stream without a Xing/Info frame only as far as its
    length estimate, the data's size over its first frame's size: short by
    up to a frame in nine wherever frames differ in size (padded frames at
    44.1 and 22.05 kHz, VBR). When the decoder stops short, it starts again
    a few frames (:func:`priming`) before the first frame it did not
    finish, on the smallest frame there (so that the estimate reaches
    further), and the samples of the frames decoded twice are dropped. It
    decodes at most :data:`_RUN_FRAMES` frames at a time the same way, so
    that a long file takes little memory.
    """
    if not data:
        return
    offsets, spf, _, _ = frame_index(data)
    count, done, begin = len(offsets) - 1, 0, 0
    while done < count:
        upto = min(count, begin + _RUN_FRAMES)
        block = _decode_run(data[int(offsets[begin]) : int(offsets[upto])], channels)
        reached = min(upto, begin + len(block) // spf)  # frames finished, from the stream's start
        if reached <= done:
            raise RenderFailed(f"MP3: the decoder stopped at frame {done} of {count}")
        keep = block[(done - begin) * spf : None if reached >= count else (reached - begin) * spf]
        for first in range(0, len(keep), size):
            yield keep[first : first + size]
        done = reached
        begin = _restart(offsets, done)


def _decode_run(data: bytes, channels: int) -> np.ndarray:
    """What libsndfile decodes of ``data`` (frames, from the first) before it stops."""
    import soundfile as sf

    with sf.SoundFile(io.BytesIO(data)) as fh:
        # In one read as far as libsndfile expects the stream to go: read in blocks, its mpg123
        # prints a spurious "part2_3_length ... too large" error wherever a block ends in some
        # frames of a stream with a bit reservoir (the samples are the same to the last bit but one).
        blocks = [fh.read(dtype="float32", always_2d=True)]
        while len(block := fh.read(1 << 16, dtype="float32", always_2d=True)):  # a libsndfile that reads on
            blocks.append(block)
    if blocks[0].shape[1] != channels:
        raise RenderFailed(f"MP3: {blocks[0].shape[1]} channels decoded where {channels} were written")
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


_RESTART_SEARCH = 32  # frames before the earliest restart searched for the smallest one
_RUN_FRAMES = 1 << 12  # frames decoded at a time (98 s at 48 kHz: 38 MB of stereo float32)


def _restart(offsets: np.ndarray, frame: int) -> int:
    """The frame to decode from again to have ``frame`` exactly: at least :func:`priming` before it,
    the smallest of up to :data:`_RESTART_SEARCH` there (the latest of equals)."""
    latest = frame - priming(offsets)
    if latest <= 0:
        return 0
    first = max(0, latest - _RESTART_SEARCH)
    sizes = np.diff(offsets[first : latest + 2])
    return first + len(sizes) - 1 - int(np.argmin(sizes[::-1]))


def priming(offsets: np.ndarray) -> int:
    """Frames to decode and drop before a part: two, and enough for the bit reservoir's reach."""
    smallest = int(np.diff(offsets).min()) if len(offsets) > 1 else 1
    return 2 + -(-_RESERVOIR // max(smallest, 1))


def part_grid_frames(spf: int, sr: int) -> int:
    """Parts start on multiples of this many frames: whole frames and whole 100 ms hops."""
    from ..dsp.loudness import part_grid

    return math.lcm(spf, part_grid(sr)) // spf


def measure_part(
    read: Callable[[int, int], bytes],
    offsets: np.ndarray,
    spf: int,
    sr: int,
    channels: int,
    first: int,
    last: int,
) -> tuple[np.ndarray, float, float]:
    """Decode and meter frames ``[first, last)`` of a stream (see :func:`mixdown.dsp.loudness.part_loudness`).

    ``read(begin, end)`` returns the stream's bytes ``[begin, end)``;
    ``offsets`` are the frames' (:func:`frame_index`), as far as they are
    known: to frame ``last + 1`` at least, or to the end of the stream.
    """
    from ..dsp.loudness import PartMeter

    count = len(offsets) - 1
    lead = min(first, 2 * part_grid_frames(spf, sr))  # frames metered only to prime the K-weighting
    begin = max(0, first - lead - priming(offsets))
    end = min(count, last + 1)  # a frame more: the true peak's context after the part
    skip = (first - lead - begin) * spf  # the decoder's priming
    meter = PartMeter(sr, channels, lead * spf, (last - first) * spf)
    for block in decoded(read(int(offsets[begin]), int(offsets[end])), channels):
        meter.add(block[skip:])
        skip = max(0, skip - len(block))
    return meter.result()


def measure(path: Path) -> Any:
    """Decode and measure the MP3 at ``path`` in parallel parts (BS.1770, true peak).

    The parts' loudness joins into what one pass over the whole file reads
    (:func:`mixdown.dsp.loudness.joined`). Returns None for a file that is not
    a plain run of frames (tags, a Xing/Info frame, whose decoders trim):
    measure it in one pass.
    """
    import mmap

    from ..dsp.loudness import joined

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            offsets, spf, sr, channels = frame_index(data)
        except RenderFailed:
            return None
        count = len(offsets) - 1
        head = data[: min(offsets[1], 64)] if count else b""
        if count < 1 or b"Xing" in head or b"Info" in head:  # where the tag sits, after the side info
            return None
        grid = part_grid_frames(spf, sr)
        per = max(grid, round(_PART_SECONDS * sr / spf / grid) * grid)
        starts = list(range(0, count, per))

        def part(first: int) -> tuple[np.ndarray, float, float]:
            return measure_part(
                lambda a, b: bytes(data[a:b]), offsets, spf, sr, channels, first, min(first + per, count)
            )

        workers = min(os.cpu_count() or 1, len(starts))
        if workers < 2:
            parts = [part(first) for first in starts]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-check") as pool:
                parts = list(pool.map(part, starts))
    return joined(sr, channels, count * spf, parts)
