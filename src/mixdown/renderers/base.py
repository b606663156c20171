"""The renderer contract: one method, ``render(request) -> result``.

A renderer turns a :class:`RenderRequest` (a voice line's text, an SFX cue or
a music-bed segment, plus the settings from ``project.toml``) into audio.
Pipeline code receives renderer instances, so tests pass fakes directly.

Class attributes describe a renderer without instantiating it (instantiating
may load a model or need a key):

``version``
    Part of every content key: bump it when the same request would sound
    different.
``kinds``
    Which asset kinds it renders: a subset of ``{"voice", "sfx", "music"}``.
``params``
    Allowed settings and their types; anything else in ``project.toml`` is
    an error naming the allowed keys.
``required``
    Per kind, the settings that must be given (checked when the show loads).
``max_chars``
    The per-request text limit; longer voice lines are split at sentence
    boundaries before rendering.
``thread_safe``
    ``False`` makes mixdown serialise calls to one instance across doit's
    worker threads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:  # numpy is imported by renderers when they render, not when listed
    import numpy as np

__all__ = ["RenderRequest", "RenderResult", "Renderer", "RendererBase"]


@dataclass(frozen=True)
class RenderRequest:
    """What to render.

    ``kind`` is ``"voice"``, ``"sfx"`` or ``"music"``; ``params`` holds the
    validated settings from ``project.toml`` (never secrets); ``text`` is the
    normalised text of a voice line; ``segment`` names a music-bed segment
    (``"intro"``, ``"main"`` or ``"outro"``); ``root`` is the project
    directory, for renderers that read media relative to it; ``target`` is the
    doit task name, for error messages. ``take`` is 0 for an asset's first
    render and counts up each time the user asks for another
    (``mixdown retake``): a renderer that would otherwise give the same audio
    again (a seeded one) should vary with it.
    """

    kind: str
    params: Mapping[str, Any]
    text: str = ""
    segment: str | None = None
    root: Path = Path(".")
    target: str = ""
    take: int = 0


@dataclass
class RenderResult:
    """Rendered audio ``[shape=(n, channels)]`` float32 at ``sample_rate``.

    ``meta`` carries what is worth keeping in the cache record: a provider's
    request id, reported cost, the seed used. Never secrets.
    """

    audio: np.ndarray
    sample_rate: int
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Renderer(Protocol):
    """Anything with ``render(request) -> RenderResult``."""

    def render(self, request: RenderRequest) -> RenderResult:
        """Render one asset."""
        ...


class RendererBase:
    """Convenient defaults for the class attributes described above."""

    version: ClassVar[str] = "1"
    kinds: ClassVar[frozenset[str]] = frozenset({"voice", "sfx", "music"})
    params: ClassVar[Mapping[str, type | tuple[type, ...]]] = {}
    required: ClassVar[Mapping[str, tuple[str, ...]]] = {}  # kind -> settings it cannot do without
    max_chars: ClassVar[int | None] = None
    thread_safe: ClassVar[bool] = True

    @classmethod
    def text_limit(cls, params: Mapping[str, Any]) -> int | None:
        """The per-request text limit for these settings (some vary by model)."""
        return cls.max_chars

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Reject bad setting *values* with ``ValueError`` (one sentence: what is
        allowed). Unknown keys and wrong types are caught before this from
        ``params``; the project loader adds the file and line.
        """

    @classmethod
    def key_params(cls, params: Mapping[str, Any], root: Path) -> dict[str, Any]:
        """Return the settings as they enter the content key.

        Override to replace a path by the hash of the file it names, or to add
        the version of a model.
        """
        return dict(params)

    def render(self, request: RenderRequest) -> RenderResult:  # pragma: no cover - abstract
        """Render one asset."""
        raise NotImplementedError

    def close(self) -> None:
        """Release models or connections; the default does nothing."""
