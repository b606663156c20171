"""Temporary files beside the files they become, and what killed processes leave of them.

Every file mixdown writes (cache objects and records, deliverables, the plan
memo) is written to a hidden temporary file beside it, then renamed over it
in one step, or removed on failure. A process that is killed outright
(SIGKILL, the out-of-memory killer, a power cut) cannot remove its own, and
an hour's master leaves over two gigabytes of them; so making a temporary
file also removes the temporary files of the same target that nobody has
written to for :data:`STALE_SECONDS` (a writer writes all along: an hour of
silence means its process is gone).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

__all__ = ["STALE_SECONDS", "temporary_beside"]

STALE_SECONDS = 3600.0


def temporary_beside(path: str | os.PathLike[str], suffix: str = ".tmp") -> tuple[int, str]:
    """A new file to write ``path`` in: ``(descriptor, name)`` of ``.NAME.XXXXXXXX{suffix}``
    in ``path``'s directory (made if missing), as :func:`tempfile.mkstemp` returns them.

    Stale temporary files of the same ``path`` and ``suffix`` go first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    _remove_stale(path.parent, prefix, suffix)
    return tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)


def _remove_stale(directory: Path, prefix: str, suffix: str) -> None:
    before = time.time() - STALE_SECONDS
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        # mkstemp's names: the prefix, eight characters, the suffix
        if not (name.startswith(prefix) and name.endswith(suffix)) or len(name) != len(prefix) + 8 + len(
            suffix
        ):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_mtime < before:
                os.unlink(entry.path)
        except OSError:
            continue  # gone already, or not ours to remove
