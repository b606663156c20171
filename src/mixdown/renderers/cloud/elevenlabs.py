"""``elevenlabs``: ElevenLabs text-to-speech, sound effects and music.

Needs an API key in ``ELEVENLABS_API_KEY``. Connection settings (base URL,
concurrency — 2 by default, the Free tier's limit for multilingual_v2 —,
timeout) come from ``[providers.elevenlabs]`` in ``project.toml``.

Settings, by kind (which kind a table is follows from its required key):

voice (``voice_id`` required)
    ``model_id`` (default ``eleven_multilingual_v2``), ``stability``,
    ``similarity_boost``, ``style`` (0–1), ``use_speaker_boost``, ``speed``
    (0.7–1.2), ``seed`` (0–4294967295, best effort), ``language_code``
    (ISO 639-1), ``pronunciation_dictionaries`` (up to 3 ``"dict_id:version_id"``
    strings), ``output_format`` (default ``pcm_24000``) and ``timestamps``
    (true: use the ``/with-timestamps`` endpoint and keep the character
    alignment as ``meta["alignment"]``, a list of ``[char, start_seconds]``,
    or ``None`` when the API sends none).
sfx (``text`` required: the prompt)
    ``duration`` (0.5–30 s; omitted: the model chooses), ``prompt_influence``
    (0–1), ``loop``, ``model_id``, ``output_format`` (default ``pcm_24000``;
    the endpoint has no WAV).
music (``prompt`` required)
    ``duration`` (3–600 s), ``model_id`` (default ``music_v1``),
    ``force_instrumental``, ``output_format`` (default ``mp3_44100_128``).
    A bed renders three segments; each prompt gets a short instruction
    appended (:data:`SEGMENT_WORDING`), so intro, main and outro differ.
    ``seed`` cannot be combined with a prompt (an API rule).

:meth:`ElevenLabs.check` validates values and refuses settings of another
kind; a missing required key fails at render time, naming the target.

``output_format`` is sent as a query parameter. When the account's tier
refuses it (HTTP 403, e.g. ``pcm_44100`` below Pro), the request is repeated
once with ``pcm_24000`` (``mp3_44100_128`` for music, or if ``pcm_24000`` was
the one refused); ``meta["output_format"]`` records the format used.
Metadata also keeps ``request_id``, ``character_cost`` and, for music,
``song_id``. An exhausted quota (a 401), an invalid key, an unknown voice or
an over-long text fail at once; 429 and 5xx are retried.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ...errors import RenderFailed
from ..base import RenderRequest, RenderResult
from .base import CloudRenderer, check_duration, decode_audio, decode_pcm
from .http import ProviderSettings, Refusal

if TYPE_CHECKING:
    import httpx
    import numpy as np

__all__ = ["SEGMENT_WORDING", "ElevenLabs", "music_prompt"]

NUMBER = (int, float)
#: characters per request, by model (models.mdx, Aug 2025); unknown models get the smallest
MODEL_LIMITS = {
    "eleven_v3": 3000,
    "eleven_multilingual_v2": 10000,
    "eleven_flash_v2_5": 40000,
    "eleven_turbo_v2_5": 40000,
    "eleven_flash_v2": 30000,
    "eleven_turbo_v2": 30000,
}
_RATES = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
FORMATS = frozenset(
    [f"pcm_{r}" for r in _RATES]
    + [f"wav_{r}" for r in _RATES]
    + [f"opus_48000_{b}" for b in (32, 64, 96, 128, 192)]
    + ["mp3_22050_32", "mp3_24000_48"]
    + [f"mp3_44100_{b}" for b in (32, 64, 96, 128, 192)]
    + [f"mp3_48000_{b}" for b in (128, 192, 240, 320)]  # music only
)
#: what each kind's request needs, and the default format
REQUIRED = {"voice": "voice_id", "sfx": "text", "music": "prompt"}
DEFAULT_FORMAT = {"voice": "pcm_24000", "sfx": "pcm_24000", "music": "mp3_44100_128"}
FALLBACKS = {
    "voice": ("pcm_24000", "mp3_44100_128"),
    "sfx": ("pcm_24000", "mp3_44100_128"),
    "music": ("mp3_44100_128",),
}
#: the kinds each setting applies to
_VOICE_ONLY = "voice_id stability similarity_boost style use_speaker_boost speed language_code pronunciation_dictionaries timestamps"
PARAM_KINDS = {
    **dict.fromkeys(_VOICE_ONLY.split(), {"voice"}),
    **dict.fromkeys(["text", "prompt_influence", "loop"], {"sfx"}),
    **dict.fromkeys(["prompt", "force_instrumental"], {"music"}),
    "seed": {"voice", "music"},
    "duration": {"sfx", "music"},
    "model_id": {"voice", "sfx", "music"},
    "output_format": {"voice", "sfx", "music"},
}
#: appended to a music prompt per bed segment
SEGMENT_WORDING = {
    "intro": "Intro section: a short opening that states the theme and leads into the main section.",
    "main": "Main section, loopable: a steady passage with no intro or ending, so it repeats seamlessly.",
    "outro": "Outro, ending: a closing passage that resolves and ends cleanly.",
}
MAX_PROMPT = 2000 - max(len(w) for w in SEGMENT_WORDING.values()) - 2
RANGES = {
    "stability": (0, 1),
    "similarity_boost": (0, 1),
    "style": (0, 1),
    "speed": (0.7, 1.2),
    "prompt_influence": (0, 1),
    "seed": (0, 4294967295),
}
DURATIONS = {"sfx": (0.5, 30), "music": (3, 600), None: (0.5, 600)}
_FORMAT_REFUSED = re.compile(r"output.?format|only available|subscription_required|only_for_creator", re.I)
_DICTIONARY = re.compile(r"^[^:\s]+:[^:\s]+$")
_CONTAINERS = (b"ID3", b"RIFF", b"OggS", b"fLaC")


class ElevenLabs(CloudRenderer):
    """ElevenLabs voices, sound effects and music beds over the HTTP API."""

    provider = ProviderSettings(
        name="elevenlabs",
        base_url="https://api.elevenlabs.io",
        key_env="ELEVENLABS_API_KEY",
        concurrency=2,  # Free tier, multilingual_v2
        timeout=300.0,
    )
    version = "1"
    kinds = frozenset({"voice", "sfx", "music"})
    required = {"voice": ("voice_id",), "sfx": ("text",), "music": ("prompt",)}
    params = {
        "voice_id": str,
        "model_id": str,
        "stability": NUMBER,
        "similarity_boost": NUMBER,
        "style": NUMBER,
        "use_speaker_boost": bool,
        "speed": NUMBER,
        "seed": int,
        "language_code": str,
        "pronunciation_dictionaries": list,
        "output_format": str,
        "timestamps": bool,
        "text": str,
        "duration": NUMBER,
        "prompt_influence": NUMBER,
        "loop": bool,
        "prompt": str,
        "force_instrumental": bool,
    }
    max_chars = 10000
    thread_safe = True
    # key_params stays the default: every setting is content, output_format and timestamps included.

    def auth(self, key: str) -> dict[str, str]:
        """ElevenLabs takes the key in the ``xi-api-key`` header."""
        return {"xi-api-key": key}

    @classmethod
    def text_limit(cls, params: Mapping[str, Any]) -> int | None:
        """Characters per request for the voice's model (3000 for models not known here)."""
        return MODEL_LIMITS.get(params.get("model_id", "eleven_multilingual_v2"), 3000)

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Reject out-of-range values and settings that belong to another kind.

        Raises
        ------
        ValueError
            One sentence saying what is allowed.
        """
        kind = _kind_of(params)
        for name, (low, high) in RANGES.items():
            if name in params and not low <= params[name] <= high:
                raise ValueError(f"'{name}' must be between {low} and {high}")
        if "duration" in params and not _between(params["duration"], DURATIONS[kind]):
            low, high = DURATIONS[kind]
            raise ValueError(f"'duration' must be between {low} and {high} seconds")
        if params.get("output_format", DEFAULT_FORMAT[kind or "voice"]) not in _formats(kind):
            raise ValueError(f"'output_format' must be one of {', '.join(sorted(_formats(kind)))}")
        _check_voice(params)
        _check_sound_and_music(params)

    @classmethod
    def billing(cls, request: RenderRequest) -> str:
        """Characters for a voice line, seconds of audio for SFX and music."""
        if request.kind == "voice":
            return f"{len(request.text)} characters"
        seconds = request.params.get("duration")
        return f"{seconds:g} s of audio" if seconds else "one generation (the model picks its length)"

    def classify(self, response: httpx.Response) -> None:
        """Raise :class:`~mixdown.renderers.cloud.http.Refusal` for errors a retry cannot fix.

        429 ``too_many_concurrent_requests`` and ``system_busy`` stay retryable.
        """
        status, _ = _error(response)
        reasons = {
            "quota_exceeded": "exhausted quota: top up the ElevenLabs account",
            "invalid_api_key": "invalid API key: check ELEVENLABS_API_KEY",
            "max_character_limit_exceeded": "text too long for the model",
            "voice_not_found": "unknown voice_id",
            "detected_unusual_activity": "unusual activity detected (free tier behind a VPN or proxy?)",
        }
        if status in reasons:
            raise Refusal(reasons[status])
        if response.status_code == 401:
            raise Refusal("invalid API key: check ELEVENLABS_API_KEY")

    def render(self, request: RenderRequest) -> RenderResult:
        """Render a voice line, a sound effect or a music-bed segment.

        Returns
        -------
        RenderResult
            float32 ``[shape=(n, channels)]`` audio and the provider's metadata.
        """
        need = REQUIRED.get(request.kind)
        if need is None:
            raise RenderFailed(
                f"{request.target}: elevenlabs renders voice, sfx and music, not {request.kind}"
            )
        if not request.params.get(need):
            raise RenderFailed(f"{request.target}: the elevenlabs renderer needs '{need}' for {request.kind}")
        if request.kind == "voice":
            return self._voice(request)
        if request.kind == "sfx":
            return self._sound(request)
        return self._music(request)

    def voices(self) -> list[dict[str, str]]:
        """The account's voices as ``{"id", "name", "description"}`` dicts."""
        response = self.client.request("GET", "/v1/voices", target="elevenlabs voices")
        body = _json(response, "elevenlabs voices")
        return [
            {"id": v["voice_id"], "name": v.get("name") or "", "description": _describe(v)}
            for v in body.get("voices", [])
            if isinstance(v, dict) and "voice_id" in v
        ]

    def _voice(self, request: RenderRequest) -> RenderResult:
        params, target = request.params, request.target
        path = f"/v1/text-to-speech/{quote(params['voice_id'], safe='')}"
        if params.get("timestamps"):
            path += "/with-timestamps"
        response, fmt = self._post(
            path, _speech_body(request), params.get("output_format", "pcm_24000"), request
        )
        meta = _meta(response, fmt)
        content = response.content
        if params.get("timestamps"):
            content, meta["alignment"] = _timestamped(response, target)
        audio, sr = _decode(content, fmt, target)
        check_duration(audio, sr, target=target, text=request.text)
        return RenderResult(audio, sr, meta)

    def _sound(self, request: RenderRequest) -> RenderResult:
        params = request.params
        body: dict[str, Any] = {"text": params["text"]}
        body.update(_given(params, duration="duration_seconds", prompt_influence="prompt_influence"))
        body.update(_given(params, loop="loop", model_id="model_id"))
        response, fmt = self._post(
            "/v1/sound-generation", body, params.get("output_format", "pcm_24000"), request
        )
        audio, sr = _decode(response.content, fmt, request.target)
        check_duration(audio, sr, target=request.target, seconds=params.get("duration"))
        return RenderResult(audio, sr, _meta(response, fmt))

    def _music(self, request: RenderRequest) -> RenderResult:
        params = request.params
        body: dict[str, Any] = {"prompt": music_prompt(params["prompt"], request.segment)}
        if "duration" in params:
            body["music_length_ms"] = round(float(params["duration"]) * 1000)
        body["model_id"] = params.get("model_id", "music_v1")
        body.update(_given(params, force_instrumental="force_instrumental"))
        fmt = params.get("output_format", "mp3_44100_128")
        response, fmt = self._post("/v1/music", body, fmt, request)
        audio, sr = _decode(response.content, fmt, request.target)
        check_duration(audio, sr, target=request.target, seconds=params.get("duration"))
        meta = _meta(response, fmt)
        if response.headers.get("song-id"):
            meta["song_id"] = response.headers["song-id"]
        return RenderResult(audio, sr, meta)

    def _post(
        self, path: str, body: dict[str, Any], fmt: str, request: RenderRequest
    ) -> tuple[httpx.Response, str]:
        """POST ``body``, with ``output_format`` in the query; fall back once if the tier refuses it."""
        target = request.target
        query = {"output_format": fmt}
        response = self.client.request(
            "POST", path, target=target, expect=(200, 403), params=query, json=body
        )
        if response.status_code == 200:
            return response, fmt
        fallback = self._fallback(response, fmt, request)
        query = {"output_format": fallback}
        return self.client.request("POST", path, target=target, params=query, json=body), fallback

    def _fallback(self, response: httpx.Response, fmt: str, request: RenderRequest) -> str:
        """The format to retry with after a 403, or :class:`RenderFailed` if it was no format refusal."""
        status, message = _error(response)
        choices = [f for f in FALLBACKS[request.kind] if f != fmt]
        if not choices or not _FORMAT_REFUSED.search(f"{status} {message}"):
            said = (message or status or response.text[:300]).replace(self.client.api_key(), "***")
            raise RenderFailed(f"{request.target}: elevenlabs refused (HTTP 403): {said}")
        return choices[0]


