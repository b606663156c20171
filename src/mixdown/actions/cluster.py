"""A build's actions on a Dask cluster: ``[executor] dask`` (or ``MIXDOWN_DASK``).

doit stays the planner, on the machine that runs it. Its threads hand each
render, pre-mix, mix, master and delivery to the cluster as a :class:`Job`
and wait for it; nothing but the job (a plan item, the names of its inputs)
and a short :class:`Outcome` (the lines the action printed) goes through the
scheduler. Audio travels through the remote cache: a worker fetches what the
action reads, runs the very action a local build runs
(:mod:`mixdown.actions.worker`), and uploads what it made before it answers,
every kind of object, as with ``[cache] share = "all"``. This machine then
fetches the result into its own cache and ``build/`` as it would another
build's, so the cache, ``build/`` and ``mixdown.lock`` end as a local build
leaves them. Objects this machine made before it had a cluster are pushed to
the remote before the first job: a worker finds every input there.

A paid render happens once. doit makes one job per key; a worker renders
under the cluster's lock of the key (a ``distributed.Lock``, held until the
take is uploaded) and asks the remote first, so two builds sharing the
cluster never pay twice for a line; and a job lost with its worker is run
again elsewhere by Dask, finding on the remote whatever the lost worker had
uploaded.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from typing import Any

from ..errors import MixdownError
from ..plan.model import Asset, MixPlan, Plan
from ..settings import DASK_ENV, DASK_JOBS
from ..store.backends import RemoteUnavailable
from ..store.cache import Cache
from ..store.remote import Remote, Wanted
from . import shipments
from .context import Context, once, reported
from .section import SectionJob, build_section, premix_once
from .shared import asset_wanted, fetched, mix_wanted, section_wanted
from .stopping import Interrupted
from .worker import Job, Outcome, work

__all__ = [
    "ENV",
    "Executor",
    "Job",
    "Outcome",
    "cluster_deliver",
    "cluster_master",
    "cluster_mix",
    "cluster_render",
    "cluster_section",
]

ENV = DASK_ENV  # the environment variable that names the scheduler (mixdown.settings)
JOBS = DASK_JOBS  # actions in flight at once when neither [executor] jobs nor doit -n says
#: Dask settings for the workers of a cluster mixdown starts (``local``): no statistical profiler
#: sampling every thread's stack every 10 ms, which costs a job's worth of CPU every few jobs
QUIET_WORKERS = {"distributed.worker.profile.enabled": False}
#: how often a waiting doit thread looks up from its job (to stop when the build is interrupted)
POLL_SECONDS = 0.5


class Executor:
    """The build's connection to a Dask cluster, made when the first job is handed over."""

    def __init__(
        self, address: str, remote: Remote, project: Any, plan: Plan, cache: Cache, *, whole: bool = False
    ) -> None:
        """``remote`` is the build's remote cache (sharing every kind); ``plan``, what it builds;
        ``cache``, this machine's; ``whole``, whether the build makes the whole show."""
        self.address, self.remote, self.project, self.plan = address, remote, project, plan
        self.cache = cache
        self._guard = threading.Lock()
        self._client: Any = None
        self._cluster: Any = None
        self._project: Any = None  # the project, scattered to the workers once
        #: this build's part of its jobs' keys: another build's jobs for the same objects are other
        #: tasks (a render's paid once by a lock on the cluster: :mod:`mixdown.actions.worker`)
        self._build = uuid.uuid4().hex[:12]
        #: the worker whose cache holds each object a job made: what reads it goes there if it can
        self._where: dict[str, str] = {}
        self._users: Counter[str] | None = None  # renditions using each section pre-mix
        self._sections: dict[str, tuple[MixPlan, int] | None] | None = None  # see section_of
        #: a build of the whole show (no target named): a mix job renders its listener's own lines
        self.whole = whole

    def users(self, key: str) -> int:
        """How many of the plan's renditions use the section pre-mix ``key``."""
        with self._guard:
            if self._users is None:
                self._users = Counter(k for mix in self.plan.mixes for k in set(mix.section_keys) if k)
            return self._users[key]

    def section_of(self, key: str) -> tuple[MixPlan, int] | None:
        """The rendition and index of the one section that uses the asset ``key``, or None when
        it is used by more sections, or by a mix itself (a music bed)."""
        with self._guard:
            if self._sections is None:
                mixes, assets = {mix.name: mix for mix in self.plan.mixes}, self.plan.assets
                found: dict[str, tuple[MixPlan, int] | None] = {}
                for section in self.plan.sections.values():
                    for used in set(section.assets):
                        alone = used not in found and used in assets and assets[used].kind != "music"
                        found[used] = (mixes[section.mix], section.index) if alone else None
                self._sections = found
            return self._sections.get(key)

    def __repr__(self) -> str:
        return f"Executor({self.address!r})"

    def client(self) -> Any:
        """The Dask client (connecting, or starting a local cluster, on first use)."""
        with self._guard:
            if self._client is None:
                _push(self)  # before the first job: a build with nothing to do contacts nothing
                self._client, self._cluster = _connect(self.address)
                self._project = self._client.scatter(self.project, broadcast=True, hash=False)
            return self._client

    def run(self, job: Job, near: Sequence[str] = ()) -> None:
        """Run ``job`` on the cluster and wait; replay what it printed; raise its failure.

        It goes, if that worker is free, where the first object of ``near`` that a job made is
        in a worker's cache (saving the worker a download of its inputs).
        """
        client = self.client()
        there = next((self._where[key] for key in near if key in self._where), None)
        placed = {"workers": [there], "allow_other_workers": True} if there else {}
        key = f"{_dask_key(job)}-{self._build}"
        try:
            project = self._project
            try:
                outcome = self._waited(client.submit(work, project, job, key=key, pure=False, **placed))
            except Exception as err:
                if not self._scattered_again(project, err):
                    raise
                again = f"{key}-again"  # the dropped job's key may not be forgotten yet
                outcome = self._waited(
                    client.submit(work, self._project, job, key=again, pure=False, **placed)
                )
        except Exception as err:
            line = _lost(job, self.address, err)
            if line is None:
                raise
            raise MixdownError(line) from None
        if outcome.out:
            sys.stdout.write(outcome.out)
        if outcome.err:
            sys.stderr.write(outcome.err)
        if outcome.error is not None:
            raise MixdownError(outcome.error)
        made = _made_key(job)
        if made is not None and outcome.address:
            self._where[made] = outcome.address

    def _waited(self, future: Any) -> Outcome:
        """The outcome of a job's ``future``, waited for (and cancelled if the build stops)."""
        from .stopping import check

        done = threading.Event()
        future.add_done_callback(lambda _: done.set())
        try:
            while not done.wait(POLL_SECONDS):
                check()
            outcome: Outcome = future.result()
            return outcome
        except Interrupted:
            future.cancel()
            raise
        finally:
            future.release()

    def _scattered_again(self, project: Any, err: BaseException) -> bool:
        """Whether the scheduler dropped a job because the project it was scattered was lost
        (every worker holding it died), and the project is now scattered again for its retry."""
        from concurrent.futures import CancelledError

        if not isinstance(err, CancelledError) or project.status == "finished":
            return False
        with self._guard:
            if self._project is project:  # not scattered again by another thread meanwhile
                self._project = self._client.scatter(self.project, broadcast=True, hash=False)
        return True

    def close(self) -> None:
        """Disconnect (and stop the local cluster, if this build started one)."""
        with self._guard:
            client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _dask_key(job: Job) -> str:
    """The job's key on the scheduler: its kind and the content key of what it makes (and the
    build's own token)."""
    item = job.item
    if job.kind == "render":
        return f"mixdown-render-{item.key}"
    if job.kind == "section":
        mix, index = item
        return f"mixdown-section-{mix.section_keys[index]}"
    if job.kind == "mix":
        return f"mixdown-mix-{item.key}"
    if job.kind == "master":
        return f"mixdown-master-{shipments.shipment(item).key}"
    mix, name = item
    return f"mixdown-deliver-{shipments.shipment(mix, name).key}"


