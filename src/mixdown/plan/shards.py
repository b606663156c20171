"""One machine's share of a night's build: ``--shard I/N`` (``mixdown build``, ``doit``).

N runners (a CI matrix, a Kubernetes Indexed Job) each build one shard;
together, sharing the remote cache, they build the whole show once. Shards
count from 0, as Kubernetes' ``JOB_COMPLETION_INDEX`` and GitHub Actions'
``strategy.job-index`` do: ``--shard 0/4`` … ``--shard 3/4``.

A rendition (a script, or a script for one variant) belongs to the shard
:func:`shard_of` its name: a hash of the name alone, modulo N. It does not
depend on the order of the CSV or on its other rows, so adding a listener
moves no other listener, and the N shards cover every rendition exactly once.

A shard's plan (:func:`select`) holds its renditions' mixes and masters and
every asset and section pre-mix they use, so an asset several shards use is
in each of their plans. The remote cache makes it once: each render looks
the key up remotely just before it would be made, and uploads what it made
at once. Two shards that reach the same missing key at the same moment both
render it (the per-key lock is per machine), so each shard's plan is
ordered to make that rare: first the shared assets it *owns* (one of the
shards using it, chosen by the key), then its own, then the shared assets
other shards own, which by then are usually in the remote cache. A key a
shard found missing remotely at its start is asked for again before it is
made (:func:`shared_keys`): another shard may have made it since.

Each shard's build writes ``mixdown.lock`` with its own targets' entries and
the other shards' entries as they were, where the show still wants them
(:mod:`mixdown.actions.locking`); :func:`merge` makes the whole show's lock
from the N shards' locks (``mixdown merge-locks``), each target's entry from
the shard that made it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..errors import ConfigError
from ..settings import SHARD_ENV
from .lock import Entry, Lock, Wanted
from .model import MixPlan, Plan, SectionPlan

__all__ = ["ENV", "Merged", "Shard", "merge", "parse", "select", "shard_of", "shared_keys"]

#: the environment variable a build reads its shard from when no ``--shard`` is given
ENV = SHARD_ENV


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 0) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, name: str) -> bool:
        """Whether the rendition ``name`` is this shard's."""
        return shard_of(name, self.count) == self.index


def shard_of(name: str, count: int) -> int:
    """The shard (from 0) of the rendition ``name`` among ``count`` shards.

    A hash of the name alone (sha256, not Python's per-process ``hash``), so
    it is the same on every machine and in every run.
    """
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def parse(text: str, option: str = "--shard") -> Shard:
    """The :class:`Shard` written ``I/N`` (``I`` from 0 to N-1).

    Raises :class:`~mixdown.errors.ConfigError` with one line naming
    ``option`` (``--shard``, or ``MIXDOWN_SHARD=``), what is wrong and what
    to write instead.
    """
    given = f"{option}{text}" if option.endswith("=") else f"{option} {text}"
    index_text, slash, count_text = text.strip().partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index = count = -1
    if not slash or count < 1:
        raise ConfigError(
            f"{given}: write the shard as I/N, N machines and this one's index I counted from 0, "
            "e.g. 0/4 to 3/4 (Kubernetes: $JOB_COMPLETION_INDEX/N; GitHub Actions: "
            "${{ strategy.job-index }}/${{ strategy.job-total }})"
        )
    if not 0 <= index < count:
        raise ConfigError(
            f"{given}: shards count from 0, so I runs from 0 to {count - 1} for N = {count}: "
            f"write 0/{count} to {count - 1}/{count}"
            + (f" ({index - 1}/{count} if you counted from 1)" if index == count else "")
        )
    return Shard(index, count)


def select(plan: Plan, shard: Shard) -> Plan:
    """The part of ``plan`` that ``shard`` builds: its renditions, and what they use.

    Every asset and section pre-mix a rendition of the shard uses is in it,
    ordered as the module docstring says; a section is made, for the shard,
    from its first use among the shard's renditions. An asset no rendition
    uses (there are none in a plan the planner made) goes by its own target.
    """
    mixes = [mix for mix in plan.mixes if shard.owns(mix.name)]
    asset_users = _users(plan, shard.count, lambda mix: mix.assets)
    for key, asset in plan.assets.items():
        asset_users.setdefault(key, {shard_of(asset.task, shard.count)})
    assets = {key: plan.assets[key] for key in _ordered(plan.assets, asset_users, shard.index)}
    section_users = _users(plan, shard.count, lambda mix: [k for k in mix.section_keys if k is not None])
    first_use: dict[str, SectionPlan] = {}
    for mix in mixes:
        for position, used in enumerate(mix.section_keys):
            if used is not None and used not in first_use:
                first_use[used] = plan.sections[used]._replace(mix=mix.name, index=position)
    sections = {key: first_use[key] for key in _ordered(first_use, section_users, shard.index)}
    return Plan(assets, mixes, plan.first_takes, sections)


