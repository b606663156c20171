"""The ElevenLabs renderer against a fake api.elevenlabs.io (httpx.MockTransport).

The fake checks every request the way the real API would (reference/providers.md
sections 1–2): method, path, the ``xi-api-key`` header, ``output_format`` in
the query and never in the body, and the JSON body fields. It answers with the
real response shapes and headers, errors included.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import RendererUnavailable, RenderFailed
from mixdown.renderers import Registry, RenderRequest, RenderResult
from mixdown.renderers.cloud.elevenlabs import MAX_PROMPT, SEGMENT_WORDING, ElevenLabs

KEY = "test-key-123"
VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Hello and welcome to the morning briefing."
TTS_FIELDS = {
    "text",
    "model_id",
    "voice_settings",
    "seed",
    "language_code",
    "pronunciation_dictionary_locators",
}
SETTINGS_FIELDS = {"stability", "similarity_boost", "style", "use_speaker_boost", "speed"}
SFX_FIELDS = {"text", "duration_seconds", "prompt_influence", "loop", "model_id"}
MUSIC_FIELDS = {"prompt", "music_length_ms", "model_id", "force_instrumental", "seed"}
FORMAT = re.compile(r"^(pcm|wav)_(\d+)$|^mp3_(\d+)_\d+$|^opus_48000_\d+$")


# -- audio and error bodies as the API sends them ---------------------------------------------


def tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


def audio_bytes(seconds: float, fmt: str) -> bytes:
    """Audio in an ElevenLabs ``output_format``: headerless S16LE for pcm, a container otherwise."""
    kind, rate = fmt.split("_")[0], int(fmt.split("_")[1])
    y = tone(seconds, rate)
    if kind == "pcm":
        return (y * 32767).astype("<i2").tobytes()
    buffer = io.BytesIO()
    container = {"wav": ("WAV", "PCM_16"), "mp3": ("MP3", None), "opus": ("OGG", "OPUS")}[kind]
    sf.write(buffer, y[:, None], rate, format=container[0], subtype=container[1])
    return buffer.getvalue()


def error(code: int, status: str, message: str, **headers: str) -> httpx.Response:
    """A business error: ``{"detail": {"status", "message"}}``."""
    body = {"detail": {"status": status, "message": message}}
    return httpx.Response(code, json=body, headers={"x-trace-id": "trace-1", **headers})


def unprocessable(loc: list[str], msg: str) -> httpx.Response:
    """FastAPI's validation error."""
    return httpx.Response(422, json={"detail": [{"loc": loc, "msg": msg, "type": "value_error"}]})


# -- the fake API -----------------------------------------------------------------------------


