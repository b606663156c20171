"""The project model: ``project.toml`` read and validated into a :class:`Project`.

:func:`load` checks every table, name and number of ``project.toml``
(ranges and presets from :mod:`mixdown.settings`, renderer settings against
each renderer's spec); :mod:`mixdown.show.templates` then renders the
scripts. Every problem is a one-line :class:`~mixdown.errors.ProjectError`
naming the file, the line where it can be found, and what is allowed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProjectError
from ..keys import record
from ..settings import (
    MASTER_SETTINGS,
    MIX_KEYS,
    MIX_SETTINGS,
    NAME,
    PROGRAMME_RATES,
    PROVIDER_KEYS,
    PUBLISH_KEYS,
    RANGES,
    SPEECH_SWITCHES,
    Price,
    PublishSettings,
    checked_formats,
    delivery_from,
    kind_name,
    preset_named,
    prices_from,
    typed_as,
)

if TYPE_CHECKING:  # parsing is imported where it is used: a memoised build needs none of it
    from ..codecs.tags import Tags
    from ..renderers import Registry
    from ..renderers.base import RendererSpec
    from . import stanza
    from .metadata import MetadataTable

__all__ = ["CacheSettings", "ExecutorSettings", "Project", "Rendition", "Script", "Sound", "load", "parse_size", "read_text"]

PROJECT_KEYS = {"name", "sample_rate", "channels", "cache", "build", "voice", "vars"}
SCRIPT_KEYS = {"template", "module", "voice", "music", "variants", "vars", "metadata"}
MODULE_KEYS = SCRIPT_KEYS - {"template", "module", "metadata"}
CACHE_KEYS = {"remote", "share", "max_size", "compact"}
SHARES = ("assets", "all")  # what a remote cache holds: rendered assets only, or mixes and masters too
EXECUTOR_KEYS = {"dask", "jobs"}
#: the schemes of a Dask scheduler's address, beside "local" (a cluster on this machine for the build)
DASK_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")
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
class Sound:
    """A sound the show declares (``[voices.NAME]``, ``[sfx.NAME]``, ``[music.NAME]``): which
    renderer, with what settings, and how loud in the mix."""

    name: str
    kind: str
    renderer: str
    params: dict[str, Any]
    mix: dict[str, float]
    where: str


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


@dataclass(frozen=True)
class CacheSettings:
    """``[cache]``: the shared remote cache and the local cache's size limit.

    ``remote`` is as written in project.toml; ``MIXDOWN_REMOTE`` overrides it
    when a build runs (:func:`mixdown.store.remote.configured`), so it is read there.
    """

    remote: str | None = None  # an fsspec URL: s3://bucket/prefix, file:///srv/cache, …
    share: str = "assets"  # "assets": rendered assets only; "all": mixes and masters too
    max_size: int | None = None  # bytes: trim unreferenced objects beyond this after a build
    compact: bool | None = None  # mixes, pre-mixes, masters as 24-bit FLAC; None: if a script has variants


@dataclass(frozen=True)
class ExecutorSettings:
    """``[executor]``: where the build's actions run (:mod:`mixdown.actions.cluster`).

    ``dask`` is as written in project.toml; ``MIXDOWN_DASK`` overrides it when a
    build runs, so it is read there.
    """

    dask: str | None = None  # a Dask scheduler's address (tcp://host:8786), or "local"
    jobs: int | None = None  # actions in flight at once on the cluster (doit -n wins)


def dask_address_problem(address: str) -> str | None:
    """What is wrong with ``address`` as a Dask scheduler's address, or None."""
    if address == "local":
        return None
    scheme, found, rest = address.partition("://")
    if not found or scheme not in DASK_SCHEMES or not rest:
        return (
            f"'{address}' is not a Dask scheduler address; give one such as tcp://scheduler:8786, "
            "or local for a cluster on this machine"
        )
    return None


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
    path = root / "project.toml"
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run mixdown in a show's directory (with project.toml)")
    import tomllib

    record(path)
    text = read_text(path, "project.toml")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(_toml_syntax(err)) from None
    toml = _Toml(text, root)
    toml.check_keys(data, TOP_KEYS, [])
    top = toml.table(data, "project")
    toml.check_keys(top, PROJECT_KEYS, ["project"])
    sources = {
        kind: _sources(toml, data, table, kind, registry)
        for kind, table in (("voice", "voices"), ("sfx", "sfx"), ("music", "music"))
    }
    if not sources["voice"]:
        raise ConfigError(f"project.toml:{toml.line(['voices'])}: declare at least one [voices.NAME]")
    default_voice = toml.typed(top, "voice", str, ["project"], next(iter(sources["voice"])))
    if default_voice not in sources["voice"]:
        raise ConfigError(
            f"{toml.where(['project', 'voice'])}: unknown voice '{default_voice}'; "
            f"declared voices: {', '.join(sources['voice'])}"
        )
    cache = os.environ.get("MIXDOWN_CACHE") or toml.typed(top, "cache", str, ["project"], "cache")
    rate = _rate(toml, top)
    return Project(
        root=root,
        name=toml.typed(top, "name", str, ["project"], root.name),
        sample_rate=rate,
        channels=_channels(toml, top),
        cache_dir=(root / cache).resolve(),
        build_dir=_inside(
            root, toml.typed(top, "build", str, ["project"], "build"), toml, ["project", "build"]
        ),
        voices=sources["voice"],
        sfx=sources["sfx"],
        music=sources["music"],
        scripts=_scripts(toml, data, top, default_voice, sources),
        pronunciations=_pronunciations(toml, data),
        mix=_mix(toml, data),
        master=_master(toml, data),
        providers=_providers(toml, data),
        prices=_prices(toml, data),
        deliveries=_deliveries(toml, data, rate),
        cache=_cache(toml, data),
        executor=_executor(toml, data),
        metadata=_metadata(toml, data, [], top),
        publish=_publish(toml, data),
    )


