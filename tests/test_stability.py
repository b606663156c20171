"""The ``stability`` renderer against a fake of Stable Audio's text-to-audio endpoint (no network)."""

from __future__ import annotations

import base64
import datetime as dt
import email.parser
import email.policy
import email.utils
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
from mixdown.renderers.cloud.stability import SEGMENT_PROMPTS, Stability

KEY = "sk-test-key-456"
PATH = "/v2beta/audio/stable-audio-2/text-to-audio"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STABILITY_API_KEY", KEY)
    return KEY


def stereo(seconds: float, sr: int = 44100) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    left, right = np.sin(2 * np.pi * 110 * t), np.sin(2 * np.pi * 165 * t)
    return (0.25 * np.stack([left, right], axis=1)).astype(np.float32)


def encoded(seconds: float, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, stereo(seconds), 44100, format=fmt, **({"subtype": "PCM_16"} if fmt == "WAV" else {}))
    return buf.getvalue()


def audio(seconds: float, *, seed: int = 1234567, finish: str = "SUCCESS") -> httpx.Response:
    headers = {
        "content-type": "audio/wav",
        "x-request-id": "req-st-1",
        "finish-reason": finish,
        "seed": str(seed),
    }
    return httpx.Response(200, content=encoded(seconds), headers=headers)


def error(status: int, name: str, message: str, **headers: str) -> httpx.Response:
    body = {"id": "a1b2c3d4e5f6", "name": name, "errors": [message]}
    return httpx.Response(status, json=body, headers=headers)


def form(request: httpx.Request) -> dict[str, str]:
    """Parse a multipart/form-data body the way a server would."""
    content_type = request.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    raw = b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + request.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        assert isinstance(name, str) and name not in fields
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        fields[name] = payload.decode()
    return fields


class Fake:
    """Checks each request as Stable Audio would, then answers from a script."""

    def __init__(self, *answers: Handler | httpx.Response) -> None:
        self.answers = list(answers)
        self.forms: list[dict[str, str]] = []
        self.sleeps: list[float] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST"
        assert request.url.scheme == "https" and request.url.host == "api.stability.ai"
        assert request.url.path == PATH and not request.url.query
        assert request.headers["authorization"] == f"Bearer {KEY}"
        assert request.headers["accept"] == "audio/*"
        fields = form(request)  # JSON or urlencoded bodies fail here, as they do for real
        assert fields.pop("none", "") == ""  # the empty part that forces multipart
        assert fields["prompt"] and fields["model"] in ("stable-audio-2.5", "stable-audio-2")
        self.forms.append(fields)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer(request) if callable(answer) else answer

    def renderer(self) -> Stability:
        return Stability(transport=httpx.MockTransport(self), sleep=self.sleeps.append)


def sfx(target: str = "sfx:rain", **params: Any) -> RenderRequest:
    return RenderRequest("sfx", {"prompt": "Rain on a tin roof", "duration": 4, **params}, target=target)


def bed(segment: str | None, **params: Any) -> RenderRequest:
    return RenderRequest(
        "music",
        {"prompt": "Warm lo-fi piano, 80 BPM", "duration": 6, **params},
        segment=segment,
        target=f"music:bed/{segment}",
    )


def test_registered_and_described() -> None:
    assert BUILTINS["stability"][0] == "mixdown.renderers.cloud.stability:Stability"
    assert Registry().cls("stability") is Stability
    assert Stability.kinds == {"sfx", "music"}
    assert Stability.provider.key_env == "STABILITY_API_KEY" and Stability.provider.timeout == 300.0
    assert Stability.billing(sfx()) == "4 s of audio"
    assert Stability.billing(RenderRequest("sfx", {"prompt": "x"})) == "190 s of audio"


def test_multipart_request_and_seed_into_meta(key: str) -> None:
    fake = Fake(audio(4.0, seed=3141592653))
    result = fake.renderer().render(sfx(seed=0, steps=6, cfg_scale=7.5))
    assert fake.forms == [
        {
            "prompt": "Rain on a tin roof",
            "model": "stable-audio-2.5",
            "duration": "4",
            "output_format": "wav",
            "seed": "0",
            "steps": "6",
            "cfg_scale": "7.5",
        }
    ]
    assert result.sample_rate == 44100 and result.audio.shape == (4 * 44100, 2)
    np.testing.assert_allclose(result.audio, stereo(4.0), atol=1e-4)
    assert result.meta["seed"] == 3141592653  # the seed the provider picked, to reproduce the take
    assert result.meta["request_id"] == "req-st-1" and result.meta["finish_reason"] == "SUCCESS"
    assert result.meta["seconds"] == 4.0 and KEY not in repr(result.meta)