class FakeElevenLabs:
    """Answers like api.elevenlabs.io; ``faults`` are served first, ``refused`` formats get a tier 403."""

    def __init__(
        self,
        faults: Iterable[httpx.Response | Callable[[httpx.Request], httpx.Response]] = (),
        *,
        refused: Iterable[str] = (),
        seconds_per_char: float = 0.06,
    ) -> None:
        self.faults = list(faults)
        self.refused = set(refused)
        self.seconds_per_char = seconds_per_char
        self.requests: list[httpx.Request] = []
        self.alignment: dict[str, Any] | None = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers.get("xi-api-key") != KEY:
            return error(401, "invalid_api_key", "Invalid API key")
        if self.faults:
            fault = self.faults.pop(0)
            return fault(request) if callable(fault) else fault
        if request.method == "GET" and request.url.path == "/v1/voices":
            return httpx.Response(200, json={"voices": VOICES})
        if request.method != "POST":
            return httpx.Response(405, json={"detail": "Method Not Allowed"})
        return self._post(request)

    def _post(self, request: httpx.Request) -> httpx.Response:
        assert request.headers["content-type"] == "application/json"
        body = json.loads(request.content)
        assert "output_format" not in body, "output_format belongs in the query (elevenlabs-python#451)"
        assert set(request.url.params) <= {"output_format"}
        fmt = request.url.params.get("output_format", "mp3_44100_128")
        if not FORMAT.match(fmt):
            return unprocessable(["query", "output_format"], f"invalid output format {fmt!r}")
        if fmt in self.refused:
            message = f"Output format '{fmt}' is only available on the Pro tier and above"
            return error(403, "subscription_required", message)
        path = request.url.path
        if m := re.fullmatch(r"/v1/text-to-speech/([^/]+)(/with-timestamps)?", path):
            return self._speech(body, fmt, timestamps=bool(m.group(2)))
        if path == "/v1/sound-generation":
            return self._sound(body, fmt)
        if path == "/v1/music":
            return self._music(body, fmt)
        return httpx.Response(404, json={"detail": "Not Found"})

    def _speech(self, body: dict[str, Any], fmt: str, *, timestamps: bool) -> httpx.Response:
        if not isinstance(body.get("text"), str) or not set(body) <= TTS_FIELDS:
            return unprocessable(["body"], f"unexpected fields {sorted(set(body) - TTS_FIELDS)}")
        assert set(body.get("voice_settings", {})) <= SETTINGS_FIELDS
        text = body["text"]
        audio = audio_bytes(len(text) * self.seconds_per_char, fmt)
        headers = {"request-id": "req-tts-1", "character-cost": str(len(text))}
        if not timestamps:
            return httpx.Response(200, content=audio, headers={**headers, "content-type": "audio/mpeg"})
        alignment = None
        if self.alignment is not None:
            starts = [i * self.seconds_per_char for i in range(len(text))]
            ends = [s + self.seconds_per_char for s in starts]
            chars = {"characters": list(text), "character_start_times_seconds": starts}
            alignment = {**chars, "character_end_times_seconds": ends}
        answer = {"audio_base64": base64.b64encode(audio).decode(), "alignment": alignment}
        return httpx.Response(200, json={**answer, "normalized_alignment": alignment}, headers=headers)

    def _sound(self, body: dict[str, Any], fmt: str) -> httpx.Response:
        if fmt.startswith("wav_"):
            return unprocessable(["query", "output_format"], "wav is not supported for sound generation")
        if not isinstance(body.get("text"), str) or not set(body) <= SFX_FIELDS:
            return unprocessable(["body"], "invalid sound-generation body")
        audio = audio_bytes(body.get("duration_seconds") or 2.0, fmt)
        headers = {"request-id": "req-sfx-1", "character-cost": "40", "content-type": "audio/mpeg"}
        return httpx.Response(200, content=audio, headers=headers)

    def _music(self, body: dict[str, Any], fmt: str) -> httpx.Response:
        if not set(body) <= MUSIC_FIELDS or len(body.get("prompt", "")) > 2000:
            return unprocessable(["body", "prompt"], "invalid music body")
        if "seed" in body and "prompt" in body:
            return unprocessable(["body", "seed"], "seed cannot be used in conjunction with prompt")
        audio = audio_bytes(body.get("music_length_ms", 5000) / 1000, fmt)
        headers = {"request-id": "req-music-1", "song-id": "song-42", "content-type": "audio/mpeg"}
        return httpx.Response(200, content=audio, headers=headers)


VOICES = [
    {
        "voice_id": VOICE,
        "name": "Rachel",
        "category": "premade",
        "labels": {"accent": "american", "gender": "female"},
        "description": None,
    },
    {
        "voice_id": "abc123",
        "name": "Narrator",
        "category": None,
        "labels": {},
        "description": "Calm and warm",
    },
]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("ELEVENLABS_API_KEY", KEY)
    return KEY


def renderer(api: FakeElevenLabs, sleeps: list[float] | None = None) -> ElevenLabs:
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return ElevenLabs(transport=httpx.MockTransport(api), sleep=record)


def voice(text: str = TEXT, **params: Any) -> RenderRequest:
    return RenderRequest("voice", {"voice_id": VOICE, **params}, text=text, target="voice:show/intro/0")


