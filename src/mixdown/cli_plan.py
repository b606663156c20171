"""``mixdown plan`` and ``mixdown check``: what a build would render and bill, and whether it can.

``plan`` lists the assets a build (or one shard of it) would render, with
their renderer, their bill in the provider's own unit and their price;
``check`` validates the show and the API keys its cloud renderers need.
Both are subcommands of :func:`mixdown.cli.main`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict

from .loader import Show, load_show

__all__ = ["LOCAL", "check", "plan", "shard_argument"]

LOCAL = "local, no charge"  # the bill of a renderer that does not say what it bills


def plan(args: argparse.Namespace) -> int:
    """Print every asset a build would render, its renderer, its bill and what it costs."""
    from .plan.spend import estimate, usd

    show = _sharded(load_show(args.dir), args.shard)
    cached = show.context.cache.keys()
    missing = [a for a in show.plan.assets.values() if a.key not in cached]
    print(
        f"{len(missing)} of {len(show.plan.assets)} assets to render ({len(show.plan.assets) - len(missing)} cached)"
    )
    priced = {item.asset.key: item for item in estimate(show.context.project, show.context.registry, missing)}
    totals: dict[str, list[str]] = defaultdict(list)
    money: dict[str, list[float | None]] = defaultdict(list)
    width = max((len(a.task) for a in missing), default=0)
    for asset in missing:
        item = priced.get(asset.key)
        bill = item.bill if item is not None else LOCAL
        totals[asset.renderer].append(bill)
        cost = ""
        if item is not None:
            money[asset.renderer].append(item.usd)
            cost = f"  {usd(item.usd) if item.usd is not None else 'no price'}"
        print(f"  {asset.task:<{width}}  {asset.renderer:<10}  {bill}{cost}")
    for renderer, bills in totals.items():
        print(f"{renderer}: {_total(bills)}{_money(money.get(renderer, []))}")
    if priced:
        print(_grand_total([item.usd for item in priced.values()]))
    return 0


def _sharded(show: Show, shard: str | None) -> Show:
    """``show`` with the plan of ``shard`` (``I/N``) alone, saying which part that is; as it is for None."""
    from .plan.shards import parse, select

    if shard is None:
        return show
    part = select(show.plan, parse(shard))
    print(
        f"shard {shard}: {len(part.mixes)} of {len(show.plan.mixes)} renditions, "
        f"{len(part.assets)} of {len(show.plan.assets)} assets"
    )
    for mix in part.mixes:
        print(f"  master:{mix.name}")
    return Show(show.context, part)


def _money(costs: list[float | None]) -> str:
    """``, $0.42`` for a renderer's paid renders (``, $0.42 + 3 without a price``); none for local."""
    if not costs:
        return ""
    known = sum(c for c in costs if c is not None)
    without = sum(c is None for c in costs)
    from .plan.spend import usd

    return f", {usd(known)}" + (f" + {without} without a price" if without else "")


def _grand_total(costs: list[float | None]) -> str:
    """The plan's total in dollars, the date of the default prices, and what is not priced."""
    from .plan.spend import usd
    from .settings import PRICES_TAKEN

    without = sum(c is None for c in costs)
    unpriced = f"; {without} renders have no price: set [providers.NAME] price for them" if without else ""
    return (
        f"total: {usd(sum(c for c in costs if c is not None))} for {len(costs)} paid renders "
        f"(list prices of {PRICES_TAKEN} unless [providers.NAME] price sets them){unpriced}"
    )


def _total(bills: list[str]) -> str:
    """What one renderer's renders come to: ``12 requests, 340 characters`` or ``17 renders, local, no charge``."""
    if all(bill == LOCAL for bill in bills):
        return f"{len(bills)} renders, {LOCAL}"
    return f"{len(bills)} requests, {_sum(bills)}"


def _sum(bills: list[str]) -> str:
    """Add up bills of the same unit ("12 characters" + "30 characters"); count the others."""
    units: dict[str, float] = {}
    others: Counter[str] = Counter()
    for bill in bills:
        amount, _, unit = bill.partition(" ")
        try:
            number = float(amount)
        except ValueError:
            others[bill] += 1
        else:
            units[unit] = units.get(unit, 0.0) + number
    parts = [f"{amount:g} {unit}" for unit, amount in units.items()]
    return ", ".join(parts + [f"{count} × {bill}" for bill, count in others.items()])


def check(args: argparse.Namespace) -> int:
    """Validate the show, and that every cloud renderer it uses has its API key."""
    show = load_show(args.dir)
    problems = _missing_keys(show)
    for problem in problems:
        print(f"mixdown: {problem}", file=sys.stderr)
    if problems:
        return 2
    plan = show.plan
    kinds = Counter(asset.kind for asset in plan.assets.values())
    summary = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    print(f"ok: {show.context.project.name}: {summary}; {len(plan.mixes)} deliverables")
    return 0


def _missing_keys(show: Show) -> list[str]:
    """One message per renderer in use whose API key variable is not set (as the HTTP client reads it)."""
    project = show.context.project
    sources = {"voice": project.voices, "sfx": project.sfx, "music": project.music}
    first: dict[str, str] = {}  # renderer → where its first source in use is declared
    for asset in show.plan.assets.values():
        first.setdefault(asset.renderer, sources[asset.kind][asset.source].where)
    problems = []
    for renderer, where in first.items():
        provider = show.context.registry.spec(renderer).provider
        key = provider.key_env if provider is not None else None
        if key and not os.environ.get(key, "").strip():
            problems.append(f"{where}: the '{renderer}' renderer needs an API key: set {key} before building")
    return problems


def shard_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="build shard I of N (I from 0: 0/4 to 3/4), a stable, disjoint 1/N of the renditions "
        "(or MIXDOWN_SHARD)",
    )
