"""Mix stage: lay voice lines, SFX and a music bed out on one timeline.

:func:`mix` turns a sequence of :class:`Section` objects (and an optional
:class:`Bed`) into three equal-length :class:`Stems`: ``voice``, ``sfx`` and
``music``, each float32 ``[shape=(n, channels)]`` at ``settings.sample_rate``.
:class:`Mix` yields the same stems block by block for programmes of any
length (items given as :class:`Lazy` are read only while they sound).
No bus is clipped or normalised here; that is the master stage's job.

Timeline
--------
Every input is resampled to ``settings.sample_rate``, mapped to
``settings.channels`` and scaled by its ``gain_db`` before it is placed.
Voice lines are first processed by ``settings.speech`` (see
:mod:`mixdown.dsp.speech`) and levelled to ``settings.line_lufs``, at their own
rate. A section's ``at`` pins its first item to that time; the gap before it
stretches (the mix fails if what comes before runs past it).
Times are rounded to whole samples once per step, so positions are exact:

- the first item starts at ``lead_in`` when there is a bed, else at 0;
- items of a section follow each other with ``line_gap`` of silence between
  them; a :class:`Sting` occupies its own length like a line;
- a :class:`Pause` adds its seconds where it stands and adds no gap of its
  own: ``line, Pause(1.0), line`` leaves ``line_gap + 1.0`` s of silence, a
  pause at the start of a section delays its first item by exactly its
  seconds, one at the end lengthens the section;
- non-empty sections are separated by ``section_gap``; a section without
  items takes no time and adds no gap;
- the program ends ``tail`` after the last item (0.3 s without a bed), or
  later if a cue runs past that point.

Cues are placed on the sfx bus at ``line_start + at * line_length + offset``
(never before the program start) and may extend past their line.

Music
-----
Each section owns the music from its start to the next section's start; the
first also owns the lead-in, the last the tail. A section's ``music`` picks
what plays there (``"auto"``: intro for the first section, outro for the last,
both for a single section, main otherwise):

- ``"intro"``: the intro clip from the span start, then the main loop;
- ``"main"``: the main segment looped with equal-power crossfades; the loop
  runs on across consecutive sections without restarting;
- ``"outro"``: the main loop until the outro, which ends exactly at the span
  end (its head is cut, with a fade in, if the span is shorter);
- ``"none"``: silence; the music fades out before and back in after it.

The bed is then ducked under the voice bus (see :func:`mix`).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from ..codecs.wav import read_at, write_at
from ..errors import AudioError
from ..settings import BED_GAIN_DB, DUCK_SETTINGS, MIX_SETTINGS, MUSIC_CHOICES
from .signal import BLOCK, as_channels, db_to_gain, gain_frames, resample, valid_audio

__all__ = [
    "Bed",
    "Cue",
    "Item",
    "Lazy",
    "Line",
    "Mix",
    "MixSettings",
    "Pause",
    "Rendering",
    "Section",
    "Stems",
    "Sting",
    "ducking_hop",
    "leveling_gain",
    "mix",
]

_NO_BED_TAIL = 0.3  # s of silence after the last item when there is no bed
_DUCK_FRAME = 0.01  # s, control period of the ducker (100 Hz)
_AHEAD = 20.0  # s: clips starting this soon are made ahead on the mixer's threads
_SPEECH_THRESHOLD_DB = -35.0  # a voice frame is speech within this of the loudest frame
_TIMES = (
    "line_gap",
    "section_gap",
    "lead_in",
    "tail",
    "duck_attack",
    "duck_release",
    "duck_hold",
    "crossfade",
    "length",
)


@dataclass(frozen=True, eq=False)
class Lazy:
    """Audio read only when the mix reaches it: ``frames`` long, ``load()`` returns it.

    Any item's ``audio`` may be a :class:`Lazy`: a long programme then holds
    only the lines that sound in the block being mixed, not all of them.
    """

    frames: int
    load: Callable[[], np.ndarray]
    channels: int = 0  # as ``load()`` will return them, if known (0: not known)


Audio = np.ndarray | Lazy


# Audio-bearing records compare by identity (eq=False): field-wise equality
# of numpy arrays is ambiguous, and identity hashing keeps them usable as keys.
@dataclass(frozen=True, eq=False)
class Cue:
    """A sound effect anchored inside a voice line.

    ``at`` is the anchor as a fraction 0..1 of the line's duration (the
    character offset divided by the text length); ``offset`` seconds are
    added to the anchor time and may be negative.
    """

    audio: Audio
    sample_rate: int
    at: float
    gain_db: float = 0.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.at <= 1.0:
            raise ValueError(f"Cue.at must be a fraction in [0, 1] of the line, got {self.at}")


@dataclass(frozen=True, eq=False)
class Line:
    """A voice line, with the cues anchored in it."""

    audio: Audio
    sample_rate: int
    cues: tuple[Cue, ...] = ()
    gain_db: float = 0.0


@dataclass(frozen=True)
class Pause:
    """Silence of ``seconds`` inside a section (adds no extra gap)."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"Pause.seconds must be >= 0, got {self.seconds}")