def sent(request: httpx.Request) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(request.content)
    return body


# -- text-to-speech ---------------------------------------------------------------------------


def test_speech_as_pcm(key: str) -> None:
    api = FakeElevenLabs()
    result = renderer(api).render(voice())
    (request,) = api.requests
    assert request.method == "POST" and request.url.path == f"/v1/text-to-speech/{VOICE}"
    assert dict(request.url.params) == {"output_format": "pcm_24000"}
    assert sent(request) == {"text": TEXT, "model_id": "eleven_multilingual_v2"}
    assert result.sample_rate == 24000 and result.audio.shape == (int(len(TEXT) * 0.06 * 24000), 1)
    assert result.audio.dtype == np.float32
    np.testing.assert_allclose(np.abs(result.audio).max(), 0.3, atol=1e-3)
    assert result.meta == {
        "output_format": "pcm_24000",
        "request_id": "req-tts-1",
        "character_cost": len(TEXT),
    }


def test_voice_settings_hold_only_the_given_fields(key: str) -> None:
    api = FakeElevenLabs()
    renderer(api).render(
        voice(stability=0.4, speed=1.1, seed=7, language_code="en", model_id="eleven_flash_v2_5")
    )
    body = sent(api.requests[0])
    assert body["voice_settings"] == {"stability": 0.4, "speed": 1.1}
    assert body["seed"] == 7 and body["language_code"] == "en" and body["model_id"] == "eleven_flash_v2_5"


def test_pronunciation_dictionary_locators(key: str) -> None:
    api = FakeElevenLabs()
    renderer(api).render(voice(pronunciation_dictionaries=["dictA:ver1", "dictB:ver9"]))
    assert sent(api.requests[0])["pronunciation_dictionary_locators"] == [
        {"pronunciation_dictionary_id": "dictA", "version_id": "ver1"},
        {"pronunciation_dictionary_id": "dictB", "version_id": "ver9"},
    ]


@pytest.mark.parametrize("fmt", ["wav_16000", "mp3_44100_128", "opus_48000_64"])
def test_container_formats_decode(key: str, fmt: str) -> None:
    result = renderer(FakeElevenLabs()).render(voice(output_format=fmt))
    assert result.sample_rate == int(fmt.split("_")[1]) and result.meta["output_format"] == fmt
    assert abs(len(result.audio) / result.sample_rate - len(TEXT) * 0.06) < 0.1


def test_with_timestamps_keeps_the_alignment(key: str) -> None:
    api = FakeElevenLabs()
    result = renderer(api).render(voice("Hi there.", timestamps=True))
    (request,) = api.requests
    assert request.url.path == f"/v1/text-to-speech/{VOICE}/with-timestamps"
    assert dict(request.url.params) == {"output_format": "pcm_24000"}
    assert result.meta["alignment"][:3] == [["H", 0.0], ["i", 0.06], [" ", 0.12]]
    assert len(result.meta["alignment"]) == len("Hi there.") and result.sample_rate == 24000
    assert result.meta["request_id"] == "req-tts-1"


def test_with_timestamps_accepts_a_null_alignment(key: str) -> None:
    api = FakeElevenLabs()
    api.alignment = None
    result = renderer(api).render(voice(timestamps=True))
    assert result.meta["alignment"] is None and len(result.audio) > 0


def test_with_timestamps_without_audio_fails(key: str) -> None:
    api = FakeElevenLabs([httpx.Response(200, json={"audio_base64": "***not base64***", "alignment": None})])
    with pytest.raises(RenderFailed, match="voice:show/intro/0: elevenlabs sent no valid audio_base64"):
        renderer(api).render(voice(timestamps=True))


# -- format fallback --------------------------------------------------------------------------


