"""Cache bytes per programme minute: a show of several variants with stems, built once.

Generates the longform benchmarks' show (``longshow.py``: speech-like lines
from a renderer in the show's own renderers/, synth SFX, the synth bed, 48 kHz
stereo) with a CSV of variants, a personalised line opening its first and
last sections (so those sections, and every mix, are per variant) and
``[master] stems = true``; builds it with ``doit -n 2 -P thread`` and tallies
the cache by what each file is (its record's ``kind``, and side files by
name). Prints each kind's bytes and bytes on disk (the blocks allocated: long
silences are left as holes), the total on disk per programme minute, and what a
show of 5 variants x 14 minutes (the issue's example) would need at that rate,
against the target of under 1 GiB. Exits 0 whatever the figures; non-zero
only if the build fails.

Usage: ``python benchmarks/cachesize.py [--minutes M] [--variants V] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import tempfile
from pathlib import Path

from longshow import SCRIPT, cpu_used, doit, make_show, mib, verdict

TARGET = 1 << 30  # bytes of cache for 5 variants x 14 minutes with stems, under
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
    parser.add_argument("--minutes", type=float, default=2.0, help="programme length of each variant")
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build in DIR (emptied first) and leave it there")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="mixdown-cachesize-"))
    if args.keep and root.exists():
        shutil.rmtree(root)
    try:
        make_variants(root, args.minutes, args.variants)
        run = doit(root, "-n", "2", "-P", "thread")
        found = tally(root / "cache")
        programme = (
            sum(
                json.loads(p.read_text("utf-8"))["duration"]
                for p in (root / "cache" / "objects").glob("*/*.json")
                if json.loads(p.read_text("utf-8")).get("kind") == "mix"
            )
            / 60
        )
        total = sum(disk for _, _, disk in found.values())
        print(
            f"{args.variants} variants x {args.minutes:g} min, stems: built in {run.seconds:.1f} s "
            f"({cpu_used(run)})"
        )
        print(f"  {'':<28} {'':11} {'bytes':>12} {'on disk':>12}  {'on disk/programme min':>8}")
        for label, (count, size, disk) in sorted(found.items(), key=lambda item: -item[1][2]):
            per = disk / programme / 2**20
            print(f"  {label:<28} {count:5d} files {mib(size)} {mib(disk)}  {per:7.2f} MiB/min")
        size = sum(size for _, size, _ in found.values())
        per_minute = total / programme
        print(f"  {'total':<28} {'':11} {mib(size)} {mib(total)}  {per_minute / 2**20:7.2f} MiB/min")
        example = per_minute * EXAMPLE_MINUTES
        print(
            f"5 variants x 14 min at this rate: {example / 2**30:.2f} GiB on disk "
            f"(target under {TARGET / 2**30:.0f} GiB: {verdict(example < TARGET)})"
        )
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
