"""``openai``: text-to-speech with OpenAI's ``/v1/audio/speech``.

Settings (``[voices.NAME]`` with ``renderer = "openai"``):

``model`` (default ``gpt-4o-mini-tts``)
    ``tts-1``, ``tts-1-hd``, ``gpt-4o-mini-tts`` or ``gpt-4o-mini-tts-2025-12-15``.
``voice`` (default ``alloy``)
    A built-in voice (``alloy``, ``ash``, ``ballad``, ``coral``, ``echo``,
    ``fable``, ``onyx``, ``nova``, ``sage``, ``shimmer``, ``verse``, ``marin``,
    ``cedar``) or a custom voice id ``voice_…`` (sent as ``{"id": …}``).
``instructions``
    How to speak ("calm, warm, unhurried"); only the gpt-4o-mini-tts models
    take it, so it is refused for ``tts-1`` and ``tts-1-hd``.
``speed``
    0.25–4.0 (1.0 = natural pace).
``response_format``
    ``pcm`` (default: headerless 16-bit mono at 24 kHz), ``wav``, ``flac``,
    ``mp3``, ``opus`` or ``aac``. Prefer ``pcm`` or ``wav`` for mixing: lossy
    formats add encoder delay and padding at every join.

The key comes from ``OPENAI_API_KEY``. Organisation and project headers are
not settings (settings are never secrets and enter content keys). Lines are
limited to 4096 characters per request; longer lines are split by mixdown.

OpenAI takes no seed, so a render cannot be reproduced exactly; the cache
keeps the take that was made, so the same request is never sent twice.

Errors a retry cannot fix fail at once: an invalid key (401), an exhausted
quota (429 ``insufficient_quota``) and anything the server marks
``x-should-retry: false``. A plain 429 ``rate_limit_exceeded`` is retried,
honouring ``retry-after-ms`` / ``retry-after``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import RenderFailed
from ..base import RenderRequest, RenderResult
from .base import CloudRenderer, check_duration, decode_audio, decode_pcm
from .http import ProviderSettings, Refusal

if TYPE_CHECKING:
    import httpx
    import numpy as np

__all__ = ["FORMATS", "MODELS", "OpenAI", "VOICES"]

MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "gpt-4o-mini-tts-2025-12-15")
NO_INSTRUCTIONS = frozenset({"tts-1", "tts-1-hd"})
VOICES = (
    "alloy",
    "ash",
    "ballad",
    "coral",
    "echo",
    "fable",
    "onyx",
    "nova",
    "sage",
    "shimmer",
    "verse",
    "marin",
    "cedar",
)
CUSTOM_VOICE_PREFIX = "voice_"
FORMATS = ("pcm", "wav", "flac", "mp3", "opus", "aac")
PCM_RATE = 24000  # OpenAI's pcm: signed 16-bit little-endian, mono, no header
SPEED_RANGE = (0.25, 4.0)


DEFAULT_MODEL = "gpt-4o-mini-tts"
DEFAULT_VOICE = "alloy"


class OpenAI(CloudRenderer):
    """OpenAI TTS: one request per line (or chunk of a line), audio in the body."""

    provider = ProviderSettings(
        name="openai",
        base_url="https://api.openai.com",
        key_env="OPENAI_API_KEY",
        concurrency=4,
        timeout=600.0,
    )
    version = "1"
    kinds = frozenset({"voice"})
    params = {
        "model": str,
        "voice": str,
        "instructions": str,
        "speed": (int, float),
        "response_format": str,
    }
    max_chars = 4096

    @classmethod
    def key_params(cls, params: Mapping[str, Any], root: Path) -> dict[str, Any]:
        """The settings with defaults filled in, so a changed default changes the key."""
        return with_defaults(params)

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Refuse unknown models, voices and formats, and out-of-range speeds."""
        params = with_defaults(params)
        model = params.get("model")
        if model not in MODELS:
            raise ValueError(f"'model' must be one of {', '.join(MODELS)}")
        voice = params.get("voice")
        if not isinstance(voice, str) or not _voice_ok(voice):
            raise ValueError(f"'voice' must be one of {', '.join(VOICES)} or a custom voice id 'voice_…'")
        if "instructions" in params and model in NO_INSTRUCTIONS:
            raise ValueError(f"'instructions' needs a gpt-4o-mini-tts model; {model} does not take them")
        low, high = SPEED_RANGE
        if not low <= params.get("speed", 1.0) <= high:
            raise ValueError(f"'speed' must be between {low} and {high}")
        if params.get("response_format", "pcm") not in FORMATS:
            raise ValueError(f"'response_format' must be one of {', '.join(FORMATS)} (pcm or wav for mixing)")

    def classify(self, response: httpx.Response) -> None:
        """Fail at once on a bad key, an exhausted quota or ``x-should-retry: false``."""
        error = _error(response)
        if "insufficient_quota" in (error.get("code"), error.get("type")):
            raise Refusal("exhausted quota: check the OpenAI account's billing")
        if response.status_code == 401:
            raise Refusal("invalid API key: check OPENAI_API_KEY")
        if response.headers.get("x-should-retry", "").strip().lower() == "false":
            raise Refusal("the server said not to retry (x-should-retry: false)")

    def voices(self) -> list[dict[str, str]]:
        """The built-in voices (OpenAI has no endpoint listing them)."""
        return [{"id": v, "name": v.capitalize(), "description": "built-in"} for v in VOICES]

    def render(self, request: RenderRequest) -> RenderResult:
        """Speak ``request.text``; returns mono float32 (24 kHz for pcm)."""
        target = request.target or "openai"
        params = with_defaults(request.params)
        fmt = str(params.get("response_format", "pcm"))
        response = self.client.request(
            "POST",
            "/v1/audio/speech",
            target=target,
            headers={"Accept": "application/octet-stream"},
            json=speech_body(request.text, params),
        )
        audio, sr = _decode(response, fmt, target)
        check_duration(audio, sr, target=target, text=request.text)
        meta: dict[str, Any] = {
            "request_id": response.headers.get("x-request-id"),
            "model": params.get("model"),
            "response_format": fmt,
            "characters": len(request.text),
        }
        return RenderResult(audio, sr, meta)


