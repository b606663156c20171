"""The report's figures as inline SVG, drawn with matplotlib (the ``publish`` extra).

Each function returns the ``<svg>`` element's text, or None when matplotlib
is not installed (:data:`MISSING` says how to get it). Nothing refers to a
file or a URL: the report stays one self-contained file.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["MISSING", "available", "histogram", "loudness_over_time"]

MISSING = "plots need matplotlib: pip install 'mixdown[publish]'"
_WIDTH, _HEIGHT = 7.5, 2.4  # inches: a plot per deliverable, one above another
_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.S)  # the XML declaration and doctype before the element


def _figure(width: float, height: float) -> Any:
    """A figure of its own, or None without matplotlib.

    Made without pyplot: no GUI backend, no global figure list to close, and
    half the import time (a long build's report pays it once).
    """
    try:
        import matplotlib as mpl
        from matplotlib.figure import Figure
    except ImportError:
        return None
    mpl.rcParams["svg.hashsalt"] = "mixdown"  # with no date below: the same figure writes the same bytes
    return Figure(figsize=(width, height))


def available() -> bool:
    """Whether matplotlib can be imported."""
    return _figure(1, 1) is not None


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    return _PROLOGUE.sub("", buffer.getvalue(), count=1)


def loudness_over_time(
    points: Sequence[tuple[float, float]], *, target: float, tolerance: float, title: str
) -> str | None:
    """Short-term loudness (LUFS) over time (s), with the target's tolerance band shaded.

    Parameters
    ----------
    points : sequence of (seconds, LUFS)
        The short-term series, one point a step.
    target, tolerance : float
        The preset's integrated target (LUFS) and its tolerance (LU).
    title : str
        The deliverable's target name.
    """
    fig = _figure(_WIDTH, _HEIGHT)
    if fig is None:
        return None
    ax = fig.subplots()
    ax.axhspan(
        target - tolerance, target + tolerance, color="#cde8d5", label=f"target {target:g} ±{tolerance:g} LU"
    )
    ax.axhline(target, color="#3a7d4f", linewidth=0.8)
    if points:
        ax.plot(
            [p[0] for p in points], [p[1] for p in points], color="#1f4e79", linewidth=1.0, label="short-term"
        )
    ax.set_xlabel("time (s)")
    ax.set_ylabel("LUFS")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    ax.grid(alpha=0.3)
    return _svg(fig)


def histogram(values: Sequence[float], *, label: str, band: tuple[float, float] | None = None) -> str | None:
    """A histogram of ``values`` across variants (``band``: a range to shade, such as the spec's)."""
    fig = _figure(_WIDTH / 2, _HEIGHT)
    if fig is None:
        return None
    ax = fig.subplots()
    if band is not None:
        ax.axvspan(band[0], band[1], color="#cde8d5")
    ax.hist(list(values), bins=min(40, max(5, len(values) // 10)), color="#1f4e79")
    ax.set_xlabel(label)
    ax.set_ylabel("variants")
    ax.grid(alpha=0.3)
    return _svg(fig)
