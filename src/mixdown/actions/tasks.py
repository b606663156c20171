"""The plan as doit task dicts: plain data, tested without running doit.

Asset tasks are up to date when their key is in the cache; nothing else
decides. Mixes depend on their assets' tasks, masters on their mix, and
each delivery on its master.
"""

from __future__ import annotations

from typing import Any

from ..plan.model import KINDS, Asset, DeliveryPlan, MixPlan, Plan
from .context import stamp_matches
from .deliver import build_delivery
from .master import build_master
from .mix import build_mix
from .render import render_asset

__all__ = ["task_dicts"]

# doit captures a python-action's output by swapping the global sys.stdout, which
# races between worker threads (`doit -n 4`) and can leave a dead stream behind;
# mixdown's actions print only their own one-line results, so output is not captured.
UNCAPTURED = {"capture": False}


def task_dicts(
    plan: Plan, context: Any, *, cached: set[str], only_missing: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """doit task dicts for a plan, grouped by basename (``voice``, …, ``master``).

    ``cached`` is the set of keys already in the store. An asset task is up to
    date exactly when its key is cached; with ``only_missing`` the cached
    ones are left out altogether (a plain ``doit`` over a large show hands
    doit only the work there is). ``context`` is passed to every action.
    """
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in (*KINDS, "mix", "master", "deliver")}
    present: set[str] = set()  # the keys of the asset tasks handed to doit
    for asset in plan.assets.values():
        done = asset.key in cached
        if only_missing and done:
            continue
        present.add(asset.key)
        out[asset.kind].append(_asset_task(asset, context, done=done))
    for mix in plan.mixes:
        deps = [plan.assets[key].task for key in mix.assets if key in present]
        out["mix"].append(_mix_task(mix, context, deps, done=mix.key in cached))
        out["master"].append(_master_task(mix, context))
        out["deliver"].extend(_delivery_task(mix, delivery, context) for delivery in mix.deliveries)
    return out


def _asset_task(asset: Asset, context: Any, *, done: bool) -> dict[str, Any]:
    return {
        "name": asset.task.split(":", 1)[1],
        "actions": [(render_asset, [context, asset])],
        "uptodate": [done],
        "doc": asset.doc or f"{asset.renderer} {asset.kind}",
        "io": UNCAPTURED,
    }


def _mix_task(mix: MixPlan, context: Any, deps: list[str], *, done: bool) -> dict[str, Any]:
    return {
        "name": mix.name,
        "actions": [(build_mix, [context, mix])],
        "task_dep": deps,
        "uptodate": [done],
        "doc": f"mix {len(mix.assets)} assets",
        "io": UNCAPTURED,
    }


def _master_task(mix: MixPlan, context: Any) -> dict[str, Any]:
    return {
        "name": mix.name,
        "actions": [(build_master, [context, mix])],
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
        "actions": [(build_delivery, [context, (mix, delivery.name)])],
        "task_dep": [f"master:{mix.name}"],
        "targets": [str(p) for p in delivery.files],
        "uptodate": [(stamp_matches, [mix.delivery_stamp(delivery.name)])],
        "clean": True,
        "io": UNCAPTURED,
        "doc": f"deliver '{preset}': " + ", ".join(p.name for p in delivery.files),
    }
