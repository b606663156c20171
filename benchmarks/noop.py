"""No-op rebuild of a 10,000-line show, against the cost of importing doit.

Generates a synthetic show (10 scripts x 1,000 voice lines, a stub TTS
renderer in the show's own renderers/), builds it once, then times:

* ``doit`` with nothing to do (the number that matters after every edit),
  in turns with ``python -c "import doit"`` (the baseline: doit's own floor),
* ``doit list --all`` and a run selecting one voice line by name,
* an edit of one sentence (must render exactly one line).

Prints medians and ratios. Usage: ``python benchmarks/noop.py [--lines N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPTS = 10
RUNS = 11  # no-op and baseline runs, in turns (medians)

STUB = '''
import numpy as np
from mixdown.renderers import RendererBase, RenderResult


class Renderer(RendererBase):
    """A stand-in TTS: 50 ms of tone per line, so the benchmark measures the build tool."""

    kinds = frozenset({"voice"})
    params = {"pitch": (int, float)}

    def render(self, request):
        t = np.arange(800) / 16000
        f = 150 + (hash(request.text) % 200)
        return RenderResult((0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32)[:, None], 16000)
'''

PROJECT = """
[project]
name = "Benchmark"
voice = "stub"

[voices.stub]
renderer = "stub"

[mix]
line_gap = 0.02
section_gap = 0.1

[master]
formats = ["wav"]
{scripts}
[tool.doit]
"""

DOIT_CFG = """[GLOBAL]
loader = mixdown

[LOADER]
mixdown = mixdown.loader:MixdownLoader
"""


def make_show(root: Path, lines: int) -> None:
    (root / "renderers").mkdir(parents=True)
    (root / "stanzas").mkdir()
    (root / "renderers" / "stub.py").write_text(STUB)
    (root / "doit.cfg").write_text(DOIT_CFG)
    per_script = lines // SCRIPTS
    tables = []
    for s in range(SCRIPTS):
        body = []
        for section in range(per_script // 100):
            body.append(f"## part{section}")
            body += [f"Script {s} part {section} line {i} says something new.\n" for i in range(100)]
        (root / "stanzas" / f"s{s:02d}.j2").write_text("\n".join(body))
        tables.append(f'\n[scripts.s{s:02d}]\ntemplate = "stanzas/s{s:02d}.j2"\n')
    (root / "project.toml").write_text(PROJECT.format(scripts="".join(tables)).replace("[tool.doit]\n", ""))


def byte_compile() -> None:
    """Byte-compile mixdown as pip does for an installed package.

    An editable install is compiled on first import and cached in
    ``__pycache__``, unless PYTHONDONTWRITEBYTECODE is set (as on some CI
    machines), in which case every run would recompile mixdown from source
    and the benchmark would time the compiler instead of the build.
    """
    import compileall

    import mixdown

    compileall.compile_dir(Path(mixdown.__file__).parent, quiet=1)


def run(root: Path, *args: str) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "doit", *args], cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode not in (0, None):
        raise SystemExit(f"doit {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def median_of(fn: object, runs: int) -> float:
    return statistics.median(fn() for _ in range(runs))  # type: ignore[operator]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="build the show here and keep it")
    args = parser.parse_args()
    if args.lines < SCRIPTS * 100:
        parser.error(f"--lines must be at least {SCRIPTS * 100} (scripts of whole 100-line sections)")
    last = args.lines // SCRIPTS // 100 - 1  # the last section of every script: what is selected and edited
    root = args.keep or Path(tempfile.mkdtemp(prefix="mixdown-bench-"))
    if root.exists() and any(root.iterdir()):
        shutil.rmtree(root)
    root.mkdir(parents=True, exist_ok=True)
    byte_compile()
    try:
        make_show(root, args.lines)
        first, _ = run(root, "-n", "2")
        noops, baselines = [], []
        for _ in range(RUNS):  # in turns: a busy neighbour slows both alike
            noops.append(run(root)[0])
            baselines.append(_time([sys.executable, "-c", "import doit"]))
        noop, baseline = statistics.median(noops), statistics.median(baselines)
        listing, listed = run(root, "list", "--all")
        voices = sum(line.startswith("voice:") for line in listed.splitlines())
        one = median_of(lambda: run(root, f"voice:s03/part{last}/7")[0], 3)
        script = root / "stanzas" / "s05.j2"
        said = f"part {last} line 42 says"
        script.write_text(script.read_text().replace(said, f"part {last} line 42 now says"))
        change, out = run(root)
        rendered = [ln for ln in out.splitlines() if ln.startswith(".  voice:")]
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    print(f"show: {args.lines} voice lines in {SCRIPTS} scripts ({root if args.keep else 'temporary'})")
    print(f"first build (doit -n 2)            {first:8.2f} s")
    print(f"baseline: python -c 'import doit'  {baseline:8.3f} s")
    print(f"no-op doit                         {noop:8.3f} s   ratio to baseline {noop / baseline:5.2f}x")
    print(f"doit list --all                    {listing:8.3f} s   {voices} voice targets listed")
    print(f"doit voice:s03/part{last}/7 (one, cached){one:7.3f} s")
    print(f"edit one sentence, doit            {change:8.3f} s   voice lines rendered: {len(rendered)}")
    if voices != args.lines or len(rendered) != 1:
        raise SystemExit("FAILED: every line must be listed, and one edit must render exactly one line")


def _time(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
