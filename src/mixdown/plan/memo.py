"""A memo of the planned show, so that a no-op build does not plan it again.

Planning a show renders every template, parses every line and hashes every
asset spec: for a large show, most of the time a no-op build takes. The plan depends only on files the planner read, so it is kept in
``.mixdown/plan.pickle`` next to the list of those files with their size and
modification time, and reused while none of them changed, the show is in
the directory it was planned in, and the environment (mixdown, Python,
installed packages, ``MIXDOWN_CACHE``) is the same.

The directory matters because a plan names absolute paths (the show's
root, ``build/``, the cache): a show copied with ``cp -a`` or moved keeps
its ``.mixdown/`` and its files' modification times, and would otherwise
build the original's plan into the original's ``build/``.

Every input is recorded where it is read (:func:`mixdown.keys.record`): ``project.toml``, each template
Jinja loads (includes too), variants files, the show's ``renderers/`` and
every file whose content enters a key (media, voice models). The memo is
machine-local state like doit's own database: git-ignored, never shared,
rebuilt whenever it is missing, stale or unreadable.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

from ..store.files import unpickled, write_bytes_atomic

__all__ = ["environment", "load", "save", "signed", "unchanged"]

VERSION = 2  # the memo's own layout; mixdown's code enters as the signatures of its files

#: what the planner's inputs were when the memo at each path was last loaded or saved whole
_signed: dict[str, tuple[tuple[str, tuple[int, int] | None], ...]] = {}


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def environment(root: str) -> tuple[Any, ...]:
    """What else a plan depends on: mixdown's code, Python, the packages installed,
    ``MIXDOWN_CACHE``, and the show's directory."""
    return _environment(root)


def signed(path: Path) -> tuple[tuple[str, tuple[int, int] | None], ...] | None:
    """The planner's inputs and their signatures (size, modification time) as the memo at
    ``path`` holds them, if it was loaded or saved whole by this process; else None."""
    return _signed.get(str(path))


def unchanged(inputs: tuple[tuple[str, tuple[int, int] | None], ...]) -> bool:
    """Whether every input of :func:`signed` is as it was signed."""
    return all(_signature(name) == signature for name, signature in inputs)


def _environment(root: str) -> tuple[Any, ...]:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # all of mixdown
    code = sorted(
        (os.path.relpath(os.path.join(folder, name), here), _signature(os.path.join(folder, name)))
        for folder, _, names in _source_folders(here)
        for name in names
        if name.endswith(".py")
    )
    packages = []
    for entry in sys.path:
        try:
            packages += [e.name for e in os.scandir(entry) if e.name.endswith(".dist-info")]
        except OSError:
            continue
    return (VERSION, root, code, sys.version, os.environ.get("MIXDOWN_CACHE"), sorted(packages))


def _source_folders(top: str) -> Any:
    """``os.walk(top)`` without the ``__pycache__`` folders (no source is there)."""
    for folder, subfolders, names in os.walk(top):
        subfolders[:] = [name for name in subfolders if name != "__pycache__"]
        yield folder, subfolders, names


def load(path: Path, root: Path) -> Any | None:
    """The memoised value at ``path`` for the show in ``root`` if every recorded input is
    unchanged, else ``None``."""
    try:
        stored: Any = unpickled(path)
        environment, inputs, value = stored
    except Exception:  # missing, truncated or from another version: plan afresh
        return None
    if environment != _environment(str(root)):
        return None
    if any(_signature(name) != signature for name, signature in inputs):
        return None
    _signed[str(path)] = tuple(tuple(item) for item in inputs)
    return value


def save(path: Path, root: Path, value: Any, inputs: set[str]) -> None:
    """Store ``value``, planned for the show in ``root``, with the signatures of ``inputs``, atomically."""
    signed = [(name, _signature(name)) for name in sorted(inputs)]
    blob = pickle.dumps((_environment(str(root)), signed, value), protocol=pickle.HIGHEST_PROTOCOL)
    write_bytes_atomic(path, blob)
    _signed[str(path)] = tuple(signed)
