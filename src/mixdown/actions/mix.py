"""The mix action: one rendition's timeline mixed from cached assets into the cache.

:func:`build_mix` reads the typed :class:`~mixdown.plan.model.Timeline`, mixes it
block by block (a long programme in two halves at once), and stores the mix,
its measurement for the master (:data:`ANALYSIS`) and, if asked for, its stems.
"""

from __future__ import annotations

import importlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from ..plan.model import MixPlan, PauseItem, StingItem, Timeline, TimelineBed, TimelineItem
from ..settings import STEMS
from .context import Context, once, reported
from .progress import Progress

__all__ = [
    "ANALYSIS",
    "LAYOUT",
    "Change",
    "aligned_anchor",
    "build_mix",
    "change_of",
    "mixer_bed",
    "mixer_item",
    "mixer_settings",
]

# kept beside a mix's cache object: its measurement, which saves the master a pass
ANALYSIS = "analysis.npz"
# and where its sections were placed, and what it was spliced from (see change_of)
LAYOUT = "layout.json"


class Change(NamedTuple):
    """How a mix differs from the mix it was spliced from (its ``parent``).

    Every sample outside ``[start, stop)`` is, bit for bit, the parent's
    sample at the same position; ``stop`` is the mix's end when the two
    differ in length.
    """

    parent: str  # the parent mix's key
    start: int
    stop: int


