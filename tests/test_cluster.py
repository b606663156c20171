"""Builds on a Dask cluster: a LocalCluster of 2 worker processes and a moto S3 on 127.0.0.1.

The show's voice is a "paid" renderer in its own renderers/ that counts
each render it completes in ``renders.log`` beside the show (the workers
and this process append to the same file), and kills the process it runs
in, before completing, when the show holds a ``kill-on`` file naming the
line: a worker lost in the middle of a paid request. With a ``slow-uploads``
file, the worker uploads each line it rendered half a second late.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from mixdown.actions.cluster import Executor
from mixdown.loader import load_show
from mixdown.plan.model import section_sfx_key
from mixdown.store.cache import Cache

from .conftest import ABOUT_THE_BUILD
from .s3server import S3
from .test_build import doit, ran

RENDERER = '''
import os, signal, time, zlib
from pathlib import Path

import numpy as np
from mixdown.renderers import RendererBase, RenderResult

SR = 24000


def _voice_uploads_late(late):
    """In this worker, upload each rendered line half a second late while ``late`` (the show
    holds a ``slow-uploads`` file): a worker killed in a render while the upload of an earlier
    one is under way, the race a job must not lose."""
    from mixdown.store.remote import Remote

    if not hasattr(Remote._upload, "late"):
        upload = Remote._upload

        def slowed(self, fs, cache, wanted):
            if slowed.late and wanted.target.startswith("voice:"):
                time.sleep(0.5)
            return upload(self, fs, cache, wanted)

        Remote._upload = slowed
    Remote._upload.late = late


class Renderer(RendererBase):
    """A paid voice: deterministic tones, each completed render counted in renders.log."""

    kinds = frozenset({"voice"})

    def render(self, request):
        root = Path(request.root)
        _voice_uploads_late((root / "slow-uploads").is_file())
        marker = root / "kill-on"
        if marker.is_file() and marker.read_text().strip() == request.target:
            marker.unlink()
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies before the provider answers
        seed = zlib.crc32(request.text.encode())
        n = int(SR * max(0.6, len(request.text) / 25))
        t = np.arange(n, dtype=np.float32) / SR
        tone = np.sin(2 * np.pi * (120 + seed % 80) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
        with open(root / "renders.log", "a") as log:
            log.write(request.target + "\\n")
        return RenderResult((0.3 * tone).astype(np.float32)[:, None], SR)
'''

PROJECT = """[project]
name = "Cluster trial"
voice = "host"

[voices.host]
renderer = "paid"

[sfx.tick]
renderer = "synth"
preset = "click"

[music.bed]
renderer = "synth"
preset = "ambient"

[scripts.brief]
template = "stanzas/brief.j2"
music = "bed"
variants = "data/people.csv"

[master]
formats = ["wav", "mp3"]
stems = true

[deliveries.radio]
preset = "ebu-r128"
formats = ["wav"]
"""

SCRIPT = """## hello
Good morning {{ name }}, here is your briefing. [sfx:tick]

The weather today is mild for {{ name }}.

## news
The markets were calm overnight.

A new bridge opened downtown. [sfx:tick]

