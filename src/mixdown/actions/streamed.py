"""A master made as one stream: into a cache object, or, in a compact show, kept as a record.

A short programme is mastered in one pass over its mix
(:func:`mixdown.dsp.master.master_stream`), straight into the files in
``build/``. A float cache also keeps the master's samples (a float WAV costs
little to write); a compact cache (``[cache] compact``: a show with
variants) keeps a record instead (:data:`STREAMED` beside the master's key:
its loudness and settings) when every [master] format was written from the
stream. The 24-bit FLAC of a 20-second master costs more CPU than the rest
of its fixed cost, and most masters are never read again. Whatever reads
the master later (a ``[deliveries.NAME]``, a file lost from ``build/``)
masters the mix again, which gives the same samples: the pass is
deterministic, and its files were fed the 24-bit steps a compact object
holds (:func:`mixdown.codecs.flac24.quantized`). Its mix, kept as a record
too, is mixed again first (:func:`mixdown.actions.mix.mix_source`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from ..plan.model import MixPlan
from ..settings import Delivery
from .context import Context, once
from .mix import ANALYSIS, mix_source
from .progress import Progress

__all__ = [
    "STREAMED",
    "Deliverable",
    "MasterJob",
    "StreamTee",
    "LazyMaster",
    "StreamedMaster",
    "master_meta",
    "master_streamed",
    "measured",
    "stored_streamed",
]

# beside a short master's key in a compact cache: its record, instead of its samples
STREAMED = "streamed.json"


class Deliverable(NamedTuple):
    """Files to write from a master as it is made: ``stem`` + each of ``direct``'s formats."""

    stem: Path  # the files' path without the format's suffix
    delivery: Delivery
    direct: list[str]  # the formats at the master's rate, encoded while it is made


class MasterJob(NamedTuple):
    """One master in the making: what every way of making it (streamed, in parallel parts,
    spliced) is given."""

    context: Context
    plan: MixPlan
    mixed: Any  # the mix, a block source (mixdown.codecs.wav.Source)
    settings: Any  # the pass's mixdown.dsp.master.MasterSettings, from [master]
    progress: Progress
    deliverable: Deliverable | None  # the files written as the master is made, if any

    @classmethod
    def of(
        cls, context: Context, plan: MixPlan, deliverable: Deliverable | None, *, doing: str = "mastered"
    ) -> MasterJob:
        """The job of mastering ``plan``'s cached mix as its ``[master]`` says; ``doing`` is what
        its progress line calls it."""
        from ..dsp.master import MasterSettings

        mixed = mix_source(context, plan)
        progress = Progress(f"master:{plan.name}", doing, mixed.frames, mixed.sample_rate)
        settings = MasterSettings(plan.master["target_lufs"], plan.master["limit_dbtp"])
        return cls(context, plan, mixed, settings, progress, deliverable)


def master_meta(plan: MixPlan, loudness: Any) -> dict[str, Any]:
    """A master's record: its kind, name and :class:`~mixdown.dsp.master.Loudness`."""
    found = [loudness.integrated_lufs, loudness.true_peak_dbtp, loudness.lra]
    return {"kind": "master", "name": plan.name, "loudness": str(loudness), "measured": found}


def measured(meta: dict[str, Any]) -> Any:
    """The :class:`~mixdown.dsp.master.Loudness` a :func:`master_meta` record holds, or None."""
    from ..dsp.master import Loudness

    found = meta.get("measured")
    return Loudness(*found) if isinstance(found, list) and len(found) == 3 else None


def stored_streamed(context: Context, plan: MixPlan) -> Any:
    """The loudness in ``plan``'s :data:`STREAMED` record, if the cache has one made with the
    plan's [master] settings; else None."""
    try:
        record = json.loads(context.cache.side_path(plan.master_key, STREAMED).read_text("utf-8"))
    except (OSError, ValueError):
        return None  # none, or unreadable: master again
    if not isinstance(record, dict) or record.get("master") != plan.master:
        return None
    return measured(record)


def _kept_as_record(context: Context, deliverable: Deliverable | None) -> bool:
    """Whether a master streamed for ``deliverable`` is kept as a record, not as samples: in a
    compact cache, when the stream writes every one of its formats."""
    if not context.project.compact or deliverable is None or not deliverable.direct:
        return False
    return set(deliverable.direct) == set(deliverable.delivery.formats)


