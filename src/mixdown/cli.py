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
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, cast

from . import cli_cache, cli_lock, cli_plan
from .errors import MixdownError
from .loader import Show, find_show, load_show, one_line

if TYPE_CHECKING:
    from .renderers.base import VoiceLister

__all__ = ["main"]

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
    parser.add_argument(
        "target", nargs="?", type=Path, default=Path("."), metavar="DIR", help="the new show's folder (.)"
    )


def _build(args: argparse.Namespace) -> int:
    """Build the show (``args.shard``: one shard of it) with doit and ``args.doit_args``."""
    from doit.doit_cmd import DoitMain

    from .loader import MixdownLoader
    from .plan.shards import parse

    if args.shard is not None:
        parse(args.shard)  # a bad value is one line here, before anything loads
    loader = MixdownLoader(args.dir.resolve(), shard=args.shard or "")
    return int(DoitMain(loader, config_filenames=()).run(list(args.doit_args)))


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
    code = DoitMain(MixdownLoader(root), config_filenames=()).run(
        [args.target, *(["--bed"] if args.bed else [])]
    )
    if code:
        raise MixdownError(f"{args.target}: the build failed (see above); fix what it says and play again")
    path = playable()
    player = next((p for p in PLAYERS if shutil.which(p[0])), None)
    if player is None:
        print(path)
        names = ", ".join(p[0] for p in PLAYERS)
        print(
            f"mixdown: no audio player on PATH ({names}): open the file above in any player", file=sys.stderr
        )
        return 0
    if subprocess.run([*player, str(path)], check=False).returncode:
        raise MixdownError(f"{args.target}: {player[0]} could not play {path}; open it in another player")
    return 0


def _playable(show: Show, target: str) -> Callable[[], Path]:
    """What gives the file ``mixdown play TARGET`` plays once ``target`` is built: a section's
    WAV preview, a master's first file in ``build/``, a mix's or an asset's cache object (as
    a float WAV if it is compact)."""
    from .actions.mix import mix_source
    from .actions.preview import playable_object, preview_paths

    plan, context = show.plan, show.context
    kind, _, name = target.partition(":")
    if kind == "section" and any(s.task == target for s in plan.sections.values()):
        return lambda: preview_paths(context.project, target)[0]
    mix = next((m for m in plan.mixes if m.name == name), None)
    if mix is not None and kind == "master":
        return lambda: mix.outputs[0]
    if mix is not None and kind == "mix":
        return lambda: playable_object(context, mix.key, target, lambda: mix_source(context, mix))
    asset = next((a for a in plan.assets.values() if a.task == target), None)
    if asset is not None:
        return lambda: playable_object(context, asset.key, target)
    raise MixdownError(
        f"{target}: no such target; play takes a section:, master:, mix:, voice:, sfx: or music: "
        "name from `doit list --all`"
    )


def _play_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "target", metavar="TARGET", help="section:, master:, mix:, voice:, sfx: or music: name"
    )
    parser.add_argument("--bed", action="store_true", help="a section: over the show's music bed")


def _voices_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("renderer")


class Command(NamedTuple):
    """A subcommand: its help, what it does with the parsed arguments, and its own arguments.

    Every command also takes ``-d DIR``; ``run`` returns the exit status.
    """

    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None


COMMANDS: dict[str, Command] = {
    "init": Command("write a new show that renders offline as it stands", _init, _init_arguments),
    "build": Command(
        "build the show with doit (--shard I/N: one machine's part)", _build, cli_plan.shard_argument
    ),
    "merge-locks": Command(
        "the whole show's mixdown.lock from its shards' locks",
        cli_lock.merge_locks,
        cli_lock.merge_locks_arguments,
    ),
    "plan": Command("what a build would render and bill", cli_plan.plan, cli_plan.shard_argument),
    "check": Command("validate the show, and the API keys of the cloud renderers it uses", cli_plan.check),
    "voices": Command("list a renderer's voices", _voices, _voices_arguments),
    "gc": Command(
        "remove cache objects neither the plan nor the lockfiles reference",
        cli_cache.gc,
        cli_cache.gc_arguments,
    ),
    "retake": Command(
        "render assets again as a new take (takes.toml)", cli_lock.retake, cli_lock.retake_arguments
    ),
    "play": Command("build a section's preview (or any target) and play it", _play, _play_arguments),
    "push": Command("upload to the remote cache what the plan needs and it lacks", cli_cache.push),
    "pull": Command(
        "download from the remote cache what the plan needs and the local cache lacks", cli_cache.pull
    ),
    "status": Command("what the plan needs that the local or the remote cache lacks", cli_cache.status),
    "diff": Command(
        "what changed in mixdown.lock since a git revision", cli_lock.diff, cli_lock.diff_arguments
    ),
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
