"""What the build shares through the remote cache (:mod:`mixdown.store.remote`), and when.

Every rendered asset is shared (the paid part); with ``[cache] share = "all"``,
each section's pre-mix (its SFX bus as a companion) and each mix (its side
files with it) too. An action that finds its key
missing looks it up remotely under the key's lock before making it
(:func:`fetched`), and hands what it made to the upload pool at once
(:func:`upload`). A plain ``doit`` fetches everything the plan lacks in one
batch first (:func:`prefetch`); :func:`finisher` waits for the uploads at
the end of the build. What each master and delivery publishes in ``build/``
is shared too, with ``share = "all"``, by :mod:`mixdown.actions.shipments`
(:func:`status` and :func:`push` count it).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NamedTuple

from ..plan.model import Asset, MixPlan, Plan, section_sfx_key
from ..store.backends import RemoteUnavailable
from ..store.cache import Cache
from ..store.remote import Remote, Wanted
from . import shipments
from .context import Context
from .splice import ANALYSIS, LAYOUT, POWERS

__all__ = [
    "MIX_SIDES",
    "Pushed",
    "Status",
    "push",
    "status",
    "Prefetched",
    "asset_wanted",
    "fetched",
    "finisher",
    "made_or_fetched",
    "mix_wanted",
    "plan_wanted",
    "prefetch",
    "section_wanted",
    "upload",
]

#: a mix's side files, shared with it
MIX_SIDES = (ANALYSIS, LAYOUT, POWERS)


class Prefetched(NamedTuple):
    """The line a batch fetch prints, and the keys it brought."""

    line: str
    keys: frozenset[str]


def asset_wanted(asset: Asset) -> Wanted:
    """A rendered asset as the remote cache shares it."""
    return Wanted(asset.key, asset.task)


def section_wanted(key: str, task: str) -> Wanted:
    """A section's pre-mix: its voice bus, with its SFX bus as a companion."""
    return Wanted(key, task, "section", companions=(section_sfx_key(key),))


def mix_wanted(mix: MixPlan) -> Wanted:
    """A mix with its side files."""
    return Wanted(mix.key, f"mix:{mix.name}", "mix", sides=MIX_SIDES)


def plan_wanted(plan: Plan, remote: Remote) -> list[Wanted]:
    """Everything of ``plan`` that ``remote`` shares, in the order the build makes it."""
    wanted = [asset_wanted(a) for a in plan.assets.values()]
    if remote.shares("section"):
        wanted += [section_wanted(s.key, s.task) for s in plan.sections.values()]
    if remote.shares("mix"):
        wanted += [mix_wanted(m) for m in plan.mixes]
    return wanted


def fetched(context: Context, wanted: Wanted) -> bool:
    """Read-through: whether ``wanted`` is now in the cache, downloaded from the remote.

    Called under the key's lock, just before it would be made.
    """
    remote = context.remote
    if remote is None or not remote.shares(wanted.kind):
        return False
    if wanted.key in context.fresh:
        remote.absent.discard(wanted.key)  # missing at the start; another machine may have made it since
    return remote.fetch_one(context.cache, wanted)


def upload(context: Context, wanted: Wanted) -> None:
    """Write-through: upload ``wanted`` (just stored in the cache) beside the build."""
    remote = context.remote
    if remote is not None and remote.shares(wanted.kind):
        remote.upload(context.cache, wanted)


def made_or_fetched(context: Context, wanted: Wanted, make: Callable[[], None]) -> None:
    """``wanted`` from the remote if it has it, else ``make()`` it and upload it."""
    if fetched(context, wanted):
        return
    make()
    upload(context, wanted)


