"""Exceptions raised by mixdown.

Every error a user can cause is a :class:`MixdownError`; its message is one
line that names the file (and line, where known), the target or the URL, says
what is wrong and what to do next. The doit integration prints that line and
exits non-zero — never a traceback for user error.

::

    MixdownError
    ├── ProjectError          the show's files are wrong
    │   ├── ConfigError       project.toml, variants files, media paths
    │   └── TemplateError     Jinja2 / stanza syntax, undefined variables
    ├── RenderError           a renderer could not produce an asset
    │   ├── RenderFailed      the renderer ran and refused or returned bad audio
    │   └── RendererUnavailable  missing dependency, model or credential
    └── AudioError            audio that cannot be read or has the wrong shape
"""

from __future__ import annotations

__all__ = [
    "AudioError",
    "ConfigError",
    "MixdownError",
    "ProjectError",
    "RenderError",
    "RenderFailed",
    "RendererUnavailable",
    "TemplateError",
    "one_line",
]


class MixdownError(Exception):
    """Root of every error mixdown raises on purpose."""


class ProjectError(MixdownError):
    """The show's own files are invalid."""


class ConfigError(ProjectError):
    """``project.toml``, a variants file or a media path is invalid."""


class TemplateError(ProjectError):
    """A stanza template does not render or does not parse."""


class RenderError(MixdownError):
    """A renderer could not produce an asset."""


class RenderFailed(RenderError):
    """The renderer ran but refused the request or returned unusable audio."""


class RendererUnavailable(RenderError):
    """The renderer cannot run here: missing package, model file or key."""


class AudioError(MixdownError):
    """Audio that cannot be decoded, or an array of the wrong shape."""


def one_line(err: BaseException) -> str:
    """``err``'s message as the one line mixdown prints: line breaks within it become ``; ``.

    A message may quote text that has them (a renderer's own error, a
    provider's answer); doit prints the loader's error as ``ERROR: …``.
    """
    return "; ".join(part.strip() for part in str(err).splitlines() if part.strip())
