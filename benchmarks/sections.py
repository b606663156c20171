"""Rebuild a 1-hour programme after a one-sentence edit, against the full build of the same programme.

Generates the longform show (``longshow.py``: about 510 speech-like voice
lines from a renderer in the show's own renderers/, two voices, synth SFX
inside lines and in sequence, the synth music bed, [master] preset
"podcast" with WAV and MP3) and times, in the same run, ``doit`` in the show
directory as a user runs it:

* FULL: from an empty cache: every voice line, SFX and bed segment rendered,
  then the mix, the master and the WAV + MP3 files;
* EDIT-SAME: one sentence in the middle of the script changed to other words
  with as many characters (the show's speech renderer makes
  ``len(text) / 14`` seconds of audio, so the line renders at exactly the
  same length, as the benchmark checks);
* EDIT-LONGER: that sentence changed again, 28 characters (2 s) longer.

With ``--rounds N`` the two edits repeat, each round with new words and the
script reverted and built in between (untimed), and the best time of each
is taken. FULL runs once (an empty cache is dear to make again), so a
neighbour's load during it flatters every ratio: each build prints its CPU
time and the hypervisor's steal, and the ratios are also given in CPU time,
which such load moves far less. The baseline is FULL: before
sections were targets (issue 19), any edit re-mixed and re-mastered the
whole programme, so a rebuild took about as long as FULL. The targets: a
same-length edit rebuilds in at most 10% of the full build's time, a
length-changing one in at most 50%.

Prints each time, the ratios rebuild / full with PASS or MISS, what each
rebuild did (the tasks doit ran, counted by group, and the lines the build
printed, a master's ``spliced`` line among them), and checks each master:
its integrated loudness and true peak in build/*.wav against the preset, and
how much of the WAV changed since the build before (bytes, and how many of
its 120 s stretches). Exits 0 whatever the figures; non-zero only if
something fails (a build, an edit that did not render as planned, a master
out of spec).

Usage: ``python benchmarks/sections.py [--minutes N] [--rounds N] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longshow import CPS, SCRIPT, WORDS, Run, cpu_used, doit, make_show, prepare, verdict

SAME_TARGET = 0.10  # a same-length edit's rebuild / the full build, at most
LONGER_TARGET = 0.50  # a length-changing edit's rebuild / the full build, at most
LONGER_SECONDS = 2.0  # how much longer EDIT-LONGER makes the line
STRETCH_SECONDS = 120.0  # the WAV is compared in stretches this long
TOLERANCE_LU = 1.0  # the master's files are checked at its target ±1 LU (mixdown.actions.master)
# a long mix or master's progress line (mixdown.actions.progress): "mix:x  mixed 0:06:00 of 0:59:38"
PROGRESS = re.compile(r" (?P<done>\d+:\d\d:\d\d) of (?P<of>\d+:\d\d:\d\d)$")
PREVIOUS = "previous-build.wav"  # the WAV before a rebuild, kept in the show's root to compare


@dataclass(frozen=True)
class Script:
    """The show's script as its paragraphs, and the one the edits change."""

    path: Path
    paragraphs: tuple[str, ...]
    edited: int  # the index of the edited paragraph: a plain line (no cue, no voice) in the middle

    @classmethod
    def read(cls, root: Path) -> Script:
        """The script :func:`longshow.make_show` wrote in ``root``, and the plain line nearest its middle."""
        path = root / "stanzas" / f"{SCRIPT}.j2"
        paragraphs = tuple(path.read_text().rstrip("\n").split("\n\n"))
        plain = [i for i, p in enumerate(paragraphs) if "[" not in p and not p.startswith("#")]
        if not plain:
            raise SystemExit(f"{path}: no line without cues or voice tags to edit")
        middle = len(paragraphs) / 2
        return cls(path, paragraphs, min(plain, key=lambda i: abs(i - middle)))

    @property
    def original(self) -> str:
        """The edited line's text as generated."""
        return self.paragraphs[self.edited]

    def write(self, text: str) -> None:
        """The script with the edited line's text replaced by ``text``."""
        paragraphs = list(self.paragraphs)
        paragraphs[self.edited] = text
        self.path.write_text("\n\n".join(paragraphs) + "\n")


