"""A show rendered through doit's thread pool against a misbehaving fake provider."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from .fakeserver import KEY, FakeSpeechServer, elevenlabs_show
from .test_build import doit, ran

LINES = 20
#: the client settings the faults are tried with: short timeouts, quick retries
CLIENT = "concurrency = 4\ntimeout = 1.0\nmax_retries = 2\nbackoff = 0.05"


def line(n: int) -> str:
    return f"This is line number {n} of the news, read aloud for the test."


@pytest.fixture
def server() -> FakeSpeechServer:
    with FakeSpeechServer(limit=4, stall_seconds=1.6) as fake:
        yield fake


@pytest.fixture
def show(tmp_path: Path, server: FakeSpeechServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    (tmp_path / "stanzas").mkdir()
    (tmp_path / "project.toml").write_text(elevenlabs_show(server.url, CLIENT))
    (tmp_path / "stanzas" / "news.j2").write_text(
        "## main\n" + "\n\n".join(line(n) for n in range(LINES)) + "\n"
    )
    return tmp_path


def test_faults_fail_only_their_targets_and_a_rerun_renders_only_what_is_missing(
    show: Path, server: FakeSpeechServer
) -> None:
    server.faults = {
        line(3): ["429"],  # retried after retry-after-ms
        line(15): ["429-retry-after"],  # retried after Retry-After: 1 (seconds)
        line(5): ["500", "500"],  # retried twice, third attempt succeeds
        line(7): ["stall"],  # times out once
        line(9): ["truncated"] * 3,  # every attempt cut short: fails after 3 attempts
        line(11): ["html"] * 3,  # an HTML page with status 200: never cached
        line(13): ["quota"] * 3,  # quota_exceeded as 401: not retried
    }
    code, out, err = doit(show, {}, "-n", "8", "-P", "thread", "--continue")
    report = out + err
    assert code != 0
    failed = {"voice:news/main/9", "voice:news/main/11", "voice:news/main/13"}
    for target in failed:
        assert f"TaskFailed - taskid:{target}" in report
    assert "quota" in report and "not audio" in report and "failed after 3 attempts" in report
    assert server.attempts[line(13)] == 1 and server.attempts[line(9)] == 3
    assert server.attempts[line(3)] == 2 and server.attempts[line(5)] == 3 and server.attempts[line(7)] == 2
    assert server.attempts[line(15)] == 2
    assert KEY not in report

    cache = show / "cache" / "objects"
    objects = list(cache.rglob("*.wav"))
    assert len(objects) == LINES - len(failed)
    for path in objects:  # every object in the store is whole, decodable audio
        info = sf.info(str(path))
        assert info.frames > 0.5 * info.samplerate
    assert not list(cache.rglob("*.tmp"))
    assert all(KEY not in p.read_text() for p in cache.rglob("*.json"))
    assert server.most_active <= 4 and server.limit_refusals == 0

    server.faults = {}
    before = server.attempts.copy()
    code, out, err = doit(show, {}, "-n", "8", "-P", "thread")
    assert code == 0, out + err
    assert server.attempts - before == {line(n): 1 for n in (9, 11, 13)}
    assert sorted(t for t in ran(out) if t.startswith("voice:")) == sorted(failed)
    assert (show / "build" / "news.wav").is_file()
    assert not (show / ".mixdown" / "doit.sqlite3").read_bytes().count(KEY.encode())


def test_long_paragraphs_are_split_to_the_providers_limit_before_any_call(tmp_path: Path) -> None:
    from mixdown.loader import load_show

    sentence = "The committee met again on Tuesday to discuss the budget for the coming year. "
    paragraph = (sentence * 80).strip()  # about 6,300 characters: over OpenAI's 4,096
    (tmp_path / "stanzas").mkdir()
    (tmp_path / "stanzas" / "long.j2").write_text("## all\n" + paragraph + "\n")
    (tmp_path / "project.toml").write_text(
        '[voices.v]\nrenderer = "openai"\n\n[scripts.long]\ntemplate = "stanzas/long.j2"\n'
    )
    pieces = [a.text for a in load_show(tmp_path).plan.assets.values()]
    assert len(pieces) == 2 and all(len(p) <= 4096 for p in pieces)
    assert all(p.endswith(".") for p in pieces) and " ".join(pieces) == paragraph