@dataclass(frozen=True, eq=False)
class Sting:
    """A standalone sound effect occupying its own time in the sequence."""

    audio: Audio
    sample_rate: int
    gain_db: float = 0.0


Item = Line | Pause | Sting


@dataclass(frozen=True)
class Section:
    """Items played in order, and which bed segment plays under them.

    ``at`` pins the section's start (seconds from the start of the
    programme): the gap before it stretches to reach it. ``duck`` overrides
    the :class:`MixSettings` ducking (``duck_db``, ``duck_attack``,
    ``duck_release``, ``duck_hold``) while this section plays.
    """

    items: tuple[Item, ...]
    music: str = "auto"
    at: float | None = None
    duck: Mapping[str, float] = field(default_factory=dict)
    heading: str = ""  # where the section is written, for messages: "stanzas/x.j2:12: section 'news'"

    def __post_init__(self) -> None:
        if self.music not in MUSIC_CHOICES:
            raise ValueError(f"Section.music must be one of {MUSIC_CHOICES}, got {self.music!r}")
        if self.at is not None and self.at < 0:
            raise ValueError(f"Section.at must be >= 0 seconds, got {self.at}")
        unknown = set(self.duck) - set(DUCK_SETTINGS)
        if unknown:
            raise ValueError(
                f"Section.duck: unknown setting {sorted(unknown)[0]!r}; use {', '.join(DUCK_SETTINGS)}"
            )


@dataclass(frozen=True, eq=False)
class Bed:
    """A music bed's three rendered segments, at any rate and channel count.

    ``intro`` or ``outro`` may be empty (``(0, channels)``): the main loop
    plays in their place. ``main`` must hold at least two samples.
    ``seamless`` says ``main`` already loops exactly when tiled (a bar-grid
    loop from the ``synth`` renderer): repeats are then butted, not
    crossfaded, so the loop keeps its length and its beat.
    """

    intro: np.ndarray
    main: np.ndarray
    outro: np.ndarray
    sample_rate: int
    gain_db: float = BED_GAIN_DB
    seamless: bool = False


@dataclass(frozen=True)
class MixSettings:
    """Layout, ducking and crossfade settings; all times in seconds."""

    sample_rate: int = 48000
    channels: int = 2
    line_gap: float = MIX_SETTINGS["line_gap"]
    section_gap: float = MIX_SETTINGS["section_gap"]
    lead_in: float = MIX_SETTINGS["lead_in"]
    tail: float = MIX_SETTINGS["tail"]
    duck_db: float = MIX_SETTINGS["duck_db"]
    duck_attack: float = MIX_SETTINGS["duck_attack"]
    duck_release: float = MIX_SETTINGS["duck_release"]
    duck_hold: float = MIX_SETTINGS["duck_hold"]
    crossfade: float = MIX_SETTINGS["crossfade"]
    length: float = MIX_SETTINGS["length"]  # > 0: the programme lasts exactly this long; the bed's outro lands on its end
    line_lufs: float | None = None  # bring every voice line to this loudness before its gain
    speech: Any = None  # a mixdown.dsp.speech.SpeechSettings applied to every voice line, or None

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.channels < 1:
            raise ValueError("MixSettings: sample_rate and channels must be positive")
        negative = [name for name in _TIMES if getattr(self, name) < 0]
        if negative:
            raise ValueError(f"MixSettings: {', '.join(negative)} must be >= 0 seconds")
        if self.duck_db > 0:
            raise ValueError(f"MixSettings: duck_db must be <= 0 dB, got {self.duck_db}")


@dataclass
class Stems:
    """The mix as three buses of equal length, float32 ``[shape=(n, channels)]``."""

    voice: np.ndarray
    sfx: np.ndarray
    music: np.ndarray
    sample_rate: int

    def mixdown(self) -> np.ndarray:
        """Return ``voice + sfx + music`` as float32 (unclipped); a mono voice bus goes to every channel."""
        if self.voice.shape[1] == 1 < self.sfx.shape[1]:  # a channel at a time (see gain_frames)
            out = np.empty_like(self.sfx)
            for c in range(out.shape[1]):
                np.add(self.voice[:, 0], self.sfx[:, c], out=out[:, c])
        else:
            out = self.voice + self.sfx
        out += self.music
        return out


