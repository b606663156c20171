"""A build with nothing to do, told from one record of the last such build.

A plain ``doit`` that finds nothing to do still loads the plan memo (every
rendition's plan), lists the cache and checks every rendition's files
against :mod:`mixdown.actions.current`'s record: tens of microseconds a
rendition, most of them spent unpickling plans that nothing uses, so a show
of 10,000 listeners took half a second to say so. When a plain build ends
having found nothing to do, this record keeps what it relied on:

* the planner's environment and inputs, as the plan memo signs them
  (:mod:`mixdown.plan.memo`): the plan is the same;
* every key it found in the cache: nothing to render or pre-mix;
* the size and modification time of every file it found current (each
  rendition's deliverables and what is published beside them) and of the
  folders that hold them, and those of the files its end of build reads
  (``mixdown.lock`` and its fingerprint, the renditions' record, the
  manifest and report): nothing to master, publish or write;
* what it printed, and the groups it handed doit.

The next plain ``doit`` that finds all of these as they were prints the same
and hands doit the same empty groups, without reading the plan. A folder of
published files whose modification time is unchanged had none of them
added, removed, renamed or replaced since, and its files are not looked at
one by one; one changed in place would be handed to doit, which finds it up
to date (its stamp and its name are what doit checks), so it is left as
the usual way leaves it. A folder's time is trusted only where the file
system keeps it finer than a second. Any other
build (a target named, an option of mixdown's, a remote cache or a cluster,
a show's own ``dodo.py`` with tasks) goes the usual way, and so does any difference,
which the usual way then checks in full. Machine-local state in
``.mixdown/``, like the memo; a build that does anything leaves it stale.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from ..plan import memo
from ..settings import DASK_ENV, REMOTE_ENV, SHARD_ENV, STATE_DIR
from ..store import files
from ..store.cache import Cache

__all__ = ["FILENAME", "Record", "forget", "record", "still", "usual_way"]

FILENAME = "quiet.pickle"
VERSION = 2
#: the environment variables under which a build goes the usual way (a remote cache, a cluster, a shard)
USUAL = (REMOTE_ENV, DASK_ENV, SHARD_ENV)
ABSENT = (-1, -1)  # the size and time recorded for a file that was not there (and must still not be)


class Record(NamedTuple):
    """What a plain build that found nothing to do relied on, and what it printed."""

    version: int
    environment: tuple[Any, ...]
    inputs: tuple[tuple[str, tuple[int, int] | None], ...]
    cache: tuple[str, str | None]  # the cache's directory, and its listing's index
    keys: frozenset[str]
    #: by folder: its st_mtime_ns if an unchanged one vouches for its files (else None), and
    #: each file's (name, size, st_mtime_ns); ABSENT if it was not there
    files: tuple[tuple[str, int | None, tuple[tuple[str, int, int], ...]], ...]
    groups: tuple[str, ...]
    report: str


def _path(root: Path) -> Path:
    return root / STATE_DIR / FILENAME


def usual_way(options: dict[str, Any]) -> bool:
    """Whether a plain build with mixdown's ``options`` (the loader's) must go the usual way
    whatever the record says."""
    if options.get("frozen") or options.get("max_cost") or options.get("shard"):
        return True
    return options.get("reporter") == "json" or any(os.environ.get(name) for name in USUAL)


def still(root: Path) -> Record | None:
    """The record of the show in ``root`` if everything it holds is still as it was, else None."""
    try:
        found = files.unpickled(_path(root))
    except Exception:  # missing, unreadable, or another version's: the usual way
        return None
    if not isinstance(found, Record) or found.version != VERSION:
        return None
    if found.environment != memo.environment(str(root)) or not memo.unchanged(found.inputs):
        return None
    for folder, when, held in found.files:
        if when is not None and _folder_time(folder) == when:
            continue
        if not _as_they_were(folder, held):
            return None
    directory, index = found.cache
    if not found.keys <= Cache(directory, index=index).keys():
        return None
    return found


def _as_they_were(folder: str, held: tuple[tuple[str, int, int], ...]) -> bool:
    """Whether each file of ``folder`` has the size and time held for it (is absent if held so).

    Each is looked up from the folder, opened once: a rendition has half a
    dozen files, and a no-op of 10,000 renditions looks up 60,000.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return all((size, mtime) == ABSENT for _, size, mtime in held)
    try:
        relative = os.stat in os.supports_dir_fd
        for name, size, mtime in held:
            try:
                stat = os.stat(name, dir_fd=fd) if relative else os.stat(os.path.join(folder, name))
            except OSError:
                if (size, mtime) == ABSENT:
                    continue
                return False
            if stat.st_size != size or stat.st_mtime_ns != mtime:
                return False
        return True
    finally:
        os.close(fd)


def record(
    root: Path,
    cache: Cache,
    keys: Collection[str],
    published: Iterable[Path | str],
    state: Iterable[Path | str],
    groups: Iterable[str],
    report: str,
) -> bool:
    """Keep the record of a plain build of the show in ``root`` that found nothing to do:
    ``keys`` in ``cache``, the ``published`` files (their folders vouch for them) and the
    ``state`` files (each looked at) as they are now, the doit ``groups`` it made and the
    ``report`` it printed. Nothing is kept (and False returned) for a plan not read from, or
    saved to, its memo in this process."""
    signed = memo.signed(root / STATE_DIR / "plan.pickle")
    if signed is None:
        return False
    folders: dict[tuple[str, bool], list[tuple[str, int, int]]] = {}
    times: dict[str, int | None] = {}
    for paths, vouched in ((published, True), (state, False)):
        for path in paths:
            folder, name = os.path.split(os.path.abspath(path))
            if vouched and folder not in times:
                times[folder] = _folder_time(folder)  # before its files: a change meanwhile shows
            try:
                stat = os.stat(os.path.join(folder, name))
                held = (name, stat.st_size, stat.st_mtime_ns)
            except OSError:
                held = (name, *ABSENT)
            folders.setdefault((folder, vouched), []).append(held)
    found = Record(
        VERSION,
        *signed,
        (str(cache.root), None if cache.index is None else str(cache.index)),
        frozenset(keys),
        tuple(
            (folder, times.get(folder) if vouched else None, tuple(held))
            for (folder, vouched), held in folders.items()
        ),
        tuple(groups),
        report,
    )
    files.write_bytes_atomic(_path(root), pickle.dumps(found, pickle.HIGHEST_PROTOCOL))
    return True


def _folder_time(folder: str) -> int | None:
    """``folder``'s modification time in ns, if the file system keeps it finer than a second."""
    try:
        when = os.stat(folder).st_mtime_ns
    except OSError:
        return None
    return when if when % 1_000_000_000 else None


def forget(root: Path) -> None:
    """Drop the record (a build that did something: the next one goes the usual way)."""
    files.discard(_path(root))
