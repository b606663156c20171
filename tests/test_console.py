"""What a build shows: `--reporter json` is one JSON document, `-v 0` is quiet, progress is spaced out."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from mixdown.actions import console, finish

SHOW = """
[project]
voice = "host"

[voices.host]
renderer = "silence"
duration = 0.5

[sfx.tone]
renderer = "file"
path = "media/tone.wav"

[scripts.talk]
template = "stanzas/talk.j2"

[master]
formats = ["wav", "flac"]

[deliveries.radio]
preset = "ebu-r128"
formats = ["wav"]
"""


def make_show(root: Path, *, audible: bool = True) -> Path:
    for name in ("stanzas", "media"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "project.toml").write_text(textwrap.dedent(SHOW))
    (root / "stanzas" / "talk.j2").write_text("## a\nHello. [sfx:tone]\n")
    (root / "doit.cfg").write_text(
        "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"
    )
    t = np.arange(5 * 48000) / 48000
    y = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) * float(audible)
    sf.write(root / "media" / "tone.wav", y[:, None], 48000)
    return root


def run_doit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "doit", *args], cwd=root, capture_output=True, text=True, env=env, check=False
    )


def test_json_reporter_output_is_json_with_each_deliverables_loudness(tmp_path: Path) -> None:
    root = make_show(tmp_path)
    done = run_doit(root, "--reporter", "json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    tasks = {t["name"]: t for t in data["tasks"]}
    assert tasks["voice:talk/a/0"]["result"] == "success"
    for target, stem in (("master:talk", "talk"), ("deliver:talk/radio", "talk.radio")):
        entry = tasks[target]
        assert entry["result"] == "success"
        files = entry["values"]["files"]
        assert set(files) == {
            f"build/{stem}.{fmt}" for fmt in (("wav", "flac") if stem == "talk" else ("wav",))
        }
        for name, found in files.items():
            y, sr = sf.read(root / name, always_2d=True)
            assert found["lufs"] == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(y), abs=0.1)
            assert found["seconds"] == pytest.approx(len(y) / sr, abs=1e-6)
    assert "mixdown.lock  written" in data["out"]  # the end of build ran inside the document
    assert (root / "mixdown.lock").is_file() and (root / "build" / "manifest.json").is_file()
    again = run_doit(root, "--reporter", "json", "master:talk")
    assert again.returncode == 0, again.stderr
    entry = next(t for t in json.loads(again.stdout)["tasks"] if t["name"] == "master:talk")
    assert (
        entry["result"] == "up-to-date"
        and entry["values"]["files"] == tasks["master:talk"]["values"]["files"]
    )


def test_quiet_build_prints_nothing_but_failures(tmp_path: Path) -> None:
    root = make_show(tmp_path / "fine")
    done = run_doit(root, "-v", "0")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and (root / "build" / "talk.wav").is_file()
    silent = make_show(tmp_path / "silent", audible=False)  # a silent programme is out of any spec
    failed = run_doit(silent, "-v", "0")
    assert failed.returncode != 0
    assert "master:talk" in failed.stdout and "out of spec" in failed.stdout
    assert ".  voice:" not in failed.stdout and "-- " not in failed.stdout


def task(name: str) -> Any:
    return SimpleNamespace(
        name=name, actions=[object()], task_dep=[], setup_tasks=[], title=lambda: name, values={}
    )


def reporter(stream: Any) -> console.ProgressReporter:
    finish.reset()
    console.configure(quiet=False)
    found = console.ProgressReporter(stream, {})
    tasks = {n: task(n) for n in ("voice:a", "voice:b", "sfx:c", "mix:m", "master:m")}
    found.initialize(tasks, list(tasks))
    return found


def test_progress_counts_done_of_total_and_renders_in_flight(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    made = reporter(out)
    a, b, c = task("voice:a"), task("voice:b"), task("sfx:c")
    made.skip_uptodate(a)
    made.execute_task(b)
    made.execute_task(c)
    assert made.status().startswith("[1/5 tasks] 2 renders in flight")
    made.add_success(b)
    assert made.status().startswith("[2/5 tasks] 1 renders in flight")
    assert "-- voice:a\n" in out.getvalue() and ".  voice:b\n" in out.getvalue()


def test_without_a_terminal_progress_lines_are_spaced_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(console.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    made = reporter(out)
    made.execute_task(task("voice:a"))
    clock[0] += console.EVERY - 0.5
    made.add_success(task("voice:a"))
    assert "tasks]" not in out.getvalue()  # not yet: the last line was under EVERY seconds ago
    clock[0] += 1.0
    made.execute_task(task("voice:b"))
    lines = [line for line in out.getvalue().splitlines() if "tasks]" in line]
    assert lines == ["[1/5 tasks] 1 renders in flight, 0:00:05 elapsed, ETA 0:00:22"]


def test_on_a_terminal_a_live_line_keeps_doits_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("rich")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    made = reporter(out)
    assert made.live is not None
    made.execute_task(task("voice:a"))
    made.add_success(task("voice:a"))
    made.complete_run()
    assert made.live is None
    assert ".  voice:a" in out.getvalue()
