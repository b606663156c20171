"""The (unofficial, reseller-contract) Suno renderer against a fake sunoapi.org, no network."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import RendererUnavailable, RenderFailed
from mixdown.renderers import Registry, RenderRequest
from mixdown.renderers.cloud.suno import CALLBACK, SEGMENTS, Suno, generate_body

KEY = "test-key-123"
API = "api.sunoapi.org"
FILES = "files.example.invalid"
BED = {"prompt": "warm lo-fi piano bed, 80 bpm"}


@cache  # encoding MP3 is slow; the fixtures never change
def mp3_bytes(seconds: float = 6.0, sr: int = 44100) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    buf = io.BytesIO()
    sf.write(buf, np.stack([tone, tone], axis=1).astype(np.float32), sr, format="MP3")
    return buf.getvalue()


def clip(n: int, duration: float) -> dict[str, Any]:
    return {
        "id": f"clip-{n}",
        "audioUrl": f"https://{FILES}/clip-{n}.mp3",
        "streamAudioUrl": f"https://{FILES}/stream/clip-{n}",
        "imageUrl": f"https://{FILES}/clip-{n}.jpeg",
        "prompt": "",
        "modelName": "chirp-v4-5",
        "title": "",
        "tags": "lo-fi",
        "createTime": "2025-01-01 00:00:00",
        "duration": duration,
    }


class FakeReseller:
    """Submit → taskId; record-info walks through ``statuses``; serves the MP3 files."""

    def __init__(
        self,
        statuses: tuple[str, ...] = ("PENDING", "TEXT_SUCCESS", "FIRST_SUCCESS", "SUCCESS"),
        *,
        submit_codes: tuple[tuple[int, str], ...] = (),
        audio: bytes | None = None,
        expect: dict[str, Any] | None = None,
    ) -> None:
        self.statuses = list(statuses)
        self.submit_codes = list(submit_codes)  # body codes to answer the submit with first
        self.audio = mp3_bytes() if audio is None else audio
        self.expect = expect
        self.requests: list[tuple[str, str]] = []
        self.bodies: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url)))
        if request.url.host == FILES:
            assert request.method == "GET" and "authorization" not in request.headers  # the key stays home
            return httpx.Response(200, content=self.audio, headers={"content-type": "audio/mpeg"})
        assert request.url.host == API and request.headers["authorization"] == f"Bearer {KEY}"
        if (request.method, request.url.path) == ("POST", "/api/v1/generate"):
            body = json.loads(request.content)
            self.bodies.append(body)
            if self.expect is not None:
                assert body == self.expect
            if self.submit_codes:
                code, msg = self.submit_codes.pop(0)
                return httpx.Response(200, json={"code": code, "msg": msg, "data": None})
            return httpx.Response(200, json={"code": 200, "msg": "success", "data": {"taskId": "task-7"}})
        if (request.method, request.url.path) == ("GET", "/api/v1/generate/record-info"):
            assert dict(request.url.params) == {"taskId": "task-7"}
            status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
            failed = status.endswith("FAILED")
            clips = [clip(1, 6.0), clip(2, 7.5)] if status in ("SUCCESS", "CALLBACK_EXCEPTION") else []
            data = {
                "taskId": "task-7",
                "status": status,
                "type": "GENERATE",
                "param": json.dumps(self.bodies[-1]),
                "response": {"taskId": "task-7", "sunoData": clips},
                "errorCode": 501 if failed else None,
                "errorMessage": "Audio generation failed: model overloaded" if failed else None,
            }
            return httpx.Response(200, json={"code": 200, "msg": "success", "data": data})
        raise AssertionError(f"unexpected request {request.method} {request.url}")


def renderer(fake: Callable[[httpx.Request], httpx.Response], sleeps: list[float], **kwargs: Any) -> Suno:
    return Suno(transport=httpx.MockTransport(fake), sleep=sleeps.append, **kwargs)


def segment(name: str | None = "main", **params: Any) -> RenderRequest:
    return RenderRequest("music", {**BED, **params}, segment=name, target=f"music:bed/{name}")


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUNO_API_KEY", KEY)


def test_submit_poll_through_intermediate_statuses_download(key: None) -> None:
    expected = {
        "customMode": False,
        "instrumental": True,
        "prompt": f"warm lo-fi piano bed, 80 bpm; {SEGMENTS['main'][1]}",
        "model": "V4_5",
        "callBackUrl": CALLBACK,
    }
    fake, sleeps = FakeReseller(expect=expected), []
    result = renderer(fake, sleeps).render(segment("main"))
    record = f"https://{API}/api/v1/generate/record-info?taskId=task-7"
    assert fake.requests == [
        ("POST", f"https://{API}/api/v1/generate"),
        *[("GET", record)] * 4,
        ("GET", f"https://{FILES}/clip-1.mp3"),
    ]
    assert sleeps == [2.0, 3.0, 4.5, 6.75]
    assert result.sample_rate == 44100 and result.audio.shape[1] == 2
    assert 5.9 < len(result.audio) / result.sample_rate < 6.2  # MP3 adds encoder padding
    assert result.meta == {
        "contract": "unofficial reseller",
        "taskId": "task-7",
        "clip": "clip-1",
        "clip_ids": ["clip-1", "clip-2"],
        "clip_durations": [6.0, 7.5],
        "model": "chirp-v4-5",
    }


def test_poll_backoff_is_capped_and_bounded_by_the_timeout(key: None) -> None:
    now = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    fake = FakeReseller(("PENDING",))
    settings = replace(Suno.provider, timeout=60.0)
    suno = Suno(settings, transport=httpx.MockTransport(fake), sleep=sleep, clock=lambda: now[0])
    with pytest.raises(
        RenderFailed, match=r"music:bed/main: Suno did not finish within 60 s \(taskId task-7\)"
    ):
        suno.render(segment())
    assert sum(sleeps) == pytest.approx(60.0) and max(sleeps) == 15.0
    assert sleeps[:4] == [2.0, 3.0, 4.5, 6.75]


def test_error_in_http_200_fails_with_the_message(key: None) -> None:
    fake, sleeps = FakeReseller(submit_codes=((400, "Please enter callBackUrl."),)), []
    with pytest.raises(
        RenderFailed, match=r"music:bed/main: suno refused \(code 400\): Please enter callBackUrl\.$"
    ):
        renderer(fake, sleeps).render(segment())
    assert len(fake.requests) == 1 and sleeps == []


def test_too_frequent_is_retried(key: None) -> None:
    busy = (430, "Your call frequency is too high. Please try again later.")
    fake, sleeps = FakeReseller(("SUCCESS",), submit_codes=(busy, busy)), []
    result = renderer(fake, sleeps).render(segment())
    assert [m for m, url in fake.requests if url.endswith("/generate")] == ["POST"] * 3
    assert sleeps[:2] == [1.0, 2.0]  # submit backoff, then the first poll wait
    assert result.meta["taskId"] == "task-7"


def test_too_frequent_gives_up_after_max_retries(key: None) -> None:
    busy = (430, "Your call frequency is too high.")
    fake, sleeps = FakeReseller(submit_codes=(busy,) * 10), []
    suno = Suno(
        replace(Suno.provider, max_retries=2), transport=httpx.MockTransport(fake), sleep=sleeps.append
    )
    with pytest.raises(
        RenderFailed, match=r"suno refused after 3 attempts \(code 430\): Your call frequency"
    ):
        suno.render(segment())
    assert len(fake.requests) == 3 and sleeps == [1.0, 2.0]


def test_insufficient_credits_code_429_is_not_retried(key: None) -> None:
    # In the resellers' documentation body code 429 means "insufficient credits": retrying cannot help.
    fake, sleeps = FakeReseller(submit_codes=((429, "Insufficient credits"),)), []
    with pytest.raises(RenderFailed, match=r"\(code 429\): Insufficient credits"):
        renderer(fake, sleeps).render(segment())
    assert len(fake.requests) == 1 and sleeps == []


def test_bad_key_in_body_names_the_variable(key: None) -> None:
    fake = FakeReseller(submit_codes=((401, f"Unauthorized token {KEY}"),))
    with pytest.raises(RenderFailed) as err:
        renderer(fake, []).render(segment())
    assert "check SUNO_API_KEY" in str(err.value) and KEY not in str(err.value)


def test_bad_key_over_http_is_refused_at_once(key: None) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"code": 401, "msg": "Unauthorized"})

    with pytest.raises(RenderFailed, match=r"suno refused \(HTTP 401\): invalid API key: check SUNO_API_KEY"):
        renderer(handler, []).render(segment())
    assert len(calls) == 1


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(RendererUnavailable, match="set SUNO_API_KEY"):
        renderer(FakeReseller(), []).render(segment())


def test_generation_failure_names_status_and_error_code(key: None) -> None:
    fake = FakeReseller(("PENDING", "TEXT_SUCCESS", "GENERATE_AUDIO_FAILED"))
    with pytest.raises(RenderFailed) as err:
        renderer(fake, []).render(segment())
    assert str(err.value) == (
        "music:bed/main: Suno task task-7 failed: GENERATE_AUDIO_FAILED (errorCode 501): "
        "Audio generation failed: model overloaded; nothing was cached"
    )
    assert not any(FILES in url for _, url in fake.requests)


def test_sensitive_word_error_is_fatal(key: None) -> None:
    with pytest.raises(RenderFailed, match="failed: SENSITIVE_WORD_ERROR"):
        renderer(FakeReseller(("PENDING", "SENSITIVE_WORD_ERROR")), []).render(segment())


def test_callback_exception_with_clips_counts_as_done(key: None) -> None:
    # The callback URL is inert on purpose; a failed callback does not lose finished clips.
    result = renderer(FakeReseller(("PENDING", "CALLBACK_EXCEPTION")), []).render(segment())
    assert result.meta["clip_ids"] == ["clip-1", "clip-2"]


def test_clip_shorter_than_five_seconds_is_refused(key: None) -> None:
    with pytest.raises(RenderFailed, match=r"got [0-9.]+ s of audio from Suno, expected at least 5 s"):
        renderer(FakeReseller(("SUCCESS",), audio=mp3_bytes(seconds=2.0)), []).render(segment())


def test_non_audio_download_is_refused(key: None) -> None:
    page = b"<html><body>404 Not Found</body></html>"
    with pytest.raises(RenderFailed, match="the Suno download was not audio"):
        renderer(FakeReseller(("SUCCESS",), audio=page), []).render(segment())


def test_segments_differ() -> None:
    bodies = {name: generate_body(BED, name) for name in ("intro", "main", "outro")}
    prompts = {b["prompt"] for b in bodies.values()}
    assert len(prompts) == 3 and all(p.startswith(BED["prompt"] + "; ") for p in prompts)
    assert all("style" not in b and "title" not in b for b in bodies.values())  # non-custom: prompt only
    custom = {"custom": True, "style": "lo-fi, piano", "title": "Morning Bed"}
    bodies = {name: generate_body(custom, name) for name in ("intro", "main", "outro")}
    assert [b["title"] for b in bodies.values()] == [
        "Morning Bed (Intro)",
        "Morning Bed (Main)",
        "Morning Bed (Outro)",
    ]
    assert len({b["style"] for b in bodies.values()}) == 3
    assert bodies["intro"] == {
        "customMode": True,
        "instrumental": True,
        "style": f"lo-fi, piano; {SEGMENTS['intro'][1]}",
        "title": "Morning Bed (Intro)",
        "model": "V4_5",
        "callBackUrl": CALLBACK,
    }
    lyrics = {**custom, "instrumental": False, "prompt": "[Verse] la la", "model": "V5"}
    assert generate_body(lyrics, "outro")["prompt"] == "[Verse] la la"  # lyrics are never changed
    with pytest.raises(RenderFailed, match="unknown music segment 'bridge'"):
        generate_body(BED, "bridge", "music:bed/bridge")


def test_segments_reach_the_wire(key: None) -> None:
    fake = FakeReseller(("SUCCESS",))
    suno = renderer(fake, [])
    for name in ("intro", "main", "outro"):
        suno.render(segment(name))
    assert [b["prompt"] for b in fake.bodies] == [
        generate_body(BED, n)["prompt"] for n in ("intro", "main", "outro")
    ]


def test_check_rules() -> None:
    Suno.check(BED)
    Suno.check({"custom": True, "style": "ambient", "title": "Bed"})
    Suno.check(
        {"custom": True, "instrumental": False, "style": "folk", "title": "Song", "prompt": "[Verse] hi"}
    )
    with pytest.raises(ValueError, match="'prompt' is required in non-custom mode"):
        Suno.check({})
    with pytest.raises(
        ValueError, match="'prompt' must be at most 4[0-9][0-9] characters in non-custom mode"
    ):
        Suno.check({"prompt": "x" * 480})
    with pytest.raises(ValueError, match="'style' and 'title' need custom = true"):
        Suno.check({**BED, "style": "jazz"})
    with pytest.raises(ValueError, match="instrumental custom mode needs 'style', 'title'; missing title"):
        Suno.check({"custom": True, "style": "ambient"})
    with pytest.raises(
        ValueError, match="custom mode with vocals needs 'style', 'prompt', 'title'; missing prompt"
    ):
        Suno.check({"custom": True, "instrumental": False, "style": "folk", "title": "Song"})
    with pytest.raises(ValueError, match="'title' must be at most 7[0-9] characters"):
        Suno.check({"custom": True, "style": "ambient", "title": "t" * 80})
    with pytest.raises(ValueError, match="'style' must be at most 1[0-9][0-9] characters for V4"):
        Suno.check({"custom": True, "style": "s" * 200, "title": "Bed", "model": "V4"})
    Suno.check({"custom": True, "style": "s" * 900, "title": "Bed", "model": "V5"})
    with pytest.raises(ValueError, match="'prompt' must be at most 3000 characters for V3_5"):
        Suno.check(
            {
                "custom": True,
                "instrumental": False,
                "style": "a",
                "title": "b",
                "prompt": "l" * 3001,
                "model": "V3_5",
            }
        )
    with pytest.raises(ValueError, match="'model' must be one of V3_5, V4, V4_5, V4_5PLUS, V4_5ALL, V5"):
        Suno.check({**BED, "model": "chirp-v3"})


def test_class_attributes_and_registration(tmp_path: Path) -> None:
    assert Suno.kinds == {"music"} and Suno.params["instrumental"] is bool
    assert Suno.provider.concurrency == 2 and Suno.provider.timeout == 600.0
    assert Suno.billing(segment()) == "one generation (2 clips)"
    assert Registry(tmp_path).cls("suno") is Suno
    import mixdown.renderers.cloud.suno as module

    assert "UNOFFICIAL" in (module.__doc__ or "") and "no official public API" in (module.__doc__ or "")