def _made_key(job: Job) -> str | None:
    """The content key of the cache object ``job`` makes (a delivery makes none)."""
    item = job.item
    if job.kind == "section":
        mix, index = item
        return str(mix.section_keys[index])
    if job.kind == "master":
        return str(item.master_key)
    return None if job.kind == "deliver" else str(item.key)


def _connect(address: str) -> tuple[Any, Any]:
    """A client of the scheduler at ``address`` (with ``local``, of a cluster started here)."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise MixdownError(
            "[executor] dask needs the distributed package, which is not installed: "
            "pip install 'mixdown[dask]'"
        ) from None
    cluster = None
    try:
        if address == "local":
            import dask

            with dask.config.set(QUIET_WORKERS):
                cluster = LocalCluster(  # type: ignore[no-untyped-call]
                    n_workers=os.cpu_count() or 1,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            return Client(cluster, set_as_default=False), cluster  # type: ignore[no-untyped-call]
        return Client(address, set_as_default=False, timeout=30), None  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as err:
        if cluster is not None:
            cluster.close()
        why = " ".join(str(err).split()) or type(err).__name__
        raise MixdownError(
            f"Dask scheduler {address} cannot be reached ({why}): start it, or unset {ENV} "
            "and [executor] dask to build on this machine"
        ) from None


def _lost(job: Job, address: str, err: BaseException) -> str | None:
    """The one line for a job the cluster lost, with what to do (None: not lost, but a failure)."""
    name = type(err).__name__
    if name == "KilledWorker":
        return (
            f"{job.target}: the Dask workers that ran it died ({err}); whatever they had made "
            "is on the remote cache: look at the workers' logs (memory?), then run the build again"
        )
    from concurrent.futures import CancelledError

    if isinstance(err, CancelledError):  # distributed's FutureCancelledError too
        return (
            f"{job.target}: the Dask scheduler {address} dropped the job: check it, then run the build again"
        )
    return None


# -- the doit actions -------------------------------------------------------------------------


def cluster_render(context: Context, asset: Asset) -> Any:
    """doit action: render one asset on the cluster, unless a cache already holds it."""
    return reported(_render, context, asset, asset.task)


def _render(context: Context, asset: Asset) -> None:
    from .render import release, reserve

    if _rendered_with_its_mix(context, asset):
        return  # the job of its rendition's mix renders it, and this machine fetches it then

    def make() -> None:
        cost = reserve(context, asset)  # on this machine: the budget is the build's
        try:
            _made_there(context, asset_wanted(asset), Job("render", asset, asset.task, (), ""))
        except BaseException:
            release(context, cost)
            raise
        _pinned(context, asset)

    once(context, asset.key, asset.task, "rendering", lambda: asset.key in context.cache, make)


def cluster_section(context: Context, job: SectionJob, bed: bool = False) -> Any:
    """doit action: a section's pre-mix on the cluster; a named one (its preview) here."""
    if job.preview:
        return build_section(context, job, bed)
    return reported(_section, context, job, job.mix.section_task(job.index))


