"""The actions doit runs: render an asset, mix a rendition, master it.

Each action takes a :class:`Context` and one plan entry. User-facing
failures come back as doit ``TaskFailed`` with mixdown's one-line message, so
doit reports the failed target without a traceback; nothing partial reaches
the cache or ``build/``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from .cache import Cache, safe_params
from .errors import MixdownError, RenderFailed
from .graph import STEMS, Asset, MixPlan, request_for
from .project import Project
from .renderers import Registry

# The DSP modules (numpy, scipy) load when the first action runs, so that
# listing or checking a show stays fast.

__all__ = [
    "Context",
    "aligned_anchor",
    "build_delivery",
    "build_master",
    "build_mix",
    "leveling_gain",
    "render_asset",
    "stamp_matches",
]

MIN_SECONDS = {"voice": 0.05, "sfx": 0.005, "music": 0.5}


@dataclass
class Context:
    """What every action needs: the project, its cache and its renderers."""

    project: Project
    cache: Cache
    registry: Registry


def render_asset(context: Context, asset: Asset) -> Any:
    """doit action: render one asset into the cache."""
    return _reported(_render_asset, context, asset)


def build_mix(context: Context, plan: MixPlan) -> Any:
    """doit action: mix one rendition into the cache."""
    return _reported(_build_mix, context, plan)


def build_delivery(context: Context, item: tuple[MixPlan, str]) -> Any:
    """doit action: one extra delivery of a rendition, spec-checked."""
    return _reported(_build_delivery, context, item)


def build_master(context: Context, plan: MixPlan) -> Any:
    """doit action: master one rendition and write its deliverables."""
    return _reported(_build_master, context, plan)


def _reported(action: Any, context: Context, item: Any) -> Any:
    """Run ``action``; a :class:`MixdownError` becomes doit's ``TaskFailed`` (no traceback)."""
    try:
        return action(context, item)
    except MixdownError as err:
        from doit.exceptions import TaskFailed

        return TaskFailed(str(err))


def _render_asset(context: Context, asset: Asset) -> None:
    """Render one asset and store it under its key."""
    import numpy as np

    from .audio import valid_audio

    renderer = context.registry.instance(asset.renderer)
    request = request_for(asset, context.project)
    result = renderer.render(request)
    try:
        audio = valid_audio(result.audio, what=asset.task)
    except MixdownError as err:
        raise RenderFailed(f"{asset.task}: renderer '{asset.renderer}' returned bad audio: {err}") from None
    seconds = len(audio) / result.sample_rate if result.sample_rate > 0 else 0.0
    if seconds < MIN_SECONDS[asset.kind] or np.abs(audio).max() > 4.0:
        raise RenderFailed(
            f"{asset.task}: renderer '{asset.renderer}' returned implausible audio "
            f"({seconds:.3f} s, peak {np.abs(audio).max():.2f}); nothing was cached"
        )
    meta = {
        "kind": asset.kind,
        "renderer": asset.renderer,
        "version": getattr(context.registry.cls(asset.renderer), "version", "1"),
        "params": safe_params(request.params),
        **({"text": asset.text} if asset.kind == "voice" else {}),
        **({"segment": asset.segment} if asset.segment else {}),
        **safe_params(result.meta),
    }
    context.cache.put(asset.key, audio, result.sample_rate, meta)


def _build_mix(context: Context, plan: MixPlan) -> None:
    """Mix a rendition's timeline from cached assets and store the mix."""
    from . import mix as mixing
    from .audio import resample

    timeline = plan.timeline
    settings = dict(timeline["settings"])
    line_lufs = settings.pop("line_lufs", None)
    sections = [
        mixing.Section(tuple(_item(context, it, line_lufs) for it in s["items"]), music=s["music"])
        for s in timeline["sections"]
    ]
    bed = None
    if timeline["bed"] is not None:
        segments = {name: context.cache.get(timeline["bed"][name]) for name in ("intro", "main", "outro")}
        rates = {sr for _, sr in segments.values()}
        sr = max(rates)
        parts = {name: resample(y, s, sr) for name, (y, s) in segments.items()}
        seamless = context.cache.meta(timeline["bed"]["main"]).get("loop") == "seamless"
        bed = mixing.Bed(
            parts["intro"],
            parts["main"],
            parts["outro"],
            sr,
            gain_db=timeline["bed"]["gain_db"],
            seamless=seamless,
        )
    stems = mixing.mix(
        sections,
        bed=bed,
        settings=mixing.MixSettings(
            sample_rate=timeline["sample_rate"], channels=timeline["channels"], **settings
        ),
    )
    for bus in STEMS:
        meta = {"kind": "stem", "bus": bus, "name": plan.name}
        context.cache.put(plan.stem_key(bus), getattr(stems, bus), stems.sample_rate, meta)
    context.cache.put(plan.key, stems.mixdown(), stems.sample_rate, {"kind": "mix", "name": plan.name})