def music_prompt(prompt: str, segment: str | None) -> str:
    """``prompt`` with the instruction for a bed ``segment`` (intro, main, outro) appended."""
    if segment is None:
        return prompt
    return f"{prompt}\n\n{SEGMENT_WORDING.get(segment, f'{segment.capitalize()} section.')}"


def _kind_of(params: Mapping[str, Any]) -> str | None:
    """The kind a settings table is for, from its required key; ``None`` when it has none."""
    found = [kind for kind, key in REQUIRED.items() if key in params]
    if len(found) > 1:
        raise ValueError("give only one of 'voice_id' (voice), 'text' (sfx) or 'prompt' (music)")
    if not found:
        return None
    kind = found[0]
    for name in params:
        if kind not in PARAM_KINDS.get(name, {kind}):
            raise ValueError(
                f"'{name}' does not apply to {kind}; it is for {'/'.join(sorted(PARAM_KINDS[name]))}"
            )
    return kind


def _between(value: float, bounds: tuple[float, float]) -> bool:
    return bounds[0] <= value <= bounds[1]


def _formats(kind: str | None) -> frozenset[str]:
    if kind == "music":  # documented for music: mp3 only
        return frozenset(f for f in FORMATS if f.startswith("mp3_"))
    if kind == "sfx":
        return frozenset(f for f in FORMATS if not f.startswith(("wav_", "mp3_48000")))
    if kind == "voice":
        return frozenset(f for f in FORMATS if not f.startswith("mp3_48000"))
    return FORMATS


