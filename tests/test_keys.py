from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mixdown.keys import content_key, file_digest


def test_known_key_is_pinned() -> None:
    # Changing how keys are built re-renders (and re-bills) every user's show.
    spec = {"kind": "voice", "renderer": "piper", "version": "1", "params": {"speed": 1.0}, "text": "Hello."}
    canonical = b'{"kind":"voice","params":{"speed":1.0},"renderer":"piper","text":"Hello.","version":"1"}'
    assert content_key(spec) == hashlib.sha256(canonical).hexdigest()
    assert content_key(spec) == "c2570431db05dadec9d44bc33db80b68c52b6e7373eb073f279c9124f84aec7e"


def test_key_ignores_order_and_keeps_unicode() -> None:
    a = content_key({"text": "Olá, São Paulo", "params": {"a": 1, "b": 2}})
    b = content_key({"params": {"b": 2, "a": 1}, "text": "Olá, São Paulo"})
    assert a == b
    assert a != content_key({"params": {"b": 2, "a": 1}, "text": "Ola, Sao Paulo"})


def test_file_digest_follows_content_not_name(tmp_path: Path) -> None:
    one, two = tmp_path / "one.bin", tmp_path / "two.bin"
    one.write_bytes(b"same bytes")
    two.write_bytes(b"same bytes")
    assert file_digest(one) == file_digest(two)
    one.write_bytes(b"other bytes!")
    os.utime(one, ns=(1, 1))
    assert file_digest(one) != file_digest(two)
