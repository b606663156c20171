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

__all__ = ["Rendition", "current", "forget", "recorder"]

FILENAME = "current.pickle"


class Rendition(NamedTuple):
    """A rendition's files as its last successful build left them."""

    stamps: tuple[str, ...]  # the master's stamp, then each delivery's
    files: tuple[tuple[str, int, int], ...]  # (path, size, st_mtime_ns) of each file


def _path(root: Path) -> Path:
    return root / STATE_DIR / FILENAME


def _stamps(mix: MixPlan) -> tuple[str, ...]:
    return (mix.stamp, *(mix.delivery_stamp(d.name) for d in mix.deliveries))


def _files(mix: MixPlan) -> list[Path]:
    return [*mix.outputs, *(p for d in mix.deliveries for p in d.files)]


def _load(root: Path) -> dict[str, Rendition]:
    try:
        found = pickle.loads(_path(root).read_bytes())
    except Exception:  # missing, or written by another version of mixdown: nothing is known current
        return {}
    return found if isinstance(found, dict) else {}


def _stat(path: Path) -> tuple[str, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (str(path), stat.st_size, stat.st_mtime_ns)


def _still(mix: MixPlan, known: Rendition | None) -> bool:
    """Whether ``known`` describes ``mix``'s files as they are now."""
    if known is None or known.stamps != _stamps(mix):
        return False
    paths = _files(mix)
    return len(paths) == len(known.files) and all(
        _stat(path) == entry for path, entry in zip(paths, known.files, strict=True)
    )


def current(plan: Plan, root: Path, cached: Collection[str]) -> set[str]:
    """The names of ``plan``'s renditions whose mix is in ``cached`` and whose files in
    ``build/`` are those the last build made or found up to date for this plan."""
    known = _load(root)
    if not known:
        return set()
    return {mix.name for mix in plan.mixes if mix.key in cached and _still(mix, known.get(mix.name))}


def forget(root: Path) -> None:
    """Forget every rendition's record (``doit forget``, ``doit clean``): doit decides again."""
    files.discard(_path(root))


def recorder(plan: Plan, root: Path, skipped: set[str]) -> Callable[[Collection[str]], None]:
    """The end-of-build step that records the renditions current after it, given the tasks
    that succeeded or were up to date (``done``) and the renditions left out as current
    (``skipped``)."""

    def record(done: Collection[str]) -> None:
        known = _load(root)
        now: dict[str, Rendition] = {}
        for mix in plan.mixes:
            if mix.name in skipped:
                entry = known.get(mix.name)
                if entry is not None:
                    now[mix.name] = entry
                continue
            tasks = [f"master:{mix.name}", *(f"deliver:{mix.name}/{d.name}" for d in mix.deliveries)]
            if all(task in done for task in tasks):
                stats = [_stat(path) for path in _files(mix)]
                if all(stat is not None for stat in stats):
                    now[mix.name] = Rendition(_stamps(mix), tuple(s for s in stats if s is not None))
        if now != known:
            _path(root).parent.mkdir(exist_ok=True)
            files.write_bytes_atomic(_path(root), pickle.dumps(now, pickle.HIGHEST_PROTOCOL))

    return record
