"""Which renditions' files in ``build/`` are current, remembered from one build to the next.

A plain ``doit`` hands doit only the work there is: assets and pre-mixes
already in the cache are left out (:func:`mixdown.actions.tasks.task_dicts`),
and so are the renditions whose mix is cached and whose files this
record says are current. doit would find each of those up to date, one
task at a time (its stamp, its targets): with 10,000 variants that is
20,000 tasks to make and check, seconds of a build with nothing to do.

The record holds, per rendition, the stamps its master and delivery tasks
check (:attr:`~mixdown.plan.model.MixPlan.stamp`) and the size and
modification time of each of its files, as they were when doit last ran or
skipped those tasks successfully in a build (:func:`recorder`). A rendition
is current when its stamps are the plan's and every file is as recorded; a
file touched, replaced or removed since, a ``doit forget`` or ``doit
clean`` (:func:`forget`) hands it to doit again. The record is
machine-local state in ``.mixdown/``, never part of a key.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Collection
from pathlib import Path
from typing import NamedTuple

from ..plan.model import MixPlan, Plan
from ..settings import STATE_DIR
from ..store import files

__all__ = ["Beside", "Rendition", "current", "files_of", "forget", "recorder"]

FILENAME = "current.pickle"


class Rendition(NamedTuple):
    """A rendition's files as its last successful build left them."""

    stamps: tuple[str, ...]  # the master's stamp, then each delivery's
    files: tuple[tuple[str, int, int], ...]  # (path, size, st_mtime_ns) of each file


class Beside(NamedTuple):
    """What else a rendition publishes beside its deliverables (its captions and timeline,
    :func:`mixdown.actions.tasks.beside`): the tasks, their stamps and their files."""

    tasks: tuple[str, ...] = ()
    stamps: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # paths


#: what a rendition publishes beside its deliverables, by rendition (nothing, by default)
Besides = Callable[[MixPlan], Beside]


def _nothing(mix: MixPlan) -> Beside:
    return Beside()


def _path(root: Path) -> Path:
    return root / STATE_DIR / FILENAME


def _stamps(mix: MixPlan, beside: Beside) -> tuple[str, ...]:
    return (mix.stamp, *mix.delivery_stamps.values(), *beside.stamps)


def files_of(mix: MixPlan, beside: Beside) -> list[Path | str]:
    """Every file ``mix`` publishes: its deliverables, its deliveries', and ``beside`` them."""
    return [*mix.outputs, *(p for d in mix.deliveries for p in d.files), *beside.files]


def _load(root: Path) -> dict[str, Rendition]:
    try:
        found = pickle.loads(_path(root).read_bytes())
    except Exception:  # missing, or written by another version of mixdown: nothing is known current
        return {}
    return found if isinstance(found, dict) else {}


def _stat(path: Path | str) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _still(mix: MixPlan, known: Rendition | None, beside: Beside) -> bool:
    """Whether ``known`` describes ``mix``'s files as they are now (a no-op build asks this of
    every rendition: one stat a file, nothing made that need not be)."""
    if known is None or known.stamps != _stamps(mix, beside):
        return False
    paths = files_of(mix, beside)
    if len(paths) != len(known.files):
        return False
    for path, (name, size, mtime) in zip(paths, known.files, strict=True):
        if name != os.fspath(path):
            return False
        try:
            stat = os.stat(name)
        except OSError:
            return False
        if stat.st_size != size or stat.st_mtime_ns != mtime:
            return False
    return True


def current(plan: Plan, root: Path, cached: Collection[str], besides: Besides = _nothing) -> set[str]:
    """The names of ``plan``'s renditions whose mix is in ``cached`` and whose files in
    ``build/`` (``besides`` each rendition's deliverables too) are those the last build made or
    found up to date for this plan."""
    known = _load(root)
    if not known:
        return set()
    return {
        mix.name
        for mix in plan.mixes
        if mix.key in cached and mix.name in known and _still(mix, known[mix.name], besides(mix))
    }


def forget(root: Path) -> None:
    """Forget every rendition's record (``doit forget``, ``doit clean``): doit decides again."""
    files.discard(_path(root))


def recorder(
    plan: Plan, root: Path, skipped: set[str], besides: Besides = _nothing
) -> Callable[[Collection[str]], None]:
    """The end-of-build step that records the renditions current after it, given the tasks
    that succeeded or were up to date (``done``) and the renditions left out as current
    (``skipped``); ``besides`` as for :func:`current`."""

    def record(done: Collection[str]) -> None:
        known = _load(root)
        now: dict[str, Rendition] = {}
        for mix in plan.mixes:
            if mix.name in skipped:
                entry = known.get(mix.name)
                if entry is not None:
                    now[mix.name] = entry
                continue
            beside = besides(mix)
            tasks = [f"master:{mix.name}", *(f"deliver:{mix.name}/{d.name}" for d in mix.deliveries)]
            if all(task in done for task in (*tasks, *beside.tasks)):
                stats = [_stat(path) for path in files_of(mix, beside)]
                if all(stat is not None for stat in stats):
                    now[mix.name] = Rendition(_stamps(mix, beside), tuple(s for s in stats if s is not None))
        if now != known:
            _path(root).parent.mkdir(exist_ok=True)
            files.write_bytes_atomic(_path(root), pickle.dumps(now, pickle.HIGHEST_PROTOCOL))

    return record
