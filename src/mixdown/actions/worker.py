"""A cluster worker's side of a build (:mod:`mixdown.actions.cluster`): one job at a time.

A job runs the very action a local build runs, on a worker's own cache (in
the Dask worker's local directory, kept while the worker lives) with the
remote cache: :func:`work` fetches the job's inputs in one batch, runs the
action (which asks the remote before it makes anything, as every build's
actions do) and waits for its uploads before it answers. A master or
delivery writes its files into a scratch copy of the show's layout,
from where they are uploaded to the remote (with ``share = "all"``, as
:mod:`mixdown.actions.shipments` shares them) and then removed.

The show's files (its own renderers, media files) must be at the same
path on every worker as on the machine running ``doit``: a shared volume,
or the same checkout in the workers' image. What an action prints comes
back with the :class:`~mixdown.actions.cluster.Outcome`, for that machine's
console.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import MixdownError
from ..plan.model import MixPlan
from ..renderers import Registry
from ..show.project import Project
from ..store.cache import Cache
from ..store.remote import Remote, Wanted
from .context import Context

__all__ = ["Job", "Outcome", "keep_heap", "share_provider_limits", "work"]


class Job(NamedTuple):
    """One action for a worker: what it does, to what, and what it reads from the remote first."""

    kind: str  # "render", "section", "mix", "master" or "deliver"
    item: Any  # an Asset, (MixPlan, section index), a MixPlan, or (MixPlan, delivery name)
    target: str  # the doit task, for messages
    inputs: tuple[Wanted, ...]  # the objects the action reads, fetched before it runs
    remote: str  # the remote cache's URL (a worker may not have MIXDOWN_REMOTE set)
    #: a mix's: the assets it renders first, a listener's own lines (see cluster._rendered_with_its_mix)
    renders: tuple[Any, ...] = ()


class Outcome(NamedTuple):
    """What a job did: the lines it printed, and its one-line failure (None when it succeeded)."""

    out: str
    err: str
    error: str | None
    worker: str  # its name, for messages
    address: str  # where the objects it made are now in a worker's cache ("" outside a worker)


#: the environment variable that bounds a worker's cache (a size, as ``[cache] max_size`` takes)
SIZE_ENV = "MIXDOWN_WORKER_CACHE_SIZE"
DEFAULT_SIZE = "20GB"
#: a worker's cache is trimmed after this many jobs at most (a trim lists the whole cache)...
TRIM_EVERY = 20
#: ...or, while it is far below its size, when twice the growth seen so far could fill it
#: (but after this many jobs at the latest: a worker may go on to a show of longer programmes)
TRIM_AT_LATEST = 1000

_places: dict[str, _Place] = {}
_jobs = 0
_listed = (0, 0)  # the jobs done, and the bytes left in the cache, at its last trim
_next_trim: int | None = None  # the job after which it is trimmed next (None: TRIM_EVERY's)
_guard = threading.Lock()
_local = threading.local()


class _Place(NamedTuple):
    """What a worker keeps for a show between its jobs."""

    cache: Cache
    registry: Registry
    remote: Remote  # the connection each job's own Remote joins
    scratch: Path


def work(project: Project, job: Job) -> Outcome:
    """Run ``job`` of ``project``'s build here; what it printed, and its failure if it failed."""
    name, address = _worker_name()
    _route_output()
    with _captured() as said:
        error: str | None = None
        try:
            _run(project, job, name)
        except MixdownError as err:
            error = str(err)
    return Outcome(said.out.getvalue(), said.err.getvalue(), error, name, address)


def _run(project: Project, job: Job, name: str) -> None:
    if not (project.root / "project.toml").is_file():
        raise MixdownError(
            f"{job.target}: Dask worker {name} has no show at {project.root}: give every worker the "
            "show's files at the same path (a shared volume, or the same checkout in its image)"
        )
    place = _place(project, job.remote)
    remote = place.remote.joined(share="all")
    try:
        if job.inputs:
            remote.fetch(place.cache, list(job.inputs))
        with _paid_once(job):
            _action(job, place, remote, project, name)
            _uploaded(remote, name)
    finally:
        remote.drain()
        remote.close()
    _trimmed(place)


def _paid_once(job: Job) -> ExitStack:
    """The cluster's locks (:func:`_render_lock`) of what ``job`` renders: a render's asset, or
    the lines a mix renders first; held until the job's uploads are done. Other jobs take none."""
    keys = [job.item.key] if job.kind == "render" else [asset.key for asset in job.renders]
    held = ExitStack()
    for key in keys:
        held.enter_context(_render_lock(key))
    return held


