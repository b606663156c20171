"""``mixdown.lock`` and the build: written at its end, and a ``--frozen`` build held to it.

:func:`finisher` is what the loader registers (:func:`mixdown.actions.finish.at_finish`)
for a ``doit run``: once doit has run the tasks, :func:`update` writes the
lock (:mod:`mixdown.plan.lock`) from what the build has. An asset's entry
comes from its cache record, a mix's from its object, a master's and a
delivery's from what the action recorded as it published the files
(:mod:`mixdown.actions.published`). A target that did not run keeps its
old entry while its key is the same, so a build reads only the records of
what changed.

A no-op build does no work at all: when no task ran and the plan's targets
and keys are those the lock was last written for (a fingerprint in
``.mixdown/lock.json``, with the lock's size and modification time), the
lock is left alone without being read.

Under ``--frozen`` (CI), :func:`frozen` refuses at load time a plan whose
targets or keys differ from the lock, and :func:`check_pinned` fails a render,
master or delivery whose audio differs from what the lock pins. The lock
is never written.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from ..errors import ConfigError, MixdownError
from ..plan import lock as lockfile
from ..plan.lock import FILENAME, Entry, FileEntry, Lock, Wanted
from ..plan.model import Asset, MixPlan, Plan
from ..settings import STATE_DIR
from ..store import files
from . import published
from .context import Context

__all__ = ["FINGERPRINT", "check_pinned", "finisher", "frozen", "update"]

#: where the fingerprint of the last lock written lives, in the show's state directory
FINGERPRINT = "lock.json"
_LISTED = 5  # the targets a --frozen failure names before "and N more"


def finisher(context: Context, plan: Plan, *, whole: Plan | None = None) -> Callable[[list[str]], None]:
    """The end-of-build step that writes ``mixdown.lock`` for ``plan`` (see :func:`update`)."""

    def finish(ran: list[str]) -> None:
        update(context, plan, ran, whole=whole)

    return finish


def update(context: Context, plan: Plan, ran: list[str], *, whole: Plan | None = None) -> bool:
    """Write ``mixdown.lock`` for ``plan`` after a build in which the tasks ``ran`` executed.

    Returns whether the file was written (it is not when its text would not
    change). A lock that cannot be read (a merge left conflict markers in
    it) is written again from this build, with a warning line.

    ``plan`` may be one shard of the show's plan ``whole`` (:mod:`mixdown.plan.shards`):
    the entries of the shard's targets are then written as above, and those of the
    other shards' targets kept as they were while ``whole`` still wants them
    (the build cannot know what other machines made), so each shard's lock is
    correct for every entry it has.
    """
    root = context.project.root
    path = root / FILENAME
    targets = {name for name in ran if ":" in name}  # not doit's groups (voice, mix, …): they always "run"
    want: dict[str, Wanted] | None = None
    others: dict[str, Wanted] = {}
    if whole is None:
        fingerprint = lockfile.fingerprint(plan, root)  # made with the plan: a no-op needs no more
    else:
        want = lockfile.wanted(plan, root)
        others = _others(lockfile.wanted(whole, root), want)
        fingerprint = lockfile.digest(want, plan) + lockfile.digest(others, whole)
    state = root / STATE_DIR / FINGERPRINT
    remembered, stat = _remembered(state), _stat(path)
    if not targets and remembered == [fingerprint, stat]:
        return False
    # The lock as this build last wrote it, kept beside the fingerprint (parsing a large one
    # costs more than the rest); one changed since (a pull, a checkout, a hand edit) is read,
    # and not trusted to describe this cache: every entry is made again.
    trusted = isinstance(remembered, list) and len(remembered) == 2 and remembered[1] == stat
    old = _kept(state) if trusted else None
    if old is None:
        old = _read(path)
    want = lockfile.wanted(plan, root) if want is None else want
    new = _entries(context, plan, old, targets if trusted else None, want)
    if others:
        kept = {t: e for t, wish in others.items() if (e := old.get(t)) is not None and wish.matches(e)}
        new = Lock({**kept, **new.entries})
    written = bool(new.entries or path.exists()) and lockfile.write(path, new)
    if written:
        changed = len(lockfile.compare(old, new))
        print(
            f"{FILENAME}  written: {changed} {'entry' if changed == 1 else 'entries'} changed",
            file=sys.stdout,
        )
    if path.exists():
        state.parent.mkdir(exist_ok=True)
        files.write_bytes_atomic(state.with_suffix(".pickle"), pickle.dumps(new, pickle.HIGHEST_PROTOCOL))
        files.write_bytes_atomic(state, json.dumps([fingerprint, _stat(path)]).encode("utf-8"))  # last
    return written


def _others(whole: dict[str, Wanted], want: dict[str, Wanted]) -> dict[str, Wanted]:
    """What ``whole`` wants of the targets a shard's plan (``want``) does not have."""
    return {target: wish for target, wish in whole.items() if target not in want}


def _read(path: Path) -> Lock:
    try:
        return lockfile.read(path)
    except ConfigError as err:
        print(f"warning: {err}; writing it again from this build", file=sys.stdout)
        return Lock()


def _kept(state: Path) -> Lock | None:
    """The lock kept beside the fingerprint ``state``, or None."""
    try:
        found = files.unpickled(state.with_suffix(".pickle"))
    except Exception:  # missing, or written by another version of mixdown: read the file instead
        return None
    return found if isinstance(found, Lock) else None