def same_length(text: str, rng: random.Random) -> str:
    """``text`` with each word changed to another of the same length (punctuation kept)."""
    out = []
    for word in text.split(" "):
        core = word.rstrip(".,")
        others = [w for w in WORDS if len(w) == len(core) and w != core.lower()]
        new = rng.choice(others) if others else core
        out.append((new.capitalize() if core[:1].isupper() else new) + word[len(core) :])
    return " ".join(out)


def lengthened(text: str, extra: int, rng: random.Random) -> str:
    """``text`` (a sentence ending in ``.``) with words added before its end: ``extra`` characters more."""
    added, left = [], extra
    while left > 0:  # every word takes a space; the last one fits exactly (WORDS has every length 1-10)
        fits = [w for w in WORDS if len(w) + 1 == left] if left <= 11 else []
        word = rng.choice(fits or [w for w in WORDS if len(w) + 1 <= left - 2])
        added.append(word)
        left -= len(word) + 1
    longer = text[:-1] + "".join(f" {w}" for w in added) + text[-1]
    assert len(longer) == len(text) + extra, (text, longer)
    return longer


@dataclass(frozen=True)
class Master:
    """The built master's WAV as measured, and what changed from the build before."""

    integrated: float
    true_peak: float
    valid: bool
    changed: str  # the comparison with the WAV before, as printed ("" for the first build)


@dataclass
class Build:
    """One timed ``doit``: what it ran and printed, and the master it left."""

    what: str
    run: Run
    master: Master
    ran: Counter[str] = field(default_factory=Counter)  # tasks doit ran, by group (voice, mix, …)
    up_to_date: int = 0
    printed: list[str] = field(default_factory=list)  # the build's other lines (the master's, …)
    line: str = ""  # the edited line's task and length, for an edit
    stages: str = ""  # when the mix and master were stored and the files written

    @classmethod
    def of(cls, what: str, run: Run, master: Master, stages: str) -> Build:
        """Read ``run``'s output: ``.  task`` lines ran, ``-- task`` lines were up to date; of the
        progress lines of a long mix or master, only each step's last (``… 0:59:38 of 0:59:38``)."""
        build = cls(what, run, master, stages=stages)
        for text in run.stdout.splitlines():
            progress = PROGRESS.search(text)
            if text.startswith(".  "):
                build.ran[text[3:].strip().split(":", 1)[0]] += 1
            elif text.startswith("-- "):
                build.up_to_date += 1
            elif text.strip() and (progress is None or progress["done"] == progress["of"]):
                build.printed.append(text.rstrip())
        return build

    def describe(self, full: float) -> list[str]:
        """The build as printed: its time (and share of ``full``), what it ran, its master."""
        share = f"  {self.run.seconds / full:6.1%} of FULL" if self.what != "FULL" else ""
        ran = ", ".join(f"{group} {n}" for group, n in self.ran.items()) or "nothing"
        out = [f"{self.what:<12}{self.run.seconds:8.1f} s{share}   ({cpu_used(self.run)})"]
        if self.line:
            out.append(f"  edited: {self.line}")
        out.append(f"  ran: {ran}; up to date: {self.up_to_date}")
        out.append(f"  {self.stages}")
        out += [f"  printed: {text}" for text in self.printed[:12]]
        if len(self.printed) > 12:
            out.append(f"  printed: … and {len(self.printed) - 12} more lines")
        m = self.master
        state = "valid" if m.valid else "OUT OF SPEC"
        out.append(f"  master: build/{SCRIPT}.wav {m.integrated:.2f} LUFS {m.true_peak:.2f} dBTP: {state}")
        if m.changed:
            out.append(f"  WAV since the build before: {m.changed}")
        return out


def measure(wav: Path, master: dict[str, Any]) -> tuple[float, float, bool]:
    """``wav``'s integrated loudness and true peak, and whether they meet the ``master`` settings."""
    import soundfile as sf

    from mixdown.dsp.loudness import Meter

    info = sf.info(str(wav))
    meter = Meter(info.samplerate, info.channels)
    for block in sf.blocks(str(wav), blocksize=1 << 18, dtype="float32", always_2d=True):
        meter.add(block)
    found = meter.result()
    target, ceiling = master["target_lufs"], master["ceiling_dbtp"]
    valid = abs(found.integrated - target) <= TOLERANCE_LU and found.true_peak <= ceiling
    return found.integrated, found.true_peak, valid


