"""The show's settings tables of ``project.toml``, each read and checked on its own.

``[mix]``, ``[master]``, ``[deliveries]``, ``[providers]`` (and their prices),
``[pronunciations]``, ``[publish]``, and the two that say where a build runs
and never enter a content key, ``[cache]`` and ``[executor]``. Ranges and
presets come from :mod:`mixdown.settings`; :func:`mixdown.show.project.load`
assembles the results into a :class:`~mixdown.show.project.Project`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..errors import ConfigError
from ..settings import (
    MASTER_SETTINGS,
    MIX_SETTINGS,
    PROVIDER_KEYS,
    PUBLISH_KEYS,
    RANGES,
    SPEECH_SWITCHES,
    Price,
    PublishSettings,
    checked_formats,
    delivery_from,
    preset_named,
    prices_from,
)
from .reader import TomlReader, check_name

__all__ = [
    "CacheSettings",
    "ExecutorSettings",
    "dask_address_problem",
    "parse_size",
    "read_cache",
    "read_deliveries",
    "read_executor",
    "read_master",
    "read_mix",
    "read_prices",
    "read_providers",
    "read_pronunciations",
    "read_publish",
]

CACHE_KEYS = {"remote", "share", "max_size", "compact"}
SHARES = ("assets", "all")  # what a remote cache holds: rendered assets only, or mixes and masters too
EXECUTOR_KEYS = {"dask", "jobs"}
#: the schemes of a Dask scheduler's address, beside "local" (a cluster on this machine for the build)
DASK_SCHEMES = ("tcp", "tls", "ucx", "ws", "wss", "inproc")


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


def _numbers(
    toml: TomlReader, data: Mapping[str, Any], table: str, defaults: dict[str, float]
) -> dict[str, float]:
    given = toml.table(data, table)
    toml.check_keys(given, set(defaults), [table])
    return {
        k: RANGES[k].check(k, given[k], toml.where([table, k])) if k in given else v
        for k, v in defaults.items()
    }


def read_mix(toml: TomlReader, data: Mapping[str, Any]) -> dict[str, Any]:
    """[mix]: layout and ducking numbers, and which speech processing voice lines get."""
    given = dict(toml.table(data, "mix"))
    toml.check_keys(given, set(MIX_SETTINGS) | set(SPEECH_SWITCHES), ["mix"])
    switches = {k: toml.typed(given, k, bool, ["mix"], v) for k, v in SPEECH_SWITCHES.items()}
    for key in SPEECH_SWITCHES:
        given.pop(key, None)
    mix: dict[str, Any] = _numbers(toml, {"mix": given}, "mix", MIX_SETTINGS)
    mix["speech"] = {key.removeprefix("speech_"): on for key, on in switches.items()}
    return mix


def read_master(toml: TomlReader, data: Mapping[str, Any]) -> dict[str, Any]:
    """[master]: the preset's loudness and ceiling, overridden by the numbers given; formats and stems."""
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


def read_deliveries(toml: TomlReader, data: Mapping[str, Any], rate: int) -> dict[str, dict[str, Any]]:
    """[deliveries.NAME]: each checked as a delivery of a master at ``rate``; kept as written."""
    tables = toml.table(data, "deliveries")
    for name in tables:
        path = ["deliveries", name]
        check_name(name, toml, path)
        table = toml.table(tables, name, ["deliveries"])
        delivery_from(table, partial(_key_where, toml, path), master_rate=rate)
    return {name: dict(table) for name, table in tables.items()}


def read_publish(toml: TomlReader, data: Mapping[str, Any]) -> PublishSettings:
    """[publish]: which published files a build writes beside the deliverables."""
    table = toml.table(data, "publish")
    toml.check_keys(table, set(PUBLISH_KEYS), ["publish"])
    return PublishSettings(**{key: toml.typed(table, key, bool, ["publish"], True) for key in PUBLISH_KEYS})


def read_cache(toml: TomlReader, data: Mapping[str, Any]) -> CacheSettings:
    """[cache]: the remote cache's URL and share, the local size limit, compact storage."""
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


def read_executor(toml: TomlReader, data: Mapping[str, Any]) -> ExecutorSettings:
    """[executor]: a Dask scheduler's address and the actions in flight on it."""
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


def _key_where(toml: TomlReader, path: list[str], key: str) -> str:
    return toml.where([*path, key])


def read_providers(toml: TomlReader, data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """[providers.NAME]: each provider's settings, checked (its ``price`` is read by read_prices)."""
    tables = toml.table(data, "providers")
    for name in tables:
        path = ["providers", name]
        table = toml.table(tables, name, ["providers"])
        toml.check_keys(table, {*PROVIDER_KEYS, "price"}, path)
        for key, value in table.items():
            if key == "price":
                continue  # read by read_prices
            if key in RANGES:
                RANGES[key].check(key, value, toml.where([*path, key]))
            else:
                toml.typed(table, key, str, path, None)
    return {name: {k: v for k, v in table.items() if k != "price"} for name, table in tables.items()}


def read_prices(toml: TomlReader, data: Mapping[str, Any]) -> dict[str, tuple[Price, ...]]:
    """Each ``[providers.NAME] price`` (checked: tables of the providers are checked before)."""
    tables = toml.table(data, "providers")
    return {
        name: prices_from(table["price"], toml.where(["providers", name, "price"]))
        for name, table in tables.items()
        if "price" in table
    }


def read_pronunciations(toml: TomlReader, data: Mapping[str, Any]) -> dict[str, str]:
    """[pronunciations]: words and how to say them, all strings."""
    table = toml.table(data, "pronunciations")
    for word in table:
        toml.typed(table, word, str, ["pronunciations"], None)
    return dict(table)
