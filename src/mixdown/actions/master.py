"""The master action: a rendition's mix mastered, and the [master] formats written to ``build/``.

:func:`mastered` makes (or finds) the master, as one stream or, for a long
programme, in parallel parts kept as a recipe (:data:`RECIPE`); a short
one in a compact cache is kept as a record too
(:data:`~mixdown.actions.streamed.STREAMED`); the delivery action (:mod:`mixdown.actions.deliver`) reads its master from there too.
After an edit, a long master is spliced when it can be: only the parts the
edit touched are made again, the rest copied from the files in ``build/``
(:mod:`mixdown.codecs.splice`; what they were made from:
:mod:`mixdown.actions.published`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..plan.model import MixPlan
from ..settings import SUMMED_STEMS, Delivery
from ..store import files
from . import published, retag, shipments
from .context import Context, locked, relative, reported
from .locking import check_pinned
from .mix import ANALYSIS, change_of, mix_source
from .progress import Progress
from .streamed import (
    Deliverable,
    LazyMaster,
    MasterJob,
    StreamedMaster,
    master_meta,
    master_streamed,
    stored_streamed,
)
from .streamed import measured as measured_loudness

if TYPE_CHECKING:  # the codecs load when a master is made
    from ..codecs.splice import Landed

__all__ = ["Deliverable", "PARTS", "RECIPE", "build_master", "mastered", "publish_master"]

# kept beside a long master's cache key: how to make it again, instead of its samples
RECIPE = "recipe.json"
# and, written before it, what a splice needs of its parts (mixdown.codecs.splice.PartData)
PARTS = "parts.npz"


class _Stored(NamedTuple):
    """A parted master's recipe in the cache, the loudness it was measured at, and for a splice
    (None in a record older than splicing) its [master] settings and where it landed."""

    recipe: Any  # mixdown.codecs.parts.Recipe
    loudness: Any  # mixdown.dsp.master.Loudness
    settings: Any = None  # MixPlan.master
    landed: Landed | None = None


def build_master(context: Context, plan: MixPlan) -> Any:
    """doit action: master one rendition and write its deliverables."""
    return reported(publish_master, context, plan, f"master:{plan.name}")


def publish_master(context: Context, plan: MixPlan) -> dict[str, str]:
    """Master the mix (or reuse a cached master) and write the [master] formats to ``build/``.

    The files go through the same encode, decode and spec check as every
    delivery, against the master's own target and ceiling (±1 LU). When only
    their tags changed, the files in ``build/`` are tagged again instead
    (:mod:`mixdown.actions.retag`).
    """
    if shipments.fetched(context, plan):  # shared by another build: nothing to master
        return {"stamp": plan.stamp}
    deliverable = _deliverable(plan)
    files.sweep_once(deliverable.stem.parent)  # what killed builds left there
    target = f"master:{plan.name}"
    again = retag.retagged(context, plan)  # only the tags changed: the files in build/ tagged again
    made, seconds = again or _made(context, plan, deliverable, target)
    measured = published.record(context, plan, made, seconds=seconds)
    for path, found in made:
        print(f"{target}  {found}  {seconds:6.1f} s  {relative(context, path)}", file=sys.stdout)
    check_pinned(context, target, plan.master_key, made=measured)
    if again is None:
        _write_stems(context, plan, [p for p in plan.outputs if p.parent.suffix == ".stems"])
    shipments.upload(context, plan, made=tuple(made))
    return {"stamp": plan.stamp}


def _made(context: Context, plan: MixPlan, deliverable: Deliverable, target: str) -> retag.Retagged:
    """Master ``plan`` (or reuse its master) and publish its files; what was published."""
    from ..codecs.deliver import deliver
    from .publish import tag_chapters

    # An MP3 encoder process takes one core: a streamed limiting pass keeps to the other.
    source, loudness, written = mastered(context, plan, deliverable, threads="mp3" not in deliverable.direct)
    published.forget(context, plan)  # the files are about to be replaced: trust none of them until recorded
    stem, delivery = deliverable.stem, deliverable.delivery
    chapters = tag_chapters(context, plan, target)
    made = deliver(
        source,
        stem,
        delivery,
        target=target,
        loudness=loudness,
        written=written,
        tags=plan.tags,
        chapters=chapters,
        own=True,
    )
    return retag.Retagged(made, source.frames / source.sample_rate)


def _deliverable(plan: MixPlan) -> Deliverable:
    """The [master] formats as a :class:`Deliverable`: the master's own target and ceiling."""
    from ..settings import mp3_bitrate, rate_for

    settings = plan.master
    paths = [p for p in plan.outputs if p.parent.suffix != ".stems"]
    formats = tuple(p.suffix[1:] for p in paths)
    sr = plan.timeline.sample_rate
    delivery = Delivery(
        "master",
        settings["target_lufs"],
        settings["ceiling_dbtp"],
        1.0,
        formats,
        bitrate=mp3_bitrate(Delivery.bitrate, rate_for("mp3", sr)),
    )
    stem = paths[0].with_name(paths[0].name[: -len(paths[0].suffix)])
    return Deliverable(stem, delivery, [fmt for fmt in formats if rate_for(fmt, sr) == sr])


