"""mixdown as a doit task loader: ``doit`` in a show's directory builds it.

mixdown registers it under doit's ``doit.LOADER`` entry-point group, so a
show names it once, in its ``pyproject.toml``::

    [tool.doit]
    loader = "mixdown"

or in ``doit.cfg`` (``[GLOBAL]`` then ``loader = mixdown``). Where mixdown is
not installed as a distribution (a checkout on ``PYTHONPATH``), name the
class too: ``[tool.doit.plugins.loader] mixdown = "mixdown.loader:MixdownLoader"``
(``[LOADER]`` in ``doit.cfg``). The show is ``-d DIR``, else the nearest folder
from the working directory up that holds a ``project.toml``. doit itself reads
its configuration, and so learns of the loader, from the working directory
only: in a subdirectory of a show, ``mixdown build`` (which passes doit's
arguments on) finds the show; ``doit -d DIR`` works from any folder whose
configuration names the loader.

A ``dodo.py`` beside ``project.toml`` adds the show's own tasks to the same
run (:mod:`mixdown.showtasks`); they run in the show's directory.

Every voice line, SFX and music-bed segment is a task (``voice:…``,
``sfx:…``, ``music:…``), every section's pre-mix too (``section:…``), then
``mix:…`` and ``master:…`` per script and variant. All of doit's commands
work on them; a ``section:`` task named on the command line also writes its
preview to ``build/preview/`` (``--bed``: over the music bed). For a plain ``doit`` (run,
no task names) the loader checks the cache itself and hands doit only the
assets that are missing, printing ``-- name`` for the cached ones as doit
would: doit's per-task scheduling would otherwise dominate a no-op build of
a large show (see ``benchmarks/noop.py``).

A ``run`` writes ``mixdown.lock`` when doit is done (:mod:`mixdown.actions.locking`);
with ``--frozen`` (or ``MIXDOWN_FROZEN=1``) it never does, and refuses at
load time, rendering nothing, a show whose targets or keys differ from it.

With ``--shard I/N`` (or ``MIXDOWN_SHARD=I/N``; ``mixdown build --shard``) every
command sees one shard of the show (:mod:`mixdown.plan.shards`): its renditions'
mixes, masters and deliveries and the assets and sections they use, the
assets in the shard's order whatever their kind. Its lock keeps the other
shards' entries, and ``--frozen`` holds it to its own.
"""

from __future__ import annotations

import gc
import io
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doit.cmd_base import TaskLoader2, opt_cwd
from doit.exceptions import InvalidDodoFile
from doit.loader import generate_tasks

from .actions import console, current, finish, quiet
from .actions.context import Context
from .actions.current import Beside
from .actions.tasks import beside, publish_dicts, task_dicts
from .errors import MixdownError, one_line
from .keys import read_inputs
from .plan import memo
from .plan.model import KINDS, MixPlan, Plan
from .renderers import Registry
from .settings import MANIFEST_FILE, REPORT_FILE, SHARD_ENV, SHOW_TASKS_FILE, STATE_DIR
from .store import remote
from .store.cache import Cache

if TYPE_CHECKING:
    from .plan.shards import Shard
    from .plan.spend import Budget

__all__ = ["DOIT_CONFIG", "MixdownLoader", "Show", "find_show", "load_show", "one_line"]

#: doit settings for a show: mixdown's own state file, an explicit backend,
#: threads for parallel renders (``doit -n 4``).

DOIT_CONFIG: dict[str, Any] = {
    "dep_file": f"{STATE_DIR}/doit.sqlite3",
    "backend": "sqlite3",
    "par_type": "thread",
    "verbosity": 1,
    "reporter": console.ProgressReporter,
}

#: the loader's own options, on every doit command that loads the show
OPT_FROZEN = {
    "name": "frozen",
    "long": "frozen",
    "type": bool,
    "default": False,
    "help": "fail, rendering nothing, if the build would change mixdown.lock (for CI; or MIXDOWN_FROZEN=1)",
}
OPT_MAX_COST = {
    "name": "max_cost",
    "long": "max-cost",
    "type": str,
    "default": "",
    "help": "refuse a build whose paid renders would cost more than USD, and stop paying at it "
    "(or MIXDOWN_MAX_COST)",
}
OPT_SHARD = {
    "name": "shard",
    "long": "shard",
    "type": str,
    "default": "",
    "help": "build shard I of N (I from 0: 0/4 to 3/4), a stable, disjoint 1/N of the renditions, with "
    "what they use (or MIXDOWN_SHARD)",
}

