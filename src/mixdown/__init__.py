"""mixdown: a declarative, Makefile-style audio renderer.

A show (``project.toml`` + Jinja2 templates in ``stanzas/``) becomes a doit
graph of content-hashed targets — voice lines, SFX, music-bed segments —
then one mix and one master per script and variant. Only what changed is
rendered again.

The names below are the public API. They load when first used (PEP 562),
so ``import mixdown.show`` or a command that only plans does not pay for
numpy and the DSP.
"""

from __future__ import annotations

import importlib
import os as _os
import typing as _typing

# mixdown runs its own threads over every core (the mix's halves, the master's parts,
# the meters' channels) and keeps its matrix products small; the thread pools OpenBLAS
# starts, once for numpy and once for scipy, would only spin against them. Set before
# numpy loads; a user's own setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_HOMES = {
    "AudioError": "errors",
    "ConfigError": "errors",
    "MixdownError": "errors",
    "ProjectError": "errors",
    "RenderError": "errors",
    "RendererUnavailable": "errors",
    "RenderFailed": "errors",
    "TemplateError": "errors",
    "content_key": "keys",
    "Cache": "store.cache",
    "DOIT_CONFIG": "loader",
    "MixdownLoader": "loader",
    "Show": "loader",
    "load_show": "loader",
    "Project": "show.project",
    "load": "show.project",
    "render_scripts": "show.templates",
    "Registry": "renderers",
    "Renderer": "renderers",
    "RendererBase": "renderers",
    "RenderRequest": "renderers",
    "RenderResult": "renderers",
}

__all__ = [
    "DOIT_CONFIG",
    "AudioError",
    "Cache",
    "ConfigError",
    "MixdownError",
    "MixdownLoader",
    "Project",
    "ProjectError",
    "Registry",
    "RenderError",
    "RenderFailed",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "RendererBase",
    "RendererUnavailable",
    "Show",
    "TemplateError",
    "__version__",
    "content_key",
    "load",
    "load_show",
    "render_scripts",
]


def __getattr__(name: str) -> _typing.Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'mixdown' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])


if _typing.TYPE_CHECKING:  # what static checkers and editors see
    from .errors import (
        AudioError,
        ConfigError,
        MixdownError,
        ProjectError,
        RenderError,
        RendererUnavailable,
        RenderFailed,
        TemplateError,
    )
    from .keys import content_key
    from .loader import DOIT_CONFIG, MixdownLoader, Show, load_show
    from .renderers import Registry, Renderer, RendererBase, RenderRequest, RenderResult
    from .show.project import Project, load
    from .show.templates import render_scripts
    from .store.cache import Cache