def _section(context: Context, job: SectionJob) -> None:
    mix, index = job.mix, job.index
    if _with_its_mix(context, mix, index):
        return  # the job of its rendition's mix pre-mixes it, and this machine fetches it then

    def made(wanted: Wanted) -> None:
        executor = _executor(context)
        inputs = tuple(_asset_inputs(executor, executor.plan.sections[wanted.key].assets))
        _made_there(context, wanted, Job("section", (mix, index), wanted.target, inputs, ""))

    premix_once(context, mix, index, made)


def _with_its_mix(context: Context, mix: MixPlan, index: int) -> bool:
    """Whether section ``index`` of ``mix`` is pre-mixed by the mix's own job rather than a job
    of its own: a section only this rendition uses (a listener's own lines), whose mix is
    still to be made. The mix's worker has the section's lines (its job fetches them) and
    pre-mixes it as a local mix does a pre-mix it lacks, uploading it; a job for it alone
    would cost a round trip through the scheduler, an upload and a download more."""
    key = mix.section_keys[index]
    if key is None or key in context.cache or mix.key in context.cache:
        return False  # nothing to make, or no mix job to make it (the mix is here already)
    return _single_use(context, key)


def _single_use(context: Context, key: str) -> bool:
    """Whether only one rendition uses the section pre-mix ``key``: one of the plan's, and of no
    other shard's (a shard's plan is its part of the show's; ``context.fresh`` holds what
    other shards use too)."""
    return key not in context.fresh and _executor(context).users(key) == 1


def _rendered_with_its_mix(context: Context, asset: Asset) -> bool:
    """Whether ``asset`` is rendered by the job of its rendition's mix rather than a job of its
    own: in a build of the whole show, an asset of one section only (a listener's own line),
    which that mix's job pre-mixes (:func:`_with_its_mix`). A job of its own would cost a
    round trip through the scheduler, a lock on it, an upload and a download more: three of a
    listener's five jobs were such renders. A build of named targets renders each asset in
    a job of its own (``doit voice:…`` runs no mix)."""
    executor = _executor(context)
    if not executor.whole or asset.key in context.cache or asset.key in context.fresh:
        return False
    found = executor.section_of(asset.key)
    if found is None:
        return False
    mix, index = found
    return _with_its_mix(context, mix, index)


