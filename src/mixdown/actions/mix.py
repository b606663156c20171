"""The mix action: one rendition's timeline mixed from cached assets into the cache.

:func:`build_mix` reads the typed :class:`~mixdown.plan.model.Timeline`, mixes it
block by block (a long programme in two halves at once), and stores the mix
and its measurement for the master (:data:`ANALYSIS`).

A short programme's mix in a compact cache (a show with variants) is kept as
a record (:class:`~mixdown.store.cache.RecordWriter`): its master reads it
from memory right after it is made, and the 24-bit FLAC that would keep it
costs more CPU than mixing it again from its sections' pre-mixes, which is
what a later reader gets (:func:`mix_source`): the same samples, as the mix
is deterministic and both are whole 24-bit steps.
"""

from __future__ import annotations

import importlib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from ..errors import AudioError
from ..plan.model import MixPlan, section_sfx_key
from . import splice
from .context import Context, committed, once, reported
from .progress import Progress
from .shared import made_or_fetched, mix_wanted
from .splice import ANALYSIS, LAYOUT
from .timeline import mapped_object, mixer_bed, mixer_item, mixer_settings

__all__ = [
    "ANALYSIS",
    "LAYOUT",
    "Change",
    "build_mix",
    "change_of",
    "mix_parts",
    "mix_source",
    "mixed_as_record",
    "program_of",
]


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
        lambda: made_or_fetched(context, mix_wanted(plan), lambda: _mix(context, plan)),
    )


def _mix_cached(context: Context, plan: MixPlan) -> bool:
    cache = context.cache
    return plan.key in cache and cache.side_path(plan.key, ANALYSIS).exists()


def _mix(context: Context, plan: MixPlan) -> None:
    """Mix a rendition from its sections' pre-mixes, part by part, into the cache.

    When the files in ``build/`` were made from an earlier mix of the same
    rendition, only the parts that differ from it are mixed again and the
    others copied (:mod:`mixdown.actions.splice`). A show that keeps its
    cache compact stores the mix as 24-bit FLAC (:mod:`mixdown.codecs.flac24`).
    No stem is stored: the master task makes them from the pre-mixes
    (:mod:`mixdown.codecs.stems`).
    """
    # scipy.signal (the resampler, the filters) is slow to import: imported on a thread of its
    # own, it is ready when the first lines are prepared, instead of stalling every thread
    # that needs it then.
    threading.Thread(target=importlib.import_module, args=("scipy.signal",), daemon=True).start()
    from ..dsp.master import Analysis

    program = program_of(context, plan)
    sr, channels, frames = program.sample_rate, program.channels, program.frames
    layout = splice.Layout.of(plan, program)
    parts = mix_parts(frames, sr, program.hop)
    cache = context.cache
    record = mixed_as_record(context, program)
    found = None if record else splice.plan(context, plan, program, layout, parts)  # one part: mixed whole
    writer: Any = (cache.record_writer if record else cache.writer)(plan.key, sr, channels, frames=frames)
    copying = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="mixdown-copy")
    try:
        redo = [True] * len(parts) if found is None else found.redo
        # the parts the parent holds are copied (in the kernel) while the others are mixed
        copies = [] if found is None else _copy_parts(copying, found, parts, writer)
        powers = found.powers if found is not None else None
        target = f"mix:{plan.name}"
        measured, powers = _mixed_in_parts(program, writer, target, parts, redo, powers)
        for copy in copies:
            copy.result()
        if found is not None:
            measured = found.joined(measured)
            print(
                f"{target}  spliced: mixed {found.redone} of {len(parts)} parts again ({found.seconds:.1f} s)"
            )
        analysis = Analysis.joined(sr, channels, frames, measured)
        cache.put_side(plan.key, ANALYSIS, analysis.to_bytes())
        splice.store(context, plan, layout, powers, found)
        committed(context, writer, {"kind": "mix", "name": plan.name}, target)
    except BaseException:
        copying.shutdown(cancel_futures=True)
        writer.discard()
        raise
    finally:
        copying.shutdown()


def mixed_as_record(context: Context, program: Any) -> bool:
    """Whether the mix of ``program`` (a :class:`~mixdown.dsp.mixer.Mix`) is kept as a record, not
    as samples: a short programme (mastered in one stream) in a compact cache, whose samples
    fit in what the cache holds in memory."""
    from ..codecs import parts
    from ..codecs.flac24 import MAX_CHANNELS
    from ..store.cache import RECENT_BYTES

    sr, channels, frames = program.sample_rate, program.channels, program.frames
    if not context.project.compact or channels > MAX_CHANNELS:
        return False
    return 4 * frames * channels <= RECENT_BYTES // 4 and not parts.usable(frames, sr)


def mix_source(context: Context, plan: MixPlan) -> Any:
    """The cached mix of ``plan`` as a :class:`~mixdown.codecs.wav.Source`: from memory if this
    build holds it (a short mix, read by its master right after it is made); one kept as a
    record and not held is mixed again from its sections' pre-mixes (and held, for the next
    reader)."""
    from ..codecs.wav import Source

    cache = context.cache
    samples = cache.remembered(plan.key)
    if samples is None:
        if not cache.kept_as_record(plan.key):
            return cache.source(plan.key)
        samples = _mixed_again(context, plan)
        cache.remember(plan.key, samples)  # read-only from now on
    return Source.of_array(samples, plan.timeline.sample_rate)


