"""Per-variant cost: many short personalised masters, against a floor of their DSP alone.

Generates a show in a temporary directory: one script with a CSV of N
variants (``--variants``), a programme of about 20 s (3 personalised lines,
5 shared, a synth bed), a fast deterministic stub voice in the show's own
renderers/, ``formats = ["mp3"]``. Then, in the same run:

* FIRST: ``doit -n 2 -P thread`` from an empty cache, as the README's users
  run it: wall time and CPU (user + system of doit and its children).
* FLOOR: the same mixes, masters and MP3 encodes done by calling mixdown's
  DSP and encoder functions directly (:func:`mixdown.dsp.mixer.mix`,
  :func:`mixdown.dsp.master.master`, :class:`mixdown.codecs.mp3.Encoder`
  with its bit reservoir, as a delivery encodes) for a sample of the
  variants (``--sample``, evenly spread), from the assets FIRST left in the
  cache, in 2 worker processes (the same cores), each set up once before
  the clock starts. Each MP3 is then decoded and measured
  (:func:`mixdown.codecs.mp3.measure`), as a build measures every MP3 it
  publishes: a lossy encode moves loudness and true peak, and a deliverable
  is published only once it is known to meet its target. Its CPU and wall
  time per variant are multiplied by N: the floor of N variants is what its
  DSP costs, without doit, task set-up, the cache, the records, the
  lockfile or the files beside each MP3;
* the ratio FIRST / FLOOR (target <= 1.3), in wall time and in CPU: the
  engine's overhead, since both do the same signal work on the same cores.
  The MP3's check is timed apart, and the ratio to the floor without it is
  printed beside, for reference (it counts the check as the engine's);
* the fixed CPU per deliverable, the issue's "beyond the work proportional
  to its length" (target <= 30 ms): (FIRST's CPU - FLOOR's) / N, and beside
  it what it would be without the check. Both also hold the renders of the
  personalised lines (the stub's share is printed apart: its render CPU,
  timed in-process, per variant) and a listener's own sections' pre-mixes;
* NO-OP: ``doit`` again with nothing to do (median of 7) over
  ``python -c "import doit"`` (target <= 4x), and ``doit list --all`` with
  the number of master targets listed. The 7 no-ops take turns with those of
  a copy of the show whose CSV is cut to N/10 rows and which shares its cache
  (all built already): the difference of the fastest of each gives the
  no-op's growth per variant, and so its estimate at 10,000;
* CLUSTER: FIRST again, in a new copy of the show with an empty cache, its
  actions on a Dask LocalCluster of 2 worker processes of one thread each
  (the same cores) and a ``file://`` remote cache beside it
  (``MIXDOWN_DASK``, ``MIXDOWN_REMOTE``); the cluster is started before the
  clock, as a night's cluster is up before its build. CLUSTER / FIRST in wall
  time is the engine's overhead (target <= 1.25): the jobs, the remote
  cache's uploads and downloads, and doit's threads waiting on them. Its
  CPU (doit's, and each worker's read before and after through the
  client) over FIRST's says the same on a loaded host. With ``--rounds R``,
  FIRST, the FLOOR and this build are made R times in turns, each build from
  an empty cache, and each ratio is that of their sums: on a shared host one
  of each, minutes apart, moves by a tenth (the floor alone moved by a
  quarter between two runs of the same code).

The default N (1,000) takes 10-15 minutes on the 2-core machine, most of
it FIRST (about 0.7 CPU-s a variant); the issue's 10,000 would take about
2 hours, so the lines "at 10,000" scale FIRST and FLOOR by 10,000 / N
(linear: every variant is its own mix, master and MP3, and nothing in
them grows with the others) and estimate the no-op from its growth per
variant measured between N/10 and N. Exits 0 whatever the figures;
non-zero only if a build fails.

Usage: ``python benchmarks/variants.py [--variants N] [--sample S] [--rounds R] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from longshow import Run, cpu_used, doit, measured, verdict, workdir
from noop import byte_compile

FIRST_TARGET = 1.3  # first build / floor, at most
NOOP_TARGET = 4.0  # no-op / import doit, at most
CLUSTER_TARGET = 1.25  # the LocalCluster build / FIRST, in wall time, at most
FIXED_TARGET = 0.030  # CPU seconds a deliverable beyond the work proportional to its length, at most
ISSUE_VARIANTS = 10_000
NOOP_RUNS = 7  # no-ops of the show, and of its copy with a tenth of the variants, in turns
WORKERS = 2

STUB = '''"""A stand-in TTS for the variants benchmark: a voiced tone whose length follows the text."""

import zlib

import numpy as np

from mixdown.renderers import RendererBase, RenderResult

SR = 24000


class Renderer(RendererBase):
    """Deterministic and fast: 1 s per 28 characters of a tone with a syllable rhythm."""

    kinds = frozenset({"voice"})

    def render(self, request):
        seed = zlib.crc32(request.text.encode())
        n = int(SR * max(0.5, len(request.text) / 28))
        t = np.arange(n, dtype=np.float32) / SR
        f = 110 + seed % 90
        tone = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(2 * np.pi * 2.01 * f * t)
        syllables = 0.55 + 0.45 * np.sin(2 * np.pi * (3.5 + seed % 3) * t)
        return RenderResult((0.25 * tone * syllables).astype(np.float32)[:, None], SR)
'''

PROJECT = """[project]
name = "Variants benchmark"
voice = "host"

