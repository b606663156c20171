"""Content keys: what an asset *is*, independent of where it is used.

A key is the sha256 of the canonical JSON of everything that changes the
audio — renderer and its version, settings, normalised text, seed, segment —
and of nothing that does not: no section or voice *names*, no paths (media
files enter by content hash), no times, no secrets. Changing how keys are
built re-bills every user, so a test pins a known key.

A plan depends on the files it read: :func:`record` notes each one (a
file that enters a key by its content, a template, ``project.toml``), and
:func:`read_inputs` collects them for the plan memo (:mod:`mixdown.plan.memo`).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["content_key", "file_digest", "read_inputs", "record"]


def content_key(spec: Any) -> str:
    """Return the sha256 hex digest of ``spec`` as canonical JSON.

    ``spec`` must be JSON-serialisable; keys are sorted, separators compact and
    non-ASCII kept as UTF-8, so equal specs give equal keys on every machine.
    """
    blob = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


_digests: dict[tuple[str, int, int], str] = {}
_digests_lock = threading.Lock()


def file_digest(path: str | os.PathLike[str]) -> str:
    """Return the sha256 of a file's bytes, memoised by (path, size, mtime).

    Media files and voice models enter content keys by what they contain, not
    by their name; the memo keeps a no-op build from re-hashing them.
    """
    p = Path(path)
    record(p)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    with _digests_lock:
        if memo in _digests:
            return _digests[memo]
    h = hashlib.sha256()
    with p.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    with _digests_lock:
        _digests[memo] = digest
    return digest


_lock = threading.Lock()
_recording: set[str] | None = None


def record(path: str | os.PathLike[str]) -> None:
    """Note that planning read ``path`` (a file or a directory listing)."""
    with _lock:
        if _recording is not None:
            _recording.add(os.path.abspath(path))


@contextmanager
def read_inputs() -> Iterator[set[str]]:
    """Collect every path :func:`record` sees inside the ``with`` block."""
    global _recording
    with _lock:
        found: set[str] = set()
        _recording = found
    try:
        yield found
    finally:
        with _lock:
            _recording = None
