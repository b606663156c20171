"""``build/manifest.json``: every deliverable, how it measured, what it was made of and what it cost.

One entry per published target (``master:…`` for a rendition's [master]
formats, ``deliver:…/NAME`` for a ``[deliveries.NAME]``), in target order,
each with its files (path, sha256, duration, integrated loudness, true peak,
loudness range, and whether the file meets its preset), its preset, the
assets it used (by target name: each asset is described once, in
``assets``, however many deliverables share it) and their cost. ``build`` says what this build rendered and
found in the cache; ``total`` what the show's assets cost when they were
rendered, each counted once however many deliverables share it.

The file is canonical JSON (sorted keys, one value a line) written
atomically: two builds of the same show write the same bytes, and a reader
never sees half of one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..settings import MANIFEST_FILE, PRESETS
from ..store.files import write_if_changed

__all__ = [
    "FILENAME",
    "VERSION",
    "AssetUse",
    "BuildSummary",
    "Cost",
    "Deliverable",
    "FileReport",
    "Manifest",
    "Spec",
    "cost_of",
    "dumps",
    "preset_name",
    "read",
    "write",
]

FILENAME = MANIFEST_FILE
VERSION = 1


@dataclass(frozen=True)
class Spec:
    """What a deliverable must measure: its preset's target (LUFS), tolerance (LU) and ceiling (dBTP)."""

    preset: str
    target_lufs: float
    tolerance_lu: float
    ceiling_dbtp: float

    def passes(self, lufs: float, true_peak: float) -> bool:
        """Whether a file of ``lufs`` and ``true_peak`` is within this spec (as the build checks it)."""
        return (
            abs(lufs - self.target_lufs) <= self.tolerance_lu + 1e-9 and true_peak <= self.ceiling_dbtp + 1e-9
        )


@dataclass(frozen=True)
class FileReport:
    """One published file and how it measured (LUFS, dBTP, LU; seconds)."""

    path: str  # relative to the show's root, with forward slashes
    format: str
    sha256: str
    seconds: float
    lufs: float
    true_peak: float
    lra: float
    max_momentary: float
    max_short_term: float
    passed: bool


@dataclass(frozen=True)
class AssetUse:
    """One rendered asset a deliverable uses, and what its render cost (``usd`` None: no price known)."""

    target: str
    kind: str
    key: str
    renderer: str
    provider: str
    source: str
    characters: int
    billed: str | None
    usd: float | None
    rendered: bool  # rendered in this build (not found in the cache)


@dataclass(frozen=True)
class Cost:
    """What a set of assets cost: renders, characters spoken and dollars, in all and by provider."""

    renders: int = 0
    paid_renders: int = 0
    characters: int = 0
    usd: float = 0.0
    unpriced: int = 0  # paid renders no price covers (their dollars are not in ``usd``)
    providers: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class Deliverable:
    """One published target: its files, preset, assets, and cost (in this build and in all)."""

    target: str
    rendition: str
    delivery: str | None
    spec: Spec
    files: tuple[FileReport, ...]
    assets: tuple[AssetUse, ...]
    cost: Cost
    cost_this_build: Cost

    @property
    def passed(self) -> bool:
        """Whether every file meets the spec."""
        return all(f.passed for f in self.files)


@dataclass(frozen=True)
class BuildSummary:
    """What one build did: tasks run, assets rendered and found in the cache, and their cost."""

    tasks_ran: int
    renders: int
    cache_hits: int
    cost: Cost


@dataclass(frozen=True)
class Manifest:
    """The whole manifest of a show's ``build/``."""

    show: str
    deliverables: tuple[Deliverable, ...]
    build: BuildSummary
    total: Cost

    def to_json(self) -> dict[str, Any]:
        """The manifest as JSON data (what :func:`dumps` writes)."""
        items: list[dict[str, Any]] = []
        assets: dict[str, dict[str, Any]] = {}
        for item in sorted(self.deliverables, key=lambda d: d.target):
            data = asdict(item)
            data["passed"] = item.passed
            data["assets"] = [a.target for a in item.assets]
            assets.update(
                (a.target, {k: v for k, v in asdict(a).items() if k != "target"}) for a in item.assets
            )
            items.append(data)
        return {
            "version": VERSION,
            "show": self.show,
            "deliverables": items,
            "assets": assets,
            "build": asdict(self.build),
            "total": asdict(self.total),
        }


def cost_of(assets: list[AssetUse]) -> Cost:
    """The :class:`Cost` of ``assets``, each counted once (by key)."""
    unique = {a.key: a for a in assets}.values()
    providers: dict[str, dict[str, float]] = {}
    for a in unique:
        row = providers.setdefault(a.provider, {"renders": 0, "characters": 0, "usd": 0.0})
        row["renders"] += 1
        row["characters"] += a.characters
        row["usd"] += a.usd or 0.0
    paid = [a for a in unique if a.billed is not None]
    return Cost(
        renders=len(unique),
        paid_renders=len(paid),
        characters=sum(a.characters for a in unique),
        usd=round(sum(a.usd or 0.0 for a in unique), 6),
        unpriced=sum(1 for a in paid if a.usd is None),
        providers={name: {**row, "usd": round(row["usd"], 6)} for name, row in sorted(providers.items())},
    )


def preset_name(target_lufs: float, ceiling_dbtp: float) -> str:
    """The name of the preset a [master] of ``target_lufs`` and ``ceiling_dbtp`` is (``custom`` if none)."""
    for name, preset in PRESETS.items():
        if (preset.target_lufs, preset.ceiling_dbtp) == (target_lufs, ceiling_dbtp):
            return name
    return "custom"


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as None: JSON has no infinity (silence reads ``-inf``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(manifest: Manifest) -> str:
    """The manifest's text: canonical JSON, sorted keys, non-finite figures as ``null``."""
    return json.dumps(_finite(manifest.to_json()), indent=1, sort_keys=True, allow_nan=False) + "\n"


def write(path: Path, manifest: Manifest) -> bool:
    """Write ``manifest`` to ``path`` atomically; returns whether its bytes changed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_if_changed(path, dumps(manifest).encode("utf-8"))


def read(path: Path) -> dict[str, Any]:
    """The manifest at ``path`` as JSON data (for the report and other readers)."""
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data
