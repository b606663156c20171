"""RendererSpec: each renderer's class attributes read once, with RendererBase's defaults."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from mixdown.errors import ConfigError, RendererUnavailable
from mixdown.loader import load_show
from mixdown.renderers import BUILTINS, Registry, RendererBase, RendererSpec, RenderRequest, RenderResult
from mixdown.renderers.base import KINDS, renderer_spec
from mixdown.renderers.cloud.http import ProviderSettings

PROVIDER = ProviderSettings(name="acme", base_url="https://acme.invalid", key_env="ACME_API_KEY")


class Minimal:
    """A third-party renderer: ``render`` and ``kinds``, nothing else."""

    kinds = frozenset({"voice"})

    def render(self, request: RenderRequest) -> RenderResult:  # pragma: no cover - never rendered
        raise NotImplementedError


class Based(RendererBase):
    """The same renderer, with RendererBase's defaults."""

    kinds = frozenset({"voice"})


class Full:
    """A renderer that sets every attribute the spec reads."""

    version = "3"
    kinds = {"voice", "sfx"}  # any set of kinds, not only a frozenset
    params = {"model": str, "speed": (int, float)}
    required = {"voice": ["model"]}
    thread_safe = False
    provider = PROVIDER

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        if params.get("speed", 1) <= 0:
            raise ValueError("'speed' must be positive")

    @classmethod
    def text_limit(cls, params: Mapping[str, Any]) -> int | None:
        return 100 if params.get("model") == "small" else 1000

    @classmethod
    def key_params(cls, params: Mapping[str, Any], root: Path) -> dict[str, Any]:
        return {**params, "model_version": 7}

    @classmethod
    def billing(cls, request: RenderRequest) -> str:
        return f"{len(request.text)} characters"

    def render(self, request: RenderRequest) -> RenderResult:  # pragma: no cover - never rendered
        raise NotImplementedError

    def voices(self) -> list[dict[str, str]]:
        return [{"id": "v1"}]

    def close(self) -> None:
        pass


def test_a_minimal_class_gets_the_defaults_of_renderer_base(tmp_path: Path) -> None:
    spec = renderer_spec("plain", Minimal)
    assert (spec.name, spec.cls, spec.version, spec.kinds) == ("plain", Minimal, "1", frozenset({"voice"}))
    assert dict(spec.params) == {} and dict(spec.required) == {}
    assert spec.check is None and spec.provider is None and spec.billing is None
    assert spec.thread_safe and not spec.lists_voices and not spec.closes
    assert spec.text_limit({"x": 1}) is None
    assert spec.key_params({"x": 1}, tmp_path) == {"x": 1}
    assert spec.render_file == Path(__file__)
    based = renderer_spec("plain", Based)
    assert (based.version, based.kinds, dict(based.params), dict(based.required), based.thread_safe) == (
        spec.version,
        spec.kinds,
        dict(spec.params),
        dict(spec.required),
        spec.thread_safe,
    )
    assert based.text_limit({"x": 1}) is None and based.key_params({"x": 1}, tmp_path) == {"x": 1}


def test_kinds_default_to_all_three() -> None:
    class Bare:
        def render(self, request: RenderRequest) -> RenderResult:  # pragma: no cover - never rendered
            raise NotImplementedError

    assert renderer_spec("bare", Bare).kinds == KINDS == frozenset({"voice", "sfx", "music"})


def test_every_attribute_reaches_the_spec(tmp_path: Path) -> None:
    spec = renderer_spec("full", Full)
    assert spec.version == "3" and spec.kinds == frozenset({"voice", "sfx"})
    assert dict(spec.params) == {"model": str, "speed": (int, float)}
    assert dict(spec.required) == {"voice": ("model",)}
    assert spec.check is not None
    with pytest.raises(ValueError, match="'speed' must be positive"):
        spec.check({"speed": 0})
    assert spec.text_limit({"model": "small"}) == 100 and spec.text_limit({}) == 1000
    assert spec.key_params({"model": "m"}, tmp_path) == {"model": "m", "model_version": 7}
    assert not spec.thread_safe and spec.provider is PROVIDER
    assert spec.billing is not None and spec.billing(RenderRequest("voice", {}, text="abc")) == "3 characters"
    assert spec.lists_voices and spec.closes


def test_max_chars_is_the_text_limit_for_every_setting() -> None:
    class Limited(Minimal):
        max_chars = 40

    assert renderer_spec("limited", Limited).text_limit({"anything": 1}) == 40


def test_an_instance_is_read_like_its_class() -> None:
    spec = renderer_spec("full", Full())
    assert spec.version == "3" and spec.lists_voices and isinstance(spec.cls, Full)
    assert spec.render_file == Path(__file__)


def test_the_spec_is_frozen() -> None:
    spec = renderer_spec("plain", Minimal)
    with pytest.raises(AttributeError):
        spec.version = "2"  # type: ignore[misc]  # what the test checks
    with pytest.raises(TypeError):
        spec.params["x"] = str  # type: ignore[index]  # what the test checks