def shared_keys(plan: Plan, shard: Shard) -> frozenset[str]:
    """The asset and section keys ``shard`` uses that other shards of ``plan`` use too.

    Another machine may make one of them while this one builds: the build
    asks the remote cache for it again just before making it, even when it
    found it missing there at the start.
    """
    found: set[str] = set()
    for used in (lambda mix: mix.assets, lambda mix: [k for k in mix.section_keys if k is not None]):
        users = _users(plan, shard.count, used)
        found.update(key for key, shards in users.items() if shard.index in shards and len(shards) > 1)
    return frozenset(found)


def _users(plan: Plan, count: int, used: Callable[[MixPlan], Iterable[str]]) -> dict[str, set[int]]:
    """Every key's set of shards that use it, through ``used(mix)`` (its asset or section keys)."""
    out: dict[str, set[int]] = {}
    for mix in plan.mixes:
        index = shard_of(mix.name, count)
        for key in used(mix):
            out.setdefault(key, set()).add(index)
    return out


def _ordered(keys: Iterable[str], users: dict[str, set[int]], index: int) -> list[str]:
    """The keys shard ``index`` uses, in the order it makes them: the shared ones it owns, its
    own, then the shared ones other shards own (each group in ``keys``' order)."""
    groups: tuple[list[str], list[str], list[str]] = ([], [], [])
    for key in keys:
        found = users.get(key, set())
        if index not in found:
            continue
        if len(found) == 1:
            groups[1].append(key)
        else:
            groups[0 if _owner(key, found) == index else 2].append(key)
    return [*groups[0], *groups[1], *groups[2]]


def _owner(key: str, users: set[int]) -> int:
    """The shard that makes a key several shards use: one of them, chosen by the key itself."""
    ordered = sorted(users)
    return ordered[int(key[:8], 16) % len(ordered)]


class Merged(NamedTuple):
    """The whole show's lock made from its shards' locks, and what it could not settle."""

    lock: Lock
    missing: tuple[str, ...]  # targets no shard's lock has a current entry for
    differing: tuple[str, ...]  # targets two shards made at once, as two takes: the maker's kept


def merge(plan: Plan, want: Mapping[str, Wanted], parts: Sequence[Lock]) -> Merged:
    """The lock of the show planned as ``plan`` (wanting ``want``) from its shards' locks.

    ``parts`` are the locks the N shards' builds wrote, shard 0's first. Each
    target takes the entry current for it (its key, and a master's files)
    from the lock of the shard that makes it (a rendition's, or the owner
    of a shared asset), else from another shard that uses it, else from any:
    each shard keeps the entries of the others' targets as they were before
    it built. Entries no target wants are dropped.
    """
    count = len(parts)
    users = _users(plan, count, lambda mix: mix.assets)
    tasks = {asset.task: asset.key for asset in plan.assets.values()}
    out: dict[str, Entry] = {}
    missing: list[str] = []
    differing: list[str] = []
    for target, wish in want.items():
        makers = _makers(target, tasks, users, count)
        order = makers + [index for index in range(count) if index not in makers]
        found = [(i, e) for i in order if (e := parts[i].get(target)) is not None and wish.matches(e)]
        if not found:
            missing.append(target)
            continue
        made = [entry for index, entry in found if index in makers]
        if any(entry != made[0] for entry in made):
            differing.append(target)
        out[target] = found[0][1]
    return Merged(Lock(out), tuple(missing), tuple(differing))


def _makers(target: str, tasks: dict[str, str], users: dict[str, set[int]], count: int) -> list[int]:
    """The shards that make ``target``, the one that makes it first (its owner) first."""
    key = tasks.get(target)
    if key is None:  # a mix, master or delivery: its rendition's shard
        name = target.split(":", 1)[1]
        kind = target.split(":", 1)[0]
        return [shard_of(name.rsplit("/", 1)[0] if kind == "deliver" else name, count)]
    found = users.get(key, {shard_of(target, count)})
    owner = _owner(key, found) if len(found) > 1 else next(iter(found))
    return [owner, *sorted(found - {owner})]
