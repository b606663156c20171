"""The plan as doit task dicts: plain data, tested without running doit.

Asset and section tasks are up to date when their key is in the cache;
nothing else decides. Sections depend on their assets' tasks, mixes on their
sections' tasks and their bed's, masters on their mix, and each delivery on
its master. A section named on the command line always runs: it writes its
preview.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..plan.model import KINDS, Asset, DeliveryPlan, MixPlan, Plan, SectionPlan
from .context import stamp_matches
from .publish import CaptionsJob, build_captions, build_otio, otio_path, otio_stamp, sidecars

if TYPE_CHECKING:
    from .section import SectionJob

__all__ = ["publish_dicts", "task_dicts"]

# doit captures a python-action's output by swapping the global sys.stdout, which
# races between worker threads (`doit -n 4`) and can leave a dead stream behind;
# mixdown's actions print only their own one-line results, so output is not captured.
UNCAPTURED = {"capture": False}
#: the ``section:`` tasks' parameter: ``doit section:NAME --bed`` previews it over the music bed
BED_PARAM = {
    "name": "bed",
    "long": "bed",
    "type": bool,
    "default": False,
    "help": "preview the section over the show's music bed, ducked as in the mix",
}


def task_dicts(
    plan: Plan,
    context: Any,
    *,
    cached: set[str],
    only_missing: bool = False,
    previews: Collection[str] = (),
    bed: bool = False,
    current: Collection[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    """doit task dicts for a plan, grouped by basename (``voice``, …, ``master``).

    ``cached`` is the set of keys already in the store. An asset or section
    task is up to date exactly when its key is cached; with ``only_missing``
    the cached ones are left out altogether (a plain ``doit`` over a large
    show hands doit only the work there is). ``previews`` are the section
    tasks named on the command line: they always run and write their
    previews, after the bed's segments with ``bed``. With ``only_missing``,
    the renditions named in ``current`` (their mix cached, their files
    current: :mod:`mixdown.actions.current`) are left out too: mix, master
    and deliveries. ``context`` is passed to every action; with a Dask
    executor in it, the actions run on the cluster (:mod:`mixdown.actions.cluster`).
    """
    out: dict[str, list[dict[str, Any]]] = {
        kind: [] for kind in (*KINDS, "section", "mix", "master", "deliver")
    }
    present: set[str] = set()  # the keys of the asset and section tasks handed to doit
    for asset in plan.assets.values():
        done = asset.key in cached
        if only_missing and done:
            continue
        present.add(asset.key)
        out[asset.kind].append(_asset_task(asset, context, done=done))
    mixes = {mix.name: mix for mix in plan.mixes}
    for section in plan.sections.values():
        done, named = section.key in cached, section.task in previews
        if only_missing and done and not named:
            continue
        from .section import SectionJob  # imported by the first section handed to doit

        present.add(section.key)
        mix = mixes[section.mix]
        deps = [plan.assets[key].task for key in section.assets if key in present]
        if named and bed:
            deps += _bed_tasks(plan, mix, present)
        job = SectionJob(mix, section.index, named)
        out["section"].append(_section_task(section, job, context, deps, done=done and not named))
    for mix in plan.mixes:
        if only_missing and mix.name in current:
            continue
        out["mix"].append(_mix_task(mix, context, _mix_deps(plan, mix, present), done=mix.key in cached))
        out["master"].append(_master_task(mix, context))
        out["deliver"].extend(_delivery_task(mix, delivery, context) for delivery in mix.deliveries)
    return out


class _Actions(NamedTuple):
    """The doit action of each kind of task."""

    render: Any
    section: Any
    mix: Any
    master: Any
    deliver: Any


@cache
def _here() -> _Actions:
    """This machine's actions, imported with the first task that needs one: a no-op build, which
    hands doit no task, imports none of them."""
    from .deliver import build_delivery
    from .master import build_master
    from .mix import build_mix
    from .render import render_asset
    from .section import build_section

    return _Actions(render_asset, build_section, build_mix, build_master, build_delivery)


def _actions(context: Any) -> _Actions:
    """This machine's actions, or the Dask cluster's when the build has one (imported only then)."""
    if getattr(context, "executor", None) is None:
        return _here()
    from . import cluster

    return _Actions(
        cluster.cluster_render,
        cluster.cluster_section,
        cluster.cluster_mix,
        cluster.cluster_master,
        cluster.cluster_deliver,
    )


def _clean_preview(context: Any, task: str) -> None:
    """A ``section:`` task's clean action (:func:`mixdown.actions.preview.clean_preview`), imported
    when ``doit clean`` runs it."""
    from .preview import clean_preview

    clean_preview(context, task)


def _bed_tasks(plan: Plan, mix: MixPlan, present: set[str]) -> list[str]:
    """The tasks of ``mix``'s music-bed segments that were handed to doit (music is only ever a bed)."""
    return [
        plan.assets[key].task for key in mix.assets if key in present and plan.assets[key].kind == "music"
    ]


