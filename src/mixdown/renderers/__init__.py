"""Renderers: the contract, and a registry that finds them by name.

Three places provide renderers, looked up in this order:

1. a content repo's own ``renderers/<name>.py`` exposing ``Renderer``;
2. mixdown's built-ins (imported only when used);
3. installed packages, through the ``mixdown.renderers`` entry-point group.

Unknown names list the known ones; a built-in whose optional dependency is
missing raises :class:`~mixdown.errors.RendererUnavailable` with the install
hint.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError, RendererUnavailable
from ..keys import record
from .base import Closable, Renderer, RendererBase, RendererSpec, RenderRequest, RenderResult, renderer_spec

__all__ = [
    "BUILTINS",
    "Registry",
    "RenderRequest",
    "RenderResult",
    "Renderer",
    "RendererBase",
    "RendererSpec",
]

#: name → ("module:Class", install hint for its optional dependency)
BUILTINS: dict[str, tuple[str, str | None]] = {
    "piper": ("mixdown.renderers.local.piper:Piper", "pip install 'mixdown[piper]'"),
    "synth": ("mixdown.renderers.local.synth:Synth", None),
    "file": ("mixdown.renderers.local.file:File", None),
    "silence": ("mixdown.renderers.local.silence:Silence", None),
    "elevenlabs": ("mixdown.renderers.cloud.elevenlabs:ElevenLabs", None),
    "openai": ("mixdown.renderers.cloud.openai:OpenAI", None),
    "stability": ("mixdown.renderers.cloud.stability:Stability", None),
    "audiostack": ("mixdown.renderers.cloud.audiostack:AudioStack", None),
    "suno": ("mixdown.renderers.cloud.suno:Suno", None),
}

ENTRY_POINT_GROUP = "mixdown.renderers"


class _Serialised:
    """Wraps a renderer that is not thread-safe so calls take turns."""

    def __init__(self, inner: Renderer, spec: RendererSpec) -> None:
        self.inner = inner
        self.spec = spec
        self._lock = threading.Lock()

    def render(self, request: RenderRequest) -> RenderResult:
        with self._lock:
            return self.inner.render(request)

    def close(self) -> None:
        if self.spec.closes:
            cast(Closable, self.inner).close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # voices(), settings, …: only render() takes turns


class Registry:
    """Name → renderer spec (its class, read once), and one shared instance per name.

    ``extra`` maps names to classes or instances and wins over every other
    source; tests use it to pass fakes.
    """

    def __init__(
        self,
        project_root: Path | None = None,
        extra: dict[str, Any] | None = None,
        providers: dict[str, dict[str, Any]] | None = None,
    ):
        self.project_root = project_root
        self.extra = dict(extra or {})
        self.providers = dict(providers or {})  # the show's [providers.NAME] tables
        self._classes: dict[str, tuple[Any, str]] = {}
        self._specs: dict[str, RendererSpec] = {}
        self._instances: dict[str, Renderer] = {}
        self._lock = threading.Lock()

    def known(self) -> list[str]:
        """Every name this registry can resolve (local, built-in, entry point)."""
        names = set(self.extra) | set(BUILTINS) | set(self._local_files())
        names |= {ep.name for ep in _entry_points()}
        return sorted(names)

    def spec(self, name: str) -> RendererSpec:
        """What the renderer registered as ``name`` declares, read once from its class."""
        if name not in self._specs:
            self._specs[name] = renderer_spec(name, self.cls(name), where=self._classes[name][1])
        return self._specs[name]

    def cls(self, name: str) -> Any:
        """The renderer class (or instance) registered as ``name``, imported on first use."""
        if name not in self._classes:
            self._classes[name] = self._resolve(name)
        return self._classes[name][0]

    def instance(self, name: str) -> Renderer:
        """The shared renderer instance for ``name``, created on first use."""
        with self._lock:
            if name not in self._instances:
                self._instances[name] = self._create(name)
            return self._instances[name]

    def close(self) -> None:
        """Close every instance created so far."""
        for name, inst in self._instances.items():
            if self._specs[name].closes:
                cast(Closable, inst).close()
        self._instances.clear()

    def configure(self, providers: dict[str, dict[str, Any]]) -> None:
        """Set the show's ``[providers.NAME]`` tables, used when cloud renderers are created."""
        self.providers = dict(providers)

    def _create(self, name: str) -> Renderer:
        spec = self.spec(name)
        made, provider = spec.cls, spec.provider
        if isinstance(made, type) and provider is not None:
            from .cloud.http import configure

            inst: Renderer = made(configure(provider, self.providers.get(provider.name)))
        else:
            inst = made() if isinstance(made, type) else made
        if not spec.thread_safe:
            return _Serialised(inst, spec)
        return inst

    def _resolve(self, name: str) -> tuple[Any, str]:
        """The class (or instance) registered as ``name``, and the show's file defining it, if any."""
        if name in self.extra:
            return self.extra[name], ""
        local = self._local_files().get(name)
        if local is not None:
            return _load_local(name, local), f"renderers/{local.name}"
        if name in BUILTINS:
            return _import_builtin(name), ""
        for ep in _entry_points():
            if ep.name == name:
                return ep.load(), ""
        known = ", ".join(self.known())
        raise ConfigError(f"unknown renderer {name!r}; known renderers: {known}")

    def _local_files(self) -> dict[str, Path]:
        if self.project_root is None:
            return {}
        folder = self.project_root / "renderers"
        record(folder)  # a renderer added here may shadow a built-in
        if not folder.is_dir():
            return {}
        return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.stem.startswith("_")}


def _import_builtin(name: str) -> Any:
    target, hint = BUILTINS[name]
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:  # pragma: no cover - only without optional deps
        raise RendererUnavailable(f"renderer {name!r} needs {err.name}: {hint}") from None
    return getattr(module, attr)


def _load_local(name: str, path: Path) -> Any:
    record(path)
    spec = importlib.util.spec_from_file_location(f"mixdown_local_renderers.{name}", path)
    if spec is None or spec.loader is None:  # pragma: no cover - only for odd files
        raise ConfigError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    where = f"renderers/{path.name}"
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        line = err.lineno if isinstance(err, SyntaxError) else _line_in(err, path)
        what = err.msg if isinstance(err, SyntaxError) else err
        raise ConfigError(
            f"{where}{f':{line}' if line else ''}: failed to import ({type(err).__name__}: {what}); fix the renderer"
        ) from None
    made = getattr(module, "Renderer", None)
    if made is None:
        raise ConfigError(f"{where}: defines no 'Renderer'; add a class named Renderer")
    return made


def _line_in(err: BaseException, path: Path) -> int | None:
    """The last line of ``path`` that the traceback of ``err`` passed through."""
    line, tb = None, err.__traceback__
    while tb is not None:
        line = tb.tb_lineno if tb.tb_frame.f_code.co_filename == str(path) else line
        tb = tb.tb_next
    return line


def _entry_points() -> list[Any]:
    from importlib.metadata import entry_points

    return list(entry_points(group=ENTRY_POINT_GROUP))
