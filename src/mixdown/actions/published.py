"""What the files of a rendition in ``build/`` were made from: its last published master.

The master action records, after publishing a rendition's [master] files,
the keys of the mix and master they were made from and each file's size and
modification time (:func:`record`); the delivery action does the same for
each ``[deliveries.NAME]``. An edit then re-mixes and re-masters
only what it touched, starting from them (:func:`read`): the mix splices
the previous mix, the master the previous files. Each file's sha256,
duration, loudness and true peak are recorded too, as ``mixdown.lock``
pins them (:mod:`mixdown.actions.locking`). The record is
machine-local state (``.mixdown/published/``), never part of a key; a file
changed or removed since it was written is not trusted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

from ..plan.lock import FileEntry
from ..plan.model import MixPlan, Plan
from ..settings import STATE_DIR
from ..store import files
from .context import Context

__all__ = [
    "SERIES_STEP",
    "Published",
    "Ranges",
    "forget",
    "keep_series",
    "keys",
    "plotted",
    "read",
    "record",
    "series_path",
]

SERIES_STEP = 1.0  # s between the kept points of a file's short-term loudness series
_SERIES_DIR = "loudness"  # in the state directory: short-term loudness series by the file's sha256


class Ranges(NamedTuple):
    """What the lock does not keep of a published file's measurement (LU, LUFS, LUFS)."""

    lra: float
    max_momentary: float
    max_short_term: float


class Published(NamedTuple):
    """A rendition's files in ``build/`` and the mix and master they were made from."""

    mix: str  # the mix's content key
    master: str  # the master's content key
    files: dict[str, tuple[int, int]]  # path -> (size, st_mtime_ns) when published
    #: each file as mixdown.lock records it (its path relative to the show's root); empty in an older record
    measured: tuple[FileEntry, ...] = ()
    #: what their audio was made from (MixPlan.files_stamp); empty in an older record
    stamp: str = ""
    #: and with their tags (MixPlan.stamp or delivery_stamp)
    tagged: str = ""
    #: each file's loudness range and loudest momentary and short-term windows, by its lock name
    ranges: dict[str, Ranges] = {}  # never mutated: a shared default is safe

    def intact(self) -> bool:
        """Whether every file is still as it was published (same size and modification time)."""
        for name, (size, mtime) in self.files.items():
            try:
                stat = os.stat(name)
            except OSError:
                return False
            if (stat.st_size, stat.st_mtime_ns) != (size, mtime):
                return False
        return True


def _path(context: Context, plan: MixPlan, delivery: str | None) -> Path:
    named = plan.name if delivery is None else f"{plan.name}\0{delivery}"
    name = hashlib.sha256(named.encode("utf-8")).hexdigest()[:24]
    return context.project.root / STATE_DIR / "published" / f"{name}.json"


def record(
    context: Context,
    plan: MixPlan,
    made: list[tuple[Path, Any]],
    *,
    seconds: float,
    delivery: str | None = None,
) -> tuple[FileEntry, ...]:
    """Note that the files ``made`` (just published, each with its measurement) were made from
    ``plan``'s mix and master (for its ``[deliveries.NAME]`` named ``delivery``, if given).

    ``seconds`` is the programme's duration. Each file is hashed here, once
    it is in place; returns the files as ``mixdown.lock`` records them.
    """
    found = {}
    measured = []
    ranges = {}
    root = context.project.root
    chosen = plotted([path.suffix for path, _ in made])
    for index, (path, measurement) in enumerate(made):
        stat = os.stat(path)
        found[os.fspath(path)] = (stat.st_size, stat.st_mtime_ns)
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
        lufs, peak = float(measurement.integrated), float(measurement.true_peak)
        measured.append(FileEntry(name, files.sha256_of(path), seconds, lufs, peak))
        ranges[name] = [float(getattr(measurement, k, math.nan)) for k in Ranges._fields]
        series = getattr(measurement, "short_term", None)
        if index == chosen and series is not None:  # the report plots it without reading the file again
            keep_series(series_path(context, measured[-1].sha256), series)
    data = {
        "name": plan.name,
        "mix": plan.key,
        "master": plan.master_key,
        "files": found,
        "measured": [list(entry) for entry in measured],
        "stamp": plan.files_stamp(delivery),
        "tagged": plan.stamp if delivery is None else plan.delivery_stamp(delivery),
        "ranges": ranges,
    }
    target = _path(context, plan, delivery)
    target.parent.mkdir(parents=True, exist_ok=True)
    files.write_bytes_atomic(target, json.dumps(data, indent=1, sort_keys=True).encode("utf-8"))
    return tuple(measured)


def plotted(suffixes: list[str]) -> int:
    """Which of a rendition's files (by suffix, in order) a report plots: its first lossless one,
    else its first; -1 for none."""
    lossless = [i for i, suffix in enumerate(suffixes) if suffix.lower() in (".wav", ".flac")]
    return lossless[0] if lossless else (0 if suffixes else -1)


def series_path(context: Context, sha256: str) -> Path:
    """Where the short-term loudness series of the file whose content is ``sha256`` is kept."""
    return context.project.root / STATE_DIR / _SERIES_DIR / f"{sha256}.json"


def keep_series(path: Path, short_term: Any) -> list[tuple[float, float]]:
    """Keep a short-term series (LUFS every 100 ms, the first window ending at 3 s) as
    ``[seconds, LUFS]`` points every :data:`SERIES_STEP` (silent windows left out), and return them."""
    every = round(SERIES_STEP / 0.1)
    points = [
        (round(3.0 + i * 0.1, 3), round(float(v), 3))
        for i, v in enumerate(short_term)
        if i % every == 0 and math.isfinite(float(v))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_bytes_atomic(path, json.dumps(points).encode("utf-8"))
    return points


def read(context: Context, plan: MixPlan, delivery: str | None = None) -> Published | None:
    """What ``plan``'s files in ``build/`` (its ``delivery``'s, if given) were last published
    from, or None if not known."""
    try:
        data = json.loads(_path(context, plan, delivery).read_text("utf-8"))
        found = {str(k): (int(v[0]), int(v[1])) for k, v in data["files"].items()}
        measured = tuple(
            FileEntry(str(f), str(s), float(t), float(lufs), float(peak))
            for f, s, t, lufs, peak in data.get("measured", [])
        )
        stamps = str(data.get("stamp", "")), str(data.get("tagged", ""))
        ranges = {str(k): Ranges(*(float(x) for x in v)) for k, v in data.get("ranges", {}).items()}
        return Published(str(data["mix"]), str(data["master"]), found, measured, *stamps, ranges)
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def forget(context: Context, plan: MixPlan, delivery: str | None = None) -> None:
    """Drop the record (before the files are replaced: a build stopped half-way trusts nothing)."""
    try:
        os.unlink(_path(context, plan, delivery))
    except FileNotFoundError:
        pass


def keys(context: Context, plan: Plan) -> set[str]:
    """The mixes and masters the files in ``build/`` of ``plan``'s renditions were made from:
    what the next build after an edit splices (``mixdown gc`` keeps them)."""
    found: set[str] = set()
    for mix in plan.mixes:
        last = read(context, mix)
        if last is not None:
            found.update((last.mix, last.master))
    return found
