from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc (Linux)")
@pytest.mark.parametrize(("setting", "threads"), [(None, 1), ("2", 3)])
def test_openblas_pools_are_not_started_unless_asked(setting: str | None, threads: int) -> None:
    # Imported first, mixdown keeps numpy's and scipy's OpenBLAS to the calling thread (its own
    # threads share the cores); a user's OPENBLAS_NUM_THREADS still wins (a worker each: 1 + 2).
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if setting is not None:
        env["OPENBLAS_NUM_THREADS"] = setting
    code = "import mixdown, numpy, scipy.signal, os; print(len(os.listdir('/proc/self/task')))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert int(out.stdout) == threads


def test_the_paths_users_configure_still_resolve() -> None:
    # A show's pyproject.toml names the loader; third-party renderers import the contract.
    import importlib

    loader = importlib.import_module("mixdown.loader")
    assert loader.MixdownLoader is mixdown.MixdownLoader
    renderers = importlib.import_module("mixdown.renderers")
    for name in ("RendererBase", "RenderRequest", "RenderResult", "Renderer", "Registry", "BUILTINS"):
        assert hasattr(renderers, name), name
    for name, (path, _) in renderers.BUILTINS.items():
        module, _, attr = path.partition(":")
        assert callable(getattr(importlib.import_module(module), attr)), name


def test_python_m_mixdown_is_the_command(tmp_path: Path) -> None:
    found = subprocess.run(
        [sys.executable, "-m", "mixdown", "check"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert found.returncode == 2
    assert found.stderr.strip().startswith("mixdown: ") and "project.toml: not found" in found.stderr
    assert "Traceback" not in found.stderr


def test_every_public_name_has_one_home() -> None:
    homes = mixdown._HOMES  # the module each public name is loaded from
    assert set(mixdown.__all__) == {*homes, "__version__"}
    assert isinstance(mixdown.__version__, str)