def _own_renders(context: Context, plan: MixPlan) -> list[Asset]:
    """The assets ``plan``'s mix job renders (:func:`_rendered_with_its_mix`)."""
    assets = _executor(context).plan.assets
    return [
        assets[key] for key in plan.assets if key in assets and _rendered_with_its_mix(context, assets[key])
    ]


def _own_sections(context: Context, plan: MixPlan) -> list[Wanted]:
    """The pre-mixes ``plan``'s mix job makes (:func:`_with_its_mix`) that this machine lacks."""
    cache = context.cache
    return [
        section_wanted(key, plan.section_task(index))
        for index, key in enumerate(plan.section_keys)
        if key is not None and key not in cache and _single_use(context, key)
    ]


def cluster_mix(context: Context, plan: MixPlan) -> Any:
    """doit action: mix one rendition on the cluster."""
    return reported(_mix, context, plan, f"mix:{plan.name}")


def _mix(context: Context, plan: MixPlan) -> None:
    from .render import release, reserve

    target = f"mix:{plan.name}"
    executor = _executor(context)
    renders = _own_renders(context, plan)  # rendered by this job first: fetched after it
    own = _own_sections(context, plan)  # pre-mixed by this job: fetched after it, with the mix
    made = {w.key for w in own} | {a.key for a in renders}
    laid_out = [k for k in _laid_out(context, plan) if k not in made]  # the lines it pre-mixes
    inputs = (*(w for w in _section_inputs(plan) if w.key not in made), *_asset_inputs(executor, laid_out))
    job = Job("mix", plan, target, inputs, "", tuple(renders))
    near = [k for k in plan.section_keys[::-1] if k and k not in made] + laid_out[::-1]
    made_too = [*(asset_wanted(asset) for asset in renders), *own]
    costs: dict[str, float] = {}  # on this machine: the budget is the build's
    try:
        for asset in renders:
            costs[asset.key] = reserve(context, asset)
        once(
            context, plan.key, target, "mixing", lambda: plan.key in context.cache,
            lambda: _made_there(context, mix_wanted(plan), job, near),
        )  # fmt: skip
    except BaseException as err:
        if not isinstance(err, Interrupted | KeyboardInterrupt):  # what the job made before it failed
            with suppress(MixdownError, OSError):  # (the failure is what is reported)
                _fetch_made(context, made_too)
        for asset in renders:  # a line the job did not make was not paid for
            if asset.key not in context.cache:
                release(context, costs.get(asset.key, 0.0))
        raise
    _fetch_made(context, made_too)  # this machine's cache holds every line and pre-mix
    for asset in renders:
        if asset.key in context.cache:
            _pinned(context, asset)


def _pinned(context: Context, asset: Asset) -> None:
    """Under ``--frozen``, hold the take of ``asset`` this machine now has to ``mixdown.lock``."""
    from .locking import check_pinned

    if context.pinned is not None:
        check_pinned(context, asset.task, asset.key, sha256=str(context.cache.meta(asset.key)["sha256"]))


def _fetch_made(context: Context, wanted: list[Wanted]) -> None:
    """Fetch ``wanted``, made by a job since the build began, into this machine's cache (one
    missing is made by a job of its own next time)."""
    if not wanted:
        return
    remote = _executor(context).remote
    _made_since(remote, wanted)
    try:
        remote.fetch(context.cache, wanted)
    except RemoteUnavailable as err:
        remote.warn(err)


def cluster_master(context: Context, plan: MixPlan) -> Any:
    """doit action: master one rendition on the cluster; its files come to ``build/`` here."""
    return reported(_master, context, plan, f"master:{plan.name}")


def _master(context: Context, plan: MixPlan) -> dict[str, str]:
    target = f"master:{plan.name}"
    stems = any(path.parent.suffix == ".stems" for path in plan.outputs)  # summed again as the mix was
    inputs = _mix_inputs(context, plan, also=stems)
    _shipped_there(context, plan, None, Job("master", plan, target, inputs, ""))
    return {"stamp": plan.stamp}


def _mix_inputs(context: Context, plan: MixPlan, *, also: bool = False) -> tuple[Wanted, ...]:
    """What a worker fetches to read ``plan``'s mix: the mix, and what makes it again (its
    sections' pre-mixes, the assets the mixer lays out itself) ``also``, or when it is kept
    as a record (:func:`mixdown.actions.mix.mixed_as_record`)."""
    inputs = [mix_wanted(plan)]
    if also or context.cache.kept_as_record(plan.key):
        inputs += [*_section_inputs(plan), *_asset_inputs(_executor(context), _laid_out(context, plan))]
    return tuple(inputs)