def stages(root: Path, started: float) -> str:
    """When the build that began at ``started`` (``time.time()``) stored its mix and master and wrote
    its files, from their times of modification."""
    from mixdown.actions.master import RECIPE
    from mixdown.loader import load_show

    show = load_show(root)
    (mix,) = show.plan.mixes
    cache = show.context.cache
    found = [
        ("mix stored", cache.path(mix.key)),
        ("master's recipe stored", cache.side_path(mix.master_key, RECIPE)),
    ]
    found += [(f"{path.suffix[1:]} written", path) for path in mix.outputs]
    made = [(what, path.stat().st_mtime - started) for what, path in found if path.exists()]
    return ", ".join(f"{what} at {at:.1f} s" for what, at in made if at >= 0) or "nothing stored or written"


def differing(a: Any, b: Any, start: int, stop: int) -> int:
    """How many bytes differ between the byte arrays ``a`` and ``b`` in ``[start, stop)``."""
    import numpy as np

    chunk = 1 << 24
    return sum(
        int(np.count_nonzero(a[i : min(i + chunk, stop)] != b[i : min(i + chunk, stop)]))
        for i in range(start, stop, chunk)
    )


def first_difference(a: Any, b: Any) -> int:
    """The index of the first byte where ``a`` and ``b`` differ (the shorter's length if none)."""
    import numpy as np

    common, chunk = min(a.size, b.size), 1 << 24
    for i in range(0, common, chunk):
        found = np.flatnonzero(a[i : i + chunk] != b[i : i + chunk])
        if found.size:
            return i + int(found[0])
    return common


