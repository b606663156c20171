"""Temporary files beside the files they become, and what killed processes leave of them.

Every file mixdown writes (cache objects and records, deliverables, the plan
memo) is written to a hidden temporary file beside it, ``.NAME.XXXXXXXX.tmp``
(or ``….tmp.wav``, ``….tmp.mp3``: the format's own extension last), then
renamed over it in one step, or removed on failure. New files follow the
umask, as any tool's output does.

A process that is killed outright (SIGKILL, the out-of-memory killer, a
power cut) cannot remove its own temporary files, and an hour's master
leaves gigabytes of them. So each temporary file is locked (``flock``) by
the process writing it for as long as it is written: the lock is released
by :func:`publish` or :func:`discard`, or by the kernel when the process
dies. A temporary file whose lock can be taken has no writer left, and is
removed at once by whoever finds it: :func:`temporary_beside` (the same
target's), and :func:`sweep` (a whole directory: the build sweeps the
directories it writes in). A live writer, in another build or on another
thread of this one, holds its lock, and its file is left alone.
"""

from __future__ import annotations

import errno
import fcntl
import gc
import os
import pickle
import re
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "sha256_of",
    "discard",
    "last_destination",
    "note_sha256",
    "publish",
    "release",
    "unpickled",
    "same_file",
    "sweep",
    "sweep_once",
    "temporary_beside",
    "write_bytes_atomic",
    "write_if_changed",
]

# ".NAME.XXXXXXXX.tmp", ".NAME.XXXXXXXX.tmp.wav": a temporary file's name (eight characters:
# this module's hex, or tempfile.mkstemp's letters in files older ones left)
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp(\.[a-z0-9]+)?$")
_guard = threading.Lock()
_held: dict[str, int] = {}  # temporary file -> a descriptor holding its lock
_listed: dict[str, list[str]] = {}  # directory -> the temporary files it held when first listed
_swept: set[str] = set()
_local = threading.local()
# file -> (its inode, size and modification time when noted, its sha256): see note_sha256
_noted: dict[str, tuple[tuple[int, int, int], str]] = {}


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The sha256 of the file ``path``'s bytes, as hex (read in 1 MiB blocks), or the one
    :func:`note_sha256` noted for it while the file is as it was then (taken once)."""
    import hashlib

    with _guard:
        noted = _noted.pop(os.fspath(path), None)
    if noted is not None and noted[0] == _identity(path):
        return noted[1]
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def note_sha256(path: str | os.PathLike[str], sha256: str) -> None:
    """Note ``sha256`` as the digest of the file ``path`` as it is now, for :func:`sha256_of`.

    For a file whose bytes were hashed as they were read back after being
    written (a long master's WAV, part by part while the rest was made):
    reading a gigabyte again to hash it would hold up the build at its end.
    The note follows the file when it is published under its name, and
    counts only while the file keeps its inode, size and modification time.
    """
    with _guard:
        _noted[os.fspath(path)] = (_identity(path), sha256)


def _identity(path: str | os.PathLike[str]) -> tuple[int, int, int]:
    stat = os.stat(path)
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def temporary_beside(path: str | os.PathLike[str], suffix: str = ".tmp") -> tuple[int, str]:
    """A new file to write ``path`` in: ``(descriptor, name)`` of ``.NAME.XXXXXXXX{suffix}``
    in ``path``'s directory (made if missing), as :func:`tempfile.mkstemp` returns them, but
    with the umask's permissions.

    The file stays locked after the descriptor is closed, until :func:`publish`,
    :func:`discard` or :func:`release` (or the end of the process). Temporary files of
    the same ``path`` and ``suffix`` whose writer is gone are removed first: those the
    directory held when this process first made a temporary file there. It is listed
    once (:func:`_leftovers`): ``build/`` holds half a dozen files a listener, and a
    listing at every write made a night of 10,000 listeners list it 60,000 times.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    size = len(prefix) + 8 + len(suffix)
    leftovers = _leftovers(path.parent)
    if leftovers:
        with _guard:
            mine = [n for n in leftovers if len(n) == size and n.startswith(prefix) and n.endswith(suffix)]
            for name in mine:
                leftovers.remove(name)
        for name in mine:
            _remove_dead_file(os.path.join(path.parent, name))
    # errors name the file being made: a deliverable's suffix (".tmp.wav") carries its extension
    _local.destination = path.with_name(path.name + suffix[4:]) if suffix.startswith(".tmp.") else path
    while True:
        name = str(path.parent / f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)  # 0666 & ~umask
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)
        if same_file(name, fd):  # else a sweep took it for a dead writer's in between: again
            break
        os.close(fd)
    with _guard:
        _held[name] = os.dup(fd)
    return fd, name


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Rename the temporary file ``tmp`` over ``path`` and release its lock."""
    os.replace(tmp, path)
    with _guard:
        noted = _noted.pop(os.fspath(tmp), None)
        if noted is not None:
            _noted[os.fspath(path)] = noted
        else:
            _noted.pop(os.fspath(path), None)
    release(tmp)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file beside it: whole or not at all."""
    fd, tmp = temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise


