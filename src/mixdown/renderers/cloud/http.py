"""The HTTP layer every cloud renderer shares.

One :class:`Client` per provider, built on a sync ``httpx.Client``:

* **Credentials** come from an environment variable named by the provider
  (``ELEVENLABS_API_KEY``, …), read only when a request is made; a missing
  key is :class:`~mixdown.errors.RendererUnavailable` naming the variable.
  Keys never appear in messages, logs, cache records or content keys.
* **Timeouts** suit long generations: a short connect timeout, a long read
  timeout (minutes, configurable).
* **Retries** on 408, 409, 429, 5xx, timeouts and connection errors, with
  exponential backoff and full jitter, honouring ``retry-after-ms``,
  ``Retry-After`` (seconds or an HTTP date) and rate-limit reset headers.
  Errors a retry cannot fix — an invalid key, an exhausted quota (which
  ElevenLabs reports as 401 and OpenAI as 429 ``insufficient_quota``), a
  refused request — fail at once with a message saying which.
* **Concurrency** is limited per provider by a semaphore shared by every
  client in the process, so ``doit -n 16 -P thread`` never sends more
  requests at once than the account allows.

Settings per provider come from :class:`ProviderSettings` defaults, then the
show's ``[providers.NAME]`` table, then ``MIXDOWN_<NAME>_BASE_URL`` and
``MIXDOWN_<NAME>_CONCURRENCY`` in the environment.
"""

from __future__ import annotations

import email.utils
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError, RendererUnavailable, RenderFailed
from ...settings import PROVIDER_KEYS

if TYPE_CHECKING:  # httpx loads with the first cloud renderer, not with every build
    import httpx

__all__ = [
    "RETRYABLE",
    "Client",
    "ProviderSettings",
    "Refusal",
    "configure",
    "limiter",
    "retry_delay",
    "share_limits",
]

RETRYABLE = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})


@dataclass(frozen=True)
class ProviderSettings:
    """How to reach one provider. None of this enters a content key."""

    name: str  # "elevenlabs"
    base_url: str
    key_env: str  # the environment variable holding the API key
    concurrency: int = 2  # requests in flight at once, across all threads
    timeout: float = 300.0  # seconds to wait for a response (long generations)
    connect_timeout: float = 10.0
    max_retries: int = 4
    backoff: float = 1.0  # first backoff, doubled per attempt, with jitter
    max_backoff: float = 60.0


class Refusal(Exception):
    """Raised by a provider's ``classify`` hook: the response cannot be fixed by retrying."""


def configure(defaults: ProviderSettings, table: Mapping[str, Any] | None) -> ProviderSettings:
    """Apply a show's ``[providers.NAME]`` table and the environment to ``defaults``."""
    given = dict(table or {})
    unknown = sorted(set(given) - set(PROVIDER_KEYS))
    if unknown:
        raise ConfigError(
            f"project.toml: unknown key '{unknown[0]}' in [providers.{defaults.name}]; "
            f"allowed: {', '.join(PROVIDER_KEYS)}"
        )
    env = f"MIXDOWN_{defaults.name.upper()}_"
    if os.environ.get(env + "BASE_URL"):
        given["base_url"] = os.environ[env + "BASE_URL"]
    if os.environ.get(env + "CONCURRENCY"):
        given["concurrency"] = int(os.environ[env + "CONCURRENCY"])
    kinds = {"float": ((int, float), "a number"), "int": ((int,), "an integer"), "str": ((str,), "a string")}
    for f in fields(ProviderSettings):
        if f.name in given:
            allowed, described = kinds[str(f.type)]
            if not isinstance(given[f.name], allowed) or isinstance(given[f.name], bool):
                raise ConfigError(f"project.toml: [providers.{defaults.name}] {f.name} must be {described}")
    settings = replace(defaults, **given)
    if settings.concurrency < 1 or settings.max_retries < 0:
        raise ConfigError(
            f"project.toml: [providers.{defaults.name}] concurrency must be >= 1, max_retries >= 0"
        )
    return settings


_limits: dict[tuple[str, int], Any] = {}
_limits_lock = threading.Lock()


def _process_limit(name: str, size: int) -> Any:
    return threading.BoundedSemaphore(size)


#: makes a provider's limit of requests in flight from its name and size: one per process,
#: unless a cluster worker shares one with the whole cluster (:func:`share_limits`)
_make_limit: Callable[[str, int], Any] = _process_limit


def share_limits(make: Callable[[str, int], Any]) -> None:
    """From now on, make each provider's limit of requests in flight with ``make(name, size)``
    (a context manager): a Dask worker's is the whole cluster's, so that N workers keep to the
    provider's tier together instead of each to its own."""
    global _make_limit
    with _limits_lock:
        _make_limit = make
        _limits.clear()