def test_minimal_request_sends_defaults_only(key: str) -> None:
    fake = Fake(audio(2.0))
    fake.renderer().render(sfx(duration=2.0, model="stable-audio-2", output_format="mp3"))
    assert fake.forms == [
        {"prompt": "Rain on a tin roof", "model": "stable-audio-2", "duration": "2", "output_format": "mp3"}
    ]


def test_content_filtered_is_refused(key: str) -> None:
    fake = Fake(audio(4.0, finish="CONTENT_FILTERED"))
    with pytest.raises(
        RenderFailed, match="sfx:rain: stability content filtered the output; nothing was cached"
    ):
        fake.renderer().render(sfx())
    assert len(fake.forms) == 1


def test_json_reply_variant(key: str) -> None:
    body = {"audio": base64.b64encode(encoded(4.0)).decode(), "finish_reason": "SUCCESS", "seed": 42}
    fake = Fake(httpx.Response(200, json=body, headers={"x-request-id": "req-json"}))
    result = fake.renderer().render(sfx())
    assert result.audio.shape == (4 * 44100, 2) and result.meta["seed"] == 42
    assert result.meta["request_id"] == "req-json"

    filtered = {**body, "finish_reason": "CONTENT_FILTERED"}
    with pytest.raises(RenderFailed, match="content filtered"):
        Fake(httpx.Response(200, json=filtered)).renderer().render(sfx())
    with pytest.raises(RenderFailed, match="the JSON reply held no base64 'audio'"):
        Fake(httpx.Response(200, json={"finish_reason": "SUCCESS"})).renderer().render(sfx())


def test_out_of_credits_is_not_retried(key: str) -> None:
    fake = Fake(error(402, "payment_required", "You lack sufficient credits to make this request."))
    with pytest.raises(RenderFailed, match=r"sfx:rain: stability refused \(HTTP 402\): out of credits"):
        fake.renderer().render(sfx())
    assert len(fake.forms) == 1 and fake.sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_invalid_key_names_the_variable(key: str, status: int) -> None:
    fake = Fake(error(status, "unauthorized", f"Invalid API key: {KEY}"))
    with pytest.raises(RenderFailed, match="invalid API key: check STABILITY_API_KEY") as err:
        fake.renderer().render(sfx())
    assert KEY not in str(err.value) and len(fake.forms) == 1


def test_moderated_prompt_is_refused(key: str) -> None:
    message = "Your request was flagged by our content moderation system."
    fake = Fake(error(403, "content_moderation", message))
    with pytest.raises(RenderFailed, match=r"\(HTTP 403\): prompt refused by content moderation"):
        fake.renderer().render(sfx())
    assert len(fake.forms) == 1


def test_bad_parameters_are_not_retried(key: str) -> None:
    fake = Fake(error(400, "bad_request", "duration: must be between 1 and 190"))
    with pytest.raises(RenderFailed, match=r"refused \(HTTP 400\): .*must be between 1 and 190"):
        fake.renderer().render(sfx())
    assert len(fake.forms) == 1


def test_rate_limit_with_an_http_date(key: str) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    limited = error(
        429,
        "rate_limit_exceeded",
        "You have exceeded the rate limit of 150 requests within a 10 second period.",
        **{"retry-after": email.utils.format_datetime(when, usegmt=True)},
    )
    fake = Fake(limited, audio(4.0))
    result = fake.renderer().render(sfx())
    assert len(fake.sleeps) == 1 and 1.5 <= fake.sleeps[0] <= 3.5
    assert len(fake.forms) == 2 and fake.forms[0] == fake.forms[1] and len(result.audio) == 4 * 44100


