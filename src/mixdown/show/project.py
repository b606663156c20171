"""The project model: ``project.toml`` read and validated into a :class:`Project`.

:func:`load` checks every table, name and number of ``project.toml`` and
assembles the model: the file is read through :mod:`mixdown.show.reader`,
the sounds checked against each renderer's spec in :mod:`mixdown.show.sounds`,
the settings tables (ranges and presets from :mod:`mixdown.settings`) in
:mod:`mixdown.show.tables`; ``[project]``, ``[modules]`` and ``[scripts]``
are checked here. :mod:`mixdown.show.templates` then renders the scripts.
Every problem is a one-line :class:`~mixdown.errors.ProjectError` naming
the file, the line where it can be found, and what is allowed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..keys import record
from ..settings import PROGRAMME_RATES, Price, PublishSettings
from .reader import TomlReader, check_name, inside, must_exist, read_text, toml_syntax
from .sounds import Sound, read_sounds
from .tables import (
    CacheSettings,
    ExecutorSettings,
    parse_size,
    read_cache,
    read_deliveries,
    read_executor,
    read_master,
    read_mix,
    read_prices,
    read_pronunciations,
    read_providers,
    read_publish,
)

if TYPE_CHECKING:  # parsing is imported where it is used: a memoised build needs none of it
    from ..codecs.tags import Tags
    from . import stanza
    from .metadata import MetadataTable

# CacheSettings, ExecutorSettings, Sound, parse_size and read_text live beside the tables
# they read; they stay importable from here, where a show's own code has found them.
__all__ = [
    "CacheSettings",
    "ExecutorSettings",
    "Project",
    "Rendition",
    "Script",
    "Sound",
    "load",
    "parse_size",
    "read_text",
]

PROJECT_KEYS = {"name", "sample_rate", "channels", "cache", "build", "voice", "vars"}
SCRIPT_KEYS = {"template", "module", "voice", "music", "variants", "vars", "metadata"}
MODULE_KEYS = SCRIPT_KEYS - {"template", "module", "metadata"}
TOP_KEYS = {
    "project",
    "cache",
    "voices",
    "sfx",
    "music",
    "modules",
    "scripts",
    "mix",
    "master",
    "pronunciations",
    "providers",
    "deliveries",
    "executor",
    "metadata",
    "publish",
}


@dataclass(frozen=True)
class Script:
    """One script template and how to render it."""

    name: str
    template: str
    voice: str
    music: str | None
    variants: str | None
    vars: dict[str, Any]
    where: str
    metadata: MetadataTable | None = None  # [scripts.NAME.metadata]


@dataclass(frozen=True)
class Project:
    """A validated show."""

    root: Path
    name: str
    sample_rate: int
    channels: int
    cache_dir: Path
    build_dir: Path
    voices: dict[str, Sound]
    sfx: dict[str, Sound]
    music: dict[str, Sound]
    scripts: dict[str, Script]
    pronunciations: dict[str, str]
    mix: dict[str, float]
    master: dict[str, Any]
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)  # never part of a key
    deliveries: dict[str, dict[str, Any]] = field(default_factory=dict)  # [deliveries.NAME], validated
    cache: CacheSettings = field(default_factory=lambda: CacheSettings())  # [cache], never part of a key
    #: ``[providers.NAME] price``, by provider: what the show says its renders cost (never in a key)
    prices: dict[str, tuple[Price, ...]] = field(default_factory=dict)
    executor: ExecutorSettings = field(default_factory=lambda: ExecutorSettings())  # never part of a key
    metadata: MetadataTable | None = None  # [metadata]: the published files' tags (not in a key)
    publish: PublishSettings = field(default_factory=PublishSettings)  # never part of a key

    @property
    def compact(self) -> bool:
        """Whether mixes, section pre-mixes and masters are cached as 24-bit FLAC (``[cache]
        compact``; by default when a script has variants, whose mixes multiply with the listeners)."""
        if self.cache.compact is not None:
            return self.cache.compact
        return any(script.variants for script in self.scripts.values())


@dataclass
class Rendition:
    """A script rendered for one variant row (``variant`` is ``None`` without variants)."""

    script: Script
    variant: str | None
    sections: list[stanza.ScriptSection] = field(default_factory=list)
    tags: Tags | None = None  # its [metadata], rendered (None: the files carry no tags)

    @property
    def name(self) -> str:
        """``module/script`` or ``module/script@variant``."""
        return self.script.name + (f"@{self.variant}" if self.variant else "")


def load(root: str | os.PathLike[str], *, registry: Any = None) -> Project:
    """Read and validate ``root/project.toml``.

    ``registry`` (a :class:`~mixdown.renderers.Registry`) is used to check
    renderer names and their settings; without one, only names are checked
    against the built-ins at graph time.
    """
    root = Path(root).resolve()
    toml, data = _parsed(root)
    top = toml.table(data, "project")
    toml.check_keys(top, PROJECT_KEYS, ["project"])
    sources = {
        kind: read_sounds(toml, data, table, kind, registry)
        for kind, table in (("voice", "voices"), ("sfx", "sfx"), ("music", "music"))
    }
    default_voice = _default_voice(toml, top, sources["voice"])
    cache = os.environ.get("MIXDOWN_CACHE") or toml.typed(top, "cache", str, ["project"], "cache")
    rate = _rate(toml, top)
    return Project(
        root=root,
        name=toml.typed(top, "name", str, ["project"], root.name),
        sample_rate=rate,
        channels=_channels(toml, top),
        cache_dir=(root / cache).resolve(),
        build_dir=inside(
            root, toml.typed(top, "build", str, ["project"], "build"), toml, ["project", "build"]
        ),
        voices=sources["voice"],
        sfx=sources["sfx"],
        music=sources["music"],
        scripts=_scripts(toml, data, top, default_voice, sources),
        pronunciations=read_pronunciations(toml, data),
        mix=read_mix(toml, data),
        master=read_master(toml, data),
        providers=read_providers(toml, data),
        prices=read_prices(toml, data),
        deliveries=read_deliveries(toml, data, rate),
        cache=read_cache(toml, data),
        executor=read_executor(toml, data),
        metadata=_metadata(toml, data, [], top),
        publish=read_publish(toml, data),
    )


def _parsed(root: Path) -> tuple[TomlReader, dict[str, Any]]:
    """``root/project.toml`` parsed (recorded as an input of the plan), its top-level keys checked."""
    path = root / "project.toml"
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run mixdown in a show's directory (with project.toml)")
    import tomllib

    record(path)
    text = read_text(path, "project.toml")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(toml_syntax(err)) from None
    toml = TomlReader(text, root)
    if "tool" in data:  # [tool.doit] is doit's, and doit reads it from pyproject.toml
        raise ConfigError(
            f"{toml.where(['tool'])}: [tool.*] tables belong in pyproject.toml, not project.toml; "
            "move [tool.doit] there (or write loader = mixdown under [GLOBAL] in doit.cfg)"
        )
    toml.check_keys(data, TOP_KEYS, [])
    return toml, data


def _default_voice(toml: TomlReader, top: Mapping[str, Any], voices: dict[str, Sound]) -> str:
    """``[project] voice``: a declared voice, by default the first."""
    if not voices:
        raise ConfigError(f"project.toml:{toml.line(['voices'])}: declare at least one [voices.NAME]")
    default_voice: str = toml.typed(top, "voice", str, ["project"], next(iter(voices)))
    if default_voice not in voices:
        raise ConfigError(
            f"{toml.where(['project', 'voice'])}: unknown voice '{default_voice}'; "
            f"declared voices: {', '.join(voices)}"
        )
    return default_voice


def _rate(toml: TomlReader, top: Mapping[str, Any]) -> int:
    rate = toml.typed(top, "sample_rate", int, ["project"], 48000)
    if rate not in PROGRAMME_RATES:
        raise ConfigError(
            f"{toml.where(['project', 'sample_rate'])}: sample_rate {rate} is not a delivery rate; "
            f"use one of {', '.join(map(str, PROGRAMME_RATES))} (usually 44100 or 48000)"
        )
    return int(rate)


def _channels(toml: TomlReader, top: Mapping[str, Any]) -> int:
    channels = toml.typed(top, "channels", int, ["project"], 2)
    if channels not in (1, 2):
        raise ConfigError(f"{toml.where(['project', 'channels'])}: channels must be 1 or 2")
    return int(channels)


def _scripts(
    toml: TomlReader,
    data: Mapping[str, Any],
    top: Mapping[str, Any],
    default_voice: str,
    sources: dict[str, dict[str, Sound]],
) -> dict[str, Script]:
    modules = toml.table(data, "modules")
    for name in modules:
        check_name(name, toml, ["modules", name])
        toml.check_keys(toml.table(modules, name, ["modules"]), MODULE_KEYS, ["modules", name])
    scripts: dict[str, Script] = {}
    for name, entry in toml.table(data, "scripts").items():
        path = ["scripts", name]
        check_name(name, toml, path)
        entry = toml.table(toml.table(data, "scripts"), name, ["scripts"])
        toml.check_keys(entry, SCRIPT_KEYS, path)
        script = _script(toml, name, entry, modules, top, default_voice, sources)
        scripts[script.name] = script
    if not scripts:
        raise ConfigError(
            f'project.toml:{toml.line(["scripts"])}: declare at least one [scripts.NAME] with template = "stanzas/….j2"'
        )
    return scripts


def _script(
    toml: TomlReader,
    name: str,
    entry: dict[str, Any],
    modules: dict[str, Any],
    top: Mapping[str, Any],
    default_voice: str,
    sources: dict[str, dict[str, Sound]],
) -> Script:
    path = ["scripts", name]
    module_name = toml.typed(entry, "module", str, path, None)
    if module_name is not None and module_name not in modules:
        raise ConfigError(
            f"{toml.where([*path, 'module'])}: unknown module '{module_name}'; declare [modules.{module_name}]"
        )
    module = modules.get(module_name, {}) if module_name else {}
    merged = {**module, **entry}

    def origin(key: str) -> list[str]:
        """Where ``key`` was set: the script's table, else its module's, else [project]."""
        if key in entry:
            return [*path, key]
        if module_name and key in module:
            return ["modules", module_name, key]
        return ["project", key] if key in top else [*path, key]

    template = toml.typed(entry, "template", str, path, None)
    if template is None:
        raise ConfigError(f'{toml.where(path)}: [scripts.{name}] needs template = "stanzas/{name}.j2"')
    must_exist(toml, [*path, "template"], template)
    voice = toml.typed(merged, "voice", str, path, default_voice)
    if voice not in sources["voice"]:
        raise ConfigError(
            f"{toml.where(origin('voice'))}: unknown voice '{voice}'; declared voices: {', '.join(sources['voice'])}"
        )
    music = toml.typed(merged, "music", str, path, None)
    if music not in (None, "none") and music not in sources["music"]:
        raise ConfigError(
            f"{toml.where(origin('music'))}: unknown music bed '{music}'; declared: {', '.join(sources['music']) or 'none'}"
        )
    variants = toml.typed(merged, "variants", str, path, None)
    if variants is not None:
        must_exist(toml, origin("variants"), variants)
    variables = {
        **toml.typed(top, "vars", dict, ["project"], {}),
        **toml.typed(module, "vars", dict, path, {}),
        **toml.typed(entry, "vars", dict, path, {}),
    }
    return Script(
        name=f"{module_name}/{name}" if module_name else name,
        template=template,
        voice=voice,
        music=None if music == "none" else music,
        variants=variants,
        vars=variables,
        where=toml.where(path),
        metadata=_metadata(toml, entry, path, top),
    )


def _metadata(
    toml: TomlReader, data: Mapping[str, Any], path: list[str], top: Mapping[str, Any]
) -> MetadataTable | None:
    """The ``[metadata]`` table in ``data`` (at ``path``), checked; None if there is none."""
    if "metadata" not in data:
        return None
    from .metadata import checked

    name = toml.typed(top, "name", str, ["project"], None)
    return checked(toml.table(data, "metadata", path), toml.where, [*path, "metadata"], toml.root, name)