def limiter(settings: ProviderSettings) -> Any:
    """The semaphore of a provider (per configured size): the process's, or the cluster's."""
    with _limits_lock:
        key = (settings.name, settings.concurrency)
        if key not in _limits:
            _limits[key] = _make_limit(settings.name, settings.concurrency)
        return _limits[key]


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")


def retry_delay(response: httpx.Response, *, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait, from its response headers, if any."""
    headers = response.headers
    if "retry-after-ms" in headers:
        try:
            return max(float(headers["retry-after-ms"]) / 1000.0, 0.0)
        except ValueError:
            pass
    if "retry-after" in headers:
        value = headers["retry-after"].strip()
        try:
            return max(float(value), 0.0)
        except ValueError:
            when = email.utils.parsedate_to_datetime(value) if value else None
            if when is not None:
                return max(when.timestamp() - (now if now is not None else time.time()), 0.0)
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset"):
        if name in headers:
            return _reset_seconds(headers[name], now)
    return None


def _reset_seconds(value: str, now: float | None) -> float | None:
    """``x-ratelimit-reset``: a unix time (ElevenLabs SDK) or a duration like ``1m30s`` (OpenAI)."""
    value = value.strip()
    try:
        number = float(value)
    except ValueError:
        parts = _DURATION.findall(value)
        if not parts:
            return None
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[unit] for n, unit in parts)
    if number > 1e9:  # an absolute unix time
        return max(number - (now if now is not None else time.time()), 0.0)
    return max(number, 0.0)


class Client:
    """Requests to one provider with credentials, limits, retries and clear errors.

    ``auth`` turns the API key into request headers; ``classify`` looks at a
    failed response and raises :class:`Refusal` with a reason when retrying
    cannot help. ``transport`` (an ``httpx.MockTransport`` in tests) and
    ``sleep`` are for tests.
    """

    def __init__(
        self,
        settings: ProviderSettings,
        *,
        auth: Callable[[str], dict[str, str]],
        classify: Callable[[httpx.Response], None] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._auth = auth
        self._classify = classify or (lambda response: None)
        self._sleep = sleep
        import httpx

        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
        self._http = httpx.Client(base_url=settings.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def api_key(self) -> str:
        """The key from the environment, or :class:`RendererUnavailable` naming the variable."""
        key = os.environ.get(self.settings.key_env, "").strip()
        if not key:
            raise RendererUnavailable(
                f"the '{self.settings.name}' renderer needs an API key: set {self.settings.key_env}"
            )
        return key

    def request(
        self,
        method: str,
        path: str,
        *,
        target: str,
        expect: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request, retrying what can be retried; return a response with an expected status.

        ``kwargs`` go to ``httpx.Client.request`` (``params``, ``json``,
        ``data``, ``files``). Raises :class:`RenderFailed` naming ``target``.
        """
        import httpx

        key = self.api_key()
        all_headers = {**self._auth(key), **(headers or {})}
        name, limit = self.settings.name, self.settings.max_retries
        problem = ""
        for attempt in range(limit + 1):
            with limiter(self.settings):
                try:
                    response = self._http.request(method, path, headers=all_headers, **kwargs)
                except httpx.TimeoutException:
                    response, problem = None, f"no answer within {self.settings.timeout:g} s"
                except httpx.TransportError as err:
                    response, problem = None, f"connection failed ({type(err).__name__})"
            if response is not None:
                if response.status_code in expect:
                    return response
                problem = self._problem(response, target, key)
            if attempt < limit:
                wait = retry_delay(response) if response is not None else None
                self._sleep(
                    min(wait if wait is not None else self._backoff(attempt), self.settings.max_backoff)
                )
        raise RenderFailed(f"{target}: {name} failed after {limit + 1} attempts: {problem}")

    def _problem(self, response: httpx.Response, target: str, key: str) -> str:
        """Describe a failed response; raise at once if retrying cannot help."""
        detail = _redact(_detail(response), key)
        try:
            self._classify(response)
        except Refusal as refusal:
            raise RenderFailed(
                f"{target}: {self.settings.name} refused (HTTP {response.status_code}): {refusal}; {detail}"
            ) from None
        if response.status_code not in RETRYABLE:
            raise RenderFailed(
                f"{target}: {self.settings.name} refused (HTTP {response.status_code}): {detail}"
            )
        return f"HTTP {response.status_code}: {detail}"

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.settings.backoff * 2**attempt, self.settings.max_backoff)
        return random.uniform(ceiling / 2, ceiling)


def _detail(response: httpx.Response, limit: int = 300) -> str:
    """The provider's own words about a failure, on one line."""
    try:
        text = response.text
    except Exception:  # an undecodable body says nothing useful
        return "(no readable body)"
    return re.sub(r"\s+", " ", text).strip()[:limit] or "(empty body)"


def _redact(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text