[voices.host]
renderer = "stub"

[music.bed]
renderer = "synth"
preset = "pulse"
tempo = 96
seed = 5
gain_db = -20.0

[scripts.daily]
template = "stanzas/daily.j2"
variants = "data/listeners.csv"
music = "bed"

[mix]
line_gap = 0.35
section_gap = 0.9

[master]
preset = "podcast"
formats = ["mp3"]
"""

# 3 personalised lines and 5 shared ones: ~13 s of speech, ~21 s with the gaps, lead-in and tail
STANZA = """## open music=intro
Good morning {{ name }}, this is your briefing for {{ city }}.

## news
The libraries stay open late through the winter.

Engineers finished the new footbridge over the river.

Volunteers counted four thousand migrating birds.

## weather
In {{ city }} today, expect {{ weather }}.

The weekend looks dry across the region.

## close music=outro
That is all for today, {{ name }}. Until tomorrow.

Thanks for listening.
"""

CITIES = ("Lisbon", "Accra", "Oslo", "Lima", "Perth", "Kyoto", "Quito", "Cork")
WEATHER = ("sunshine", "light rain", "a cold wind", "fog until noon", "warm sun", "showers")
DOIT_CFG = "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"


def make_show(root: Path, variants: int) -> None:
    """The benchmark's show in ``root`` with ``variants`` rows in its CSV."""
    for sub in ("renderers", "stanzas", "data"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "renderers" / "stub.py").write_text(STUB)
    (root / "doit.cfg").write_text(DOIT_CFG)
    (root / "project.toml").write_text(PROJECT)
    (root / "stanzas" / "daily.j2").write_text(STANZA)
    rows = "".join(
        f"v{i:05d},Listener{i},{CITIES[i % len(CITIES)]},{WEATHER[i // len(CITIES) % len(WEATHER)]}\n"
        for i in range(variants)
    )
    (root / "data" / "listeners.csv").write_text("id,name,city,weather\n" + rows)


# ---------------------------------------------------------------------------------------------
# the floor: mixdown's DSP and encoder called directly, in worker processes set up once

_SHOW: Any = None


def _set_up(root: str) -> None:
    """Load the show once per worker (not timed), and import what the floor calls."""
    global _SHOW
    import mixdown.codecs.mp3  # noqa: F401 - imported before the clock starts
    import mixdown.dsp.master  # noqa: F401
    import mixdown.dsp.mixer  # noqa: F401
    from mixdown.loader import load_show

    _SHOW = load_show(root)