def _check_voice(params: Mapping[str, Any]) -> None:
    dictionaries = params.get("pronunciation_dictionaries", [])
    if len(dictionaries) > 3 or not all(isinstance(d, str) and _DICTIONARY.match(d) for d in dictionaries):
        raise ValueError("'pronunciation_dictionaries' must be at most 3 strings \"dict_id:version_id\"")
    if "language_code" in params and not re.fullmatch(r"[a-z]{2}", params["language_code"]):
        raise ValueError("'language_code' must be a two-letter ISO 639-1 code such as \"de\"")


def _check_sound_and_music(params: Mapping[str, Any]) -> None:
    if "prompt" in params and "seed" in params:
        raise ValueError("'seed' cannot be combined with 'prompt' (ElevenLabs music rule); remove the seed")
    if len(params.get("prompt", "")) > MAX_PROMPT:
        raise ValueError(
            f"'prompt' must be at most {MAX_PROMPT} characters (mixdown appends a segment instruction)"
        )
    if params.get("loop") and params.get("model_id", "eleven_text_to_sound_v2") != "eleven_text_to_sound_v2":
        raise ValueError("'loop' works only with model_id \"eleven_text_to_sound_v2\"")


def _given(params: Mapping[str, Any], **names: str) -> dict[str, Any]:
    """``{wire_name: params[name]}`` for the ``names`` that are set."""
    return {wire: params[name] for name, wire in names.items() if name in params}