def _write_stems(context: Context, plan: MixPlan, paths: list[Any]) -> None:
    """Write the mix's buses as 24-bit WAVs, in one pass: before mastering, their 24-bit steps
    add up to the mix's exactly (:mod:`mixdown.codecs.stems`: the voice and SFX stems are
    summed again from the section pre-mixes, the music stem is the mix less them)."""
    from ..codecs.stems import write_stems_atomic
    from .mix import program_of

    if not paths:
        return
    for path in paths:
        files.sweep_once(path.parent)
    program = program_of(context, plan)
    mixed = mix_source(context, plan)
    buses = zip(mixed.blocks(), *(program.bus_blocks(bus) for bus in SUMMED_STEMS), strict=True)
    write_stems_atomic({p.stem: p for p in paths}, buses, mixed.sample_rate, mixed.channels, mixed.frames)
    for path in paths:
        print(f"master:{plan.name}  stem {path.stem:<5}  {relative(context, path)}", file=sys.stdout)


class _Shape(NamedTuple):
    """A cached object's shape, as :meth:`mixdown.store.cache.Cache.info` gives it."""

    frames: int
    sample_rate: int
    channels: int


def mastered(
    context: Context, plan: MixPlan, deliverable: Deliverable | None = None, *, threads: bool = True
) -> tuple[Any, Any, list[Any]]:
    """The master of ``plan`` (a block source) and its loudness.

    Made from the mix if missing: the mix's saved analysis gives the gain,
    then one limiting pass (rarely more) makes the master, in parallel
    parts for a long programme (:mod:`mixdown.codecs.parts`: the cache keeps
    its recipe, and the samples are made again only if something reads
    them), else as one stream into a cache object. ``deliverable`` names
    files to write from the master as it is made (formats at the master's
    rate); those written come back third with their measurements (empty when
    the master was already cached). ``threads=False`` keeps a streamed pass's
    metering on one core (an MP3 encoder process has the other).
    """
    found = _master_cached(context, plan, deliverable)
    if found is not None:  # no lock to take: a read-only cache that holds it is enough
        return found
    with locked(context, plan.master_key, f"master:{plan.name}", "mastering"):
        return _master_made(context, plan, deliverable, threads=threads)


def _master_cached(
    context: Context, plan: MixPlan, deliverable: Deliverable | None
) -> tuple[Any, Any, list[Any]] | None:
    """:func:`mastered`'s answer when the cache has what it needs, else None."""
    cache = context.cache
    stored = _stored_recipe(context, plan.master_key)
    direct = bool(deliverable and deliverable.direct)
    # A long master's files are made again from its recipe even when the master is cached (a
    # delivery made it): written that way they are the same bytes as the first build's.
    if plan.master_key in cache and not (stored is not None and direct):
        return cache.source(plan.master_key), measured_loudness(cache.meta(plan.master_key)), []
    if stored is not None and not direct:
        return _RecipeMaster(context, plan, stored.recipe, stored.loudness), stored.loudness, []  # no files
    streamed = None if direct else stored_streamed(context, plan)
    if streamed is not None:  # kept as a record: mastered again if something reads it
        return StreamedMaster(context, plan, _Shape(*cache.info(plan.key)), streamed), streamed, []
    return None


def _master_made(
    context: Context, plan: MixPlan, deliverable: Deliverable | None = None, *, threads: bool = True
) -> tuple[Any, Any, list[Any]]:
    """:func:`mastered`, with the master's lock held."""
    from ..codecs import parts

    found = _master_cached(context, plan, deliverable)  # made meanwhile by another build
    if found is not None:
        return found
    stored = _stored_recipe(context, plan.master_key)
    job = MasterJob.of(context, plan, deliverable)
    if stored is not None or parts.usable(job.mixed.frames, job.mixed.sample_rate):
        spliced = None if stored is not None else _spliced(job)
        if spliced is not None:
            return spliced
        return _mastered_in_parts(job, stored)
    return master_streamed(job, threads=threads)