def _mixed_again(context: Context, plan: MixPlan) -> Any:
    """The samples of ``plan``'s mix kept as a record, mixed again as :func:`_mix` mixed them."""
    from ..codecs.flac24 import HEADROOM

    frames, sr, channels = context.cache.info(plan.key)
    program = program_of(context, plan)
    if (program.frames, program.sample_rate, program.channels) != (frames, sr, channels):
        context.cache.remove(plan.key)
        raise AudioError(
            f"mix:{plan.name}: its record in the cache says {frames:,} frames at {sr} Hz, "
            f"{channels} channels; mixed again it has {program.frames:,} at {program.sample_rate} "
            f"Hz, {program.channels} (the cache was changed by hand?); it was removed: run the "
            "build again to make it again"
        )
    writer = context.cache.record_writer(plan.key, sr, channels, frames=frames)
    parts = mix_parts(frames, sr, program.hop)
    _mixed_in_parts(program, writer, f"mix:{plan.name}", parts, [True] * len(parts), None)
    writer.quantize(HEADROOM)
    return writer.samples


def _copy_parts(
    pool: ThreadPoolExecutor, found: splice.Found, parts: list[tuple[int, int]], writer: Any
) -> list[Any]:
    """Copy the parts ``found`` keeps from the parent mix into ``writer``, on ``pool``."""
    return [
        pool.submit(writer.copy_from, found.parent, start, stop)
        for (start, stop), again in zip(parts, found.redo, strict=True)
        if not again
    ]


def program_of(context: Context, plan: MixPlan) -> Any:
    """The mixer's :class:`~mixdown.dsp.mixer.Mix` of ``plan``'s timeline, from its sections' pre-mixes."""
    from ..dsp import mixer as mixing
    from .section import premix_once

    timeline = plan.timeline
    sections: list[Any] = []
    for index, section in enumerate(timeline.sections):
        heading = plan.sections[index] if index < len(plan.sections) else ""
        key = plan.section_keys[index] if index < len(plan.section_keys) else None

        def items(section: Any = section, heading: str = heading) -> Any:
            made = tuple(mixer_item(context, item) for item in section.items)
            return mixing.Section(
                made, music=section.music, at=section.at, duck=section.duck, heading=heading
            )

        if key is None:
            sections.append(items())
            continue
        premix_once(context, plan, index)  # made by its section: task, unless it was lost since
        meta = context.cache.meta(key)
        sfx = mapped_object(context, section_sfx_key(key)) if meta.get("sfx") else None
        sections.append(
            mixing.Premixed(
                mapped_object(context, key),
                sfx,
                int(meta["pre"]),
                int(meta["length"]),
                items,
                music=section.music,
                at=section.at,
                duck=section.duck,
                heading=heading,
            )  # fmt: skip
        )
    bed = mixer_bed(context, timeline.bed) if timeline.bed is not None else None
    return mixing.Mix(sections, bed=bed, settings=mixer_settings(timeline))


def _mixed_in_parts(
    program: Any,
    writer: Any,
    target: str,
    parts: list[tuple[int, int]],
    redo: list[bool],
    powers: Any,
) -> tuple[list[Any], Any]:
    """Mix the ``parts`` of ``program`` that are to be made (``redo``) into ``writer``, on a
    thread per core; return each made part's measurement (None for the others) and the
    voice bus's power per ducking frame (None without ducking)."""
    sr, hop = program.sample_rate, program.hop
    made = [part for part, again in zip(parts, redo, strict=True) if again]
    if not made:
        return [None] * len(parts), powers
    frames = sum(b - a for a, b in made)
    # each part made is measured from a lead-in before it, which the voice pass must cover too
    voiced = _covering([(max(0, (a - splice.lead(sr, hop)) // hop * hop), b) for a, b in made])
    progress = Progress(target, "voice bus", sum(b - a for a, b in voiced), sr)
    with program.rendering(voiced, progress=progress.add, powers=powers) as rendering:
        part = _Part(rendering, writer, program.channels, Progress(target, "mixed", frames, sr))
        workers = min(len(made), os.cpu_count() or 1)
        if workers <= 1:
            found = [part(p) for p in made]
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-part") as threads:
                found = list(threads.map(part, made))
        results = iter(found)
        return [next(results) if again else None for again in redo], rendering.powers


def _covering(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``ranges`` (in order) with those that overlap or touch merged."""
    out: list[tuple[int, int]] = []
    for a, b in ranges:
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


class _Part:
    """Mixes one part of a programme into the writer and measures it; a failed part stops the others."""

    def __init__(self, rendering: Any, writer: Any, channels: int, progress: Progress) -> None:
        self.rendering, self.writer = rendering, writer
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
        from ..dsp.master import Analysis

        start, stop = part
        sr = self.progress.sr
        analysis = Analysis(sr, self.channels, threads=False)
        lead = min(start, splice.lead(sr, self.rendering.program.hop))
        for _, stems in self.rendering.blocks(start - lead, start):
            analysis.meter.add(stems.mixdown())
        analysis.meter.restart()
        for position, stems in self.rendering.blocks(start, stop):
            if self.failed.is_set():
                break
            block = stems.mixdown()
            self.writer.write_at(position, block)
            analysis.add(block)
            self.progress.add(len(block))
        return analysis.parts()


def mix_parts(frames: int, sr: int, hop: int) -> list[tuple[int, int]]:
    """The parts a programme is mixed and measured in: :data:`~mixdown.codecs.parts.PART_SECONDS` each.

    Fixed by the programme's length, never by the machine, so that its
    measurement is the same everywhere; each part starts on the master's
    part grid and on a ducking frame. An edit mixes again only the parts it
    touched (:mod:`mixdown.actions.splice`).
    """
    import math

    from ..codecs import parts as mastering

    unit = math.lcm(mastering.grid(sr), hop)
    length = max(unit, round(mastering.PART_SECONDS * sr / unit) * unit)
    return [(start, min(start + length, frames)) for start in range(0, frames, length)] or [(0, frames)]
