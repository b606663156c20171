"""The render action: one asset (voice line, SFX, music-bed segment) into the cache.

:func:`render_asset` calls the asset's renderer once per content key, checks
what it returns, and stores it with its metadata; nothing implausible is cached.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import MixdownError, RenderFailed
from ..plan.model import Asset, request_for
from ..store.cache import safe_params
from .context import Context, once, reported
from .shared import asset_wanted, made_or_fetched

__all__ = ["release", "render_asset", "render_once", "reserve"]

# Shorter audio than this (or a peak over 4.0) is a renderer's error, not a take.
MIN_SECONDS = {"voice": 0.05, "sfx": 0.005, "music": 0.5}


def render_asset(context: Context, asset: Asset) -> Any:
    """doit action: render one asset into the cache, unless the cache holds it already."""
    return reported(render_once, context, asset, asset.task)


def render_once(context: Context, asset: Asset) -> None:
    """Render one asset and store it under its key, unless the cache already holds the key
    (``doit -a`` runs every task: a paid render is never made twice) or the remote cache
    has it; what is rendered is uploaded to the remote cache at once."""
    once(
        context,
        asset.key,
        asset.task,
        "rendering",
        lambda: asset.key in context.cache,
        lambda: made_or_fetched(context, asset_wanted(asset), lambda: _render_missing(context, asset)),
    )


def _render_missing(context: Context, asset: Asset) -> None:
    """Render one asset and store it under its key."""
    import numpy as np

    renderer = context.registry.instance(asset.renderer)
    request = request_for(asset, context.project)
    named = _renderer_named(context, asset.renderer)
    cost = reserve(context, asset)
    try:
        result = renderer.render(request)
    except MixdownError:
        release(context, cost)
        raise
    except Exception as err:  # a show's own renderer may raise anything: one line, not a traceback
        release(context, cost)
        why = _without_secrets(" ".join(f"{type(err).__name__}: {err}".split()))
        raise RenderFailed(f"{asset.task}: {named} raised {why}; nothing was cached") from None
    audio, sample_rate = _result_audio(result, asset, named)
    seconds = len(audio) / sample_rate
    if seconds < MIN_SECONDS[asset.kind] or np.abs(audio).max() > 4.0:
        peak = float(np.abs(audio).max()) if len(audio) else 0.0
        raise RenderFailed(
            f"{asset.task}: {named} returned implausible audio "
            f"({seconds:.3f} s, peak {peak:.2f}); nothing was cached"
        )
    billing = context.registry.spec(asset.renderer).billing
    meta = {
        "kind": asset.kind,
        "renderer": asset.renderer,
        "version": context.registry.spec(asset.renderer).version,
        "params": safe_params(request.params),
        **({"text": asset.text} if asset.kind == "voice" else {}),
        **({"segment": asset.segment} if asset.segment else {}),
        **({"billed": billing(request)} if billing else {}),
        **safe_params(result.meta or {}),
    }
    context.cache.put(asset.key, audio, sample_rate, meta)
    if context.pinned is not None:
        from .locking import check_pinned

        check_pinned(context, asset.task, asset.key, sha256=str(context.cache.meta(asset.key)["sha256"]))


def reserve(context: Context, asset: Asset) -> float:
    """Set the render's price aside in the build's budget (none without ``--max-cost``, nothing for
    a local renderer); raises, before any request is sent, if that would pass the budget."""
    if context.budget is None:
        return 0.0
    from ..plan.spend import estimate, unpriced

    priced = estimate(context.project, context.registry, [asset])
    if not priced:
        return 0.0
    if priced[0].usd is None:
        raise MixdownError(unpriced(priced[0]))
    context.budget.reserve(priced[0].usd, asset.task)
    return priced[0].usd


def release(context: Context, cost: float) -> None:
    """Give a failed render's reservation back: a request that failed is not counted as billed."""
    if context.budget is not None and cost:
        context.budget.release(cost)


def _result_audio(result: Any, asset: Asset, named: str) -> tuple[Any, int]:
    """The audio ``[shape=(n, channels)]`` and rate of a renderer's result, checked."""
    from ..dsp.signal import valid_audio

    rate, meta = _whole_rate(getattr(result, "sample_rate", None)), getattr(result, "meta", None)
    if not hasattr(result, "audio") or rate is None or not isinstance(meta, dict | None):
        got = (
            type(result).__name__
            if not hasattr(result, "audio")
            else f"sample rate {getattr(result, 'sample_rate', None)!r}, meta {type(meta).__name__}"
        )
        raise RenderFailed(
            f"{asset.task}: {named} returned {got}, not a RenderResult(audio, sample_rate, meta); "
            "nothing was cached"
        )
    try:
        audio = valid_audio(result.audio, what=asset.task)
    except MixdownError as err:
        raise RenderFailed(f"{asset.task}: {named} returned bad audio: {err}; nothing was cached") from None
    return audio, rate


def _whole_rate(rate: Any) -> int | None:
    """``rate`` as a positive whole number of samples per second, or None."""
    if isinstance(rate, bool | str | bytes):
        return None
    try:
        value = float(rate)
    except (TypeError, ValueError):
        return None
    return int(value) if value > 0 and value.is_integer() else None


def _without_secrets(text: str) -> str:
    """``text`` with the value of every ``*_API_KEY`` variable replaced: a renderer's own
    exception may quote its request, and the message reaches the console and CI logs."""
    for name, value in os.environ.items():
        if name.endswith("_API_KEY") and len(value) >= 8:
            text = text.replace(value, "***")
    return text


def _renderer_named(context: Context, name: str) -> str:
    """``renderer 'x'``, with the show's file that defines it when it is the show's own."""
    source = context.registry.spec(name).render_file
    root = context.project.root.resolve()
    if source is not None and source.resolve().is_relative_to(root):
        return f"renderer '{name}' ({source.resolve().relative_to(root)})"
    return f"renderer '{name}'"
