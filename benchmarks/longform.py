"""Mix, master and write a 1-hour programme, against ffmpeg's loudnorm measurement pass.

Generates a synthetic one-hour show (``longshow.py``: at least 500 speech-like voice lines
from a renderer in the show's own renderers/, two voices, synth SFX inside
lines and in sequence, the synth music bed under it all, [master] preset
"podcast" with WAV and MP3) and renders every asset first (untimed). Then,
with every asset cached, times in alternating rounds (three by default):

* ``doit``: the sections' pre-mixes, the mix, the master and the WAV + MP3
  files of the one script (forced: their cache objects and files are
  deleted first), with its peak
  memory (``ru_maxrss`` from ``os.wait4``, plus the peak growth of memory
  files meanwhile: the mix's voice scratch, in ``/dev/shm``);
* the baseline: ``ffmpeg -af loudnorm`` measuring the same programme, the
  float32 mix before mastering, in one pass.

Prints every round (each time with the CPU time it used and the steal the
virtual machine suffered meanwhile: on a shared host, a loaded neighbour
slows a two-core run more than a one-core one), then the speed as the best
ffmpeg time over the best mixdown time (target: mixdown at least 3x faster
than ffmpeg's measurement alone; a neighbour's load only ever adds time, so
each tool's best round is the nearest to its own cost, as timeit takes the
least of its repeats) beside the rounds' own ratios and their median, and
mixdown's peak memory over the size of the float32 programme, the largest of
the rounds (target: under 2.5x), each with PASS or MISS, and the loudness
both tools read on the mix. Exits 0 whatever the figures; non-zero only if
something fails.

ffmpeg is only for this benchmark: the one on PATH, else imageio-ffmpeg's
(``pip install 'mixdown[bench]'``, as ``make bench`` does).

Usage: ``python benchmarks/longform.py [--minutes N] [--rounds N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from longshow import Run, cpu_used, doit, make_show, measured, mib, prepare, verdict

SPEED_TARGET = 3.0  # ffmpeg's measurement time / mixdown's whole run, at least
MEMORY_TARGET = 2.5  # mixdown's peak memory (RSS + memory files) / float32 programme size, under


def find_ffmpeg() -> str:
    """ffmpeg on PATH, else imageio-ffmpeg's; exits with a hint if there is neither."""
    found = shutil.which("ffmpeg")
    if found:
        return found
    try:
        exe: str = importlib.import_module("imageio_ffmpeg").get_ffmpeg_exe()  # the [bench] extra
        return exe
    except (ImportError, RuntimeError):
        raise SystemExit(
            "ffmpeg not found: the baseline needs it. Install the benchmark extra "
            "(pip install -e '.[bench]', as `make bench` does) or ffmpeg itself (apt-get install ffmpeg)."
        ) from None