## bye
That was all for today, {{ name }}.
"""

PEOPLE = "id,name\nzoe,Zoë\nli,Li\nsam,Sam\n"


@pytest.fixture(scope="module")
def cluster(s3_endpoint: str) -> Iterator[str]:
    """A LocalCluster of 2 worker processes, whose environment reaches the test S3; its address."""
    from distributed import LocalCluster

    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, env=env
    ) as local:
        yield local.scheduler_address


def make_show(root: Path) -> Path:
    for path, text in {
        "project.toml": PROJECT,
        "stanzas/brief.j2": SCRIPT,
        "data/people.csv": PEOPLE,
        "renderers/paid.py": RENDERER,
    }.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root


def renders(root: Path) -> Counter[str]:
    log = root / "renders.log"
    return Counter(log.read_text().split()) if log.exists() else Counter()


def lock_keys(root: Path) -> dict[str, str]:
    data = tomllib.loads((root / "mixdown.lock").read_text())
    return {target: table["key"] for target, table in data.items() if isinstance(table, dict)}


def built(root: Path) -> dict[str, Path]:
    found = sorted((root / "build").rglob("*"))
    return {str(p.relative_to(root)): p for p in found if p.is_file() and p.name not in ABOUT_THE_BUILD}


def on_cluster(monkeypatch: pytest.MonkeyPatch, address: str, remote: str) -> None:
    monkeypatch.setenv("MIXDOWN_DASK", address)
    monkeypatch.setenv("MIXDOWN_REMOTE", remote)


def built_here_and_there(
    tmp_path: Path, cluster: str, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path]:
    """The show built here (a local build), and a copy of it with this process set to build on
    the cluster: their folders."""
    here = make_show(tmp_path / "here")
    code, out, err = doit(here, {})
    assert code == 0, out + err
    there = make_show(tmp_path / "there")
    on_cluster(monkeypatch, cluster, s3.url)
    return here, there


def assert_sound_alike(files: dict[str, Path], local: dict[str, Path], names: Iterable[str]) -> None:
    """Each of ``names`` the same length to the sample in ``files`` as in ``local``, and within
    0.05 LU of it."""
    for name in names:
        a, sr = sf.read(files[name], dtype="float32", always_2d=True)
        b, _ = sf.read(local[name], dtype="float32", always_2d=True)
        assert len(a) == len(b), name  # the same length to the sample
        meter = pyloudnorm.Meter(sr)
        assert abs(meter.integrated_loudness(a) - meter.integrated_loudness(b)) <= 0.05, name


def test_a_cluster_build_equals_the_local_one_and_pays_for_each_render_once(
    tmp_path: Path, cluster: str, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, there = built_here_and_there(tmp_path, cluster, s3, monkeypatch)
    jobs: list[str] = []
    run = Executor.run
    monkeypatch.setattr(
        Executor, "run", lambda self, job, near=(): jobs.append(job.target) or run(self, job, near)
    )
    code, out, err = doit(there, {})
    assert code == 0, out + err
    voices = [t for t in lock_keys(here) if t.startswith("voice:")]
    assert renders(there) == Counter(voices)  # every paid line once, across both workers
    # A section every listener shares is a job of its own; a listener's own sections are
    # pre-mixed by the job of that listener's mix, and this machine's cache has them all.
    plan = load_show(there).plan
    assert sorted(t for t in jobs if t.startswith("section:")) == ["section:brief/news"]
    assert sum(t.startswith("mix:") for t in jobs) == 3 and len(plan.sections) == 7
    # Only the shared section's lines are render jobs; a listener's own lines are rendered by
    # that listener's mix job, and fetched with its pre-mixes.
    news = next(s for s in plan.sections.values() if s.task == "section:brief/news")
    shared = sorted(plan.assets[k].task for k in news.assets if plan.assets[k].kind == "voice")
    assert sorted(t for t in jobs if t.startswith("voice:")) == shared and len(shared) < len(voices)
    mirror = Cache(there / "cache")
    assert all(key in mirror for key in plan.sections) and all(key in mirror for key in plan.assets)
    with_sfx = [section_sfx_key(k) for k in plan.sections if mirror.meta(k)["sfx"]]
    assert len(with_sfx) == 4 and all(key in mirror for key in with_sfx)  # their SFX buses too
    assert lock_keys(there) == lock_keys(here)  # same keys for every asset, mix, master and delivery
    # the workers' lines reach this console, with their targets
    assert "master:brief@sam  -16." in out and "deliver:brief@li/radio  -23." in out

    files, local = built(there), built(here)
    # wav, mp3, 3 stems, radio wav; captions and chapters of the master and the radio wav, the timeline
    assert files.keys() == local.keys() and len(files) == 3 * (6 + 2 * 4 + 1)
    sidecars = (".vtt", ".srt", ".chapters.json", ".chapters.txt", ".otio")
    for name in (n for n in files if n.endswith(sidecars)):  # made on this machine, as a local build does
        assert files[name].read_bytes() == local[name].read_bytes(), name
    assert_sound_alike(
        files, local, [n for n in files if not (n.endswith((".mp3", *sidecars)) or ".stems" in n)]
    )
    for name in (n for n in files if n.endswith(".mp3")):
        assert sf.info(files[name]).frames == sf.info(local[name]).frames, name

    code, out, err = doit(there, {})  # nothing left to do, and no cluster job for it
    assert code == 0 and not ran(out), out + err

    again = make_show(tmp_path / "again")  # another machine of the same team, the same night
    code, out, err = doit(again, {})
    assert code == 0, out + err
    assert renders(again) == Counter()  # nothing paid twice: all of it came through the remote
    assert {n: p.read_bytes() for n, p in built(again).items() if n.endswith(".wav")} == {
        n: p.read_bytes() for n, p in files.items() if n.endswith(".wav")
    }


def test_a_worker_that_does_not_hold_a_mix_kept_as_a_record_mixes_it_again(
    tmp_path: Path, cluster: str, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import Client

    here, there = built_here_and_there(tmp_path, cluster, s3, monkeypatch)
    code, out, err = doit(there, {}, "mix")  # every mix made by a worker, as a record
    assert code == 0, out + err
    plan = load_show(there).plan
    mirror = Cache(there / "cache")
    assert all(mirror.kept_as_record(m.key) and mirror.path(m.key).stat().st_size == 0 for m in plan.mixes)
    with Client(cluster) as client:
        client.restart()  # new worker processes: no mix held in memory anywhere
    code, out, err = doit(there, {})  # masters, stems and deliveries, each mixed again first
    assert code == 0, out + err
    assert renders(there) == Counter(t for t in lock_keys(here) if t.startswith("voice:"))  # none twice
    assert lock_keys(there) == lock_keys(here)
    files, local = built(there), built(here)
    assert files.keys() == local.keys()
    wavs = [n for n in files if n.endswith(".wav")]  # masters, stems and deliveries
    assert_sound_alike(files, local, wavs)
    assert all(np.abs(sf.read(files[n], dtype="float32")[0]).max() > 0.01 for n in wavs)


# a line every listener shares (a render job of its own: their sections wait for it), and a
# listener's own line (rendered by the job of that listener's mix)
@pytest.mark.parametrize("victim", ["voice:brief/news/1", "voice:brief/hello/1@li"])
def test_a_worker_killed_in_a_paid_render_is_replaced_and_nothing_is_paid_twice(
    tmp_path: Path, cluster: str, s3: S3, monkeypatch: pytest.MonkeyPatch, victim: str
) -> None:
    root = make_show(tmp_path / "show")
    (root / "kill-on").write_text(victim)
    (root / "slow-uploads").touch()  # a listener's second line killed as its first goes up
    on_cluster(monkeypatch, cluster, s3.url)
    code, out, err = doit(root, {})
    assert code == 0, out + err
    assert not (root / "kill-on").exists()  # a worker did die in that render
    counts = renders(root)
    assert counts[victim] == 1 and set(counts.values()) == {1}  # completed once, like every other line
    assert {p.name for p in (root / "build").glob("*.mp3")} == {
        f"brief@{i}.mp3" for i in ("zoe", "li", "sam")
    }
    assert all(len(sf.read(p)[0]) > 0 for p in (root / "build").glob("*.wav"))


def test_assets_made_here_before_the_cluster_are_pushed_for_its_workers(
    tmp_path: Path, cluster: str, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_show(tmp_path / "show")
    code, out, err = doit(root, {}, "voice")  # rendered on this machine, with no remote yet
    assert code == 0, out + err
    first = renders(root)
    shutil.rmtree(root / "build", ignore_errors=True)
    (root / "stanzas" / "brief.j2").write_text(SCRIPT.replace("mild", "warm"))  # one line per listener
    on_cluster(monkeypatch, cluster, s3.url)
    code, out, err = doit(root, {})
    assert code == 0, out + err
    assert "uploaded" in out and "for the Dask workers" in out
    again = renders(root) - first
    # only the edited line, once per listener: every other asset was pushed, not made again
    assert again == Counter(f"voice:brief/hello/1@{i}" for i in ("zoe", "li", "sam"))


def test_a_cluster_needs_a_remote_cache_and_a_scheduler_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_show(tmp_path / "show")
    monkeypatch.delenv("MIXDOWN_REMOTE", raising=False)
    monkeypatch.setenv("MIXDOWN_DASK", "tcp://127.0.0.1:1")
    code, out, err = doit(root, {})
    assert code != 0 and renders(root) == Counter()
    lines = [line for line in (out + err).splitlines() if "remote cache" in line]
    assert len(lines) == 1 and "set [cache] remote (or MIXDOWN_REMOTE)" in lines[0], out + err

    monkeypatch.setenv("MIXDOWN_DASK", "scheduler:8786")
    code, out, err = doit(root, {})
    assert code != 0 and "MIXDOWN_DASK: 'scheduler:8786' is not a Dask scheduler address" in out + err


def test_the_executor_table_is_checked(tmp_path: Path) -> None:
    from mixdown.errors import ConfigError
    from mixdown.show.project import load

    root = make_show(tmp_path / "show")
    for table, message in [
        ('dask = "scheduler"', r"project.toml:\d+: 'scheduler' is not a Dask scheduler address"),
        ('dask = "tcp://s:8786"\njobs = 0', r"project.toml:\d+: jobs must be a whole number from 1 to 10000"),
        (
            'dask = "tcp://s:8786"\nworkers = 4',
            r"project.toml:\d+: unknown key 'workers' in \[executor\]; allowed: dask, jobs",
        ),
    ]:
        (root / "project.toml").write_text(PROJECT + "\n[executor]\n" + table + "\n")
        with pytest.raises(ConfigError, match=message):
            load(root)
    (root / "project.toml").write_text(PROJECT + '\n[executor]\ndask = "tcp://s:8786"\njobs = 64\n')
    executor = load(root).executor
    assert (executor.dask, executor.jobs) == ("tcp://s:8786", 64)


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_providers_concurrency_holds_for_the_whole_cluster(cluster: str, concurrency: int) -> None:
    """Two workers each hold the provider's limit for a second: with ``concurrency = 1`` one
    waits for the other, as one process's threads would; with 2 they overlap."""
    from distributed import Client

    def hold(size: int) -> tuple[float, float]:
        import time

        from mixdown.actions.worker import share_provider_limits
        from mixdown.renderers.cloud import http

        share_provider_limits()
        settings = http.ProviderSettings("fake", "http://127.0.0.1:9", "FAKE_API_KEY", concurrency=size)
        with http.limiter(settings):
            start = time.time()
            time.sleep(1.0)
            return start, time.time()

    with Client(cluster) as client:
        workers = sorted(client.scheduler_info()["workers"])
        futures = [
            client.submit(hold, concurrency, workers=[w], pure=False, key=f"hold-{concurrency}-{w}")
            for w in workers
        ]
        (a0, a1), (b0, b1) = sorted(f.result() for f in futures)
    overlap = min(a1, b1) - max(a0, b0)
    assert (overlap < 0) if concurrency == 1 else (overlap > 0.5), (a0, a1, b0, b1)


