"""The plan of a show: every asset by content key, and one mix per rendition.

A :class:`Plan` (made by :func:`mixdown.plan.planner.plan`) holds every asset by
content key and one :class:`MixPlan` per rendition; :mod:`mixdown.actions.tasks`
turns it into doit's task dicts.

This module is on the path of every build, planned or memoised, so it
imports nothing that only planning needs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..keys import content_key
from ..renderers import RenderRequest
from ..show.project import Project

__all__ = ["KINDS", "Asset", "MixPlan", "Plan", "request_for"]

KINDS = ("voice", "sfx", "music")
MIX_VERSION = "3"  # bump when the mix stage would sound different for the same timeline
MASTER_VERSION = "2"  # likewise for mastering


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
    take: int = 0  # 0: the first render; more after `mixdown retake` (see mixdown.plan.takes)


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
    #: the key each asset had at its first take, for those on a later one (see mixdown.plan.takes)
    first_takes: dict[str, str] = field(default_factory=dict)

    def first_take(self, key: str) -> str:
        """The key ``key``'s asset has at take 0 (``key`` itself when it is at take 0)."""
        return self.first_takes.get(key, key)