def _speech_body(request: RenderRequest) -> dict[str, Any]:
    """The JSON body of a text-to-speech request: only what was given, never the format."""
    params = request.params
    body: dict[str, Any] = {
        "text": request.text,
        "model_id": params.get("model_id", "eleven_multilingual_v2"),
    }
    keys = ("stability", "similarity_boost", "style", "use_speaker_boost", "speed")
    settings = {k: params[k] for k in keys if k in params}
    if settings:
        body["voice_settings"] = settings
    body.update(_given(params, seed="seed", language_code="language_code"))
    if params.get("pronunciation_dictionaries"):
        pairs = [d.split(":", 1) for d in params["pronunciation_dictionaries"]]
        body["pronunciation_dictionary_locators"] = [
            {"pronunciation_dictionary_id": d, "version_id": v} for d, v in pairs
        ]
    return body


def _error(response: httpx.Response) -> tuple[str, str]:
    """``(status, message)`` from any of ElevenLabs' error shapes; empty strings when absent."""
    try:
        body = response.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    detail = body.get("detail", body)
    if isinstance(detail, list):  # FastAPI 422: [{loc, msg, type}]
        items = [d for d in detail if isinstance(d, dict)]
        said = "; ".join(f"{'.'.join(map(str, d.get('loc', [])))}: {d.get('msg', '')}" for d in items)
        return (str(items[0].get("type", "")) if items else ""), said
    if isinstance(detail, dict):
        return str(detail.get("status") or ""), str(detail.get("message") or "")
    return "", str(detail)