def test_a_workers_cache_is_trimmed_and_what_it_lost_comes_back_from_the_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A night's jobs pass thousands of objects through a worker: its cache keeps to
    MIXDOWN_WORKER_CACHE_SIZE, and an object trimmed from it is fetched again, not made again."""
    import tempfile

    from mixdown.actions import worker
    from mixdown.loader import load_show
    from mixdown.renderers import Registry

    root = make_show(tmp_path / "show")
    show = load_show(root, registry=Registry(root))
    remote = (tmp_path / "remote").as_uri()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "worker"))  # the worker's local directory
    (tmp_path / "worker").mkdir()
    monkeypatch.setattr(worker, "TRIM_EVERY", 1)
    monkeypatch.setattr(worker, "_next_trim", None)  # whatever jobs this process ran before
    monkeypatch.setenv(worker.SIZE_ENV, "1")  # a byte: every job empties it
    voices = [a for a in show.plan.assets.values() if a.kind == "voice"][:3]
    for asset in [*voices, voices[0]]:
        outcome = worker.work(show.context.project, worker.Job("render", asset, asset.task, (), remote))
        assert outcome.error is None, outcome
        objects = list((tmp_path / "worker").rglob("objects/*/*.wav"))
        assert objects == []  # trimmed after the job
    assert renders(root) == Counter(a.task for a in voices)  # the fourth job fetched its line
    assert len(list((tmp_path / "remote").rglob("*.json"))) == 3


def test_a_section_is_pre_mixed_with_its_mix_only_when_no_other_rendition_or_shard_uses_it(
    tmp_path: Path,
) -> None:
    from mixdown.actions.cluster import _single_use
    from mixdown.store.remote import Remote

    show = load_show(make_show(tmp_path / "show"))
    context, plan = show.context, show.plan
    context.executor = Executor(
        "tcp://127.0.0.1:9", Remote("file:///nowhere"), context.project, plan, context.cache
    )
    own = {k for k, s in plan.sections.items() if "@" in s.task}  # hello@… and bye@… of each listener
    assert len(own) == 6 and {k for k in plan.sections if _single_use(context, k)} == own
    shared = next(iter(own))  # a section another shard uses too (a shard's fresh keys)
    context.fresh = frozenset({shared})
    assert {k for k in plan.sections if _single_use(context, k)} == own - {shared}


def test_the_section_an_asset_is_used_by_alone_is_found_whatever_is_asked_first(tmp_path: Path) -> None:
    from mixdown.store.remote import Remote

    show = load_show(make_show(tmp_path / "show"))
    context, plan = show.context, show.plan
    users: dict[str, list[tuple[str, int]]] = {}
    for section in plan.sections.values():
        for key in set(section.assets):
            users.setdefault(key, []).append((section.mix, section.index))
    expected = {
        key: found[0] if len(found) == 1 and plan.assets[key].kind != "music" else None
        for key, found in users.items()
    }
    assert None in expected.values() and any(expected.values())  # shared assets, and a listener's own
    for key, want in expected.items():  # each asked first of an executor of its own
        executor = Executor(
            "tcp://127.0.0.1:9", Remote("file:///nowhere"), context.project, plan, context.cache
        )
        found = executor.section_of(key)
        assert (None if found is None else (found[0].name, found[1])) == want, plan.assets[key].task


@pytest.mark.parametrize("whole", [True, False])
def test_a_listeners_own_line_is_rendered_by_its_mix_job_only_in_a_build_of_the_whole_show(
    tmp_path: Path, whole: bool
) -> None:
    from mixdown.actions.cluster import _own_renders, _rendered_with_its_mix
    from mixdown.store.remote import Remote

    show = load_show(make_show(tmp_path / "show"))
    context, plan = show.context, show.plan
    context.executor = Executor(
        "tcp://127.0.0.1:9", Remote("file:///nowhere"), context.project, plan, context.cache, whole=whole
    )
    users = Counter(k for s in plan.sections.values() for k in set(s.assets))
    own = {k for k, n in users.items() if n == 1 and "@" in plan.assets[k].task}  # one listener's lines
    shared = set(plan.assets) - own  # the news lines, an SFX cue of every listener, the bed
    assert own and shared and all(plan.assets[k].kind == "voice" for k in own)
    deferred = {k for k, a in plan.assets.items() if _rendered_with_its_mix(context, a)}
    assert deferred == (own if whole else set())  # `doit voice:…` runs no mix: a job of its own
    assert {a.key for m in plan.mixes for a in _own_renders(context, m)} == deferred
    if whole:
        line = next(iter(own))  # a line another shard uses too, or one already here
        context.fresh = frozenset({line})
        assert not _rendered_with_its_mix(context, plan.assets[line])
        context.fresh = frozenset()
        mix = next(m for m in plan.mixes if line in m.assets)
        context.cache.put(mix.key, np.zeros((10, 2), np.float32), 48000, {"kind": "mix"})
        assert not _rendered_with_its_mix(context, plan.assets[line])  # its mix is made: no mix job


def test_a_job_dropped_because_every_worker_holding_the_project_died_is_sent_again(tmp_path: Path) -> None:
    # The project is scattered to the workers once; a worker killed mid-job can take its last
    # copy with it, and the scheduler then cancels every job needing it ("already forgotten").
    from concurrent.futures import CancelledError
    from types import SimpleNamespace

    from mixdown.store.remote import Remote

    show = load_show(make_show(tmp_path / "show"))
    context = show.context
    executor = Executor(
        "tcp://127.0.0.1:9", Remote("file:///nowhere"), context.project, show.plan, context.cache
    )
    scattered: list[object] = []
    executor._client = SimpleNamespace(
        scatter=lambda data, **_: scattered.append(data) or SimpleNamespace(status="finished")
    )
    lost = SimpleNamespace(status="lost")
    executor._project = lost
    assert not executor._scattered_again(lost, RuntimeError("a job's own failure")) and not scattered
    assert executor._scattered_again(lost, CancelledError("already forgotten"))
    assert scattered == [context.project] and executor._project is not lost
    assert executor._scattered_again(lost, CancelledError()) and len(scattered) == 1  # once, for every thread
    held = executor._project
    assert not executor._scattered_again(held, CancelledError())  # the project is there: a real cancel


def test_a_job_the_cluster_lost_is_one_line_whatever_distributed_calls_it(tmp_path: Path) -> None:
    from distributed.client import FutureCancelledError

    from mixdown.actions.cluster import _lost
    from mixdown.actions.worker import Job

    job = Job("mix", None, "mix:brief@li", (), "")
    dropped = _lost(job, "tcp://s:8786", FutureCancelledError("mixdown-mix-1", "already forgotten"))
    assert dropped is not None and dropped.startswith("mix:brief@li: the Dask scheduler tcp://s:8786 dropped")
    assert _lost(job, "tcp://s:8786", RuntimeError("a failure of the job's own")) is None


def test_a_workers_cache_is_listed_less_often_the_further_it_is_below_its_size() -> None:
    """A trim lists the worker's whole cache: every TRIM_EVERY jobs near the size, seldom far below."""
    from mixdown.actions.worker import TRIM_AT_LATEST, TRIM_EVERY, _jobs_to_fill

    mb = 1 << 20
    assert _jobs_to_fill(20_000 * mb, 5 * mb) == TRIM_AT_LATEST  # 4,000 jobs' room at twice 5 MB
    assert _jobs_to_fill(2_000 * mb, 5 * mb) == 200
    assert _jobs_to_fill(100 * mb, 5 * mb) == TRIM_EVERY  # 10 jobs' room: as often as ever
    assert _jobs_to_fill(0, 0) == TRIM_EVERY and _jobs_to_fill(-mb, 5 * mb) == TRIM_EVERY  # full
    assert _jobs_to_fill(20_000 * mb, 0) == TRIM_AT_LATEST  # nothing grew (every object fetched)


