"""From a plan's timeline to the mixer's objects: its items, read from the cache when they sound.

Shared by the actions that mix (:mod:`~mixdown.actions.mix`,
:mod:`~mixdown.actions.section`, :mod:`~mixdown.actions.preview`).
"""

from __future__ import annotations

from typing import Any

from ..plan.model import PauseItem, StingItem, Timeline, TimelineBed, TimelineItem
from .context import Context

__all__ = ["aligned_anchor", "mapped_object", "mixer_bed", "mixer_item", "mixer_settings"]


def mixer_bed(context: Context, bed: TimelineBed) -> Any:
    """The mixer's :class:`~mixdown.dsp.mixer.Bed`: its segments from the cache, at one rate."""
    from ..dsp import mixer as mixing
    from ..dsp.signal import resample

    segments = {name: context.cache.get(bed.segment(name)) for name in ("intro", "main", "outro")}
    sr = max(s for _, s in segments.values())
    parts = {name: resample(y, s, sr) for name, (y, s) in segments.items()}
    seamless = context.cache.meta(bed.main).get("loop") == "seamless"
    return mixing.Bed(
        parts["intro"], parts["main"], parts["outro"], sr, gain_db=bed.gain_db, seamless=seamless
    )


def mixer_settings(timeline: Timeline) -> Any:
    """The mixer's settings from a timeline: [mix] plus the project's rate and channels."""
    from ..dsp import mixer as mixing

    settings = dict(timeline.settings)
    switches = settings.pop("speech", None)
    speech = None
    if isinstance(switches, dict) and any(switches.values()):
        from ..dsp.speech import SpeechSettings

        speech = SpeechSettings(**switches)
    return mixing.MixSettings(
        sample_rate=timeline.sample_rate, channels=timeline.channels, speech=speech, **settings
    )


def mixer_item(context: Context, item: TimelineItem) -> Any:
    """A mixer item from a timeline item; its audio is read when the mix reaches it."""
    from ..dsp import mixer as mixing

    if isinstance(item, PauseItem):
        return mixing.Pause(item.seconds)
    audio, sr = _lazy(context, item.key)
    if isinstance(item, StingItem):
        return mixing.Sting(audio, sr, gain_db=item.gain_db)
    alignment = context.cache.meta(item.key).get("alignment") if item.cues else None
    cues = []
    for cue in item.cues:
        cue_audio, cue_sr = _lazy(context, cue.key)
        at = aligned_anchor(alignment, cue.at, audio.frames / sr) if alignment else cue.at
        cues.append(mixing.Cue(cue_audio, cue_sr, at=at, gain_db=cue.gain_db, offset=cue.offset))
    return mixing.Line(audio, sr, cues=tuple(cues), gain_db=item.gain_db)


def mapped_object(context: Context, key: str) -> Any:
    """A cache object as the mixer's :class:`~mixdown.dsp.mixer.Lazy` audio, memory-mapped when
    it sounds: a pre-mix (a section may last an hour) is read as the mix passes through it
    (:meth:`~mixdown.store.cache.Cache.mapped`)."""
    from ..dsp.mixer import Lazy

    cache = context.cache
    frames, _, channels = cache.info(key)
    return Lazy(frames, lambda: cache.mapped(key), channels)


def _lazy(context: Context, key: str) -> tuple[Any, int]:
    """A cache object as the mixer's :class:`~mixdown.dsp.mixer.Lazy` audio, and its rate."""
    from ..dsp.mixer import Lazy

    frames, sr, channels = context.cache.info(key)
    return Lazy(frames, lambda: context.cache.get(key)[0], channels), sr


def aligned_anchor(alignment: list[list[Any]], at: float, seconds: float) -> float:
    """Move a cue's anchor from its character position to when that character is spoken.

    ``alignment`` is a renderer's ``[[character, start_seconds], …]`` for the
    line (ElevenLabs with-timestamps); ``at`` is the cue's place as a fraction
    of the text. Returns the fraction of the line's duration.
    """
    if seconds <= 0 or not alignment:
        return at
    index = min(round(at * len(alignment)), len(alignment))
    spoken = alignment[index][1] if index < len(alignment) else seconds
    return min(max(float(spoken) / seconds, 0.0), 1.0)