def _floor_one(index: int, out: str) -> tuple[float, float, float, float]:
    """Mix, master and encode to MP3 variant ``index`` of the show, then decode and measure the
    MP3 as a build checks what it publishes: (CPU s, wall s) of the first, and of the check."""
    import numpy as np

    from mixdown.actions.timeline import mixer_bed, mixer_item, mixer_settings
    from mixdown.codecs.lame import quality_for, to_pcm16
    from mixdown.codecs.mp3 import Encoder
    from mixdown.dsp import mixer
    from mixdown.dsp.master import MasterSettings, master

    cpu, wall = time.process_time(), time.perf_counter()
    context, plan = _SHOW.context, _SHOW.plan.mixes[index]
    timeline = plan.timeline
    sections = [
        mixer.Section(
            tuple(mixer_item(context, item) for item in s.items), music=s.music, at=s.at, duck=s.duck
        )
        for s in timeline.sections
    ]
    bed = mixer_bed(context, timeline.bed) if timeline.bed is not None else None
    settings = mixer_settings(timeline)
    stems = mixer.mix(sections, bed=bed, settings=settings)
    levels = MasterSettings(plan.master["target_lufs"], plan.master["limit_dbtp"])
    mastered, _ = master(stems.mixdown(), settings.sample_rate, levels)
    bitrate = int(plan.master.get("bitrate", 128))
    pcm = to_pcm16(mastered).astype(np.float32) / np.float32(32768)
    encoder = Encoder(
        settings.sample_rate,
        pcm.shape[1],
        bitrate=bitrate,
        vbr=False,
        quality=quality_for(bitrate),
        reservoir=True,
    )
    try:
        data = encoder.encode(pcm) + encoder.finish()
    finally:
        encoder.close()
    path = Path(out, f"{index}.mp3")
    path.write_bytes(data)
    made = time.process_time() - cpu, time.perf_counter() - wall
    cpu, wall = time.process_time(), time.perf_counter()
    _measure_mp3(path)
    return (*made, time.process_time() - cpu, time.perf_counter() - wall)


def _measure_mp3(path: Path) -> Any:
    """What a build's check of a published MP3 measures (BS.1770 loudness, true peak), as it does."""
    from mixdown.codecs.mp3 import measure

    return measure(path)


@dataclasses.dataclass(frozen=True)
class Floor:
    """The floor measured on a sample, and scaled to ``n`` variants (see :func:`floor`): each
    sampled variant's CPU seconds, check included, the sample's wall time, and the share of
    the MP3's check in them. Floors of several rounds add up (``+``): their sample is every
    round's."""

    cpus: list[float]
    seconds: float
    n: int
    check_cpus: list[float]
    check_seconds: float

    def __add__(self, other: Floor) -> Floor:
        return Floor(
            self.cpus + other.cpus,
            self.seconds + other.seconds,
            self.n,
            self.check_cpus + other.check_cpus,
            self.check_seconds + other.check_seconds,
        )

    @property
    def sample(self) -> int:
        return len(self.cpus)

    @property
    def check_each(self) -> float:
        return sum(self.check_cpus) / self.sample

    @property
    def cpu_each(self) -> float:
        return sum(self.cpus) / self.sample - self.check_each

    @property
    def wall_each(self) -> float:
        return (self.seconds - self.check_seconds) / self.sample

    def cpu(self, n: int | None = None, *, checked: bool = True) -> float:
        """CPU seconds of ``n`` variants (default: the show's), without the MP3's check unless ``checked``."""
        return (self.cpu_each + (self.check_each if checked else 0.0)) * (n or self.n)

    def wall(self, n: int | None = None, *, checked: bool = True) -> float:
        """Wall seconds of ``n`` variants on the benchmark's workers, without the check unless ``checked``."""
        return (self.wall_each + (self.check_seconds / self.sample if checked else 0.0)) * (n or self.n)


def floor(root: Path, variants: int, sample: int) -> Floor:
    """Mix, master and encode ``sample`` variants spread over the show's ``variants``, on
    :data:`WORKERS` processes set up before the clock starts."""
    picks = sorted({round(i * (variants - 1) / max(sample - 1, 1)) for i in range(sample)})
    out = tempfile.mkdtemp(prefix="mixdown-floor-")
    try:
        with ProcessPoolExecutor(WORKERS, initializer=_set_up, initargs=(str(root),)) as pool:
            list(pool.map(_floor_one, picks[:WORKERS], [out] * WORKERS))  # warm: imports, first calls
            start = time.perf_counter()
            done = list(pool.map(_floor_one, picks, [out] * len(picks)))
            wall = time.perf_counter() - start
    finally:
        shutil.rmtree(out, ignore_errors=True)
    checks = sum(check for *_, check in done)  # in the workers' time: their share of the wall time
    share = checks / max(sum(made + check for _, made, _, check in done), 1e-9)
    return Floor(
        [cpu + check for cpu, _, check, _ in done], wall, variants, [c for _, _, c, _ in done], wall * share
    )


