"""The ``mixdown`` command: what doit does not answer.

::

    mixdown init [DIR]           write a new show into DIR (.) that renders offline as it stands
    mixdown build [--shard I/N] [DOIT-ARGS…]   build the show (or shard I of N: 0/4 … 3/4) with doit
    mixdown merge-locks LOCK…    the whole show's mixdown.lock from its shards' locks
    mixdown plan [-d DIR]        what a build would render, with whom, and what it would bill
    mixdown voices RENDERER      the voices a renderer offers (cloud renderers ask the provider)
    mixdown check [-d DIR]       validate the show and the API keys it needs, without rendering anything
    mixdown retake TARGET…       render assets again as a new take (``--take N`` goes back to one)
    mixdown play TARGET          build a section's preview (or any target) and play it
    mixdown diff [REV]           what changed in mixdown.lock since a git revision (HEAD by default)
    mixdown gc [--dry-run]       remove cache objects neither the plan nor the lockfiles reference
    mixdown push / pull          upload to / download from the remote cache what the plan needs
    mixdown status               what the plan needs that the local or the remote cache lacks

Building is ``doit``'s job (see the README); ``mixdown build`` runs it, passing
on doit's own arguments (``-n 4 -P thread``, target names). Errors are printed
as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

from .errors import MixdownError
from .loader import Show, find_show, load_show, one_line

if TYPE_CHECKING:
    from .renderers.base import VoiceLister
    from .store.remote import Remote

__all__ = ["main"]

LOCAL = "local, no charge"  # the bill of a renderer that does not say what it bills
#: the players ``mixdown play`` looks for on PATH, in this order, with their arguments
PLAYERS = (
    ("ffplay", "-nodisp", "-autoexit"),
    ("mpv",),
    ("afplay",),
    ("paplay",),
    ("aplay",),
    ("play",),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="mixdown", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action=_Version, nargs=0, help="print mixdown's version and exit")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, allow_abbrev=False)
        command.arguments(sub)
        sub.add_argument("-d", "--dir", type=Path, default=Path("."), help="the show's directory")
    args, rest = parser.parse_known_args(argv)
    if args.command != "build" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.doit_args = rest  # only `build` takes any: they are doit's
    if args.dir == Path("."):
        args.dir = find_show(Path.cwd())  # from a subdirectory of a show too
    try:
        return COMMANDS[args.command].run(args)
    except MixdownError as err:
        print(f"mixdown: {one_line(err)}", file=sys.stderr)
        return 2


class _Version(argparse.Action):
    """``--version``: looked up only when asked (importlib.metadata takes tens of milliseconds)."""

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib import metadata

        from . import __version__

        try:
            print(f"mixdown {metadata.version('mixdown')}")
        except metadata.PackageNotFoundError:
            print(f"mixdown {__version__}")
        parser.exit()


def _init(args: argparse.Namespace) -> int:
    """Write a new show into ``args.target`` (:mod:`mixdown.scaffold`)."""
    from .scaffold import init

    print("\n".join(init(args.target)))
    return 0


def _init_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", type=Path, default=Path("."), metavar="DIR", help="the new show's folder (.)")


def _build(args: argparse.Namespace) -> int:
    """Build the show (``args.shard``: one shard of it) with doit and ``args.doit_args``."""
    from doit.doit_cmd import DoitMain

    from .loader import MixdownLoader
    from .plan.shards import parse

    if args.shard is not None:
        parse(args.shard)  # a bad value is one line here, before anything loads
    loader = MixdownLoader(args.dir.resolve(), shard=args.shard or "")
    return int(DoitMain(loader, config_filenames=()).run(list(args.doit_args)))


def _merge_locks(args: argparse.Namespace) -> int:
    """Write the show's ``mixdown.lock`` from the locks its N shards' builds wrote (``args.locks``,
    shard 0's first)."""
    from .plan import lock
    from .plan.shards import merge

    show = load_show(args.dir)
    root = show.context.project.root
    path = root / lock.FILENAME
    parts = [lock.read(Path(name)) for name in args.locks]
    merged = merge(show.plan, lock.wanted(show.plan, root), parts)
    if merged.missing:
        more = len(merged.missing) - 5
        named = ", ".join(merged.missing[:5]) + (f" and {more} more" if more > 0 else "")
        raise MixdownError(
            f"{lock.FILENAME}: none of the {len(parts)} locks has a current entry for {len(merged.missing)} "
            f"targets ({named}); nothing was written: give every shard's lock, shard 0's first, after "
            f"every shard's build (mixdown build --shard I/{len(parts)}) has finished"
        )
    if merged.differing:
        print(
            f"note: {len(merged.differing)} targets were rendered by two shards at once, as two takes "
            f"({merged.differing[0]}, …): kept the take of the shard that owns each"
        )
    old = lock.read(path)
    written = lock.write(path, merged.lock)
    changed = len(lock.compare(old, merged.lock))
    print(
        f"{lock.FILENAME}  {'written' if written else 'unchanged'}: {changed} entries changed, "
        f"from {len(parts)} shards' locks"
    )
    return 0


def _merge_locks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("locks", nargs="+", metavar="LOCK", help="the mixdown.lock each shard's build wrote, shard 0's first")


def _shard_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="build shard I of N (I from 0: 0/4 to 3/4), a stable, disjoint 1/N of the renditions "
        "(or MIXDOWN_SHARD)",
    )


