"""The ``mixdown`` command, and the README's one-line switch to a cloud voice."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mixdown.cli import main
from mixdown.loader import load_show

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    shutil.copy(REPO / "project.toml", tmp_path)
    for folder in ("stanzas", "data", "renderers"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def switch_host_to_openai(root: Path) -> None:
    """The README's example: one changed line in [voices.host]."""
    toml = root / "project.toml"
    text = toml.read_text()
    host = text.index("[voices.host]")
    line = text.index('renderer = "piper"', host)
    toml.write_text(text[:line] + 'renderer = "openai"' + text[line + len('renderer = "piper"') :])


def test_one_line_switches_only_the_hosts_lines(demo: Path) -> None:
    before = {a.task: (a.key, a.source) for a in load_show(demo).plan.assets.values()}
    switch_host_to_openai(demo)
    after = {a.task: a.key for a in load_show(demo).plan.assets.values()}
    changed = {task for task, (key, _) in before.items() if after.get(task) != key}
    assert changed == {task for task, (_, source) in before.items() if source == "host"}
    assert changed and all(task.startswith("voice:") for task in changed)


def test_plan_lists_what_would_render_and_bill(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    switch_host_to_openai(demo)
    assert main(["plan", "-d", str(demo)]) == 0
    out = capsys.readouterr().out
    show = load_show(demo)
    host = [a for a in show.plan.assets.values() if a.source == "host"]
    assert (
        out.splitlines()[0]
        == f"{len(show.plan.assets)} of {len(show.plan.assets)} assets to render (0 cached)"
    )
    first = host[0]
    assert f"{first.task}" in out and f"openai      {len(first.text)} characters" in out
    total = sum(len(a.text) for a in host)
    assert f"openai: {len(host)} requests, {total} characters" in out
    assert "piper" in out and "local, no charge" in out


def test_check_and_voices(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-d", str(demo)]) == 0
    assert capsys.readouterr().out.startswith(
        "ok: The Morning Signal: 17 voice, 4 sfx, 3 music; 4 deliverables"
    )
    assert main(["voices", "openai", "-d", str(demo)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 13
    assert main(["voices", "elevenlabs", "-d", str(demo)]) == 2
    assert capsys.readouterr().err.strip() == (
        "mixdown: the 'elevenlabs' renderer needs an API key: set ELEVENLABS_API_KEY"
    )


def test_errors_are_one_line(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (demo / "stanzas" / "weather.j2").write_text("## a\nHello {{ nobody }}.\n")
    assert main(["plan", "-d", str(demo)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "stanzas/weather.j2:2: 'nobody' is undefined" in err
