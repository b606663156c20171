from __future__ import annotations

import mixdown


def test_public_names_are_exported_and_exist() -> None:
    assert sorted(mixdown.__all__) == sorted(set(mixdown.__all__))
    for name in mixdown.__all__:
        assert getattr(mixdown, name) is not None
    public = {n for n in vars(mixdown) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(mixdown.__all__)


def test_every_error_is_a_mixdown_error() -> None:
    for name in ("ConfigError", "TemplateError", "RenderFailed", "RendererUnavailable", "AudioError"):
        assert issubclass(getattr(mixdown, name), mixdown.MixdownError)
    assert issubclass(mixdown.ConfigError, mixdown.ProjectError)
    assert issubclass(mixdown.RendererUnavailable, mixdown.RenderError)
