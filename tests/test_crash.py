"""Killed builds: ``kill -9`` a real ``doit`` at seeded random moments while it renders, mixes,
masters and delivers; the next build completes, makes exactly what an uninterrupted build makes,
and leaves no temporary file anywhere in build/ or cache/.

Run on its own, with a summary of the kill moments by stage::

    .venv/bin/python -m tests.test_crash [TRIALS] [SEED]
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from .conftest import ABOUT_THE_BUILD
from .test_corpus_build import environment, leftovers, write_show

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

STAGES = ("voice", "section", "mix", "master", "deliver")
#: the tasks after the deliveries (captions and chapters, the timeline): short, not aimed at
PUBLISHING = ("captions", "otio")
DELIVERIES = """
[deliveries.alexa]
preset = "alexa"

[deliveries.loud]
preset = "streaming"
formats = ["flac"]
"""


def crash_show(root: Path) -> Path:
    """2.5 minutes of ten voice lines (segmented mastering), each render taking 0.3 s; a master
    in WAV, FLAC and MP3 and two deliveries."""
    return write_show(
        root, lines=10, seconds=15.0, sleep=0.3, formats=("wav", "flac", "mp3"), extra=DELIVERIES
    )


def start(root: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "doit"],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**environment(), "PYTHONUNBUFFERED": "1"},
        )


def timeline(root: Path) -> dict[str, float]:
    """When each stage starts in an uninterrupted build (seconds after the process starts),
    and when the build ends (``"end"``)."""
    began = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "doit"],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**environment(), "PYTHONUNBUFFERED": "1"},
        text=True,
    )
    assert child.stdout is not None
    starts: dict[str, float] = {}
    for line in child.stdout:
        stage = stage_of(line)
        if stage is not None:
            starts.setdefault(stage, time.monotonic() - began)
    assert child.wait() == 0
    starts["end"] = time.monotonic() - began
    assert list(starts) == [*STAGES, *PUBLISHING, "end"], starts
    return starts


def stage_of(line: str) -> str | None:
    """The stage a doit task line (``.  mix:m/ep``) starts, if it is one."""
    if line.startswith(".  "):
        return line[3:].split(":", 1)[0]
    return None


def outputs(root: Path) -> dict[str, Path]:
    """The files in ``build/`` but the build's own account of itself (which counts what it did)."""
    found = sorted((root / "build").rglob("*"))
    return {
        str(p.relative_to(root / "build")): p for p in found if p.is_file() and p.name not in ABOUT_THE_BUILD
    }


def same_audio(made: Path, expected: Path) -> bool:
    """Sample-exact for WAV and FLAC; an MP3 by its bytes, else by its decoded samples."""
    if made.read_bytes() == expected.read_bytes():
        return True
    if made.suffix not in (".wav", ".flac", ".mp3"):
        return False
    a, sr_a = sf.read(made, dtype="float32", always_2d=True)
    b, sr_b = sf.read(expected, dtype="float32", always_2d=True)
    return sr_a == sr_b and a.shape == b.shape and bool(np.array_equal(a, b))


@dataclass
class Trial:
    planned: str  # the stage the kill was aimed at
    stage: str  # the stage running when it landed ("" before the first task)
    after: float  # seconds after the process started


def _reached(child: subprocess.Popen[bytes], log: Path, stage: str) -> float:
    """Wait until the build in ``child`` starts its first task of ``stage``; seconds it took."""
    began = time.monotonic()
    while child.poll() is None and time.monotonic() - began < 300:
        if any(stage_of(line) == stage for line in log.read_text(errors="replace").splitlines()):
            return time.monotonic() - began
        time.sleep(0.01)
    raise AssertionError(f"the build never reached its {stage} stage:\n{log.read_text(errors='replace')}")


def run_trials(workdir: Path, trials: int, seed: int) -> tuple[list[Trial], float]:
    """Kill ``trials`` builds (spread evenly over the stages) and check each next build."""
    began = time.monotonic()
    reference = crash_show(workdir / "reference")
    starts = timeline(reference)
    expected = outputs(reference)
    template = crash_show(workdir / "template")
    rng = random.Random(seed)
    done: list[Trial] = []
    for number in range(trials):
        planned = STAGES[number % len(STAGES)]
        # a moment inside the stage, counted from when this build reaches it (a loaded machine
        # moves every stage later, so a time from the start would land in another stage)
        length = starts[(*STAGES, *PUBLISHING, "end")[STAGES.index(planned) + 1]] - starts[planned]
        delay = rng.uniform(0.0, 0.9 * length)
        root = workdir / f"trial{number}"
        shutil.copytree(template, root)
        log = root / "killed.log"
        child = start(root, log)
        reached = _reached(child, log, planned)
        time.sleep(delay)
        at = reached + delay
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        stages = [s for s in map(stage_of, log.read_text().splitlines()) if s is not None]
        done.append(Trial(planned, stages[-1] if stages else "", at))
        again = subprocess.run(
            [sys.executable, "-m", "doit"], cwd=root, capture_output=True, text=True, env=environment()
        )
        context = f"trial {number}: killed at {at:.2f} s during {done[-1].stage or 'loading'}"
        assert again.returncode == 0, f"{context}\n{again.stdout}{again.stderr}"
        made = outputs(root)
        assert sorted(made) == sorted(expected), context
        for name, path in made.items():
            if not same_audio(path, expected[name]):
                shutil.copytree(root, workdir / "failed", dirs_exist_ok=True)
                raise AssertionError(f"{context}: {name} differs (kept in {workdir / 'failed'})")
        assert leftovers(root) == [], context
        shutil.rmtree(root)
    return done, time.monotonic() - began


@pytest.mark.slow
def test_a_long_masters_files_are_made_again_the_same_once_it_is_cached(tmp_path: Path) -> None:
    # A build killed after a delivery cached the master (its samples, beside its recipe) but
    # before the master's files were recorded makes them again: the same bytes as the first time.
    root = crash_show(tmp_path / "show")
    first = subprocess.run([sys.executable, "-m", "doit"], cwd=root, capture_output=True, env=environment())
    assert first.returncode == 0
    assert list((root / "cache").rglob("*.recipe.json"))
    made = {name: path.read_bytes() for name, path in outputs(root).items()}
    shutil.rmtree(root / "build")
    again = subprocess.run(
        [sys.executable, "-m", "doit", "-a", "master:m/ep"], cwd=root, capture_output=True, env=environment()
    )
    assert again.returncode == 0
    for name, path in outputs(root).items():
        assert path.read_bytes() == made[name], name


@pytest.mark.slow
def test_a_build_killed_at_any_moment_is_completed_by_the_next(tmp_path: Path) -> None:
    trials, elapsed = run_trials(tmp_path, 24, seed=20261205)
    landed = Counter(t.stage for t in trials)
    print(f"\n{len(trials)} kills in {elapsed:.0f} s; landed in: {dict(landed)}")
    assert all(landed[stage] >= 3 for stage in STAGES), landed


if __name__ == "__main__":
    import tempfile

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 24
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 20261205
    with tempfile.TemporaryDirectory() as work:
        trials, elapsed = run_trials(Path(work), count, seed)
    for trial in trials:
        print(f"{trial.after:6.2f} s  aimed at {trial.planned:<7}  landed in {trial.stage or 'loading'}")
    landed = Counter(t.stage or "loading" for t in trials)
    print(
        f"{len(trials)} kills in {elapsed:.0f} s; every next build completed, same files, no temporary file"
    )
    print(
        "by stage: "
        + ", ".join(f"{stage} {landed[stage]}" for stage in (*STAGES, "loading") if landed[stage])
    )
