"""The end of a build that published something: ``build/manifest.json`` and ``build/report.html``.

:func:`write` is called by the loader at the end of a ``doit run``. It writes
the manifest (:mod:`mixdown.publish.manifest`) and the report
(:mod:`mixdown.publish.report`) when a ``master:`` or ``deliver:`` task ran,
or when either file is missing; a build that published nothing leaves them
alone and reads nothing. Everything comes from records the build already
keeps: each file's measurement from its published record
(:mod:`mixdown.actions.published`), each asset's bill from its cache
record. So is the report's short-term loudness over time, of one lossless
file per plotted rendition: the spec check that measured the file left it in
``.mixdown/loudness/`` by the file's sha256. Only a file published without
it (fetched from the remote cache, or by an older mixdown) is read again,
with one meter pass. Series are plotted for shows of at most
:data:`~mixdown.publish.report.PLOTTED` renditions; more get histograms
made from the manifest alone.

``[publish] manifest = false`` or ``report = false`` turns either off.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..plan.model import Asset, MixPlan, Plan
from ..settings import MANIFEST_FILE, REPORT_FILE
from ..store import files
from . import published
from .context import Context

if TYPE_CHECKING:  # the manifest's module is imported only by a build that publishes something
    from ..publish.manifest import AssetUse, Deliverable, Manifest, Spec

__all__ = ["loudness_of", "make_manifest", "short_term", "write"]


def write(context: Context, plan: Plan, ran: list[str], say: Callable[[str], None]) -> None:
    """Write ``build/manifest.json`` and ``build/report.html`` after a build in which ``ran`` ran.

    Nothing is read or written when no deliverable task ran and both files
    (those the show asks for) are there.
    """
    settings = context.project.publish
    build = context.project.build_dir
    switches = ((build / MANIFEST_FILE, settings.manifest), (build / REPORT_FILE, settings.report))
    wanted = [path for path, on in switches if on]
    published_now = any(name.startswith(("master:", "deliver:")) for name in ran)
    if not wanted or (not published_now and all(p.exists() for p in wanted)):
        return
    made = make_manifest(context, plan, ran)
    if not made.deliverables:
        return
    if settings.manifest:
        from ..publish import manifest as manifests

        manifests.write(build / MANIFEST_FILE, made)
        say(f"{_shown(context, build / MANIFEST_FILE)}  {len(made.deliverables)} deliverables")
    if settings.report:
        from ..publish import report

        series = {}
        if len({d.rendition for d in made.deliverables}) <= report.PLOTTED:
            series = {d.target: short_term(context, d) for d in made.deliverables}
        path = build / report.FILENAME
        files.write_bytes_atomic(path, report.html(made, series).encode("utf-8"))
        say(f"{_shown(context, path)}  written")


def clean(context: Context, say: Callable[[str], None]) -> None:
    """``doit clean`` of every task: remove ``build/manifest.json`` and ``build/report.html``
    too (they describe the deliverables it removed), saying so as doit does of a target."""
    build = context.project.build_dir
    for path in (build / MANIFEST_FILE, build / REPORT_FILE):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        say(f"mixdown - removing file '{_shown(context, path)}'")


def _shown(context: Context, path: Path) -> str:
    root = context.project.root
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def make_manifest(context: Context, plan: Plan, ran: Iterable[str]) -> Manifest:
    """The :class:`~mixdown.publish.manifest.Manifest` of ``plan``'s published files as they are now.

    A rendition whose files were not published from its current mix and
    master (a failed build, files changed by hand) is left out.
    """
    from ..publish.manifest import BuildSummary, Manifest, cost_of

    ran = set(ran)
    uses: dict[str, AssetUse] = {}
    deliverables = []
    for mix in plan.mixes:
        assets = tuple(_use(context, plan.assets[key], ran, uses) for key in mix.assets if key in plan.assets)
        for name in [None, *(d.name for d in mix.deliveries)]:
            item = _deliverable(context, mix, name, assets)
            if item is not None:
                deliverables.append(item)
    every = list(uses.values())
    rendered = [a for a in every if a.rendered]
    summary = BuildSummary(
        tasks_ran=len([n for n in ran if ":" in n]),
        renders=len(rendered),
        cache_hits=len(every) - len(rendered),
        cost=cost_of(rendered),
    )
    return Manifest(context.project.name, tuple(deliverables), summary, cost_of(every))


def _deliverable(
    context: Context, mix: MixPlan, delivery: str | None, assets: tuple[AssetUse, ...]
) -> Deliverable | None:
    """One target's entry from its published record, or None when its files are not current."""
    from ..publish.manifest import Deliverable, FileReport, cost_of

    found = published.read(context, mix, delivery)
    if found is None or (found.mix, found.master) != (mix.key, mix.master_key) or not found.intact():
        return None
    spec = _spec(mix, delivery)
    reports = []
    for entry in found.measured:
        ranges = found.ranges.get(entry.file, published.Ranges(math.nan, math.nan, math.nan))
        reports.append(
            FileReport(
                path=entry.file,
                format=entry.file.rsplit(".", 1)[-1],
                sha256=entry.sha256,
                seconds=entry.seconds,
                lufs=entry.lufs,
                true_peak=entry.true_peak,
                lra=ranges.lra,
                max_momentary=ranges.max_momentary,
                max_short_term=ranges.max_short_term,
                passed=spec.passes(entry.lufs, entry.true_peak),
            )
        )
    target = f"master:{mix.name}" if delivery is None else f"deliver:{mix.name}/{delivery}"
    this_build = [a for a in assets if a.rendered]
    cost, cost_now = cost_of(list(assets)), cost_of(this_build)
    return Deliverable(target, mix.name, delivery, spec, tuple(reports), assets, cost, cost_now)