def _mastered_in_parts(job: MasterJob, stored: _Stored | None) -> tuple[Any, Any, list[Any]]:
    """:func:`mastered` for a long programme: every core limits, writes, meters and encodes a part.

    The master's samples are not stored: its recipe is (``<key>.recipe.json``
    beside the cache objects), and the master comes back as a
    :class:`_RecipeMaster`. With a recipe already ``stored`` (and its
    loudness), the files are made in one pass from it.
    """
    context, plan, mixed, _, _, deliverable = job
    direct = _DirectFiles()
    try:
        if deliverable is not None:
            direct.open(deliverable, mixed)
        analysis = _analysis(context, plan, mixed)
        passes = _parallel_passes(job, direct, stored, analysis)
        if stored is not None:  # the files again, from the master's recipe
            recipe = stored.recipe
            found, _, _ = passes(recipe.gain_db, recipe.aim, recipe.trim)
            loudness = _loudness(found)
            _store_parts(context, plan.master_key, passes)  # the parts of the files just made
        else:
            recipe, loudness = _normalised(job, passes, analysis)
        written = direct.close(passes)
    except BaseException:
        direct.discard()
        raise
    return _RecipeMaster(context, plan, recipe, loudness), loudness, written


def _spliced(job: MasterJob) -> tuple[Any, Any, list[Any]] | None:
    """:func:`mastered` by splicing the files in ``build/``, when the mix was spliced from the one
    they were made from and its loudness held (:mod:`mixdown.codecs.splice`): only the parts the
    edit touched are made again. None, having said why, when it cannot be."""
    from ..codecs.splice import CannotSplice, check_master

    context, plan, mixed, _, _, deliverable = job
    change = change_of(context, plan)
    if change is None or deliverable is None or not deliverable.direct:
        return None
    target = f"master:{plan.name}"
    direct = _DirectFiles()
    try:
        parent, data, analysis = _splice_parent(job, deliverable, change)
        landed = parent.landed
        assert landed is not None  # _splice_parent refuses a parent without it
        direct.open(deliverable, mixed)
        reuse = _reuse(data, parent.recipe, mixed, deliverable, direct, change)
        passes = _parallel_passes(job, direct, parent, analysis, reuse)
        found, _, _ = passes(parent.recipe.gain_db, parent.recipe.aim, parent.recipe.trim)
        check_master(found, landed, parent.recipe.ceiling_dbtp)
        written = direct.close(passes)
        loudness = _loudness(found)
        recipe = _store_recipe(context, plan, passes, loudness, landed)
    except CannotSplice as why:
        direct.discard()
        print(f"{target}  mastered in full: {why}", file=sys.stdout)
        return None
    except BaseException:
        direct.discard()
        raise
    seconds = sum(b - a for (a, b), dirty in zip(passes.bounds, reuse.dirty, strict=True) if dirty)
    made = f"spliced {reuse.made} of {len(reuse.dirty)} parts ({seconds / mixed.sample_rate:.1f} s)"
    print(f"{target}  {made}", file=sys.stdout)
    return _RecipeMaster(context, plan, recipe, loudness), loudness, written


def _splice_parent(job: MasterJob, deliverable: Deliverable, change: Any) -> tuple[_Stored, Any, Any]:
    """The parent master's recipe and parts, and the mix's analysis, for a splice of the files of
    ``deliverable`` after ``change``; :class:`~mixdown.codecs.splice.CannotSplice` says why not."""
    from ..codecs import parts
    from ..codecs.splice import CannotSplice, PartData, check_mix
    from ..dsp.master import MASTER_MARGIN_DB

    context, plan, mixed, settings, _, _ = job
    cache = context.cache
    record = published.read(context, plan)
    if record is None or record.mix != change.parent:
        raise CannotSplice("the files in build/ were not made from the mix this one was edited from")
    paths = [deliverable.stem.with_name(f"{deliverable.stem.name}.{fmt}") for fmt in deliverable.direct]
    if not record.intact() or any(os.fspath(path) not in record.files for path in paths):
        raise CannotSplice("the files in build/ changed since they were published")
    parent, data = (
        _stored_recipe(context, record.master),
        PartData.load(cache.side_path(record.master, PARTS)),
    )
    if parent is None or data is None or parent.landed is None:
        raise CannotSplice("the master of the files in build/ is not in the cache")
    recipe = parent.recipe
    if not (
        parent.settings == plan.master
        and (recipe.sample_rate, recipe.channels) == (mixed.sample_rate, mixed.channels)
        and recipe.ceiling_dbtp == settings.ceiling_dbtp - MASTER_MARGIN_DB
        and recipe.seconds == parts.PART_SECONDS
        and data.bounds == parts.bounds(recipe.frames, recipe.sample_rate, recipe.seconds)
    ):
        raise CannotSplice("the files in build/ were mastered with other settings")
    analysis = _analysis(context, plan, mixed)
    check_mix(analysis.meter.result().integrated, parent.landed)
    return parent, data, analysis