def _retake(args: argparse.Namespace) -> int:
    """Give the assets ``args.targets`` a new take (or take ``args.take``)."""
    from .plan import takes

    if args.take is not None and args.take < 0:
        raise MixdownError(f"--take {args.take}: takes count from 0 (the first render); give 0 or more")
    show = load_show(args.dir)
    for line in takes.retake(show.context.project.root, show.plan, args.targets, take=args.take):
        print(line)
    print(f"run doit to render and mix them; {takes.FILENAME} records the takes: commit it with the show")
    return 0


def _retake_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets", nargs="+", metavar="TARGET", help="voice:, sfx: or music: names or patterns"
    )
    parser.add_argument(
        "--take", type=int, metavar="N", help="go to take N (0 is the first) instead of a new one"
    )


def _check(args: argparse.Namespace) -> int:
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


def _plan(args: argparse.Namespace) -> int:
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


def _gc(args: argparse.Namespace) -> int:
    """Remove (or with ``--dry-run`` list) the cache objects nothing references."""
    from .actions import published
    from .plan.gc import collect, referenced
    from .store.inventory import size_text

    show = load_show(args.dir)
    project = show.context.project
    remote = None
    if args.remote:
        remote = os.environ.get("MIXDOWN_REMOTE") or project.cache.remote
        if not remote:
            raise MixdownError(
                "--remote: the show has no remote cache; set [cache] remote in project.toml, or MIXDOWN_REMOTE"
            )
    built = published.keys(show.context, show.plan)
    references = referenced(show.plan, project.root, args.rev, published=built)
    found = collect(show.context.cache, references, remote=remote, dry_run=args.dry_run)
    for item in found.garbage:
        print(f"  {item.key}  {size_text(item.size):>9}  {_described(item.files)}".rstrip())
    where = remote or _shown(project.root, project.cache_dir)
    print(
        f"{'would remove' if args.dry_run else 'removed'} {len(found.garbage)} of {found.objects} objects "
        f"in {where}: {size_text(found.freed)} of {size_text(found.size)}; "
        f"kept what {', '.join(references.sources)} reference"
    )
    return 0


def _described(files: tuple[str, ...]) -> str:
    """What a local cache object is, from its record: ``voice "Hello there."``, ``mix news@anna``."""
    import json
    import re

    record = next(
        (name for name in files if re.fullmatch(r"[0-9a-f]{64}\.json", os.path.basename(name))), None
    )
    if record is None or not os.path.isfile(record):
        return ""
    try:
        data = json.loads(Path(record).read_text("utf-8"))
    except (OSError, ValueError):
        return ""
    kind = str(data.get("kind", ""))
    if "name" in data:
        return f"{kind} {data['name']}" + (f" ({data['bus']})" if "bus" in data else "")
    text = str(data.get("text", ""))
    return f"{kind} {text[:48]!r}" if text else f"{kind} {data.get('segment', '')}".strip()


def _shown(root: Path, path: Path) -> str:
    return f"{path.relative_to(root)}/" if path.is_relative_to(root) else f"{path}/"


def _gc_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="list what would be removed, remove nothing")
    parser.add_argument(
        "--remote", action="store_true", help="the remote cache ([cache] remote, MIXDOWN_REMOTE)"
    )
    parser.add_argument(
        "--rev",
        action="append",
        metavar="REV",
        help="keep what mixdown.lock references at REV (repeatable; default: HEAD and main)",
    )