def change_of(context: Context, plan: MixPlan) -> Change | None:
    """How ``plan``'s mix differs from the mix it was spliced from, or None if it was made whole."""
    import json

    try:
        record = json.loads(context.cache.side_path(plan.key, LAYOUT).read_text("utf-8"))
        parent, (start, stop) = record["parent"], record["changed"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(parent, str) or not (isinstance(start, int) and isinstance(stop, int)):
        return None
    return Change(parent, start, stop)


def build_mix(context: Context, plan: MixPlan) -> Any:
    """doit action: mix one rendition into the cache."""
    return reported(mix_once, context, plan, f"mix:{plan.name}")


def mix_once(context: Context, plan: MixPlan) -> None:
    """Mix a rendition into the cache unless it is there whole already (its stems too, if
    the show asks for them): a mix made by another build, or before a ``doit -a``."""
    once(
        context,
        plan.key,
        f"mix:{plan.name}",
        "mixing",
        lambda: _mix_cached(context, plan),
        lambda: _mix(context, plan),
    )


def _buses(plan: MixPlan) -> tuple[str, ...]:
    """The buses kept as stems beside the mix: all of them if the show asks for stems."""
    return STEMS if any(p.parent.suffix == ".stems" for p in plan.outputs) else ()


def _mix_cached(context: Context, plan: MixPlan) -> bool:
    cache = context.cache
    return (
        plan.key in cache
        and cache.side_path(plan.key, ANALYSIS).exists()
        and all(plan.stem_key(bus) in cache for bus in _buses(plan))
    )


def _mix(context: Context, plan: MixPlan) -> None:
    """Mix a rendition's timeline from cached assets, block by block, into the cache.

    The stems are stored beside the mix when the show asks for them. A long
    programme is mixed in two halves at once (:func:`_mix_parts`).
    """
    # scipy.signal (the resampler, the filters) is slow to import: imported on a thread of its
    # own, it is ready when the first lines are prepared, instead of stalling every thread
    # that needs it then.
    threading.Thread(target=importlib.import_module, args=("scipy.signal",), daemon=True).start()
    from ..dsp.master import Analysis

    program = _program(context, plan)
    sr, channels, frames = program.sample_rate, program.channels, program.frames
    buses = _buses(plan)
    cache = context.cache
    writers = {bus: cache.writer(plan.stem_key(bus), sr, channels, frames=frames) for bus in buses}
    writers["mix"] = cache.writer(plan.key, sr, channels, frames=frames)
    try:
        measured = _mixed_in_parts(program, writers, buses, f"mix:{plan.name}")
        for bus in buses:
            writers[bus].commit({"kind": "stem", "bus": bus, "name": plan.name})
        analysis = Analysis.joined(sr, channels, frames, measured)
        cache.put_side(plan.key, ANALYSIS, analysis.to_bytes())
        writers["mix"].commit({"kind": "mix", "name": plan.name})
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise


def _program(context: Context, plan: MixPlan) -> Any:
    """The mixer's :class:`~mixdown.dsp.mixer.Mix` of ``plan``'s timeline."""
    from ..dsp import mixer as mixing

    timeline = plan.timeline
    sections = [
        mixing.Section(
            tuple(mixer_item(context, item) for item in section.items),
            music=section.music,
            at=section.at,
            duck=section.duck,
            heading=plan.sections[index] if index < len(plan.sections) else "",
        )
        for index, section in enumerate(timeline.sections)
    ]
    bed = mixer_bed(context, timeline.bed) if timeline.bed is not None else None
    return mixing.Mix(sections, bed=bed, settings=mixer_settings(timeline))


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


def _mixed_in_parts(program: Any, writers: dict[str, Any], buses: tuple[str, ...], target: str) -> list[Any]:
    """Mix ``program`` into ``writers``, a thread per part (:func:`_mix_parts`); each part's measurement."""
    sr, frames = program.sample_rate, program.frames
    halves = _mix_parts(frames, sr)
    voiced = Progress(target, "voice bus", frames, sr)
    with program.rendering(halves, progress=voiced.add) as rendering:
        part = _Part(rendering, writers, buses, program.channels, Progress(target, "mixed", frames, sr))
        if len(halves) == 1:
            return [part(halves[0])]
        with ThreadPoolExecutor(max_workers=len(halves), thread_name_prefix="mixdown-part") as threads:
            futures = [threads.submit(part, half) for half in halves]
            return [future.result() for future in futures]


class _Part:
    """Mixes one part of a programme into the writers and measures it; a failed part stops the others."""

    def __init__(
        self,
        rendering: Any,
        writers: dict[str, Any],
        buses: tuple[str, ...],
        channels: int,
        progress: Progress,
    ) -> None:
        self.rendering, self.writers, self.buses = rendering, writers, buses
        self.channels, self.progress = channels, progress
        self.failed = threading.Event()

    def __call__(self, part: tuple[int, int]) -> Any:
        try:
            return self._mix(part)
        except BaseException:
            self.failed.set()
            raise

    def _mix(self, part: tuple[int, int]) -> Any:
        # Each part is written in place and measured for the master on its own (a second
        # of the mix before it primes its meter), so the parts join into one measurement.
        from ..codecs.parts import lead_in
        from ..dsp.master import Analysis

        start, stop = part
        sr = self.progress.sr
        analysis = Analysis(sr, self.channels, threads=False)
        lead = min(start, lead_in(sr))
        for _, stems in self.rendering.blocks(start - lead, start):
            analysis.meter.add(stems.mixdown())
        analysis.meter.restart()
        for position, stems in self.rendering.blocks(start, stop):
            if self.failed.is_set():
                break
            block = stems.mixdown()
            for bus in self.buses:
                self.writers[bus].write_at(position, getattr(stems, bus))
            self.writers["mix"].write_at(position, block)
            analysis.add(block)
            self.progress.add(len(block))
        return analysis.parts()


def _mix_parts(frames: int, sr: int) -> list[tuple[int, int]]:
    """The ranges a programme is mixed in, a thread each: halves of a long programme.

    Fixed by the programme's length (as the master's parts are), so that
    its measurement is the same on every machine; the cut falls on the
    master's part grid and on a ducking frame.
    """
    import math

    from ..codecs import parts as mastering
    from ..dsp.mixer import ducking_hop

    if not mastering.usable(frames, sr):
        return [(0, frames)]
    unit = math.lcm(mastering.grid(sr), ducking_hop(sr))
    middle = max(unit, round(frames / 2 / unit) * unit)
    return [(0, middle), (middle, frames)] if middle < frames else [(0, frames)]


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