def test_two_builds_on_one_cluster_at_once_pay_for_each_render_once(
    tmp_path: Path, cluster: str, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two machines of a team build the same night at the same moment, on one cluster."""
    import subprocess
    import sys

    config = "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"
    roots = [make_show(tmp_path / name) for name in ("a", "b")]
    for root in roots:
        (root / "doit.cfg").write_text(config)
    on_cluster(monkeypatch, cluster, s3.url)
    builds = [
        subprocess.Popen(
            [sys.executable, "-m", "doit"],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for root in roots
    ]
    outputs = [build.communicate(timeout=600)[0] for build in builds]
    assert [build.returncode for build in builds] == [0, 0], outputs
    voices = [t for t in lock_keys(roots[0]) if t.startswith("voice:")]
    assert renders(roots[0]) + renders(roots[1]) == Counter(voices)  # each line once, by either
    assert lock_keys(roots[0]) == lock_keys(roots[1])
    for name, path in built(roots[0]).items():
        if name.endswith(".wav"):
            assert path.read_bytes() == (roots[1] / name).read_bytes(), name


HEAP_TRIAL = """
import json, resource, numpy as np
from mixdown.actions.worker import keep_heap

def faults():
    total = 0
    for _ in range(100):  # a master's blocks: a few MB each, allocated, filled and freed
        total -= resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        block = np.ones((1 << 17, 2), np.float32) * np.float32(0.5)
        del block
        total += resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    return total

before = faults()
kept = keep_heap()
print(json.dumps([before, kept, faults()]))
"""


@pytest.mark.parametrize("trim", ["65536", None])
def test_a_workers_heap_keeps_its_blocks_where_dask_asks_malloc_to_trim(trim: str | None) -> None:
    """Dask starts workers with MALLOC_TRIM_THRESHOLD_ set, which makes each block a fresh mmap."""
    import json
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if trim is not None:
        env["MALLOC_TRIM_THRESHOLD_"] = trim
    run = subprocess.run(
        [sys.executable, "-c", HEAP_TRIAL], env=env, capture_output=True, text=True, check=True
    )
    before, kept, after = json.loads(run.stdout)
    if trim is None:
        assert not kept  # glibc's own adaptive threshold is left alone
        return
    if not kept:
        pytest.skip("no glibc mallopt here")
    assert before >= 100 * 64  # 1 MiB a block, faulted in page by page each time
    assert after <= before / 10
