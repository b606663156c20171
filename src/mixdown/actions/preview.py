"""A section's preview: ``build/preview/<script>/<section>[@variant].wav`` and ``.mp3``.

Written when a ``section:`` task is named on doit's command line. The
section's pre-mix (voice and SFX, from the cache) is summed, normalised to
the show's ``[master] target_lufs`` and limited under its ceiling, encoded,
decoded and checked like a master (:func:`mixdown.codecs.deliver.deliver`).
With ``--bed`` it is mixed instead as a one-section programme over the
show's music bed, ducked as in the mix. Every stage streams: a long section
is never held whole.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..plan.model import MixPlan, section_sfx_key
from ..show.project import Project
from ..store import files
from .context import Context, relative
from .timeline import mixer_bed, mixer_item, mixer_settings

__all__ = ["FORMATS", "clean_preview", "mixer_section", "playable_object", "preview_paths", "write_preview"]

FORMATS = ("wav", "mp3")


def preview_paths(project: Project, task: str) -> list[Path]:
    """The preview files of the ``section:`` target ``task``, one per format of :data:`FORMATS`."""
    stem = project.build_dir / "preview" / task.split(":", 1)[1]
    return [stem.with_name(f"{stem.name}.{fmt}") for fmt in FORMATS]


def playable_object(context: Context, key: str, target: str, source: Callable[[], Any] | None = None) -> Path:
    """A file a player reads as the cache object ``key`` (``target``'s) sounds: the object
    itself, or for a compact one (24-bit FLAC at its scale, or a mix kept as a record, which
    ``source`` reads) a float WAV of it, written to ``build/preview/`` (``mixdown play mix:…``)."""
    from ..codecs.wav import write_blocks_atomic

    cache = context.cache
    if not cache.meta(key).get("codec"):
        return cache.path(key)
    path = context.project.build_dir / "preview" / f"{target.replace(':', '-')}.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_blocks_atomic(path, source() if source is not None else cache.source(key), subtype="FLOAT")
    return path


def clean_preview(context: Context, task: str) -> None:
    """doit ``clean`` action of a ``section:`` task: remove its preview files."""
    for path in preview_paths(context.project, task):
        path.unlink(missing_ok=True)


def mixer_section(context: Context, plan: MixPlan, index: int, *, music: str = "auto") -> Any:
    """The mixer's :class:`~mixdown.dsp.items.Section` of ``plan``'s section ``index``, items from
    the cache, without its marker (a section heard on its own starts at once)."""
    from ..dsp import mixer as mixing

    section = plan.timeline.sections[index]
    heading = plan.sections[index] if index < len(plan.sections) else ""
    items = tuple(mixer_item(context, item) for item in section.items)
    return mixing.Section(items, music=music, duck=section.duck, heading=heading)


def write_preview(context: Context, plan: MixPlan, index: int, *, bed: bool = False) -> list[Path]:
    """Write the preview of ``plan``'s section ``index`` (its pre-mix must be cached); return its files.

    ``bed`` puts the rendition's music bed under it (a rendition without
    one is previewed without, and says so).
    """
    from ..codecs.deliver import deliver
    from ..settings import Delivery, mp3_bitrate, rate_for

    task = plan.section_task(index)
    timeline = plan.timeline
    if bed and timeline.bed is None:
        print(f"{task}  {plan.name} has no music bed: previewed without one", file=sys.stdout)
    paths = preview_paths(context.project, task)
    stem = paths[0].with_suffix("")
    files.sweep_once(stem.parent)
    with _programme(context, plan, index, bed=bed and timeline.bed is not None) as (source, silent):
        delivery = Delivery(
            "preview",
            plan.master["target_lufs"],
            plan.master["ceiling_dbtp"],
            math.inf if silent else 1.0,  # silence cannot be brought to a loudness: kept as it is
            FORMATS,
            bitrate=mp3_bitrate(Delivery.bitrate, rate_for("mp3", timeline.sample_rate)),
        )
        seconds = source.frames / source.sample_rate
        for path, found in deliver(source, stem, delivery, target=task):
            print(f"{task}  {found}  {seconds:6.1f} s  {relative(context, path)}", file=sys.stdout)
    return paths


@contextmanager
def _programme(context: Context, plan: MixPlan, index: int, *, bed: bool) -> Iterator[tuple[Any, bool]]:
    """What the preview is made of, as a block source in a temporary float WAV, and whether it
    is digital silence; the file is gone afterwards."""
    from ..codecs.wav import Source, WavWriter
    from ..dsp.rendering import scratch_dir

    blocks, sr, channels, frames = _bedded(context, plan, index) if bed else _premixed(context, plan, index)
    fd, name = tempfile.mkstemp(
        prefix="mixdown-preview-", suffix=".wav", dir=scratch_dir(frames * channels * 4)
    )
    os.close(fd)
    try:
        writer, position, peak = WavWriter(name, sr, channels, "FLOAT", frames), 0, 0.0
        try:
            for block in blocks:
                writer.write_at(position, block)
                position += len(block)
                peak = max(peak, float(abs(block).max(initial=0.0)))
        finally:
            writer.close()
        yield Source.of_file(name), peak == 0.0
    finally:
        os.unlink(name)


def _premixed(context: Context, plan: MixPlan, index: int) -> tuple[Iterator[Any], int, int, int]:
    """The cached pre-mix's voice and SFX summed, in blocks; its rate, channels and length."""
    import numpy as np

    cache, key = context.cache, plan.section_keys[index]
    assert key is not None
    frames, sr, _ = cache.info(key)
    channels = plan.timeline.channels
    voice = cache.source(key).blocks()
    sfx = cache.source(section_sfx_key(key)).blocks() if cache.meta(key).get("sfx") else None

    def summed() -> Iterator[Any]:
        for block in voice:
            out = np.broadcast_to(block, (len(block), channels)).astype(np.float32)
            if sfx is not None:
                out += next(sfx)
            yield out

    return summed(), sr, channels, frames


def _bedded(context: Context, plan: MixPlan, index: int) -> tuple[Iterator[Any], int, int, int]:
    """The section mixed alone over the rendition's bed, in blocks; the rate, channels and length."""
    from dataclasses import replace

    from ..dsp import mixer as mixing

    timeline = plan.timeline
    assert timeline.bed is not None
    settings = replace(mixer_settings(timeline), length=0.0)  # a fixed length is the programme's
    program = mixing.Mix(
        [mixer_section(context, plan, index)], bed=mixer_bed(context, timeline.bed), settings=settings
    )
    blocks = (stems.mixdown() for stems in program.blocks())
    return blocks, program.sample_rate, program.channels, program.frames
