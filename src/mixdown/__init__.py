"""mixdown: a declarative, Makefile-style audio renderer.

A show (``project.toml`` + Jinja2 templates in ``stanzas/``) becomes a doit
graph of content-hashed targets — voice lines, SFX, music-bed segments —
then one mix and one master per script and variant. Only what changed is
rendered again.
"""

from __future__ import annotations

import os as _os

# mixdown runs its own threads over every core (the mix's halves, the master's segments,
# the meters' channels) and keeps its matrix products small; the thread pools OpenBLAS
# starts, once for numpy and once for scipy, would only spin against them (2-3 % of the
# mix stage's CPU on a 2-core machine). Set before numpy loads; a user's own setting wins.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .cache import Cache  # noqa: E402
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
from .project import Project, load, render_scripts
from .renderers import Registry, Renderer, RendererBase, RenderRequest, RenderResult

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
    "content_key",
    "load",
    "load_show",
    "render_scripts",
]

__version__ = "0.1.0"