def mix(
    sections: Sequence[Section],
    *,
    bed: Bed | None = None,
    settings: MixSettings = MixSettings(),  # noqa: B008 - frozen, never mutated
) -> Stems:
    """Lay ``sections`` out on a timeline and mix them over an optional ``bed``.

    Parameters
    ----------
    sections : sequence of Section
        The program in order; at least one (a section may be empty).
    bed : Bed, optional
        Music under the whole program, segmented per section (module docs).
    settings : MixSettings
        Output rate and channels, gaps, ducking and crossfades.

    Returns
    -------
    Stems
        ``voice``, ``sfx`` and ``music`` of identical length at
        ``settings.sample_rate``: :meth:`Mix.blocks` joined (use those for a
        long programme, so that it is never held whole).

    Notes
    -----
    The music bus is ducked by ``duck_db`` while the voice bus carries speech:
    10 ms frames whose RMS is within 35 dB of the loudest voice frame count as
    speech; activity is held ``duck_hold`` after speech and anticipated by
    ``duck_attack`` (so the bed is fully down when a line starts); the gain
    then moves linearly in dB, reaching full depth in ``duck_attack`` and
    recovering in ``duck_release``, and is interpolated to the sample rate.
    A section's ``duck`` settings apply while it plays.

    Raises
    ------
    ValueError
        If ``sections`` is empty.
    AudioError
        If an input is not float audio of shape ``(n, channels)``, or its
        channels cannot be mapped to ``settings.channels``, or a marker
        cannot be met.
    """
    program = Mix(sections, bed=bed, settings=settings)
    parts = list(program.blocks())
    if not parts:
        empty = np.zeros((0, settings.channels), dtype=np.float32)
        return Stems(empty, empty.copy(), empty.copy(), settings.sample_rate)
    voice, sfx, music = (
        np.concatenate([getattr(part, bus) for part in parts]) for bus in ("voice", "sfx", "music")
    )
    return Stems(voice, sfx, music, settings.sample_rate)


