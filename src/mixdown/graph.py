"""The plan of a show and its doit task dicts.

A :class:`Plan` (made by :func:`mixdown.planner.plan`) holds every asset by
content key and one :class:`MixPlan` per rendition. :func:`task_dicts` turns
it into plain doit task dicts (tested without running doit). Asset tasks are
up to date when their key is in the cache; nothing else decides.

This module is on the path of every build, planned or memoised, so it
imports nothing that only planning needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from .keys import content_key
from .project import Project
from .renderers import RenderRequest

__all__ = ["KINDS", "Asset", "MixPlan", "Plan", "request_for", "task_dicts"]

KINDS = ("voice", "sfx", "music")
SEGMENTS = ("intro", "main", "outro")
STEMS = ("voice", "sfx", "music")  # the buses a mix keeps, written with [master] stems = true
MIX_VERSION = "3"  # bump when the mix stage would sound different for the same timeline
MASTER_VERSION = "2"  # likewise for mastering
# doit captures a python-action's output by swapping the global sys.stdout, which
# races between worker threads (`doit -n 4`) and can leave a dead stream behind;
# mixdown's actions print only their own one-line results, so output is not captured.
UNCAPTURED = {"capture": False}


class Asset(NamedTuple):
    """One thing to render: a voice line, an SFX or a music-bed segment.

    A plain tuple, because a large show has tens of thousands and the plan
    memo loads them on every build; :func:`request_for` makes the request.
    """

    key: str
    kind: str
    task: str  # full doit task name, e.g. "voice:daily/briefing/intro/0"
    renderer: str
    source: str  # the name of the voice, sfx or music bed in project.toml
    text: str = ""  # voice lines: the text to speak, pronunciations applied
    segment: str | None = None  # music beds: intro, main or outro
    doc: str = ""
    take: int = 0  # 0: the first render; more after `mixdown retake` (see mixdown.takes)


def request_for(asset: Asset, project: Project) -> RenderRequest:
    """The render request of ``asset``, with its source's settings from ``project``."""
    sources = {"voice": project.voices, "sfx": project.sfx, "music": project.music}[asset.kind]
    return RenderRequest(
        asset.kind,
        sources[asset.source].params,
        text=asset.text,
        segment=asset.segment,
        root=project.root,
        target=asset.task,
        take=asset.take,
    )


@dataclass
class MixPlan:
    """The mix and master of one rendition (a script, or a script for one variant)."""

    name: str
    timeline_json: str  # kept as text: only a mix that runs reads it, and text loads fast
    key: str
    master_key: str
    master: dict[str, Any]
    outputs: list[Path]
    assets: list[str] = field(default_factory=list)  # asset keys, in first-use order
    deliveries: list[tuple[str, dict[str, Any], list[Path]]] = field(
        default_factory=list
    )  # name, table, files
    #: each section's heading for messages, ``stanzas/x.j2:12: section 'news'``: never part of a key
    sections: list[str] = field(default_factory=list)

    @property
    def timeline(self) -> dict[str, Any]:
        """Sections of ``["line" | "pause" | "sting", …]`` items, bed and settings."""
        value: dict[str, Any] = json.loads(self.timeline_json)
        return value

    def stem_key(self, bus: str) -> str:
        """The cache key of one bus of this mix, before mastering."""
        return content_key({"stem": bus, "mix": self.key})

    @property
    def stamp(self) -> str:
        """What the files in ``build/`` must have been made from to be current."""
        return content_key([self.master_key, [p.name for p in self.outputs]])

    def delivery_stamp(self, name: str) -> str:
        """Likewise for the files of one ``[deliveries.NAME]``."""
        table, files = self.delivery(name)
        return content_key([self.master_key, table, [p.name for p in files]])

    def delivery(self, name: str) -> tuple[dict[str, Any], list[Path]]:
        """The settings table and the files of one delivery."""
        return next((table, files) for n, table, files in self.deliveries if n == name)


@dataclass
class Plan:
    """Every asset (by key, in first-use order) and every mix."""

    assets: dict[str, Asset]
    mixes: list[MixPlan]
    #: the key each asset had at its first take, for those on a later one (see mixdown.takes)
    first_takes: dict[str, str] = field(default_factory=dict)

    def first_take(self, key: str) -> str:
        """The key ``key``'s asset has at take 0 (``key`` itself when it is at take 0)."""
        return self.first_takes.get(key, key)


def task_dicts(
    plan: Plan, context: Any, *, cached: set[str], only_missing: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """doit task dicts for a plan, grouped by basename (``voice``, …, ``master``).

    ``cached`` is the set of keys already in the store. An asset task is up to
    date exactly when its key is cached; with ``only_missing`` the cached
    ones are left out altogether (a plain ``doit`` over a large show hands
    doit only the work there is). ``context`` is passed to every action.
    """
    from .build import build_delivery, build_master, build_mix, render_asset, stamp_matches

    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in (*KINDS, "mix", "master", "deliver")}
    present: set[str] = set()
    for asset in plan.assets.values():
        done = asset.key in cached
        if only_missing and done:
            continue
        present.add(asset.key)
        out[asset.kind].append(
            {
                "name": asset.task.split(":", 1)[1],
                "actions": [(render_asset, [context, asset])],
                "uptodate": [done],
                "doc": asset.doc or f"{asset.renderer} {asset.kind}",
                "io": UNCAPTURED,
            }
        )
    for mix in plan.mixes:
        deps = [plan.assets[key].task for key in mix.assets if key in present]
        out["mix"].append(
            {
                "name": mix.name,
                "actions": [(build_mix, [context, mix])],
                "task_dep": deps,
                "uptodate": [mix.key in cached],
                "doc": f"mix {len(mix.assets)} assets",
                "io": UNCAPTURED,
            }
        )
        out["master"].append(
            {
                "name": mix.name,
                "actions": [(build_master, [context, mix])],
                "task_dep": [f"mix:{mix.name}"],
                "targets": [str(p) for p in mix.outputs],
                "uptodate": [(stamp_matches, [mix.stamp])],
                "clean": True,
                "io": UNCAPTURED,
                "doc": f"master to {mix.master['target_lufs']:g} LUFS: "
                + ", ".join(p.name for p in mix.outputs),
            }
        )
        for name, table, files in mix.deliveries:
            out["deliver"].append(
                {
                    "name": f"{mix.name}/{name}",
                    "actions": [(build_delivery, [context, (mix, name)])],
                    "task_dep": [f"master:{mix.name}"],
                    "targets": [str(p) for p in files],
                    "uptodate": [(stamp_matches, [mix.delivery_stamp(name)])],
                    "clean": True,
                    "io": UNCAPTURED,
                    "doc": f"deliver '{table.get('preset', 'podcast')}': " + ", ".join(p.name for p in files),
                }
            )
    return out