GROUP_DOCS = {
    "voice": "every voice line (text to speech)",
    "sfx": "every sound effect",
    "music": "every music-bed segment",
    "section": "every section's speech and SFX, pre-mixed (named: a preview in build/preview/)",
    "mix": "every mix (one per script and variant)",
    "master": "every mastered deliverable in build/",
    "deliver": "every extra delivery ([deliveries.NAME] presets) in build/",
    "captions": "captions (.vtt, .srt) and chapters (.chapters.json, .chapters.txt) beside each deliverable",
    "otio": "every rendition's OpenTimelineIO timeline (build/*.otio) for video editors",
}


@dataclass
class Show:
    """A loaded show: its context (project, cache, renderers) and its plan."""

    context: Context
    plan: Plan
    #: what each rendition publishes beside its deliverables, by name, as kept by the plan memo
    #: (:func:`_besides`; empty: made when asked)
    besides: dict[str, Beside] = field(default_factory=dict)


def load_show(root: str | os.PathLike[str], *, registry: Registry | None = None) -> Show:
    """Load, validate and plan the show in ``root``.

    Raises a :class:`~mixdown.errors.MixdownError` with a one-line message
    for anything wrong with the show. Writes nothing but the plan memo in
    ``.mixdown/`` (see :mod:`mixdown.plan.memo`), which is used only with the
    show's own renderers (no ``registry`` given).
    """
    root = Path(root).resolve()
    use_memo = registry is None
    registry = registry or Registry(root)
    memo_path = root / STATE_DIR / "plan.pickle"
    remembered = memo.load(memo_path, root) if use_memo else None
    inputs: set[str] = set()
    if remembered is not None:
        project, the_plan, besides = remembered
    else:
        from .plan.planner import plan
        from .show.project import load
        from .show.templates import render_scripts

        with read_inputs() as inputs:
            project = load(root, registry=registry)
            the_plan = plan(project, render_scripts(project), registry)
        besides = {}
    registry.configure(project.providers)
    cache = Cache(project.cache_dir, index=root / STATE_DIR / "cache-index.pickle")
    context = Context(project, cache, registry, remote=remote.configured(project))
    if use_memo and remembered is None:
        # What a no-op build checks of every rendition, made once with the plan and kept with it:
        # what it publishes beside (its stamps, the master's and deliveries', are cached
        # properties the planner made for the lock's fingerprint, and are kept with the plan).
        of = beside(context)
        besides = {mix.name: of(mix) for mix in the_plan.mixes}
        memo.save(memo_path, root, (project, the_plan, besides), inputs)
    return Show(context, the_plan, besides)


def _entry_points_read_once() -> None:
    """Have doit's plugin lookups share one reading of the installed packages' entry points.

    doit looks its plugins up by entry-point group four times a run (commands,
    loaders, backends, reporters), and each lookup reads the metadata of every
    installed distribution again: a few milliseconds each in an environment of
    a hundred packages, a fair part of a no-op build. The packages installed do
    not change while doit runs, so the lookups after this loader is imported
    (backends, reporters) read them once. A doit that looks its plugins up
    another way is left as it is.
    """
    from doit import plugin

    if not callable(getattr(plugin, "entry_points_impl", None)):
        return
    from importlib.metadata import entry_points

    read: list[Any] = []

    def select(*, group: str) -> Any:
        if not read:
            read.append(entry_points())
        return read[0].select(group=group)

    plugin.entry_points_impl = lambda: select


_entry_points_read_once()