class Mix:
    """A programme laid out on its timeline, mixed block by block.

    Laying out needs only the length of each item (a :class:`Lazy` item is
    not read); :meth:`blocks` then reads, resamples and processes each item
    when the mix reaches it and lets it go once the mix has passed it, so
    memory holds a block of each bus and the items sounding in it.
    """

    def __init__(
        self,
        sections: Sequence[Section],
        *,
        bed: Bed | None = None,
        settings: MixSettings = MixSettings(),  # noqa: B008 - frozen, never mutated
    ) -> None:
        if not sections:
            raise ValueError("mix: no sections to mix; give at least one Section")
        sr = settings.sample_rate
        self.settings, self.sections, self.bed = settings, tuple(sections), bed
        self.sample_rate, self.channels = sr, settings.channels
        lead_in = _samples(settings.lead_in, sr) if bed is not None else 0
        self._timeline = timeline = _layout(sections, settings, start=lead_in)
        tail = settings.tail if bed is not None else _NO_BED_TAIL
        n = max(timeline.end + _samples(tail, sr), timeline.reach())
        if settings.length > 0:
            n = _fixed_length(settings.length, sr, max(timeline.end, timeline.reach()))
        self.frames = n

    @property
    def hop(self) -> int:
        """Samples per ducking frame: a ranged :meth:`Rendering.blocks` starts on a multiple of it."""
        return ducking_hop(self.sample_rate)

    def blocks(self, size: int = BLOCK) -> Iterator[Stems]:
        """Yield the three buses in consecutive blocks of ``size`` frames (the last may be shorter).

        With a bed to duck, the voice bus is mixed first into an anonymous
        temporary file while its speech activity is measured (the ducker's
        threshold depends on the loudest voice frame of the whole programme);
        the second pass reads it back beside the sfx and music.
        """
        with self.rendering() as rendering:
            for _, stems in rendering.blocks(0, self.frames, size):
                yield stems

    @contextmanager
    def rendering(
        self, parts: Sequence[tuple[int, int]] = (), progress: Callable[[int], None] | None = None
    ) -> Iterator[Rendering]:
        """Ready the programme to be mixed over any range, by as many threads as wanted.

        ``parts`` (ranges that tile the programme, each starting on a
        :attr:`hop`) are the ranges whose voice pass runs on a thread each;
        by default one. ``progress`` is told the frames of each block of
        the voice pass as it is done (from those threads).
        """
        workers = min(os.cpu_count() or 1, 4)
        pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-mix") if workers > 1 else None
        )
        try:
            with Rendering(self, pool, parts or [(0, self.frames)], progress) as rendering:
                yield rendering
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


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
    ) -> None:
        self.program, self._pool = program, pool
        settings, n = program.settings, program.frames
        self.music = (
            _Music(program.bed, program.sections, program._timeline.starts, n, settings)
            if program.bed
            else None
        )
        self._ducked = self.music is not None and any(
            d.duck_db < 0 for d in _section_ducking(program.sections, settings)
        )
        self._scratch: Any = None
        self._duck: _Ducker | None = None
        # A voice bus of mono lines (as TTS makes them) is kept mono until it is mixed: half
        # the scratch file and half the summing; the mix adds it to each channel.
        lines = program._timeline.voice
        self.voice_channels = 1 if lines and all(c.mono for c in lines) else program.channels
        hop = program.hop
        if (
            [p for p in parts if p[0] % hop]
            or sorted(parts) != list(parts)
            or sum(b - a for a, b in parts) != n
        ):
            raise ValueError(
                f"mix: parts {list(parts)} must tile 0..{n} in order, each starting on a {hop}-frame hop"
            )
        if not self._ducked:
            return
        self._scratch = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
            prefix="mixdown-voice-", dir=scratch_dir(n * self.voice_channels * 4)
        )
        try:
            powers = np.zeros(-(-n // hop))
            say = progress or (lambda _: None)

            def voice(part: tuple[int, int]) -> None:
                start, stop = part
                bus = _Bus(
                    _overlapping(program._timeline.voice, start, stop),
                    self.voice_channels,
                    pool,
                    program.sample_rate,
                )
                _voice_pass(bus, start, stop, hop, self._scratch.fileno(), powers, say)

            if len(parts) > 1:
                with ThreadPoolExecutor(
                    max_workers=len(parts), thread_name_prefix="mixdown-voice"
                ) as threads:
                    for future in [threads.submit(voice, part) for part in parts]:
                        future.result()
            else:
                voice(parts[0])
            self._duck = _Ducker(
                powers / (hop * self.voice_channels),  # mean square per sample of one channel
                program.sections,
                program._timeline.starts,
                n,
                hop,
                settings,
            )
        except BaseException:
            self.close()
            raise

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
        sfx = _Bus(_overlapping(timeline.sfx, start, stop), channels, pool, sr)
        starts = list(range(start, stop, size))
        if not self._ducked:
            speech = _Bus(_overlapping(timeline.voice, start, stop), channels, pool, sr)
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


_MEMORY = "/dev/shm"  # a memory filesystem (tmpfs) on Linux
_MEMORY_SHARE = 4  # the scratch lives in memory if it takes at most this share of what is free


def scratch_dir(size: int) -> str | None:
    """Where a temporary file of ``size`` bytes that is read back within seconds goes.

    In memory (``/dev/shm``) when it takes at most a quarter of the memory
    available and of that filesystem's free space: the voice bus of an
    hour's programme (0.7 GB in mono, 1.4 GB in stereo) is written and read
    back while the disk is busy making the mix durable, and on disk it was
    up to a quarter of the build's writes, for a file nobody keeps (once,
    on a busy disk, the mix took 35 s instead of 9). A larger one (a ten-hour audiobook on a
    laptop) goes to the temporary directory, as does any where there is no
    such filesystem.
    """
    try:
        stat = os.statvfs(_MEMORY)
        with open("/proc/meminfo", encoding="ascii") as fh:
            available = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return _MEMORY if size * _MEMORY_SHARE <= min(available, stat.f_bavail * stat.f_frsize) else None


def ducking_hop(sr: int) -> int:
    """Samples per ducking frame (10 ms) at ``sr``."""
    return max(1, round(sr * _DUCK_FRAME))


def _overlapping(clips: Sequence[_Placed], start: int, stop: int) -> list[_Placed]:
    """The clips that sound in ``[start, stop)``."""
    return [clip for clip in clips if clip.start < stop and clip.end > start]


def _voice_pass(
    voice: _Bus, start: int, stop: int, hop: int, fd: int, powers: np.ndarray, progress: Callable[[int], None]
) -> None:
    """Mix the voice bus over ``[start, stop)`` into the file ``fd`` at its place; note each
    ``hop``-frame frame's sum of squares (over channels) in ``powers``."""
    size = max(hop, BLOCK // hop * hop)
    for first in range(start, stop, size):
        last = min(first + size, stop)
        block = voice.render(first, last)
        write_at(fd, block.data.cast("B"), first * block.shape[1] * 4)  # a fresh, contiguous float32 array
        frames = -(-len(block) // hop)
        squares = np.zeros((frames * hop, block.shape[1]), dtype=np.float32)
        np.square(block, out=squares[: len(block)])
        powers[first // hop : first // hop + frames] = squares.reshape(frames, -1).sum(
            axis=1, dtype=np.float64
        )
        progress(last - first)


def leveling_gain(audio: np.ndarray, sr: int, line_lufs: float | None) -> float:
    """dB that bring a voice line to ``line_lufs``, so voices from different renderers match.

    Lines too short to measure (under 400 ms) and silent lines are left as
    they are; the voice's own ``gain_db`` still applies on top.
    """
    from .loudness import measure

    if line_lufs is None:
        return 0.0
    loudness = measure(audio, sr, true_peak=False, threads=False).integrated  # lines are made on threads
    return float(line_lufs - loudness) if math.isfinite(loudness) else 0.0


# -- layout ---------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Placed:
    """An item on a bus: where it starts, how long it is, and how to make its samples."""

    start: int
    length: int
    make: Callable[[], np.ndarray]
    mono: bool = False  # ``make()`` is known to return one channel

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass
class _Timeline:
    """Placed clips per bus, and section boundaries."""

    voice: list[_Placed] = field(default_factory=list)
    sfx: list[_Placed] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    end: int = 0  # end of the last item: where the tail starts

    def reach(self) -> int:
        """Return the end of the last-ending clip on any bus (0 if none)."""
        return max((clip.end for clip in self.voice + self.sfx), default=0)


class _Bus:
    """Sums placed clips block by block, making each when first needed and dropping it after.

    With a thread pool, clips that start within :data:`_AHEAD` seconds of the
    block being mixed are made on its threads meanwhile (reading, resampling,
    compressing and leveling a voice line release the GIL), in order, so
    the result is the same.
    """

    def __init__(
        self, clips: Sequence[_Placed], channels: int, pool: Executor | None = None, sr: int = 0
    ) -> None:
        self.channels = channels
        self._pending = sorted((c for c in clips if c.length > 0), key=lambda c: c.start)
        self._next = 0
        self._active: list[tuple[_Placed, np.ndarray]] = []
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


def _fixed_length(seconds: float, sr: int, needed: int) -> int:
    """The programme's length in samples when ``length`` is set; it must hold everything."""
    n = _samples(seconds, sr)
    if needed > n:
        raise AudioError(
            f"mix: the programme needs {needed / sr:.2f} s but length is {seconds:g} s; "
            "raise [mix] length or shorten the script"
        )
    return n


def _samples(seconds: float, sr: int) -> int:
    """Convert seconds to a whole number of samples."""
    return int(round(seconds * sr))


def _channels_of(audio: Audio) -> int:
    """The channels ``audio`` has (0 when not known: a :class:`Lazy` that does not say, or
    audio of the wrong shape, which is refused when it is made)."""
    if isinstance(audio, Lazy):
        return audio.channels
    shape: tuple[int, ...] = tuple(getattr(audio, "shape", ()))
    return int(shape[1]) if len(shape) == 2 else 0


def _frames_at(audio: Audio, sr: int, target: int) -> int:
    """How many samples ``audio`` at ``sr`` has once resampled to ``target`` (see audio.resample)."""
    frames = audio.frames if isinstance(audio, Lazy) else len(audio)
    return frames if sr == target else int(round(frames * target / sr))


def _maker(
    audio: Audio, sr: int, gain_db: float, settings: MixSettings, what: str, *, speech: bool = False
) -> Callable[[], np.ndarray]:
    """A function making a clip's samples at the mix rate, gain applied: mono stays mono
    (a bus adds it to each of its channels), other channels are mapped to the mix's."""

    def make() -> np.ndarray:
        return _prepare(
            audio.load() if isinstance(audio, Lazy) else audio, sr, gain_db, settings, what, speech, mono=True
        )

    return make


def _prepare(
    y: np.ndarray,
    sr: int,
    gain_db: float,
    settings: MixSettings,
    what: str,
    speech: bool = False,
    *,
    mono: bool = False,
) -> np.ndarray:
    """Validate ``y``, bring it to the mix rate and channels, apply ``gain_db`` (a new array).

    A voice line (``speech``) is also processed by ``settings.speech`` and
    levelled to ``settings.line_lufs`` first. With ``mono``, a mono item is
    left mono (a sum broadcasts it to the channels: half the samples to make).
    """
    y = valid_audio(y, what=what)
    _check_rate(sr, what)
    if speech and settings.speech is not None:
        from .speech import process

        y = process(y, sr, settings.speech)  # at the line's own rate: often half the mix's
    if speech:
        gain_db += leveling_gain(y, sr, settings.line_lufs)
    y = resample(y, sr, settings.sample_rate) * np.float32(db_to_gain(gain_db))
    return y if mono and y.shape[1] == 1 else as_channels(y, settings.channels)


def _layout(sections: Sequence[Section], settings: MixSettings, *, start: int) -> _Timeline:
    """Place every item of every section, starting at sample ``start``."""
    sr = settings.sample_rate
    timeline = _Timeline(end=start)
    gap = _samples(settings.section_gap, sr)
    cursor, started = start, False
    for index, section in enumerate(sections):
        if section.items and started:
            cursor += gap
        if section.at is not None:
            mark, before = _samples(section.at, sr), cursor - (gap if section.items and started else 0)
            if mark < before:
                raise AudioError(
                    f"{section.heading or f'mix: section {index + 1}'} is marked at {section.at:g} s but "
                    f"what comes before it runs to {before / sr:.2f} s; move the marker later or shorten "
                    "the sections before it"
                )
            cursor = mark
        started = started or bool(section.items)
        timeline.starts.append(cursor)
        cursor = _layout_section(timeline, section, cursor, settings, f"section {index}")
    timeline.end = cursor
    return timeline


def _layout_section(
    timeline: _Timeline, section: Section, cursor: int, settings: MixSettings, where: str
) -> int:
    """Place one section's items from ``cursor``; return where the section ends."""
    sr = settings.sample_rate
    gap, after_item = _samples(settings.line_gap, sr), False
    for index, item in enumerate(section.items):
        what = f"{where}, item {index}"
        if isinstance(item, Pause):
            cursor += _samples(item.seconds, sr)
            continue
        if not isinstance(item, Line | Sting):
            raise TypeError(f"{what}: expected Line, Pause or Sting, got {type(item).__name__}")
        cursor += gap if after_item else 0
        _check_rate(item.sample_rate, what)
        length = _frames_at(item.audio, item.sample_rate, sr)
        if isinstance(item, Line):
            make = _maker(item.audio, item.sample_rate, item.gain_db, settings, what, speech=True)
            mono = _channels_of(item.audio) == 1 or settings.channels == 1
            timeline.voice.append(_Placed(cursor, length, _fitted(make, length), mono))
            _place_cues(timeline, item.cues, cursor, length, settings, what)
        else:
            make = _maker(item.audio, item.sample_rate, item.gain_db, settings, what)
            timeline.sfx.append(_Placed(cursor, length, _fitted(make, length)))
        cursor, after_item = cursor + length, True
    return cursor


def _check_rate(sr: int, what: str) -> None:
    if sr <= 0:
        raise AudioError(f"{what}: sample rate must be positive, got {sr}")


def _fitted(make: Callable[[], np.ndarray], length: int) -> Callable[[], np.ndarray]:
    """``make`` held to exactly ``length`` samples (a lazy item may differ from its stated length)."""

    def fitted() -> np.ndarray:
        y = make()
        if len(y) == length:
            return y
        out = np.zeros((length, y.shape[1]), dtype=np.float32)
        out[: min(length, len(y))] = y[:length]
        return out

    return fitted


def _place_cues(
    timeline: _Timeline,
    cues: Sequence[Cue],
    start: int,
    length: int,
    settings: MixSettings,
    what: str,
) -> None:
    """Place a line's cues on the sfx bus relative to the line at ``start``."""
    sr = settings.sample_rate
    for index, cue in enumerate(cues):
        where = f"{what}, cue {index}"
        _check_rate(cue.sample_rate, where)
        at = start + round(cue.at * length) + _samples(cue.offset, sr)
        n = _frames_at(cue.audio, cue.sample_rate, sr)
        make = _maker(cue.audio, cue.sample_rate, cue.gain_db, settings, where)
        timeline.sfx.append(_Placed(max(at, 0), n, _fitted(make, n)))


# -- music bed ------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """A section's stretch of music, in samples, and whether it opens/closes the bed."""

    start: int
    end: int
    intro: bool
    outro: bool


@dataclass(frozen=True)
class _Clip:
    """One bed segment placed at ``start``, with ``skip`` samples cut from its head."""

    start: int
    kind: str  # "intro" | "main" | "outro"
    skip: int = 0


@dataclass(frozen=True, eq=False)
class _Segments:
    """The bed at the mix rate and channels, gain applied; ``xf`` is the crossfade
    between segments, ``loop_xf`` the one between repeats of ``main``."""

    intro: np.ndarray
    main: np.ndarray
    outro: np.ndarray
    xf: int
    loop_xf: int


@dataclass(frozen=True)
class _Piece:
    """A placed clip's extent ``[start, stop)`` and its fades, in samples."""

    clip: _Clip
    stop: int
    fade_in: int
    fade_out: int


class _Music:
    """The (unducked) music bus, rendered for any range of samples."""

    def __init__(
        self, bed: Bed, sections: Sequence[Section], starts: Sequence[int], n: int, settings: MixSettings
    ) -> None:
        self.segments = segments = _prepare_bed(bed, settings)
        self.channels = settings.channels
        self.pieces: list[_Piece] = []
        for group in _groups(_spans(sections, starts, n)):
            clips, end = _clips(group, segments), group[-1].end
            for index, clip in enumerate(clips):
                last = index == len(clips) - 1
                stop = end if last else min(clips[index + 1].start + segments.xf, end)
                clean_start = index == 0 and clip.kind != "main" and clip.skip == 0
                fade_in = 0 if clean_start else segments.xf
                fade_out = 0 if last and clip.kind == "outro" else segments.xf
                self.pieces.append(_Piece(clip, stop, fade_in, fade_out))
        self._loop_unit = _loop_unit(segments.main, segments.loop_xf)

    def render(self, start: int, stop: int) -> np.ndarray:
        """The music bus over ``[start, stop)``."""
        out = np.zeros((stop - start, self.channels), dtype=np.float32)
        for piece in self.pieces:
            lo, hi = max(piece.clip.start, start), min(piece.stop, stop)
            if lo < hi:
                y = self._piece(piece, lo - piece.clip.start, hi - piece.clip.start)
                out[lo - start : hi - start] += y
        return out

    def _piece(self, piece: _Piece, first: int, last: int) -> np.ndarray:
        """Samples ``first..last`` (offsets from the clip's start) of a piece, faded."""
        clip, segments = piece.clip, self.segments
        if clip.kind == "main":
            y = _loop_range(segments.main, self._loop_unit, segments.loop_xf, first, last)
        else:
            source = segments.intro if clip.kind == "intro" else segments.outro
            y = np.zeros((last - first, source.shape[1]), dtype=np.float32)
            part = source[clip.skip + first : clip.skip + last]
            y[: len(part)] = part
        if piece.fade_in and first < piece.fade_in:
            k = min(piece.fade_in, last) - first
            y[:k] *= _fades(piece.fade_in)[0][first : first + k]
        length = piece.stop - clip.start
        fade_from = length - min(piece.fade_out, length)  # the fade-out covers [fade_from, length)
        if piece.fade_out and last > fade_from:
            lo = max(first, fade_from)
            curve = _fades(piece.fade_out)[1]
            offset = piece.fade_out - length  # curve index of offset o is o + offset
            y[lo - first :] *= curve[lo + offset : last + offset]
        return y


def _prepare_bed(bed: Bed, settings: MixSettings) -> _Segments:
    """Bring the bed's segments to the mix format and pick a crossfade that fits them."""
    intro, main, outro = (
        _prepare(getattr(bed, name), bed.sample_rate, bed.gain_db, settings, f"bed.{name}")
        for name in ("intro", "main", "outro")
    )
    if len(main) < 2:
        raise AudioError(f"bed.main: needs at least 2 samples to loop, got {len(main)}")
    lengths = [len(main) // 2] + [len(y) for y in (intro, outro) if len(y)]
    xf = min(_samples(settings.crossfade, settings.sample_rate), *lengths)
    return _Segments(intro, main, outro, xf, 0 if bed.seamless else xf)


def _segments_of(music: str, index: int, count: int) -> tuple[bool, bool] | None:
    """Return (intro, outro) for a section's music choice, or None for silence."""
    if music == "none":
        return None
    if music == "auto":
        return index == 0, index == count - 1
    return music == "intro", music == "outro"


def _spans(sections: Sequence[Section], starts: Sequence[int], n: int) -> list[_Span | None]:
    """Cut ``[0, n)`` into one music span per section (None where music is off)."""
    bounds = [0, *starts[1:], n]
    spans: list[_Span | None] = []
    for index, section in enumerate(sections):
        flags = _segments_of(section.music, index, len(sections))
        span = None if flags is None else _Span(bounds[index], bounds[index + 1], *flags)
        spans.append(span)
    return spans


def _groups(spans: Sequence[_Span | None]) -> list[list[_Span]]:
    """Split spans into runs of consecutive sections that have music."""
    groups: list[list[_Span]] = [[]]
    for span in spans:
        if span is None:
            groups.append([])
        else:
            groups[-1].append(span)
    return [group for group in groups if group]


def _clips(group: Sequence[_Span], segments: _Segments) -> list[_Clip]:
    """Place the bed's segments over one run of musical spans, in time order."""
    clips: list[_Clip] = []
    n_intro, n_outro = len(segments.intro), len(segments.outro)
    for span in group:
        if span.intro and n_intro:
            clips.append(_Clip(span.start, "intro"))
            clips.append(_Clip(span.start + n_intro - segments.xf, "main"))
        elif not clips or clips[-1].kind == "outro":
            clips.append(_Clip(span.start, "main"))
        if span.outro and n_outro:
            _add_outro(clips, span, n_outro)
    end = group[-1].end
    return [clip for clip in clips if clip.start < end]


def _add_outro(clips: list[_Clip], span: _Span, length: int) -> None:
    """End ``span`` with the outro, cutting its head if the span is too short."""
    start = max(span.start, span.end - length)
    skip = start - (span.end - length)
    if skip >= length:
        return
    while clips and clips[-1].start >= start:
        clips.pop()
    clips.append(_Clip(start, "outro", skip))


def _loop_unit(main: np.ndarray, xf: int) -> np.ndarray:
    """One period of the main loop: its head crossfaded with the tail of the repeat before."""
    period = len(main) - xf
    fade_in, fade_out = _fades(xf)
    unit = main[:period].copy()
    unit[:xf] = main[:xf] * fade_in + main[period:] * fade_out
    return unit


def _loop_range(main: np.ndarray, unit: np.ndarray, xf: int, first: int, last: int) -> np.ndarray:
    """Samples ``first..last`` of ``main`` repeated, each repeat crossfading over ``xf``.

    The first pass starts clean (``main`` itself), not mid-crossfade.
    """
    period = len(unit)
    out = np.empty((last - first, main.shape[1]), dtype=np.float32)
    pos = first
    while pos < last:
        offset = pos % period
        take = min(period - offset, last - pos)
        out[pos - first : pos - first + take] = unit[offset : offset + take]
        pos += take
    if first < xf:
        head = min(xf, last)
        out[: head - first] = main[first:head]
    return out


@lru_cache(maxsize=8)
def _fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power fade-in and fade-out curves of ``[shape=(n, 1)]`` (shared: read only)."""
    x = (np.arange(n) + 0.5) * (np.pi / 2 / max(n, 1))
    fade_in, fade_out = np.sin(x).astype(np.float32)[:, None], np.cos(x).astype(np.float32)[:, None]
    fade_in.flags.writeable = fade_out.flags.writeable = False
    return fade_in, fade_out


# -- ducking --------------------------------------------------------------------


@dataclass(frozen=True)
class _Ducking:
    """One section's ducking: depth (dB) and times (s)."""

    duck_db: float
    duck_attack: float
    duck_release: float
    duck_hold: float


def _section_ducking(sections: Sequence[Section], settings: MixSettings) -> list[_Ducking]:
    """Each section's ducking: the settings', overridden by the section's own."""
    base = {name: float(getattr(settings, name)) for name in DUCK_SETTINGS}
    return [_Ducking(**{**base, **section.duck}) for section in sections]


class _Ducker:
    """The music gain under the voice bus, from its speech activity per 10 ms frame.

    ``powers`` are the voice bus's mean powers per ``hop``-sample frame over
    the whole programme. Frames within 35 dB of the loudest are speech. Per
    section, activity is held ``duck_hold`` after speech and anticipated by
    ``duck_attack``; the gain moves linearly in dB towards ``duck_db`` while
    active (reaching it in ``duck_attack``) and back to 0 dB otherwise (in
    ``duck_release``), and is interpolated to the sample rate.
    """

    def __init__(
        self,
        powers: np.ndarray,
        sections: Sequence[Section],
        starts: Sequence[int],
        n: int,
        hop: int,
        settings: MixSettings,
    ) -> None:
        self.hop, self.frames = hop, len(powers)
        loudest = powers.max(initial=0.0)
        active = powers > loudest * 10.0 ** (_SPEECH_THRESHOLD_DB / 10.0)  # none in silence
        rate = settings.sample_rate / hop  # control frames per second
        bounds = [0, *starts[1:], n]
        target, depth = np.zeros(len(powers)), np.zeros(len(powers))
        attack, release = np.ones(len(powers)), np.ones(len(powers))
        before = 0.0  # the depth of the section before: a section recovers from it at its own pace
        for index, ducking in enumerate(_section_ducking(sections, settings)):
            back, ahead = round(ducking.duck_hold * rate), round(ducking.duck_attack * rate)
            # A section rules from `ahead` frames before it starts, so that it anticipates its own speech.
            first = max(bounds[index] // hop - (ahead if index else 0), 0)
            last = min(-(-bounds[index + 1] // hop), len(powers))
            if first >= last:
                continue
            lo, hi = max(first - back, 0), min(last + ahead, len(powers))
            held = _window_max(active[lo:hi], back=back, ahead=ahead)[first - lo : last - lo]
            target[first:last] = np.where(held, ducking.duck_db, 0.0)
            depth[first:last] = max(-ducking.duck_db, before)
            attack[first:last] = max(ducking.duck_attack * rate, 1.0)
            release[first:last] = max(ducking.duck_release * rate, 1.0)
            before = -ducking.duck_db
        db = _slew(target, depth=depth, attack=attack, release=release)
        self._gain = (10.0 ** (db / 20.0)).astype(np.float32)
        self._step = np.append(self._gain[1:], self._gain[-1:]) - self._gain

    def gain(self, start: int, stop: int) -> np.ndarray:
        """Linear gain per sample over ``[start, stop)`` (``start`` on a frame boundary)."""
        hop = self.hop
        first, last = start // hop, -(-stop // hop)
        ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
        curve = self._gain[first:last, None] + self._step[first:last, None] * ramp
        return curve.reshape(-1)[: stop - start]


def _window_max(x: np.ndarray, *, back: int, ahead: int) -> np.ndarray:
    """Return ``out[i] = max(x[i - back : i + ahead + 1])`` (zeros beyond the edges)."""
    from scipy.ndimage import maximum_filter1d

    size = back + ahead + 1
    padded = np.pad(x.astype(np.uint8), (back, ahead))
    held: np.ndarray = maximum_filter1d(padded, size, origin=-(size // 2))[: len(x)]
    return held.astype(bool)


def _slew(target: np.ndarray, *, depth: np.ndarray, attack: np.ndarray, release: np.ndarray) -> np.ndarray:
    """Follow ``target`` (dB per frame), moving in ``attack``/``release`` frames over the depth.

    A frame moves ``depth / attack`` dB down or ``depth / release`` up (at
    least ``|gain|`` over those times): full depth takes the attack and
    release times, and a section that ducks less (or not at all) still
    recovers from the section before it.

    :func:`_slew_frames` frame by frame, but computed a run of frames with
    the same settings at a time: where the step is constant the gain is a
    running sum (``np.cumsum`` adds in order, as the loop does: the same
    values to the bit) held at the target once it gets there; frames
    deeper than the depth (recovering from a deeper section) go one by one.
    """
    n = len(target)
    out = np.empty(n)
    if not n:
        return out
    params = np.stack([target, depth, attack, release])
    starts: list[int] = np.flatnonzero(np.r_[True, (params[:, 1:] != params[:, :-1]).any(axis=0)]).tolist()
    gain = 0.0
    for first, last in zip(starts, [*starts[1:], n], strict=True):
        value, full, fall, rise = params[:, first].tolist()
        i = first
        while i < last:
            if gain < -full:  # deeper than the depth: the span follows the gain, frame by frame
                out[i] = gain = _slew_frames([value], [full], [fall], [rise], gain)[0]
                i += 1
                continue
            if gain == value:  # there: it stays
                out[i:last] = gain
                break
            falling = value < gain
            path = np.cumsum(np.r_[gain, np.full(last - i, -full / fall if falling else full / rise)])[1:]
            (np.maximum if falling else np.minimum)(path, value, out=path)
            deep = np.flatnonzero(path < -full)  # a target past the depth: frames from there on
            stop = i + (int(deep[0]) + 1 if len(deep) else len(path))
            out[i:stop] = path[: stop - i]
            gain, i = float(out[stop - 1]), stop
    return out


def _slew_frames(
    target: Sequence[float],
    depth: Sequence[float],
    attack: Sequence[float],
    release: Sequence[float],
    gain: float,
) -> list[float]:
    """The slew of :func:`_slew` frame by frame, from ``gain``."""
    out = []
    for value, full, fall, rise in zip(target, depth, attack, release, strict=True):
        span = max(full, -gain)
        gain = max(value, gain - span / fall) if value < gain else min(value, gain + span / rise)
        out.append(gain)
    return out