def read_text(path: Path, name: str) -> str:
    """The UTF-8 text of a show's file; one-line :class:`ConfigError` if it cannot be read as text.

    ``name`` is how messages name the file (relative to the show).
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, not a file; point at a file") from None
    except OSError as err:
        raise ConfigError(f"{name}: cannot be read ({err.strerror or err}); check the file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8"
        ) from None


def _toml_syntax(err: Exception) -> str:
    """A one-line message for a TOML syntax error: tomllib's words at its line, and what to do."""
    message = str(err)
    where = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
    line = getattr(err, "lineno", None) or (int(where.group(1)) if where else None)
    column = getattr(err, "colno", None) or (int(where.group(2)) if where else None)
    if where:
        message = message[: where.start()] + message[where.end() :]
    at = f" at column {column}" if column else ""
    return (
        f"project.toml{f':{line}' if line else ''}: TOML syntax error{at}: {message.strip()}; "
        "check the quotes, brackets and '=' on that line (strings need quotes, tables [name])"
    )


class _Toml:
    """Typed access to parsed TOML with errors that point at the source line."""

    def __init__(self, text: str, root: Path) -> None:
        from .sourcemap import toml_lines

        self.lines = toml_lines(text)
        self.root = root

    def line(self, path: list[str]) -> int:
        """The line of ``path`` (a table or a key, in any TOML form), else of its nearest parent; 1 if none."""
        for n in range(len(path), 0, -1):
            if tuple(path[:n]) in self.lines:
                return self.lines[tuple(path[:n])]
        return 1

    def where(self, path: list[str]) -> str:
        return f"project.toml:{self.line(path)}"

    def table(self, data: Mapping[str, Any], key: str, path: list[str] | None = None) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where([*(path or []), key])}: '{key}' must be a table")
        return value

    def check_keys(self, data: Mapping[str, Any], allowed: set[str], path: list[str]) -> None:
        for key in data:
            if key not in allowed:
                scope = f"[{'.'.join(path)}]" if path else "the top level"
                raise ConfigError(
                    f"{self.where([*path, key])}: unknown key '{key}' in {scope}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )

    def typed(self, data: Mapping[str, Any], key: str, kind: Any, path: list[str], default: Any) -> Any:
        value = data.get(key, default)
        if value is not None and not typed_as(value, kind):
            raise ConfigError(f"{self.where([*path, key])}: '{key}' must be {kind_name(kind)}")
        return value


def _sources(toml: _Toml, data: Mapping[str, Any], table: str, kind: str, registry: Any) -> dict[str, Sound]:
    out: dict[str, Sound] = {}
    for name, entry in toml.table(data, table).items():
        path = [table, name]
        _check_name(name, toml, path)
        if not isinstance(entry, dict):
            raise ConfigError(f"{toml.where(path)}: [{table}.{name}] must be a table")
        renderer = toml.typed(entry, "renderer", str, path, None)
        if renderer is None:
            raise ConfigError(f'{toml.where(path)}: [{table}.{name}] needs renderer = "…"')
        mix_keys = MIX_KEYS[kind]
        mix = {k: RANGES[k].check(k, entry[k], toml.where([*path, k])) for k in mix_keys if k in entry}
        params = {k: v for k, v in entry.items() if k != "renderer" and k not in mix_keys}
        if registry is not None:
            _check_params(toml, registry, renderer, kind, params, path, mix_keys)
        out[name] = Sound(name, kind, renderer, params, mix, toml.where(path))
    return out


def _check_params(
    toml: _Toml,
    registry: Registry,
    renderer: str,
    kind: str,
    params: dict[str, Any],
    path: list[str],
    mix_keys: set[str],
) -> None:
    """Check a source's settings against its renderer: kind, known keys, types, ranges, ``check()``."""
    where = toml.where([*path, "renderer"])
    spec = _renderer_spec(toml, registry, renderer, where)
    try:
        _check_against(toml, spec, kind, params, path, mix_keys)
    except ProjectError:
        raise
    except Exception as err:  # a show's own renderer class can be broken in any way
        raise _broken(where, renderer, err) from None


def _renderer_spec(toml: _Toml, registry: Registry, renderer: str, where: str) -> RendererSpec:
    """The spec of ``renderer``; an error says where the show names it, or the show's own file."""
    try:
        registry.cls(renderer)
    except ConfigError as err:
        if (toml.root / "renderers" / f"{renderer}.py").is_file():
            raise  # the show's own renderer: the message names its file and line
        raise ConfigError(f"{where}: {err}") from None
    try:
        spec: RendererSpec = registry.spec(renderer)
    except ProjectError as err:  # an attribute of the wrong type: the message names the renderer
        raise ConfigError(f"{where}: {err}") from None
    except Exception as err:
        raise _broken(where, renderer, err) from None
    return spec


def _broken(where: str, renderer: str, err: Exception) -> ConfigError:
    return ConfigError(
        f"{where}: the '{renderer}' renderer failed while checking its settings "
        f"({type(err).__name__}: {err}); fix the renderer"
    )


def _check_against(
    toml: _Toml,
    spec: RendererSpec,
    kind: str,
    params: dict[str, Any],
    path: list[str],
    mix_keys: set[str],
) -> None:
    renderer = spec.name
    if kind not in spec.kinds:
        raise ConfigError(
            f"{toml.where([*path, 'renderer'])}: renderer '{renderer}' cannot render {kind}; "
            f"it renders {', '.join(sorted(spec.kinds))}"
        )
    allowed = spec.params
    toml.check_keys(params, set(allowed) | mix_keys | {"renderer"}, path)
    for key, value in params.items():
        toml.typed(params, key, allowed[key], path, None)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{toml.where([*path, key])}: '{key}' = {value} is not a number; give a finite value"
            )
    missing = [k for k in spec.required.get(kind, ()) if k not in params]
    if missing:
        raise ConfigError(
            f"{toml.where(path)}: [{'.'.join(path)}] the '{renderer}' renderer needs '{missing[0]}' for {kind}"
        )
    try:
        if spec.check is not None:
            spec.check(params)
    except ValueError as err:
        named = sorted(
            (m.start(), key) for key in params if (m := re.search(rf"\b{re.escape(key)}\b", str(err)))
        )
        at = [*path, named[0][1]] if named else path  # the line of the first setting the message names
        raise ConfigError(f"{toml.where(at)}: [{'.'.join(path)}] {err}") from None