def _item(context: Context, item: list[Any], line_lufs: float | None = None) -> Any:
    from . import mix as mixing

    kind = item[0]
    if kind == "pause":
        return mixing.Pause(item[1])
    audio, sr = context.cache.get(item[1])
    if kind == "sting":
        return mixing.Sting(audio, sr, gain_db=item[2])
    cues = []
    alignment = context.cache.meta(item[1]).get("alignment") if item[3] else None
    for cue_key, at, gain_db, offset in item[3]:
        cue_audio, cue_sr = context.cache.get(cue_key)
        if alignment:
            at = aligned_anchor(alignment, at, len(audio) / sr)
        cues.append(mixing.Cue(cue_audio, cue_sr, at=at, gain_db=gain_db, offset=offset))
    return mixing.Line(audio, sr, cues=tuple(cues), gain_db=item[2] + leveling_gain(audio, sr, line_lufs))


def leveling_gain(audio: Any, sr: int, line_lufs: float | None) -> float:
    """dB that bring a voice line to ``line_lufs``, so voices from different renderers match.

    Lines too short to measure (under 400 ms) and silent lines are left as
    they are; the voice's own ``gain_db`` still applies on top.
    """
    import math

    from .loudness import measure

    if line_lufs is None:
        return 0.0
    loudness = measure(audio, sr, true_peak=False).integrated
    return float(line_lufs - loudness) if math.isfinite(loudness) else 0.0


def aligned_anchor(alignment: list[list[Any]], at: float, seconds: float) -> float:
    """Move a cue's anchor from its character position to when that character is spoken.

    ``alignment`` is a renderer's ``[[character, start_seconds], …]`` for the
    line (ElevenLabs with-timestamps); ``at`` is the cue's place as a fraction
    of the text. Returns the fraction of the line's duration.
    """
    if seconds <= 0 or not alignment:
        return at
    index = min(round(at * len(alignment)), len(alignment))
    spoken = alignment[index][1] if index < len(alignment) else seconds
    return min(max(float(spoken) / seconds, 0.0), 1.0)


def _mastered(context: Context, plan: MixPlan) -> tuple[Any, int]:
    """The master of ``plan`` from the cache, made from its mix if missing."""
    from .master import MasterSettings, master

    cache = context.cache
    if plan.master_key in cache:
        return cache.get(plan.master_key)
    mixed, sr = cache.get(plan.key)
    y, loudness = master(mixed, sr, MasterSettings(**plan.master))
    cache.put(plan.master_key, y, sr, {"kind": "master", "name": plan.name, "loudness": str(loudness)})
    return y, sr


def _build_delivery(context: Context, item: tuple[MixPlan, str]) -> dict[str, str]:
    """Bring the master to a delivery preset, encode, check the files and publish them."""
    from .deliver import deliver, delivery_from

    plan, name = item
    table, files = plan.delivery(name)
    delivery = delivery_from(table, f"[deliveries.{name}]")
    y, sr = _mastered(context, plan)
    stem = files[0].with_name(files[0].name.rsplit(".", 1)[0])
    for path, found in deliver(y, sr, stem, delivery, target=f"deliver:{plan.name}/{name}"):
        print(f"deliver:{plan.name}/{name}  {found}  {_relative(context, path)}", file=sys.stdout)
    return {"stamp": plan.delivery_stamp(name)}


def _relative(context: Context, path: Any) -> Any:
    root = context.project.root
    return path.relative_to(root) if path.is_relative_to(root) else path


def _build_master(context: Context, plan: MixPlan) -> dict[str, str]:
    """Master the mix (or reuse a cached master) and write the [master] formats to ``build/``.

    The files go through the same encode, decode and spec check as every
    delivery, against the master's own target and ceiling (±1 LU).
    """
    from .deliver import Delivery, deliver

    settings = plan.master
    files = [p for p in plan.outputs if p.parent.suffix != ".stems"]
    formats = tuple(p.suffix[1:] for p in files)
    delivery = Delivery("master", settings["target_lufs"], settings["ceiling_dbtp"], 1.0, formats)
    y, sr = _mastered(context, plan)
    stem = files[0].with_name(files[0].name[: -len(files[0].suffix)])
    for path, found in deliver(y, sr, stem, delivery, target=f"master:{plan.name}"):
        print(
            f"master:{plan.name}  {found}  {len(y) / sr:6.1f} s  {_relative(context, path)}", file=sys.stdout
        )
    _write_stems(context, plan, [p for p in plan.outputs if p.parent.suffix == ".stems"])
    return {"stamp": plan.stamp}


def _write_stems(context: Context, plan: MixPlan, paths: list[Any]) -> None:
    """Write the mix's buses as 24-bit WAVs: before mastering, they sum to the mix."""
    from .audio import write_audio_atomic

    if paths and any(plan.stem_key(bus) not in context.cache for bus in STEMS):
        _build_mix(context, plan)  # a mix cached before stems were asked for
    for path in paths:
        y, sr = context.cache.get(plan.stem_key(path.stem))
        write_audio_atomic(path, y, sr, format="WAV", subtype="PCM_24")
        print(f"master:{plan.name}  stem {path.stem:<5}  {_relative(context, path)}", file=sys.stdout)


def stamp_matches(task: Any, values: dict[str, Any], stamp: str) -> bool:
    """doit ``uptodate``: the files in ``build/`` were made from this master."""
    return bool(values.get("stamp") == stamp)
