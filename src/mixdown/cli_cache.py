"""``mixdown gc``, ``push``, ``pull`` and ``status``: the local and the remote cache.

``gc`` removes the objects neither the plan nor the lockfiles reference;
``push`` and ``pull`` move what the plan needs to and from the remote cache;
``status`` says what of the plan either cache lacks. Subcommands of
:func:`mixdown.cli.main`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MixdownError
from .loader import Show, load_show

if TYPE_CHECKING:
    from .store.remote import Remote

__all__ = ["gc", "gc_arguments", "pull", "push", "status"]


def gc(args: argparse.Namespace) -> int:
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


def gc_arguments(parser: argparse.ArgumentParser) -> None:
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


def push(args: argparse.Namespace) -> int:
    """Upload what the plan needs that the remote cache lacks."""
    from .actions.shared import push

    show, remote = _remote(args)
    done = push(remote, show.context.cache, show.plan, show.context)
    print(
        f"pushed {done.pushed} objects ({done.size / 1e6:.1f} MB in {done.seconds:.1f} s) to {remote.shown}; "
        f"{done.there} there already, {len(done.unbuilt)} not built here"
    )
    return 0


def pull(args: argparse.Namespace) -> int:
    """Download what the plan needs that the local cache lacks."""
    from .actions.shared import prefetch

    show, remote = _remote(args)
    found = prefetch(remote, show.context.cache, show.plan)
    print(found.line if found is not None else "remote cache: nothing missing here")
    return 0


def status(args: argparse.Namespace) -> int:
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
        print(f'{found.shared} objects shared ([cache] share = "{remote.share}") with {remote.shown}')
        for where, targets in (("locally", found.local), ("remotely", found.remote)):
            print(f"missing {where}: {len(targets)}")
            for target in targets:
                print(f"  {target}")
    stale = lock.differences(lock.wanted(show.plan, root), lock.read(root / lock.FILENAME))
    print(f"stale in {lock.FILENAME}: {len(stale)}" + (" (the next build writes them)" if stale else ""))
    for target in stale:
        print(f"  {target}")
    return 0
