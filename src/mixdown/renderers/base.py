"""The renderer contract: one method, ``render(request) -> result``.

A renderer turns a :class:`RenderRequest` (a voice line's text, an SFX cue or
a music-bed segment, plus the settings from ``project.toml``) into audio.
Pipeline code receives renderer instances, so tests pass fakes directly.

Class attributes describe a renderer without instantiating it (instantiating
may load a model or need a key). All are optional; :class:`RendererBase`
holds the defaults. mixdown reads them once per renderer, in
:func:`renderer_spec`, into a :class:`RendererSpec`, and a wrong type there is
a one-line error naming the renderer:

``version``
    A string, part of every content key: bump it when the same request would
    sound different.
``kinds``
    Which asset kinds it renders: a subset of ``{"voice", "sfx", "music"}``.
``params``
    Allowed settings and their types; anything else in ``project.toml`` is
    an error naming the allowed keys.
``required``
    Per kind, the settings that must be given (checked when the show loads).
``check(params)``
    Rejects bad setting values with ``ValueError`` when the show loads.
``max_chars`` or ``text_limit(params)``
    The per-request text limit; longer voice lines are split at sentence
    boundaries before rendering.
``key_params(params, root)``
    The settings as they enter the content key.
``thread_safe``
    ``False`` makes mixdown serialise calls to one instance across doit's
    worker threads.
``provider``, ``billing(request)``
    Cloud renderers: the provider's :class:`~mixdown.renderers.cloud.http.ProviderSettings`
    (its ``key_env`` names the API key variable) and what a request would
    bill, for ``mixdown plan`` and ``--max-cost``: an amount and what it
    counts, ``"42 characters"``, ``"2.5 s of audio"``, ``"one generation"``
    (priced per ``[providers.NAME] price``, see :mod:`mixdown.plan.spend`).
``voices()``, ``close()``
    Instance methods: the voice list for ``mixdown voices``, and releasing
    models or connections when a build ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, Protocol, runtime_checkable

from ..errors import ConfigError

if TYPE_CHECKING:  # numpy is imported by renderers when they render, not when listed
    import numpy as np

    from .cloud.http import ProviderSettings

__all__ = [
    "KINDS",
    "Closable",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "RendererBase",
    "RendererSpec",
    "VoiceLister",
    "renderer_spec",
]


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


KINDS = frozenset({"voice", "sfx", "music"})


@dataclass(frozen=True)
class RendererSpec:
    """What mixdown knows about one renderer, read once from its class.

    Built by :func:`renderer_spec` and returned by
    :meth:`~mixdown.renderers.Registry.spec`; callers read these fields and
    never the class's attributes. Defaults are those of
    :class:`RendererBase`, so a class that defines only ``render`` (and
    perhaps ``kinds``) gets the same spec as a subclass of it.

    ``cls`` is what was registered: a class, or an instance (tests register
    fakes). ``text_limit`` maps settings to the per-request text limit (from
    ``text_limit()`` or ``max_chars``); ``key_params`` maps settings and the
    project root to the settings as they enter the content key. ``provider``
    is the cloud provider's settings (``key_env`` names its API key
    variable). ``billing`` says what a request would bill, or is None for a
    local renderer. ``lists_voices`` tells whether instances have
    ``voices()``; ``closes`` whether they have ``close()``. ``render_file``
    is the source file defining ``render``, to name a show's own renderer in
    messages.
    """

    name: str
    cls: Any
    version: str
    kinds: frozenset[str]
    params: Mapping[str, type | tuple[type, ...]]
    required: Mapping[str, tuple[str, ...]]
    check: Callable[[Mapping[str, Any]], None] | None
    text_limit: Callable[[Mapping[str, Any]], int | None]
    key_params: Callable[[Mapping[str, Any], Path], dict[str, Any]]
    thread_safe: bool
    provider: ProviderSettings | None
    billing: Callable[[RenderRequest], str] | None
    lists_voices: bool
    closes: bool
    render_file: Path | None


class VoiceLister(Protocol):
    """A renderer instance whose spec has ``lists_voices``."""

    def voices(self) -> list[dict[str, str]]:
        """The voices on offer as ``{"id", "name", "description"}`` dicts."""
        ...


class Closable(Protocol):
    """A renderer instance whose spec has ``closes``."""

    def close(self) -> None:
        """Release models or connections."""
        ...


def renderer_spec(name: str, made: Any, *, where: str = "") -> RendererSpec:
    """Read the class attributes of ``made`` (a renderer class or instance) once.

    This is the one place that looks for the optional attributes described in
    this module's docstring; a missing one takes :class:`RendererBase`'s
    default.

    Parameters
    ----------
    name : str
        The name the renderer is registered under, for messages.
    made : object
        The registered class, or an instance of one.
    where : str, optional
        The file defining it (a show's ``renderers/NAME.py``), for messages.

    Returns
    -------
    RendererSpec

    Raises
    ------
    ConfigError
        An attribute has the wrong type: one line naming the renderer and the
        attribute.
    """
    fail = partial(_bad, f"renderer {name!r}{f' ({where})' if where else ''}")
    attr = partial(getattr, made)
    cls = made if isinstance(made, type) else type(made)
    return RendererSpec(
        name=name,
        cls=made,
        version=_version(attr("version", "1"), fail),
        kinds=_kinds(attr("kinds", KINDS), fail),
        params=_params(attr("params", {}), fail),
        required=_required(attr("required", {}), fail),
        check=_optional_callable(attr("check", None), "check", fail),
        text_limit=_text_limit(attr("text_limit", None), attr("max_chars", None), fail),
        key_params=_key_params(attr("key_params", None), fail),
        thread_safe=_flag(attr("thread_safe", True), "thread_safe", fail),
        provider=_provider(attr("provider", None), fail),
        billing=_optional_callable(attr("billing", None), "billing", fail),
        lists_voices=callable(attr("voices", None)),
        closes=callable(attr("close", None)),
        render_file=_render_file(getattr(cls, "render", None), fail),
    )


_Fail = Callable[[str, str], NoReturn]


def _bad(renderer: str, attribute: str, problem: str) -> NoReturn:
    raise ConfigError(f"{renderer}: '{attribute}' {problem}; fix the renderer")


def _version(value: Any, fail: _Fail) -> str:
    if not isinstance(value, str):
        fail("version", f"must be a string, not {value!r}")
    return value


def _kinds(value: Any, fail: _Fail) -> frozenset[str]:
    allowed = ", ".join(sorted(KINDS))
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        fail("kinds", f"must be a set of kinds ({allowed}), not {value!r}")
    kinds = list(value)
    if not kinds or not all(isinstance(k, str) and k in KINDS for k in kinds):
        fail(
            "kinds", f"must be a non-empty subset of {allowed}, not {{{', '.join(sorted(map(repr, kinds)))}}}"
        )
    return frozenset(kinds)


def _params(value: Any, fail: _Fail) -> Mapping[str, type | tuple[type, ...]]:
    if not isinstance(value, Mapping):
        fail("params", f"must map setting names to types, not {type(value).__name__}")
    for key, kind in value.items():
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(key, str) or not kinds or not all(isinstance(k, type) for k in kinds):
            fail("params", f"must map setting names to a type or a tuple of types, not {key!r}: {kind!r}")
    return MappingProxyType(dict(value))


def _required(value: Any, fail: _Fail) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(value, Mapping):
        fail("required", f"must map kinds to setting names, not {type(value).__name__}")
    out: dict[str, tuple[str, ...]] = {}
    for kind, keys in value.items():
        if kind not in KINDS or isinstance(keys, str) or not isinstance(keys, Iterable):
            fail("required", f"must map kinds to tuples of setting names, not {kind!r}: {keys!r}")
        out[kind] = tuple(keys)
        if not all(isinstance(k, str) for k in out[kind]):
            fail("required", f"must map kinds to tuples of setting names, not {kind!r}: {keys!r}")
    return MappingProxyType(out)


def _optional_callable(value: Any, attribute: str, fail: _Fail) -> Any:
    if value is not None and not callable(value):
        fail(attribute, f"must be a method, not {value!r}")
    return value


def _flag(value: Any, attribute: str, fail: _Fail) -> bool:
    if not isinstance(value, bool):
        fail(attribute, f"must be True or False, not {value!r}")
    return value


def _text_limit(method: Any, max_chars: Any, fail: _Fail) -> Callable[[Mapping[str, Any]], int | None]:
    if method is not None:
        limit_of: Callable[[Mapping[str, Any]], int | None] = _optional_callable(method, "text_limit", fail)
        return limit_of
    if max_chars is not None and (
        isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1
    ):
        fail("max_chars", f"must be a positive integer or None, not {max_chars!r}")
    limit: int | None = max_chars
    return lambda params: limit


def _key_params(method: Any, fail: _Fail) -> Callable[[Mapping[str, Any], Path], dict[str, Any]]:
    if method is None:
        return lambda params, root: dict(params)
    keyed: Callable[[Mapping[str, Any], Path], dict[str, Any]] = _optional_callable(
        method, "key_params", fail
    )
    return keyed


def _provider(value: Any, fail: _Fail) -> ProviderSettings | None:
    if value is None:
        return None
    from .cloud.http import ProviderSettings  # a renderer with a provider has imported it already

    if not isinstance(value, ProviderSettings):
        fail("provider", f"must be a ProviderSettings, not {type(value).__name__}")
    return value


def _render_file(render: Any, fail: _Fail) -> Path | None:
    if not callable(render):
        fail("render", "must be a method: a renderer is anything with render(request) -> RenderResult")
    source = getattr(getattr(render, "__code__", None), "co_filename", None)
    return Path(source) if isinstance(source, str) else None