def compared(old: Path, new: Path) -> str:
    """How ``new`` differs from ``old`` byte for byte: how many bytes, in how many 120 s stretches,
    and between which times (the bytes after a length change compared aligned at the end)."""
    import numpy as np
    import soundfile as sf

    info = sf.info(str(new))
    width = {"PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4}.get(info.subtype, 4)
    rate = info.samplerate * info.channels * width  # bytes a second
    header = new.stat().st_size - info.frames * info.channels * width
    files = np.memmap(old, np.uint8, "r"), np.memmap(new, np.uint8, "r")
    heads = files[0][:header], files[1][:header]
    a, b = files[0][header:], files[1][header:]  # the samples (both headers are as long)
    common, stretch = min(a.size, b.size), int(STRETCH_SECONDS * rate)
    counts = [differing(a, b, i, min(i + stretch, common)) for i in range(0, common, stretch)]
    in_header = int(np.count_nonzero(heads[0] != heads[1]))
    total = sum(counts) + abs(a.size - b.size)
    if not total + in_header:
        return f"identical ({files[1].size:,} bytes)"
    changed = {i for i, n in enumerate(counts) if n}
    if a.size != b.size:  # the bytes only one file has: the stretches they fall in
        changed |= set(range(common // stretch, -(-max(a.size, b.size) // stretch)))
    first = first_difference(a, b)
    last = b.size - first_difference(a[::-1], b[::-1]) if total else first
    span = f"{first / rate:.1f} s to {last / rate:.1f} s" if total else "nowhere"
    span += f" (and {in_header} bytes of the header)" if in_header else ""
    size = f"; its length changed by {b.size - a.size:+,} bytes" if a.size != b.size else ""
    return (
        f"{total:,} of {b.size:,} sample bytes differ, in {len(changed)} of {-(-b.size // stretch)} "
        f"stretches of {STRETCH_SECONDS:g} s; the differing bytes run from {span}{size}"
    )


class Benchmark:
    """The show in ``root``: its builds, timed, and the checks of each one's master."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.wav = root / "build" / f"{SCRIPT}.wav"
        self.problems: list[str] = []  # what failed: reported after the figures, then exit 1

    def build(self, what: str) -> Build:
        """``doit`` in the show, timed; then its master measured and compared with the WAV before."""
        from mixdown.loader import load_show

        previous = self.root / PREVIOUS
        previous.unlink(missing_ok=True)
        before = None
        if self.wav.exists():  # a hard link keeps the bytes before: mixdown renames a new file over it
            os.link(self.wav, previous)
            before = previous.stat()
        started = time.time()
        run = doit(self.root)
        if not self.wav.exists():
            raise SystemExit(f"{what}: doit left no build/{self.wav.name}:\n{run.stdout[-3000:]}")
        after = self.wav.stat()
        if before and after.st_ino == before.st_ino and after.st_mtime_ns != before.st_mtime_ns:
            self.problems.append(f"{what}: build/{self.wav.name} was written in place, not replaced whole")
        (mix,) = load_show(self.root).plan.mixes
        integrated, true_peak, valid = measure(self.wav, mix.master)
        if not valid:
            self.problems.append(f"{what}: build/{self.wav.name} is out of the preset's spec")
        changed = compared(previous, self.wav) if previous.exists() else ""
        previous.unlink(missing_ok=True)
        return Build.of(what, run, Master(integrated, true_peak, valid, changed), stages(self.root, started))

    def line_length(self, text: str) -> tuple[str, float]:
        """The voice task that speaks ``text``, and the seconds its render lasts."""
        from mixdown.loader import load_show

        show = load_show(self.root)
        for asset in show.plan.assets.values():
            if asset.kind == "voice" and asset.text == text.strip():
                frames, rate, _ = show.context.cache.info(asset.key)
                return asset.task, frames / rate
        raise SystemExit(f"no voice line speaks {text!r}: the edit did not reach the plan")

    def edit(self, what: str, script: Script, text: str, was: float) -> Build:
        """Write ``text`` as the edited line, build, and check the line rendered as long as meant."""
        script.write(text)
        build = self.build(what)
        task, seconds = self.line_length(text)
        meant = was if what == "EDIT-SAME" else was + LONGER_SECONDS
        if abs(seconds - meant) > 1e-3:
            self.problems.append(f"{what}: {task} renders {seconds:.3f} s, not {meant:.3f} s")
        build.line = f"{task}, {len(text)} characters, {seconds:.3f} s (was {was:.3f} s): {text!r}"
        return build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="programme length (default 60)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="EDIT-SAME / EDIT-LONGER pairs, best of each taken (default 1)"
    )
    parser.add_argument(
        "--keep", type=Path, help="build the show here and keep it (its cache is emptied first)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    root = (args.keep or Path(tempfile.mkdtemp(prefix="mixdown-sections-"))).resolve()
    prepare(root, keep_cache=False)  # FULL starts from an empty cache
    try:
        report(root, args.minutes, rounds=args.rounds, kept=args.keep is not None)
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


def report(root: Path, minutes: float, *, rounds: int, kept: bool) -> None:
    """Generate the show, build it, edit it and rebuild it, printing each build as it ends."""
    show = make_show(root, minutes)
    script = Script.read(root)
    bench = Benchmark(root)
    print(
        f"show: {show.lines} voice lines ({show.guest_lines} by the guest voice) in {show.sections} sections, "
        f"{show.cues} SFX cues in lines and {show.stings} in sequence, a music bed; {minutes:g} min "
        f"({root if kept else 'temporary'})",
        flush=True,
    )
    full = bench.build("FULL")
    task, was = bench.line_length(script.original)
    print(f"the edited line: {task}, paragraph {script.edited + 1} of {len(script.paragraphs)}, {was:.3f} s")
    builds = [full]
    print("\n".join(full.describe(full.run.seconds)), flush=True)
    for number in range(rounds):
        rng = random.Random(number)
        same = same_length(script.original, rng)
        longer = lengthened(same, round(LONGER_SECONDS * CPS), rng)
        for what, text in (("EDIT-SAME", same), ("EDIT-LONGER", longer)):
            builds.append(bench.edit(what, script, text, was))
            print("\n".join(builds[-1].describe(full.run.seconds)), flush=True)
        if number + 1 < rounds:  # untimed: the next round edits the script as generated
            script.write(script.original)
            doit(root)
    for what, target in (("EDIT-SAME", SAME_TARGET), ("EDIT-LONGER", LONGER_TARGET)):
        best = min(b.run.seconds for b in builds if b.what == what)
        cpu = min(b.run.cpu for b in builds if b.what == what)
        ratio = best / full.run.seconds
        print(
            f"{what:<12} best of {rounds}: {best:6.1f} s / FULL {full.run.seconds:6.1f} s = {ratio:6.1%}   "
            f"target <= {target:.0%}   {verdict(ratio <= target)}   "
            f"(CPU time: {cpu:.1f} s / {full.run.cpu:.1f} s = {cpu / max(full.run.cpu, 1e-9):.1%})"
        )
    if bench.problems:
        raise SystemExit("failed: " + "; ".join(bench.problems))


if __name__ == "__main__":
    main()
