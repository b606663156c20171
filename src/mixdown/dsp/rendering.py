"""Rendering a laid-out :class:`~mixdown.dsp.mixer.Mix`: threads, buses and the voice scratch file.

:class:`Rendering` runs the voice pass (into a scratch file, in memory when it
fits: :func:`scratch_dir`) that the ducker needs, then mixes any range of the
programme block by block; :class:`Bus` sums the clips of one bus.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from ..codecs.wav import read_at, write_at
from ..errors import AudioError
from .bed import Music
from .ducking import Ducker, section_ducking
from .items import Placed, Stems
from .signal import BLOCK, gain_frames

if TYPE_CHECKING:
    from .mixer import Mix

__all__ = ["Bus", "Rendering", "ducked", "scratch_dir", "voice_channels", "voice_powers"]

_AHEAD = 20.0  # s: clips starting this soon are made ahead on the mixer's threads


class Rendering:
    """A :class:`Mix` ready to be mixed over any range (see :meth:`Mix.rendering`).

    With a bed to duck, the voice pass has run: the voice bus is in an
    anonymous temporary file (gone when this closes) and the ducker is set.
    :meth:`blocks` may then be called for any ranges, from any threads: the
    samples do not depend on how the programme is cut.
    """

    def __init__(
        self,
        program: Mix,
        pool: Executor | None,
        parts: Sequence[tuple[int, int]],
        progress: Callable[[int], None] | None,
        powers: np.ndarray | None = None,
    ) -> None:
        self.program, self._pool = program, pool
        settings, n = program.settings, program.frames
        self.music = (
            Music(program.bed, program.sections, program._timeline.starts, n, settings)
            if program.bed
            else None
        )
        self._ducked = ducked(program)
        self._scratch: Any = None
        self._duck: Ducker | None = None
        self.voice_channels = voice_channels(program)
        _check_parts(parts, n, program.hop, whole=powers is None and self._ducked)
        self.powers: np.ndarray | None = None  # the voice bus's power per ducking frame, once measured
        if not self._ducked:
            return
        self._scratch = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
            prefix="mixdown-voice-", dir=scratch_dir(n * self.voice_channels * 4)
        )
        try:
            self.powers = self._voice_pass(parts, progress or (lambda _: None), powers)
            self._duck = Ducker(
                self.powers / (program.hop * self.voice_channels),  # mean square per sample of one channel
                program.sections,
                program._timeline.starts,
                n,
                program.hop,
                settings,
            )
        except BaseException:
            self.close()
            raise

    def _voice_pass(
        self, parts: Sequence[tuple[int, int]], progress: Callable[[int], None], known: np.ndarray | None
    ) -> np.ndarray:
        """Mix the voice bus over ``parts`` into the scratch file, on a thread per core; return each
        frame's power (``known``'s outside them)."""
        program, hop = self.program, self.program.hop
        powers = np.zeros(-(-program.frames // hop)) if known is None else known.astype(np.float64, copy=True)
        if len(powers) != -(-program.frames // hop):
            raise ValueError(f"mix: {len(powers)} voice powers given for {-(-program.frames // hop)} frames")

        def voice(part: tuple[int, int]) -> None:
            start, stop = part
            bus = Bus(
                _overlapping(program._timeline.voice, start, stop),
                self.voice_channels,
                self._pool,
                program.sample_rate,
            )
            _voice_pass(bus, start, stop, hop, self._scratch.fileno(), powers, progress)

        workers = min(len(parts), os.cpu_count() or 1)
        if workers > 1:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-voice") as threads:
                for future in [threads.submit(voice, part) for part in parts]:
                    future.result()
        else:
            for part in parts:
                voice(part)
        return powers

    def __enter__(self) -> Rendering:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    def blocks(self, start: int, stop: int, size: int = BLOCK) -> Iterator[tuple[int, Stems]]:
        """Yield ``(position, stems)`` for consecutive blocks of ``size`` frames over ``[start, stop)``."""
        program = self.program
        n, channels, sr, hop = program.frames, program.channels, program.sample_rate, program.hop
        if not 0 <= start <= stop <= n or (self._ducked and start % hop):
            raise ValueError(
                f"mix: cannot render {start}..{stop} of {n} frames (starts on a {hop}-frame hop)"
            )
        size = max(hop, size // hop * hop)  # blocks fall on ducking frames
        timeline, pool, music = program._timeline, self._pool, self.music
        sfx = Bus(_overlapping(timeline.sfx, start, stop), channels, pool, sr)
        starts = list(range(start, stop, size))
        if not self._ducked:
            speech = Bus(_overlapping(timeline.voice, start, stop), channels, pool, sr)
            for first in starts:
                last = min(first + size, stop)
                bed = music.render(first, last) if music else np.zeros((last - first, channels), np.float32)
                yield first, Stems(speech.render(first, last), sfx.render(first, last), bed, sr)
            return
        assert music is not None and self._duck is not None and self._scratch is not None
        duck, fd, stored = self._duck, self._scratch.fileno(), self.voice_channels

        def ducked_bed(first: int, last: int) -> np.ndarray:
            bed = music.render(first, last)
            gain_frames(bed, duck.gain(first, last), out=bed)
            return bed

        # The ducked bed of the next block is made on a thread of its own while this one is
        # mixed (one worker: the bed's blocks are made in order).
        beds = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mixdown-bed")
        try:
            ahead = [beds.submit(ducked_bed, first, min(first + size, stop)) for first in starts[:2]]
            for index, first in enumerate(starts):
                last = min(first + size, stop)
                voice = np.empty((last - first, stored), dtype=np.float32)
                if not read_at(fd, voice, first * stored * 4):
                    raise AudioError("mix: the voice bus's temporary file ended early (disk full?)")
                if stored < channels:  # a mono bus on every channel (a view: not written to)
                    voice = np.broadcast_to(voice, (last - first, channels))
                bed = ahead.pop(0).result()
                if index + 2 < len(starts):
                    later = starts[index + 2]
                    ahead.append(beds.submit(ducked_bed, later, min(later + size, stop)))
                yield first, Stems(voice, sfx.render(first, last), bed, sr)
        finally:
            beds.shutdown(cancel_futures=True)


def _check_parts(parts: Sequence[tuple[int, int]], n: int, hop: int, *, whole: bool = True) -> None:
    """Refuse ``parts`` unless they are in order within ``[0, n)`` without overlapping, each
    starting on a ``hop``, and (``whole``) tile it."""
    ends = [0, *(b for _, b in parts)]
    apart = all(ends[i] <= a <= b <= n for i, (a, b) in enumerate(parts))
    tiled = not whole or sum(b - a for a, b in parts) == n
    if [p for p in parts if p[0] % hop] or not apart or not tiled:
        raise ValueError(
            f"mix: parts {list(parts)} must {'tile' if whole else 'fall within'} 0..{n} in order, "
            f"each starting on a {hop}-frame hop"
        )


_MEMORY = "/dev/shm"  # a memory filesystem (tmpfs) on Linux
_MEMORY_SHARE = 4  # the scratch lives in memory if it takes at most this share of what is free


def scratch_dir(size: int) -> str | None:
    """Where a temporary file of ``size`` bytes that is read back within seconds goes.

    In memory (``/dev/shm``) when it takes at most a quarter of the memory
    available and of that filesystem's free space: the voice bus of an
    hour's programme (0.7 GB in mono, 1.4 GB in stereo) is written and read
    back while the disk is busy making the mix durable, and on disk it would
    compete with those writes for a file nobody keeps. A larger one (a
    ten-hour audiobook on a laptop) goes to the temporary directory, as does
    any where there is no such filesystem.
    """
    try:
        stat = os.statvfs(_MEMORY)
        with open("/proc/meminfo", encoding="ascii") as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return _MEMORY if size * _MEMORY_SHARE <= min(available, stat.f_bavail * stat.f_frsize) else None


def _overlapping(clips: Sequence[Placed], start: int, stop: int) -> list[Placed]:
    """The clips that sound in ``[start, stop)``."""
    return [clip for clip in clips if clip.start < stop and clip.end > start]


def _voice_pass(
    voice: Bus, start: int, stop: int, hop: int, fd: int, powers: np.ndarray, progress: Callable[[int], None]
) -> None:
    """Mix the voice bus over ``[start, stop)`` into the file ``fd`` at its place; note each
    ``hop``-frame frame's sum of squares (over channels) in ``powers``."""
    size = max(hop, BLOCK // hop * hop)
    for first in range(start, stop, size):
        last = min(first + size, stop)
        block = voice.render(first, last)
        write_at(fd, block.data.cast("B"), first * block.shape[1] * 4)  # a fresh, contiguous float32 array
        _powers(block, hop, powers, first // hop)
        progress(last - first)


def _powers(block: np.ndarray, hop: int, powers: np.ndarray, at: int) -> None:
    """Note each ``hop``-frame frame's sum of squares (over channels) of ``block`` at ``powers[at:]``."""
    frames = -(-len(block) // hop)
    squares = np.zeros((frames * hop, block.shape[1]), dtype=np.float32)
    np.square(block, out=squares[: len(block)])
    powers[at : at + frames] = squares.reshape(frames, -1).sum(axis=1, dtype=np.float64)


def ducked(program: Mix) -> bool:
    """Whether ``program``'s music is ducked under its voice bus."""
    return program.bed is not None and any(
        d.duck_db < 0 for d in section_ducking(program.sections, program.settings)
    )


def voice_channels(program: Mix) -> int:
    """The channels ``program``'s voice bus is mixed in.

    A voice bus of mono lines (as TTS makes them) is kept mono until it is
    mixed: half the scratch file and half the summing; the mix adds it to
    each channel.
    """
    lines = program._timeline.voice
    return 1 if lines and all(c.mono for c in lines) else program.channels


def voice_powers(program: Mix, start: int, stop: int) -> np.ndarray:
    """The voice bus's power per ducking frame over ``[start, stop)`` (``start`` on a frame), as
    :attr:`Rendering.powers` holds them: what an edit's splice measures again."""
    hop = program.hop
    bus = Bus(_overlapping(program._timeline.voice, start, stop), voice_channels(program))
    powers = np.zeros(-(-(stop - start) // hop))
    size = max(hop, BLOCK // hop * hop)
    for first in range(start, stop, size):
        _powers(bus.render(first, min(first + size, stop)), hop, powers, (first - start) // hop)
    return powers


class Bus:
    """Sums placed clips block by block, making each when first needed and dropping it after.

    With a thread pool, clips that start within :data:`_AHEAD` seconds of the
    block being mixed are made on its threads meanwhile (reading, resampling,
    compressing and leveling a voice line release the GIL), in order, so
    the result is the same.
    """

    def __init__(
        self, clips: Sequence[Placed], channels: int, pool: Executor | None = None, sr: int = 0
    ) -> None:
        self.channels = channels
        self._pending = sorted((c for c in clips if c.length > 0), key=lambda c: c.start)
        self._next = 0
        self._active: list[tuple[Placed, np.ndarray]] = []
        self._pool, self._ahead = pool, int(_AHEAD * sr)
        self._made: dict[int, Future[np.ndarray]] = {}
        self._submitted = 0

    def render(self, start: int, stop: int) -> np.ndarray:
        out = np.zeros((stop - start, self.channels), dtype=np.float32)
        pending = self._pending
        if self._pool is not None:
            while self._submitted < len(pending) and pending[self._submitted].start < stop + self._ahead:
                self._made[self._submitted] = self._pool.submit(pending[self._submitted].make)
                self._submitted += 1
        while self._next < len(pending) and pending[self._next].start < stop:
            clip = pending[self._next]
            made = self._made.pop(self._next, None)
            self._active.append((clip, made.result() if made is not None else clip.make()))
            self._next += 1
        keep = []
        for clip, y in self._active:
            lo, hi = max(clip.start, start), min(clip.end, stop)
            if lo < hi:
                out[lo - start : hi - start] += y[lo - clip.start : hi - clip.start]
            if clip.end > stop:
                keep.append((clip, y))
        self._active = keep
        return out
