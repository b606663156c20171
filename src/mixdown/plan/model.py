"""The plan of a show: every asset by content key, and one mix per rendition.

A :class:`Plan` (made by :func:`mixdown.plan.planner.plan`) holds every asset by
content key, every section's pre-mix (:class:`SectionPlan`, keyed by
:func:`section_key`) and one :class:`MixPlan` per rendition; :mod:`mixdown.actions.tasks`
turns it into doit's task dicts. A mix's :class:`Timeline` is typed here and
stored as the JSON its key is made from (:meth:`Timeline.to_json`).

This module is on the path of every build, planned or memoised, so it
imports nothing that only planning needs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple, TypeAlias

from ..codecs.tags import Tags
from ..keys import content_key
from ..renderers import RenderRequest
from ..show.project import Project

__all__ = [
    "stem_key",
    "KINDS",
    "Asset",
    "CueItem",
    "DeliveryPlan",
    "LineItem",
    "MixPlan",
    "PauseItem",
    "Plan",
    "SectionInfo",
    "SectionPlan",
    "SpokenLine",
    "StingItem",
    "Timeline",
    "TimelineBed",
    "TimelineItem",
    "TimelineSection",
    "COMPACT",
    "item_from_json",
    "request_for",
    "section_key",
    "section_sfx_key",
    "shipment_key",
]

KINDS = ("voice", "sfx", "music")
MIX_VERSION = "3"  # bump when the mix stage would sound different for the same timeline
MASTER_VERSION = "2"  # likewise for mastering
SECTION_VERSION = "1"  # likewise for a section's pre-mix
#: the [mix] settings that reach a section's pre-mix (the rest act where sections are placed)
SECTION_SETTINGS = ("line_gap", "line_lufs", "speech")
#: in the key of a mix or pre-mix cached compactly ([cache] compact): its samples are whole steps
#: of 4 / 2**23 (mixdown.codecs.flac24), not the float ones a float object holds
COMPACT = "flac24x4"


def _plain_tuple(item: tuple[Any, ...]) -> tuple[Any, ...]:
    """How a named tuple the plan holds by the thousand is pickled: made again by
    ``tuple.__new__`` in C, not through its class's ``__new__`` in Python (a tenth of the
    time the plan memo takes to load)."""
    return (tuple.__new__, (type(item), tuple(item)))


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

    def __reduce__(self) -> tuple[Any, ...]:
        return _plain_tuple(self)


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


# The timeline's JSON is the material of the mix's key: each type's to_json() gives exactly
# the lists and tables the key was first made from, so changing one re-renders every mix.


class CueItem(NamedTuple):
    """An SFX cue within a voice line; JSON ``[key, at, gain_db, offset]``."""

    key: str
    at: float  # where in the line, as a fraction of its text
    gain_db: float
    offset: float

    def to_json(self) -> list[Any]:
        """The cue as its JSON list."""
        return [self.key, self.at, self.gain_db, self.offset]

    @classmethod
    def from_json(cls, data: list[Any]) -> CueItem:
        """A cue from its JSON list."""
        key, at, gain_db, offset = data
        return cls(key, at, gain_db, offset)


class LineItem(NamedTuple):
    """A voice line and its cues; JSON ``["line", key, gain_db, [cue, …]]``."""

    key: str
    gain_db: float
    cues: tuple[CueItem, ...] = ()

    def to_json(self) -> list[Any]:
        """The line as its JSON list."""
        return ["line", self.key, self.gain_db, [cue.to_json() for cue in self.cues]]


class PauseItem(NamedTuple):
    """Silence between lines; JSON ``["pause", seconds]``."""

    seconds: float

    def to_json(self) -> list[Any]:
        """The pause as its JSON list."""
        return ["pause", self.seconds]


class StingItem(NamedTuple):
    """An SFX played on its own, between lines; JSON ``["sting", key, gain_db]``."""

    key: str
    gain_db: float

    def to_json(self) -> list[Any]:
        """The sting as its JSON list."""
        return ["sting", self.key, self.gain_db]


TimelineItem: TypeAlias = LineItem | PauseItem | StingItem


def item_from_json(data: list[Any]) -> TimelineItem:
    """A timeline item from its JSON list (``["line" | "pause" | "sting", …]``)."""
    kind, *rest = data
    if kind == "pause":
        return PauseItem(*rest)
    if kind == "sting":
        return StingItem(*rest)
    key, gain_db, cues = rest
    return LineItem(key, gain_db, tuple(CueItem.from_json(cue) for cue in cues))


@dataclass(frozen=True)
class TimelineSection:
    """One section of a timeline: its items, its bed part, and its marker and ducking if set."""

    music: str
    items: tuple[TimelineItem, ...]
    at: float | None = None  # the marker: in the JSON only when set, so older mixes keep their keys
    duck: dict[str, Any] = field(default_factory=dict)  # likewise, only when not empty

    def to_json(self) -> dict[str, Any]:
        """The section as its JSON table."""
        out: dict[str, Any] = {"music": self.music, "items": [item.to_json() for item in self.items]}
        if self.at is not None:
            out["at"] = self.at
        if self.duck:
            out["duck"] = dict(self.duck)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimelineSection:
        """A section from its JSON table."""
        items = tuple(item_from_json(item) for item in data["items"])
        return cls(data["music"], items, data.get("at"), dict(data.get("duck", {})))


@dataclass(frozen=True)
class TimelineBed:
    """A music bed's gain and the asset keys of its three segments."""

    gain_db: float
    intro: str
    main: str
    outro: str

    def to_json(self) -> dict[str, Any]:
        """The bed as its JSON table."""
        return {"gain_db": self.gain_db, "intro": self.intro, "main": self.main, "outro": self.outro}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TimelineBed:
        """A bed from its JSON table."""
        return cls(data["gain_db"], data["intro"], data["main"], data["outro"])

    def segment(self, name: str) -> str:
        """The key of the segment ``name`` (``intro``, ``main`` or ``outro``)."""
        return {"intro": self.intro, "main": self.main, "outro": self.outro}[name]


