"""The ``openai`` renderer against a fake of ``POST /v1/audio/speech`` (no network)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import RendererUnavailable, RenderFailed
from mixdown.renderers import BUILTINS, Registry, RenderRequest
from mixdown.renderers.cloud.openai import VOICES, OpenAI

KEY = "test-key-123"
TEXT = "Good evening, and welcome to the show."  # 38 characters: 0.76–43 s is plausible
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def tone(seconds: float, sr: int = 24000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def pcm_bytes(seconds: float) -> bytes:
    return (tone(seconds) * 32767).astype("<i2").tobytes()


def wav_bytes(seconds: float, sr: int = 24000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, tone(seconds, sr), sr, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def error(status: int, message: str, type_: str, code: str | None, **headers: str) -> httpx.Response:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return httpx.Response(status, json=body, headers={"x-request-id": f"req_err{status}", **headers})


def audio(content: bytes, content_type: str = "audio/pcm", request_id: str = "req_abc123") -> httpx.Response:
    headers = {
        "content-type": content_type,
        "x-request-id": request_id,
        "x-ratelimit-limit-requests": "500",
        "x-ratelimit-remaining-requests": "499",
        "x-ratelimit-reset-requests": "120ms",
    }
    return httpx.Response(200, content=content, headers=headers)


class Fake:
    """Checks each request exactly as the real endpoint would, then answers from a script."""

    def __init__(self, *answers: Handler | httpx.Response) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.scheme == "https" and request.url.host == "api.openai.com"
        assert request.url.path == "/v1/audio/speech" and not request.url.query
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["accept"] == "application/octet-stream"
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        assert isinstance(body["input"], str) and 0 < len(body["input"]) <= 4096
        assert {"model", "voice", "input", "response_format"} <= set(body)
        self.bodies.append(body)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def renderer(self) -> OpenAI:
        return OpenAI(transport=httpx.MockTransport(self), sleep=self.sleeps.append)


def voice(text: str = TEXT, target: str = "voice:anna/0", **params: Any) -> RenderRequest:
    return RenderRequest(
        "voice", {"model": "gpt-4o-mini-tts", "voice": "coral", **params}, text=text, target=target
    )


def test_registered_and_described() -> None:
    assert BUILTINS["openai"][0] == "mixdown.renderers.cloud.openai:OpenAI"
    assert Registry().cls("openai") is OpenAI
    assert OpenAI.kinds == {"voice"} and OpenAI.max_chars == 4096 and OpenAI.text_limit({}) == 4096
    assert OpenAI.provider.key_env == "OPENAI_API_KEY" and OpenAI.provider.concurrency == 4
    assert OpenAI.provider.timeout == 600.0


def test_pcm_happy_path(key: str) -> None:
    fake = Fake(audio(pcm_bytes(2.5)))
    result = fake.renderer().render(voice(instructions="Warm and unhurried.", speed=1.25))
    assert fake.bodies == [
        {
            "model": "gpt-4o-mini-tts",
            "voice": "coral",
            "input": TEXT,
            "response_format": "pcm",
            "speed": 1.25,
            "instructions": "Warm and unhurried.",
        }
    ]
    assert result.sample_rate == 24000 and result.audio.shape == (60000, 1)
    assert result.audio.dtype == np.float32
    np.testing.assert_allclose(result.audio[:, 0], tone(2.5), atol=1e-4)
    assert result.meta["request_id"] == "req_abc123"
    assert result.meta["response_format"] == "pcm" and result.meta["characters"] == len(TEXT)
    assert KEY not in repr(result.meta) and fake.sleeps == []


def test_wav_path_omits_unset_fields(key: str) -> None:
    fake = Fake(audio(wav_bytes(1.5), "audio/wav", "req_wav"))
    result = fake.renderer().render(voice(model="tts-1-hd", voice="onyx", response_format="wav"))
    assert fake.bodies == [{"model": "tts-1-hd", "voice": "onyx", "input": TEXT, "response_format": "wav"}]
    assert result.sample_rate == 24000 and result.audio.shape == (36000, 1)
    assert result.meta["request_id"] == "req_wav" and result.meta["response_format"] == "wav"


def test_custom_voice_is_sent_as_an_id_object(key: str) -> None:
    fake = Fake(audio(pcm_bytes(2.0)))
    fake.renderer().render(voice(voice="voice_abc123"))
    assert fake.bodies[0]["voice"] == {"id": "voice_abc123"}
    OpenAI.check({"model": "gpt-4o-mini-tts", "voice": "voice_abc123"})


def test_check_names_what_is_allowed() -> None:
    OpenAI.check({"model": "tts-1", "voice": "alloy", "speed": 4, "response_format": "flac"})
    OpenAI.check({"model": "gpt-4o-mini-tts-2025-12-15", "voice": "cedar", "instructions": "Whisper."})
    with pytest.raises(ValueError, match="'instructions' needs a gpt-4o-mini-tts model; tts-1 does not"):
        OpenAI.check({"model": "tts-1", "voice": "alloy", "instructions": "Whisper."})
    with pytest.raises(ValueError, match="'instructions' needs a gpt-4o-mini-tts model; tts-1-hd does not"):
        OpenAI.check({"model": "tts-1-hd", "voice": "alloy", "instructions": "Whisper."})
    OpenAI.check({})  # the defaults: gpt-4o-mini-tts, alloy, pcm
    with pytest.raises(ValueError, match="'model' must be one of tts-1, tts-1-hd, gpt-4o"):
        OpenAI.check({"model": "tts-2", "voice": "alloy"})
    with pytest.raises(ValueError, match="'voice' must be one of alloy, .*'voice_…'"):
        OpenAI.check({"model": "tts-1", "voice": "Alloy"})
    with pytest.raises(ValueError, match="'speed' must be between 0.25 and 4.0"):
        OpenAI.check({"model": "tts-1", "voice": "alloy", "speed": 0.2})
    with pytest.raises(ValueError, match="'response_format' must be one of pcm, wav, flac, mp3, opus, aac"):
        OpenAI.check({"model": "tts-1", "voice": "alloy", "response_format": "ogg"})


def test_defaults_are_sent_and_enter_the_key(key: str) -> None:
    from pathlib import Path

    fake = Fake(audio(pcm_bytes(2.0)))
    fake.renderer().render(RenderRequest("voice", {}, text=TEXT, target="voice:x"))
    assert fake.bodies == [
        {"model": "gpt-4o-mini-tts", "voice": "alloy", "input": TEXT, "response_format": "pcm"}
    ]
    assert OpenAI.key_params({}, Path(".")) == OpenAI.key_params(
        {"model": "gpt-4o-mini-tts", "voice": "alloy", "response_format": "pcm"}, Path(".")
    )


def test_voices_are_the_documented_built_ins() -> None:
    listed = OpenAI().voices()
    assert [v["id"] for v in listed] == list(VOICES) and len(listed) == 13
    assert listed[0] == {"id": "alloy", "name": "Alloy", "description": "built-in"}


def test_insufficient_quota_is_not_retried(key: str) -> None:
    fake = Fake(
        error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        )
    )
    with pytest.raises(
        RenderFailed, match=r"voice:anna/0: openai refused \(HTTP 429\): exhausted quota"
    ) as err:
        fake.renderer().render(voice())
    assert "billing" in str(err.value)
    assert len(fake.bodies) == 1 and fake.sleeps == []


def test_rate_limit_waits_as_asked_then_succeeds(key: str) -> None:
    limited = error(
        429,
        "Rate limit reached for tts-1 in organization org-x on requests per min (RPM): Limit 3, Used 3.",
        "requests",
        "rate_limit_exceeded",
        **{"retry-after-ms": "1500", "retry-after": "2"},
    )
    fake = Fake(limited, audio(pcm_bytes(2.0)))
    result = fake.renderer().render(voice())
    assert fake.sleeps == [1.5] and len(fake.bodies) == 2
    assert fake.bodies[0] == fake.bodies[1] and result.meta["request_id"] == "req_abc123"


def test_server_errors_are_retried_with_backoff(key: str) -> None:
    boom = error(500, "The server had an error while processing your request.", "server_error", None)
    fake = Fake(boom, boom, audio(pcm_bytes(2.0)))
    result = fake.renderer().render(voice())
    assert len(fake.bodies) == 3 and len(fake.sleeps) == 2
    assert 0.5 <= fake.sleeps[0] <= 1.0 and 1.0 <= fake.sleeps[1] <= 2.0  # full jitter, doubled
    assert len(result.audio) == 48000


def test_server_errors_give_up_after_the_retries(key: str) -> None:
    fake = Fake(error(503, "Service unavailable.", "server_error", None))
    with pytest.raises(RenderFailed, match="openai failed after 5 attempts: HTTP 503"):
        fake.renderer().render(voice())
    assert len(fake.bodies) == 5 and len(fake.sleeps) == 4


def test_should_retry_false_is_a_refusal(key: str) -> None:
    fake = Fake(error(500, "Do not retry this.", "server_error", None, **{"x-should-retry": "false"}))
    with pytest.raises(RenderFailed, match="x-should-retry: false"):
        fake.renderer().render(voice())
    assert len(fake.bodies) == 1 and fake.sleeps == []


@pytest.mark.parametrize("echo", [False, True])
def test_invalid_key_names_the_variable_never_the_key(key: str, echo: bool) -> None:
    shown = KEY if echo else "test-***-123"
    fake = Fake(
        error(
            401,
            f"Incorrect API key provided: {shown}. You can find your API key at https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )
    )
    with pytest.raises(
        RenderFailed, match=r"refused \(HTTP 401\): invalid API key: check OPENAI_API_KEY"
    ) as err:
        fake.renderer().render(voice())
    assert KEY not in str(err.value) and len(fake.bodies) == 1 and fake.sleeps == []


@pytest.mark.parametrize(
    ("content", "content_type", "fmt", "says"),
    [
        (
            b'{"error": null, "note": "not audio"}',
            "application/json",
            "pcm",
            "was application/json, not audio",
        ),
        (b"<html><body>Gateway</body></html>", "text/html", "wav", "was text/html, not audio"),
        (b'{"oops": 1}', "application/octet-stream", "wav", "was not audio"),
        (b"RIFF\x00\x00garbage", "audio/wav", "wav", "did not decode as audio"),
        (b"", "audio/pcm", "pcm", "was empty"),
    ],
)
def test_non_audio_success_bodies_are_refused(
    key: str, content: bytes, content_type: str, fmt: str, says: str
) -> None:
    fake = Fake(audio(content, content_type))
    with pytest.raises(RenderFailed, match=f"voice:anna/0: the response {says}.*nothing was cached"):
        fake.renderer().render(voice(response_format=fmt))


def test_odd_length_pcm_is_refused(key: str) -> None:
    fake = Fake(audio(pcm_bytes(2.0) + b"\x01"))
    with pytest.raises(RenderFailed, match=r"not whole 16-bit PCM frames \(96001 bytes\)"):
        fake.renderer().render(voice())


def test_truncated_audio_is_refused(key: str) -> None:
    fake = Fake(audio(pcm_bytes(0.2)))
    with pytest.raises(RenderFailed, match=r"got 0.20 s of audio, expected 0.8–43.0 s \(truncated\?\)"):
        fake.renderer().render(voice())


def test_missing_key_is_unavailable_before_any_request() -> None:
    fake = Fake(audio(pcm_bytes(2.0)))
    with pytest.raises(
        RendererUnavailable, match="the 'openai' renderer needs an API key: set OPENAI_API_KEY"
    ):
        fake.renderer().render(voice())
    assert fake.bodies == []


def test_billing_counts_characters() -> None:
    assert OpenAI.billing(voice()) == f"{len(TEXT)} characters"
