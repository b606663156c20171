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

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from ..errors import AudioError
from .clips import check_rate, leveling_gain, prepare, samples
from .ducking import ducking_hop
from .items import (
    Audio,
    Bed,
    Cue,
    Item,
    Lazy,
    Line,
    MixSettings,
    Pause,
    Placed,
    Premixed,
    Section,
    Stems,
    Sting,
)
from .rendering import Bus, Rendering
from .signal import BLOCK

__all__ = [
    "Bed",
    "Cue",
    "Item",
    "Lazy",
    "Line",
    "Mix",
    "MixSettings",
    "Pause",
    "Placement",
    "Premixed",
    "Section",
    "Stems",
    "Sting",
    "ducking_hop",
    "layout_section",
    "leveling_gain",
    "mix",
]

_NO_BED_TAIL = 0.3  # s of silence after the last item when there is no bed


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
        sections: Sequence[Section | Premixed],
        *,
        bed: Bed | None = None,
        settings: MixSettings = MixSettings(),  # noqa: B008 - frozen, never mutated
    ) -> None:
        if not sections:
            raise ValueError("mix: no sections to mix; give at least one Section")
        sr = settings.sample_rate
        self.settings, self.sections, self.bed = settings, tuple(sections), bed
        self.sample_rate, self.channels = sr, settings.channels
        lead_in = samples(settings.lead_in, sr) if bed is not None else 0
        self._timeline = timeline = _layout(sections, settings, start=lead_in)
        tail = settings.tail if bed is not None else _NO_BED_TAIL
        n = max(timeline.end + samples(tail, sr), timeline.reach())
        if settings.length > 0:
            n = _fixed_length(settings.length, sr, max(timeline.end, timeline.reach()))
        self.frames = n

    @property
    def placement(self) -> Placement:
        """Where every clip sits on the voice and sfx buses, and where each section starts: the
        layout the mix is made from (captions, chapters and timelines read it, never change it)."""
        return self._timeline

    @property
    def starts(self) -> list[int]:
        """Where each section starts, in samples."""
        return list(self._timeline.starts)

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

    def bus_blocks(self, bus: str, size: int = BLOCK) -> Iterator[np.ndarray]:
        """Yield the ``"voice"`` or ``"sfx"`` bus alone, on every channel of the mix, in consecutive
        blocks of ``size`` frames: the samples :meth:`blocks` gives for it (a stem), its clips
        summed with no bed to duck."""
        if bus not in ("voice", "sfx"):
            raise ValueError(f"mix: no bus {bus!r} to render alone; voice or sfx")
        clips = Bus(getattr(self._timeline, bus), self.channels)
        for first in range(0, self.frames, size):
            yield clips.render(first, min(first + size, self.frames))

    @contextmanager
    def rendering(
        self,
        parts: Sequence[tuple[int, int]] = (),
        progress: Callable[[int], None] | None = None,
        *,
        powers: np.ndarray | None = None,
    ) -> Iterator[Rendering]:
        """Ready the programme to be mixed over any range, by as many threads as wanted.

        ``parts`` (ranges that tile the programme, each starting on a
        :attr:`hop`) are the ranges whose voice pass runs on the threads;
        by default one. ``progress`` is told the frames of each block of
        the voice pass as it is done (from those threads). ``powers``, the
        voice bus's power per ducking frame as a whole pass would measure
        it (:attr:`Rendering.powers`), lets ``parts`` cover only the ranges
        that will be mixed: the voice pass then fills in only theirs.
        """
        workers = min(os.cpu_count() or 1, 4)
        pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-mix") if workers > 1 else None
        )

        try:
            with Rendering(self, pool, parts or [(0, self.frames)], progress, powers) as rendering:
                yield rendering
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


# -- layout ---------------------------------------------------------------------


@dataclass
class Placement:
    """Placed clips per bus, and section boundaries."""

    voice: list[Placed] = field(default_factory=list)
    sfx: list[Placed] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    end: int = 0  # end of the last item: where the tail starts

    def reach(self) -> int:
        """Return the end of the last-ending clip on any bus (0 if none)."""
        return max((clip.end for clip in self.voice + self.sfx), default=0)


def _fixed_length(seconds: float, sr: int, needed: int) -> int:
    """The programme's length in samples when ``length`` is set; it must hold everything."""
    n = samples(seconds, sr)
    if needed > n:
        raise AudioError(
            f"mix: the programme needs {needed / sr:.2f} s but length is {seconds:g} s; "
            "raise [mix] length or shorten the script"
        )
    return n


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
        return prepare(
            audio.load() if isinstance(audio, Lazy) else audio, sr, gain_db, settings, what, speech, mono=True
        )

    return make


