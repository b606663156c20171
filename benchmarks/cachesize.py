"""Cache bytes for a show of several variants with stems, built once: compact, and a float baseline.

Generates the longform benchmarks' show (``longshow.py``: speech-like lines
from a renderer in the show's own renderers/, synth SFX, the synth bed, 48 kHz
stereo) with a CSV of variants, a personalised line opening its first and
last sections (so those sections, and every mix, are per variant) and
``[master] stems = true``; builds it with ``doit -n 2 -P thread`` as it is (a
show with variants keeps its mixes and pre-mixes compact: 24-bit FLAC), and
again with ``[cache] compact = false`` (float32 objects, the named baseline),
and tallies each cache by what each file is (its record's ``kind`` and
``codec``, side files by name). Prints each kind's bytes and bytes on disk
(the blocks allocated: long silences in float objects are left as holes),
the totals, the ratio to the baseline, the build times, and the verdict
against the issue's target: 5 variants x 14 minutes (the default) under
1 GiB on disk. Exits 0 whatever the figures; non-zero only if a build fails.

Usage: ``python benchmarks/cachesize.py [--minutes M] [--variants V] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
from pathlib import Path
from typing import Any

from longshow import SCRIPT, cpu_used, doit, make_show, mib, verdict, workdir

TARGET = 1 << 30  # bytes of cache for 5 variants x 14 minutes with stems: under this
EXAMPLE_MINUTES = 5 * 14


def make_variants(root: Path, minutes: float, variants: int) -> None:
    """:func:`longshow.make_show`, with ``variants`` listeners greeted by name and stems asked for."""
    make_show(root, minutes)
    (root / "data").mkdir(exist_ok=True)
    rows = "".join(f"p{i},Listener{i}\n" for i in range(variants))
    (root / "data" / "listeners.csv").write_text("id,name\n" + rows)
    project = (root / "project.toml").read_text()
    template = f'template = "stanzas/{SCRIPT}.j2"'
    project = project.replace(template, f'{template}\nvariants = "data/listeners.csv"')
    project = project.replace('formats = ["wav", "mp3"]', 'formats = ["wav", "mp3"]\nstems = true')
    (root / "project.toml").write_text(project)
    stanza = root / "stanzas" / f"{SCRIPT}.j2"
    sections = stanza.read_text().split("\n## ")
    sections[0] = sections[0].replace("\n", "\n\nGood morning {{ name }}, here is the show.\n", 1)
    sections[-1] = sections[-1].replace("\n", "\n\nThat was the show, {{ name }}. Until tomorrow.\n", 1)
    stanza.write_text("\n## ".join(sections))


def tally(cache: Path) -> dict[str, tuple[int, int, int]]:
    """Files, bytes and bytes on disk (blocks allocated: a run of silence left as a hole takes
    none) in ``cache`` by what they are: ``kind (codec)`` of objects, ``side NAME`` of the files
    kept beside them, ``record`` for the records."""
    found: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for path in (cache / "objects").glob("*/*"):
        key, _, name = path.name.partition(".")
        if name == "json":
            label = "record"
        elif name == "wav":
            record = json.loads(path.with_name(f"{key}.json").read_text("utf-8"))
            bus = f" {record['bus']}" if record.get("kind") in ("stem", "section") and "bus" in record else ""
            label = f"{record.get('kind', '?')}{bus} ({record.get('codec', 'float32')})"
        else:
            label = f"side {name}"
        stat = path.stat()
        found[label][0] += 1
        found[label][1] += stat.st_size
        found[label][2] += stat.st_blocks * 512
    return {label: (n, size, disk) for label, (n, size, disk) in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=14.0, help="programme length of each variant")
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build in DIR/compact and DIR/float (emptied first)")
    args = parser.parse_args()
    base = workdir(args.keep, "mixdown-cachesize-")
    try:
        totals = {}
        for name in ("compact", "float"):
            root = base / name
            make_variants(root, args.minutes, args.variants)
            if name == "float":
                with (root / "project.toml").open("a") as toml:
                    toml.write("\n[cache]\ncompact = false\n")
            run = doit(root, "-n", "2", "-P", "thread")
            totals[name] = report(name, root / "cache", run, args)
        ratio = totals["compact"] / totals["float"]
        print(f"compact / float (the baseline, built in the same run): {ratio:.2f} of the bytes on disk")
        scaled = totals["compact"] * EXAMPLE_MINUTES / (args.minutes * args.variants)
        measured = "measured" if (args.minutes, args.variants) == (14, 5) else "at this rate"
        print(
            f"5 variants x 14 min with stems, compact: {scaled / 2**30:.2f} GiB on disk ({measured}; "
            f"target under {TARGET / 2**30:.0f} GiB: {verdict(scaled < TARGET)})"
        )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


def report(name: str, cache: Path, run: Any, args: argparse.Namespace) -> int:
    """Print ``cache``'s tally by kind, per programme minute; return its bytes on disk."""
    found = tally(cache)
    programme = (
        sum(
            json.loads(p.read_text("utf-8"))["duration"]
            for p in (cache / "objects").glob("*/*.json")
            if json.loads(p.read_text("utf-8")).get("kind") == "mix"
        )
        / 60
    )
    total = sum(disk for _, _, disk in found.values())
    print(
        f"{name}: {args.variants} variants x {args.minutes:g} min, stems: built in {run.seconds:.1f} s "
        f"({cpu_used(run)})"
    )
    print(f"  {'':<28} {'':11} {'bytes':>12} {'on disk':>12}  {'on disk/programme min':>8}")
    for label, (count, size, disk) in sorted(found.items(), key=lambda item: -item[1][2]):
        per = disk / programme / 2**20
        print(f"  {label:<28} {count:5d} files {mib(size)} {mib(disk)}  {per:7.2f} MiB/min")
    size = sum(size for _, size, _ in found.values())
    print(f"  {'total':<28} {'':11} {mib(size)} {mib(total)}  {total / programme / 2**20:7.2f} MiB/min")
    return total


if __name__ == "__main__":
    main()
