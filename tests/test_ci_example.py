"""examples/ci/nightly.yml: the nightly workflow for a show repository names what mixdown has.

Parsed as YAML, so that it cannot rot silently: its triggers, the build steps
(``doit --frozen`` on pull requests, a commit of mixdown.lock otherwise), the
extra it installs, and every ``MIXDOWN_*`` variable it sets must be ones
mixdown really has.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from mixdown.loader import MixdownLoader

yaml = pytest.importorskip("yaml")  # pyyaml: in the dev environment (moto[server] needs it)

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "examples" / "ci" / "nightly.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text("utf-8"))
    return loaded


def _steps(workflow: dict[Any, Any]) -> list[dict[str, Any]]:
    [job] = workflow["jobs"].values()
    steps: list[dict[str, Any]] = job["steps"]
    return steps


def _running(workflow: dict[Any, Any], command: str) -> list[dict[str, Any]]:
    return [step for step in _steps(workflow) if command in step.get("run", "")]


def test_it_runs_on_pull_requests_and_every_night(workflow: dict[Any, Any]) -> None:
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and "workflow_dispatch" in triggers
    [schedule] = triggers["schedule"]
    minute, hour, *every = schedule["cron"].split()
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24 and every == ["*", "*", "*"]
    assert workflow["permissions"]["contents"] == "write"


def test_pull_requests_build_frozen_and_the_nightly_commits_the_lock(workflow: dict[Any, Any]) -> None:
    [frozen] = _running(workflow, "doit --frozen")
    assert frozen["if"] == "github.event_name == 'pull_request'"
    assert any(option["long"] == "frozen" for option in MixdownLoader.cmd_options)
    [build] = [s for s in _running(workflow, "doit ") if s is not frozen]
    [commit] = _running(workflow, "git commit")
    for step in (build, commit):
        assert step["if"] == "github.event_name != 'pull_request'"
    assert "--frozen" not in build["run"]
    assert "git add mixdown.lock" in commit["run"] and "git push" in commit["run"]
    assert "git diff --quiet -- mixdown.lock" in commit["run"]  # nothing to commit after a no-op build
    names = [s.get("uses", s.get("name")) for s in _steps(workflow)]
    assert names.index("Build (frozen lock)") < names.index("Build") < names.index("Commit mixdown.lock")
    [upload] = [s for s in _steps(workflow) if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert upload["with"]["path"] == "build/" and upload["if"] == "always()"


def test_it_installs_extras_mixdown_declares(workflow: dict[Any, Any]) -> None:
    [install] = _running(workflow, "pip install")
    extras = set(re.search(r"mixdown\[([a-z0-9,]+)\]", install["run"]).group(1).split(","))  # type: ignore[union-attr]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["optional-dependencies"]
    assert "s3" in extras and extras <= set(declared)
    uses = {s["uses"].split("@")[0] for s in _steps(workflow) if "uses" in s}
    assert {"actions/checkout", "actions/setup-python", "actions/upload-artifact"} <= uses


def test_every_mixdown_variable_it_sets_is_one_mixdown_reads(workflow: dict[Any, Any]) -> None:
    [job] = workflow["jobs"].values()
    env = job["env"]
    assert env["MIXDOWN_REMOTE"] == "${{ vars.MIXDOWN_REMOTE }}"
    assert env["AWS_SECRET_ACCESS_KEY"] == "${{ secrets.AWS_SECRET_ACCESS_KEY }}"  # never in the file
    source = "\n".join(p.read_text("utf-8") for p in (ROOT / "src" / "mixdown").rglob("*.py"))
    ours = [name for name in env if name.startswith("MIXDOWN_")]
    assert "MIXDOWN_REMOTE" in ours
    assert [name for name in ours if f'"{name}"' not in source] == []