def _mix_deps(plan: Plan, mix: MixPlan, present: set[str]) -> list[str]:
    """A mix's task deps: its sections' tasks and its bed's segments (those handed to doit).

    An asset missing under a cached section (removed from the cache since) is a dep too.
    """
    deps: dict[str, None] = {}
    for key in mix.section_keys:
        if key is None:
            continue
        section = plan.sections[key]
        if key in present:
            deps[section.task] = None
        else:
            deps.update(dict.fromkeys(plan.assets[k].task for k in section.assets if k in present))
    deps.update(dict.fromkeys(_bed_tasks(plan, mix, present)))
    return list(deps)


def _section_task(
    section: SectionPlan, job: SectionJob, context: Any, deps: list[str], *, done: bool
) -> dict[str, Any]:
    return {
        "name": section.task.split(":", 1)[1],
        "actions": [(_actions(context).section, [context, job])],
        "task_dep": deps,
        "uptodate": [done],
        "params": [BED_PARAM],
        "clean": [(_clean_preview, [context, section.task])],
        "doc": f"pre-mix {len(section.assets)} assets; named, a preview in build/preview/",
        "io": UNCAPTURED,
    }


def _asset_task(asset: Asset, context: Any, *, done: bool) -> dict[str, Any]:
    return {
        "name": asset.task.split(":", 1)[1],
        "actions": [(_actions(context).render, [context, asset])],
        "uptodate": [done],
        "doc": asset.doc or f"{asset.renderer} {asset.kind}",
        "io": UNCAPTURED,
    }


def _mix_task(mix: MixPlan, context: Any, deps: list[str], *, done: bool) -> dict[str, Any]:
    sections = sum(key is not None for key in mix.section_keys)
    return {
        "name": mix.name,
        "actions": [(_actions(context).mix, [context, mix])],
        "task_dep": deps,
        "uptodate": [done],
        "doc": f"mix {sections} sections, {len(mix.assets)} assets",
        "io": UNCAPTURED,
    }


def _master_task(mix: MixPlan, context: Any) -> dict[str, Any]:
    return {
        "name": mix.name,
        "actions": [(_actions(context).master, [context, mix])],
        "task_dep": [f"mix:{mix.name}"],
        "targets": [str(p) for p in mix.outputs],
        "uptodate": [(stamp_matches, [mix.stamp])],
        "clean": True,
        "io": UNCAPTURED,
        "doc": f"master to {mix.master['target_lufs']:g} LUFS: " + ", ".join(p.name for p in mix.outputs),
    }


def _delivery_task(mix: MixPlan, delivery: DeliveryPlan, context: Any) -> dict[str, Any]:
    preset = delivery.table.get("preset", "podcast")
    return {
        "name": f"{mix.name}/{delivery.name}",
        "actions": [(_actions(context).deliver, [context, (mix, delivery.name)])],
        "task_dep": [f"master:{mix.name}"],
        "targets": [str(p) for p in delivery.files],
        "uptodate": [(stamp_matches, [mix.delivery_stamp(delivery.name)])],
        "clean": True,
        "io": UNCAPTURED,
        "doc": f"deliver '{preset}': " + ", ".join(p.name for p in delivery.files),
    }