def _check_name(name: str, toml: _Toml, path: list[str]) -> None:
    if not NAME.match(name):
        raise ConfigError(
            f"{toml.where(path)}: name {name!r} may use only letters, digits, '_', '-' and '.' "
            "(it becomes part of file and target names)"
        )


def _inside(root: Path, relative: str, toml: _Toml, path: list[str]) -> Path:
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise ConfigError(f"{toml.where(path)}: {relative!r} points outside the project; keep it inside")
    return resolved


def _rate(toml: _Toml, top: Mapping[str, Any]) -> int:
    rate = toml.typed(top, "sample_rate", int, ["project"], 48000)
    if rate not in PROGRAMME_RATES:
        raise ConfigError(
            f"{toml.where(['project', 'sample_rate'])}: sample_rate {rate} is not a delivery rate; "
            f"use one of {', '.join(map(str, PROGRAMME_RATES))} (usually 44100 or 48000)"
        )
    return int(rate)


def _channels(toml: _Toml, top: Mapping[str, Any]) -> int:
    channels = toml.typed(top, "channels", int, ["project"], 2)
    if channels not in (1, 2):
        raise ConfigError(f"{toml.where(['project', 'channels'])}: channels must be 1 or 2")
    return int(channels)


def _numbers(
    toml: _Toml, data: Mapping[str, Any], table: str, defaults: dict[str, float]
) -> dict[str, float]:
    given = toml.table(data, table)
    toml.check_keys(given, set(defaults), [table])
    return {
        k: RANGES[k].check(k, given[k], toml.where([table, k])) if k in given else v
        for k, v in defaults.items()
    }


