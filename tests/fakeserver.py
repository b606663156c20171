"""A fake ElevenLabs/OpenAI speech server on 127.0.0.1 that can misbehave.

It speaks the real wire contracts (see ``reference/providers.md``) for
``POST /v1/text-to-speech/{voice_id}`` (ElevenLabs: ``xi-api-key``,
``output_format`` in the query, headless S16LE PCM back with ``request-id``
and ``character-cost``) and ``POST /v1/audio/speech`` (OpenAI: Bearer key,
24 kHz PCM back with ``x-request-id``), with a per-request latency (arrival to answer), a
concurrency limit enforced the way ElevenLabs does (429
``too_many_concurrent_requests``), and scripted faults per line of text:

``429``       429 with ``retry-after-ms`` and the ElevenLabs detail shape
``429-retry-after``  the same with ``Retry-After: 1`` (seconds)
``500``       a bare 500 ``internal_server_error``
``stall``     answer only after ``stall_seconds`` (past the client's timeout)
``truncated`` announce a longer body than is sent, then close the connection
``html``      a 200 whose body is an HTML error page, not audio
``quota``     ElevenLabs' ``quota_exceeded``, which arrives as a 401

Used by the integration tests and ``benchmarks/cloud.py``; stops itself
when the ``with`` block ends.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import numpy as np

KEY = "fake-key-0123456789"
SECONDS_PER_CHAR = 0.06


def elevenlabs_show(url: str, providers: str = "") -> str:
    """A project.toml of one script, ``stanzas/news.j2``, voiced by ElevenLabs at this fake
    (``url``), with more ``[providers.elevenlabs]`` lines, and WAV masters only."""
    return f"""\
[project]
voice = "narrator"

[voices.narrator]
renderer = "elevenlabs"
voice_id = "JBFqnCBsd6RMkjVDRZzb"
model_id = "eleven_multilingual_v2"

[providers.elevenlabs]
base_url = "{url}"
{providers}

[scripts.news]
template = "stanzas/news.j2"

[master]
formats = ["wav"]
"""


def speech_pcm(text: str, rate: int) -> bytes:
    """A tone as long as ``text`` would take to say, as S16LE bytes."""
    n = max(int(len(text) * SECONDS_PER_CHAR * rate), rate // 10)
    t = np.arange(n) / rate
    y = 0.3 * np.sin(2 * np.pi * (140 + len(text) % 60) * t) * (1 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return (y * 32767).astype("<i2").tobytes()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout) closes the socket mid-answer: expected here."""


class FakeSpeechServer:
    """Start with ``with FakeSpeechServer(...) as server:``; ``server.url`` is its base URL."""

    def __init__(self, *, latency: float = 0.0, limit: int = 1000, stall_seconds: float = 2.0) -> None:
        self.latency = latency
        self.limit = limit
        self.stall_seconds = stall_seconds
        self.faults: dict[str, list[str]] = {}  # text -> faults for its 1st, 2nd, … attempt; then it works
        self.attempts: Counter[str] = Counter()  # text -> requests received
        self.served: Counter[str] = Counter()  # text -> audio answers sent
        self.status: Counter[int] = Counter()
        self.limit_refusals = 0  # 429s caused by exceeding ``limit``
        self.active = 0
        self.most_active = 0
        self.first_request: float | None = None  # time.monotonic() of the first request
        self.last_answer: float | None = None
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeSpeechServer:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fault_for(self, text: str) -> str | None:
        """The fault scripted for this attempt at ``text`` (and count the attempt)."""
        with self._lock:
            attempt = self.attempts[text]
            self.attempts[text] += 1
            faults = self.faults.get(text, [])
        return faults[attempt] if attempt < len(faults) else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                self.arrived = time.monotonic()
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with server._lock:
                    server.first_request = server.first_request or time.monotonic()
                    server.active += 1
                    server.most_active = max(server.most_active, server.active)
                    over = server.active > server.limit
                try:
                    if over:
                        with server._lock:
                            server.limit_refusals += 1
                        detail = {
                            "status": "too_many_concurrent_requests",
                            "message": "Too many concurrent requests",
                        }
                        return self._json(429, {"detail": detail}, {"retry-after-ms": "200"})
                    self._route(json.loads(body or b"{}"))
                finally:
                    with server._lock:
                        server.active -= 1
                        server.last_answer = time.monotonic()

            def _route(self, payload: dict[str, Any]) -> None:
                url = urlparse(self.path)
                if url.path.startswith("/v1/text-to-speech/"):
                    if self.headers.get("xi-api-key") != KEY:
                        detail = {"status": "invalid_api_key", "message": "Invalid API key"}
                        return self._json(401, {"detail": detail})
                    if "output_format" in payload:
                        return self._json(
                            422, {"detail": [{"loc": ["body", "output_format"], "msg": "extra"}]}
                        )
                    rate = int(parse_qs(url.query).get("output_format", ["pcm_24000"])[0].split("_")[1])
                    return self._speak(payload["text"], rate, {"request-id": "req-el", "character-cost": "1"})
                if url.path == "/v1/audio/speech":
                    if self.headers.get("authorization") != f"Bearer {KEY}":
                        return self._json(401, {"error": {"message": "bad key", "code": "invalid_api_key"}})
                    return self._speak(payload["input"], 24000, {"x-request-id": "req-oa"})
                return self._json(404, {"detail": {"status": "not_found", "message": self.path}})

            def _speak(self, text: str, rate: int, headers: dict[str, str]) -> None:
                fault = server.fault_for(text)
                if fault == "429":
                    detail = {"status": "system_busy", "message": "busy"}
                    return self._json(429, {"detail": detail}, {"retry-after-ms": "100"})
                if fault == "429-retry-after":
                    detail = {"status": "too_many_concurrent_requests", "message": "busy"}
                    return self._json(429, {"detail": detail}, {"retry-after": "1"})
                if fault == "500":
                    return self._json(500, {"status": "internal_server_error", "message": "oops"})
                if fault == "quota":
                    detail = {
                        "status": "quota_exceeded",
                        "message": "This request exceeds your quota of 10000.",
                    }
                    return self._json(401, {"detail": detail})
                if fault == "stall":
                    time.sleep(server.stall_seconds)
                if fault == "html":
                    return self._send(200, b"<html><body>502 Bad Gateway</body></html>", "text/html", {})
                audio = speech_pcm(text, rate)
                if fault == "truncated":
                    return self._send(200, audio[: len(audio) // 3], "audio/pcm", {}, length=len(audio))
                with server._lock:
                    server.served[text] += 1
                self._send(200, audio, "audio/pcm", headers)

            def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                self._send(status, json.dumps(payload).encode(), "application/json", headers or {})

            def _send(
                self, status: int, data: bytes, kind: str, headers: dict[str, str], length: int = -1
            ) -> None:
                if status != 429:  # an answer takes `latency` from arrival; a refusal is immediate
                    time.sleep(max(0.0, server.latency - (time.monotonic() - self.arrived)))
                with server._lock:
                    server.status[status] += 1
                self.send_response(status)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(length if length >= 0 else len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)
                if length > len(data):
                    self.close_connection = True

        return Handler
