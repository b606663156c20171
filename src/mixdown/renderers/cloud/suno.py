"""``suno``: music beds from Suno — through an UNOFFICIAL reseller API.

Suno has **no official public API**. This renderer speaks the de-facto
contract of the paid resellers (sunoapi.org, kie.ai and their clones), which
can change, break or disappear without notice; every result says so in
``meta["contract"] = "unofficial reseller"``. Point it at another reseller
with ``[providers.suno] base_url`` or ``MIXDOWN_SUNO_BASE_URL``.

Settings (``[music.NAME]`` with ``renderer = "suno"``):

``prompt``
    Non-custom mode: a description of the music, at most 500 characters
    (less the room taken by the segment wording below). Custom mode: the
    lyrics (needed unless instrumental).
``style``, ``title``
    Custom mode only (required there): the style tags and the title
    (at most 80 characters, less the segment suffix).
``model``
    ``V4_5`` (default), ``V3_5``, ``V4``, ``V4_5PLUS``, ``V4_5ALL`` or ``V5``.
``instrumental``
    Default true: a bed under speech wants no vocals.
``custom``
    Default false; sent as ``customMode``.

A bed renders as three segments. Each request is changed slightly so the
three differ (:data:`SEGMENTS`): in non-custom mode the prompt gets a short
instruction ("…; intro: an opening that builds in"); in custom mode the
title gets a suffix ("… (Intro)") and the style the same instruction, while
the lyrics are left alone.

Flow: ``POST /api/v1/generate`` (Bearer key from ``SUNO_API_KEY``) →
``{"code": 200, "data": {"taskId"}}``. Resellers report errors **inside
HTTP 200** through ``code``: 430 ("call frequency too high") is retried after
a backoff, at most ``max_retries`` times; any other code fails with the
reseller's ``msg`` — 429 means *insufficient credits* in the resellers'
documentation, so it is not retried. ``callBackUrl`` is required by the
resellers, but mixdown polls instead and sends an inert
``https://localhost.invalid/unused``. ``GET /api/v1/generate/record-info``
is polled (2 s, ×1.5 per poll, up to 15 s apart, for at most the provider
``timeout``, 600 s by default) through PENDING, TEXT_SUCCESS, FIRST_SUCCESS
… until ``SUCCESS``; a status ending in ``FAILED`` or containing ``ERROR``
fails with its ``errorCode`` and ``errorMessage``. The first clip's
``audioUrl`` (an MP3 on the reseller's file host) is downloaded without the
key — the file needs none, and the key stays with the API host. Every
generation makes two clips; both ids and durations are kept in ``meta``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from ...errors import RenderFailed
from ..base import RenderRequest, RenderResult
from .base import Backoff, CloudRenderer, check_duration, decode_audio
from .http import Client, ProviderSettings, Refusal

if TYPE_CHECKING:
    import httpx

__all__ = ["MODELS", "SEGMENTS", "Suno", "generate_body"]

CONTRACT = "unofficial reseller"
GENERATE = "/api/v1/generate"
RECORD = "/api/v1/generate/record-info"
CALLBACK = "https://localhost.invalid/unused"  # required by resellers; mixdown polls instead
MODELS = ("V3_5", "V4", "V4_5", "V4_5PLUS", "V4_5ALL", "V5")
DEFAULT_MODEL = "V4_5"
SHORT_LIMITS = ("V3_5", "V4")  # models with the smaller custom-mode limits
PROMPT_LIMIT = 500  # non-custom mode
LYRICS_LIMIT = {"short": 3000, "long": 5000}  # custom mode
STYLE_LIMIT = {"short": 200, "long": 1000}
TITLE_LIMIT = 80
RETRY_CODES = frozenset({430})  # "call frequency too high"; 429 is insufficient credits
MIN_SECONDS = 5.0
POLL_FIRST, POLL_GROWTH, POLL_MAX = 2.0, 1.5, 15.0

#: music-bed segment → (title suffix, instruction added to the prompt or style)
SEGMENTS: dict[str, tuple[str, str]] = {
    "intro": ("Intro", "intro: an opening that builds in"),
    "main": ("Main", "main section: steady and loopable, no ending"),
    "outro": ("Outro", "outro: an ending that winds down and resolves"),
}
_HINT_ROOM = max(len(f"; {hint}") for _, hint in SEGMENTS.values())
_TITLE_ROOM = max(len(f" ({suffix})") for suffix, _ in SEGMENTS.values())


def _size(model: str) -> str:
    return "short" if model in SHORT_LIMITS else "long"


class Suno(CloudRenderer):
    """Suno music through a reseller: submit, poll, download the first clip."""

    provider = ProviderSettings(
        name="suno",
        base_url="https://api.sunoapi.org",
        key_env="SUNO_API_KEY",
        concurrency=2,
        timeout=600.0,
    )
    version = "1"
    kinds = frozenset({"music"})
    params = {
        "prompt": str,
        "style": str,
        "title": str,
        "model": str,
        "instrumental": bool,
        "custom": bool,
    }

    @cached_property
    def _files(self) -> Client:
        """Audio files live on the reseller's file host and need no key: keep it off those requests."""
        return Client(self.settings, auth=lambda key: {}, transport=self._transport, sleep=self._sleep)

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Apply the resellers' rules for custom and non-custom mode, leaving room for segment wording."""
        model = params.get("model", DEFAULT_MODEL)
        if model not in MODELS:
            raise ValueError(f"'model' must be one of {', '.join(MODELS)}")
        prompt, style, title = (str(params.get(k, "")).strip() for k in ("prompt", "style", "title"))
        if not params.get("custom", False):
            if style or title:
                raise ValueError(
                    "'style' and 'title' need custom = true; in non-custom mode Suno takes only 'prompt'"
                )
            if not prompt:
                raise ValueError("'prompt' is required in non-custom mode: describe the music")
            _longest("prompt", prompt, PROMPT_LIMIT, " in non-custom mode", _HINT_ROOM)
            return
        instrumental = params.get("instrumental", True)
        needed = ("style", "title") if instrumental else ("style", "prompt", "title")
        missing = [k for k in needed if not str(params.get(k, "")).strip()]
        if missing:
            kind = "instrumental custom mode" if instrumental else "custom mode with vocals"
            raise ValueError(
                f"{kind} needs {', '.join(repr(k) for k in needed)}; missing {', '.join(missing)}"
            )
        size = _size(model)
        _longest("prompt", prompt, LYRICS_LIMIT[size], f" for {model}")
        _longest("style", style, STYLE_LIMIT[size], f" for {model}", _HINT_ROOM)
        _longest("title", title, TITLE_LIMIT, "", _TITLE_ROOM)

    @classmethod
    def billing(cls, request: RenderRequest) -> str:
        """Every request is one generation, which makes two clips."""
        return "one generation (2 clips)"

    def classify(self, response: httpx.Response) -> None:
        """A 401 or 403 from the reseller means the key is bad."""
        if response.status_code in (401, 403):
            raise Refusal(f"invalid API key: check {self.settings.key_env}")

    def render(self, request: RenderRequest) -> RenderResult:
        """Generate one bed segment; returns the first clip's samples."""
        target = request.target or "suno"
        task_id = self._submit(generate_body(request.params, request.segment, target), target)
        record = self._wait(task_id, target)
        clips = [c for c in (_dig(record, "response", "sunoData") or []) if isinstance(c, dict)]
        chosen = next((c for c in clips if c.get("audioUrl")), None)
        if chosen is None:
            raise RenderFailed(
                f"{target}: Suno task {task_id} succeeded but listed no audioUrl; nothing was cached"
            )
        download = self._files.request("GET", str(chosen["audioUrl"]), target=target)
        audio, sr = decode_audio(download.content, target=target, what="Suno download")
        check_duration(audio, sr, target=target)
        if len(audio) / sr < MIN_SECONDS:
            raise RenderFailed(
                f"{target}: got {len(audio) / sr:.2f} s of audio from Suno, expected at least {MIN_SECONDS:g} s (truncated?); nothing was cached"
            )
        meta: dict[str, Any] = {
            "contract": CONTRACT,
            "taskId": task_id,
            "clip": chosen.get("id"),
            "clip_ids": [c.get("id") for c in clips],
            "clip_durations": [c.get("duration") for c in clips],
            "model": chosen.get("modelName") or request.params.get("model", DEFAULT_MODEL),
        }
        return RenderResult(audio, sr, meta)

    def close(self) -> None:
        """Close the API and file connections."""
        super().close()
        if "_files" in self.__dict__:  # only if a file was downloaded
            self._files.close()

    def _submit(self, body: dict[str, Any], target: str) -> str:
        """Start a generation; retry body codes that mean "too fast"; return the ``taskId``."""
        limit = self.settings.max_retries
        for attempt in range(limit + 1):
            reply = _json(self.client.request("POST", GENERATE, target=target, json=body), target, "generate")
            code = reply.get("code")
            if code == 200:
                task_id = _dig(reply, "data", "taskId")
                if not task_id:
                    raise RenderFailed(
                        f"{target}: Suno's generate reply had no data.taskId; nothing was cached"
                    )
                return str(task_id)
            if code not in RETRY_CODES or attempt == limit:
                break
            self._sleep(min(self.settings.backoff * 2**attempt, self.settings.max_backoff))
        tries = f" after {limit + 1} attempts" if code in RETRY_CODES else ""
        raise RenderFailed(
            f"{target}: suno refused{tries} (code {code}): {_msg(reply, self.settings.key_env, self.client.api_key())}"
        )

    def _wait(self, task_id: str, target: str) -> dict[str, Any]:
        """Poll the task until ``SUCCESS``, backing off, within ``settings.timeout``; its ``data``."""

        def step() -> dict[str, Any] | None:
            response = self.client.request("GET", RECORD, target=target, params={"taskId": task_id})
            reply = _json(response, target, "record-info")
            code = reply.get("code")
            if code in RETRY_CODES:
                return None
            if code != 200:
                raise RenderFailed(
                    f"{target}: suno refused the status query (code {code}): {_msg(reply, self.settings.key_env, self.client.api_key())}"
                )
            data = reply.get("data")
            return data if isinstance(data, dict) and _finished(data, task_id, target) else None

        limit = self.settings.timeout
        return self.wait_for(
            step,
            Backoff(POLL_FIRST, POLL_GROWTH, POLL_MAX),
            f"{target}: Suno did not finish within {limit:g} s (taskId {task_id}); nothing was cached",
        )


