"""``audiostack``: voice lines through AudioStack's script → TTS flow (api.audio).

For teams already on AudioStack who want to keep their voices. Settings
(``[voices.NAME]`` with ``renderer = "audiostack"``):

``voice`` (required)
    An AudioStack voice alias; ``mixdown voices audiostack`` lists them.
``speed``
    0.5–2.0 (default 1.0).

One line is three API calls and a download:

1. ``POST /content/script`` with the line as one ``<as:section name="main">``
   (XML special characters escaped), in project and module ``mixdown``,
   named by a short hash of the text so the same line keeps the same name;
2. ``POST /speech/tts`` ``{scriptId, voice, speed}`` → 202 (or 200) with
   ``data.speechId``; empty values are left out of the body, as the SDK does;
3. ``GET /speech/tts/{speechId}`` while it answers 202, waiting 0.5 s, then
   ×1.5 per poll up to 5 s, and giving up after the provider's ``timeout``
   (300 s by default) — the SDK polls every 50 ms, which a renderer running
   many lines at once should not;
4. ``GET`` the URL of ``data.sections[0]`` (sent with ``x-api-key``, as the
   SDK does) → WAV, decoded and checked against the length of the text.

The key comes from ``AUDIOSTACK_API_KEY``; a 403 (AudioStack's answer to a
bad key) fails at once, other 4xx fail with AudioStack's message, 5xx and 429
are retried. ``meta`` keeps ``scriptId``, ``speechId`` and, when AudioStack
reports it, ``creditsUsed``.

``max_chars`` (5000) is a conservative choice of mixdown's: AudioStack
documents no per-script limit, and longer lines are split at sentences.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from ...errors import RenderFailed
from ..base import RenderRequest, RenderResult
from .base import Backoff, CloudRenderer, check_duration, decode_audio
from .http import ProviderSettings, Refusal

if TYPE_CHECKING:
    import httpx

__all__ = ["AudioStack", "script_text"]

PROJECT = "mixdown"  # projectName and moduleName of every script mixdown creates
SECTION = "main"
SPEED = (0.5, 2.0)
POLL_FIRST, POLL_GROWTH, POLL_MAX = 0.5, 1.5, 5.0  # seconds between status polls


def script_text(text: str) -> str:
    """The AudioStack script for one line: a single section, XML-escaped."""
    return f'<as:section name="{SECTION}">{escape(text)}</as:section>'


def script_name(text: str) -> str:
    """A stable, short name for the script of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class AudioStack(CloudRenderer):
    """AudioStack TTS: script, speech job, polling, WAV download."""

    provider = ProviderSettings(
        name="audiostack",
        base_url="https://v2.api.audio",
        key_env="AUDIOSTACK_API_KEY",
        concurrency=4,
        timeout=300.0,
    )
    version = "1"
    kinds = frozenset({"voice"})
    params = {"voice": str, "speed": (int, float)}
    max_chars = 5000  # ours, not AudioStack's: it documents no limit

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Require a voice alias and keep speed within 0.5–2.0."""
        if not str(params.get("voice", "")).strip():
            raise ValueError(
                "'voice' is required: an AudioStack voice alias (list them with `mixdown voices audiostack`)"
            )
        if not SPEED[0] <= params.get("speed", 1.0) <= SPEED[1]:
            raise ValueError(f"'speed' must be between {SPEED[0]:g} and {SPEED[1]:g}")

    def auth(self, key: str) -> dict[str, str]:
        """AudioStack takes the key in ``x-api-key``."""
        return {"x-api-key": key}

    def classify(self, response: httpx.Response) -> None:
        """A 403 from the API (not from a file host) means the key is bad."""
        if response.status_code in (401, 403) and _host(str(response.request.url)) == _host(
            self.settings.base_url
        ):
            raise Refusal(f"invalid API key: check {self.settings.key_env}")

    def render(self, request: RenderRequest) -> RenderResult:
        """Speak ``request.text`` with the configured voice; returns the WAV's samples."""
        target = request.target or "audiostack"
        voice = str(request.params.get("voice", "")).strip()
        if not voice:
            raise RenderFailed(
                f"{target}: the 'audiostack' renderer needs 'voice' (an AudioStack voice alias)"
            )
        script_id, credits = self._script(request.text, target)
        speech = self._speech(script_id, voice, float(request.params.get("speed", 1.0)), target)
        speech_id = str(_dig(speech, "data", "speechId") or "")
        if _dig(speech, "data", "sections") is None:  # 202: still rendering
            speech = self._wait(speech_id, target)
        url = _section_url(speech, target)
        download = self.client.request("GET", url, target=target)
        audio, sr = decode_audio(download.content, target=target, what="AudioStack download")
        check_duration(audio, sr, target=target, text=request.text)
        meta: dict[str, Any] = {"scriptId": script_id, "speechId": speech_id}
        reported = _dig(speech, "meta", "creditsUsed")
        if reported is None:
            reported = credits
        if reported is not None:
            meta["creditsUsed"] = reported
        return RenderResult(audio, sr, meta)

    def voices(self) -> list[dict[str, str]]:
        """AudioStack's voices: ``data.voices`` (or ``data``) from ``GET /speech/voice``."""
        target = "audiostack voices"
        body = _json(self.client.request("GET", "/speech/voice", target=target), target, "voice list")
        data = body.get("data")
        items = data.get("voices") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise RenderFailed(f"{target}: the reply held no voice list (no data.voices)")
        out = []
        for item in items:
            if not isinstance(item, dict) or not (item.get("alias") or item.get("voice")):
                continue
            alias = str(item.get("alias") or item.get("voice"))
            about = [str(item[k]) for k in ("provider", "language", "gender") if item.get(k)]
            if item.get("description"):
                about.append(str(item["description"]))
            out.append({"id": alias, "name": str(item.get("name") or alias), "description": ", ".join(about)})
        return out

    def _script(self, text: str, target: str) -> tuple[str, Any]:
        """Create the script of one line; its ``scriptId`` and any credits reported."""
        body = {
            "scriptText": script_text(text),
            "projectName": PROJECT,
            "moduleName": PROJECT,
            "scriptName": script_name(text),
        }
        reply = _json(
            self.client.request("POST", "/content/script", target=target, json=body), target, "script"
        )
        script_id = _dig(reply, "data", "scriptId")
        if not script_id:
            raise RenderFailed(
                f"{target}: AudioStack's script reply had no data.scriptId; nothing was cached"
            )
        return str(script_id), _dig(reply, "meta", "creditsUsed")

    def _speech(self, script_id: str, voice: str, speed: float, target: str) -> dict[str, Any]:
        """Start the TTS job; the reply (202 with a ``speechId``, or 200 when already done)."""
        body = _strip_empty({"scriptId": script_id, "voice": voice, "speed": speed})
        response = self.client.request("POST", "/speech/tts", target=target, expect=(200, 202), json=body)
        reply = _json(response, target, "speech")
        if not _dig(reply, "data", "speechId"):
            raise RenderFailed(
                f"{target}: AudioStack's speech reply had no data.speechId; nothing was cached"
            )
        return reply

    def _wait(self, speech_id: str, target: str) -> dict[str, Any]:
        """Poll the speech job until it answers 200, backing off, within ``settings.timeout``."""
        path = f"/speech/tts/{quote(speech_id, safe='')}"

        def step() -> dict[str, Any] | None:
            response = self.client.request("GET", path, target=target, expect=(200, 202))
            return _json(response, target, "speech") if response.status_code == 200 else None

        limit = self.settings.timeout
        return self.wait_for(
            step,
            Backoff(POLL_FIRST, POLL_GROWTH, POLL_MAX),
            f"{target}: AudioStack did not finish within {limit:g} s (speechId {speech_id}); nothing was cached",
        )


def _section_url(reply: Mapping[str, Any], target: str) -> str:
    sections = _dig(reply, "data", "sections")
    first = sections[0] if isinstance(sections, list) and sections else None
    url = first.get("url") if isinstance(first, dict) else None
    if not url:
        raise RenderFailed(
            f"{target}: AudioStack's finished speech had no data.sections[0].url; nothing was cached"
        )
    return str(url)


def _json(response: httpx.Response, target: str, what: str) -> dict[str, Any]:
    """The JSON object of a reply, or :class:`RenderFailed` saying what came instead."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RenderFailed(
            f"{target}: AudioStack's {what} reply was not a JSON object ({response.content[:60]!r}…); nothing was cached"
        )
    return body


def _dig(body: Any, *keys: str) -> Any:
    """``body[k1][k2]…``, or ``None`` where a level is missing or not an object."""
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _strip_empty(body: dict[str, Any]) -> dict[str, Any]:
    """Leave out ``""``, ``{}``, ``[]`` and ``None``, as the SDK does (``False`` and ``0`` stay)."""
    return {k: v for k, v in body.items() if v is not None and v != "" and v != {} and v != []}


def _host(url: str) -> str:
    return urlsplit(url).netloc.lower()
