"""``stability``: sound effects and music beds with Stability AI's Stable Audio 2 / 2.5.

Settings (``[sfx.NAME]`` or ``[music.NAME]`` with ``renderer = "stability"``):

``prompt`` (required)
    What to generate ("rain on a tin roof", "warm lo-fi piano bed, 80 bpm").
``model``
    ``stable-audio-2.5`` (default) or ``stable-audio-2``.
``duration``
    Seconds of audio, 1–190 (default 190, the provider's default); billing
    is per second of audio.
``seed``
    0–4294967294; 0 (the default) lets Stability pick one. The seed actually
    used is recorded in the cache record (``meta["seed"]``), so a take that
    was liked can be pinned by copying it into ``project.toml``.
``steps``
    Diffusion steps: 4–8 for stable-audio-2.5, 30–100 for stable-audio-2.
``cfg_scale``
    How strictly to follow the prompt, 1–25.
``output_format``
    ``wav`` (default, lossless for mixing) or ``mp3``.

Music beds are rendered as three segments. Each segment's prompt is the
``prompt`` plus a short instruction (see :data:`SEGMENT_PROMPTS`): an intro
that opens, a loopable main section and an outro that resolves, so the three
requests — and the three takes — differ.

The request is ``multipart/form-data`` even though no file is sent (the API
refuses JSON and urlencoded bodies). The reply is raw audio (44.1 kHz
stereo) with ``finish-reason`` and ``seed`` headers, or a JSON object with
base64 audio; a ``CONTENT_FILTERED`` take is refused and never cached.

The key comes from ``STABILITY_API_KEY``. An invalid key (401/403), exhausted
credits (402) and a prompt refused by moderation (403 ``content_moderation``)
fail at once; 429 and 5xx are retried.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import RenderFailed
from ..base import RenderRequest, RenderResult
from .base import CloudRenderer, check_duration, decode_audio
from .http import ProviderSettings, Refusal

if TYPE_CHECKING:
    import httpx

__all__ = ["MODELS", "SEGMENT_PROMPTS", "Stability"]

PATH = "/v2beta/audio/stable-audio-2/text-to-audio"
DEFAULT_MODEL = "stable-audio-2.5"
#: model → (min steps, max steps)
MODELS: dict[str, tuple[int, int]] = {"stable-audio-2.5": (4, 8), "stable-audio-2": (30, 100)}
FORMATS = ("wav", "mp3")
DURATION = (1.0, 190.0)
DEFAULT_DURATION = 190.0
MAX_SEED = 4294967294
CFG_SCALE = (1.0, 25.0)

#: what each music-bed segment adds to the prompt
SEGMENT_PROMPTS: dict[str, str] = {
    "intro": "Intro: an opening that starts softly and builds into the main theme.",
    "main": "Main section: steady and loopable, with no intro and no ending.",
    "outro": "Outro: an ending that winds down, resolves and fades out.",
}


class Stability(CloudRenderer):
    """Stable Audio text-to-audio: one synchronous request per SFX or bed segment."""

    provider = ProviderSettings(
        name="stability",
        base_url="https://api.stability.ai",
        key_env="STABILITY_API_KEY",
        concurrency=4,
        timeout=300.0,
    )
    version = "1"
    kinds = frozenset({"sfx", "music"})
    required = {"sfx": ("prompt",), "music": ("prompt",)}
    params = {
        "prompt": str,
        "model": str,
        "duration": (int, float),
        "seed": int,
        "steps": int,
        "cfg_scale": (int, float),
        "output_format": str,
    }

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Refuse a missing prompt and values outside each model's ranges."""
        if not str(params.get("prompt", "")).strip():
            raise ValueError("'prompt' is required: describe the sound or music to generate")
        model = params.get("model", DEFAULT_MODEL)
        if model not in MODELS:
            raise ValueError(f"'model' must be one of {', '.join(MODELS)}")
        _within(params, "duration", DURATION, "seconds")
        _within(params, "seed", (0, MAX_SEED), "(0 = random)")
        low, high = MODELS[model]
        _within(params, "steps", (low, high), f"for {model}")
        _within(params, "cfg_scale", CFG_SCALE, "")
        if params.get("output_format", "wav") not in FORMATS:
            raise ValueError(f"'output_format' must be one of {', '.join(FORMATS)}")

    @classmethod
    def billing(cls, request: RenderRequest) -> str:
        """Stable Audio bills per second of audio requested."""
        return f"{float(request.params.get('duration', DEFAULT_DURATION)):g} s of audio"

    def classify(self, response: httpx.Response) -> None:
        """Fail at once on a bad key, exhausted credits or a moderated prompt."""
        status = response.status_code
        if status == 403 and _error_name(response) == "content_moderation":
            raise Refusal("prompt refused by content moderation")
        if status in (401, 403):
            raise Refusal("invalid API key: check STABILITY_API_KEY")
        if status == 402:
            raise Refusal("out of credits: top up the Stability account")

    def render(self, request: RenderRequest) -> RenderResult:
        """Generate one SFX or one bed segment; returns float32 at the provider's rate."""
        target = request.target or "stability"
        duration = float(request.params.get("duration", DEFAULT_DURATION))
        response = self.client.request(
            "POST",
            PATH,
            target=target,
            headers={"Accept": "audio/*"},
            data=form_fields(request),
            files={"none": ("", b"")},  # forces multipart/form-data; the API needs it
        )
        content, finish, seed = _unpack(response, target)
        if finish.upper() == "CONTENT_FILTERED":
            raise RenderFailed(f"{target}: stability content filtered the output; nothing was cached")
        audio, sr = decode_audio(content, target=target)
        check_duration(audio, sr, target=target, seconds=duration)
        meta: dict[str, Any] = {
            "request_id": response.headers.get("x-request-id"),
            "model": request.params.get("model", DEFAULT_MODEL),
            "seed": seed,
            "finish_reason": finish,
            "seconds": duration,
        }
        return RenderResult(audio, sr, meta)