class MixdownLoader(TaskLoader2):  # type: ignore[misc]  # doit ships no type hints
    """doit loader plugin for the show in the working directory (or ``-d DIR``)."""

    cmd_options = (opt_cwd, OPT_FROZEN, OPT_MAX_COST, OPT_SHARD)

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        registry: Registry | None = None,
        config: dict[str, Any] | None = None,
        shard: str = "",
    ) -> None:
        """``root``, ``registry``, extra doit ``config`` and a ``shard`` (``I/N``, as ``--shard``
        takes it, which it overrides) are for embedding; doit passes none."""
        super().__init__()
        self.root = Path(root) if root is not None else None
        self.registry = registry
        self.extra_config = dict(config or {})
        self.shard = shard
        self.show: Show | None = None
        #: the whole show's plan when a shard is built (``show.plan`` is then the shard's)
        self.whole: Plan | None = None
        self.options: dict[str, Any] = {}

    def setup(self, opt_values: dict[str, Any]) -> None:
        """Find the show directory: ``-d DIR``, else the working directory; keep the build's options."""
        if self.root is None:
            given = opt_values.get("cwdPath")
            self.root = Path(given) if given else find_show(Path.cwd())
        self.root = self.root.resolve()
        self.options = {
            "frozen": bool(opt_values.get("frozen")) or os.environ.get("MIXDOWN_FROZEN", "") not in ("", "0"),
            "max_cost": opt_values.get("max_cost") or os.environ.get("MIXDOWN_MAX_COST", ""),
            "shard": self.shard or opt_values.get("shard") or os.environ.get(SHARD_ENV, ""),
            "reporter": opt_values.get("reporter"),
            "quiet": opt_values.get("verbosity") == 0,
            "dry_run": bool(opt_values.get("dryrun")),  # doit clean -n
        }

    def load_doit_config(self) -> dict[str, Any]:
        """mixdown's doit settings, with the state file inside the show (and, for a build on a
        Dask cluster, enough of doit's threads to keep it busy: ``[executor] jobs``)."""
        assert self.root is not None
        (self.root / STATE_DIR).mkdir(exist_ok=True)
        config = {**DOIT_CONFIG, "dep_file": str(self.root / DOIT_CONFIG["dep_file"])}
        jobs = _cluster_jobs(self.root)
        if jobs is not None:
            config["num_process"] = jobs
        return {**config, **self.extra_config}

    def load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        """Build the show's tasks; a plain ``run`` gets only missing assets.

        The cyclic garbage collector is paused meanwhile: the plan and the tasks are tens of
        thousands of long-lived objects, none of them garbage, which it would otherwise walk
        again and again as they are made; they are then frozen out of its reach.
        """
        collecting = gc.isenabled()
        gc.disable()
        try:
            tasks = self._load_tasks(cmd, pos_args)
            gc.freeze()
        finally:
            if collecting:
                gc.enable()
        return tasks

    def _load_tasks(self, cmd: Any, pos_args: list[str]) -> list[Any]:
        from .actions.stopping import install

        assert self.root is not None
        install()  # doit's main thread: interrupts stop the actions on its workers cleanly too
        finish.reset()
        only_missing = cmd.name == "run" and not pos_args
        plain = only_missing and self.registry is None and not quiet.usual_way(self.options)
        if plain:
            kept = quiet.still(self.root)
            if kept is not None:  # nothing changed since a build that found nothing to do
                out = _reporting(cmd, self.options, self.extra_config.get("outfile", sys.stdout), None)
                out.write(kept.report)
                return [t for name in kept.groups for t in generate_tasks(name, _with_doc(name, []))]
        try:
            given = self.options.get("shard")
            shard = _parsed_shard(given, self.shard) if given else None
            self.show = load_show(self.root, registry=self.registry)
            self.whole = None
            if shard is not None:
                self.whole, self.show = self.show.plan, _shard_show(self.show, shard)
        except MixdownError as err:
            raise InvalidDodoFile(one_line(err)) from None
        out, report = self.extra_config.get("outfile", sys.stdout), ""
        if cmd.name == "run":
            out = _reporting(cmd, self.options, out, self.show)
            self._start_run(self.show, out, named=bool(pos_args))
        cached = self.show.context.cache.keys()
        named = _named_sections(self.show.plan, pos_args) if cmd.name == "run" else set()
        fresh = _current(self.show, self.root, cached) if only_missing else set()
        if cmd.name in ("forget", "clean"):
            current.forget(self.root)
            quiet.forget(self.root)
        if cmd.name == "clean" and not pos_args and not self.options.get("dry_run"):
            from .actions import publishing

            publishing.clean(self.show.context, lambda line: print(line, file=out))
        dicts = task_dicts(
            self.show.plan,
            self.show.context,
            cached=cached,
            only_missing=only_missing,
            previews=named,
            bed="--bed" in pos_args,
            current=fresh,
        )
        dicts |= publish_dicts(self.show.plan, self.show.context, current=fresh)
        if only_missing:
            report = _report_cached(self.show, cached, fresh)
            out.write(report)
        tasks: list[Any] = []
        for basename, items in dicts.items():
            tasks.extend(generate_tasks(basename, _with_doc(basename, items)))
        if self.whole is not None:
            tasks = _in_plan_order(tasks, self.show.plan)
        tasks = _by_rendition(tasks, self.show.plan)
        own = self._show_tasks(cmd, pos_args, tasks)
        if plain and self.whole is None and not any(dicts.values()) and not own:
            _keep_quiet(self.show, self.root, list(dicts), report)
        tasks += own
        if cmd.name == "forget" and not pos_args and getattr(cmd, "sel_tasks", None) is None:
            # doit forgets "the default tasks" when given none, and fails when a loader names
            # none: a show's default is every task, as a plain ``doit`` runs
            cmd.sel_tasks = [task.name for task in tasks if task.subtask_of is None]
        return tasks

    def _show_tasks(self, cmd: Any, pos_args: list[str], given: list[Any]) -> list[Any]:
        """The tasks of the show's own ``dodo.py`` (:mod:`mixdown.showtasks`), if it has one; doit's
        working directory is then the show's, as for any ``dodo.py``, so its relative paths hold.
        A shard's build has none: they publish the whole show, which a shard has only part of."""
        assert self.root is not None and self.show is not None
        if self.whole is not None or not (self.root / SHOW_TASKS_FILE).is_file():
            return []
        from .showtasks import load_show_tasks, mixdown_names

        os.chdir(self.root)
        found = load_show_tasks(
            self.root,
            taken=mixdown_names(self.show.plan),
            given={task.name for task in given},
            command_names=self.cmd_names,
            allow_delayed=getattr(cmd, "execute_tasks", False),
            args=pos_args,
        )
        return [] if found is None else found.tasks

    def _start_run(self, show: Show, out: Any, *, named: bool) -> None:
        """What a build (``run``) does before doit has its tasks, in this order: hold it to
        ``mixdown.lock`` or write the lock at its end; fetch what the remote cache has (a plain
        ``doit``: all at once); trim the cache at its end; price what is left to render."""
        try:
            self._lock_for_run(show)
        except MixdownError as err:
            raise InvalidDodoFile(one_line(err)) from None
        address = _cluster_address(show)
        if address is not None:
            _with_cluster(show, address, whole=not named)
        if show.context.remote is not None:
            _with_remote(show, show.context.remote, out, batch=not named)
        finish.at_finish(_publisher(show, out))
        max_size = show.context.project.cache.max_size
        if max_size is not None:
            finish.at_finish(_trimmer(show, max_size, out))
        if self.options.get("max_cost"):
            cached = show.context.cache.keys()
            show.context.budget = _budget(show, self.options["max_cost"], cached, whole=not named)

    def _lock_for_run(self, show: Show) -> None:
        """A build writes ``mixdown.lock`` when it ends; under ``--frozen`` it is held to it instead."""
        from .actions import locking

        assert self.root is not None
        if self.options.get("frozen"):
            show.context.pinned = locking.frozen(show.plan, self.root, whole=self.whole)
        else:
            finish.at_finish(locking.finisher(show.context, show.plan, whole=self.whole))