def _reuse(
    data: Any, recipe: Any, mixed: Any, deliverable: Deliverable, direct: _DirectFiles, change: Any
) -> Any:
    """The :class:`~mixdown.codecs.splice.Reuse` of the published files that ``direct`` writes again."""
    from ..codecs.splice import Reuse, dirty_parts

    stem = deliverable.stem
    wav = (stem.with_name(f"{stem.name}.wav"), direct.wav) if direct.wav is not None else None
    mp3 = None
    if direct.encoding is not None:
        mp3 = (stem.with_name(f"{stem.name}.mp3"), tuple(direct.encoding[1:]))
    dirty = dirty_parts(recipe, mixed.frames, change.start, change.stop)
    return Reuse(data, dirty, wav=wav, mp3=mp3)


def _loudness(found: Any) -> Any:
    """A parted pass's measurement as a :class:`~mixdown.dsp.master.Loudness`."""
    from ..dsp.master import Loudness

    return Loudness(found.integrated, found.true_peak, found.lra)


def _analysis(context: Context, plan: MixPlan, mixed: Any) -> Any:
    """The mix's :class:`~mixdown.dsp.master.Analysis`: saved beside it (which saves the
    measuring pass), else measured now."""
    from ..dsp.master import Analysis

    analysis = Analysis.load(context.cache.side_path(plan.key, ANALYSIS))
    if analysis is None or analysis.frames != mixed.frames:
        analysis = Analysis.of(mixed)
    return analysis


def _parallel_passes(
    job: MasterJob, direct: _DirectFiles, stored: _Stored | None, analysis: Any, reuse: Any = None
) -> Any:
    """The :class:`~mixdown.codecs.parts.ParallelPasses` passes over the mix, writing ``direct``'s
    files (copying ``reuse``'s parts from the published ones)."""
    from ..codecs.parts import ParallelPasses
    from ..dsp.master import MASTER_MARGIN_DB

    mixed, settings, progress = job.mixed, job.settings, job.progress

    recipe = stored.recipe if stored is not None else None
    return ParallelPasses(
        mixed,
        mixed.sample_rate,
        mixed.channels,
        mixed.frames,
        recipe.ceiling_dbtp if recipe else settings.ceiling_dbtp - MASTER_MARGIN_DB,
        wav=direct.wav,
        mp3=direct.encoding,
        seconds=recipe.seconds if recipe else None,
        progress=progress.show,
        mix_hops=analysis.meter.hop_energies(),
        reuse=reuse,
    )


def _normalised(job: MasterJob, passes: Any, analysis: Any) -> tuple[Any, Any]:
    """Bring the mix to its target in parted ``passes``; store and return the recipe, and the loudness."""
    from ..codecs.splice import Landed
    from ..dsp.master import normalise

    context, plan, mixed, settings, progress, _ = job

    loudness = normalise(mixed, settings, passes, progress=progress.say, analysis=analysis)
    landed = Landed(analysis.meter.result().integrated, loudness.integrated_lufs)
    return _store_recipe(context, plan, passes, loudness, landed), loudness


def _store_recipe(context: Context, plan: MixPlan, passes: Any, loudness: Any, landed: Landed) -> Any:
    """Keep the recipe of ``passes``'s last pass under ``plan``'s master key (its parts first); return it."""
    import json

    assert passes.recipe is not None
    _store_parts(context, plan.master_key, passes)
    record = {
        **master_meta(plan, loudness),
        "recipe": passes.recipe.record(),
        "master": plan.master,
        "landed": landed._asdict(),
    }
    context.cache.put_side(plan.master_key, RECIPE, json.dumps(record, indent=1).encode("utf-8"))
    return passes.recipe


