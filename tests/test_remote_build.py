"""The remote cache in real builds: two clones of a show sharing one S3 (moto on 127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ABOUT_THE_BUILD
from .fakeserver import KEY, FakeSpeechServer, elevenlabs_show
from .s3server import S3, point_at
from .test_build import doit, ran

LINES = ["Good morning, this is the news.", "Rain is coming later today.", "That was the news, goodbye."]


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True)
    return done.stdout


def script(lines: list[str]) -> str:
    return "## main\n" + "\n\n".join(lines) + "\n"


@pytest.fixture
def server() -> Iterator[FakeSpeechServer]:
    with FakeSpeechServer() as fake:
        yield fake


@pytest.fixture
def clones(tmp_path: Path, server: FakeSpeechServer, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    a = tmp_path / "a"
    (a / "stanzas").mkdir(parents=True)
    (a / "project.toml").write_text(elevenlabs_show(server.url))
    (a / "stanzas" / "news.j2").write_text(script(LINES))
    (a / ".gitignore").write_text("cache/\nbuild/\n.mixdown/\n")
    git(a, "init", "-q", "-b", "main")
    git(a, "add", "-A")
    git(a, "commit", "-qm", "show")
    git(tmp_path, "clone", "-q", str(a), "b")
    return a, tmp_path / "b"


def built_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "build").rglob("*"))
        if p.is_file() and p.name not in ABOUT_THE_BUILD
    }


def test_a_second_clone_builds_from_the_remote_with_no_provider_request(
    clones: tuple[Path, Path], server: FakeSpeechServer, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = clones
    monkeypatch.setenv("MIXDOWN_REMOTE", s3.url)
    code, out, err = doit(a, {})
    assert code == 0, out + err
    assert sum(server.attempts.values()) == len(LINES)
    assert f"remote cache: uploaded {len(LINES)} objects" in out

    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert sum(server.attempts.values()) == len(LINES)  # not one request more
    assert f"remote cache: {len(LINES)} of {len(LINES)} missing objects downloaded" in out
    assert not [t for t in ran(out) if t.startswith("voice:")]
    assert built_files(b) == built_files(a) and built_files(a)
    assert "uploaded" not in out  # nothing new to share

    # an edit in A, built there (so uploaded), committed and pulled into B
    (a / "stanzas" / "news.j2").write_text(script([LINES[0], "Sun is coming later today.", LINES[2]]))
    git(a, "commit", "-qam", "edit")
    code, out, err = doit(a, {})
    assert code == 0, out + err
    assert sum(server.attempts.values()) == len(LINES) + 1
    assert ran(out).count("voice:news/main/1") == 1 and "remote cache: uploaded 1 objects" in out
    git(b, "pull", "-q")
    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert sum(server.attempts.values()) == len(LINES) + 1
    assert "remote cache: 1 of 1 missing objects downloaded" in out
    assert not [t for t in ran(out) if t.startswith("voice:")]
    assert built_files(b) == built_files(a)


def test_a_build_with_an_unreachable_remote_goes_on_locally_with_one_warning(
    clones: tuple[Path, Path], server: FakeSpeechServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = clones
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    point_at(monkeypatch, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MIXDOWN_REMOTE", "s3://nowhere/cache")
    code, out, err = doit(a, {})
    assert code == 0, out + err
    warnings = [line for line in (out + err).splitlines() if "remote cache" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        "warning: remote cache s3://nowhere/cache is unreachable"
    )
    assert (a / "build" / "news.wav").is_file() and sum(server.attempts.values()) == len(LINES)

    monkeypatch.setenv("MIXDOWN_REMOTE_REQUIRED", "1")
    (a / "stanzas" / "news.j2").write_text(script([*LINES, "One more line."]))
    code, out, err = doit(a, {})
    assert code != 0
    errors = [line for line in (out + err).splitlines() if "remote cache" in line]
    assert len(errors) == 1 and "MIXDOWN_REMOTE_REQUIRED" in errors[0], out + err
    assert sum(server.attempts.values()) == len(LINES)  # nothing paid for


def test_a_file_remote_shares_sections_and_mixes_with_share_all(
    clones: tuple[Path, Path], server: FakeSpeechServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = clones
    for root in (a, b):
        toml = root / "project.toml"
        toml.write_text(toml.read_text() + '\n[cache]\nshare = "all"\n')
    monkeypatch.setenv("MIXDOWN_REMOTE", (tmp_path / "shared").as_uri())
    code, out, err = doit(a, {})
    assert code == 0, out + err
    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert sum(server.attempts.values()) == len(LINES)
    assert not [t for t in ran(out) if t.split(":")[0] in ("voice", "section", "mix")], ran(out)
    # 3 lines, the section's pre-mix and the mix, of 6 asked for: the section's SFX bus is not
    # there (no SFX)
    assert "remote cache: 5 of 6 missing objects downloaded" in out and "1 not there" in out
    assert built_files(b) == built_files(a)
    # every object of A's cache but its master: B publishes A's master files instead of mastering
    from mixdown.loader import load_show

    master_key = load_show(a).plan.mix_named("news").master_key
    mastered = sorted(p.name for p in (a / "cache" / "objects").rglob(f"{master_key}.*"))
    assert mastered == [f"{master_key}.json", f"{master_key}.wav"]
    assert sorted(p.name for p in (b / "cache" / "objects").rglob("*.*")) == sorted(
        p.name for p in (a / "cache" / "objects").rglob("*.*") if p.name not in mastered
    )


def test_without_a_remote_nothing_of_fsspec_is_imported(clones: tuple[Path, Path]) -> None:
    a, _ = clones
    code = (
        "import sys; from mixdown.loader import load_show; from mixdown.actions.tasks import task_dicts;"
        f"s = load_show({str(a)!r}); task_dicts(s.plan, s.context, cached=set());"
        "assert s.context.remote is None; print(sorted(m for m in sys.modules if 'fsspec' in m or 's3fs' in m))"
    )
    env = {k: v for k, v in os.environ.items() if k != "MIXDOWN_REMOTE"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def mixdown(root: Path, *args: str) -> tuple[int, str, str]:
    import io
    from contextlib import redirect_stderr, redirect_stdout

    from mixdown.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([*args, "-d", str(root)])
    return code, out.getvalue(), err.getvalue()


def test_push_pull_and_status(
    clones: tuple[Path, Path], server: FakeSpeechServer, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = clones
    code, out, err = doit(a, {})  # built with no remote: nothing shared yet
    assert code == 0, out + err
    monkeypatch.setenv("MIXDOWN_REMOTE", s3.url)
    code, out, _ = mixdown(a, "status")
    assert code == 0
    assert out.splitlines()[:3] == [
        f'3 objects shared ([cache] share = "assets") with {s3.url}',
        "missing locally: 0",
        "missing remotely: 3",
    ]
    assert out.splitlines()[3:] == [f"  voice:news/main/{n}" for n in range(3)] + ["stale in mixdown.lock: 0"]
    code, out, _ = mixdown(a, "push")
    assert code == 0 and out.startswith("pushed 3 objects (") and "0 there already, 0 not built here" in out
    assert mixdown(a, "push")[1].startswith("pushed 0 objects")
    code, out, _ = mixdown(b, "status")
    assert out.splitlines()[1:6] == [
        "missing locally: 3",
        *[f"  voice:news/main/{n}" for n in range(3)],
        "missing remotely: 0",
    ]
    assert out.splitlines()[6].startswith("stale in mixdown.lock: ")  # b has no lock yet
    code, out, _ = mixdown(b, "pull")
    assert code == 0 and out.startswith("remote cache: 3 of 3 missing objects downloaded")
    assert mixdown(b, "status")[1].splitlines()[1:3] == ["missing locally: 0", "missing remotely: 0"]
    code, out, err = doit(b, {})
    assert code == 0 and sum(server.attempts.values()) == len(LINES)
    assert built_files(b) == built_files(a)
    # the takes are pinned: b's lock, written by its own build, is a's byte for byte
    assert (b / "mixdown.lock").read_bytes() == (a / "mixdown.lock").read_bytes()
    assert mixdown(b, "status")[1].splitlines()[-1] == "stale in mixdown.lock: 0"


def test_remote_commands_need_a_remote(clones: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIXDOWN_REMOTE", raising=False)
    code, out, err = mixdown(clones[0], "push")
    assert code == 2 and err.count("\n") == 1 and "no remote cache: set [cache] remote" in err


def test_a_corrupt_remote_line_is_reported_rendered_again_and_replaced(
    clones: tuple[Path, Path], server: FakeSpeechServer, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixdown.loader import load_show

    a, b = clones
    monkeypatch.setenv("MIXDOWN_REMOTE", s3.url)
    assert doit(a, {})[0] == 0
    asset = next(x for x in load_show(a).plan.assets.values() if x.task == "voice:news/main/1")
    name = f"cache/objects/{asset.key[:2]}/{asset.key}.wav"
    client = s3.client()
    body = client.get_object(Bucket=s3.bucket, Key=name)["Body"].read()
    client.put_object(Bucket=s3.bucket, Key=name, Body=body[: len(body) // 3])  # truncated on the remote
    code, out, err = doit(b, {})
    assert code == 0, out + err
    lines = [line for line in (out + err).splitlines() if "corrupt" in line and "remote copy" in line]
    assert len(lines) == 1 and lines[0].startswith(f"voice:news/main/1: the remote copy of {asset.key[:12]}")
    assert [t for t in ran(out) if t.startswith("voice:")] == ["voice:news/main/1"]
    assert sum(server.attempts.values()) == len(LINES) + 1
    assert "remote cache: uploaded 1 objects" in out
    replaced = client.get_object(Bucket=s3.bucket, Key=name)["Body"].read()
    assert replaced == (b / "cache" / "objects" / asset.key[:2] / f"{asset.key}.wav").read_bytes()
