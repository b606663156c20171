"""From a rendered show to a plan: unique assets and one mix per rendition.

:func:`plan` walks every rendered script and gives each voice line, SFX cue
and music-bed segment its content key. One key is one asset and one render,
wherever and however often it is used. Each rendition gets a
:class:`~mixdown.plan.model.Timeline` of asset keys and mix settings, whose
JSON is both the input of the mix and the material of the mix's own key. Names (sections, voices) never
enter a key; they only name the targets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..keys import content_key
from ..renderers import Registry
from ..settings import BED_GAIN_DB, LOSSY, LOSSY_HEADROOM_DB, SEGMENTS, STEMS, delivery_from
from ..show import stanza
from ..show.project import Project, Rendition, Sound
from . import lock as lockfile
from . import takes
from .model import (
    COMPACT,
    MASTER_VERSION,
    MIX_VERSION,
    Asset,
    CueItem,
    DeliveryPlan,
    LineItem,
    MixPlan,
    PauseItem,
    Plan,
    SectionInfo,
    SectionPlan,
    SpokenLine,
    StingItem,
    Timeline,
    TimelineBed,
    TimelineItem,
    TimelineSection,
    section_info_digest,
    section_key,
)

__all__ = ["plan"]


def plan(project: Project, renditions: list[Rendition], registry: Registry) -> Plan:
    """Build the plan; raises :class:`~mixdown.errors.ConfigError` for bad media."""
    return _Planner(project, registry).run(renditions)


class _Line(NamedTuple):
    position: str  # script/section/index
    key: str
    source: Sound
    text: str  # pronunciations applied
    doc: str


class _Planner:
    def __init__(self, project: Project, registry: Registry) -> None:
        self.project = project
        self.registry = registry
        self.assets: dict[str, Asset] = {}
        self._source_keys: dict[tuple[str, str], dict[str, Any]] = {}
        self._takes = takes.load(project.root)
        self._first_takes: dict[str, str] = {}  # key at a later take -> key at the first
        self._section_assets: dict[str, tuple[str, ...]] = {}  # section key -> its asset keys

    def run(self, renditions: list[Rendition]) -> Plan:
        lines = [self._lines(r) for r in renditions]
        shared = _shared_positions(
            renditions, [[(line.position, line.key) for line in found] for found in lines]
        )
        mixes = []
        for rendition, found in zip(renditions, lines, strict=True):
            for line in found:
                suffix = "" if line.position in shared else f"@{rendition.variant}"
                self._add(line, f"voice:{line.position}{suffix}")
            mixes.append(self._mix(rendition, iter(found)))
        sections = self._sections(renditions, mixes)
        made = Plan(self.assets, mixes, self._first_takes, sections)
        made.lock_fingerprint = lockfile.fingerprint(made, self.project.root)
        return made

    # -- sections ----------------------------------------------------------
    def _sections(self, renditions: list[Rendition], mixes: list[MixPlan]) -> dict[str, SectionPlan]:
        """Every section pre-mix, named as voice lines are: ``@variant`` only where variants differ.

        Fills each mix's ``section_tasks``; an identical section anywhere is one target,
        named by its first use.
        """
        found = [
            [(f"{r.script.name}/{s.name}", key) for s, key in zip(r.sections, mix.section_keys, strict=True)]
            for r, mix in zip(renditions, mixes, strict=True)
        ]
        shared = _shared_positions(renditions, [[(p, k) for p, k in f if k is not None] for f in found])
        out: dict[str, SectionPlan] = {}
        for rendition, mix, positions in zip(renditions, mixes, found, strict=True):
            for index, (position, key) in enumerate(positions):
                if key is not None and key not in out:
                    suffix = "" if position in shared else f"@{rendition.variant}"
                    task = f"section:{position}{suffix}"
                    out[key] = SectionPlan(key, task, mix.name, index, self._section_assets[key])
                mix.section_tasks.append(out[key].task if key is not None else None)
        return out

    # -- voice lines -------------------------------------------------------
    def _lines(self, rendition: Rendition) -> list[_Line]:
        """Every voice line of a rendition, in order."""
        out = []
        for section in rendition.sections:
            pieces = [
                p
                for item in section.items
                if isinstance(item, stanza.Say)
                for p in self._split(rendition, section, item)
            ]
            for index, (say, source) in enumerate(pieces):
                position = f"{rendition.script.name}/{section.name}/{index}"
                text = stanza.pronounce(say.text, self.project.pronunciations)
                key = self._key(self._spec(source, text=text))
                out.append(_Line(position, key, source, text, say.text[:60]))
        return out

    def _split(
        self, rendition: Rendition, section: stanza.ScriptSection, say: stanza.Say
    ) -> list[tuple[stanza.Say, Sound]]:
        voice = say.voice or section.settings.get("voice") or rendition.script.voice
        source = self.project.voices[voice]
        limit = self.registry.spec(source.renderer).text_limit(source.params)
        return [(piece, source) for piece in stanza.split_line(say, limit)]

    def _spec(self, source: Sound, **extra: Any) -> dict[str, Any]:
        spec = self.registry.spec(source.renderer)
        memo = (source.kind, source.name)
        if memo not in self._source_keys:
            try:
                self._source_keys[memo] = spec.key_params(source.params, self.project.root)
            except ValueError as err:
                raise ConfigError(f"{source.where}: {err}") from None
        return {
            "kind": source.kind,
            "renderer": source.renderer,
            "version": spec.version,
            "params": self._source_keys[memo],
            **extra,
        }

    def _key(self, spec: dict[str, Any]) -> str:
        """The content key of an asset: of its spec, and of its take after the first."""
        first = content_key(spec)
        take = self._takes.get(first, 0)
        if not take:
            return first
        key = content_key({**spec, "take": take})
        self._first_takes[key] = first
        return key

    def _take(self, key: str) -> int:
        return self._takes.get(self._first_takes.get(key, ""), 0)

    def _add(self, line: _Line, task: str) -> None:
        if line.key not in self.assets:
            source = line.source
            self.assets[line.key] = Asset(
                line.key,
                "voice",
                task,
                source.renderer,
                source.name,
                line.text,
                doc=line.doc,
                take=self._take(line.key),
            )

    # -- sfx and music -----------------------------------------------------
    def _source_asset(self, source: Sound, segment: str | None = None) -> str:
        key = self._key(self._spec(source, **({"segment": segment} if segment else {})))
        name = f"{source.kind}:{source.name}" + (f"/{segment}" if segment else "")
        if key not in self.assets:
            self.assets[key] = Asset(
                key, source.kind, name, source.renderer, source.name, segment=segment, take=self._take(key)
            )
        return key

    # -- the mix -----------------------------------------------------------
    def _mix(self, rendition: Rendition, voice_lines: Iterator[_Line]) -> MixPlan:
        used: dict[str, None] = {}  # asset keys, in first-use order
        spoken: list[list[SpokenLine]] = []
        typed = self._timeline(rendition, voice_lines, used, spoken)
        timeline = typed.to_json()
        compact = {"stored": COMPACT} if self.project.compact else {}
        key = content_key({"mix": MIX_VERSION, **timeline, **compact})
        master = self._master()
        master_key = content_key({"master": MASTER_VERSION, "mix": key, **master})
        info = [
            SectionInfo(s.name, self._chapter_title(rendition, s), s.chapter, tuple(lines))
            for s, lines in zip(rendition.sections, spoken, strict=True)
        ]
        return MixPlan(
            rendition.name,
            json.dumps(timeline),
            key,
            master_key,
            master,
            self._outputs(rendition),
            list(used),
            self._deliveries(rendition),
            [f"{s.where}: section '{s.name}'" for s in rendition.sections],
            [self._section(typed, section) for section in typed.sections],
            tags=rendition.tags,
            chapter_marks=(
                tuple((i.title, i.chapter) for i in info)
                if rendition.tags is not None and self.project.publish.chapters
                else ()
            ),
            section_info=info,
            section_digest=section_info_digest(info),
        )

    def _chapter_title(self, rendition: Rendition, section: stanza.ScriptSection) -> str:
        """A section's chapter title: its ``title=``, else its name; the text before any heading
        takes the rendition's ``[metadata]`` title, else the show's name."""
        if section.title:
            return section.title
        if section.heading:
            return section.name
        tags = rendition.tags
        return tags.title if tags is not None and tags.title else self.project.name

    def _section(self, timeline: Timeline, section: TimelineSection) -> str | None:
        """The pre-mix key of ``section`` (see :func:`~mixdown.plan.model.section_key`), noting its assets."""
        key = section_key(timeline, section, compact=self.project.compact)
        if key is not None and key not in self._section_assets:
            used: dict[str, None] = {}
            for item in section.items:
                if isinstance(item, LineItem):
                    used[item.key] = None
                    used.update(dict.fromkeys(cue.key for cue in item.cues))
                elif isinstance(item, StingItem):
                    used[item.key] = None
            self._section_assets[key] = tuple(used)
        return key

    def _timeline(
        self,
        rendition: Rendition,
        voice_lines: Iterator[_Line],
        used: dict[str, None],
        spoken: list[list[SpokenLine]],
    ) -> Timeline:
        """The rendition's timeline; each section's voice lines as written are added to ``spoken``."""
        project = self.project
        sections = []
        for section in rendition.sections:
            items: list[TimelineItem] = []
            spoken.append([])
            for item in section.items:
                items.extend(self._items(rendition, section, item, voice_lines, used, spoken[-1]))
            music = section.settings.get("music", "auto")
            sections.append(TimelineSection(music, tuple(items), section.at, dict(section.duck)))
        bed = self._bed(rendition, used)
        return Timeline(project.sample_rate, project.channels, project.mix, tuple(sections), bed)

    def _master(self) -> dict[str, Any]:
        """The [master] settings that enter the master's key."""
        project = self.project
        master = {k: v for k, v in project.master.items() if k not in ("formats", "stems")}
        # One master feeds every [master] format: with a lossy one among them, it is
        # limited with that format's extra headroom, so no format needs limiting again.
        lossy = any(fmt in LOSSY for fmt in project.master["formats"])
        master["limit_dbtp"] = master["ceiling_dbtp"] - (LOSSY_HEADROOM_DB if lossy else 0.0)
        return master

    def _outputs(self, rendition: Rendition) -> list[Path]:
        """The [master] files of a rendition in ``build/``, its stems too if asked for."""
        project = self.project
        outputs = [project.build_dir / f"{rendition.name}.{fmt}" for fmt in project.master["formats"]]
        if project.master["stems"]:
            outputs += [project.build_dir / f"{rendition.name}.stems" / f"{bus}.wav" for bus in STEMS]
        return outputs

    def _deliveries(self, rendition: Rendition) -> list[DeliveryPlan]:
        build = self.project.build_dir
        return [
            DeliveryPlan(
                name,
                table,
                [build / f"{rendition.name}.{name}.{f}" for f in delivery_from(table, name).formats],
            )
            for name, table in self.project.deliveries.items()
        ]

    def _items(
        self,
        rendition: Rendition,
        section: stanza.ScriptSection,
        item: Any,
        voice_lines: Iterator[_Line],
        used: dict[str, None],
        spoken: list[SpokenLine],
    ) -> list[TimelineItem]:
        if isinstance(item, stanza.Rest):
            return [PauseItem(item.seconds)]
        if isinstance(item, stanza.Play):
            source = self.project.sfx[item.sfx]
            key = self._source_asset(source)
            used[key] = None
            return [StingItem(key, source.mix.get("gain_db", 0.0))]
        out: list[TimelineItem] = []
        for piece, source in self._split(rendition, section, item):
            key = next(voice_lines).key
            used[key] = None
            cues = tuple(self._cue(cue, len(piece.text), used) for cue in piece.cues)
            out.append(LineItem(key, source.mix.get("gain_db", 0.0), cues))
            spoken.append(SpokenLine(source.name, piece.text))
        return out

    def _cue(self, cue: stanza.CueRef, length: int, used: dict[str, None]) -> CueItem:
        """A line's cue, placed as a fraction of the line's ``length`` characters."""
        sfx = self.project.sfx[cue.sfx]
        key = self._source_asset(sfx)
        used[key] = None
        at = cue.at / max(length, 1)
        return CueItem(key, round(at, 6), sfx.mix.get("gain_db", 0.0), sfx.mix.get("offset", 0.0))

    def _bed(self, rendition: Rendition, used: dict[str, None]) -> TimelineBed | None:
        name = rendition.script.music
        if name is None:
            return None
        source = self.project.music[name]
        keys = {segment: self._source_asset(source, segment) for segment in SEGMENTS}
        used.update(dict.fromkeys(keys.values()))
        return TimelineBed(source.mix.get("gain_db", BED_GAIN_DB), **keys)


def _shared_positions(renditions: list[Rendition], lines: list[list[tuple[str, str]]]) -> set[str]:
    """Positions whose line (or section) is the same in every variant of their script.

    ``lines`` holds each rendition's ``(position, key)`` pairs. Those
    positions get a plain task name; ones that differ per variant get
    ``@variant`` appended.
    """
    variants: dict[str, int] = {}
    keys: dict[str, set[str]] = {}
    count: dict[str, int] = {}
    script_of: dict[str, str] = {}
    for rendition, found in zip(renditions, lines, strict=True):
        variants[rendition.script.name] = variants.get(rendition.script.name, 0) + 1
        for position, key in found:
            keys.setdefault(position, set()).add(key)
            count[position] = count.get(position, 0) + 1
            script_of[position] = rendition.script.name
    return {p for p, k in keys.items() if len(k) == 1 and count[p] == variants[script_of[p]]}
