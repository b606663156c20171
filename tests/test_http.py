"""The shared HTTP layer: credentials, retries, refusals, limits, redaction."""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from mixdown.errors import ConfigError, RendererUnavailable, RenderFailed
from mixdown.renderers.cloud.http import Client, ProviderSettings, Refusal, configure, retry_delay

SETTINGS = ProviderSettings(
    name="acme", base_url="https://api.acme.test", key_env="ACME_API_KEY", max_retries=3
)
KEY = "sk-acme-secret-0123456789"


def client(handler: Callable[[httpx.Request], httpx.Response], sleeps: list[float], **kw: Any) -> Client:
    def classify(response: httpx.Response) -> None:
        if response.status_code == 429 and "insufficient_quota" in response.text:
            raise Refusal("exhausted quota")

    return Client(
        kw.pop("settings", SETTINGS),
        auth=lambda key: {"Authorization": f"Bearer {key}"},
        classify=classify,
        transport=httpx.MockTransport(handler),
        sleep=sleeps.append,
    )


@pytest.fixture(autouse=True)
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_API_KEY", KEY)


def replies(
    *responses: httpx.Response,
) -> tuple[Callable[[httpx.Request], httpx.Response], list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return handler, seen


def test_sends_credentials_and_returns_the_expected_response() -> None:
    handler, seen = replies(httpx.Response(200, content=b"ok"))
    response = client(handler, []).request("POST", "/v1/speak", target="voice:x", json={"a": 1})
    assert response.content == b"ok"
    assert seen[0].url == "https://api.acme.test/v1/speak"
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"


def test_missing_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACME_API_KEY")
    handler, seen = replies()
    with pytest.raises(RendererUnavailable, match="set ACME_API_KEY"):
        client(handler, []).request("GET", "/", target="voice:x")
    assert seen == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after": "3"}, 3.0),
        ({"x-ratelimit-reset-requests": "1m30s"}, 90.0),
        ({"x-ratelimit-reset-requests": "250ms"}, 0.25),
        ({}, None),
    ],
)
def test_retry_delay_reads_the_providers_headers(headers: dict[str, str], expected: float | None) -> None:
    assert retry_delay(httpx.Response(429, headers=headers)) == expected


def test_retry_delay_reads_http_dates_and_unix_reset_times() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert retry_delay(httpx.Response(503, headers={"retry-after": date}), now=now) == pytest.approx(
        30, abs=1.01
    )
    reset = str(int(now) + 12)
    assert retry_delay(httpx.Response(429, headers={"x-ratelimit-reset": reset}), now=now) == pytest.approx(
        12, abs=1
    )


def test_retries_429_and_5xx_honouring_retry_after() -> None:
    handler, seen = replies(
        httpx.Response(429, headers={"retry-after": "2"}, json={"error": "slow down"}),
        httpx.Response(503, text="busy"),
        httpx.Response(200, content=b"audio"),
    )
    sleeps: list[float] = []
    assert client(handler, sleeps).request("POST", "/x", target="voice:x").content == b"audio"
    assert len(seen) == 3
    assert sleeps[0] == 2.0 and 0.5 <= sleeps[1] <= 2.0  # header first, then jittered backoff


def test_retries_timeouts_and_connection_errors_then_gives_up_naming_the_target() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls % 2:
            raise httpx.ReadTimeout("stalled", request=request)
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    with pytest.raises(RenderFailed, match=r"voice:a/b/0: acme failed after 4 attempts: connection failed"):
        client(handler, sleeps).request("POST", "/x", target="voice:a/b/0")
    assert calls == 4 and len(sleeps) == 3
    assert sleeps == sorted(sleeps) or max(sleeps) <= 8.0  # backoff grows (with jitter) and stays capped


def test_refusals_are_not_retried_and_never_show_the_key() -> None:
    body = {"error": {"code": "insufficient_quota", "message": f"quota gone for key {KEY}"}}
    handler, seen = replies(httpx.Response(429, json=body))
    with pytest.raises(RenderFailed) as err:
        client(handler, []).request("POST", "/x", target="voice:x")
    assert len(seen) == 1
    assert "exhausted quota" in str(err.value) and KEY not in str(err.value) and "***" in str(err.value)


def test_client_errors_are_not_retried() -> None:
    handler, seen = replies(httpx.Response(400, json={"detail": "bad voice"}))
    with pytest.raises(RenderFailed, match=r"voice:x: acme refused \(HTTP 400\): .*bad voice"):
        client(handler, []).request("POST", "/x", target="voice:x")
    assert len(seen) == 1


def test_concurrency_limit_holds_across_threads() -> None:
    settings = ProviderSettings(
        name="acme-limited", base_url="https://a.test", key_env="ACME_API_KEY", concurrency=3
    )
    active = most = 0
    lock = threading.Lock()

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, most
        with lock:
            active += 1
            most = max(most, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return httpx.Response(200, content=b"x")

    clients = [client(handler, [], settings=settings) for _ in range(2)]  # two renderers, one provider
    threads = [
        threading.Thread(target=clients[i % 2].request, args=("GET", "/"), kwargs={"target": f"t{i}"})
        for i in range(12)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == 3


def test_configure_from_show_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="concurrency must be an integer"):
        configure(SETTINGS, {"concurrency": "many"})
    configured = configure(SETTINGS, {"concurrency": 5, "timeout": 120})
    assert (configured.concurrency, configured.timeout, configured.base_url) == (5, 120, SETTINGS.base_url)
    monkeypatch.setenv("MIXDOWN_ACME_BASE_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("MIXDOWN_ACME_CONCURRENCY", "7")
    configured = configure(SETTINGS, {"concurrency": 5})
    assert (configured.base_url, configured.concurrency) == ("http://127.0.0.1:9999", 7)
    with pytest.raises(ConfigError, match=r"unknown key 'api_key' in \[providers.acme\]"):
        configure(SETTINGS, {"api_key": "no"})
