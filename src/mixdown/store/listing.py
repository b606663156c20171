"""The listing of a cache's objects, remembered between runs shard by shard.

Listing every shard of a large cache on every run costs more than a no-op
build has to spend, so :func:`scan` keeps each shard's listing in a local
index file and lists again only the shards whose directory changed.
"""

from __future__ import annotations

import os
import pickle
import time
from pathlib import Path

from . import files

__all__ = ["scan"]

_RACY_NS = 1_000_000_000  # a listing taken within 1 s of its directory's change is re-taken
#: a shard's directory mtime, when it was listed (ns), and the keys it held
_Listing = tuple[int, int, tuple[str, ...]]


def scan(objects: Path, index: Path | None) -> set[str]:
    """Every key with a complete object under ``objects``, reusing a shard's listing remembered in
    ``index`` (None: none is kept) while its directory is unchanged.

    A directory's mtime changes whenever an entry is added or removed, so
    an unchanged mtime means an unchanged listing — unless the listing was
    taken within the timestamp granularity of that change (a "racy"
    listing, as git calls it), which is then taken again.
    """
    try:
        shards = [s for s in os.listdir(objects) if len(s) == 2]
    except FileNotFoundError:
        return set()
    remembered = _load_index(objects, index)
    listings: dict[str, _Listing] = {}
    for shard in shards:
        path = os.path.join(objects, shard)
        mtime = os.stat(path).st_mtime_ns
        old = remembered.get(shard)
        if old is not None and old[0] == mtime and old[1] - mtime > _RACY_NS:
            listings[shard] = old
        else:
            listed_at = time.time_ns()
            names = os.listdir(path)
            listings[shard] = (mtime, listed_at, tuple(n[:-4] for n in names if n[-4:] == ".wav"))
    if listings != remembered:
        _save_index(objects, index, listings)
    return {key for _, _, keys in listings.values() for key in keys}


def _load_index(objects: Path, index: Path | None) -> dict[str, _Listing]:
    if index is None:
        return {}
    try:
        stored = files.unpickled(index)
    except Exception:  # missing or unreadable: list every shard
        return {}
    if not isinstance(stored, tuple) or stored[0] != str(objects.resolve()):
        return {}
    listings: dict[str, _Listing] = stored[1]
    return listings


def _save_index(objects: Path, index: Path | None, listings: dict[str, _Listing]) -> None:
    if index is None:
        return
    index.parent.mkdir(parents=True, exist_ok=True)
    blob = pickle.dumps((str(objects.resolve()), listings), protocol=pickle.HIGHEST_PROTOCOL)
    files.write_bytes_atomic(index, blob)