def write_if_changed(path: str | os.PathLike[str], data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically unless the file already holds exactly these bytes
    (it then keeps its modification time); whether it was written."""
    try:
        if Path(path).read_bytes() == data:
            return False
    except OSError:
        pass
    write_bytes_atomic(path, data)
    return True


def unpickled(path: str | os.PathLike[str]) -> object:
    """The object pickled in the state file ``path`` (the plan memo, the cache's index, the lock
    kept beside its fingerprint), read with the cyclic garbage collector paused.

    A large show's state is hundreds of thousands of objects, none of them
    garbage; the collector would walk them again and again while they are
    made, for about a third of the time a no-op build spends reading them.
    Raises what :func:`open` and :func:`pickle.load` raise.
    """
    with open(path, "rb") as fh:
        collecting = gc.isenabled()
        gc.disable()
        try:
            return pickle.load(fh)
        finally:
            if collecting:
                gc.enable()


def discard(tmp: str | os.PathLike[str]) -> None:
    """Remove the temporary file ``tmp`` (if it is there) and release its lock."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    with _guard:
        _noted.pop(os.fspath(tmp), None)
    release(tmp)


def release(tmp: str | os.PathLike[str]) -> None:
    """Stop holding the lock of ``tmp`` (published or removed by now)."""
    with _guard:
        fd = _held.pop(os.fspath(tmp), -1)
    if fd >= 0:
        os.close(fd)


def last_destination() -> Path | None:
    """The file this thread last made a temporary file for (errors name it)."""
    found: Path | None = getattr(_local, "destination", None)
    return found


def sweep(directory: str | os.PathLike[str], *, locks: bool = False) -> int:
    """Remove every temporary file in ``directory`` whose writer is gone; return how many.

    With ``locks``, also the ``*.lock`` files nobody holds (:meth:`mixdown.store.cache.Cache.lock`).
    """

    def wanted(name: str) -> bool:
        return bool(_TEMPORARY.match(name)) or (locks and name.endswith(".lock"))

    return _remove_dead(Path(directory), wanted)


def sweep_once(directory: str | os.PathLike[str], *, locks: bool = False) -> None:
    """:func:`sweep` ``directory`` the first time this process asks."""
    key = os.path.abspath(directory)
    with _guard:
        if key in _swept:
            return
        _swept.add(key)
    sweep(key, locks=locks)


def _remove_dead(directory: Path, wanted: Callable[[str], bool]) -> int:
    """Remove the files of ``directory`` whose name is ``wanted`` and whose lock is free."""
    try:
        entries = [e for e in os.scandir(directory) if wanted(e.name)]
    except OSError:
        return 0
    return sum(_remove_dead_file(entry.path) for entry in entries)


def _leftovers(directory: Path) -> list[str]:
    """The temporary files ``directory`` held when this process first asked, less those
    :func:`temporary_beside` has dealt with since (listed once a directory and process)."""
    key = os.fspath(directory)
    with _guard:
        found = _listed.get(key)
        if found is None:
            try:
                with os.scandir(directory) as entries:
                    found = [e.name for e in entries if e.name.startswith(".") and _TEMPORARY.match(e.name)]
            except OSError:
                found = []
            _listed[key] = found
        return found


def _remove_dead_file(name: str) -> int:
    """Remove the file ``name`` if its writer is gone (1), else leave it (0); this process's
    own temporary files are left alone."""
    with _guard:
        if name in _held:
            return 0  # this process writes it
    return _remove_if_dead(name)


def _remove_if_dead(name: str) -> int:
    """Remove ``name`` if nobody holds its lock (1), else leave it (0)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return 0  # gone already, or not ours to open
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return 0  # its writer is alive
            raise
        if not same_file(name, fd):
            return 0  # published or replaced since it was listed
        try:
            os.unlink(name)
        except OSError:
            return 0
        return 1
    finally:
        os.close(fd)


def same_file(name: str, fd: int) -> bool:
    """Whether ``name`` is still the file open as ``fd``."""
    try:
        named = os.stat(name, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)