def with_defaults(params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with the default model, voice and format where none is given."""
    return {"model": DEFAULT_MODEL, "voice": DEFAULT_VOICE, "response_format": "pcm", **params}


def speech_body(text: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body of ``POST /v1/audio/speech``."""
    params = with_defaults(params)
    voice = str(params["voice"])
    body: dict[str, Any] = {
        "model": params["model"],
        "voice": {"id": voice} if voice.startswith(CUSTOM_VOICE_PREFIX) else voice,
        "input": text,
        "response_format": params.get("response_format", "pcm"),
    }
    if "speed" in params:
        body["speed"] = float(params["speed"])
    if "instructions" in params:
        body["instructions"] = params["instructions"]
    return body


def _voice_ok(voice: str) -> bool:
    return voice in VOICES or (
        voice.startswith(CUSTOM_VOICE_PREFIX) and len(voice) > len(CUSTOM_VOICE_PREFIX)
    )


def _decode(response: httpx.Response, fmt: str, target: str) -> tuple[np.ndarray, int]:
    """Decode the body as ``fmt``, refusing JSON, HTML or text answers."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json" or kind.startswith("text/"):
        head = response.content[:40]
        raise RenderFailed(f"{target}: the response was {kind}, not audio ({head!r}…); nothing was cached")
    if fmt == "pcm":
        return decode_pcm(response.content, sample_rate=PCM_RATE, target=target)
    return decode_audio(response.content, target=target)


def _error(response: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of an OpenAI error body, or ``{}``."""
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}