def _store_parts(context: Context, master_key: str, passes: Any) -> None:
    """Keep what a splice needs of ``passes``'s parts beside the master (:data:`PARTS`)."""
    from ..codecs.splice import PartData

    context.cache.put_side(master_key, PARTS, PartData.of(passes).to_bytes())


class _DirectFiles:
    """The files a parted master writes as it is made (WAV, MP3), temporary until published."""

    def __init__(self) -> None:
        self.wav: Any = None  # a mixdown.codecs.wav.WavWriter
        self.mp3_path: Path | None = None
        self.encoding: tuple[Path, Any, Any, Any] | None = None  # what ParallelPasses's MP3 encoder needs

    def open(self, deliverable: Deliverable, mixed: Any) -> None:
        """Open the temporary files of ``deliverable``'s direct formats."""
        from ..codecs import mp3
        from ..codecs.deliver import subtype_for, temporary_for
        from ..codecs.lame import quality_for
        from ..codecs.wav import WavWriter

        stem, delivery, direct = deliverable
        if direct:
            stem.parent.mkdir(parents=True, exist_ok=True)
        if "wav" in direct:
            subtype = subtype_for("wav", delivery.bit_depth)
            self.wav = WavWriter(
                temporary_for(stem, "wav"), mixed.sample_rate, mixed.channels, subtype, mixed.frames
            )
        if "mp3" in direct and mp3.available():
            self.mp3_path = temporary_for(stem, "mp3")
            self.encoding = (self.mp3_path, delivery.bitrate, delivery.vbr, quality_for(delivery.bitrate))

    def close(self, passes: Any) -> list[Any]:
        """Finish the files; each as ``(format, temporary path, its measurement)``."""
        written: list[Any] = []
        if self.wav is not None:
            self.wav.flush()
            self.wav.close()
            passes.check_wav_header()
            if passes.wav_sha256 is not None:  # hashed as it was made: published.record needs it
                files.note_sha256(self.wav.path, passes.wav_sha256)
            written.append(("wav", self.wav.path, passes.found))
        if self.mp3_path is not None:
            written.append(("mp3", self.mp3_path, passes.mp3_found))
        return written

    def discard(self) -> None:
        """Close and remove the temporary files."""
        if self.wav is not None:
            self.wav.close()
        for tmp in (self.wav.path if self.wav is not None else None, self.mp3_path):
            if tmp is not None:
                files.discard(tmp)


def _stored_recipe(context: Context, master_key: str) -> _Stored | None:
    """The recipe of the parted master ``master_key`` and its loudness, if the cache has them
    (the master's key names its mix: a recipe under it is that mix's)."""
    import json

    from ..codecs.parts import Recipe
    from ..codecs.splice import Landed

    try:
        record = json.loads(context.cache.side_path(master_key, RECIPE).read_text("utf-8"))
        recipe, loudness = Recipe.from_record(record["recipe"]), measured_loudness(record)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none, or unreadable: master again
    if recipe is None or loudness is None:
        return None
    try:
        landed = Landed(**record["landed"])
    except (KeyError, TypeError):
        landed = None
    return _Stored(recipe, loudness, record.get("master"), landed)


class _RecipeMaster(LazyMaster):
    """A parted master as a block source: made into a cache object the first time it is read.

    Most long masters are only ever written to their files, as they are
    made; a delivery at another loudness or rate, or a file encoded again,
    reads the master, and the first to read it pays for making it (every
    core limits the mix again, :func:`mixdown.codecs.parts.write_master`).
    """

    def __init__(self, context: Context, plan: MixPlan, recipe: Any, loudness: Any) -> None:
        super().__init__(context, plan, recipe, loudness)
        self._recipe = recipe

    def _make(self) -> None:
        from ..codecs.parts import write_master

        cache, plan = self._context.cache, self._plan
        cache.info(plan.key)  # the mix is whole (a damaged one is removed, and the build stops)
        progress = Progress(f"master:{plan.name}", "made from its recipe", self.frames, self.sample_rate)
        with cache.writer(plan.master_key, self.sample_rate, self.channels, frames=self.frames) as writer:
            write_master(self._recipe, mix_source(self._context, plan), writer, progress=progress.show)
            writer.commit(master_meta(plan, self._loudness), flac=self._context.project.compact)
