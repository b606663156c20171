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

Inputs = tuple[tuple[str, tuple[int, int] | None], ...]  # each file the planner read, and its signature
#: the environment and inputs the memo at each path was checked against or saved with, in this process
_signed: dict[str, tuple[tuple[Any, ...], Inputs]] = {}


def _signature(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def signed(path: Path) -> tuple[tuple[Any, ...], Inputs] | None:
    """The :func:`environment` and the planner's inputs with their signatures (size,
    modification time) that the memo at ``path`` was found valid against or saved with by this
    process; else None."""
    return _signed.get(str(path))


def unchanged(inputs: Inputs) -> bool:
    """Whether every input of :func:`signed` is as it was signed."""
    return all(_signature(name) == signature for name, signature in inputs)


def environment(root: str) -> tuple[Any, ...]:
    """What else a plan depends on: mixdown's code, Python, the packages installed,
    ``MIXDOWN_CACHE``, and the show's directory."""
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
        kept, inputs, value = stored
    except Exception:  # missing, truncated or from another version: plan afresh
        return None
    signed_inputs: Inputs = tuple(tuple(item) for item in inputs)
    if kept != environment(str(root)) or not unchanged(signed_inputs):
        return None
    _signed[str(path)] = (kept, signed_inputs)
    return value


def save(path: Path, root: Path, value: Any, inputs: set[str]) -> None:
    """Store ``value``, planned for the show in ``root``, with the signatures of ``inputs``, atomically."""
    signed: Inputs = tuple((name, _signature(name)) for name in sorted(inputs))
    now = environment(str(root))
    blob = pickle.dumps((now, list(signed), value), protocol=pickle.HIGHEST_PROTOCOL)
    write_bytes_atomic(path, blob)
    _signed[str(path)] = (now, signed)
