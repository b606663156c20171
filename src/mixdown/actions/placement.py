"""Where everything lands in a rendition's programme: every voice line, SFX and music bed.

:func:`placement` lays the rendition's timeline out with the mixer's own
layout code (:attr:`mixdown.dsp.mixer.Mix.placement`) from the lengths of
its cached assets, reading none of their samples: a clip sits exactly where
the mix put it, to the sample, at the project's rate. Captions, chapters and
the OpenTimelineIO timeline (:mod:`~mixdown.actions.captions`,
:mod:`~mixdown.actions.otio`) are made from it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..plan.model import LineItem, MixPlan, PauseItem, SectionInfo, StingItem, Timeline
from .context import Context
from .timeline import mixer_item, mixer_settings

__all__ = ["Clip", "Programme", "SectionSpan", "placement"]


class Clip(NamedTuple):
    """One clip of a programme: what it plays (an asset key) and where, in samples."""

    kind: str  # "voice", "sfx" or "music"
    key: str  # the asset it plays
    start: int  # where it starts in the programme, at the project's rate
    frames: int  # how long it lasts there
    section: int  # the index of its section
    voice: str = ""  # voice lines: who speaks it
    text: str = ""  # voice lines: the text as written (before pronunciation rules)
    segment: str = ""  # music: "intro", "main" or "outro"


class SectionSpan(NamedTuple):
    """One section's stretch of the programme, ``[start, end)`` in samples, and its chapter."""

    name: str
    title: str
    chapter: bool
    start: int  # where the mixer starts it
    end: int  # where the next section starts (the programme's end for the last)


class Programme(NamedTuple):
    """A rendition's programme as laid out: its rate and length, its clips and its sections."""

    rendition: str
    sample_rate: int
    frames: int
    clips: tuple[Clip, ...]
    sections: tuple[SectionSpan, ...]

    def seconds(self, frames: int) -> float:
        """``frames`` samples in seconds."""
        return frames / self.sample_rate


def placement(context: Context, plan: MixPlan) -> Programme:
    """Where every item of ``plan``'s rendition lands, from its assets' cached lengths.

    Parameters
    ----------
    context : Context
        The build's context; every asset of ``plan`` must be in its cache.
    plan : MixPlan
        The rendition.

    Returns
    -------
    Programme
        Voice lines and SFX (cues and stings) in timeline order, then music
        (one clip per section that has a bed part under it); and the sections.
    """
    from ..dsp import mixer as mixing

    timeline = plan.timeline
    sections = [
        mixing.Section(tuple(mixer_item(context, item) for item in section.items), at=section.at)
        for section in timeline.sections
    ]
    # Only the presence of a bed moves the layout (its lead-in and tail): its samples are never read.
    silent = _no_samples(timeline.channels)
    bed = mixing.Bed(silent, _no_samples(timeline.channels, 2), silent, timeline.sample_rate)
    program = mixing.Mix(
        sections, bed=bed if timeline.bed is not None else None, settings=mixer_settings(timeline)
    )
    laid = program.placement
    info = plan.section_info or [SectionInfo(f"section {i + 1}", "", True, ()) for i in range(len(sections))]
    ends = [*laid.starts[1:], program.frames]
    spans = tuple(
        SectionSpan(s.name, s.title or s.name, s.chapter, start, end)
        for s, start, end in zip(info, laid.starts, ends, strict=True)
    )
    clips = _clips(timeline, info, laid) + _music(timeline, laid.starts, program.frames)
    return Programme(plan.name, timeline.sample_rate, program.frames, tuple(clips), spans)


def _no_samples(channels: int, frames: int = 0) -> Any:
    import numpy as np

    return np.zeros((frames, channels), dtype=np.float32)


def _clips(timeline: Timeline, info: list[SectionInfo], laid: Any) -> list[Clip]:
    """The layout's clips named by their items: the mixer places each line on the voice bus and
    then its cues on the sfx bus, a sting on the sfx bus, in the timeline's order."""
    voice, sfx = iter(laid.voice), iter(laid.sfx)
    out: list[Clip] = []
    for index, (section, about) in enumerate(zip(timeline.sections, info, strict=True)):
        lines = iter(about.lines)
        for item in section.items:
            if isinstance(item, PauseItem):
                continue
            if isinstance(item, StingItem):
                placed = next(sfx)
                out.append(Clip("sfx", item.key, placed.start, placed.length, index))
                continue
            assert isinstance(item, LineItem)
            placed = next(voice)
            spoken = next(lines, None)
            who, text = (spoken.voice, spoken.text) if spoken is not None else ("", "")
            out.append(Clip("voice", item.key, placed.start, placed.length, index, who, text))
            for cue in item.cues:
                placed = next(sfx)
                out.append(Clip("sfx", cue.key, placed.start, placed.length, index))
    return out


def _music(timeline: Timeline, starts: list[int], frames: int) -> list[Clip]:
    """One music clip per section with a bed part under it, over the stretch the section owns
    (the first from the programme's start, the last to its end)."""
    bed = timeline.bed
    if bed is None:
        return []
    count = len(timeline.sections)
    bounds = [0, *starts[1:], frames]
    out = []
    for index, section in enumerate(timeline.sections):
        part = section.music
        if part == "auto":
            part = "intro" if index == 0 else "outro" if index == count - 1 else "main"
        if part == "none" or bounds[index + 1] <= bounds[index]:
            continue
        start, stop = bounds[index], bounds[index + 1]
        out.append(Clip("music", bed.segment(part), start, stop - start, index, segment=part))
    return out