def test_segments_change_the_prompt(key: str) -> None:
    fake = Fake(audio(6.0))
    renderer = fake.renderer()
    for segment in ("intro", "main", "outro"):
        renderer.render(bed(segment))
    prompts = [f["prompt"] for f in fake.forms]
    assert len(set(prompts)) == 3
    for prompt, segment in zip(prompts, ("intro", "main", "outro"), strict=True):
        assert prompt == f"Warm lo-fi piano, 80 BPM. {SEGMENT_PROMPTS[segment]}"
    assert prompts[0].endswith("builds into the main theme.") and "loopable" in prompts[1]
    assert "fades out" in prompts[2]
    renderer.render(bed(None))  # a bed rendered whole keeps its prompt
    assert fake.forms[-1]["prompt"] == "Warm lo-fi piano, 80 BPM"
    renderer.render(sfx())  # SFX never get segment wording
    assert fake.forms[-1]["prompt"] == "Rain on a tin roof"
    with pytest.raises(RenderFailed, match="unknown music segment 'bridge'; use one of intro, main, outro"):
        renderer.render(bed("bridge"))
    assert len(fake.forms) == 5


def test_duration_is_checked_against_the_request(key: str) -> None:
    fake = Fake(audio(1.5))
    with pytest.raises(RenderFailed, match=r"sfx:rain: got 1.50 s of audio, expected 5.0–16.0 s"):
        fake.renderer().render(sfx(duration=10))
    with pytest.raises(RenderFailed, match=r"got 1.50 s of audio, expected 95.0–286.0 s"):
        fake.renderer().render(RenderRequest("sfx", {"prompt": "Rain"}, target="sfx:rain"))  # 190 s default


def test_non_audio_success_body_is_refused(key: str) -> None:
    headers = {"content-type": "text/html", "finish-reason": "SUCCESS"}
    fake = Fake(httpx.Response(200, content=b"<html>maintenance</html>", headers=headers))
    with pytest.raises(RenderFailed, match="the response was not audio"):
        fake.renderer().render(sfx())


def test_missing_key_is_unavailable() -> None:
    fake = Fake(audio(4.0))
    with pytest.raises(RendererUnavailable, match="set STABILITY_API_KEY"):
        fake.renderer().render(sfx())
    assert fake.forms == []


def test_check_ranges_per_model() -> None:
    Stability.check({"prompt": "x"})
    Stability.check({"prompt": "x", "steps": 4, "duration": 1, "seed": 4294967294, "cfg_scale": 25})
    Stability.check({"prompt": "x", "model": "stable-audio-2", "steps": 100, "duration": 190, "seed": 0})
    Stability.check(
        {"prompt": "x", "model": "stable-audio-2", "steps": 30, "cfg_scale": 1, "output_format": "mp3"}
    )
    bad: list[tuple[dict[str, Any], str]] = [
        ({}, "'prompt' is required"),
        ({"prompt": "  "}, "'prompt' is required"),
        (
            {"prompt": "x", "model": "stable-audio-3"},
            "'model' must be one of stable-audio-2.5, stable-audio-2",
        ),
        ({"prompt": "x", "steps": 9}, "'steps' must be between 4 and 8 for stable-audio-2.5"),
        ({"prompt": "x", "steps": 3}, "'steps' must be between 4 and 8 for stable-audio-2.5"),
        (
            {"prompt": "x", "model": "stable-audio-2", "steps": 8},
            "'steps' must be between 30 and 100 for stable-audio-2",
        ),
        ({"prompt": "x", "model": "stable-audio-2", "steps": 101}, "between 30 and 100"),
        ({"prompt": "x", "duration": 0.5}, "'duration' must be between 1 and 190 seconds"),
        ({"prompt": "x", "duration": 191}, "'duration' must be between 1 and 190 seconds"),
        ({"prompt": "x", "seed": -1}, "'seed' must be between 0 and 4294967294"),
        ({"prompt": "x", "seed": 4294967295}, "'seed' must be between 0 and 4294967294"),
        ({"prompt": "x", "cfg_scale": 0.5}, "'cfg_scale' must be between 1 and 25"),
        ({"prompt": "x", "cfg_scale": 26}, "'cfg_scale' must be between 1 and 25"),
        ({"prompt": "x", "output_format": "flac"}, "'output_format' must be one of wav, mp3"),
    ]
    for params, says in bad:
        with pytest.raises(ValueError, match=says):
            Stability.check(params)


def test_form_is_not_json(key: str) -> None:
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return audio(4.0)

    Fake(answer).renderer().render(sfx())
    with pytest.raises(json.JSONDecodeError):
        json.loads(seen[0])