def _spec(mix: MixPlan, delivery: str | None) -> Spec:
    """The spec the build checked the target's files against (the master's: its own target, ±1 LU)."""
    from ..publish.manifest import Spec, preset_name
    from ..settings import delivery_from

    if delivery is None:
        target, ceiling = float(mix.master["target_lufs"]), float(mix.master["ceiling_dbtp"])
        return Spec(preset_name(target, ceiling), target, 1.0, ceiling)
    table, _ = mix.delivery(delivery)
    found = delivery_from(table, f"[deliveries.{delivery}]")
    return Spec(found.preset, found.target_lufs, found.tolerance_lu, found.ceiling_dbtp)


def _use(context: Context, asset: Asset, ran: set[str], seen: dict[str, AssetUse]) -> AssetUse:
    """What ``asset`` is and what its render cost, from its cache record (once per key)."""
    from ..publish.manifest import AssetUse

    known = seen.get(asset.key)
    if known is not None:
        return known
    from ..plan.spend import parse_bill, price_of, prices_for, provider_of

    try:
        record = context.cache.meta(asset.key)
    except (OSError, ValueError):  # not in the local cache (a build fetching nothing but its masters)
        record = {}
    try:
        provider = provider_of(context.registry, asset.renderer)
    except Exception:  # a renderer the registry cannot name: its own name is what prices key on
        provider = asset.renderer
    billed = record.get("billed") or None
    bill = parse_bill(str(billed)) if billed else None
    usd = price_of(bill, asset.kind, prices_for(context.project, provider)) if bill is not None else None
    found = AssetUse(
        target=asset.task,
        kind=asset.kind,
        key=asset.key,
        renderer=asset.renderer,
        provider=provider,
        source=asset.source,
        characters=len(asset.text),
        billed=str(billed) if billed else None,
        usd=0.0 if billed is None else usd,
        rendered=asset.task in ran,
    )
    seen[asset.key] = found
    return found


def loudness_of(context: Context, plan: Plan) -> Callable[[str], dict[str, Any]]:
    """A function giving the loudness of a ``master:`` or ``deliver:`` target's published files
    (``{"files": {path: {seconds, lufs, true_peak, lra}}}``), from their published record; an
    empty dict for any other task, or files not published from the current master."""
    index: dict[str, tuple[MixPlan, str | None]] = {}
    for mix in plan.mixes:
        index[f"master:{mix.name}"] = (mix, None)
        index.update((f"deliver:{mix.name}/{d.name}", (mix, d.name)) for d in mix.deliveries)

    def loudness(target: str) -> dict[str, Any]:
        found = index.get(target)
        record = published.read(context, *found) if found is not None else None
        if (
            found is None
            or record is None
            or (record.mix, record.master) != (found[0].key, found[0].master_key)
        ):
            return {}
        nothing = published.Ranges(math.nan, math.nan, math.nan)
        return {
            "files": {
                f.file: {
                    "seconds": f.seconds,
                    "lufs": f.lufs,
                    "true_peak": f.true_peak,
                    "lra": record.ranges.get(f.file, nothing).lra,
                }
                for f in record.measured
            }
        }

    return loudness


def short_term(context: Context, item: Deliverable) -> list[tuple[float, float]]:
    """Short-term loudness of ``item`` every :data:`~mixdown.actions.published.SERIES_STEP`
    seconds, as ``(seconds, LUFS)`` points.

    Of its first lossless file (else its first file): as the master's or the
    delivery's spec check measured it when the file was published
    (:func:`mixdown.actions.published.record` keeps it by the file's sha256),
    else read with one meter pass and kept so. Silent windows are left out.
    """
    if not item.files:
        return []
    chosen = item.files[published.plotted([Path(f.path).suffix for f in item.files])]
    kept = published.series_path(context, chosen.sha256)
    try:
        return [(float(t), float(v)) for t, v in json.loads(kept.read_text("utf-8"))]
    except (OSError, ValueError, TypeError):
        pass
    return published.keep_series(kept, _metered(context.project.root / chosen.path))


def _metered(path: Path) -> Any:
    """One pass of a loudness meter over ``path``: its short-term loudness every 100 ms."""
    from ..codecs.wav import Source
    from ..dsp.loudness import Meter

    source = Source.of_file(path)
    meter = Meter(source.sample_rate, source.channels, true_peak=False)
    blocks = source.blocks()
    if path.suffix.lower() == ".mp3":  # decoded as the spec check decodes it (no spurious mpg123 errors)
        from ..codecs.mp3 import decoded
        from ..codecs.tags import id3_size

        data = path.read_bytes()
        blocks = decoded(data[id3_size(data[:10]) :], source.channels)
    for block in blocks:
        meter.add(block)
    return meter.short_term()