@dataclass(frozen=True)
class Timeline:
    """What a mix is made of: the rate, channels, [mix] settings, sections and bed."""

    sample_rate: int
    channels: int
    settings: dict[str, Any]
    sections: tuple[TimelineSection, ...]
    bed: TimelineBed | None

    def to_json(self) -> dict[str, Any]:
        """The timeline as the JSON table the mix's key is made from."""
        return {
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "settings": self.settings,
            "sections": [section.to_json() for section in self.sections],
            "bed": self.bed.to_json() if self.bed is not None else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Timeline:
        """A timeline from its JSON table."""
        return cls(
            data["sample_rate"],
            data["channels"],
            data["settings"],
            tuple(TimelineSection.from_json(section) for section in data["sections"]),
            TimelineBed.from_json(data["bed"]) if data["bed"] is not None else None,
        )


class SpokenLine(NamedTuple):
    """A voice line as captions show it: who speaks it and its text as written (before
    pronunciation rules). Never part of a key."""

    voice: str
    text: str

    def __reduce__(self) -> tuple[Any, ...]:
        return _plain_tuple(self)


class SectionInfo(NamedTuple):
    """What captions and chapters know of a timeline section beyond its sound: its name,
    chapter title and flag (``## news title="World news" chapter=no``), and its voice lines
    in the order of its :class:`LineItem` items. Never part of a key."""

    name: str
    title: str
    chapter: bool
    lines: tuple[SpokenLine, ...]

    def __reduce__(self) -> tuple[Any, ...]:
        return _plain_tuple(self)


def section_info_digest(info: Sequence[SectionInfo]) -> str:
    """One digest of a rendition's :class:`SectionInfo` (what its captions and timeline show)."""
    return content_key([list(section) for section in info])


def section_key(timeline: Timeline, section: TimelineSection, *, compact: bool = False) -> str | None:
    """The content key of ``section``'s pre-mix in ``timeline``, or None if it has no samples.

    Made of its items and what reaches them (the rate, the channels and
    :data:`SECTION_SETTINGS`), never of its name, its position or its bed
    part, marker and ducking (they act in the mix); and of :data:`COMPACT`
    when it is cached compactly. A section without items, or with only
    pauses that round to no samples, has no pre-mix.
    """
    sr = timeline.sample_rate
    pauses = [item.seconds for item in section.items if isinstance(item, PauseItem)]
    if len(pauses) == len(section.items) and sum(int(round(s * sr)) for s in pauses) == 0:
        return None  # rounded as the mixer rounds: no samples to pre-mix
    settings = {name: timeline.settings.get(name) for name in SECTION_SETTINGS}
    spec = {
        "section": SECTION_VERSION,
        "sample_rate": sr,
        "channels": timeline.channels,
        "settings": settings,
        "items": [item.to_json() for item in section.items],
    }
    return content_key({**spec, "stored": COMPACT} if compact else spec)


class SectionPlan(NamedTuple):
    """One section's pre-mix: its speech and SFX laid out on their own (``section:`` target).

    One per content key, wherever and however often the section is used;
    ``mix`` and ``index`` say where it is first used (the rendition's
    :class:`MixPlan` name and the section's index in its timeline).
    """

    key: str
    task: str  # full doit task name, e.g. "section:daily/briefing/headlines"
    mix: str
    index: int  # type: ignore[assignment]  # the section's index; tuple.index is not used on it
    assets: tuple[str, ...]  # asset keys it uses, in first-use order

    @property
    def sfx_key(self) -> str:
        """The cache key of the pre-mix's SFX bus (its voice bus is :attr:`key`)."""
        return section_sfx_key(self.key)


def section_sfx_key(key: str) -> str:
    """The cache key of the SFX bus of the pre-mix ``key``."""
    return content_key({"bus": "sfx", "section": key})


class DeliveryPlan(NamedTuple):
    """One ``[deliveries.NAME]`` of a rendition: its name, settings table and files."""

    name: str
    table: dict[str, Any]
    files: list[Path]


def stem_key(mix: str, bus: str) -> str:
    """The cache key of one bus of the mix ``mix``, before mastering."""
    return content_key({"stem": bus, "mix": mix})


def shipment_key(mix: MixPlan, delivery: str | None = None) -> str:
    """The remote cache's key of the files ``mix``'s rendition publishes in ``build/``: its
    [master] files and stems, or those of its ``[deliveries.NAME]`` named ``delivery``.

    It changes whenever the files would: with the master they come from, their names
    and a delivery's settings (the :attr:`MixPlan.stamp` the build checks them against),
    and the rendition (whose name the files' paths follow).
    """
    if delivery is None:
        return content_key({"shipped": "master", "rendition": mix.name, "stamp": mix.stamp})
    stamp = mix.delivery_stamp(delivery)
    return content_key({"shipped": "delivery", "rendition": mix.name, "delivery": delivery, "stamp": stamp})


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
    deliveries: list[DeliveryPlan] = field(default_factory=list)
    #: each section's heading for messages, ``stanzas/x.j2:12: section 'news'``: never part of a key
    sections: list[str] = field(default_factory=list)
    #: each timeline section's pre-mix key (:func:`section_key`), None for one without samples
    section_keys: list[str | None] = field(default_factory=list)
    #: and the task that makes it (named by its first use, maybe in another rendition)
    section_tasks: list[str | None] = field(default_factory=list)
    #: the rendition's [metadata], rendered: written into its files, never part of a content key
    tags: Tags | None = None
    #: each timeline section's chapter and the text of its lines (captions): never part of a key
    section_info: list[SectionInfo] = field(default_factory=list)
    #: each section's chapter title and whether it is one, when the rendition's tagged files carry
    #: chapters (ID3 CHAP/CTOC in MP3): in the files' stamp, so a new title tags them again
    chapter_marks: tuple[tuple[str, bool], ...] = ()
    #: the digest of :attr:`section_info`, made once with the plan (the plan memo keeps it): what
    #: the captions and the timeline are stamped with, every build, for every rendition
    section_digest: str = ""

    def info_digest(self) -> str:
        """:attr:`section_digest`, or the digest of :attr:`section_info` for a plan made without it."""
        return self.section_digest or section_info_digest(self.section_info)

    def section_task(self, index: int) -> str:
        """The ``section:`` target of section ``index`` (for messages even where it has none)."""
        task = self.section_tasks[index] if index < len(self.section_tasks) else None
        return task or f"section:{self.name}#{index}"

    @property
    def timeline(self) -> Timeline:
        """The mix's :class:`Timeline`, read from its JSON."""
        return Timeline.from_json(json.loads(self.timeline_json))

    def stem_key(self, bus: str) -> str:
        """The cache key of one bus of this mix, before mastering."""
        return stem_key(self.key, bus)

    @cached_property
    def stamp(self) -> str:
        """What the files in ``build/`` must have been made from to be current."""
        return self._tagged(self.files_stamp())

    def delivery_stamp(self, name: str) -> str:
        """Likewise for the files of one ``[deliveries.NAME]``."""
        return self.delivery_stamps[name]

    @cached_property
    def delivery_stamps(self) -> dict[str, str]:
        """:meth:`delivery_stamp` of every delivery by name, made once (a no-op build checks
        them all; the plan memo keeps them when they were made before it was written)."""
        return {d.name: self._tagged(self.files_stamp(d.name)) for d in self.deliveries}

    def files_stamp(self, delivery: str | None = None) -> str:
        """What the audio of the [master] files (or of the ``[deliveries.NAME]`` named
        ``delivery``) is made from, their tags left out: when only the tags change, the files
        in ``build/`` are tagged again (:mod:`mixdown.actions.retag`), not made again."""
        if delivery is None:
            return content_key([self.master_key, [p.name for p in self.outputs]])
        table, files = self.delivery(delivery)
        return content_key([self.master_key, table, [p.name for p in files]])

    def _tagged(self, stamp: str) -> str:
        """``stamp`` with the files' tags, if they have any; without tags, as before tags existed."""
        if self.tags is None:
            return stamp
        marks = {"chapters": [list(m) for m in self.chapter_marks]} if self.chapter_marks else {}
        return content_key([stamp, {"tags": self.tags.to_json(), **marks}])

    def delivery(self, name: str) -> tuple[dict[str, Any], list[Path]]:
        """The settings table and the files of one delivery."""
        return next((d.table, d.files) for d in self.deliveries if d.name == name)


@dataclass
class Plan:
    """Every asset (by key, in first-use order) and every mix."""

    assets: dict[str, Asset]
    mixes: list[MixPlan]
    #: the key each asset had at its first take, for those on a later one (see mixdown.plan.takes)
    first_takes: dict[str, str] = field(default_factory=dict)
    #: every section pre-mix by key, in first-use order
    sections: dict[str, SectionPlan] = field(default_factory=dict)
    #: the fingerprint of the lock this plan wants (:func:`mixdown.plan.lock.fingerprint`), made
    #: once with the plan and kept by the plan memo, so that a no-op build does not make it again
    lock_fingerprint: str = ""

    def mix_named(self, name: str) -> MixPlan:
        """The :class:`MixPlan` of the rendition ``name``."""
        return next(mix for mix in self.mixes if mix.name == name)

    def first_take(self, key: str) -> str:
        """The key ``key``'s asset has at take 0 (``key`` itself when it is at take 0)."""
        return self.first_takes.get(key, key)