def _entries(context: Context, plan: Plan, old: Lock, ran: set[str] | None, want: dict[str, Wanted]) -> Lock:
    """The lock's entries after this build: fresh for what ran (everything, with ``ran`` None)
    or changed, the old ones for the rest, and for what this build does not have."""
    out: dict[str, Entry] = {}

    def keep(target: str, fresh: Callable[[], Entry | None]) -> None:
        entry = old.get(target)
        if ran is None or target in ran or not want[target].matches(entry):
            entry = fresh() or entry
        if entry is not None and want[target].matches(entry):
            out[target] = lockfile.as_written(entry)

    for asset in plan.assets.values():
        keep(asset.task, partial(_asset_entry, context, asset))
    for mix in plan.mixes:
        keep(f"mix:{mix.name}", partial(_mix_entry, context, mix))
        target = f"master:{mix.name}"
        keep(target, partial(_published_entry, context, mix, target, want[target], None))
        for delivery in mix.deliveries:
            target = f"deliver:{mix.name}/{delivery.name}"
            keep(target, partial(_published_entry, context, mix, target, want[target], delivery.name))
    return Lock(out)


def _asset_entry(context: Context, asset: Asset) -> Entry | None:
    """An asset's entry from its cache record, or None when it is not cached."""
    if asset.key not in context.cache:
        return None
    try:
        record = context.cache.digest(asset.key)
    except (OSError, ValueError):
        return None
    version = record.get("version")
    return Entry(
        asset.task,
        asset.key,
        renderer=str(record.get("renderer", asset.renderer)),
        renderer_version=str(version) if version is not None else None,
        sha256=str(record["sha256"]),
        seconds=float(record["duration"]),
        request_id=_text(record.get("request_id")),
        billed=_text(record.get("billed")),
    )


def _text(value: object) -> str | None:
    return str(value) if value is not None and value != "" else None


def _mix_entry(context: Context, mix: MixPlan) -> Entry | None:
    """A mix's entry from its cache record, or None when it is not cached."""
    if mix.key not in context.cache:
        return None
    try:
        seconds = float(context.cache.meta(mix.key)["duration"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Entry(f"mix:{mix.name}", mix.key, seconds=seconds)


def _published_entry(
    context: Context, mix: MixPlan, target: str, want: Wanted, delivery: str | None
) -> Entry | None:
    """A master's or delivery's entry from its published record, when its files are current."""
    found = published.read(context, mix, delivery)
    if (
        found is None
        or (found.mix, found.master) != (mix.key, mix.master_key)
        or tuple(f.file for f in found.measured) != want.files
        or not found.intact()
    ):
        return None
    return Entry(target, mix.master_key, mix=mix.key, files=found.measured)


def _stat(path: Path) -> list[int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def _remembered(state: Path) -> object:
    try:
        found: object = json.loads(state.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return found


# -- --frozen ------------------------------------------------------------------------------


def frozen(plan: Plan, root: Path, *, whole: Plan | None = None) -> Lock:
    """The lock a ``--frozen`` build is held to, checked against ``plan`` before anything runs.

    Raises :class:`~mixdown.errors.MixdownError` (one line, naming how many
    and which entries) when building ``plan`` would add, change or remove
    an entry of ``mixdown.lock``. For one shard of the plan ``whole``, the
    entries of other shards' targets are theirs to check: only the shard's
    own, and entries the whole show no longer has, are held against it.
    """
    lock = lockfile.read(root / FILENAME)
    want = lockfile.wanted(plan, root)
    changed = lockfile.differences(want, lock)
    if whole is not None:
        others = _others(lockfile.wanted(whole, root), want)
        changed = [target for target in changed if target not in others]
    if changed:
        named = ", ".join(changed[:_LISTED]) + (
            f" and {len(changed) - _LISTED} more" if len(changed) > _LISTED else ""
        )
        count = f"{len(changed)} {'entry' if len(changed) == 1 else 'entries'}"
        raise MixdownError(
            f"{FILENAME}: --frozen, but this build would change {count} ({named}); nothing was rendered: "
            f"build without --frozen and commit {FILENAME}"
        )
    return lock


def check_pinned(
    context: Context, target: str, key: str, *, sha256: str | None = None, made: tuple[FileEntry, ...] = ()
) -> None:
    """Under ``--frozen``: fail ``target`` when what it just made differs from what the lock pins.

    ``sha256`` is a render's object; ``made`` a master's or delivery's files.
    Nothing to check without ``--frozen``, or for a target the lock has at
    another key (the load-time check refuses those).
    """
    lock = context.pinned
    entry = lock.get(target) if lock is not None else None
    if entry is None or entry.key != key:
        return
    pinned = {f.file: f.sha256 for f in entry.files}
    found = [(f.file, f.sha256, pinned.get(f.file)) for f in made]
    if sha256 is not None:
        found.append(("its audio", sha256, entry.sha256))
    for name, now, was in found:
        if was is not None and now != was:
            raise MixdownError(
                f"{target}: --frozen, but {name} came out with sha256 {now[:12]}… where {FILENAME} pins "
                f"{was[:12]}… (a renderer whose takes differ between machines?): share the pinned takes "
                f"through the remote cache ([cache] remote), or build without --frozen and commit {FILENAME}"
            )
