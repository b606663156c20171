"""The show's sounds: ``[voices.NAME]``, ``[sfx.NAME]`` and ``[music.NAME]`` as :class:`Sound`.

Each names a renderer and gives its settings and its level in the mix. With a
renderer registry at hand, the settings are checked against the renderer's
spec (:class:`~mixdown.renderers.base.RendererSpec`): the kinds it renders,
its known keys and their types, the ones it requires, and its own ``check()``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ProjectError
from ..settings import MIX_KEYS, RANGES
from .reader import TomlReader, check_name

if TYPE_CHECKING:
    from ..renderers import Registry
    from ..renderers.base import RendererSpec

__all__ = ["Sound", "read_sounds"]


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


def read_sounds(
    toml: TomlReader, data: Mapping[str, Any], table: str, kind: str, registry: Any
) -> dict[str, Sound]:
    """The sounds of ``[table.NAME]`` (of ``kind``), their settings checked if ``registry`` is given."""
    out: dict[str, Sound] = {}
    for name, entry in toml.table(data, table).items():
        path = [table, name]
        check_name(name, toml, path)
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
    toml: TomlReader,
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


def _renderer_spec(toml: TomlReader, registry: Registry, renderer: str, where: str) -> RendererSpec:
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
    toml: TomlReader,
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
