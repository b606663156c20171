"""What a cache holds, object by object: its files, their size, when it was last used.

For ``mixdown gc`` and ``[cache] max_size``: :func:`local` lists a local
cache, :func:`remote` a remote one (any fsspec URL, laid out as the local
cache is: ``objects/ab/KEY.wav``, ``KEY.json`` and a shared mix's side
files ``KEY.NAME``; a shared master's or delivery's files are ``KEY.NAME``
with no ``KEY.wav``). An object is every file of one key; temporary files
(``.NAME.….tmp``) and key locks are a live build's and are never listed.

Removing follows the order that keeps readers safe. Locally the ``.wav``
marks a key as made, so it goes first (under the key's lock: a build making
the key meanwhile waits), then its record and side files. Remotely the
record marks an object as whole, so it goes first, then the rest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from .cache import Cache
    from .remote import Remote

__all__ = ["Stored", "local", "records", "remote", "remove_local", "remove_remote", "size_text"]

_NAME = re.compile(r"^(?P<key>[0-9a-f]{64})\.(?P<rest>[A-Za-z0-9_.-]+)$")


class Stored(NamedTuple):
    """One object in a cache: its key, its files (the object first), their bytes, its last use."""

    key: str
    files: tuple[str, ...]
    size: int
    used: float  # seconds since the epoch: the latest access or change of any of its files


def _order(key: str, names: Iterable[str], first: str) -> tuple[str, ...]:
    """``names`` (the files of ``key``) with ``KEY`` + ``first`` (".wav" or ".json") first."""
    return tuple(sorted(names, key=lambda n: (n.rsplit("/", 1)[-1] != key + first, n)))


def _stored(found: dict[str, list[tuple[str, int, float]]], first: str) -> dict[str, Stored]:
    """Each key's listed ``(file, size, used)`` as one :class:`Stored`."""
    return {
        key: Stored(
            key,
            _order(key, (p for p, _, _ in items), first),
            sum(s for _, s, _ in items),
            max(u for *_, u in items),
        )
        for key, items in found.items()
    }


def local(cache: Cache) -> dict[str, Stored]:
    """Every object in the local ``cache`` by key."""
    found: dict[str, list[tuple[str, int, float]]] = {}
    try:
        shards = [e for e in os.scandir(cache.objects) if e.is_dir() and len(e.name) == 2]
    except FileNotFoundError:
        return {}
    for shard in shards:
        for entry in os.scandir(shard.path):
            match = _NAME.match(entry.name)
            if match is None or match["rest"] == "lock":
                continue
            try:
                stat = entry.stat()
            except FileNotFoundError:  # removed since it was listed
                continue
            used = max(stat.st_atime, stat.st_mtime)
            found.setdefault(match["key"], []).append((entry.path, stat.st_size, used))
    return _stored(found, ".wav")


def remove_local(cache: Cache, stored: Stored) -> None:
    """Remove ``stored``'s files from the local ``cache``: the object, then its record and side files."""
    with cache.lock(stored.key, target=f"gc {stored.key[:12]}"):
        for path in stored.files:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    cache.forget(stored.key)


def remote(store: Remote) -> dict[str, Stored]:
    """Every object in the remote cache ``store`` by key."""
    fs, root = store.filesystem()
    try:
        listing = fs.find(f"{root}/objects", detail=True)
    except FileNotFoundError:
        return {}
    except Exception as err:
        raise store.trouble(err) from None
    found: dict[str, list[tuple[str, int, float]]] = {}
    for path, info in listing.items():
        match = _NAME.match(path.rsplit("/", 1)[-1])
        if match is None:
            continue
        found.setdefault(match["key"], []).append((path, int(info.get("size") or 0), _mtime(info)))
    return _stored(found, ".json")


def _mtime(info: dict[str, Any]) -> float:
    """A listed remote file's modification time (backends name it differently), or 0."""
    for name in ("mtime", "LastModified", "last_modified", "created"):
        value = info.get(name)
        if isinstance(value, int | float):
            return float(value)
        stamp = getattr(value, "timestamp", None)  # a datetime (s3fs's LastModified)
        if callable(stamp):
            return float(stamp())
    return 0.0


def records(store: Remote, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The records of ``keys`` on the remote cache ``store`` (read at once), those it has and can read."""
    import json

    from . import transfers

    fs, _ = store.filesystem()
    wanted = list(keys)
    found: dict[str, dict[str, Any]] = {}
    for key, answer in zip(
        wanted, transfers.each(fs, [("cat_file", store.path(k, "json")) for k in wanted]), strict=True
    ):
        if isinstance(answer, FileNotFoundError):
            continue
        if isinstance(answer, BaseException):
            raise store.trouble(answer)
        try:
            record = json.loads(answer)
        except ValueError:
            continue
        if isinstance(record, dict):
            found[key] = record
    return found


def remove_remote(store: Remote, stored: Stored) -> None:
    """Remove ``stored``'s files from the remote cache: its record first, then the object and side files."""
    fs, _ = store.filesystem()
    for path in stored.files:
        try:
            fs.rm_file(path)
        except FileNotFoundError:
            pass


def size_text(size: float) -> str:
    """Bytes for a person, in powers of 1000 as ``[cache] max_size`` reads them: ``3.4 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