def _mix(toml: _Toml, data: Mapping[str, Any]) -> dict[str, Any]:
    """[mix]: layout and ducking numbers, and which speech processing voice lines get."""
    given = dict(toml.table(data, "mix"))
    toml.check_keys(given, set(MIX_SETTINGS) | set(SPEECH_SWITCHES), ["mix"])
    switches = {k: toml.typed(given, k, bool, ["mix"], v) for k, v in SPEECH_SWITCHES.items()}
    for key in SPEECH_SWITCHES:
        given.pop(key, None)
    mix: dict[str, Any] = _numbers(toml, {"mix": given}, "mix", MIX_SETTINGS)
    mix["speech"] = {key.removeprefix("speech_"): on for key, on in switches.items()}
    return mix


def _master(toml: _Toml, data: Mapping[str, Any]) -> dict[str, Any]:
    given = dict(toml.table(data, "master"))
    preset = preset_named(given.pop("preset", "podcast"), toml.where(["master", "preset"]))
    given = {"target_lufs": preset.target_lufs, "ceiling_dbtp": preset.ceiling_dbtp, **given}
    formats = toml.typed(given, "formats", list, ["master"], ["wav", "mp3"])
    formats = checked_formats(formats, toml.where(["master", "formats"]))
    given.pop("formats", None)
    stems = toml.typed(given, "stems", bool, ["master"], False)
    given.pop("stems", None)
    master: dict[str, Any] = _numbers(toml, {"master": given}, "master", MASTER_SETTINGS)
    master["formats"] = list(formats)
    master["stems"] = stems
    return master


def _deliveries(toml: _Toml, data: Mapping[str, Any], rate: int) -> dict[str, dict[str, Any]]:
    tables = toml.table(data, "deliveries")
    for name in tables:
        path = ["deliveries", name]
        _check_name(name, toml, path)
        table = toml.table(tables, name, ["deliveries"])
        delivery_from(table, partial(_key_where, toml, path), master_rate=rate)
    return {name: dict(table) for name, table in tables.items()}


def _publish(toml: _Toml, data: Mapping[str, Any]) -> PublishSettings:
    table = toml.table(data, "publish")
    toml.check_keys(table, set(PUBLISH_KEYS), ["publish"])
    return PublishSettings(**{key: toml.typed(table, key, bool, ["publish"], True) for key in PUBLISH_KEYS})


def _cache(toml: _Toml, data: Mapping[str, Any]) -> CacheSettings:
    table = toml.table(data, "cache")
    toml.check_keys(table, CACHE_KEYS, ["cache"])
    remote = toml.typed(table, "remote", str, ["cache"], None)
    if remote is not None and "://" not in remote:
        raise ConfigError(
            f"{toml.where(['cache', 'remote'])}: '{remote}' is not a URL; give one such as "
            "s3://bucket/prefix or file:///srv/mixdown-cache"
        )
    share = toml.typed(table, "share", str, ["cache"], "assets")
    if share not in SHARES:
        raise ConfigError(f"{toml.where(['cache', 'share'])}: share must be one of {', '.join(SHARES)}")
    size = toml.typed(table, "max_size", str, ["cache"], None)
    max_size = parse_size(size, toml.where(["cache", "max_size"])) if size is not None else None
    compact = toml.typed(table, "compact", bool, ["cache"], None)
    return CacheSettings(remote or None, share, max_size, compact)


