"""`mixdown init`: a new show that `doit` builds as it stands, offline; and `mixdown --version`."""

from __future__ import annotations

import os
from pathlib import Path

import pyloudnorm
import pytest
import soundfile as sf

import mixdown
from mixdown.scaffold import FILES

from .test_show_tasks import entry_point_path, run


def files_under(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_a_new_show_builds_with_doit_and_its_masters_are_on_target(tmp_path: Path) -> None:
    pytest.importorskip("piper")
    root = tmp_path / "show"
    made = run(tmp_path, "init", "show", module="mixdown")
    assert made.returncode == 0, made.stderr
    assert files_under(root) == set(FILES)
    built = run(root, path=entry_point_path(tmp_path))
    assert built.returncode == 0, built.stdout + built.stderr
    masters = sorted((root / "build").glob("*.mp3"))
    assert [p.name for p in masters] == ["episode@ada.mp3", "episode@kai.mp3"]
    for path in masters:
        y, sr = sf.read(path, always_2d=True)
        assert len(y) / sr > 2.0
        assert pyloudnorm.Meter(sr).integrated_loudness(y) == pytest.approx(-16.0, abs=1.0)
    again = run(root, path=entry_point_path(tmp_path / "again"))
    assert again.returncode == 0 and "\n.  " not in "\n" + again.stdout  # nothing to do


def test_init_refuses_a_folder_with_a_show_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "project.toml").write_text("[project]\nname = 'Mine'\n")
    refused = run(tmp_path, "init", module="mixdown")
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "mixdown: project.toml: this folder already holds a show; nothing was written: "
        "init a new folder (mixdown init DIR)"
    ]
    assert files_under(tmp_path) == {"project.toml"}
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "dodo.py").write_text("")
    refused = run(tmp_path / "sub", "init", module="mixdown")
    assert refused.returncode == 2 and "already holds a dodo.py" in refused.stderr
    assert files_under(tmp_path / "sub") == {"dodo.py"}


def test_version_is_the_distributions(tmp_path: Path) -> None:
    shown = run(tmp_path, "--version", module="mixdown")
    assert shown.returncode == 0
    assert shown.stdout.strip() == f"mixdown {mixdown.__version__}"
    with_metadata = run(tmp_path, "--version", module="mixdown", path=entry_point_path(tmp_path))
    assert with_metadata.stdout.strip() == f"mixdown {mixdown.__version__}"
    assert os.path.isdir(tmp_path / "site")