def loudnorm(ffmpeg: str, path: Path) -> tuple[Run, dict[str, str]]:
    """ffmpeg's loudnorm measurement pass over ``path``, and the JSON it prints."""
    filt = "loudnorm=I=-16:TP=-1:LRA=11:print_format=json"
    run = measured([ffmpeg, "-hide_banner", "-nostats", "-i", str(path), "-af", filt, "-f", "null", "-"])
    found = re.findall(r"\{[^{}]*\}", run.stderr)
    if run.code != 0 or not found:
        raise SystemExit(f"ffmpeg loudnorm failed ({run.code}):\n{run.stderr[-3000:]}")
    values: dict[str, str] = json.loads(found[-1])
    return run, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="programme length (default 60)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating timed rounds of each tool (default 3)"
    )
    parser.add_argument(
        "--keep", type=Path, help="build the show here and keep it (a kept show's cache is reused)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    ffmpeg = find_ffmpeg()
    root = (args.keep or Path(tempfile.mkdtemp(prefix="mixdown-longform-"))).resolve()
    prepare(root)
    try:
        report(root, args.minutes, ffmpeg, kept=args.keep is not None, rounds=args.rounds)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


def report(root: Path, minutes: float, ffmpeg: str, *, kept: bool, rounds: int) -> None:
    import soundfile as sf

    from mixdown.actions.master import RECIPE
    from mixdown.dsp.loudness import Meter
    from mixdown.loader import load_show
    from mixdown.plan.model import section_sfx_key

    show = make_show(root, minutes)
    assets = doit(root, "-n", "2", "voice", "sfx", "music")  # untimed: only so the mix finds them cached

    loaded = load_show(root)
    cache, plan = loaded.context.cache, loaded.plan
    (mix,) = plan.mixes
    missing = [a.task for a in plan.assets.values() if not cache.path(a.key).exists()]
    if missing:
        raise SystemExit(f"assets not cached after rendering them: {', '.join(missing[:5])}")
    recipe = cache.side_path(mix.master_key, RECIPE)  # a long master is cached as its recipe
    # the sections' pre-mixes too: the timed build processes and levels every line, as a mix did
    # before sections were targets (issue 19)
    premixes = [k for key in mix.section_keys if key for k in (key, section_sfx_key(key))]
    forced = [*premixes, mix.key, mix.master_key]
    source = cache.path(mix.key)  # the float32 programme before mastering
    stages = [("mix stored", source), ("master's recipe stored", recipe)]
    stages += [(f"{p.suffix[1:]} written", p) for p in mix.outputs]

    builds: list[tuple[Run, str]] = []  # each timed doit, with when its stages were done
    bases: list[Run] = []
    ff: dict[str, str] = {}
    for _ in range(rounds):
        # force the pre-mixes, the mix, the master and the files: their objects and outputs go,
        # the assets stay
        for key in forced:
            cache.path(key).unlink(missing_ok=True)
            cache.meta_path(key).unlink(missing_ok=True)
        recipe.unlink(missing_ok=True)
        for path in mix.outputs:
            path.unlink(missing_ok=True)
        started = time.time()
        run = doit(root)  # timed: a plain build with every asset cached
        ran = {ln[3:].strip() for ln in run.stdout.splitlines() if ln.startswith(".  ")}  # tasks doit ran
        if {f"mix:{mix.name}", f"master:{mix.name}"} - ran or not source.exists():
            raise SystemExit(f"the timed doit did not mix and master {mix.name}:\n{run.stdout[-3000:]}")
        if not all(p.exists() for p in mix.outputs):
            raise SystemExit(f"the timed doit did not write {', '.join(p.name for p in mix.outputs)}")
        done = [f"{what} at {path.stat().st_mtime - started:.1f} s" for what, path in stages if path.exists()]
        builds.append((run, ", ".join(done)))
        base, ff = loudnorm(ffmpeg, source)
        bases.append(base)

    printed = [
        ln for ln in builds[-1][0].stdout.splitlines() if ln.startswith(f"master:{mix.name}") and "LUFS" in ln
    ]
    info = sf.info(str(source))
    program = info.frames * info.channels * 4
    start = time.perf_counter()
    meter = Meter(info.samplerate, info.channels)
    for block in sf.blocks(str(source), blocksize=1 << 18, dtype="float32", always_2d=True):
        meter.add(block)
    ours = meter.result()
    metering = time.perf_counter() - start
    version = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.split("\n", 1)[0]

    best, when = min(builds, key=lambda b: b[0].seconds)
    base = min(bases, key=lambda b: b.seconds)
    speed = base.seconds / best.seconds
    ratios = [b.seconds / r.seconds for (r, _), b in zip(builds, bases, strict=True)]
    memory = max(r.memory for r, _ in builds) / program
    seconds = info.frames / info.samplerate
    print(
        f"show: {show.lines} voice lines ({show.guest_lines} by the guest voice) in {show.sections} sections, "
        f"{show.cues} SFX cues in lines and {show.stings} in sequence, a music bed "
        f"({root if kept else 'temporary'})"
    )
    print(
        f"programme: {seconds / 60:.1f} min ({seconds:.1f} s) at {info.samplerate} Hz, {info.channels} channels; "
        f"float32 size {mib(program).strip()}"
    )
    print(f"render the assets first (doit -n 2 voice sfx music, untimed)  {assets.seconds:8.1f} s")
    for number, ((run, _), b) in enumerate(zip(builds, bases, strict=True), 1):
        print(
            f"round {number}: mixdown {run.seconds:5.1f} s, ffmpeg {b.seconds:5.1f} s: {b.seconds / run.seconds:.2f}x"
            f"   (mixdown {cpu_used(run)}; ffmpeg {cpu_used(b)})"
        )
    print(f"mixdown: doit (pre-mixes, mix, master, WAV + MP3){best.seconds:8.1f} s   best of {rounds}")
    print(
        f"  peak RSS {mib(max(r.peak_rss for r, _ in builds)).strip()}, and in memory files "
        f"(tmpfs: the voice bus's scratch) at most {mib(max(r.in_memory_files for r, _ in builds)).strip()}"
    )
    print(f"  {when}")
    print(f"  {cpu_used(best)}")
    print(
        f"baseline: ffmpeg loudnorm measurement     {base.seconds:8.1f} s   best of {rounds}"
        f"   peak RSS {mib(base.peak_rss).strip()}"
    )
    print(f"  {cpu_used(base)}")
    print(f"  {version} ({ffmpeg})")
    print(
        f"speed:  best ffmpeg / best mixdown  {speed:6.2f}x   target >= {SPEED_TARGET:g}x   "
        f"{verdict(speed >= SPEED_TARGET)}   (the rounds: {', '.join(f'{r:.2f}x' for r in ratios)}; "
        f"median {statistics.median(ratios):.2f}x)"
    )
    print(
        f"memory: (RSS + memory files) / float32 size {memory:5.2f}x   target <  {MEMORY_TARGET:g}x   "
        f"{verdict(memory < MEMORY_TARGET)}   (the largest of the rounds)"
    )
    print(
        f"the mix as measured: ffmpeg {float(ff['input_i']):.1f} LUFS {float(ff['input_tp']):.1f} dBTP; "
        f"mixdown {ours.integrated:.1f} LUFS {ours.true_peak:.1f} dBTP ({metering:.1f} s, streamed from the file)"
    )
    print("the build printed:")
    for line in printed:
        print(f"  {line}")


if __name__ == "__main__":
    main()
