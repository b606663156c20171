"""The AudioStack renderer against a fake api.audio (httpx.MockTransport, no network)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import RendererUnavailable, RenderFailed
from mixdown.renderers import Registry, RenderRequest
from mixdown.renderers.cloud.audiostack import AudioStack, script_name

KEY = "test-key-123"
API = "v2.api.audio"
FILES = "files.example.invalid"
TEXT = 'Tom & Jerry <live> say "hi" at 5 > 4.'


def wav_bytes(seconds: float = 1.5, sr: int = 22050) -> bytes:
    t = np.arange(int(seconds * sr)) / sr
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


class FakeAudioStack:
    """Script → TTS (202 ``pending`` times, then 200) → signed WAV URL, checking every request."""

    def __init__(self, *, pending: int = 3, audio: bytes | None = None, credits: float | None = 2.5) -> None:
        self.pending = pending
        self.audio = wav_bytes() if audio is None else audio
        self.credits = credits
        self.requests: list[tuple[str, str]] = []
        self.polls = 0
        self.script_errors: list[int] = []  # statuses to answer the script POST with first

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, str(request.url)))
        assert request.headers["x-api-key"] == KEY
        assert "authorization" not in request.headers
        route = (request.method, request.url.host, request.url.path)
        if route == ("POST", API, "/content/script"):
            if self.script_errors:
                return httpx.Response(self.script_errors.pop(0), json={"message": "Internal server error"})
            body = json.loads(request.content)
            assert body == {
                "scriptText": '<as:section name="main">Tom &amp; Jerry &lt;live&gt; say "hi" at 5 &gt; 4.</as:section>',
                "projectName": "mixdown",
                "moduleName": "mixdown",
                "scriptName": script_name(TEXT),
            }
            return httpx.Response(
                200,
                json={
                    "data": {"scriptId": "scr-1", "scriptName": body["scriptName"]},
                    "message": "Script created",
                },
            )
        if route == ("POST", API, "/speech/tts"):
            assert json.loads(request.content) == {"scriptId": "scr-1", "voice": "sara", "speed": 1.1}
            return httpx.Response(202, json={"data": {"speechId": "sp-9"}, "message": "Speech in progress"})
        if route == ("GET", API, "/speech/tts/sp-9"):
            self.polls += 1
            if self.polls <= self.pending:
                return httpx.Response(202, json={"data": {"speechId": "sp-9"}, "message": "in progress"})
            done: dict[str, Any] = {
                "data": {
                    "speechId": "sp-9",
                    "sections": [
                        {
                            "sectionName": "main",
                            "url": f"https://{FILES}/sp-9/main.wav?sig=abc",
                            "audience": {},
                        }
                    ],
                }
            }
            if self.credits is not None:
                done["meta"] = {"creditsUsed": self.credits}
            return httpx.Response(200, json=done)
        if route == ("GET", FILES, "/sp-9/main.wav"):
            assert request.url.params["sig"] == "abc"
            return httpx.Response(200, content=self.audio, headers={"content-type": "audio/wav"})
        raise AssertionError(f"unexpected request {request.method} {request.url}")


def renderer(fake: Any, sleeps: list[float], **kwargs: Any) -> AudioStack:
    return AudioStack(transport=httpx.MockTransport(fake), sleep=sleeps.append, **kwargs)


def line(text: str = TEXT, **params: Any) -> RenderRequest:
    return RenderRequest(
        "voice", {"voice": "sara", "speed": 1.1, **params}, text=text, target="voice:show/x/0"
    )


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOSTACK_API_KEY", KEY)


def test_script_tts_poll_download(key: None) -> None:
    fake, sleeps = FakeAudioStack(pending=3), []
    result = renderer(fake, sleeps).render(line())
    assert fake.requests == [
        ("POST", f"https://{API}/content/script"),
        ("POST", f"https://{API}/speech/tts"),
        *[("GET", f"https://{API}/speech/tts/sp-9")] * 4,
        ("GET", f"https://{FILES}/sp-9/main.wav?sig=abc"),
    ]
    assert fake.polls == 4
    assert sleeps == [0.5, 0.75, 1.125, 1.6875]  # one wait before each poll, growing ×1.5
    assert result.sample_rate == 22050 and result.audio.shape == (int(1.5 * 22050), 1)
    assert result.audio.dtype == np.float32 and 0.25 < np.abs(result.audio).max() < 0.35
    assert result.meta == {"scriptId": "scr-1", "speechId": "sp-9", "creditsUsed": 2.5}
    assert KEY not in json.dumps(result.meta)


def test_backoff_is_capped_at_five_seconds(key: None) -> None:
    fake, sleeps = FakeAudioStack(pending=9, credits=None), []
    result = renderer(fake, sleeps).render(line())
    assert fake.polls == 10 and max(sleeps) == 5.0 and sleeps[-3:] == [5.0, 5.0, 5.0]
    assert all(a <= b for a, b in zip(sleeps, sleeps[1:], strict=False))
    assert "creditsUsed" not in result.meta


def test_script_name_is_stable_and_short() -> None:
    assert script_name(TEXT) == script_name(TEXT) != script_name(TEXT + " ")
    assert len(script_name(TEXT)) == 16


def test_bad_key_is_refused_at_once_naming_the_variable(key: None) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            403, json={"message": f"Forbidden: unknown key {KEY}", "errors": ["invalid key"]}
        )

    with pytest.raises(RenderFailed) as err:
        renderer(handler, []).render(line())
    message = str(err.value)
    assert message.startswith("voice:show/x/0: audiostack refused (HTTP 403)")
    assert "AUDIOSTACK_API_KEY" in message and KEY not in message and "***" in message
    assert len(calls) == 1


def test_missing_key_names_the_variable() -> None:
    with pytest.raises(RendererUnavailable, match="set AUDIOSTACK_API_KEY"):
        renderer(FakeAudioStack(), []).render(line())


def test_server_error_on_script_is_retried(key: None) -> None:
    fake, sleeps = FakeAudioStack(pending=1), []
    fake.script_errors = [500]
    result = renderer(fake, sleeps).render(line())
    assert [r for r in fake.requests if r[1].endswith("/content/script")] == [
        ("POST", f"https://{API}/content/script")
    ] * 2
    assert len(sleeps) == 3 and 0.5 <= sleeps[0] <= 1.0  # the client's backoff, then two poll waits
    assert sleeps[1:] == [0.5, 0.75]
    assert result.meta["speechId"] == "sp-9"


def test_validation_error_is_not_retried(key: None) -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(
            400, json={"message": "Validation failed", "details": "scriptText is malformed"}
        )

    with pytest.raises(
        RenderFailed, match=r"refused \(HTTP 400\): .*Validation failed.*scriptText is malformed"
    ):
        renderer(handler, []).render(line())
    assert len(calls) == 1


def test_poll_gives_up_after_the_timeout(key: None) -> None:
    now = [100.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    fake = FakeAudioStack(pending=10**6)
    settings = replace(AudioStack.provider, timeout=10.0)
    voice = AudioStack(settings, transport=httpx.MockTransport(fake), sleep=sleep, clock=lambda: now[0])
    with pytest.raises(
        RenderFailed, match=r"voice:show/x/0: AudioStack did not finish within 10 s \(speechId sp-9\)"
    ):
        voice.render(line())
    assert (
        sum(sleeps) == pytest.approx(10.0) and sleeps[-1] < 1.5 * sleeps[-2]
    )  # the last wait is cut to the limit
    assert fake.polls == len(sleeps)
    assert not any(url.startswith(f"https://{FILES}") for _, url in fake.requests)


def test_non_audio_download_is_refused(key: None) -> None:
    xml = b'<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>'
    with pytest.raises(RenderFailed, match="the AudioStack download was not audio"):
        renderer(FakeAudioStack(pending=0, audio=xml), []).render(line())
    with pytest.raises(RenderFailed, match="did not decode as audio"):
        renderer(FakeAudioStack(pending=0, audio=b"RIFF\x00\x00garbage"), []).render(line())


def test_audio_too_short_for_the_text_is_refused(key: None) -> None:
    fake = FakeAudioStack(pending=0, audio=wav_bytes(seconds=0.1))
    with pytest.raises(RenderFailed, match=r"got 0.10 s of audio, expected .* \(truncated\?\)"):
        renderer(fake, []).render(line())


def test_finished_speech_without_url_is_refused(key: None) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/content/script":
            return httpx.Response(200, json={"data": {"scriptId": "scr-1"}})
        if request.url.path == "/speech/tts":
            return httpx.Response(202, json={"data": {"speechId": "sp-9"}})
        return httpx.Response(200, json={"data": {"speechId": "sp-9", "sections": []}})

    with pytest.raises(RenderFailed, match=r"no data.sections\[0\].url"):
        renderer(handler, []).render(line())


@pytest.mark.parametrize(
    "payload",
    [
        {
            "data": {
                "voices": [{"alias": "sara", "provider": "azure", "language": "English", "gender": "female"}]
            }
        },
        {
            "data": [
                {"voice": "sara", "provider": "azure", "language": "English", "gender": "female"},
                {"x": 1},
            ]
        },
    ],
    ids=["data.voices", "data-list"],
)
def test_voices_in_both_shapes(key: None, payload: dict[str, Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert (request.method, request.url.path, request.headers["x-api-key"]) == (
            "GET",
            "/speech/voice",
            KEY,
        )
        return httpx.Response(200, json=payload)

    assert renderer(handler, []).voices() == [
        {"id": "sara", "name": "sara", "description": "azure, English, female"}
    ]


def test_voices_without_a_list_fail(key: None) -> None:
    handler = lambda request: httpx.Response(200, json={"data": {"count": 0}})  # noqa: E731
    with pytest.raises(RenderFailed, match="no voice list"):
        renderer(handler, []).voices()


def test_check_and_registration(tmp_path: Path) -> None:
    AudioStack.check({"voice": "sara", "speed": 1.5})
    with pytest.raises(ValueError, match="'voice' is required"):
        AudioStack.check({"speed": 1.0})
    with pytest.raises(ValueError, match="'speed' must be between 0.5 and 2"):
        AudioStack.check({"voice": "sara", "speed": 3})
    assert AudioStack.kinds == {"voice"} and AudioStack.text_limit({}) == 5000
    assert "poll_interval" not in AudioStack.params
    assert AudioStack.billing(line("Hello.")) == "6 characters"
    assert Registry(tmp_path).cls("audiostack") is AudioStack