def test_tier_refusal_falls_back_once_to_pcm_24000(key: str) -> None:
    api = FakeElevenLabs(refused={"pcm_44100"})
    result = renderer(api).render(voice(output_format="pcm_44100"))
    assert [r.url.params["output_format"] for r in api.requests] == ["pcm_44100", "pcm_24000"]
    assert sent(api.requests[0]) == sent(api.requests[1])
    assert result.sample_rate == 24000 and result.meta["output_format"] == "pcm_24000"


@pytest.mark.parametrize(
    "refusal",
    [
        error(403, "only_for_creator+", "This format requires the Creator tier or above."),
        httpx.Response(
            403, json={"detail": {"message": "Output format 'wav_44100' is not allowed for your plan."}}
        ),
        httpx.Response(403, json={"status": "subscription_required", "message": "Upgrade to use this."}),
    ],
)
def test_tier_refusal_shapes(key: str, refusal: httpx.Response) -> None:
    api = FakeElevenLabs([refusal])
    result = renderer(api).render(voice(output_format="wav_44100"))
    assert [r.url.params["output_format"] for r in api.requests] == ["wav_44100", "pcm_24000"]
    assert result.meta["output_format"] == "pcm_24000"


def test_refused_music_format_falls_back_to_mp3_44100_128(key: str) -> None:
    api = FakeElevenLabs(refused={"mp3_48000_192"})
    params = {"prompt": "piano", "duration": 3, "output_format": "mp3_48000_192"}
    result = renderer(api).render(RenderRequest("music", params, segment="intro", target="music:bed/intro"))
    assert [r.url.params["output_format"] for r in api.requests] == ["mp3_48000_192", "mp3_44100_128"]
    assert result.meta["output_format"] == "mp3_44100_128" and result.sample_rate == 44100


def test_refused_pcm_24000_falls_back_to_mp3(key: str) -> None:
    api = FakeElevenLabs(refused={"pcm_24000"})
    result = renderer(api).render(voice())
    assert [r.url.params["output_format"] for r in api.requests] == ["pcm_24000", "mp3_44100_128"]
    assert result.sample_rate == 44100 and result.meta["output_format"] == "mp3_44100_128"


def test_only_one_fallback(key: str) -> None:
    api = FakeElevenLabs(refused={"pcm_44100", "pcm_24000"})
    with pytest.raises(RenderFailed, match=r"refused \(HTTP 403\).*only available on the Pro tier"):
        renderer(api).render(voice(output_format="pcm_44100"))
    assert len(api.requests) == 2


def test_other_403_fails_with_the_providers_message(key: str) -> None:
    message = "The API key you used is missing the permission text_to_speech to execute this operation."
    api = FakeElevenLabs([error(403, "missing_permissions", message)])
    with pytest.raises(RenderFailed, match="voice:show/intro/0: elevenlabs refused .*missing the permission"):
        renderer(api).render(voice())
    assert len(api.requests) == 1


# -- errors, retries, bad audio ---------------------------------------------------------------


def test_exhausted_quota_is_a_401_and_not_retried(key: str) -> None:
    message = "This request exceeds your quota of 10000. You have 0 credits remaining, while 91 credits are required."
    api = FakeElevenLabs([error(401, "quota_exceeded", message)])
    sleeps: list[float] = []
    with pytest.raises(RenderFailed, match="exhausted quota: top up the ElevenLabs account"):
        renderer(api, sleeps).render(voice())
    assert len(api.requests) == 1 and sleeps == []


def test_invalid_key_names_the_variable_not_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk-wrong-key-987")
    api = FakeElevenLabs()
    with pytest.raises(RenderFailed) as caught:
        renderer(api).render(voice())
    assert "ELEVENLABS_API_KEY" in str(caught.value) and "sk-wrong-key-987" not in str(caught.value)
    assert len(api.requests) == 1 and api.requests[0].headers["xi-api-key"] == "sk-wrong-key-987"


