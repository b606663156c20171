"""Mastering a long programme in parallel segments: every core limits, writes, meters and encodes.

One limiting pass over an hour streams through one core while LAME keeps
another busy for as long again. Here the programme is cut into segments of
:data:`SEGMENT_SECONDS` (fixed by the programme's length, never by the
machine, so the master is the same everywhere), and a pool of threads (the
heavy work, numpy, libsndfile and LAME, releases the GIL) takes them in
turn. Each segment task reads its part of the mix with a lead-in and a
tail, runs its own :class:`~mixdown.master.Limiter` (the lead-in brings it
to the state the whole-stream limiter has there: its release is 80 ms, the
lead-in over a second), and then

* writes the segment into the master's cache object and into the WAV file,
  each at its own offset (:class:`~mixdown.audio.WavWriter`), keeping a
  CRC of the bytes written to the WAV;
* meters it (:class:`~mixdown.loudness.PartMeter`: hop energies and true
  peak with its real neighbours; the hop energies from the mix's where the
  limiter left the signal alone), the parts joining into the programme's
  measurement;
* encodes it to MP3 frames without bit reservoir, with a few frames of
  audio on either side, keeping the frames that belong to it
  (:mod:`mixdown.mp3`); the frames are appended to the file in order as
  segments finish.

The spec checks run on the same threads as soon as what they read is
complete: each segment of the WAV is read back by CRC (its samples are
exactly what was metered; the header is read through libsndfile once the
file is closed), and each part of the MP3 is decoded from the file and
metered. Programmes under two segments take the streaming path
(:func:`~mixdown.master.master_stream`).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RenderFailed

__all__ = ["SEGMENT_SECONDS", "Segmented", "bounds", "grid", "lead_in", "usable"]

SEGMENT_SECONDS = 120.0
_LEAD_GRIDS = 2  # lead-in, in grid units (1.2 s at 48 kHz): limiter release, K-weighting, MP3 priming
_MP3_LEAD = 8  # MP3 frames encoded before a segment and dropped
_MP3_TAIL = 4  # and after it
# Frames a segment takes through all its steps at a time: 1 MiB of stereo float32. Each step
# costs a little per call (Python, a system call, LAME's entry); on an hour, 1 << 17 built in
# 24.1-24.8 s against 25.6-26.9 s for 1 << 16, and 1 << 14 was slower still, 1 << 20 no faster.
_CHUNK = 1 << 17
_TAIL = 8192  # input read past a segment: the limiter's look-ahead, the MP3 tail, the true peak's context


def grid(sr: int) -> int:
    """Segment boundaries fall on multiples of this: 100 ms hops, limiter rows and MP3 frames."""
    from .loudness import ROW, part_grid
    from .mp3 import samples_per_frame

    return math.lcm(part_grid(sr), ROW, samples_per_frame(sr))


def lead_in(sr: int) -> int:
    """Samples of programme before a part that bring its limiter and meter to the state of one
    pass from the start (a whole number of :func:`grid` units)."""
    return _LEAD_GRIDS * grid(sr)


def bounds(frames: int, sr: int, seconds: float | None = None) -> list[tuple[int, int]]:
    """The segments ``[(start, stop), …]`` of a programme of ``frames`` samples.

    Segments of :data:`SEGMENT_SECONDS`, but for a programme of three or
    more the last two are cut in quarters: the threads then run out of work
    within a short segment of each other, instead of one core encoding and
    checking a whole last segment alone.
    """
    step = grid(sr)
    length = max(step, round((seconds or SEGMENT_SECONDS) * sr / step) * step)
    starts = list(range(0, frames, length))
    if len(starts) > 2:
        starts = starts[:-2] + list(range(starts[-2], frames, max(step, length // 4 // step * step)))
    return [(start, min(stop, frames)) for start, stop in zip(starts, [*starts[1:], frames], strict=True)]


def usable(frames: int, sr: int, seconds: float | None = None) -> bool:
    """Whether a programme is long enough to be mastered in segments (two or more)."""
    return len(bounds(frames, sr, seconds)) >= 2


class Segmented:
    """The limiting passes of one master, run in parallel segments (see the module's notes).

    ``mix`` is the programme's float file; ``writer`` the master's cache
    object writer; ``wav`` a :class:`~mixdown.audio.WavWriter` (or None);
    ``mp3`` the MP3 file and settings ``(path, bitrate, vbr, quality)`` (or
    None); ``progress`` is told the frames done so far in the pass;
    ``mix_hops``, the mix's hop energies (its analysis), spare the master
    most of its K-weighting (:class:`_Energies`). Call it as a
    :data:`mixdown.master.Pass`; then close the WAV and
    :meth:`check_wav_header`.
    """

    def __init__(
        self,
        mix: Path,
        sr: int,
        channels: int,
        frames: int,
        ceiling_dbtp: float,
        *,
        writer: Any,
        wav: Any = None,
        mp3: tuple[Path, int, bool, int] | None = None,
        seconds: float | None = None,
        progress: Callable[[int], None] | None = None,
        mix_hops: np.ndarray | None = None,
    ) -> None:
        self.mix, self.sr, self.channels, self.frames = mix, sr, channels, frames
        # the mix's hop energies (its analysis): the master's, where the limiter leaves it alone
        self.mix_hops = mix_hops if mix_hops is not None and sr % 10 == 0 else None
        self.ceiling_dbtp = ceiling_dbtp
        self.writer, self.wav, self.mp3 = writer, wav, mp3
        self.bounds = bounds(frames, sr, seconds)
        self._lead = lead_in(sr)
        self._progress = progress or (lambda _: None)
        self._crcs: list[int] = [-1] * len(self.bounds)
        self._frames_mp3: list[tuple[bytes, np.ndarray]] = [(b"", np.zeros(1, np.int64))] * len(self.bounds)
        self._starts: list[np.ndarray] = []  # where each MP3 frame starts in the file, per segment spliced
        self._ends: list[int] = []  # and where each segment's frames end
        self._lock = threading.Lock()
        self._done = 0
        self.found: Any = None  # the last pass's measurement of the master (and of the WAV)
        self.mp3_found: Any = None  # and of its MP3, decoded

    # -- a pass --------------------------------------------------------------------

    def __call__(self, gain_db: float, aim: float, trim: float) -> tuple[Any, float, Callable[[], None]]:
        """Run one limiting pass over every segment; return (measurement, integrated, discard).

        Segments are taken in order, a core's worth at a time; as each is
        done its MP3 frames are appended to the file, and the checks of what
        is complete (its WAV bytes, the MP3 part before it) go to the same
        threads, ahead of the segments still to start.
        """
        from .audio import db_to_gain
        from .loudness import joined
        from .mp3 import samples_per_frame

        self.writer.reset()
        self._done, self._starts, self._ends = 0, [], []
        gain = np.float32(db_to_gain(gain_db))
        count = len(self.bounds)
        workers = max(1, min(os.cpu_count() or 1, count))
        parts: list[Any] = [None] * count
        checks: list[Future[Any]] = []
        mp3_parts: list[Future[Any]] = []
        pending: dict[int, Future[Any]] = {}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-segment") as pool:
            try:
                out = open(self.mp3[0], "wb") if self.mp3 is not None else None  # noqa: SIM115
                try:
                    for index in range(count):
                        for ahead in range(index, min(index + workers + 1, count)):
                            if ahead not in pending and parts[ahead] is None:
                                pending[ahead] = pool.submit(self._segment, ahead, gain, aim, trim)
                        parts[index] = pending.pop(index).result()
                        if self.wav is not None:
                            checks.append(pool.submit(self._wav_reads_back, index))
                        if out is not None:
                            self._splice(index, out)
                            if index:
                                mp3_parts.append(pool.submit(self._measure_mp3, index - 1))
                    if out is not None:
                        mp3_parts.append(pool.submit(self._measure_mp3, count - 1))
                finally:
                    if out is not None:
                        out.close()
                bad = [i for i, check in enumerate(checks) if not check.result()]
                measured = [future.result() for future in mp3_parts]
            except BaseException:
                for future in [*pending.values(), *checks, *mp3_parts]:
                    future.cancel()
                raise
        if bad:
            assert self.wav is not None
            raise RenderFailed(
                f"{self.wav.path.name}: the file does not read back as written from "
                f"{self.bounds[bad[0]][0] / self.sr:.1f} s (disk or filesystem error); nothing was published"
            )
        if self.mp3 is not None:
            total = sum(len(starts) for starts in self._starts)
            self.mp3_found = joined(self.sr, self.channels, total * samples_per_frame(self.sr), measured)
        found = self.found = joined(self.sr, self.channels, self.frames, parts)
        return found, found.integrated, lambda: None  # a new pass overwrites every segment

    def _splice(self, index: int, out: Any) -> None:
        """Append segment ``index``'s MP3 frames to the file, noting where each frame starts."""
        data, offsets = self._frames_mp3[index]
        base = self._ends[-1] if self._ends else 0
        self._starts.append(offsets[:-1] + base)
        self._ends.append(base + len(data))
        out.write(data)
        out.flush()
        self._frames_mp3[index] = (b"", offsets[:1])  # in the file now: memory stays at a few segments

    def _measure_mp3(self, index: int) -> tuple[np.ndarray, float, float]:
        """Decode and meter segment ``index``'s frames as the file holds them (the next one is spliced)."""
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
        """Whether segment ``index``'s bytes read back from the WAV as they were written (CRC-32)."""
        assert self.wav is not None
        start, stop = self.bounds[index]
        return bool(self.wav.crc(start, stop - start) == self._crcs[index])

    def _segment(
        self, index: int, gain: np.float32, aim: float, trim: float
    ) -> tuple[np.ndarray, float, float]:
        """Limit, write, encode and meter segment ``index``, a chunk at a time (each chunk goes
        through every step while it is in the CPU's cache)."""
        from .audio import blocks_between
        from .loudness import ENVELOPE_AFTER, PartMeter
        from .master import Limiter

        start, stop = self.bounds[index]
        n = stop - start
        lead = min(start, self._lead)
        end = min(stop + _TAIL, self.frames)
        limiter = Limiter(self.sr, self.channels, ceiling_dbtp=self.ceiling_dbtp)
        limiter.aim *= aim
        known = None
        if self.mix_hops is not None:
            known = _Energies(self, start, lead, n, float(gain) * trim)
        meter = PartMeter(self.sr, self.channels, lead, n, energies=known is None)
        mp3 = _SegmentMp3(self, index, lead) if self.mp3 is not None else None
        at, crc = 0, 0  # output samples so far (from the lead-in's start), CRC of the WAV bytes

        def take(y: np.ndarray) -> None:
            nonlocal at, crc
            if trim != 1.0:
                y = y * np.float32(trim)  # not in place: the limiter may hand out views of its input
            body = y[max(0, lead - at) : max(0, lead + n - at)]
            if len(body):
                position = start + max(0, at - lead)
                self.writer.write_at(position, body)
                if self.wav is not None:
                    crc = self.wav.write_at(position, body, crc)
            if mp3 is not None:
                mp3.take(y, at)
            if known is not None:
                known.take(y, at, limiter.touched)
            meter.add(y)
            at += len(y)

        try:
            for x in blocks_between(self.mix, start - lead, end, _CHUNK):
                x *= gain
                take(limiter.process(x))
            if end == self.frames:
                take(limiter.flush())
            if at < lead + n + (ENVELOPE_AFTER if stop < self.frames else 0):
                raise AssertionError("a segment's tail is shorter than the limiter's look-ahead")
            if mp3 is not None:
                self._frames_mp3[index] = mp3.frames(at)
        finally:
            if mp3 is not None:
                mp3.encoder.close()
        self._crcs[index] = crc
        part = meter.result()
        if known is not None:
            part = (known.result(), *part[1:])
        with self._lock:
            self._done += n
            self._progress(self._done)
        return part

    # -- the files -------------------------------------------------------------------

    def check_wav_header(self) -> None:
        """The closed WAV's header, as libsndfile reads it, describes what was written.

        Its samples were read back segment by segment during the pass (by
        CRC against the bytes written: exactly the samples that were metered).
        """
        import soundfile as sf

        assert self.wav is not None
        info = sf.info(os.fspath(self.wav.path))
        found = (info.frames, info.channels, info.samplerate, info.subtype)
        if found != (self.frames, self.channels, self.sr, self.wav.subtype):
            raise RenderFailed(f"{self.wav.path.name}: the file's header does not describe what was written")


class _SegmentMp3:
    """The MP3 frames of one segment, encoded as its output is made.

    LAME takes the segment with a few frames of audio on either side
    (:data:`_MP3_LEAD` before, :data:`_MP3_TAIL` after, but for the ends of
    the programme); the frames that belong to the segment are kept.
    """

    def __init__(self, segmented: Segmented, index: int, lead: int) -> None:
        from . import mp3

        assert segmented.mp3 is not None
        _, bitrate, vbr, quality = segmented.mp3
        start, stop = segmented.bounds[index]
        self.index, self.n, self.last = index, stop - start, stop == segmented.frames
        self.spf = spf = mp3.samples_per_frame(segmented.sr)
        before = min(lead, _MP3_LEAD * spf)
        self.skip = before // spf  # frames before the segment's own
        # the output samples encoded (counted from the lead-in's start)
        self.first, self.stop = lead - before, lead + self.n + (0 if self.last else _MP3_TAIL * spf)
        self.encoder = mp3.Encoder(
            segmented.sr, segmented.channels, bitrate=bitrate, vbr=vbr, quality=quality
        )
        self.data: list[bytes] = []

    def take(self, y: np.ndarray, at: int) -> None:
        """Encode what of the output ``y`` (which starts at output sample ``at``) is in range."""
        part = y[max(0, self.first - at) : max(0, self.stop - at)]
        if len(part):
            self.data.append(self.encoder.encode(part))

    def frames(self, made: int) -> tuple[bytes, np.ndarray]:
        """The segment's frames and where each starts (with the end), once ``made`` output
        samples have been taken."""
        from . import mp3

        if made < self.stop:
            raise AssertionError("a segment's tail is shorter than its MP3 tail")
        data = b"".join([*self.data, self.encoder.finish()])
        offsets, _, _, _ = mp3.frame_index(data)
        keep = len(offsets) - 1 if self.last else self.skip + self.n // self.spf
        if keep > len(offsets) - 1:
            raise RenderFailed(
                f"MP3: segment {self.index} came out {len(offsets) - 1} frames long, short of {keep}"
            )
        kept = offsets[self.skip : keep + 1]
        return data[kept[0] : kept[-1]], kept - kept[0]


class _Energies:
    """A segment's hop energies (as :class:`~mixdown.loudness.PartMeter` reads them), from the mix's.

    Where the limiter leaves the signal alone, the master is the mix times
    the pass's gain, and K-weighting is linear: a hop's energy there is the
    mix's (the mix stage measured it) times the gain squared. Only the hops
    the limiter touched, and the hop after each (where the K-weighting's
    memory of them dies away: its response falls by 1e-11 in 100 ms), are
    K-weighted from the master as written, each run of them primed by the
    hop before it. In the longform benchmark's hour of speech and music,
    mastered to -16 LUFS, that leaves 42 % of the hops to the mix's figures.
    """

    def __init__(self, segmented: Segmented, start: int, lead: int, n: int, gain: float) -> None:
        assert segmented.mix_hops is not None
        self.segmented, self.start, self.lead = segmented, start, lead
        self.hop = segmented.sr // 10
        first, count = start // self.hop, n // self.hop
        self.hops = segmented.mix_hops[first : first + count] * (gain * gain)
        self.dirty = np.zeros(count, dtype=bool)
        # the lead-in's last hop of output: primes the K-weighting for a touched first hop
        self.before = np.zeros((self.hop if lead >= self.hop else 0, segmented.channels), np.float32)

    def take(self, y: np.ndarray, at: int, touched: np.ndarray) -> None:
        """Note which hops output ``y`` (from output sample ``at``; ``touched``: per row of it,
        whether the limiter changed it) leaves to be metered."""
        from .loudness import ROW

        origin = self.lead - len(self.before)  # where the kept hop starts in the output
        lo, hi = max(at, origin), min(at + len(y), self.lead)
        if lo < hi:
            self.before[lo - origin : hi - origin] = y[lo - at : hi - at]
        rows = np.flatnonzero(touched[: -(-len(y) // ROW)])
        if not len(rows):
            return
        first = at + rows * ROW - self.lead  # the rows' first and last samples, in the part
        hops = np.concatenate([first // self.hop, (first + ROW - 1) // self.hop + 1, first // self.hop + 1])
        hops = hops[(hops >= 0) & (hops < len(self.dirty))]
        self.dirty[hops] = True

    def result(self) -> np.ndarray:
        """The segment's hop energies."""
        from .loudness import Meter

        hops, segmented = self.hops, self.segmented
        marks = np.flatnonzero(np.diff(np.concatenate([[False], self.dirty, [False]]).astype(np.int8)))
        for a, b in zip(marks[::2], marks[1::2], strict=True):  # runs [a, b) of touched hops
            meter = Meter(segmented.sr, segmented.channels, true_peak=False, threads=False, peaks=False)
            if a > 0 or len(self.before):  # primed by the hop before (none at the programme's start)
                for block in self._read(a - 1, a) if a > 0 else [self.before]:
                    meter.add(block)
                meter.restart()
            for block in self._read(a, b):
                meter.add(block)
            hops[a:b] = meter.hop_energies()
        return hops

    def _read(self, a: int, b: int) -> Iterator[np.ndarray]:
        """The master's hops ``[a, b)`` of the part, as written."""
        blocks: Iterator[np.ndarray] = self.segmented.writer.blocks(
            self.start + a * self.hop, self.start + b * self.hop
        )
        return blocks
