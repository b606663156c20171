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
from dataclasses import dataclass
from typing import Any

from ..plan.model import MixPlan, section_sfx_key
from .context import Context, once, reported
from .timeline import mixer_settings
from .preview import mixer_section, write_preview

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


def premix_once(context: Context, plan: MixPlan, index: int) -> None:
    """Make the pre-mix of ``plan``'s section ``index`` unless it is cached, under its key's lock.

    A section without samples (``plan.section_keys[index]`` is None) has none to make.
    """
    key = plan.section_keys[index]
    if key is None:
        return
    task = plan.section_task(index)
    once(context, key, task, "pre-mixing", lambda: key in context.cache, lambda: _premix(context, plan, index))


def _premix(context: Context, plan: MixPlan, index: int) -> None:
    """Lay the section out on its own and store its voice and SFX buses (see the module docs)."""
    from ..dsp.premix import Premix

    key = plan.section_keys[index]
    assert key is not None
    task = plan.section_task(index)
    settings = mixer_settings(plan.timeline)
    premix = Premix(mixer_section(context, plan, index), settings, where=task)
    sr, channels, frames, cache = settings.sample_rate, settings.channels, premix.frames, context.cache
    voice = cache.writer(key, sr, premix.voice_channels, frames=frames)
    sfx = cache.writer(section_sfx_key(key), sr, channels, frames=frames) if premix.has_sfx else None
    try:
        for block in premix.blocks(threads=min(os.cpu_count() or 1, 4)):
            voice.write_at(block.position, block.voice)
            if sfx is not None and block.sfx is not None:
                sfx.write_at(block.position, block.sfx)
        meta = {"kind": "section", "name": task, "pre": premix.pre, "length": premix.length}
        if sfx is not None:
            sfx.commit({**meta, "bus": "sfx"})
        voice.commit({**meta, "sfx": sfx is not None})  # last: the pre-mix is whole
    except BaseException:
        voice.discard()
        if sfx is not None:
            sfx.discard()
        raise