def test_401_without_a_status_is_a_bad_key(key: str) -> None:
    api = FakeElevenLabs([httpx.Response(401, json={"detail": "Unauthorized"})])
    with pytest.raises(RenderFailed, match="invalid API key: check ELEVENLABS_API_KEY"):
        renderer(api).render(voice())


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [
        (400, "max_character_limit_exceeded", "text too long for the model"),
        (400, "voice_not_found", "unknown voice_id"),
        (401, "detected_unusual_activity", "unusual activity"),
    ],
)
def test_refusals_are_not_retried(key: str, code: int, status: str, reason: str) -> None:
    api = FakeElevenLabs([error(code, status, "The provider says no.")])
    with pytest.raises(RenderFailed, match=f"HTTP {code}\\): {reason}.*The provider says no"):
        renderer(api).render(voice())
    assert len(api.requests) == 1


def test_validation_error_fails_at_once(key: str) -> None:
    api = FakeElevenLabs([unprocessable(["body", "text"], "field required")])
    with pytest.raises(RenderFailed, match=r"HTTP 422\).*field required"):
        renderer(api).render(voice())
    assert len(api.requests) == 1


@pytest.mark.parametrize("status", ["too_many_concurrent_requests", "system_busy"])
def test_429_waits_as_told_and_retries(key: str, status: str) -> None:
    busy = error(429, status, "Too many concurrent requests.", **{"retry-after": "2"})
    api = FakeElevenLabs([busy])
    sleeps: list[float] = []
    result = renderer(api, sleeps).render(voice())
    assert sleeps == [2.0] and len(api.requests) == 2 and result.meta["request_id"] == "req-tts-1"


def test_500_is_retried(key: str) -> None:
    crash = httpx.Response(
        500, json={"status": "internal_server_error", "message": "An internal error occurred."}
    )
    api = FakeElevenLabs([crash])
    sleeps: list[float] = []
    result = renderer(api, sleeps).render(voice())
    assert len(api.requests) == 2 and len(sleeps) == 1 and len(result.audio) > 0


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(
            200, text="<html><body>Service Unavailable</body></html>", headers={"content-type": "text/html"}
        ),
        httpx.Response(200, json={"detail": {"status": "ok", "message": "queued"}}),
    ],
)
@pytest.mark.parametrize("fmt", ["pcm_24000", "mp3_44100_128"])
def test_a_body_that_is_not_audio_fails(key: str, answer: httpx.Response, fmt: str) -> None:
    with pytest.raises(RenderFailed, match="voice:show/intro/0: .*not .*audio|not whole 16-bit PCM"):
        renderer(FakeElevenLabs([answer])).render(voice(output_format=fmt))


def test_truncated_pcm_fails(key: str) -> None:
    odd = httpx.Response(200, content=audio_bytes(2.0, "pcm_24000")[:-1], headers={"request-id": "r"})
    with pytest.raises(RenderFailed, match="not whole 16-bit PCM frames"):
        renderer(FakeElevenLabs([odd])).render(voice())


def test_audio_too_short_for_the_text_fails(key: str) -> None:
    api = FakeElevenLabs(seconds_per_char=0.001)
    with pytest.raises(RenderFailed, match="voice:show/intro/0: got .* s of audio, expected"):
        renderer(api).render(voice("A long sentence. " * 20))


def test_missing_key_is_unavailable_and_sends_nothing() -> None:
    api = FakeElevenLabs()
    with pytest.raises(RendererUnavailable, match="ELEVENLABS_API_KEY"):
        renderer(api).render(voice())
    assert api.requests == []


@pytest.mark.parametrize(
    ("request_", "missing"),
    [
        (RenderRequest("voice", {}, text=TEXT, target="voice:a"), "voice_id"),
        (RenderRequest("sfx", {"duration": 1.0}, target="sfx:a"), "text"),
        (RenderRequest("music", {}, segment="main", target="music:a"), "prompt"),
    ],
)
def test_required_setting_per_kind(key: str, request_: RenderRequest, missing: str) -> None:
    api = FakeElevenLabs()
    with pytest.raises(RenderFailed, match=f"{request_.target}: .*needs '{missing}'"):
        renderer(api).render(request_)
    assert api.requests == []