def _voices(args: argparse.Namespace) -> int:
    """List the voices the renderer ``args.renderer`` offers."""
    from .renderers import Registry
    from .show.project import load

    root, name = args.dir, args.renderer
    registry = Registry(root.resolve())
    if (root / "project.toml").is_file():
        registry.configure(load(root, registry=registry).providers)
    renderer = registry.instance(name)
    if not registry.spec(name).lists_voices:
        raise MixdownError(f"the '{name}' renderer has no voice list; see its documentation for its settings")
    listing = cast("VoiceLister", renderer)
    try:
        found = listing.voices()
    except NotImplementedError as err:
        raise MixdownError(str(err)) from None
    for voice in found:
        print(f"{voice['id']:<28}  {voice.get('name', ''):<24}  {voice.get('description', '')}")
    return 0


def _play(args: argparse.Namespace) -> int:
    """Build ``args.target`` through doit (a section: its preview) and play what it made."""
    if args.bed and not args.target.startswith("section:"):
        raise MixdownError(f"{args.target}: --bed is for section: targets; leave it out for this one")
    show = load_show(args.dir)
    playable = _playable(show, args.target)  # an unknown target fails before anything is built
    from doit.doit_cmd import DoitMain

    from .loader import MixdownLoader

    root = show.context.project.root
    code = DoitMain(MixdownLoader(root), config_filenames=()).run([args.target, *(["--bed"] if args.bed else [])])
    if code:
        raise MixdownError(f"{args.target}: the build failed (see above); fix what it says and play again")
    path = playable()
    player = next((p for p in PLAYERS if shutil.which(p[0])), None)
    if player is None:
        print(path)
        names = ", ".join(p[0] for p in PLAYERS)
        print(f"mixdown: no audio player on PATH ({names}): open the file above in any player", file=sys.stderr)
        return 0
    if subprocess.run([*player, str(path)], check=False).returncode:
        raise MixdownError(f"{args.target}: {player[0]} could not play {path}; open it in another player")
    return 0


def _playable(show: Show, target: str) -> Callable[[], Path]:
    """What gives the file ``mixdown play TARGET`` plays once ``target`` is built: a section's
    WAV preview, a master's first file in ``build/``, a mix's or an asset's cache object (as
    a float WAV if it is compact)."""
    from .actions.preview import playable_object, preview_paths

    plan, context = show.plan, show.context
    kind, _, name = target.partition(":")
    if kind == "section" and any(s.task == target for s in plan.sections.values()):
        return lambda: preview_paths(context.project, target)[0]
    mix = next((m for m in plan.mixes if m.name == name), None)
    if mix is not None and kind == "master":
        return lambda: mix.outputs[0]
    if mix is not None and kind == "mix":
        return lambda: playable_object(context, mix.key, target)
    asset = next((a for a in plan.assets.values() if a.task == target), None)
    if asset is not None:
        return lambda: playable_object(context, asset.key, target)
    raise MixdownError(
        f"{target}: no such target; play takes a section:, master:, mix:, voice:, sfx: or music: "
        "name from `doit list --all`"
    )


def _play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET", help="section:, master:, mix:, voice:, sfx: or music: name")
    parser.add_argument("--bed", action="store_true", help="a section: over the show's music bed")


def _diff(args: argparse.Namespace) -> int:
    """Print what changed in ``mixdown.lock`` between the git revision ``args.rev`` and the working tree."""
    from .plan import lock

    root = args.dir.resolve()
    _git_revision(root, args.rev)
    old = lock.at_revision(root, args.rev)
    new = lock.read(root / lock.FILENAME)
    changes = lock.compare(old or lock.Lock(), new)
    kinds = Counter(change.target.split(":", 1)[0] for change in changes)
    counts = [
        (kinds["voice"], "line"),
        (kinds["sfx"], "sfx"),
        (kinds["music"], "bed segment"),
        (kinds["master"] + kinds["deliver"], "deliverable"),
    ]
    summary = ", ".join(f"{n} {word}{'s' if n != 1 and word != 'sfx' else ''}" for n, word in counts if n)
    since = args.rev if old is not None else f"{args.rev} (which has no {lock.FILENAME})"
    print(f"{lock.FILENAME}: {since} -> working tree: {summary + ' changed' if changes else 'no changes'}")
    for line in lock.describe(changes, text_of=_texts(root)):
        print(line)
    return 0


def _git_revision(root: Path, rev: str) -> None:
    """Check that ``rev`` names a commit of the repository ``root`` is in."""
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
            capture_output=True,
            check=False,
        )
    except OSError:
        raise MixdownError("diff: git is not installed (or not on PATH); install it to compare revisions") from None
    if done.returncode != 0:
        raise MixdownError(
            f"diff {rev}: no such git revision in {root} (or it is not in a git repository); "
            "give a commit, branch or tag, e.g. HEAD or main"
        )


