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

The bed is then ducked under the voice bus (see :func:`mix`). The bed's
segments are in :mod:`~mixdown.dsp.bed`, the ducker in
:mod:`~mixdown.dsp.ducking`, and the threads and scratch file that render a
:class:`Mix` in :mod:`~mixdown.dsp.rendering`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import AudioError
from ..settings import BED_GAIN_DB, DUCK_SETTINGS, MIX_SETTINGS, MUSIC_CHOICES
from .ducking import ducking_hop
from .signal import BLOCK, as_channels, db_to_gain, resample, valid_audio

if TYPE_CHECKING:
    from .rendering import Rendering

__all__ = [
    "Bed",
    "Cue",
    "Item",
    "Lazy",
    "Line",
    "Mix",
    "MixSettings",
    "Pause",
    "Section",
    "Stems",
    "Sting",
    "ducking_hop",
    "leveling_gain",
    "mix",
]

_NO_BED_TAIL = 0.3  # s of silence after the last item when there is no bed
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
        """Samples per ducking frame.

        A ranged :meth:`~mixdown.dsp.rendering.Rendering.blocks` starts on a multiple of it.
        """
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
        from .rendering import Rendering  # it renders a Mix: imported here, not in a cycle

        try:
            with Rendering(self, pool, parts or [(0, self.frames)], progress) as rendering:
                yield rendering
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


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
