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


def test_plan_counts_local_renders_without_a_charge(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "-d", str(demo)]) == 0
    out = capsys.readouterr().out
    piper = [a for a in load_show(demo).plan.assets.values() if a.renderer == "piper"]
    assert f"piper: {len(piper)} renders, local, no charge" in out.splitlines()
    assert "no charge," not in out and " 0 " not in out


def test_bills_add_up_by_unit_and_count_the_others() -> None:
    from mixdown.cli_plan import _sum

    bills = ["12 characters", "one generation (2 clips)", "30 characters", "one generation (2 clips)"]
    assert _sum(bills) == "42 characters, 2 × one generation (2 clips)"
    assert _sum(["local, no charge"] * 3) == "3 × local, no charge"


def test_check_reports_every_cloud_renderer_without_its_key(
    demo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    switch_host_to_openai(demo)
    toml = demo / "project.toml"
    text = toml.read_text()
    at = text.index("[sfx.chime]")
    end = text.index("\n[", at + 1)
    toml.write_text(text[:at] + '[sfx.chime]\nrenderer = "stability"\nprompt = "a chime"\n' + text[end:])
    assert main(["check", "-d", str(demo)]) == 2
    captured = capsys.readouterr()
    host = toml.read_text().splitlines().index("[voices.host]") + 1
    chime = toml.read_text().splitlines().index("[sfx.chime]") + 1
    assert captured.err.splitlines() == [
        f"mixdown: project.toml:{host}: the 'openai' renderer needs an API key: set OPENAI_API_KEY before building",
        f"mixdown: project.toml:{chime}: the 'stability' renderer needs an API key: set STABILITY_API_KEY before building",
    ]
    assert captured.out == ""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("STABILITY_API_KEY", " ")  # blank: the HTTP client would refuse it too
    assert main(["check", "-d", str(demo)]) == 2
    assert "STABILITY_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("STABILITY_API_KEY", "sk-test")
    assert main(["check", "-d", str(demo)]) == 0
    assert capsys.readouterr().out.startswith("ok: The Morning Signal:")
