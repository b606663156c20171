"""``--shard I/N``: N machines share a night's renditions, stably and disjointly, through the remote cache."""

from __future__ import annotations

import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mixdown import cli
from mixdown.loader import load_show
from mixdown.plan import lock, shards
from mixdown.plan.model import KINDS, Plan
from mixdown.plan.shards import Shard, parse, select, shard_of
from mixdown.renderers import Registry

from .conftest import ABOUT_THE_BUILD
from .test_build import doit, ran

ROWS = 1000


def people(ids: list[str]) -> str:
    return "id,name\n" + "".join(f"{i},{i.title()}\n" for i in ids)


def planned(root: Path, fakes: dict[str, Any]) -> Plan:
    return load_show(root, registry=Registry(root, extra=fakes)).plan


@pytest.fixture(scope="module")
def thousand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Plan, Plan]:
    """The test show's plan with a 1,000-row CSV, and with one more row in the middle and the rows shuffled."""
    from .conftest import BASIC_TOML, BRIEFING, EXTRA, CountingSound, CountingVoice

    ids = [f"p{n:04d}" for n in range(ROWS)]
    shuffled = [*ids[:500], "newcomer", *ids[500:]]
    random.Random(7).shuffle(shuffled)
    plans = []
    for name, rows in (("before", ids), ("after", shuffled)):
        root = tmp_path_factory.mktemp(name)
        for path, text in {
            "project.toml": BASIC_TOML,
            "stanzas/briefing.j2": BRIEFING,
            "stanzas/extra.j2": EXTRA,
            "data/people.csv": people(rows),
        }.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        plans.append(planned(root, {"fake": CountingVoice(), "noise": CountingSound()}))
    return plans[0], plans[1]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_the_shards_partition_every_rendition_and_hold_all_they_use(
    thousand: tuple[Plan, Plan], count: int
) -> None:
    whole, _ = thousand
    assert len(whole.mixes) == ROWS + 1  # one briefing per row, and the script without variants
    parts = [select(whole, Shard(index, count)) for index in range(count)]
    names = [mix.name for part in parts for mix in part.mixes]
    assert sorted(names) == sorted(mix.name for mix in whole.mixes)  # each exactly once
    assert set().union(*(part.assets for part in parts)) == set(whole.assets)
    assert set().union(*(part.sections for part in parts)) == set(whole.sections)
    for index, part in enumerate(parts):
        # a hash of the name: near 1/N of the renditions each (3.5 standard deviations of a binomial)
        expected = len(whole.mixes) / count
        assert abs(len(part.mixes) - expected) <= 3.5 * (expected * (1 - 1 / count)) ** 0.5 + 1e-9
        used = {key for mix in part.mixes for key in mix.assets}
        assert set(part.assets) == used
        sections = {key for mix in part.mixes for key in mix.section_keys if key is not None}
        assert set(part.sections) == sections
        for section in part.sections.values():
            mix = part.mix_named(section.mix)  # made from a use within the shard
            assert mix.section_keys[section.index] == section.key
            assert section.task == whole.sections[section.key].task  # named as in the whole show
        assert all(shard_of(mix.name, count) == index for mix in part.mixes)


def test_adding_a_row_and_reordering_the_csv_moves_no_other_rendition(thousand: tuple[Plan, Plan]) -> None:
    before, after = thousand
    assert len(after.mixes) == len(before.mixes) + 1
    for count in (2, 3, 8):
        where = {
            mix.name: index for index in range(count) for mix in select(before, Shard(index, count)).mixes
        }
        now = {mix.name: index for index in range(count) for mix in select(after, Shard(index, count)).mixes}
        assert now.keys() - where.keys() == {"news/briefing@newcomer"}
        assert {name: now[name] for name in where} == where