def publish_dicts(
    plan: Plan, context: Any, *, current: Collection[str] = ()
) -> dict[str, list[dict[str, Any]]]:
    """doit task dicts of the files published beside each rendition's deliverables: ``captions:``
    (captions and chapters, :mod:`mixdown.actions.publish`) and ``otio:`` (its timeline), as
    ``[publish]`` asks. They run after the rendition's master and deliveries (unless those were
    left out as current: ``current``), on this machine, and are up to date by the stamp of what
    they are made from."""
    out: dict[str, list[dict[str, Any]]] = {"captions": [], "otio": []}
    for mix in plan.mixes:
        if mix.name in current:  # current with what it publishes beside
            continue
        captions, timeline = _publishes(context, mix)
        deps = [f"master:{mix.name}"] + [f"deliver:{mix.name}/{d.name}" for d in mix.deliveries]
        if captions is not None:
            out["captions"].append(_captions_task(captions, context, deps))
        if timeline:
            out["otio"].append(_otio_task(mix, context, deps))
    return out


def _publishes(context: Any, mix: MixPlan, *, stamped: bool = True) -> tuple[CaptionsJob | None, bool]:
    """What ``mix`` publishes beside its deliverables, as ``[publish]`` asks: its captions job
    (None: none; unstamped, and so cheap, with ``stamped=False``) and whether a timeline."""
    settings = context.project.publish
    if not mix.outputs:
        return None, False
    captions = None
    if settings.captions or settings.chapters:
        kind = CaptionsJob.of if stamped else CaptionsJob
        captions = kind(mix, captions=settings.captions, chapters=settings.chapters)
    return captions, bool(settings.timeline)


def beside(context: Any) -> Callable[[MixPlan], Any]:
    """What each rendition publishes beside its deliverables (:class:`mixdown.actions.current.Beside`):
    the ``captions:`` and ``otio:`` tasks :func:`publish_dicts` makes, their stamps and files; a
    rendition is current (left out of a plain build) only with them."""
    from .current import Beside

    def of(mix: MixPlan) -> Beside:
        captions, timeline = _publishes(context, mix)
        stamps: list[str] = []
        made: list[Path] = []
        if captions is not None:
            stamps.append(captions.stamp)
            made += sidecars(mix, captions=captions.captions, chapters=captions.chapters)
        if timeline:
            stamps.append(otio_stamp(mix, context))
            made.append(otio_path(mix))
        return Beside(beside_tasks(context, mix), tuple(stamps), tuple(str(path) for path in made))

    return of


def beside_tasks(context: Any, mix: MixPlan) -> tuple[str, ...]:
    """The names of the tasks :func:`publish_dicts` makes for ``mix``."""
    captions, timeline = _publishes(context, mix, stamped=False)
    return ((f"captions:{mix.name}",) if captions is not None else ()) + (
        (f"otio:{mix.name}",) if timeline else ()
    )


def _captions_task(job: CaptionsJob, context: Any, deps: list[str]) -> dict[str, Any]:
    made = sidecars(job.mix, captions=job.captions, chapters=job.chapters)
    return {
        "name": job.mix.name,
        "actions": [(build_captions, [context, job])],
        "task_dep": deps,
        "targets": [str(p) for p in made],
        "uptodate": [(stamp_matches, [job.stamp])],
        "clean": True,
        "io": UNCAPTURED,
        "doc": "captions and chapters: " + ", ".join(sorted({p.name.split(".", 1)[1] for p in made})),
    }


def _otio_task(mix: MixPlan, context: Any, deps: list[str]) -> dict[str, Any]:
    stamp = otio_stamp(mix, context)
    return {
        "name": mix.name,
        "actions": [(build_otio, [context, mix, stamp])],
        "task_dep": deps,
        "targets": [str(otio_path(mix))],
        "uptodate": [(stamp_matches, [stamp])],
        "clean": True,
        "io": UNCAPTURED,
        "doc": f"OpenTimelineIO timeline: {otio_path(mix).name}",
    }
