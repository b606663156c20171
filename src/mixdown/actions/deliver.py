"""The delivery action: one ``[deliveries.NAME]`` of a rendition, made from its master.

:func:`build_delivery` brings the master to the delivery's preset, encodes,
checks the files against the preset and publishes them in ``build/``.
"""

from __future__ import annotations

import sys
from typing import Any

from ..plan.model import MixPlan
from ..store import files
from . import published, retag, shipments
from .context import Context, relative, reported
from .locking import check_pinned
from .master import mastered

__all__ = ["build_delivery", "publish_delivery"]


def build_delivery(context: Context, item: tuple[MixPlan, str]) -> Any:
    """doit action: one extra delivery of a rendition, spec-checked."""
    plan, name = item
    return reported(publish_delivery, context, item, f"deliver:{plan.name}/{name}")


def publish_delivery(context: Context, item: tuple[MixPlan, str]) -> dict[str, str]:
    """Bring the master to a delivery preset, encode, check the files and publish them."""
    from ..codecs.deliver import deliver
    from ..settings import delivery_from
    from .publish import tag_chapters

    plan, name = item
    if shipments.fetched(context, plan, name):  # shared by another build: nothing to make
        return {"stamp": plan.delivery_stamp(name)}
    table, paths = plan.delivery(name)
    stem = paths[0].with_name(paths[0].name.rsplit(".", 1)[0])
    files.sweep_once(stem.parent)  # what killed builds left there
    target = f"deliver:{plan.name}/{name}"
    again = retag.retagged(context, plan, name)  # only the tags changed: the files tagged again
    if again is None:
        source, loudness, _ = mastered(context, plan)
        published.forget(context, plan, name)  # the files are about to be replaced
        delivery = delivery_from(table, f"[deliveries.{name}]")
        chapters = tag_chapters(context, plan, target)
        made = deliver(
            source, stem, delivery, target=target, loudness=loudness, tags=plan.tags, chapters=chapters
        )
        again = retag.Retagged(made, source.frames / source.sample_rate)
    measured = published.record(context, plan, again.made, seconds=again.seconds, delivery=name)
    made = again.made
    for path, found in made:
        print(f"{target}  {found}  {relative(context, path)}", file=sys.stdout)
    check_pinned(context, target, plan.master_key, made=measured)
    shipments.upload(context, plan, name, made=tuple(made))
    return {"stamp": plan.delivery_stamp(name)}