def find_show(start: Path) -> Path:
    """The show ``start`` is in: the nearest folder from ``start`` up that holds a
    ``project.toml`` (``start`` itself when none does: loading it then says what is missing)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "project.toml").is_file():
            return folder
    return start


def _reporting(cmd: Any, options: dict[str, Any], out: Any, show: Show | None) -> Any:
    """Give a build mixdown's reporters (``console``; ``json`` with its end of build and each
    deliverable's loudness, of ``show``) and return where the loader's own lines go: stderr under
    ``--reporter json`` (its stdout is one JSON document), nowhere under ``-v 0``."""
    console.configure(quiet=bool(options.get("quiet")))
    reporters = getattr(cmd, "reporters", None)
    if isinstance(reporters, dict):
        reporters.update(console=console.ProgressReporter, json=console.JsonBuildReporter)
    if options.get("reporter") == "json":
        from .actions import publishing

        assert show is not None, "a build reported in JSON loads its show"
        console.describe_with(publishing.loudness_of(show.context, show.plan))
        return sys.stderr
    console.describe_with(None)
    return io.StringIO() if options.get("quiet") else out


def _in_plan_order(tasks: list[Any], plan: Plan) -> list[Any]:
    """``tasks`` with the asset tasks first, in ``plan``'s order whatever their kind.

    doit runs a plain build's tasks in the order they are defined, a group's
    members when it reaches the group. A shard's plan puts first the shared
    assets it makes for the other shards and last those they make for it
    (:mod:`mixdown.plan.shards`): a music bed every rendition shares must not
    wait behind every voice line.
    """
    rank = {asset.task: index for index, asset in enumerate(plan.assets.values())}
    assets = sorted((t for t in tasks if t.name in rank), key=lambda t: rank[t.name])
    return assets + [t for t in tasks if t.name not in rank]


def _by_rendition(tasks: list[Any], plan: Plan) -> list[Any]:
    """``tasks`` with each rendition's pre-mixes, mix, master, deliveries, captions and
    timeline together, renditions in ``plan``'s order, after the assets and before the groups.

    doit runs them in that order as their inputs are ready. Defined kind by kind,
    a show of many short renditions pre-mixed every section, then mixed every
    rendition, then mastered each: by its master, a mix had long left the
    memory where the cache keeps what it last wrote (:data:`mixdown.store.cache.RECENT_BYTES`),
    and each master decoded its mix again. Together, a master reads the mix just
    made, and a mix its pre-mixes. The assets stay first: a show's paid renders
    are all asked for before any of its DSP.
    """
    if sum(1 for task in tasks if task.name.startswith("mix:")) < 2:
        return tasks  # a no-op's, or one rendition's: nothing to interleave (nor a plan to walk)
    by_name = {task.name: task for task in tasks}
    together: dict[str, Any] = {}
    for mix in plan.mixes:
        for name in (
            *(task for task in mix.section_tasks if task),
            f"mix:{mix.name}",
            f"master:{mix.name}",
            *(f"deliver:{mix.name}/{delivery.name}" for delivery in mix.deliveries),
            f"captions:{mix.name}",
            f"otio:{mix.name}",
        ):
            task = by_name.get(name)
            if task is not None:
                together.setdefault(name, task)
    assets = [t for t in tasks if t.name.split(":", 1)[0] in KINDS and t.name not in together]
    rest = [t for t in tasks if t.name not in together and t.name.split(":", 1)[0] not in KINDS]
    return [*assets, *together.values(), *rest]


def _parsed_shard(value: str, given: str) -> Shard:
    """The shard ``value`` (``I/N``) names; ``given`` is the loader's own (see :func:`_shard_option`)."""
    from .plan import shards

    return shards.parse(value, _shard_option(value, given))