def segment_prompt(prompt: str, kind: str, segment: str | None, target: str = "stability") -> str:
    """The prompt sent for a music-bed ``segment`` (SFX prompts are sent as they are)."""
    if kind != "music" or segment is None:
        return prompt
    if segment not in SEGMENT_PROMPTS:
        raise RenderFailed(
            f"{target}: unknown music segment {segment!r}; use one of {', '.join(SEGMENT_PROMPTS)}"
        )
    stem = prompt.strip()
    joiner = " " if stem.endswith((".", "!", "?")) else ". "
    return stem + joiner + SEGMENT_PROMPTS[segment]


def form_fields(request: RenderRequest) -> dict[str, str]:
    """The multipart form fields of a text-to-audio request, all as strings."""
    params = request.params
    prompt = segment_prompt(
        str(params["prompt"]), request.kind, request.segment, request.target or "stability"
    )
    fields = {
        "prompt": prompt,
        "model": str(params.get("model", DEFAULT_MODEL)),
        "duration": f"{float(params.get('duration', DEFAULT_DURATION)):g}",
        "output_format": str(params.get("output_format", "wav")),
    }
    for name in ("seed", "steps"):
        if name in params:
            fields[name] = str(int(params[name]))
    if "cfg_scale" in params:
        fields["cfg_scale"] = f"{float(params['cfg_scale']):g}"
    return fields


def _unpack(response: httpx.Response, target: str) -> tuple[bytes, str, int | None]:
    """Audio bytes, finish reason and seed, from a raw-audio or a JSON reply."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        finish = response.headers.get("finish-reason", "SUCCESS")
        return response.content, finish, _seed(response.headers.get("seed"))
    try:
        body = response.json()
        content = base64.b64decode(body["audio"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise RenderFailed(
            f"{target}: the JSON reply held no base64 'audio' ({response.content[:60]!r}…); nothing was cached"
        ) from None
    return content, str(body.get("finish_reason", "SUCCESS")), _seed(body.get("seed"))


def _seed(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _within(params: Mapping[str, Any], name: str, bounds: tuple[float, float], unit: str) -> None:
    low, high = bounds
    if name in params and not low <= params[name] <= high:
        raise ValueError(f"'{name}' must be between {_num(low)} and {_num(high)}{' ' + unit if unit else ''}")


def _num(value: float) -> str:
    """``190.0`` as ``190``, ``4294967294`` in full."""
    return str(int(value)) if float(value).is_integer() else str(value)


def _error_name(response: httpx.Response) -> str:
    """The ``name`` of a Stability error body ``{"id", "name", "errors"}``, or ``""``."""
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("name", "")) if isinstance(body, dict) else ""