def _json(response: httpx.Response, target: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RenderFailed(f"{target}: elevenlabs sent no JSON object ({response.text[:40]!r}…)")
    return body


def _meta(response: httpx.Response, fmt: str) -> dict[str, Any]:
    """What the response headers say about the request (never the key)."""
    meta: dict[str, Any] = {"output_format": fmt}
    if response.headers.get("request-id"):
        meta["request_id"] = response.headers["request-id"]
    cost = response.headers.get("character-cost", "")
    if cost.strip().isdigit():
        meta["character_cost"] = int(cost)
    return meta


def _timestamped(response: httpx.Response, target: str) -> tuple[bytes, list[list[Any]] | None]:
    """Audio bytes and ``[[char, start_seconds], …]`` (or ``None``) from a with-timestamps answer."""
    body = _json(response, target)
    try:
        audio = base64.b64decode(body["audio_base64"], validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise RenderFailed(f"{target}: elevenlabs sent no valid audio_base64; nothing was cached") from None
    alignment = body.get("alignment")
    if not isinstance(alignment, dict):
        return audio, None
    chars = alignment.get("characters") or []
    starts = alignment.get("character_start_times_seconds") or []
    return audio, [[c, round(float(t), 4)] for c, t in zip(chars, starts, strict=False)]


def _decode(content: bytes, fmt: str, target: str) -> tuple[np.ndarray, int]:
    """Headerless S16LE for ``pcm_<rate>``; a container (WAV, MP3, Ogg Opus) otherwise."""
    if fmt.startswith("pcm_") and not content.startswith(_CONTAINERS):
        return decode_pcm(content, sample_rate=int(fmt.split("_")[1]), channels=1, target=target)
    return decode_audio(content, target=target)


def _describe(voice: Mapping[str, Any]) -> str:
    """A one-line summary of a voice: its category and labels, else its description."""
    labels = voice.get("labels") or {}
    parts = [str(voice["category"])] if voice.get("category") else []
    parts += [f"{k}: {v}" for k, v in labels.items() if v] if isinstance(labels, dict) else []
    return ", ".join(parts) or str(voice.get("description") or "")