def _shard_show(show: Show, shard: Shard) -> Show:
    """``show`` with the plan of one shard of its renditions, and what the shard shares with the
    others taken as fresh (:func:`mixdown.plan.shards.shared_keys`)."""
    from .plan import shards

    part = Show(show.context, shards.select(show.plan, shard), show.besides)
    part.context.fresh = shards.shared_keys(show.plan, shard)
    return part


def _shard_option(value: str, given: str) -> str:
    """How the shard ``value`` was given, for messages: ``--shard``, or the variable."""
    if given or os.environ.get(SHARD_ENV, "") != value:
        return "--shard"
    return f"{SHARD_ENV}="


def _trimmer(show: Show, max_size: int, out: Any) -> Any:
    """``[cache] max_size``: the finisher that trims the local cache after a build."""
    from .actions import published
    from .plan.gc import referenced, trimmer

    context, plan = show.context, show.plan

    def references() -> Any:
        return referenced(plan, context.project.root, published=published.keys(context, plan))

    return trimmer(context.cache, max_size, references, lambda line: print(line, file=out))


def _budget(show: Show, max_cost: str, cached: set[str], *, whole: bool) -> Budget:
    """The build's :class:`~mixdown.plan.spend.Budget` of ``max_cost`` dollars.

    A build of the whole show (``whole``) whose missing paid renders would cost more is
    refused here, rendering nothing; one of named targets is held to it render by render.
    """
    from .plan.spend import Budget, estimate, parse_budget, unpriced, usd

    try:
        limit = parse_budget(max_cost, "--max-cost (or MIXDOWN_MAX_COST)")
        if whole:
            missing = (a for a in show.plan.assets.values() if a.key not in cached)
            priced = estimate(show.context.project, show.context.registry, missing)
            for item in priced:
                if item.usd is None:
                    raise MixdownError(unpriced(item))
            total = sum(item.usd or 0.0 for item in priced)
            if total > limit + 1e-9:
                raise MixdownError(
                    f"--max-cost {usd(limit)}: the {len(priced)} paid renders this build needs would cost "
                    f"{usd(total)}; nothing was rendered: raise the budget, or build fewer targets "
                    "(`mixdown plan` lists them)"
                )
    except MixdownError as err:
        raise InvalidDodoFile(one_line(err)) from None
    return Budget(limit)


