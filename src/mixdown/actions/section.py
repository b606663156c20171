"""The section action: one section's pre-mix (its speech and SFX, no bed) into the cache.

A pre-mix (:class:`~mixdown.dsp.premix.Premix`) is stored as two cache
objects of the same length: the voice bus under the section's key, and, when
the section has SFX, the SFX bus under :func:`~mixdown.plan.model.section_sfx_key`.
The voice bus is committed last, so that its key's presence means the pre-mix
is whole. Its record says how to place it::

    {"kind": "section", "name": task, "pre": int, "length": int, "sfx": bool}

``pre`` samples of it come before the section's start, ``length`` is the
section's own duration. A section named on doit's command line also writes
its preview (:mod:`mixdown.actions.preview`).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..plan.model import MixPlan, section_sfx_key
from ..store.remote import Wanted
from .context import Context, committed, once, reported
from .preview import mixer_section, write_preview
from .shared import made_or_fetched, section_wanted
from .timeline import mixer_settings

__all__ = ["SectionJob", "build_section", "premix_once"]


@dataclass(frozen=True)
class SectionJob:
    """What a ``section:`` task does: pre-mix section ``index`` of ``mix``, and preview it if asked."""

    mix: MixPlan  # the first rendition that has the section
    index: int  # its index among that rendition's timeline sections
    preview: bool = False  # named on the command line: write build/preview/…


def build_section(context: Context, job: SectionJob, bed: bool = False) -> Any:
    """doit action: make a section's pre-mix unless it is cached; write its preview if named.

    ``bed`` is the task's ``--bed`` parameter: the preview has the show's
    music bed under it.
    """
    task = job.mix.section_task(job.index)
    return reported(_build, context, (job, bed), task)


def _build(context: Context, job_and_bed: tuple[SectionJob, bool]) -> None:
    job, bed = job_and_bed
    premix_once(context, job.mix, job.index)
    if job.preview:
        write_preview(context, job.mix, job.index, bed=bed)


def premix_once(
    context: Context, plan: MixPlan, index: int, made: Callable[[Wanted], None] | None = None
) -> None:
    """Make the pre-mix of ``plan``'s section ``index`` unless it is cached, under its key's lock:
    fetched from the remote, or pre-mixed here (or by ``made(wanted)``: on a cluster).

    A section without samples (``plan.section_keys[index]`` is None) has none to make.
    """
    key = plan.section_keys[index]
    if key is None:
        return
    wanted = section_wanted(key, plan.section_task(index))
    make = made or (lambda w: made_or_fetched(context, w, lambda: _premix(context, plan, index)))
    once(context, key, wanted.target, "pre-mixing", lambda: key in context.cache, lambda: make(wanted))


def _premix(context: Context, plan: MixPlan, index: int) -> None:
    """Lay the section out on its own and store its voice and SFX buses (see the module docs).

    After an edit of the section, what its earlier pre-mix already holds (the
    same clips at the same places, or all shifted alike after a change of
    length) is copied from it, and only the stretch between is summed again
    (:func:`mixdown.actions.splice.reuse_premix`).
    """
    from ..dsp.premix import Premix
    from . import splice

    key = plan.section_keys[index]
    assert key is not None
    task = plan.section_task(index)
    settings = mixer_settings(plan.timeline)
    premix = Premix(mixer_section(context, plan, index), settings, where=task)
    clips = _clips(plan.timeline.sections[index].items, premix)
    sr, channels, frames, cache = settings.sample_rate, settings.channels, premix.frames, context.cache
    earlier = splice.earlier_section(context, plan, index)
    reuse = (
        splice.reuse_premix(context, earlier, clips, premix.pre, premix.length, frames) if earlier else None
    )
    if reuse is not None and not _reusable(context, reuse.earlier, premix):
        reuse = None
    voice = cache.writer(key, sr, premix.voice_channels, frames=frames)
    sfx = cache.writer(section_sfx_key(key), sr, channels, frames=frames) if premix.has_sfx else None
    try:
        start, stop = (0, frames) if reuse is None else (reuse.start, reuse.stop)
        if reuse is not None:
            _copy(voice, sfx, reuse, frames)
        _summed(premix, voice, sfx, start, stop)
        meta = {"kind": "section", "name": task, "pre": premix.pre, "length": premix.length}
        if sfx is not None:
            committed(context, sfx, {**meta, "bus": "sfx"}, task)
        committed(context, voice, {**meta, "sfx": sfx is not None, "clips": clips}, task)  # last: it is whole
        if reuse is not None:
            print(
                f"{task}  spliced: summed {(stop - start) / sr:.1f} s of {frames / sr:.1f} s again",
                file=sys.stdout,
            )
    except BaseException:
        voice.discard()
        if sfx is not None:
            sfx.discard()
        raise


def _summed(premix: Any, voice: Any, sfx: Any, start: int, stop: int) -> None:
    """Sum frames ``[start, stop)`` of ``premix`` into the writers of its buses.

    Summing and writing the blocks is one thread's work while the clips are
    made on others; the range is cut in as many stretches as there are cores
    (up to four, on whole blocks), each summed on a thread of its own, so
    that a section keeps every core busy. A pre-mix's samples do not depend on
    the range asked for: a clip across a cut is made by both stretches.
    """
    from ..dsp.signal import BLOCK

    cores = min(os.cpu_count() or 1, 4)
    blocks = -(-(stop - start) // BLOCK)
    cuts = [start + blocks * i // cores * BLOCK for i in range(cores)] + [stop]
    ranges = [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]
    failed = threading.Event()

    def run(part: tuple[int, int]) -> None:
        try:
            for block in premix.blocks(threads=max(1, cores // len(ranges)), start=part[0], stop=part[1]):
                if failed.is_set():
                    return
                voice.write_at(block.position, block.voice)
                if sfx is not None and block.sfx is not None:
                    sfx.write_at(block.position, block.sfx)
        except BaseException:
            failed.set()
            raise

    if len(ranges) <= 1:
        for part in ranges:
            run(part)
        return
    with ThreadPoolExecutor(max_workers=len(ranges), thread_name_prefix="mixdown-section") as pool:
        for done in [pool.submit(run, part) for part in ranges]:
            done.result()


def _reusable(context: Context, earlier: str, premix: Any) -> bool:
    """Whether the ``earlier`` pre-mix has the buses of ``premix`` and is stored as it will be
    (:func:`~mixdown.actions.splice.stored_alike`)."""
    from . import splice

    cache = context.cache
    same_buses = (cache.info(earlier)[2], cache.meta(earlier).get("sfx")) == (
        premix.voice_channels,
        premix.has_sfx,
    )
    return same_buses and splice.stored_alike(context, earlier)


def _copy(voice: Any, sfx: Any, reuse: Any, frames: int) -> None:
    """Copy into the writers what the earlier pre-mix holds of the new one (see :class:`Reuse`)."""
    earlier = reuse.earlier
    buses = [(voice, earlier)] + ([(sfx, section_sfx_key(earlier))] if sfx is not None else [])
    for writer, source in buses:
        if reuse.start:
            writer.copy_from(source, 0, reuse.start)
        if reuse.stop < frames:
            writer.copy_from(source, reuse.stop - reuse.shift, frames - reuse.shift, at=reuse.stop)


def _clips(items: Any, premix: Any) -> list[list[Any]]:
    """Each clip of a pre-mix as ``[what, start, stop]``: what it plays (a digest of its item or
    cue), and where. An edit's splice compares two versions of a section by them
    (:mod:`mixdown.actions.splice`): a clip the same in both sounds the same in both."""
    from ..keys import content_key
    from ..plan.model import LineItem, StingItem

    voice_ids: list[str] = []
    sfx_ids: list[str] = []
    for item in items:
        if isinstance(item, LineItem):
            voice_ids.append(content_key(["line", item.key, item.gain_db])[:20])
            sfx_ids.extend(content_key(["cue", item.key, cue.to_json()])[:20] for cue in item.cues)
        elif isinstance(item, StingItem):
            sfx_ids.append(content_key(item.to_json())[:20])
    voice, sfx = premix.extents()
    if (len(voice), len(sfx)) != (len(voice_ids), len(sfx_ids)):
        raise AssertionError("a pre-mix's clips do not follow its items")
    return [[what, a, b] for what, (a, b) in zip([*voice_ids, *sfx_ids], [*voice, *sfx], strict=True)]