def _layout(sections: Sequence[Section | Premixed], settings: MixSettings, *, start: int) -> Placement:
    """Place every item of every section, starting at sample ``start``."""
    sr = settings.sample_rate
    timeline = Placement(end=start)
    gap = samples(settings.section_gap, sr)
    cursor, started = start, False
    for index, section in enumerate(sections):
        sounds = isinstance(section, Premixed) or bool(section.items)
        if sounds and started:
            cursor += gap
        if section.at is not None:
            mark, before = samples(section.at, sr), cursor - (gap if sounds and started else 0)
            if mark < before:
                raise AudioError(
                    f"{section.heading or f'mix: section {index + 1}'} is marked at {section.at:g} s but "
                    f"what comes before it runs to {before / sr:.2f} s; move the marker later or shorten "
                    "the sections before it"
                )
            cursor = mark
        started = started or sounds
        timeline.starts.append(cursor)
        where = f"section {index}"
        if isinstance(section, Premixed) and cursor >= section.pre:
            cursor = _place_premix(timeline, section, cursor)
        else:
            direct = section.items() if isinstance(section, Premixed) else section
            cursor = layout_section(timeline, direct, cursor, settings, where)
    timeline.end = cursor
    return timeline


def _place_premix(timeline: Placement, section: Premixed, cursor: int) -> int:
    """Place a section's pre-mix from ``cursor``, where the section starts; return where it ends."""
    at, frames = cursor - section.pre, section.frames
    voice = section.voice
    timeline.voice.append(Placed(at, frames, _loader(voice), _channels_of(voice) == 1))
    if section.sfx is not None:
        timeline.sfx.append(Placed(at, frames, _loader(section.sfx)))
    return cursor + section.length


def _loader(audio: Audio) -> Callable[[], np.ndarray]:
    """A clip's samples as they are (a pre-mix is at the mix's rate, gain and channels)."""
    return audio.load if isinstance(audio, Lazy) else lambda: audio


def layout_section(
    timeline: Placement,
    section: Section,
    cursor: int,
    settings: MixSettings,
    where: str,
    *,
    floor: int | None = 0,
) -> int:
    """Place one section's items from ``cursor``; return where the section ends.

    A cue is never placed before ``floor`` (the programme's start; a cue that
    would be is moved there); with None, anywhere (a section laid out on its
    own, whose cues may start before it).
    """
    sr = settings.sample_rate
    gap, after_item = samples(settings.line_gap, sr), False
    for index, item in enumerate(section.items):
        what = f"{where}, item {index}"
        if isinstance(item, Pause):
            cursor += samples(item.seconds, sr)
            continue
        if not isinstance(item, Line | Sting):
            raise TypeError(f"{what}: expected Line, Pause or Sting, got {type(item).__name__}")
        cursor += gap if after_item else 0
        check_rate(item.sample_rate, what)
        length = _frames_at(item.audio, item.sample_rate, sr)
        if isinstance(item, Line):
            make = _maker(item.audio, item.sample_rate, item.gain_db, settings, what, speech=True)
            mono = _channels_of(item.audio) == 1 or settings.channels == 1
            timeline.voice.append(Placed(cursor, length, _fitted(make, length), mono))
            place_cues(timeline, item.cues, cursor, length, settings, what, floor=floor)
        else:
            make = _maker(item.audio, item.sample_rate, item.gain_db, settings, what)
            timeline.sfx.append(Placed(cursor, length, _fitted(make, length)))
        cursor, after_item = cursor + length, True
    return cursor


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


def place_cues(
    timeline: Placement,
    cues: Sequence[Cue],
    start: int,
    length: int,
    settings: MixSettings,
    what: str,
    *,
    floor: int | None = 0,
) -> None:
    """Place a line's cues on the sfx bus relative to the line at ``start``, none before ``floor``
    (see :func:`layout_section`)."""
    sr = settings.sample_rate
    for index, cue in enumerate(cues):
        where = f"{what}, cue {index}"
        check_rate(cue.sample_rate, where)
        at = start + round(cue.at * length) + samples(cue.offset, sr)
        n = _frames_at(cue.audio, cue.sample_rate, sr)
        make = _maker(cue.audio, cue.sample_rate, cue.gain_db, settings, where)
        timeline.sfx.append(Placed(at if floor is None else max(at, floor), n, _fitted(make, n)))