def _texts(root: Path) -> Callable[[str], str | None]:
    """A voice line's text by its key, from the show's cache records (where the cache has them)."""
    try:
        cache = load_show(root).context.cache
    except MixdownError:
        return lambda key: None

    def text_of(key: str) -> str | None:
        try:
            text = cache.meta(key).get("text")
        except (OSError, ValueError):
            return None
        return str(text) if text else None

    return text_of


def _diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rev", nargs="?", default="HEAD", metavar="REV", help="a git revision (default: HEAD)")


def _voices_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("renderer")


def _remote(args: argparse.Namespace) -> tuple[Show, Remote]:
    """The show in ``args.dir`` and its remote cache (required: a command about it fails without it)."""
    from .store.remote import configured

    show = load_show(args.dir)
    remote = configured(show.context.project, required=True)
    if remote is None:
        raise MixdownError(
            f"{show.context.project.root / 'project.toml'}: no remote cache: set [cache] remote "
            "(e.g. s3://bucket/prefix) or MIXDOWN_REMOTE"
        )
    return show, remote


def _push(args: argparse.Namespace) -> int:
    """Upload what the plan needs that the remote cache lacks."""
    from .actions.shared import push

    show, remote = _remote(args)
    done = push(remote, show.context.cache, show.plan, show.context)
    print(
        f"pushed {done.pushed} objects ({done.size / 1e6:.1f} MB in {done.seconds:.1f} s) to {remote.shown}; "
        f"{done.there} there already, {len(done.unbuilt)} not built here"
    )
    return 0


def _pull(args: argparse.Namespace) -> int:
    """Download what the plan needs that the local cache lacks."""
    from .actions.shared import prefetch

    show, remote = _remote(args)
    found = prefetch(remote, show.context.cache, show.plan)
    print(found.line if found is not None else "remote cache: nothing missing here")
    return 0


def _status(args: argparse.Namespace) -> int:
    """Print what of the plan is missing locally and remotely, and what is stale in mixdown.lock."""
    from .actions.shared import status
    from .plan import lock
    from .store.remote import configured

    show = load_show(args.dir)
    root = show.context.project.root
    remote = configured(show.context.project, required=True)
    if remote is None:
        cached = show.context.cache.keys()
        missing = [a.task for a in show.plan.assets.values() if a.key not in cached]
        print(f"no remote cache ([cache] remote or MIXDOWN_REMOTE); missing locally: {len(missing)}")
        for target in missing:
            print(f"  {target}")
    else:
        found = status(remote, show.context.cache, show.plan, show.context)
        print(f"{found.shared} objects shared ([cache] share = \"{remote.share}\") with {remote.shown}")
        for where, targets in (("locally", found.local), ("remotely", found.remote)):
            print(f"missing {where}: {len(targets)}")
            for target in targets:
                print(f"  {target}")
    stale = lock.differences(lock.wanted(show.plan, root), lock.read(root / lock.FILENAME))
    print(f"stale in {lock.FILENAME}: {len(stale)}" + (" (the next build writes them)" if stale else ""))
    for target in stale:
        print(f"  {target}")
    return 0


class Command(NamedTuple):
    """A subcommand: its help, what it does with the parsed arguments, and its own arguments.

    Every command also takes ``-d DIR``; ``run`` returns the exit status.
    """

    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


COMMANDS: dict[str, Command] = {
    "init": Command("write a new show that renders offline as it stands", _init, _init_arguments),
    "build": Command("build the show with doit (--shard I/N: one machine's part)", _build, _shard_argument),
    "merge-locks": Command(
        "the whole show's mixdown.lock from its shards' locks", _merge_locks, _merge_locks_arguments
    ),
    "plan": Command("what a build would render and bill", _plan, _shard_argument),
    "check": Command("validate the show, and the API keys of the cloud renderers it uses", _check),
    "voices": Command("list a renderer's voices", _voices, _voices_arguments),
    "gc": Command("remove cache objects neither the plan nor the lockfiles reference", _gc, _gc_arguments),
    "retake": Command("render assets again as a new take (takes.toml)", _retake, _retake_arguments),
    "play": Command("build a section's preview (or any target) and play it", _play, _play_arguments),
    "push": Command("upload to the remote cache what the plan needs and it lacks", _push),
    "pull": Command("download from the remote cache what the plan needs and the local cache lacks", _pull),
    "status": Command("what the plan needs that the local or the remote cache lacks", _status),
    "diff": Command("what changed in mixdown.lock since a git revision", _diff, _diff_arguments),
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
