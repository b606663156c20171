"""What every cloud renderer shares: its HTTP client, decoding, validation.

A cloud renderer subclasses :class:`CloudRenderer`, sets ``provider`` (the
default :class:`~mixdown.renderers.cloud.http.ProviderSettings`) and implements ``auth``,
``render`` and optionally ``classify`` (which errors retrying cannot fix),
``voices`` (for ``mixdown voices NAME``) and ``text_limit``.

Every response is decoded and checked before it can reach the cache:
decodable audio of a plausible duration, else
:class:`~mixdown.errors.RenderFailed` naming the target. What the provider
reports about the request (its request id, the characters it billed) goes
into the result's metadata; the key never does.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

from ...errors import RenderFailed
from ..base import RendererBase, RenderRequest
from .http import Client, ProviderSettings

if TYPE_CHECKING:
    import httpx
    import numpy as np

__all__ = ["CloudRenderer", "Backoff", "check_duration", "decode_audio", "decode_pcm", "poll"]

SPEECH_SECONDS_PER_CHAR = (0.02, 1.0)  # plausible range for any voice at any speed
T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """Waits between polls of an asynchronous job: ``first``, growing by ``growth``, at most ``most``."""

    first: float
    growth: float
    most: float


def poll(
    step: Callable[[], T | None],
    *,
    backoff: Backoff,
    timeout: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    on_timeout: str,
) -> T:
    """Wait, then call ``step`` until it returns a value; :class:`RenderFailed` after ``timeout`` s.

    For providers whose jobs answer "not yet" for a while (AudioStack's 202,
    Suno's pending statuses). ``on_timeout`` is the failure message.
    """
    start, delay = clock(), backoff.first
    while True:
        remaining = timeout - (clock() - start)
        if remaining <= 0:
            raise RenderFailed(on_timeout)
        sleep(min(delay, remaining))
        delay = min(delay * backoff.growth, backoff.most)
        result = step()
        if result is not None:
            return result


class CloudRenderer(RendererBase):
    """Base of renderers that call a provider's HTTP API."""

    provider: ClassVar[ProviderSettings]

    def __init__(
        self,
        settings: ProviderSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sleep, self._clock = sleep, clock  # tests pass fakes: no real waiting
        self._transport = transport
        self.settings = settings or self.provider
        self.client = Client(
            self.settings, auth=self.auth, classify=self.classify, transport=transport, sleep=sleep
        )

    def wait_for(self, step: Callable[[], T | None], backoff: Backoff, on_timeout: str) -> T:
        """:func:`poll` ``step`` within the provider's ``timeout``."""
        return poll(
            step,
            backoff=backoff,
            timeout=self.settings.timeout,
            sleep=self._sleep,
            clock=self._clock,
            on_timeout=on_timeout,
        )

    def auth(self, key: str) -> dict[str, str]:
        """Request headers carrying ``key``."""
        return {"Authorization": f"Bearer {key}"}

    def classify(self, response: httpx.Response) -> None:
        """Raise :class:`~mixdown.renderers.cloud.http.Refusal` for failures a retry cannot fix."""

    def voices(self) -> list[dict[str, str]]:
        """The provider's voices as ``{"id", "name", "description"}`` dicts."""
        raise NotImplementedError(f"the '{self.settings.name}' renderer cannot list voices")

    @classmethod
    def billing(cls, request: RenderRequest) -> str:
        """What rendering ``request`` would bill, for ``mixdown plan``."""
        if request.kind == "voice":
            return f"{len(request.text)} characters"
        seconds = request.params.get("duration") or request.params.get("duration_seconds")
        return f"{seconds:g} s of audio" if seconds else "one generation"

    def close(self) -> None:
        """Close the HTTP connections."""
        self.client.close()


def decode_audio(content: bytes, *, target: str, what: str = "response") -> tuple[np.ndarray, int]:
    """Decode a container format (WAV, FLAC, OGG, MP3) into float32 ``(n, channels)``."""
    import soundfile as sf

    if not content:
        raise RenderFailed(f"{target}: the {what} was empty; nothing was cached")
    head = content[:64].lstrip()
    if head[:1] in (b"{", b"[", b"<"):
        raise RenderFailed(f"{target}: the {what} was not audio ({head[:40]!r}…); nothing was cached")
    try:
        y, sr = sf.read(io.BytesIO(content), dtype="float32", always_2d=True)
    except Exception as err:  # libsndfile reports truncated and foreign data in several ways
        raise RenderFailed(
            f"{target}: the {what} did not decode as audio ({err}); nothing was cached"
        ) from None
    return y, int(sr)


def decode_pcm(content: bytes, *, sample_rate: int, channels: int = 1, target: str) -> tuple[np.ndarray, int]:
    """Decode headerless signed 16-bit little-endian PCM."""
    import numpy as np

    frame = 2 * channels
    if not content:
        raise RenderFailed(f"{target}: the response was empty; nothing was cached")
    if content.lstrip()[:1] in (b"{", b"[", b"<"):
        raise RenderFailed(f"{target}: the response was not audio ({content[:40]!r}…); nothing was cached")
    if len(content) % frame:
        raise RenderFailed(
            f"{target}: the response was not whole 16-bit PCM frames ({len(content)} bytes); nothing was cached"
        )
    samples = np.frombuffer(content, dtype="<i2").astype(np.float32) / 32768.0
    return samples.reshape(-1, channels), sample_rate


def check_duration(
    audio: np.ndarray,
    sample_rate: int,
    *,
    target: str,
    text: str | None = None,
    seconds: float | None = None,
) -> None:
    """Refuse audio whose length cannot be right for ``text`` or the requested ``seconds``."""
    got = len(audio) / sample_rate
    if text is not None:
        low, high = (max(0.1, len(text) * s) for s in SPEECH_SECONDS_PER_CHAR)
        high += 5.0
    elif seconds is not None:
        low, high = 0.5 * seconds, 1.5 * seconds + 1.0
    else:
        low, high = 0.05, 3600.0
    if not low <= got <= high:
        expected = f"{low:.1f}–{high:.1f} s"
        raise RenderFailed(
            f"{target}: got {got:.2f} s of audio, expected {expected} (truncated?); nothing was cached"
        )