def _executor(toml: _Toml, data: Mapping[str, Any]) -> ExecutorSettings:
    table = toml.table(data, "executor")
    toml.check_keys(table, EXECUTOR_KEYS, ["executor"])
    address = toml.typed(table, "dask", str, ["executor"], None)
    problem = dask_address_problem(address) if address else None
    if problem is not None:
        raise ConfigError(f"{toml.where(['executor', 'dask'])}: {problem}")
    jobs = toml.typed(table, "jobs", int, ["executor"], None)
    if jobs is not None and not 1 <= jobs <= 10_000:
        raise ConfigError(f"{toml.where(['executor', 'jobs'])}: jobs must be a whole number from 1 to 10000")
    return ExecutorSettings(address or None, jobs)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$", re.I)
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def parse_size(text: str, where: str) -> int:
    """``"20GB"``, ``"500 MiB"`` or ``"1024"`` as a number of bytes; one-line error naming ``where``."""
    found = _SIZE.match(text)
    if found is None:
        raise ConfigError(f"{where}: '{text}' is not a size; write it as 20GB, 500MB or 1.5TB")
    number, unit = float(found.group(1)), (found.group(2) or "").lower()
    return int(number * _UNITS[unit])


def _key_where(toml: _Toml, path: list[str], key: str) -> str:
    return toml.where([*path, key])


def _providers(toml: _Toml, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    tables = toml.table(data, "providers")
    for name in tables:
        path = ["providers", name]
        table = toml.table(tables, name, ["providers"])
        toml.check_keys(table, {*PROVIDER_KEYS, "price"}, path)
        for key, value in table.items():
            if key == "price":
                continue  # read by _prices
            if key in RANGES:
                RANGES[key].check(key, value, toml.where([*path, key]))
            else:
                toml.typed(table, key, str, path, None)
    return {name: {k: v for k, v in table.items() if k != "price"} for name, table in tables.items()}


def _prices(toml: _Toml, data: Mapping[str, Any]) -> dict[str, tuple[Price, ...]]:
    """Each ``[providers.NAME] price`` (checked: tables of the providers are checked before)."""
    tables = toml.table(data, "providers")
    return {
        name: prices_from(table["price"], toml.where(["providers", name, "price"]))
        for name, table in tables.items()
        if "price" in table
    }


def _pronunciations(toml: _Toml, data: Mapping[str, Any]) -> dict[str, str]:
    table = toml.table(data, "pronunciations")
    for word in table:
        toml.typed(table, word, str, ["pronunciations"], None)
    return dict(table)


def _scripts(
    toml: _Toml,
    data: Mapping[str, Any],
    top: Mapping[str, Any],
    default_voice: str,
    sources: dict[str, dict[str, Sound]],
) -> dict[str, Script]:
    modules = toml.table(data, "modules")
    for name in modules:
        _check_name(name, toml, ["modules", name])
        toml.check_keys(toml.table(modules, name, ["modules"]), MODULE_KEYS, ["modules", name])
    scripts: dict[str, Script] = {}
    for name, entry in toml.table(data, "scripts").items():
        path = ["scripts", name]
        _check_name(name, toml, path)
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
    toml: _Toml,
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
    _must_exist(toml, [*path, "template"], template)
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
        _must_exist(toml, origin("variants"), variants)
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
    toml: _Toml, data: Mapping[str, Any], path: list[str], top: Mapping[str, Any]
) -> MetadataTable | None:
    """The ``[metadata]`` table in ``data`` (at ``path``), checked; None if there is none."""
    if "metadata" not in data:
        return None
    from .metadata import checked

    name = toml.typed(top, "name", str, ["project"], None)
    return checked(toml.table(data, "metadata", path), toml.where, [*path, "metadata"], toml.root, name)


def _must_exist(toml: _Toml, path: list[str], relative: str) -> None:
    resolved = _inside(toml.root, relative, toml, path)
    if resolved.is_dir():
        raise ConfigError(f"{toml.where(path)}: {relative!r} is a directory; name a file in it")
    if not resolved.is_file():
        raise ConfigError(f"{toml.where(path)}: {relative!r} does not exist; check the path")
