"""What the cache may lose: ``mixdown gc`` and ``[cache] max_size``.

An object is *referenced* when the current plan uses it (an asset, a
section's pre-mix and its SFX bus, a mix and its stems, a master) or a
lockfile names it: ``mixdown.lock`` in the show, and as committed at the
tip of the current branch (``HEAD``) and of ``main`` (``master`` where
there is no ``main``), or at the revisions given (``--rev``). A lock's mix
keeps its stems too. Everything else in the cache — earlier versions of
edited lines, their sections, mixes and masters, takes no longer used — is
garbage: it can be made again (at a price, for paid renders: hence the
lockfiles of the branches still in review).

:func:`collect` lists (and removes) the garbage of the local cache or of the
remote one; :func:`trim` removes the least recently used garbage until the
local cache fits ``[cache] max_size``, after a build (:func:`trimmer`).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import MixdownError
from ..store import inventory
from ..store.inventory import Stored, size_text
from . import lock
from .model import Plan, section_sfx_key, shipment_key

if TYPE_CHECKING:
    from ..store.cache import Cache
    from ..store.remote import Remote

__all__ = [
    "LOCKFILE",
    "Collected",
    "References",
    "collect",
    "garbage",
    "plan_keys",
    "referenced",
    "trim",
    "trimmer",
]

LOCKFILE = lock.FILENAME
BRANCHES = ("main", "master")  # the first that exists is the branch a show's reviews merge into


class References(NamedTuple):
    """The keys the cache must keep, and where they were found (for messages)."""

    keys: frozenset[str]
    sources: tuple[str, ...]


class Collected(NamedTuple):
    """Garbage found in a cache: what goes (or went), and what it held in all."""

    garbage: list[Stored]  # oldest use first
    objects: int  # every object in the cache
    size: int  # and their bytes

    @property
    def freed(self) -> int:
        """The bytes of the garbage."""
        return sum(item.size for item in self.garbage)


def plan_keys(plan: Plan) -> set[str]:
    """Every cache key the current plan uses."""
    keys = set(plan.assets)
    for section in plan.sections:
        keys.update((section, section_sfx_key(section)))
    for mix in plan.mixes:
        keys.update((mix.key, mix.master_key))
        keys.update(shipment_key(mix, name) for name in (None, *(d.name for d in mix.deliveries)))
    return keys


def referenced(
    plan: Plan, root: Path, revs: Sequence[str] | None = None, *, published: Iterable[str] = ()
) -> References:
    """What ``plan`` and the lockfiles reference: the show's own ``mixdown.lock``, and the one
    committed at each of ``revs`` (by default the current branch's tip and main's); and the
    ``published`` mixes and masters, those the files in ``build/`` were made from."""
    keys, sources = plan_keys(plan), ["the plan"]
    made = {key for key in published if key not in keys}
    if made:
        keys |= made
        sources.append("build/")
    own = root / LOCKFILE
    if own.is_file():
        keys |= lock.read(own).keys()
        sources.append(LOCKFILE)
    for rev in revs if revs is not None else _default_revs(root):
        committed = _committed(root, rev, named=revs is not None)
        if committed is not None:
            keys |= committed.keys()
            sources.append(f"{LOCKFILE} at {rev}")
    return References(frozenset(keys), tuple(sources))


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)


def _default_revs(root: Path) -> list[str]:
    """``HEAD`` and the main branch, where the show is in a git repository that has them."""
    revs = [rev for rev in ("HEAD", *BRANCHES) if _is_commit(root, rev)]
    main = next((rev for rev in revs if rev in BRANCHES), None)
    return [rev for rev in revs if rev not in BRANCHES or rev == main]


def _is_commit(root: Path, rev: str) -> bool:
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").returncode == 0
    except OSError:  # no git: no revisions to read
        return False


def _committed(root: Path, rev: str, *, named: bool) -> lock.Lock | None:
    """The lockfile as committed at ``rev``, or None where that commit has none.

    A revision named on the command line (``named``) that is not one is an error.
    """
    if not _is_commit(root, rev):
        if named:
            raise MixdownError(
                f"--rev {rev}: not a commit of the git repository of {root}; name a branch, tag or commit"
            )
        return None
    return lock.at_revision(root, rev)


def garbage(objects: dict[str, Stored], keep: Iterable[str]) -> Collected:
    """The objects not in ``keep``, least recently used first."""
    kept = set(keep)
    found = sorted((item for key, item in objects.items() if key not in kept), key=lambda i: (i.used, i.key))
    return Collected(found, len(objects), sum(item.size for item in objects.values()))


def collect(
    cache: Cache, references: References, *, remote: str | None = None, dry_run: bool = False
) -> Collected:
    """The garbage of the local ``cache`` (or of the remote cache at the URL ``remote``), removed
    unless ``dry_run``."""
    if remote is None:
        found = garbage(inventory.local(cache), references.keys)
        if not dry_run:
            for item in found.garbage:
                inventory.remove_local(cache, item)
        return found
    from ..store.remote import Remote

    store = Remote(remote)
    objects = inventory.remote(store)
    found = garbage(objects, references.keys | _shipped(store, objects, references.keys))
    if not dry_run:
        for item in found.garbage:
            inventory.remove_remote(store, item)
    return found


def _shipped(store: Remote, objects: dict[str, Stored], keys: frozenset[str]) -> set[str]:
    """The remote's shared masters and deliveries (records with no ``KEY.wav``: the files
    a rendition published) that ``keys`` do not name but whose master they reference: a
    lockfile's master is kept with the files made from it."""
    candidates = [
        key
        for key, item in objects.items()
        if key not in keys and not any(name.endswith(f"/{key}.wav") for name in item.files)
    ]
    found = inventory.records(store, candidates) if candidates else {}
    return {key for key, record in found.items() if record.get("master") in keys}


def trim(cache: Cache, references: References, max_size: int) -> str | None:
    """Remove the least recently used garbage until the local cache holds at most ``max_size``
    bytes; the one line saying what was freed (None when it fits already)."""
    return trimmed(cache, references, max_size)[2]


def trimmed(cache: Cache, references: References, max_size: int) -> tuple[int, int, str | None]:
    """:func:`trim`, after the bytes the cache held before it and holds after it."""
    found = garbage(inventory.local(cache), references.keys)
    if found.size <= max_size:
        return found.size, found.size, None
    size, freed, count = found.size, 0, 0
    for item in found.garbage:
        if size - freed <= max_size:
            break
        inventory.remove_local(cache, item)
        freed, count = freed + item.size, count + 1
    now, limit = size - freed, size_text(max_size)
    in_use = f"in use ({', '.join(references.sources)}); raise max_size"
    if not count:
        return size, now, f"cache: {size_text(now)}, over [cache] max_size ({limit}), and all of it {in_use}"
    line = f"cache: removed {count} unused objects ({size_text(freed)}), {size_text(now)} left"
    return (
        size,
        now,
        line + (f", over [cache] max_size ({limit}): the rest is {in_use}" if now > max_size else ""),
    )


def trimmer(
    cache: Cache, max_size: int, references: Callable[[], References], say: Callable[[str], None]
) -> Callable[[list[str]], None]:
    """The end-of-build finisher of ``[cache] max_size`` (see :func:`mixdown.actions.finish.at_finish`):
    after a build that made anything, :func:`trim` to what ``references()`` keeps, and ``say``
    what it freed."""

    def finisher(ran: list[str]) -> None:
        if not ran:
            return  # nothing was added to the cache
        line = trim(cache, references(), max_size)
        if line is not None:
            say(line)

    return finisher
