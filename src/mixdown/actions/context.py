"""What every doit action shares: the :class:`Context` it runs in, and its plumbing.

:func:`reported` turns a user-facing failure into doit's one-line ``TaskFailed``;
:func:`once` and :func:`locked` make a key once across concurrent builds;
:func:`stamp_matches` is the ``uptodate`` check of the files in ``build/``.
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import MixdownError
from ..renderers import Registry
from ..show.project import Project
from ..store import files
from ..store.cache import Cache

if TYPE_CHECKING:
    from ..plan.lock import Lock
    from ..plan.spend import Budget
    from ..store.remote import Remote

__all__ = ["Context", "committed", "locked", "once", "relative", "reported", "stamp_matches"]

_TEMPORARY_NAME = re.compile(r"^\..*\.tmp(\.[a-z0-9]+)?$")


@dataclass
class Context:
    """What every action needs: the project, its cache and its renderers (and the build's
    budget for paid renders, with ``--max-cost``; its remote cache, if it has one:
    :mod:`mixdown.actions.shared`)."""

    project: Project
    cache: Cache
    registry: Registry
    #: under --frozen, the mixdown.lock that renders, masters and deliveries must match
    pinned: Lock | None = None
    budget: Budget | None = None
    remote: Remote | None = None
    #: keys other machines may be making during this build (a shard's shared ones): the
    #: remote is asked for them again before they are made, though it lacked them at the start
    fresh: frozenset[str] = frozenset()
    #: the Dask cluster the build's actions run on (:class:`mixdown.actions.cluster.Executor`), if any
    executor: Any = None
    #: each voice take's voiced span, by key and sha256, as captions read it: a line shared by
    #: every listener is read from the cache once a build, not once a listener
    voiced: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)


def reported(action: Any, context: Context, item: Any, target: str) -> Any:
    """Run ``action(context, item)`` as the doit action of ``target``.

    A :class:`MixdownError`, or a file that cannot be written (a full disk, a
    read-only directory), becomes doit's ``TaskFailed``: one line, no traceback.
    """
    from . import stopping

    stopping.install()
    try:
        with stopping.action():
            return action(context, item)
    except MixdownError as err:
        from doit.exceptions import TaskFailed

        return TaskFailed(str(err))
    except Exception as err:
        if not _is_file_error(err):
            raise
        from doit.exceptions import TaskFailed

        return TaskFailed(_file_error(context, target, err))


def _is_file_error(err: Exception) -> bool:
    """Whether ``err`` is the system refusing a file: :class:`OSError`, or libsndfile's "System error"."""
    if isinstance(err, OSError):
        return True
    soundfile = sys.modules.get("soundfile")
    return soundfile is not None and isinstance(err, getattr(soundfile, "SoundFileError", ()))


def _file_error(context: Context, target: str, err: Exception) -> str:
    """The one line for a file that could not be written (or read): the target, the file, why."""
    filename = getattr(err, "filename", None)
    where = filename if isinstance(filename, str) and filename else files.last_destination()
    if isinstance(where, str) and _TEMPORARY_NAME.match(os.path.basename(where)):
        where = files.last_destination()
    named = relative(context, Path(where)) if where is not None else "a file"
    strerror = err.strerror if isinstance(err, OSError) else None
    why = f"{strerror} [errno {err.errno}]" if isinstance(err, OSError) and strerror else str(err)
    why = " ".join(why.split())
    return (
        f"{target}: cannot write {named}: {why}; nothing partial was kept: "
        "free some space (or make the directory writable) and run the build again"
    )


def once(context: Context, key: str, target: str, doing: str, done: Any, make: Any) -> None:
    """``make()`` unless ``done()``.

    Checked first without the key's lock (a read-only cache that holds it is
    enough), then again under it (another build may have made it).
    """
    if done():
        return
    with locked(context, key, target, doing):
        if not done():
            make()


def locked(context: Context, key: str, target: str, doing: str) -> Any:
    """Hold the cache's lock of ``key`` while ``target`` checks, makes and stores it.

    A second build making the same key at once waits, says so, and then
    finds it made.
    """
    from .stopping import check

    def waiting() -> None:
        print(f"{target}  waiting for another build {doing} it", file=sys.stdout, flush=True)

    return context.cache.lock(key, target=target, waiting=waiting, check=check)


def relative(context: Context, path: Any) -> Any:
    """``path`` relative to the show's root when it is inside it, for messages."""
    root = context.project.root
    return path.relative_to(root) if path.is_relative_to(root) else path


def stamp_matches(task: Any, values: dict[str, Any], stamp: str) -> bool:
    """doit ``uptodate``: the files in ``build/`` were made from this master."""
    return bool(values.get("stamp") == stamp)


def committed(context: Context, writer: Any, meta: dict[str, Any], target: str) -> None:
    """Commit a mix or pre-mix ``writer`` with ``meta``: as 24-bit FLAC when the show keeps its
    cache compact (:mod:`mixdown.codecs.flac24`), saying so if it went beyond the headroom."""
    from ..codecs.flac24 import HEADROOM

    compact = context.project.compact
    writer.commit(meta, flac=compact, scale=HEADROOM)
    if compact and writer.peak > HEADROOM:
        print(
            f"warning: {target}: peaks at {20 * math.log10(writer.peak):+.1f} dBFS before mastering; "
            f"the compact cache keeps {20 * math.log10(HEADROOM):+.0f} dBFS and clipped the rest: "
            "lower the [mix] levels, or set [cache] compact = false",
            file=sys.stderr,
        )