def generate_body(params: Mapping[str, Any], segment: str | None, target: str = "suno") -> dict[str, Any]:
    """The JSON body of ``POST /api/v1/generate`` for one bed ``segment``."""
    custom = bool(params.get("custom", False))
    prompt = str(params.get("prompt", "")).strip()
    style = str(params.get("style", "")).strip()
    title = str(params.get("title", "")).strip()
    if segment is not None:
        if segment not in SEGMENTS:
            raise RenderFailed(
                f"{target}: unknown music segment {segment!r}; use one of {', '.join(SEGMENTS)}"
            )
        suffix, hint = SEGMENTS[segment]
        if custom:
            style, title = f"{style}; {hint}", f"{title} ({suffix})"
        else:
            prompt = f"{prompt}; {hint}"
    body: dict[str, Any] = {"customMode": custom, "instrumental": bool(params.get("instrumental", True))}
    if prompt:  # instrumental custom mode needs no prompt
        body["prompt"] = prompt
    if custom:
        body["style"], body["title"] = style, title
    body["model"] = str(params.get("model", DEFAULT_MODEL))
    body["callBackUrl"] = CALLBACK
    return body


def _finished(data: Mapping[str, Any], task_id: str, target: str) -> bool:
    """True on ``SUCCESS``; :class:`RenderFailed` on a failed status; False while in progress."""
    status = str(data.get("status") or "").upper()
    if status == "SUCCESS":
        return True
    if status.endswith("FAILED") or "ERROR" in status:
        code, message = data.get("errorCode"), data.get("errorMessage") or "no message"
        raise RenderFailed(
            f"{target}: Suno task {task_id} failed: {status} (errorCode {code}): {message}; nothing was cached"
        )
    if status == "CALLBACK_EXCEPTION":
        # Our callback URL is inert on purpose; if the clips are there, the job itself succeeded.
        clips = _dig(data, "response", "sunoData") or []
        return bool(clips) and all(isinstance(c, dict) and c.get("audioUrl") for c in clips)
    return False  # PENDING, TEXT_SUCCESS, FIRST_SUCCESS, …


def _json(response: httpx.Response, target: str, what: str) -> dict[str, Any]:
    """The JSON object of a reply, or :class:`RenderFailed` saying what came instead."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise RenderFailed(
            f"{target}: Suno's {what} reply was not a JSON object ({response.content[:60]!r}…); nothing was cached"
        )
    return body


def _msg(reply: Mapping[str, Any], key_env: str, key: str) -> str:
    """The reseller's ``msg`` (key redacted), plus a hint when the code says the key is bad."""
    message = str(reply.get("msg") or "no message").replace(key, "***")
    if reply.get("code") in (401, 403):
        message += f"; check {key_env}"
    return message


def _dig(body: Any, *keys: str) -> Any:
    """``body[k1][k2]…``, or ``None`` where a level is missing or not an object."""
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def _longest(name: str, value: str, limit: int, where: str, reserved: int = 0) -> None:
    if len(value) > limit - reserved:
        room = " (less room for the segment wording)" if reserved else ""
        raise ValueError(f"'{name}' must be at most {limit - reserved} characters{where}{room}")
