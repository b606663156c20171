"""Money: what a plan's paid renders cost, and a build's budget (``--max-cost``).

A renderer says what a request bills as text (its ``billing(request)``:
``"42 characters"``, ``"2.5 s of audio"``, ``"one generation (2 clips)"``);
:func:`parse_bill` reads the amount and what it counts, and the prices of
the renderer's provider (the show's ``[providers.NAME] price``, else the
defaults in :data:`mixdown.settings.PRICES`) turn it into dollars. A price ``per =
"request"`` prices a render whatever its bill counts; one with a ``kind``
prices only that kind's renders and wins over one without.

A :class:`Budget` is shared by every worker thread of a build: a paid
render first reserves its cost (:meth:`Budget.reserve`), which fails, before
any request is sent, once the budget would be passed; a render that fails
gives its reservation back (:meth:`Budget.release`).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from ..errors import MixdownError
from ..settings import PRICE_UNITS, PRICES, Price
from .model import Asset, request_for

if TYPE_CHECKING:
    from ..renderers import Registry
    from ..show.project import Project

__all__ = [
    "Bill",
    "Budget",
    "Estimate",
    "estimate",
    "parse_bill",
    "parse_budget",
    "price_of",
    "prices_for",
    "provider_of",
    "unpriced",
    "usd",
]

_BILL = re.compile(
    r"^\s*(?P<amount>\d+(?:\.\d+)?|one|an?)\s+"
    r"(?P<unit>characters?|chars?|s\b|secs?\b|seconds?|minutes?|min\b|generations?|requests?)",
    re.I,
)
_FAMILY = {"c": "characters", "s": "seconds", "m": "seconds", "g": "requests", "r": "requests"}


class Bill(NamedTuple):
    """A bill read from a renderer's text: ``amount`` of ``unit`` (characters, seconds or requests)."""

    amount: float
    unit: str


def parse_bill(text: str) -> Bill | None:
    """``"42 characters"`` as ``Bill(42, "characters")``; None for a bill in words it does not know.

    Minutes are counted in seconds; "one generation" is one request.
    """
    found = _BILL.match(text)
    if found is None:
        return None
    word, unit = found.group("amount").lower(), found.group("unit").lower()
    amount = 1.0 if word in ("one", "a", "an") else float(word)
    if unit.startswith("min"):
        return Bill(amount * 60.0, "seconds")
    return Bill(amount, _FAMILY[unit[0]])


def provider_of(registry: Registry, renderer: str) -> str:
    """The name prices are looked up by: the renderer's provider, else the renderer's own name."""
    provider = registry.spec(renderer).provider
    return provider.name if provider is not None else renderer


def prices_for(project: Project, provider: str) -> tuple[Price, ...]:
    """The prices of ``provider``: the show's ``[providers.NAME] price`` if it sets one (all of
    them: the defaults are then not used), else the defaults."""
    if provider in project.prices:
        return project.prices[provider]
    return PRICES.get(provider, ())


def price_of(bill: Bill, kind: str, prices: Iterable[Price]) -> float | None:
    """What ``bill`` for a render of ``kind`` costs in dollars, or None if no price covers it."""
    fitting = [p for p in prices if p.kind in (None, kind)]
    for unit in (bill.unit, "requests"):  # a price per request covers any render
        chosen = sorted((p for p in fitting if PRICE_UNITS[p.per][0] == unit), key=lambda p: p.kind is None)
        if chosen:
            price = chosen[0]
            count = bill.amount / PRICE_UNITS[price.per][1] if unit == bill.unit else 1.0
            return count * price.usd
    return None


class Estimate(NamedTuple):
    """One paid render: its asset, its provider, what it bills, and the dollars (None: no price)."""

    asset: Asset
    provider: str
    bill: str
    usd: float | None


def estimate(project: Project, registry: Registry, assets: Iterable[Asset]) -> list[Estimate]:
    """An :class:`Estimate` for each of ``assets`` whose renderer bills (local ones do not)."""
    out = []
    for asset in assets:
        billing = registry.spec(asset.renderer).billing
        if billing is None:
            continue
        provider = provider_of(registry, asset.renderer)
        text = billing(request_for(asset, project))
        bill = parse_bill(text)
        cost = price_of(bill, asset.kind, prices_for(project, provider)) if bill is not None else None
        out.append(Estimate(asset, provider, text, cost))
    return out


def unpriced(item: Estimate) -> str:
    """The one-line error for a paid render that no price covers, when a budget needs one."""
    return (
        f"{item.asset.task}: no price for what the '{item.provider}' provider bills ({item.bill}); "
        f'set [providers.{item.provider}] price = {{ per = "request", usd = … }} in project.toml, '
        "or build without --max-cost"
    )


def usd(amount: float) -> str:
    """Dollars for a person: ``$12.35``, ``$0.84``, ``$0.018`` (under ten cents, two significant digits)."""
    if amount == 0 or amount >= 0.1:
        return f"${amount:,.2f}"
    return f"${amount:.2g}"


def parse_budget(text: str, where: str = "--max-cost") -> float:
    """``--max-cost`` / ``MIXDOWN_MAX_COST`` as dollars (``"5"``, ``"0.50"``, ``"$2"``), or one line."""
    try:
        amount = float(text.strip().removeprefix("$"))
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount) or amount < 0:
        raise MixdownError(f"{where} {text!r}: not an amount of dollars; give one such as 5 or 0.50")
    return amount


class Budget:
    """The dollars a build may spend on paid renders, shared by its threads."""

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.spent = 0.0  # reserved by renders that are paid for or under way
        self._lock = threading.Lock()

    def reserve(self, amount: float, target: str) -> None:
        """Set ``amount`` aside for ``target``'s request, or raise :class:`MixdownError` (one line)
        if that would pass the budget: the request must then not be sent."""
        with self._lock:
            if self.spent + amount > self.limit + 1e-9:
                raise MixdownError(
                    f"{target}: not rendered: its {usd(amount)} would pass the budget "
                    f"(--max-cost {usd(self.limit)}, {usd(self.spent)} spent); raise it to render the rest"
                )
            self.spent += amount

    def release(self, amount: float) -> None:
        """Give back a reservation whose render failed."""
        with self._lock:
            self.spent = max(self.spent - amount, 0.0)
