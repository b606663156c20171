"""The ``mixdown`` command: what doit does not answer.

::

    mixdown plan [-d DIR]        what a build would render, with whom, and what it would bill
    mixdown voices RENDERER      the voices a renderer offers (cloud renderers ask the provider)
    mixdown check [-d DIR]       validate the show without rendering anything
    mixdown retake TARGET…       render assets again as a new take (``--take N`` goes back to one)

Building is ``doit``'s job (see the README). Errors are printed as one line
and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from .errors import MixdownError
from .graph import request_for
from .loader import Show, load_show

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="mixdown", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("plan", "what a build would render and bill"), ("check", "validate the show")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("-d", "--dir", type=Path, default=Path("."), help="the show's directory")
    voices = commands.add_parser("voices", help="list a renderer's voices")
    voices.add_argument("renderer")
    voices.add_argument("-d", "--dir", type=Path, default=Path("."), help="the show's directory")
    retake = commands.add_parser("retake", help="render assets again as a new take (takes.toml)")
    retake.add_argument("targets", nargs="+", metavar="TARGET", help="voice:, sfx: or music: names or patterns")
    retake.add_argument("--take", type=int, metavar="N", help="go to take N (0 is the first) instead of a new one")
    retake.add_argument("-d", "--dir", type=Path, default=Path("."), help="the show's directory")
    args = parser.parse_args(argv)
    try:
        if args.command == "voices":
            return _voices(args.dir, args.renderer)
        if args.command == "retake":
            return _retake(args.dir, args.targets, args.take)
        show = load_show(args.dir)
        return _plan(show) if args.command == "plan" else _check(show)
    except MixdownError as err:
        print(f"mixdown: {err}", file=sys.stderr)
        return 2


def _retake(root: Path, targets: list[str], take: int | None) -> int:
    from . import takes

    if take is not None and take < 0:
        raise MixdownError(f"--take {take}: takes count from 0 (the first render); give 0 or more")
    show = load_show(root)
    for line in takes.retake(show.context.project.root, show.plan, targets, take=take):
        print(line)
    print(f"run doit to render and mix them; {takes.FILENAME} records the takes: commit it with the show")
    return 0


def _check(show: Show) -> int:
    plan = show.plan
    kinds = Counter(asset.kind for asset in plan.assets.values())
    summary = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    print(f"ok: {show.context.project.name}: {summary}; {len(plan.mixes)} deliverables")
    return 0


def _plan(show: Show) -> int:
    """Print every asset a build would render, its renderer and its bill."""
    cached = show.context.cache.keys()
    missing = [a for a in show.plan.assets.values() if a.key not in cached]
    print(
        f"{len(missing)} of {len(show.plan.assets)} assets to render ({len(show.plan.assets) - len(missing)} cached)"
    )
    totals: dict[str, list[str]] = defaultdict(list)
    width = max((len(a.task) for a in missing), default=0)
    for asset in missing:
        cls = show.context.registry.cls(asset.renderer)
        billing = getattr(cls, "billing", None)
        bill = billing(request_for(asset, show.context.project)) if billing else "local, no charge"
        totals[asset.renderer].append(bill)
        print(f"  {asset.task:<{width}}  {asset.renderer:<10}  {bill}")
    for renderer, bills in totals.items():
        print(f"{renderer}: {len(bills)} requests, {_sum(bills)}")
    return 0


def _sum(bills: list[str]) -> str:
    """Add up bills of the same unit ("12 characters" + "30 characters")."""
    units: dict[str, float] = defaultdict(float)
    other = 0
    for bill in bills:
        amount, _, unit = bill.partition(" ")
        try:
            units[unit] += float(amount)
        except ValueError:
            other += 1
    parts = [f"{amount:g} {unit}" for unit, amount in units.items()]
    return ", ".join(parts + ([f"{other} × {bills[0]}"] if other else []))


def _voices(root: Path, name: str) -> int:
    from .project import load
    from .renderers import Registry

    registry = Registry(root.resolve())
    if (root / "project.toml").is_file():
        registry.configure(load(root, registry=registry).providers)
    renderer = registry.instance(name)
    listing = getattr(renderer, "voices", None)
    if listing is None:
        raise MixdownError(f"the '{name}' renderer has no voice list; see its documentation for its settings")
    try:
        found = listing()
    except NotImplementedError as err:
        raise MixdownError(str(err)) from None
    for voice in found:
        print(f"{voice['id']:<28}  {voice.get('name', ''):<24}  {voice.get('description', '')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