def test_the_key_never_leaks(key: str) -> None:
    echo = f"Invalid API key {KEY}"
    faults = [error(401, "invalid_api_key", echo), error(403, "missing_permissions", echo)]
    for fault in faults:
        with pytest.raises(RenderFailed) as caught:
            renderer(FakeElevenLabs([fault])).render(voice())
        assert KEY not in str(caught.value) and "***" in str(caught.value)
    results: list[RenderResult] = [
        renderer(FakeElevenLabs()).render(voice(timestamps=True)),
        renderer(FakeElevenLabs()).render(RenderRequest("sfx", {"text": "door"}, target="sfx:door")),
    ]
    assert all(KEY not in json.dumps(r.meta) for r in results)


# -- sound effects and music ------------------------------------------------------------------


def test_sound_effect_request(key: str) -> None:
    api = FakeElevenLabs()
    params = {"text": "a heavy door slams", "duration": 1.5, "prompt_influence": 0.5, "loop": True}
    result = renderer(api).render(RenderRequest("sfx", params, target="sfx:door"))
    (request,) = api.requests
    assert request.method == "POST" and request.url.path == "/v1/sound-generation"
    assert dict(request.url.params) == {"output_format": "pcm_24000"}
    assert sent(request) == {
        "text": "a heavy door slams",
        "duration_seconds": 1.5,
        "prompt_influence": 0.5,
        "loop": True,
    }
    assert result.sample_rate == 24000 and len(result.audio) == 36000
    assert result.meta == {"output_format": "pcm_24000", "request_id": "req-sfx-1", "character_cost": 40}


def test_sound_effect_of_the_wrong_length_fails(key: str) -> None:
    short = httpx.Response(200, content=audio_bytes(0.5, "pcm_24000"))
    with pytest.raises(RenderFailed, match="sfx:door: got 0.50 s of audio"):
        renderer(FakeElevenLabs([short])).render(
            RenderRequest("sfx", {"text": "door", "duration": 10}, target="sfx:door")
        )


def test_music_request_per_segment(key: str) -> None:
    api = FakeElevenLabs()
    params = {"prompt": "warm lo-fi piano", "duration": 4, "force_instrumental": True}
    r = renderer(api)
    results = [
        r.render(RenderRequest("music", params, segment=s, target=f"music:bed/{s}")) for s in SEGMENT_WORDING
    ]
    prompts = [sent(q)["prompt"] for q in api.requests]
    assert len(set(prompts)) == 3 and all(p.startswith("warm lo-fi piano\n\n") for p in prompts)
    assert "Intro" in prompts[0] and "loopable" in prompts[1] and "ending" in prompts[2]
    request = api.requests[0]
    assert request.url.path == "/v1/music" and dict(request.url.params) == {"output_format": "mp3_44100_128"}
    assert {k: v for k, v in sent(request).items() if k != "prompt"} == {
        "music_length_ms": 4000,
        "model_id": "music_v1",
        "force_instrumental": True,
    }
    assert results[0].meta == {
        "output_format": "mp3_44100_128",
        "request_id": "req-music-1",
        "song_id": "song-42",
    }
    assert results[0].sample_rate == 44100 and abs(len(results[0].audio) / 44100 - 4.0) < 0.1


def test_voices_listing(key: str) -> None:
    api = FakeElevenLabs()
    assert renderer(api).voices() == [
        {"id": VOICE, "name": "Rachel", "description": "premade, accent: american, gender: female"},
        {"id": "abc123", "name": "Narrator", "description": "Calm and warm"},
    ]
    assert api.requests[0].method == "GET" and api.requests[0].url.path == "/v1/voices"