def _render_lock(key: str) -> Any:
    """On a Dask worker, the cluster's lock of the asset ``key``, held until what the job made is
    uploaded, so that two builds sharing the cluster never pay for one line twice (the second
    finds it on the remote; the lock's lease lapses if its worker dies); outside a worker, none."""
    try:
        from distributed import Lock, get_worker

        get_worker()
    except (ImportError, ValueError):
        return nullcontext()
    return Lock(f"mixdown-render-{key}")  # type: ignore[no-untyped-call]


def _trimmed(place: _Place) -> None:
    """Now and then, trim the worker's cache to ``MIXDOWN_WORKER_CACHE_SIZE`` (least recently
    used first): everything in it is on the remote, and a night's build passes thousands of
    mixes through it. A trim lists the whole cache, so it comes every :data:`TRIM_EVERY` jobs
    only near the size: further below it, when the cache could reach it growing twice as
    fast a job as it did since the last trim (and after :data:`TRIM_AT_LATEST` jobs at most).
    Listing a cache of 10,000 files every 20 jobs cost a night's worker seconds."""
    from ..plan.gc import References, trimmed
    from ..show.tables import parse_size

    global _jobs, _listed, _next_trim
    with _guard:
        _jobs += 1
        if _jobs < (TRIM_EVERY if _next_trim is None else _next_trim):
            return
    limit = parse_size(os.environ.get(SIZE_ENV) or DEFAULT_SIZE, SIZE_ENV)
    grown, left, _ = trimmed(place.cache, References(frozenset(), ("the cluster's jobs",)), limit)
    with _guard:
        (jobs, before), _listed = _listed, (_jobs, left)
        _next_trim = _jobs + _jobs_to_fill(limit - left, max(0, grown - before) / max(1, _jobs - jobs))


def _jobs_to_fill(room: int, growth: float) -> int:
    """Jobs until the next trim: until ``room`` bytes are filled at twice ``growth`` a job,
    between :data:`TRIM_EVERY` and :data:`TRIM_AT_LATEST`."""
    if growth <= 0:
        return TRIM_EVERY if room <= 0 else TRIM_AT_LATEST
    return int(min(max(room / (2 * growth), TRIM_EVERY), TRIM_AT_LATEST))


def _uploaded(remote: Remote, name: str) -> None:
    """Wait for the job's uploads; raise the first that failed (the job's result is not shared)."""
    done = remote.drain()
    if done.failed:
        raise MixdownError(f"{done.failed[0]} (on Dask worker {name})")


def _action(job: Job, place: _Place, remote: Remote, project: Project, name: str) -> None:
    """Run the action ``job`` names, as a local build's doit task would."""
    from .deliver import publish_delivery
    from .master import publish_master
    from .mix import mix_once
    from .render import render_once
    from .section import premix_once

    context = Context(project, place.cache, place.registry, remote=remote)
    if job.kind == "render":
        render_once(context, job.item)
    elif job.kind == "section":
        premix_once(context, *job.item)
    elif job.kind == "mix":
        for i, asset in enumerate(job.renders):  # a listener's own lines, which only this mix reads
            if i:
                # the line before on the remote before the next is paid for: a worker lost in
                # one render loses none of the job's renders before it, which the job run
                # again elsewhere would pay for again (the last goes up as the mix is made)
                _uploaded(remote, name)
            render_once(context, asset)
        mix_once(context, job.item)
    else:
        with tempfile.TemporaryDirectory(dir=place.scratch, prefix="show-") as scratch:
            moved, plan = _moved(project, job, Path(scratch))
            context = Context(moved, place.cache, place.registry, remote=remote)
            if job.kind == "master":
                publish_master(context, plan)
            else:
                publish_delivery(context, (plan, job.item[1]))
            _uploaded(remote, name)  # the files go up before the scratch copy goes


def _moved(project: Project, job: Job, scratch: Path) -> tuple[Project, MixPlan]:
    """``project`` and the job's rendition with their ``build/`` (and the show's state)
    under ``scratch``: the files a worker writes are uploaded from there."""
    plan: MixPlan = job.item if job.kind == "master" else job.item[0]
    root = project.root

    def move(path: Path) -> Path:
        return scratch / path.relative_to(root)

    moved = dataclasses.replace(project, root=scratch, build_dir=move(project.build_dir))
    deliveries = [d._replace(files=[move(p) for p in d.files]) for d in plan.deliveries]
    return moved, dataclasses.replace(plan, outputs=[move(p) for p in plan.outputs], deliveries=deliveries)


