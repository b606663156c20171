"""``mixdown merge-locks``, ``retake`` and ``diff``: the show's lockfile and takes.

``merge-locks`` writes the whole show's ``mixdown.lock`` from its shards'
locks; ``retake`` gives assets a new take (``takes.toml``); ``diff`` says what
changed in ``mixdown.lock`` since a git revision. Subcommands of
:func:`mixdown.cli.main`.
"""

from __future__ import annotations

import argparse
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from .errors import MixdownError
from .loader import load_show

__all__ = ["diff", "diff_arguments", "merge_locks", "merge_locks_arguments", "retake", "retake_arguments"]


def merge_locks(args: argparse.Namespace) -> int:
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


def merge_locks_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "locks", nargs="+", metavar="LOCK", help="the mixdown.lock each shard's build wrote, shard 0's first"
    )


def retake(args: argparse.Namespace) -> int:
    """Give the assets ``args.targets`` a new take (or take ``args.take``)."""
    from .plan import takes

    if args.take is not None and args.take < 0:
        raise MixdownError(f"--take {args.take}: takes count from 0 (the first render); give 0 or more")
    show = load_show(args.dir)
    for line in takes.retake(show.context.project.root, show.plan, args.targets, take=args.take):
        print(line)
    print(f"run doit to render and mix them; {takes.FILENAME} records the takes: commit it with the show")
    return 0


def retake_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "targets", nargs="+", metavar="TARGET", help="voice:, sfx: or music: names or patterns"
    )
    parser.add_argument(
        "--take", type=int, metavar="N", help="go to take N (0 is the first) instead of a new one"
    )


def diff(args: argparse.Namespace) -> int:
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
        raise MixdownError(
            "diff: git is not installed (or not on PATH); install it to compare revisions"
        ) from None
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


def diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "rev", nargs="?", default="HEAD", metavar="REV", help="a git revision (default: HEAD)"
    )