def master_streamed(job: MasterJob, *, threads: bool) -> tuple[Any, Any, list[Any]]:
    """Master the mix of ``job`` as one stream into the direct files of its deliverable and into
    a cache object, or a :data:`STREAMED` record (see the module docs); return the master
    (a block source), its loudness and the files written with their measurements."""
    from ..codecs.deliver import Formats
    from ..dsp.master import Analysis, master_stream

    context, plan, mixed, settings, progress, deliverable = job

    cache = context.cache
    analysis = Analysis.load(cache.side_path(plan.key, ANALYSIS))  # saves the measuring pass
    keep = not _kept_as_record(context, deliverable)
    sinks: list[StreamTee] = []

    def open_sink() -> StreamTee:
        writer = None
        if keep:
            writer = cache.writer(plan.master_key, mixed.sample_rate, mixed.channels, frames=mixed.frames)
        formats = None
        if deliverable is not None and deliverable.direct:
            stem, delivery, direct = deliverable
            formats = Formats(stem, direct, mixed.sample_rate, mixed.channels, delivery, mixed.frames)
        sinks.append(StreamTee(writer, formats, compact=context.project.compact))
        return sinks[-1]

    try:
        loudness = master_stream(
            mixed, settings, open_sink, progress=progress.say, threads=threads, analysis=analysis
        )
        if sinks[-1].writer is not None:
            sinks[-1].writer.commit(master_meta(plan, loudness), flac=context.project.compact)
        encoded = sinks[-1].formats.finish() if sinks[-1].formats else []
    except BaseException:
        if sinks:
            sinks[-1].discard()
        raise
    if keep:
        return cache.source(plan.master_key), loudness, encoded
    if stored_streamed(context, plan) is None:  # else made before (doit -a, a lost file): the same
        record = {**master_meta(plan, loudness), "master": plan.master, "frames": mixed.frames}
        cache.put_side(plan.master_key, STREAMED, json.dumps(record, indent=1).encode("utf-8"))
    return StreamedMaster(context, plan, mixed, loudness), loudness, encoded


class LazyMaster:
    """A master whose samples are made into the cache, once, the first time something reads
    them (:meth:`_make`, under the key's lock); until then only its shape and loudness."""

    def __init__(self, context: Context, plan: MixPlan, shape: Any, loudness: Any) -> None:
        self.sample_rate, self.channels, self.frames = shape.sample_rate, shape.channels, shape.frames
        self._context, self._plan, self._loudness = context, plan, loudness
        self._source: Any = None

    def blocks(self, size: int | None = None) -> Any:
        """The master's samples in float32 blocks ``[shape=(n, channels)]``."""
        if self._source is None:
            cache, plan = self._context.cache, self._plan
            once(
                self._context, plan.master_key, f"master:{plan.name}", "mastering",
                lambda: plan.master_key in cache, self._make,
            )  # fmt: skip
            self._source = cache.source(plan.master_key)
        return self._source.blocks() if size is None else self._source.blocks(size)

    def _make(self) -> None:
        raise NotImplementedError


class StreamedMaster(LazyMaster):
    """A master kept as a :data:`STREAMED` record, as a block source: mastered again into a
    cache object the first time it is read (the samples its files were made from)."""

    def _make(self) -> None:
        master_streamed(MasterJob.of(self._context, self._plan, None, doing="mastered again"), threads=True)


class StreamTee:
    """A master_stream sink feeding the cache object (if kept) and, optionally, the deliverables.

    With ``compact`` everything is fed the master's 24-bit steps: the files
    written now are what a later delivery from the stored master would write.
    """

    def __init__(self, writer: Any, formats: Any, *, compact: bool = False) -> None:
        self.writer, self.formats = writer, formats
        self.quantized: Any = None
        if compact:
            from ..codecs.flac24 import quantized

            self.quantized = quantized

    def write(self, block: Any) -> None:
        """Feed ``block`` ``[shape=(n, channels)]`` to every sink."""
        if self.quantized is not None:
            block = self.quantized(block)
        if self.writer is not None:
            self.writer.write(block)
        if self.formats is not None:
            self.formats.write(block)

    def discard(self) -> None:
        """Throw away what every sink was given."""
        if self.writer is not None:
            self.writer.discard()
        if self.formats is not None:
            self.formats.discard()
