"""A tag edit: the files in ``build/`` tagged again, not made again.

When only a rendition's ``[metadata]`` changed, its master and delivery
tasks run (their stamps hold the tags) but the audio they would write is
the audio already in ``build/``: :func:`retagged` copies each published
file without its tags (:func:`mixdown.codecs.tags.untagged_copy`),
measures the copy (its ``bext`` records the loudness), tags it and
publishes it by rename. Nothing is mastered or encoded again, even for a
master the cache keeps only as a recipe or a record. It applies only when
the last publication's record says the files were made from what the plan
makes them from now (:meth:`~mixdown.plan.model.MixPlan.files_stamp`) with
other tags, and every file is as it was published; otherwise (a task run
again with nothing changed included) the files are made as usual.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple

from ..plan.model import MixPlan
from ..store import files
from . import published
from .context import Context

__all__ = ["Retagged", "retagged"]


class Retagged(NamedTuple):
    """The files tagged again, each with its measurement, and the programme's duration."""

    made: list[tuple[Path, Any]]
    seconds: float


def retagged(context: Context, plan: MixPlan, delivery: str | None = None) -> Retagged | None:
    """Tag ``plan``'s [master] files (or its ``[deliveries.NAME]``'s named ``delivery``) again in
    ``build/`` with ``plan.tags``, if the files there are the audio the plan makes; else None."""
    from ..codecs.deliver import measure_file, temporary_for
    from ..codecs.tags import untagged_copy, write_tags

    paths = _paths(plan, delivery)
    last = published.read(context, plan, delivery)
    if (
        last is None
        or last.stamp != plan.files_stamp(delivery)
        or last.tagged == (plan.stamp if delivery is None else plan.delivery_stamp(delivery))
        or sorted(last.files) != sorted(os.fspath(p) for p in paths)
        or not last.measured
        or not last.intact()
        or not all(p.exists() for p in _stems(plan, delivery))
    ):
        return None
    from .publish import tag_chapters

    target = f"master:{plan.name}" if delivery is None else f"deliver:{plan.name}/{delivery}"
    chapters = tag_chapters(context, plan, target)
    made: list[tuple[Path, Path, Any]] = []
    try:
        for path in paths:
            fmt = path.suffix[1:]
            tmp = temporary_for(path.with_suffix(""), fmt)
            made.append((path, tmp, None))
            untagged_copy(path, tmp, fmt)
            found = measure_file(tmp)
            if plan.tags is not None:
                write_tags(tmp, fmt, plan.tags, found, chapters)
            made[-1] = (path, tmp, found)
        published.forget(context, plan, delivery)  # the files are about to be replaced
        for path, tmp, _ in made:
            files.publish(tmp, path)
    except BaseException:
        for _, tmp, _ in made:
            files.discard(tmp)
        raise
    return Retagged([(path, found) for path, _, found in made], last.measured[0].seconds)


def _paths(plan: MixPlan, delivery: str | None) -> list[Path]:
    """The files the master (or the delivery ``delivery``) publishes, stems left out."""
    if delivery is not None:
        return list(plan.delivery(delivery)[1])
    return [p for p in plan.outputs if p.parent.suffix != ".stems"]


def _stems(plan: MixPlan, delivery: str | None) -> list[Path]:
    """The stems the master writes beside its files (untagged: a tag edit leaves them)."""
    return [] if delivery is not None else [p for p in plan.outputs if p.parent.suffix == ".stems"]