def _publisher(show: Show, out: Any) -> Any:
    """The end-of-build step that writes the manifest and report
    (:func:`mixdown.actions.publishing.write`), imported only when a build ends."""

    def publish(ran: list[str]) -> None:
        from .actions import publishing

        publishing.write(show.context, show.plan, ran, lambda line: print(line, file=out))

    return publish


def _cluster_jobs(root: Path) -> int | None:
    """doit's threads for a build on a Dask cluster: ``[executor] jobs``, or
    :data:`~mixdown.settings.DASK_JOBS`; None without a cluster. Read before the show is
    loaded (doit takes its settings first): what is wrong here is said when the show loads."""
    from .settings import DASK_ENV as ENV
    from .settings import DASK_JOBS as JOBS

    try:
        text = (root / "project.toml").read_text("utf-8")
    except (OSError, ValueError):
        return None
    if "executor" not in text and not os.environ.get(ENV):  # no cluster, and no need to parse it
        return None
    import tomllib

    try:
        table = tomllib.loads(text).get("executor", {})
    except ValueError:
        return None
    if not isinstance(table, dict) or not (os.environ.get(ENV) or table.get("dask")):
        return None
    jobs = table.get("jobs", JOBS)
    return jobs if isinstance(jobs, int) and not isinstance(jobs, bool) and jobs > 0 else JOBS


def _cluster_address(show: Show) -> str | None:
    """The Dask scheduler the build's actions run on (``MIXDOWN_DASK`` over ``[executor] dask``)."""
    from .settings import DASK_ENV as ENV
    from .show.tables import dask_address_problem

    address = os.environ.get(ENV) or show.context.project.executor.dask
    if address and address == os.environ.get(ENV):
        problem = dask_address_problem(address)
        if problem is not None:
            raise InvalidDodoFile(f"{ENV}: {problem}")
    return address or None


def _with_cluster(show: Show, address: str, *, whole: bool = False) -> None:
    """Hand the build's actions to the Dask cluster at ``address``: its workers share everything
    through the remote cache, which the build then needs (and shares every kind of object to)."""
    from .actions.cluster import ENV, Executor

    context = show.context
    if context.remote is None:
        raise InvalidDodoFile(
            f"[executor] dask (or {ENV}): the Dask workers share the build through the remote cache, "
            "and this show has none: set [cache] remote (or MIXDOWN_REMOTE) to a location every "
            "worker can reach, such as s3://bucket/mixdown"
        )
    context.remote = remote.Remote(context.remote.url, share="all", required=True)
    executor = Executor(address, context.remote, context.project, show.plan, context.cache, whole=whole)
    context.executor = executor
    finish.at_finish(lambda ran: executor.close())