def cluster_deliver(context: Context, item: tuple[MixPlan, str]) -> Any:
    """doit action: one extra delivery on the cluster; its files come to ``build/`` here."""
    plan, name = item
    return reported(_deliver, context, item, f"deliver:{plan.name}/{name}")


def _deliver(context: Context, item: tuple[MixPlan, str]) -> dict[str, str]:
    plan, name = item
    target = f"deliver:{plan.name}/{name}"
    _shipped_there(context, plan, name, Job("deliver", item, target, _mix_inputs(context, plan), ""))
    return {"stamp": plan.delivery_stamp(name)}


# -- what every action does -------------------------------------------------------------------


def _executor(context: Context) -> Executor:
    executor = context.executor
    assert isinstance(executor, Executor)
    return executor


def _made_there(context: Context, wanted: Wanted, job: Job, near: Sequence[str] = ()) -> None:
    """``wanted`` from the remote if it has it; else made by ``job`` on the cluster (near the
    objects ``near``, :meth:`Executor.run`), then fetched."""
    if fetched(context, wanted):
        return
    executor = _executor(context)
    executor.run(job._replace(remote=executor.remote.url), near)
    remote = executor.remote
    _made_since(remote, [wanted])
    if not remote.fetch_one(context.cache, wanted):
        raise MixdownError(_not_there(job, remote))


def _made_since(remote: Remote, wanted: Sequence[Wanted]) -> None:
    """Ask the remote again for ``wanted`` and their companions (a pre-mix's SFX bus): missing
    when the build began, a worker has made them since."""
    remote.absent.difference_update(key for w in wanted for key in (w.key, *w.companions))


def _shipped_there(context: Context, plan: MixPlan, delivery: str | None, job: Job) -> None:
    """A master's or delivery's files from the remote, made by ``job`` on the cluster if missing
    (where its master or mix was made, if it can)."""
    if shipments.fetched(context, plan, delivery):
        return
    executor = _executor(context)
    executor.run(job._replace(remote=executor.remote.url), (plan.master_key, plan.key))
    remote = executor.remote
    remote.absent.discard(shipments.shipment(plan, delivery).key)
    if not shipments.fetched(context, plan, delivery, quiet=True):
        raise MixdownError(_not_there(job, remote))


def _not_there(job: Job, remote: Remote) -> str:
    return (
        f"{job.target}: a Dask worker made it, but it is not on the remote cache {remote.shown}: "
        "give the workers the same [cache] remote (or MIXDOWN_REMOTE) as this machine"
    )


def _asset_inputs(executor: Executor, keys: Any) -> list[Wanted]:
    """The assets ``keys`` as a worker fetches them."""
    assets = executor.plan.assets
    return [asset_wanted(assets[key]) for key in dict.fromkeys(keys) if key in assets]


def _laid_out(context: Context, plan: MixPlan) -> list[str]:
    """The assets a mix reads itself, beside its sections' pre-mixes: the music bed's, and the
    lines of a section whose pre-mix may start before it does (an SFX lead-in near the top of
    the programme: the mixer lays such a section out from its lines), or that has none."""
    executor, cache = _executor(context), context.cache
    keys = [key for key in plan.assets if executor.plan.assets[key].kind == "music"]
    for key in plan.section_keys:
        if key is not None and key in cache and int(cache.meta(key).get("pre", 0)) == 0:
            continue
        section = executor.plan.sections.get(key) if key is not None else None
        keys += section.assets if section is not None else []
    return keys


def _section_inputs(plan: MixPlan) -> list[Wanted]:
    """A rendition's section pre-mixes as a worker fetches them."""
    return [
        section_wanted(key, plan.section_task(index))
        for index, key in enumerate(plan.section_keys)
        if key is not None
    ]


def _push(executor: Executor) -> None:
    """Upload what the plan shares that this cache holds and the remote lacks (made here before
    the build had a cluster): the workers read their inputs from the remote."""
    from .shared import push

    done = push(executor.remote, executor.cache, executor.plan)
    if done.pushed:
        print(
            f"remote cache: uploaded {done.pushed} objects for the Dask workers ({done.size / 1e6:.1f} MB)",
            flush=True,
        )