BAD: dict[str, tuple[dict[str, Any], str]] = {
    "kinds outside the three": (
        {"kinds": frozenset({"voice", "speech"})},
        "'kinds' must be a non-empty subset",
    ),
    "kinds as a string": ({"kinds": "voice"}, "'kinds' must be a set of kinds"),
    "no kinds": ({"kinds": frozenset()}, "'kinds' must be a non-empty subset"),
    "version a number": ({"version": 2}, "'version' must be a string, not 2"),
    "params a list": ({"params": ["speed"]}, "'params' must map setting names to types, not list"),
    "params a type name": ({"params": {"speed": "float"}}, "'params' must map setting names to a type"),
    "required a string": ({"required": {"voice": "text"}}, "'required' must map kinds to tuples"),
    "required an unknown kind": ({"required": {"speech": ("text",)}}, "'required' must map kinds"),
    "max_chars a string": ({"max_chars": "10"}, "'max_chars' must be a positive integer or None"),
    "max_chars zero": ({"max_chars": 0}, "'max_chars' must be a positive integer or None"),
    "thread_safe a string": ({"thread_safe": "no"}, "'thread_safe' must be True or False"),
    "check not a method": ({"check": 3}, "'check' must be a method"),
    "provider a dict": ({"provider": {"key_env": "X"}}, "'provider' must be a ProviderSettings, not dict"),
    "render missing": ({"render": None}, "'render' must be a method"),
}


@pytest.mark.parametrize("attributes, message", BAD.values(), ids=BAD.keys())
def test_a_bad_attribute_is_a_one_line_error_naming_the_renderer(
    attributes: dict[str, Any], message: str
) -> None:
    bad = type("Bad", (Minimal,), attributes)
    with pytest.raises(ConfigError) as err:
        renderer_spec("bad", bad)
    text = str(err.value)
    assert text.startswith("renderer 'bad': ") and message in text and text.endswith("; fix the renderer")
    assert "\n" not in text


def test_the_registry_reads_each_class_once(tmp_path: Path) -> None:
    registry = Registry(tmp_path, extra={"full": Full})
    spec = registry.spec("full")
    assert isinstance(spec, RendererSpec) and registry.spec("full") is spec and registry.cls("full") is Full


def test_a_shows_own_renderer_with_a_bad_attribute_names_its_file(tmp_path: Path) -> None:
    (tmp_path / "renderers").mkdir()
    (tmp_path / "renderers" / "odd.py").write_text(
        textwrap.dedent("""
        class Renderer:
            version = 2
            def render(self, request):
                raise NotImplementedError
    """)
    )
    with pytest.raises(
        ConfigError, match=r"^renderer 'odd' \(renderers/odd.py\): 'version' must be a string"
    ):
        Registry(tmp_path).spec("odd")


def test_every_builtin_has_a_valid_spec(tmp_path: Path) -> None:
    registry = Registry(tmp_path)
    for name in BUILTINS:
        try:
            spec = registry.spec(name)
        except RendererUnavailable:  # pragma: no cover - only without an optional dependency
            continue
        assert spec.kinds <= KINDS and isinstance(spec.version, str)
        assert (spec.provider is not None) == (
            spec.billing is not None
        )  # cloud renderers, and only they, bill


SHOW = """
[project]
name = "Mini"
voice = "anna"

[voices.anna]
renderer = "plain"

[scripts.s]
template = "stanzas/s.j2"

[master]
formats = ["wav"]
"""


def mini_show(root: Path) -> Path:
    (root / "stanzas").mkdir(parents=True)
    (root / "project.toml").write_text(SHOW)
    (root / "stanzas" / "s.j2").write_text(
        "## intro\nHello there. This line is long enough to be split in two.\n"
    )
    return root


def test_a_minimal_third_party_renderer_plans_like_a_renderer_base_subclass(tmp_path: Path) -> None:
    class LimitedMinimal(Minimal):
        max_chars = 30

    class LimitedBased(Based):
        max_chars = 30

    root = mini_show(tmp_path)
    minimal, based = (
        load_show(root, registry=Registry(root, extra={"plain": cls})).plan
        for cls in (LimitedMinimal, LimitedBased)
    )
    assert list(minimal.assets) == list(based.assets) and len(minimal.assets) > 1  # split at max_chars


def test_a_renderer_with_a_bad_attribute_fails_the_show_on_one_line(tmp_path: Path) -> None:
    root = mini_show(tmp_path)
    wrong = type("Wrong", (Minimal,), {"kinds": frozenset({"sfx", "speech"})})
    with pytest.raises(ConfigError, match=r"^project.toml:\d+: renderer 'plain': 'kinds' must be") as err:
        load_show(root, registry=Registry(root, extra={"plain": wrong}))
    assert "\n" not in str(err.value)