def _with_remote(show: Show, remote: remote.Remote, out: Any, *, batch: bool) -> None:
    """Set up a build's remote cache: its uploads drained at the end and, for a plain ``doit``
    (``batch``), everything the plan lacks fetched at once first (one line of counts)."""
    from .actions import shared

    finish.at_finish(shared.finisher(remote))
    if not batch:
        return
    try:
        found = shared.prefetch(remote, show.context.cache, show.plan)
    except MixdownError as err:
        raise InvalidDodoFile(one_line(err)) from None
    if found is not None:
        out.write(found.line + "\n")


def _with_doc(basename: str, items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield {"name": None, "doc": GROUP_DOCS[basename]}
    yield from items


def _keep_quiet(show: Show, root: Path, groups: list[str], report: str) -> None:
    """For a plain build that hands doit nothing to do: the end-of-build step, run after the
    others, that keeps what it relied on for the next (:mod:`mixdown.actions.quiet`). Not for a
    show with a remote cache, a cluster or a cache size to keep, nor one whose ``dodo.py`` has
    tasks: their builds go the usual way."""
    context = show.context
    if (
        context.remote is not None
        or context.executor is not None
        or context.project.cache.max_size is not None
    ):
        return
    plan, besides = show.plan, _besides(show)

    def keep(ran: list[str]) -> None:
        if any(":" in name for name in ran):  # a task ran after all (doit's groups always "run")
            return
        from .actions.locking import FINGERPRINT
        from .plan.lock import FILENAME as LOCKFILE

        state, build = root / STATE_DIR, context.project.build_dir
        # and the show's dodo.py, which had no task: one with tasks goes the usual way
        ends = [root / LOCKFILE, state / FINGERPRINT, state / current.FILENAME, root / SHOW_TASKS_FILE]
        ends += [build / MANIFEST_FILE, build / REPORT_FILE]
        published = (p for mix in plan.mixes for p in current.files_of(mix, besides(mix)))
        keys = [*plan.assets, *plan.sections, *(mix.key for mix in plan.mixes)]
        quiet.record(root, context.cache, keys, published, ends, groups, report)

    finish.at_finish(keep)


def _report_cached(show: Show, cached: set[str], fresh: set[str]) -> str:
    """``-- name`` for assets and sections found in the cache, and for the mixes, masters and
    deliveries of the renditions left out as current, as doit prints it for up-to-date tasks."""
    plan, besides = show.plan, _besides(show)
    lines = [f"-- {a.task}\n" for a in plan.assets.values() if a.key in cached]
    lines += [f"-- {s.task}\n" for s in plan.sections.values() if s.key in cached]
    for mix in plan.mixes:
        if mix.name in fresh:
            lines += [f"-- mix:{mix.name}\n", f"-- master:{mix.name}\n"]
            lines += [f"-- deliver:{mix.name}/{d.name}\n" for d in mix.deliveries]
            lines += [f"-- {task}\n" for task in besides(mix).tasks]
    return "".join(lines)


def _besides(show: Show) -> Callable[[MixPlan], Beside]:
    """What each rendition publishes beside its deliverables: as the plan memo kept it, else made
    (:func:`mixdown.actions.tasks.beside`)."""

    def of(mix: MixPlan) -> Beside:
        kept = show.besides.get(mix.name)
        return kept if kept is not None else beside(show.context)(mix)

    return of


def _current(show: Show, root: Path, cached: set[str]) -> set[str]:
    """The renditions a plain build leaves out as current, with the step that records them
    when it ends (:mod:`mixdown.actions.current`)."""
    besides = _besides(show)
    fresh = current.current(show.plan, root, cached, besides)
    recorder = current.recorder(show.plan, root, fresh, besides)
    finish.at_finish(lambda ran: recorder(finish.done()))
    return fresh


def _named_sections(plan: Plan, pos_args: list[str]) -> set[str]:
    """The ``section:`` tasks named on the command line (by name, doit's ``*`` pattern, or the
    whole ``section`` group): they write their previews."""
    from fnmatch import fnmatchcase

    words = [arg for arg in pos_args if not arg.startswith("-")]
    if "section" in words:
        return {s.task for s in plan.sections.values()}
    patterns = [w for w in words if w.startswith("section:")]
    return {s.task for s in plan.sections.values() if any(fnmatchcase(s.task, p) for p in patterns)}