def test_each_shard_makes_the_shared_assets_it_owns_first_and_those_others_own_last(
    thousand: tuple[Plan, Plan],
) -> None:
    whole, _ = thousand
    count = 3
    users: dict[str, set[int]] = {}
    for mix in whole.mixes:
        for key in mix.assets:
            users.setdefault(key, set()).add(shard_of(mix.name, count))
    shared = {key for key, found in users.items() if len(found) > 1}
    assert shared and len(shared) < len(whole.assets)
    first: dict[str, list[int]] = {key: [] for key in shared}  # the shards that make it before their own
    for index in range(count):
        order = list(select(whole, Shard(index, count)).assets)
        own = [i for i, key in enumerate(order) if key not in shared]
        assert own == list(range(own[0], own[-1] + 1))  # the shard's own assets in one run
        for key in order[: own[0]]:
            first[key].append(index)
        assert set(order[: own[0]] + order[own[-1] + 1 :]) == {k for k in shared if index in users[k]}
    assert all(len(found) == 1 for found in first.values())  # each shared asset: one shard makes it first


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("9/8", "--shard 9/8: shards count from 0, so I runs from 0 to 7 for N = 8: write 0/8 to 7/8"),
        (
            "8/8",
            "--shard 8/8: shards count from 0, so I runs from 0 to 7 for N = 8: write 0/8 to 7/8 (7/8 if",
        ),
        ("-1/4", "--shard -1/4: shards count from 0"),
        ("1/0", "--shard 1/0: write the shard as I/N"),
        ("3", "--shard 3: write the shard as I/N"),
        ("a/b", "--shard a/b: write the shard as I/N"),
        ("1/4/2", "--shard 1/4/2: write the shard as I/N"),
    ],
)
def test_a_bad_shard_is_one_line_saying_what_to_write(
    show: Callable[..., Path], capsys: pytest.CaptureFixture[str], value: str, said: str
) -> None:
    root = show()
    assert cli.main(["build", f"--shard={value}", "-d", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"mixdown: {said}"), err
    assert not (root / "build").exists() and not (root / "cache").exists()


def test_parse_reads_what_kubernetes_and_github_give() -> None:
    assert parse("0/4") == Shard(0, 4) and parse("3/4") == Shard(3, 4) and parse(" 2/8 ") == Shard(2, 8)
    assert str(parse("0/1")) == "0/1"


def test_doit_takes_the_shard_as_an_option_or_from_the_environment(
    show: Callable[..., Path], fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = show()
    code, out, err = doit(root, fakes, "list", "--all", "--shard", "0/2")
    assert code == 0, out + err
    listed = {line.split()[0] for line in out.splitlines() if line.strip()}
    renditions = {"news/briefing@kofi", "news/extra"}  # shard_of(name, 2) == 0; news/briefing@anna is 1
    assert {t for t in listed if t.startswith(("mix:", "master:"))} == {
        f"{kind}:{name}" for kind in ("mix", "master") for name in renditions
    }
    assert "voice:news/briefing/close/0@kofi" in listed and "voice:news/briefing/close/0@anna" not in listed

    monkeypatch.setenv("MIXDOWN_SHARD", "1/2")
    code, out, err = doit(root, fakes, "list", "--all")
    assert code == 0, out + err
    assert {line.split()[0] for line in out.splitlines() if line.startswith(("mix:", "master:"))} == {
        "mix:news/briefing@anna",
        "master:news/briefing@anna",
    }
    monkeypatch.setenv("MIXDOWN_SHARD", "2/2")
    code, out, err = doit(root, fakes, "list")
    assert code != 0
    [line] = [line for line in (out + err).splitlines() if "MIXDOWN_SHARD" in line]
    assert line.startswith("ERROR: MIXDOWN_SHARD=2/2: shards count from 0") and "write 0/2 to 1/2" in line
    assert fakes["fake"].calls == [] and not (root / "build").exists()


def test_mixdown_plan_shows_a_shards_part(
    show: Callable[..., Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import CountingSound, CountingVoice

    real = Registry

    def with_fakes(root: Path, **kwargs: Any) -> Registry:
        return real(root, extra={"fake": CountingVoice(), "noise": CountingSound()}, **kwargs)

    monkeypatch.setattr("mixdown.loader.Registry", with_fakes)
    root = show()
    assert cli.main(["plan", "--shard", "1/2", "-d", str(root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "shard 1/2: 1 of 3 renditions, 9 of 12 assets"
    assert out[1] == "  master:news/briefing@anna"
    assert out[2] == "9 of 9 assets to render (0 cached)"  # 5 voice lines, the SFX, the bed's 3 parts


def built_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "build").rglob("*"))
        if p.is_file() and p.name not in ABOUT_THE_BUILD
    }


def test_two_shards_against_one_remote_render_each_asset_once_and_build_what_a_full_build_does(
    show: Callable[..., Path], fakes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import CountingSound, CountingVoice

    full = show()
    machines = [tmp_path.parent / f"{tmp_path.name}-shard{index}" for index in range(2)]
    for machine in machines:
        shutil.copytree(full, machine)
    alone = {"fake": CountingVoice(), "noise": CountingSound()}
    code, out, err = doit(full, alone)
    assert code == 0, out + err

    monkeypatch.setenv("MIXDOWN_REMOTE", (tmp_path.parent / f"{tmp_path.name}-remote").as_uri())
    outs = []
    for index, machine in enumerate(machines):
        code, out, err = doit(machine, fakes, "--shard", f"{index}/2")  # fakes: counting across both
        assert code == 0, out + err
        outs.append(out)
        # the assets in the shard's plan order, whatever their kind (doit would group them by kind)
        order = [a.task for a in select(planned(machine, fakes), Shard(index, 2)).assets.values()]
        made = [t for t in ran(out) if t.split(":")[0] in KINDS]
        assert made == [t for t in order if t in made]
        assert {t.split(":")[0] for t in made} == ({"voice", "sfx", "music"} if index == 0 else {"voice"})
    # each paid render once in total: as many as the full build, every voice line and sound once
    assert sorted(fakes["fake"].calls) == sorted(alone["fake"].calls) and len(fakes["fake"].calls) == 8
    assert sorted(fakes["noise"].calls) == sorted(alone["noise"].calls)
    assert {t.split(":")[0] for t in ran(outs[1])} >= {"mix", "master"}
    assert "remote cache: " in outs[1] and "missing objects downloaded" in outs[1]

    union = {**built_files(machines[0]), **built_files(machines[1])}
    assert set(built_files(machines[0])).isdisjoint(built_files(machines[1]))
    assert union == built_files(full) and union  # byte-identical, every deliverable

    whole = lock.read(full / lock.FILENAME)
    parts = [lock.read(machine / lock.FILENAME) for machine in machines]
    for index, part in enumerate(parts):
        # each shard's lock has its own targets, as the full build has them
        mine = {f"master:{name}" for name in ("news/briefing@kofi", "news/extra", "news/briefing@anna")}
        mine = {t for t in mine if shard_of(t.split(":", 1)[1], 2) == index}
        assert mine <= set(part.entries)
        for target, entry in part.entries.items():  # request ids count each fake's calls: not compared
            assert entry.key == whole.entries[target].key and entry.sha256 == whole.entries[target].sha256
            assert entry.files == whole.entries[target].files
    assert set(parts[0].entries) | set(parts[1].entries) == set(whole.entries)


def _entries(root: Path) -> dict[str, tuple[str, str | None, tuple[lock.FileEntry, ...]]]:
    """Each lock entry as what the audio is (the counting fakes' request ids count calls: left out)."""
    return {t: (e.key, e.sha256, e.files) for t, e in lock.read(root / lock.FILENAME).entries.items()}


def test_shards_built_in_turn_write_the_lock_a_full_build_writes(
    built: Path, fakes: dict[str, Any], tmp_path: Path
) -> None:
    """A shard writes its own entries and keeps the others' while the show still wants them."""
    full = tmp_path.parent / f"{tmp_path.name}-full"
    shutil.copytree(built, full)
    csv = "id,name\nanna,Annie\nkofi,Kofi\n"  # anna's row changes: shard 1's rendition (see above)
    for root in (built, full):
        (root / "data" / "people.csv").write_text(csv)
    code, out, err = doit(full, fakes)
    assert code == 0, out + err
    code, out, err = doit(built, fakes, "--shard", "0/2")
    assert code == 0, out + err
    # nothing of shard 0's changed; the entries of anna's that changed are dropped, not kept stale
    assert ran(out) == [] and "mixdown.lock  written: 4 entries changed" in out
    stale = {"voice:news/briefing/intro/0@anna", "voice:news/briefing/close/0@anna"}
    stale |= {"mix:news/briefing@anna", "master:news/briefing@anna"}
    assert _entries(built) == {t: e for t, e in _entries(full).items() if t not in stale}
    code, out, err = doit(built, fakes, "--shard", "1/2")
    assert code == 0, out + err
    assert "mix:news/briefing@anna" in ran(out) and "mixdown.lock  written" in out
    assert not {t for t in ran(out) if t.endswith(("@kofi", "extra"))}
    assert _entries(built) == _entries(full)


def test_frozen_holds_a_shard_to_its_own_entries_and_to_what_the_show_dropped(
    built: Path, fakes: dict[str, Any]
) -> None:
    path = built / lock.FILENAME
    whole = lock.read(path)
    for shard in ("0/2", "1/2"):  # the full lock: each shard is held to its part of it
        code, out, err = doit(built, fakes, "--frozen", "--shard", shard)
        assert (code, err, ran(out)) == (0, "", []), out + err

    # a lock with shard 0's entries alone (a shard's own, before any merge): enough for shard 0
    anna = {t for t in whole.entries if t.endswith("@anna")} - {"voice:news/briefing/intro/1"}
    lock.write(path, lock.Lock({t: e for t, e in whole.entries.items() if t not in anna}))
    code, out, err = doit(built, fakes, "--frozen", "--shard", "0/2")
    assert (code, err) == (0, ""), out + err
    code, out, err = doit(built, fakes, "--frozen", "--shard", "1/2")
    assert (
        code != 0 and ran(out) == [] and "ERROR: mixdown.lock: --frozen, but this build would change" in err
    )
    assert "master:news/briefing@anna" in err
    lock.write(path, whole)

    # the script without variants removed (shard 0's): shard 1 builds the same, but the lock changes
    toml = built / "project.toml"
    extra = '[scripts.extra]\nmodule = "news"\ntemplate = "stanzas/extra.j2"\nvoice = "ben"\n'
    assert extra in toml.read_text()
    toml.write_text(toml.read_text().replace(extra, ""))
    for shard in ("0/2", "1/2"):
        code, out, err = doit(built, fakes, "--frozen", "--shard", shard)
        assert code != 0 and err.count("\n") == 1, err
        assert "would change 3 entries (voice:news/extra/only/0, mix:news/extra, master:news/extra)" in err
    assert fakes["fake"].calls == [] and lock.read(path) == whole


def test_mixdown_build_runs_doit_on_one_shard(
    show: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import CountingSound, CountingVoice

    voice, real = CountingVoice(), Registry

    def with_fakes(root: Path, **kwargs: Any) -> Registry:
        return real(root, extra={"fake": voice, "noise": CountingSound()}, **kwargs)

    monkeypatch.setattr("mixdown.loader.Registry", with_fakes)
    root = show()
    assert cli.main(["build", "--shard", "1/2", "-d", str(root), "-n", "2", "-P", "thread"]) == 0
    assert sorted(p.name for p in (root / "build").rglob("*.wav")) == ["briefing@anna.wav"]
    assert len(voice.calls) == 5  # anna's briefing: its 5 voice lines, and no other
    masters = {t for t in lock.read(root / lock.FILENAME).entries if t.startswith("master:")}
    assert masters == {"master:news/briefing@anna"}
    assert cli.main(["build", "--shard", "1/2", "-d", str(root)]) == 0 and len(voice.calls) == 5  # no-op


def test_merge_locks_makes_the_whole_shows_lock_from_the_shards_locks(
    built: Path,
    fakes: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = Registry
    monkeypatch.setattr("mixdown.loader.Registry", lambda root, **kw: real(root, extra=fakes, **kw))
    copies = [tmp_path.parent / f"{tmp_path.name}-{name}" for name in ("shard0", "shard1", "final", "full")]
    for copy in copies:
        shutil.copytree(built, copy, ignore=shutil.ignore_patterns("cache", "build", ".mixdown"))
        (copy / "data" / "people.csv").write_text("id,name\nanna,Annie\nkofi,Kofi Annan\nzoe,Zoe\n")
    *machines, final, full = copies
    monkeypatch.setenv("MIXDOWN_REMOTE", (tmp_path.parent / f"{tmp_path.name}-remote").as_uri())
    for index, machine in enumerate(machines):
        code, out, err = doit(machine, fakes, "--shard", f"{index}/2")
        assert code == 0, out + err
    monkeypatch.delenv("MIXDOWN_REMOTE")
    code, out, err = doit(full, fakes)
    assert code == 0, out + err

    locks = [str(machine / lock.FILENAME) for machine in machines]
    before = (final / lock.FILENAME).read_bytes()
    assert cli.main(["merge-locks", locks[0], "-d", str(final)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "mixdown: mixdown.lock: none of the 1 locks has a current entry for"
    )
    assert "master:news/briefing@anna" in err and (final / lock.FILENAME).read_bytes() == before

    assert cli.main(["merge-locks", *locks, "-d", str(final)]) == 0
    assert "mixdown.lock  written" in capsys.readouterr().out
    assert _entries(final) == _entries(full) and len(_entries(full)) > 20
    assert cli.main(["merge-locks", *locks, "-d", str(final)]) == 0  # again: the same
    assert "mixdown.lock  unchanged: 0 entries changed, from 2 shards' locks" in capsys.readouterr().out


def test_the_sharded_ci_example_uses_what_mixdown_has() -> None:
    """examples/ci/sharded.yml: a matrix builds the shards, a last job merges their locks."""
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "examples/ci/sharded.yml").read_text("utf-8")
    )
    build, merge = workflow["jobs"]["build"], workflow["jobs"]["lock"]
    [step] = [s for s in build["steps"] if "mixdown build" in s.get("run", "")]
    assert "--shard ${{ strategy.job-index }}/${{ strategy.job-total }}" in step["run"]
    assert build["strategy"]["matrix"]["shard"] == list(range(len(build["strategy"]["matrix"]["shard"])))
    assert merge["needs"] == "build"
    [step] = [s for s in merge["steps"] if "mixdown merge-locks" in s.get("run", "")]
    assert 'seq -f "locks/lock-%g/mixdown.lock" 0' in step["run"]  # shard 0's first, in number order
    lines = [
        line.strip()
        for job in (build, merge)
        for step in job["steps"]
        for line in step.get("run", "").splitlines()
    ]
    commands = {line.split()[1] for line in lines if line.startswith("mixdown ")}
    assert commands == {"build", "merge-locks"} and commands <= set(cli.COMMANDS)
    source = "\n".join(p.read_text("utf-8") for p in (Path(cli.__file__).parent).rglob("*.py"))
    ours = [name for name in workflow["env"] if name.startswith("MIXDOWN_")]
    assert ours and [name for name in ours if f'"{name}"' not in source] == []


def test_mixdown_build_passes_doits_and_the_loaders_options_on(
    built: Path, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = Registry
    monkeypatch.setattr("mixdown.loader.Registry", lambda root, **kw: real(root, extra=fakes, **kw))
    (built / "data" / "people.csv").write_text("id,name\nanna,Annie\nkofi,Kofi\n")  # anna's: shard 1
    assert cli.main(["build", "-d", str(built), "--frozen", "--shard", "0/2"]) == 0
    assert cli.main(["build", "--frozen", "-d", str(built), "--shard=1/2", "-n", "2"]) != 0
    assert fakes["fake"].calls == []
    with pytest.raises(SystemExit, match="2"):  # only build and plan take a shard
        cli.main(["status", "-d", str(built), "--shard", "1/2"])
    assert "unrecognized arguments: --shard 1/2" in capsys.readouterr().err


def test_a_shard_asks_the_remote_again_for_a_shared_key_it_found_missing_at_its_start(
    show: Callable[..., Path], fakes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two shards at once: one finds a bed segment missing remotely, the other makes and uploads it."""
    from mixdown.actions.render import render_asset
    from mixdown.actions.shared import asset_wanted, fetched, prefetch

    root = show()
    other = tmp_path.parent / f"{tmp_path.name}-other"
    shutil.copytree(root, other)
    monkeypatch.setenv("MIXDOWN_REMOTE", (tmp_path.parent / f"{tmp_path.name}-remote").as_uri())
    mine, theirs = (load_show(r, registry=Registry(r, extra=fakes)) for r in (root, other))
    whole = mine.plan
    shard = Shard(0, 2)
    shared = shards.shared_keys(whole, shard)
    assert shared == {k for k in select(whole, shard).assets if k in select(whole, Shard(1, 2)).assets} | {
        k for k in select(whole, shard).sections if k in select(whole, Shard(1, 2)).sections
    }
    bed = next(a for a in whole.assets.values() if a.task == "music:bed/outro")
    assert bed.key in shared
    assert mine.context.remote is not None and theirs.context.remote is not None
    assert prefetch(mine.context.remote, mine.context.cache, select(whole, shard)) is not None  # all missing
    render_asset(theirs.context, bed)  # the other shard, meanwhile
    assert theirs.context.remote.drain().objects == 1 and fakes["noise"].calls == ["music:bed/outro"]

    assert not fetched(mine.context, asset_wanted(bed))  # one build asks once, unless told otherwise
    mine.context.fresh = shared
    assert fetched(mine.context, asset_wanted(bed)) and bed.key in mine.context.cache
    render_asset(mine.context, bed)
    assert fakes["noise"].calls == ["music:bed/outro"]  # not rendered again