# -- class-level behaviour --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "limit"),
    [
        (None, 10000),
        ("eleven_v3", 3000),
        ("eleven_multilingual_v2", 10000),
        ("eleven_flash_v2_5", 40000),
        ("eleven_turbo_v2_5", 40000),
        ("eleven_flash_v2", 30000),
        ("eleven_turbo_v2", 30000),
        ("eleven_future_v9", 3000),
    ],
)
def test_text_limit_per_model(model: str | None, limit: int) -> None:
    assert ElevenLabs.text_limit({"model_id": model} if model else {}) == limit
    assert ElevenLabs.max_chars == 10000


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"voice_id": VOICE, "speed": 1.5}, "'speed' must be between 0.7 and 1.2"),
        ({"voice_id": VOICE, "stability": -0.1}, "'stability' must be between 0 and 1"),
        ({"voice_id": VOICE, "seed": 2**32}, "'seed' must be between 0 and 4294967295"),
        ({"voice_id": VOICE, "pronunciation_dictionaries": ["a:1", "b:2", "c:3", "d:4"]}, "at most 3"),
        ({"voice_id": VOICE, "pronunciation_dictionaries": ["no-version"]}, "dict_id:version_id"),
        ({"voice_id": VOICE, "language_code": "english"}, "two-letter ISO 639-1"),
        ({"voice_id": VOICE, "output_format": "pcm_44"}, "'output_format' must be one of"),
        ({"voice_id": VOICE, "output_format": "ulaw_8000"}, "'output_format' must be one of"),
        ({"text": "door", "output_format": "wav_24000"}, "'output_format' must be one of"),
        ({"prompt": "piano", "output_format": "pcm_24000"}, "'output_format' must be one of"),
        ({"text": "door", "duration": 31}, "'duration' must be between 0.5 and 30 seconds"),
        ({"prompt": "piano", "duration": 2}, "'duration' must be between 3 and 600 seconds"),
        ({"prompt": "piano", "seed": 3}, "'seed' cannot be combined with 'prompt'"),
        ({"prompt": "p" * (MAX_PROMPT + 1)}, f"at most {MAX_PROMPT} characters"),
        ({"text": "door", "loop": True, "model_id": "eleven_text_to_sound_v1"}, "'loop' works only with"),
        ({"text": "door", "stability": 0.5}, "'stability' does not apply to sfx"),
        ({"voice_id": VOICE, "prompt": "piano"}, "give only one of"),
    ],
)
def test_check_rejects(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ElevenLabs.check(params)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {
            "voice_id": VOICE,
            "speed": 0.7,
            "stability": 1,
            "seed": 0,
            "output_format": "wav_44100",
            "timestamps": True,
        },
        {"text": "door", "duration": 30, "loop": True, "output_format": "opus_48000_64"},
        {"prompt": "p" * MAX_PROMPT, "duration": 600, "output_format": "mp3_48000_192"},
        {"model_id": "eleven_v3", "duration": 0.5},
    ],
)
def test_check_accepts(params: dict[str, Any]) -> None:
    ElevenLabs.check(params)


def test_format_and_timestamps_enter_the_content_key(tmp_path: Path) -> None:
    params = {"voice_id": VOICE, "output_format": "wav_24000", "timestamps": True}
    assert ElevenLabs.key_params(params, tmp_path) == params


def test_billing() -> None:
    assert ElevenLabs.billing(voice("Hello.")) == "6 characters"
    assert ElevenLabs.billing(RenderRequest("sfx", {"text": "door", "duration": 2.5})) == "2.5 s of audio"
    assert "one generation" in ElevenLabs.billing(RenderRequest("music", {"prompt": "piano"}))


def test_registered_by_name(tmp_path: Path) -> None:
    assert Registry(tmp_path).cls("elevenlabs") is ElevenLabs
    assert ElevenLabs.provider.concurrency == 2 and ElevenLabs.provider.key_env == "ELEVENLABS_API_KEY"
    assert ElevenLabs().auth("k") == {"xi-api-key": "k"}