def _place(project: Project, url: str) -> _Place:
    """This worker's cache, renderers and remote connection for ``project`` (made once)."""
    providers = json.dumps(project.providers, sort_keys=True, default=str)
    name = hashlib.sha256(f"{project.root}\n{url}\n{providers}".encode()).hexdigest()[:16]
    with _guard:
        found = _places.get(name)
        if found is None:
            scratch = _local_directory() / "mixdown" / name
            scratch.mkdir(parents=True, exist_ok=True)
            keep_heap()
            share_provider_limits()
            registry = Registry(project.root)
            registry.configure(project.providers)
            found = _Place(
                Cache(scratch / "cache"), registry, Remote(url, share="all", required=True), scratch
            )
            _places[name] = found
        return found


#: glibc's mallopt parameters (malloc.h), and what a worker's heap is set to (see :func:`keep_heap`)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_MMAP_THRESHOLD = 32 << 20  # blocks and their temporaries (a few MB) come from the heap
HEAP_TRIM_THRESHOLD = 128 << 20  # what a worker keeps of the heap's freed top, at most


def keep_heap() -> bool:
    """Undo, for the actions, what a Dask worker's ``MALLOC_TRIM_THRESHOLD_`` costs them.

    Dask's nanny starts each worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (its
    ``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to
    the system. Setting it also fixes glibc's mmap threshold at 128 KiB: every
    block a mix or master allocates (a few hundred KB to a few MB, several
    temporaries each) is then a fresh ``mmap``, faulted in page by page and
    unmapped when freed. A 20 s master cost a worker 1.5 times the CPU it costs
    a local build. With the thresholds set here, blocks are reused from the
    heap, and no more than :data:`HEAP_TRIM_THRESHOLD` of freed memory is kept.

    Only where the variable is set (a process started without it keeps glibc's
    adaptive threshold) and the C library has ``mallopt`` (glibc); True if set.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(
        mallopt(M_MMAP_THRESHOLD, HEAP_MMAP_THRESHOLD) and mallopt(M_TRIM_THRESHOLD, HEAP_TRIM_THRESHOLD)
    )


def share_provider_limits() -> None:
    """On a Dask worker, each provider's ``concurrency`` is the whole cluster's: a
    :class:`distributed.Semaphore` on the scheduler, not one per worker process."""
    try:
        from distributed import Semaphore, get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    from ..renderers.cloud import http

    def cluster_wide(name: str, size: int) -> Any:
        return Semaphore(max_leases=size, name=f"mixdown-{name}-{size}")  # type: ignore[no-untyped-call]

    http.share_limits(cluster_wide)


def _local_directory() -> Path:
    """The Dask worker's own scratch directory (removed with the worker), else a temporary one."""
    try:
        from distributed import get_worker

        return Path(get_worker().local_directory)
    except (ImportError, ValueError):
        return Path(tempfile.gettempdir())


def _worker_name() -> tuple[str, str]:
    """The Dask worker's name and address."""
    try:
        from distributed import get_worker

        worker = get_worker()
        return str(worker.name), str(worker.address)
    except (ImportError, ValueError):
        return "?", ""


class _Said(NamedTuple):
    out: io.StringIO
    err: io.StringIO


@contextmanager
def _captured() -> Iterator[_Said]:
    """What this thread prints, kept for the machine running ``doit``."""
    said = _Said(io.StringIO(), io.StringIO())
    _local.said = said
    try:
        yield said
    finally:
        _local.said = None


class _Routed(io.TextIOBase):
    """``sys.stdout`` (or ``stderr``) of a worker: a thread running a job prints into the job's
    :class:`Outcome`; every other thread (the worker's own) to the stream as before."""

    def __init__(self, inner: Any, which: str) -> None:
        self.inner, self.which = inner, which

    def write(self, text: str) -> int:
        said = getattr(_local, "said", None)
        if said is None:
            return int(self.inner.write(text))
        return getattr(said, self.which).write(text)  # type: ignore[no-any-return]

    def flush(self) -> None:
        said = getattr(_local, "said", None)
        if said is None:
            self.inner.flush()

    def isatty(self) -> bool:
        return False


def _route_output() -> None:
    """Install the routing streams once per worker process."""
    with _guard:
        if not isinstance(sys.stdout, _Routed):
            sys.stdout = _Routed(sys.stdout, "out")
        if not isinstance(sys.stderr, _Routed):
            sys.stderr = _Routed(sys.stderr, "err")