#: a round of --rounds: FIRST, the FLOOR measured after it, and the LocalCluster build (if any)
Round = tuple[Run, Floor, Run | None]


def stub_cpu(root: Path, renders: int = 50) -> float:
    """CPU seconds the stub voice takes per personalised line, timed in this process."""
    sys.path.insert(0, str(root / "renderers"))
    try:
        import stub  # the show's renderer, as written by make_show
    finally:
        sys.path.pop(0)
    renderer = stub.Renderer()
    start = time.process_time()
    for i in range(renders):  # the stub reads only the text
        renderer.render(SimpleNamespace(text=f"Good morning Listener{i}, this is your briefing for Lisbon."))
    return (time.process_time() - start) / renders


class Noop:
    """No-op seconds at ``n`` variants (their median), and the growth per variant given by the
    fastest no-op of the show and of a copy with ``n // 10`` variants (see :func:`noops`)."""

    def __init__(self, many: list[float], few: list[float], n: int) -> None:
        self.seconds, self.fewer, self.n = statistics.median(many), statistics.median(few), n
        self.runs = len(many)
        self.fastest, self.fastest_fewer = min(many), min(few)
        self.per_variant = max(0.0, (self.fastest - self.fastest_fewer) / (n - n // 10))

    def at(self, n: int) -> float:
        """The no-op at ``n`` variants, by the growth measured."""
        return self.seconds + self.per_variant * (n - self.n)


def noops(root: Path, rows: int, runs: int = NOOP_RUNS) -> tuple[list[float], list[float]]:
    """No-ops of the show in ``root`` and of a copy of it with the CSV cut to its first ``rows``
    rows that shares its cache (so every rendition of it is built already), ``runs`` of each
    in turns: the difference of two no-ops a few milliseconds apart, each a few hundred
    milliseconds, must not be a busy moment of the machine's, and is told by the fastest
    of each, measured side by side."""
    fewer = Path(tempfile.mkdtemp(prefix="mixdown-variants-fewer-"))
    try:
        for name in ("renderers", "stanzas", "data", "doit.cfg"):
            source = root / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, fewer / name)
        project = (root / "project.toml").read_text()
        shared = f"[project]\ncache = {json.dumps(str(root / 'cache'))}\n"
        (fewer / "project.toml").write_text(project.replace("[project]\n", shared, 1))
        csv = fewer / "data" / "listeners.csv"
        csv.write_text("".join(csv.read_text().splitlines(keepends=True)[: rows + 1]))
        doit(fewer)  # publishes its renditions from the shared cache
        doit(fewer)  # the first no-op writes what later ones read
        many, few = [], []
        for _ in range(runs):
            many.append(doit(root).seconds)
            few.append(doit(fewer).seconds)
        return many, few
    finally:
        shutil.rmtree(fewer, ignore_errors=True)


def import_doit() -> float:
    """Seconds of ``python -c "import doit"``, median of 5."""
    return statistics.median(measured([sys.executable, "-c", "import doit"]).seconds for _ in range(5))


def _process_cpu() -> float:
    """User + system CPU seconds of the calling process (a Dask worker's, through ``client.run``)."""
    import resource

    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def on_cluster(variants: int) -> Run:
    """FIRST again on a 2-worker Dask LocalCluster, in a new copy of the show (see the module's notes)."""
    import dask
    from distributed import Client, LocalCluster

    from mixdown.actions.cluster import QUIET_WORKERS

    place = Path(tempfile.mkdtemp(prefix="mixdown-variants-cluster-"))
    show = place / "show"
    make_show(show, variants)
    # Dask's nanny leaves MALLOC_TRIM_THRESHOLD_ in this process's environment, where a later
    # FIRST (--rounds) would inherit it: every block of its mixes and masters a fresh mmap
    saved = {
        name: os.environ.get(name) for name in ("MIXDOWN_DASK", "MIXDOWN_REMOTE", "MALLOC_TRIM_THRESHOLD_")
    }
    try:
        with (
            dask.config.set(QUIET_WORKERS),
            LocalCluster(
                n_workers=WORKERS, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster,
        ):
            os.environ["MIXDOWN_DASK"] = cluster.scheduler_address
            os.environ["MIXDOWN_REMOTE"] = (place / "remote").as_uri()
            with Client(cluster) as client:
                before = sum(client.run(_process_cpu).values())
                run = doit(show)
                workers = sum(client.run(_process_cpu).values()) - before
            return dataclasses.replace(run, cpu=run.cpu + workers)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(place, ignore_errors=True)


def first_again(variants: int) -> Run:
    """FIRST again, in a new copy of the show with an empty cache (a later round's)."""
    place = Path(tempfile.mkdtemp(prefix="mixdown-variants-first-"))
    try:
        make_show(place, variants)
        return doit(place, "-n", "2", "-P", "thread")
    finally:
        shutil.rmtree(place, ignore_errors=True)


def report(
    args: argparse.Namespace,
    first: Run,
    fl: Floor,
    stub: float,
    noop: Noop,
    base: float,
    listed: int,
    cluster: Run | None,
    rounds: Sequence[Round] = (),
) -> None:
    """Print the figures: FIRST and FLOOR are those of every round, added up, when there are
    several (each round's are printed first)."""
    n = args.variants
    print(f"show: {n} variants of a ~20 s programme (3 personalised lines, 5 shared, a bed), formats = mp3")
    for i, (local, floor_of, there) in enumerate(rounds, 1):
        line = (
            f"round {i}: FIRST {local.seconds:6.1f} s (CPU {local.cpu:.1f} s), FLOOR {floor_of.wall():6.1f} s "
            f"(CPU {floor_of.cpu():.1f} s): {local.seconds / floor_of.wall():.2f}x wall, "
            f"{local.cpu / floor_of.cpu():.2f}x CPU"
        )
        if there is not None:
            line += (
                f"; LocalCluster {there.seconds:6.1f} s (CPU {there.cpu:.1f} s): "
                f"{there.seconds / local.seconds:.2f}x FIRST's wall, {there.cpu / local.cpu:.2f}x its CPU"
            )
        print(line)
    if rounds:
        steals = [r[0].stolen for r in rounds]
        first = dataclasses.replace(
            first,
            seconds=statistics.fmean(r[0].seconds for r in rounds),
            cpu=statistics.fmean(r[0].cpu for r in rounds),
            stolen=None if None in steals else statistics.fmean(s for s in steals if s is not None),
        )
        fl = sum((r[1] for r in rounds[1:]), rounds[0][1])
        print(f"the rounds' means ({len(rounds)} in turns):")
    print(f"FIRST  doit -n 2 -P thread      {first.seconds:8.1f} s   {cpu_used(first)}")
    print(
        f"FLOOR  DSP, encode, check       {fl.wall():8.1f} s   CPU {fl.cpu():.1f} s "
        f"({fl.sample} variants on {WORKERS} processes, x {n / fl.sample:.1f}: "
        f"{fl.cpu(1) * 1000:.0f} ms CPU, "
        f"{fl.wall(1) * 1000:.0f} ms wall each)"
    )
    ratio = first.seconds / fl.wall()
    print(
        f"FIRST / FLOOR                   {ratio:8.2f}x wall, {first.cpu / fl.cpu():.2f}x CPU "
        f"(target <= {FIRST_TARGET}: {verdict(ratio <= FIRST_TARGET)})"
    )
    print(
        f"  the floor without the check     {fl.wall(checked=False):8.1f} s   CPU {fl.cpu(checked=False):.1f} s "
        f"(the check, each MP3 decoded and measured: {fl.check_each * 1000:.0f} ms CPU each); "
        f"FIRST / this {first.seconds / fl.wall(checked=False):.2f}x wall, {first.cpu / fl.cpu(checked=False):.2f}x CPU "
        "(for reference: it counts the check as the engine's)"
    )
    fixed, unchecked = (first.cpu - fl.cpu()) / n, (first.cpu - fl.cpu(checked=False)) / n
    print(
        f"fixed CPU per deliverable       {fixed * 1000:8.0f} ms   beyond its DSP, encode and check, work "
        f"proportional to its length (of which the stub's 3 personalised renders {3 * stub * 1000:.0f} ms; "
        f"target <= {FIXED_TARGET * 1000:.0f} ms: {verdict(fixed <= FIXED_TARGET)}); "
        f"{unchecked * 1000:.0f} ms beyond the DSP and encode alone"
    )
    print(
        f"NO-OP  doit                     {noop.seconds:8.3f} s   {noop.seconds / base:.2f}x python -c 'import doit' "
        f"(median of {noop.runs}) "
        f"({base:.3f} s; target <= {NOOP_TARGET}: {verdict(noop.seconds / base <= NOOP_TARGET)})"
    )
    at = noop.at(ISSUE_VARIANTS)
    print(
        f"NO-OP  at {n // 10} variants          {noop.fewer:8.3f} s   growth {noop.per_variant * 1e3:.3f} ms a variant "
        f"(fastest of each, in turns: {noop.fastest:.3f} s and {noop.fastest_fewer:.3f} s); "
        f"at {ISSUE_VARIANTS:,}: {at:.2f} s = {at / base:.1f}x import doit ({verdict(at / base <= NOOP_TARGET)})"
    )
    print(f"doit list --all                 {listed:8d} master targets listed")
    if cluster is not None and not rounds:
        ratio = cluster.seconds / first.seconds
        print(
            f"CLUSTER LocalCluster, 2 workers  {cluster.seconds:8.1f} s   {ratio:.2f}x FIRST's wall "
            f"(target <= {CLUSTER_TARGET}: {verdict(ratio <= CLUSTER_TARGET)}); CPU {cluster.cpu:.1f} s, "
            f"doit's and the workers', {cluster.cpu / first.cpu:.2f}x FIRST's"
        )
    elif cluster is not None:
        clustered = [(r[0], r[2]) for r in rounds if r[2] is not None]
        local_s, there_s = sum(r[0].seconds for r in clustered), sum(r[1].seconds for r in clustered)
        ratio = there_s / local_s
        cpu = sum(r[1].cpu for r in clustered) / sum(r[0].cpu for r in clustered)
        print(
            f"CLUSTER LocalCluster, 2 workers  {there_s / len(rounds):8.1f} s   {ratio:.2f}x FIRST's wall "
            f"over {len(rounds)} rounds in turns (target <= {CLUSTER_TARGET}: {verdict(ratio <= CLUSTER_TARGET)}); "
            f"{cpu:.2f}x FIRST's CPU (doit's and the workers')"
        )
    if n != ISSUE_VARIANTS:
        scale = ISSUE_VARIANTS / n
        print(
            f"at {ISSUE_VARIANTS:,} (scaled x {scale:g}): FIRST {first.seconds * scale / 60:.1f} min "
            f"(CPU {first.cpu * scale / 60:.1f} min), FLOOR {fl.wall(ISSUE_VARIANTS) / 60:.1f} min"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", type=int, default=1000)
    parser.add_argument("--sample", type=int, default=200, help="variants the floor measures")
    parser.add_argument("--keep", type=Path, help="build the show here (emptied first) and keep it")
    parser.add_argument("--no-cluster", action="store_true", help="leave out the LocalCluster build")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="FIRST, the FLOOR and the LocalCluster build in turns this many times (each build from an "
        "empty cache): their ratios over all rounds, steadier on a shared host than one of each",
    )
    args = parser.parse_args()
    root = workdir(args.keep, "mixdown-variants-")
    os.environ.pop("MIXDOWN_REMOTE", None)  # a local build: the remote is another benchmark's
    byte_compile()
    try:
        make_show(root, args.variants)
        first = doit(root, "-n", "2", "-P", "thread")
        fl = floor(root, args.variants, min(args.sample, args.variants))
        stub = stub_cpu(root)
        doit(root)  # the first no-op writes what later ones read (doit's state of every task)
        base = import_doit()
        listing = doit(root, "list", "--all").stdout
        listed = sum(line.startswith("master:") for line in listing.splitlines())
        many, few = noops(root, args.variants // 10)
        cluster = None if args.no_cluster else on_cluster(args.variants)
        rounds: list[Round] = []
        if args.rounds > 1:
            rounds.append((first, fl, cluster))
            for _ in range(args.rounds - 1):
                again = first_again(args.variants)
                floor_again = floor(root, args.variants, min(args.sample, args.variants))
                rounds.append((again, floor_again, None if args.no_cluster else on_cluster(args.variants)))
        report(args, first, fl, stub, Noop(many, few, args.variants), base, listed, cluster, rounds)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
