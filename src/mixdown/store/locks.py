"""Per-key lock files: ``objects/ab/KEY.lock`` held with ``flock`` while a key is made.

:meth:`mixdown.store.cache.Cache.lock` takes one before it checks, makes and
stores a key, so two builds of one show at once (or two threads of one
build) make each key once, the second waiting for the first. A lock file is
removed as it is let go; one left behind by a build that died is swept
(:func:`mixdown.store.files.sweep`). The same thread may take a lock again
inside itself: the outermost holding lets it go.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import files

__all__ = ["holding"]

_held_guard = threading.Lock()
_held: dict[str, int] = {}  # lock file -> the thread holding it


@contextmanager
def holding(
    path: str,
    waiting: Callable[[], None],
    check: Callable[[], None],
    unwritable: Callable[[OSError], Exception],
) -> Iterator[None]:
    """Hold the lock file ``path`` (see :meth:`Cache.lock`); remove it when done."""
    me = threading.get_ident()
    with _held_guard:
        again = _held.get(path) == me  # taken again inside: the outermost lets go
    if again:
        yield
        return
    fd = _take(path, waiting, check, unwritable)
    with _held_guard:
        _held[path] = me
    try:
        yield
    finally:
        with _held_guard:
            del _held[path]
        # removed while held, so that a build waiting on this file finds it gone and takes a new one
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)


def _open_lock(path: str) -> int:
    """Open (or make) the lock file ``path``. One another user's build made (0644 under the
    usual umask) opens for reading only, which is all ``flock`` needs; where there is none
    and none can be made, the cache is not writable (``PermissionError``)."""
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
        raise


def _take(
    path: str,
    waiting: Callable[[], None],
    check: Callable[[], None],
    unwritable: Callable[[OSError], Exception],
) -> int:
    """Open and lock ``path``, polling while another holds it; the descriptor."""
    pause, told = 0.02, False
    while True:
        try:
            fd = _open_lock(path)
        except OSError as err:
            raise unwritable(err) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if not told:
                waiting()
                told = True
            check()
            time.sleep(pause)
            pause = min(pause * 1.5, 0.25)
            continue
        except BaseException:
            os.close(fd)
            raise
        if files.same_file(path, fd):
            return fd
        os.close(fd)  # its holder removed it as it let go: take the new one
