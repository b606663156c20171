"""``build/report.html``: the manifest for a producer, in one self-contained page.

The page has the build's figures (tasks run, renders, cache hits, cost),
a table of every deliverable (loudness, true peak, LRA, duration, preset,
pass or fail) and, for a show of at most :data:`PLOTTED` renditions, each
deliverable's short-term loudness over time with its target band; a show
with more gets histograms of loudness and duration across its variants and
the outliers listed instead of thousands of plots. CSS is inline, plots are
inline SVG (:mod:`mixdown.publish.plots`); nothing is fetched, so it opens
the same offline, in CI artefacts and in a mail attachment.
"""

from __future__ import annotations

import html as escape
import math
import statistics
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..settings import REPORT_FILE
from . import plots
from .manifest import Cost, Deliverable, Manifest

__all__ = ["FILENAME", "PLOTTED", "Outlier", "html", "outliers"]

FILENAME = REPORT_FILE
#: renditions up to which each deliverable gets its own plot; beyond, histograms across variants
PLOTTED = 12
_SPREAD = 3.0  # an outlier is this many median absolute deviations (or 1 LU / 1 s) from the median

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.fail{color:#a00;font-weight:bold}.pass{color:#070}.note{color:#666}
figure{margin:1em 0}
"""


def _e(text: object) -> str:
    return escape.escape(str(text), quote=True)


def _num(value: float | None, digits: int = 1) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return f"{value:.{digits}f}"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"


def _cost_row(name: str, cost: Cost) -> str:
    unpriced = f" ({cost.unpriced} unpriced)" if cost.unpriced else ""
    return (
        f"<tr><td class=l>{_e(name)}</td><td>{cost.renders}</td><td>{cost.paid_renders}</td>"
        f"<td>{cost.characters:,}</td><td>{_usd(cost.usd)}{unpriced}</td></tr>"
    )


def _summary(manifest: Manifest) -> str:
    build = manifest.build
    rows = [_cost_row("this build", build.cost), _cost_row("all assets", manifest.total)]
    for name, row in manifest.total.providers.items():
        rows.append(
            f"<tr><td class=l>&nbsp;&nbsp;{_e(name)}</td><td>{int(row['renders'])}</td><td></td>"
            f"<td>{int(row['characters']):,}</td><td>{_usd(row['usd'])}</td></tr>"
        )
    failed = sum(1 for d in manifest.deliverables if not d.passed)
    return (
        f"<p>{len(manifest.deliverables)} deliverables, "
        f"<span class={'fail' if failed else 'pass'}>{failed} out of spec</span>. "
        f"This build ran {build.tasks_ran} tasks: {build.renders} renders, {build.cache_hits} assets from the cache.</p>"
        "<table><tr><th class=l></th><th>renders</th><th>paid</th><th>characters</th><th>cost</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _table(deliverables: Sequence[Deliverable]) -> str:
    head = (
        "<table><tr><th class=l>file</th><th class=l>preset</th><th>target</th><th>LUFS</th>"
        "<th>dBTP</th><th>LRA</th><th>seconds</th><th>spec</th><th class=l>sha256</th></tr>"
    )
    rows = []
    for item in deliverables:
        spec = item.spec
        for f in item.files:
            verdict = "<td class=pass>pass</td>" if f.passed else "<td class=fail>FAIL</td>"
            rows.append(
                f"<tr><td class=l>{_e(f.path)}</td><td class=l>{_e(spec.preset)}</td>"
                f"<td>{spec.target_lufs:g} ±{spec.tolerance_lu:g}, ≤ {spec.ceiling_dbtp:g}</td>"
                f"<td>{_num(f.lufs)}</td><td>{_num(f.true_peak)}</td><td>{_num(f.lra)}</td>"
                f"<td>{_num(f.seconds)}</td>{verdict}<td class=l><code>{_e(f.sha256[:12])}</code></td></tr>"
            )
    return head + "".join(rows) + "</table>"


def _plots(deliverables: Sequence[Deliverable], series: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    if not plots.available():
        return f"<p class=note>{_e(plots.MISSING)}</p>"
    figures = []
    for item in deliverables:
        svg = plots.loudness_over_time(
            series.get(item.target, ()),
            target=item.spec.target_lufs,
            tolerance=item.spec.tolerance_lu,
            title=item.target,
        )
        figures.append(f"<figure>{svg}</figure>")
    return "".join(figures)


class Outlier(NamedTuple):
    """A deliverable far from the others: which, on what measure (LUFS or seconds), and the median."""

    target: str
    measure: str
    value: float
    median: float


def outliers(deliverables: Sequence[Deliverable]) -> list[Outlier]:
    """The deliverables whose loudness (LUFS) or duration (s) lies far from the median of all,
    or which fail their spec."""
    found: list[Outlier] = []
    firsts = [(d, d.files[0]) for d in deliverables if d.files]
    for measure, field in (("LUFS", "lufs"), ("seconds", "seconds")):
        values = [float(getattr(f, field)) for _, f in firsts if math.isfinite(getattr(f, field))]
        if len(values) < 3:
            continue
        median = statistics.median(values)
        spread = max(1.0, _SPREAD * statistics.median(abs(v - median) for v in values))
        for item, f in firsts:
            value = float(getattr(f, field))
            if (math.isfinite(value) and abs(value - median) > spread) or (
                measure == "LUFS" and not item.passed
            ):
                found.append(Outlier(item.target, measure, value, median))
    return found


def _variants(deliverables: Sequence[Deliverable]) -> str:
    firsts = [d.files[0] for d in deliverables if d.files]
    lufs = [f.lufs for f in firsts if math.isfinite(f.lufs)]
    seconds = [f.seconds for f in firsts]
    parts = [
        f"<p>{len(deliverables)} deliverables: histograms across the variants, and those far from the rest.</p>"
    ]
    if plots.available():
        spec = deliverables[0].spec
        band = (spec.target_lufs - spec.tolerance_lu, spec.target_lufs + spec.tolerance_lu)
        parts.append(
            f"<figure>{plots.histogram(lufs, label='integrated loudness (LUFS)', band=band)}</figure>"
        )
        parts.append(f"<figure>{plots.histogram(seconds, label='duration (s)')}</figure>")
    else:
        parts.append(f"<p class=note>{_e(plots.MISSING)}</p>")
    rows = [
        f"<tr><td class=l>{_e(o.target)}</td><td class=l>{o.measure}</td><td>{_num(o.value)}</td>"
        f"<td>{_num(o.median)}</td></tr>"
        for o in outliers(deliverables)
    ]
    if rows:
        parts.append(
            "<h3>Outliers</h3><table><tr><th class=l>target</th><th class=l>measure</th><th>value</th>"
            "<th>median</th></tr>" + "".join(rows) + "</table>"
        )
    else:
        parts.append("<p>No outliers.</p>")
    return "".join(parts)


def html(manifest: Manifest, series: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    """The report page of ``manifest``; ``series``: each plotted target's short-term loudness
    (``(seconds, LUFS)`` points), used when there are at most :data:`PLOTTED` renditions."""
    items = sorted(manifest.deliverables, key=lambda d: d.target)
    renditions = len({d.rendition for d in items})
    figures = _plots(items, series) if renditions <= PLOTTED else _variants(items)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{_e(manifest.show)}: build report</title><style>{_STYLE}</style></head><body>"
        f"<h1>{_e(manifest.show)}</h1><h2>Build</h2>{_summary(manifest)}"
        f"<h2>Deliverables</h2>{_table(items)}<h2>Loudness</h2>{figures}</body></html>\n"
    )