def prefetch(remote: Remote, cache: Cache, plan: Plan) -> Prefetched | None:
    """Fetch in one batch everything of ``plan`` that the local cache lacks and ``remote`` holds.

    None when nothing is missing. A remote that cannot be used is warned
    about once (the build goes on locally) or, when required, raised as
    :class:`~mixdown.store.backends.RemoteUnavailable`.
    """
    cached = cache.keys()
    wanted = [w for w in plan_wanted(plan, remote) if w.key not in cached]
    if not wanted or not remote.usable():
        return None
    try:
        done = remote.fetch(cache, wanted)
    except RemoteUnavailable as err:
        remote.warn(err)
        return None
    size = done.size / 1e6
    line = (
        f"remote cache: {len(done.fetched)} of {done.wanted} missing objects downloaded "
        f"({size:.1f} MB in {done.seconds:.1f} s); {len(done.corrupt)} corrupt, "
        f"{done.wanted - done.found} not there"
    )
    return Prefetched(line, frozenset(done.fetched))


def finisher(remote: Remote) -> Callable[[list[str]], None]:
    """An :func:`~mixdown.actions.finish.at_finish` finisher: wait for the build's uploads, say
    what they did; a required remote that failed fails the build."""

    def drain(ran: list[str]) -> None:
        done = remote.drain()
        if done.objects:
            print(
                f"remote cache: uploaded {done.objects} objects ({done.size / 1e6:.1f} MB) "
                f"in {done.seconds:.1f} s",
                file=sys.stdout,
                flush=True,
            )
        if done.failed:
            if remote.required:
                raise RemoteUnavailable(f"{done.failed[0]} ({len(done.failed)} not uploaded)")
            remote.warn(RemoteUnavailable(remote.down or done.failed[0]))

    return drain


class Status(NamedTuple):
    """What of a plan's shared objects is missing where: targets, in the plan's order."""

    shared: int  # objects the plan shares
    local: tuple[str, ...]  # missing from the local cache
    remote: tuple[str, ...]  # missing from the remote


class Pushed(NamedTuple):
    """What ``mixdown push`` did."""

    pushed: int
    size: int
    seconds: float
    there: int  # on the remote already
    unbuilt: tuple[str, ...]  # not in the local cache: nothing to push


def status(remote: Remote, cache: Cache, plan: Plan, context: Context | None = None) -> Status:
    """Which of ``plan``'s shared objects each cache lacks (one listing of the remote).

    With ``context`` and ``[cache] share = "all"``, the files each master and
    delivery publishes too (:mod:`mixdown.actions.shipments`): missing locally
    when ``build/`` does not hold them as made from the current plan.
    """
    wanted = plan_wanted(plan, remote)
    local, held = cache.keys(), remote.keys()
    shipped = shipments.status(context, plan, held) if context and remote.shares("master") else []
    return Status(
        len(wanted) + len(shipped),
        tuple(w.target for w in wanted if w.key not in local)
        + tuple(s.shipment.target for s in shipped if not s.built),
        tuple(w.target for w in wanted if w.key not in held)
        + tuple(s.shipment.target for s in shipped if not s.held),
    )


def push(remote: Remote, cache: Cache, plan: Plan, context: Context | None = None) -> Pushed:
    """Upload every shared object of ``plan`` that the local cache has and the remote lacks
    (with ``context``, the files in ``build/`` too, as :func:`status` counts them)."""
    wanted = plan_wanted(plan, remote)
    local, held = cache.keys(), remote.keys()
    unbuilt = tuple(w.target for w in wanted if w.key not in local)
    todo = [w for w in wanted if w.key in local and w.key not in held]
    for item in todo:
        remote.upload(cache, item)
    shipped = shipments.push(context, remote, plan, held) if context and remote.shares("master") else []
    there = len(wanted) - len(unbuilt) - len(todo) + sum(s.built and s.held for s in shipped)
    unbuilt += tuple(s.shipment.target for s in shipped if not s.built)
    done = remote.drain()
    if done.failed:
        raise RemoteUnavailable(f"{done.failed[0]} ({len(done.failed)} not uploaded)")
    return Pushed(done.objects, done.size, done.seconds, there, unbuilt)
