"""``mixdown gc`` and ``[cache] max_size``: what nothing references goes, nothing else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mixdown.cli import main
from mixdown.loader import load_show
from mixdown.plan.gc import referenced, trim
from mixdown.store.inventory import local, size_text

from .conftest import BASIC_TOML, CountingSound, CountingVoice
from .test_build import doit, ran

KEY = re.compile(r"^[0-9a-f]{64}")
#: three edits of the briefing, built one after the other: a line shared with the other script
#: (its old audio is still used there), then the last line twice (each variant has its own)
EDITS = [
    ("The bridge opened today. [pause", "The bridge opened this morning. [pause"),
    ("Goodbye {{ name }}.", "Bye {{ name }}."),
    ("Bye {{ name }}.", "See you soon, {{ name }}."),
]
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"]


#: the counting renderers as the show's own too, so that ``mixdown gc`` (which loads the show
#: itself) knows them
OWN = {
    "renderers__fake_dot_py": "from tests.conftest import CountingVoice as Renderer\n",
    "renderers__noise_dot_py": "from tests.conftest import CountingSound as Renderer\n",
    "_dot_gitignore": "cache/\n.mixdown/\nbuild/\n",
}


def keys(root: Path) -> set[str]:
    """The keys of every object in the show's cache."""
    return {m.group() for p in (root / "cache" / "objects").rglob("*") if (m := KEY.match(p.name))}


def files_of(root: Path, wanted: set[str]) -> list[Path]:
    return [p for p in (root / "cache" / "objects").rglob("*") if p.name[:64] in wanted]


def records(root: Path, wanted: set[str]) -> list[dict[str, Any]]:
    """The records of the objects ``wanted``: a short master's in a compact cache is its streamed.json."""
    names = (".json", ".streamed.json")
    return [json.loads(p.read_text()) for p in files_of(root, wanted) if p.name[64:] in names]


def build(root: Path, fakes: dict[str, Any] | None = None) -> str:
    code, out, err = doit(
        root, fakes if fakes is not None else {"fake": CountingVoice(), "noise": CountingSound()}
    )
    assert code == 0, out + err
    return out


def edit(root: Path, old: str, new: str) -> None:
    path = root / "stanzas" / "briefing.j2"
    text = path.read_text()
    assert text.count(old) == 1
    path.write_text(text.replace(old, new))


def gc(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["gc", "-d", str(root), *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def listed(lines: list[str]) -> set[str]:
    return {line.split()[0] for line in lines if line.startswith("  ")}


@pytest.fixture
def edited(show: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A show built, then edited three times and built after each; and the keys of its final
    version built from nothing in a cache of its own."""
    root = show(**OWN)
    build(root)
    for old, new in EDITS:
        edit(root, old, new)
        build(root)
    fresh = tmp_path_factory.mktemp("fresh")
    for name in ("project.toml", "stanzas", "data"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy)(root / name, fresh / name)
    build(fresh)
    return root, keys(fresh)


def test_dry_run_after_three_edits_lists_exactly_the_superseded_objects(
    edited: tuple[Path, set[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, final = edited
    before = keys(root)
    superseded = before - final
    code, out, err = gc(root, capsys, "--dry-run")
    assert code == 0, err
    assert listed(out) == superseded
    assert keys(root) == before  # a dry run removes nothing

    gone = records(root, superseded)
    texts = sorted(r["text"] for r in gone if r.get("kind") == "voice")
    assert texts == ["Bye Anna.", "Bye Kofi.", "Goodbye Anna.", "Goodbye Kofi."]  # the bridge's is still used
    kinds = [r.get("kind") for r in gone]
    assert kinds.count("mix") == 6 and kinds.count("master") == 6  # 3 edits × 2 variants of the briefing
    sections = [r.get("bus", "voice") for r in gone if r.get("kind") == "section"]
    # the story's pre-mix (shared by both variants) and its SFX bus once, each variant's close twice
    assert sorted(sections) == ["sfx"] + ["voice"] * 5
    assert len(gone) == 4 + 6 + 6 + 6 == len(superseded)  # and nothing else
    assert {r["name"] for r in gone if r.get("kind") == "mix"} == {"news/briefing@anna", "news/briefing@kofi"}

    size = sum(p.stat().st_size for p in files_of(root, superseded))
    every = sum(p.stat().st_size for p in files_of(root, before))
    assert (
        out[-1]
        == (
            f"would remove {len(superseded)} of {len(before)} objects in cache/: {size_text(size)} of "
            f"{size_text(every)}; kept what the plan, mixdown.lock reference"  # the build's lock names only the plan's
        )
    )
    line = next(text for text in out if "'Goodbye Anna.'" in text)
    key = line.split()[0]
    assert line.split()[1:3] == size_text(sum(p.stat().st_size for p in files_of(root, {key}))).split()


def test_gc_removes_them_and_the_next_build_makes_nothing(
    edited: tuple[Path, set[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    root, final = edited
    code, out, err = gc(root, capsys)
    assert code == 0, err
    assert out[-1].startswith(f"removed {len(listed(out))} of ")
    assert keys(root) == final
    assert not [p for p in (root / "cache" / "objects").rglob("*") if p.is_file() and not KEY.match(p.name)]
    fakes: dict[str, Any] = {"fake": CountingVoice(), "noise": CountingSound()}
    out = build(root, fakes)
    assert ran(out) == [] and fakes["fake"].calls == [] and fakes["noise"].calls == []
    code, out, err = gc(root, capsys, "--dry-run")
    assert listed(out) == set() and out[-1].startswith(f"would remove 0 of {len(final)} objects")


def git(root: Path, *args: str) -> None:
    subprocess.run([*GIT, "-C", str(root), *args], check=True, capture_output=True)


def test_the_lockfiles_of_head_and_main_keep_what_they_name(
    show: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = show(**OWN)
    build(root)
    plan = load_show(root).plan
    anna = next(a for a in plan.assets.values() if a.text == "Goodbye Anna.")
    kofi = next(a for a in plan.assets.values() if a.text == "Goodbye Kofi.")
    briefing = plan.mix_named("news/briefing@anna")
    (root / "mixdown.lock").write_text(
        f'# written by mixdown\nversion = 1\n\n["voice:{anna.task}"]\nkey = "{anna.key}"\n\n'
        f'["master:news/briefing@anna"]\nkey = "{briefing.master_key}"\nmix = "{briefing.key}"\n'
    )
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "show")
    git(root, "checkout", "-qb", "edit")
    git(
        root, "rm", "-q", "mixdown.lock"
    )  # HEAD has none, and the build's own names only its plan: main's counts
    edit(root, *EDITS[1])
    git(root, "commit", "-qam", "edit")
    build(root)

    code, out, err = gc(root, capsys, "--dry-run")
    assert code == 0, err
    kept = {anna.key, briefing.key, briefing.master_key}
    assert kofi.key in listed(out) and not kept & listed(out)
    assert out[-1].endswith("kept what the plan, mixdown.lock, mixdown.lock at main reference")
    assert referenced(load_show(root).plan, root).keys >= kept

    code, out, err = gc(root, capsys, "--dry-run", "--rev", "edit")
    assert code == 0 and kept <= listed(out)  # main is not asked when revisions are named

    code, out, err = gc(root, capsys, "--dry-run", "--rev", "nope")
    assert code == 2 and out == []
    assert (
        err
        == f"mixdown: --rev nope: not a commit of the git repository of {root}; name a branch, tag or commit\n"
    )


def test_max_size_trims_what_is_unused_after_each_build(
    show: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = show(**OWN, project_dot_toml=BASIC_TOML + '\n[cache]\nmax_size = "1kB"\n')
    out = build(root)
    first = [text for text in out.splitlines() if text.startswith("cache: ")]
    size = size_text(sum(p.stat().st_size for p in files_of(root, keys(root))))
    assert first == [
        f"cache: {size}, over [cache] max_size (1.0 kB), and all of it in use (the plan, mixdown.lock); raise max_size"
    ]
    edit(root, *EDITS[1])
    out = build(root)
    used = keys(root)
    removed = [text for text in out.splitlines() if text.startswith("cache: removed")]
    assert len(removed) == 1
    code, lines, err = gc(root, capsys, "--dry-run")
    assert listed(lines) == set()  # every unused object went
    plan = load_show(root).plan
    assert used == {k for k in used if k in referenced(plan, root).keys}
    assert removed[0].startswith("cache: removed 8 unused objects")  # 2 lines, 2 sections, 2 mixes, 2 masters
    assert removed[0].endswith(
        f"{size_text(sum(p.stat().st_size for p in files_of(root, used)))} left, over [cache] max_size "
        "(1.0 kB): the rest is in use (the plan, mixdown.lock); raise max_size"
    )


def test_trim_removes_the_least_recently_used_first(
    edited: tuple[Path, set[str]],
) -> None:
    root, final = edited
    show = load_show(root)
    cache, references = show.context.cache, referenced(show.plan, root)
    objects = local(cache)
    unused = sorted(k for k in objects if k not in final)
    for age, key in enumerate(unused):  # the first is the oldest
        for name in objects[key].files:
            os.utime(name, (1_000_000 + age, 1_000_000 + age))
    total = sum(item.size for item in objects.values())
    oldest = objects[unused[0]].size + objects[unused[1]].size
    line = trim(cache, references, total - oldest)  # two objects must go
    assert line == f"cache: removed 2 unused objects ({size_text(oldest)}), {size_text(total - oldest)} left"
    assert keys(root) == set(objects) - set(unused[:2])
    assert trim(cache, references, total) is None  # it fits: nothing to do


def test_remote_gc_lists_and_removes_from_the_remote_layout(
    edited: tuple[Path, set[str]],
    capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, final = edited
    remote = tmp_path_factory.mktemp("remote")
    shutil.copytree(root / "cache" / "objects", remote / "objects")  # the contract's layout is the local one
    (remote / "objects" / "ab").mkdir(exist_ok=True)
    (remote / "objects" / "ab" / "README").write_text("not an object")
    monkeypatch.setenv("MIXDOWN_REMOTE", f"file://{remote}")
    local_before = keys(root)
    code, out, err = gc(root, capsys, "--remote", "--dry-run")
    assert code == 0, err
    assert listed(out) == local_before - final
    assert out[-1].startswith(
        f"would remove {len(local_before - final)} of {len(local_before)} objects in file://"
    )

    code, out, err = gc(root, capsys, "--remote")
    assert code == 0, err
    assert {m.group() for p in (remote / "objects").rglob("*") if (m := KEY.match(p.name))} == final
    assert (remote / "objects" / "ab" / "README").exists()
    assert keys(root) == local_before  # the local cache is not touched


def test_remote_gc_without_a_remote_is_one_line(
    show: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = show(**OWN)
    code, out, err = gc(root, capsys, "--remote", "--dry-run")
    assert code == 2 and err == (
        "mixdown: --remote: the show has no remote cache; set [cache] remote in project.toml, or MIXDOWN_REMOTE\n"
    )


def test_what_build_holds_is_kept_until_the_edit_is_built(
    show: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = show(**OWN)
    build(root)
    before = load_show(root).plan.mix_named("news/briefing@anna")
    edit(root, *EDITS[1])
    code, out, err = gc(root, capsys, "--dry-run")
    assert code == 0, err
    old = {a.key for a in load_show(root).plan.assets.values()}
    assert listed(out) and not {before.key, before.master_key} & listed(out)  # the next build splices them
    assert not old & listed(out)
    assert out[-1].endswith("kept what the plan, build/, mixdown.lock reference")  # the last build's lock
    build(root)
    code, out, err = gc(root, capsys, "--dry-run")
    assert {before.key, before.master_key} <= listed(out)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A moto S3 server on 127.0.0.1 with an empty bucket ``shows``; s3fs pointed at it."""
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for name, value in {
        "FSSPEC_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    import fsspec.config
    import s3fs

    # fsspec reads FSSPEC_* variables when it is first imported: in a whole run, before this test
    monkeypatch.setitem(fsspec.config.conf, "s3", {"endpoint_url": f"http://127.0.0.1:{port}"})
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(endpoint_url=f"http://127.0.0.1:{port}")
    fs.mkdir("shows")
    try:
        yield fs
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


def test_remote_gc_on_s3(
    edited: tuple[Path, set[str]],
    capsys: pytest.CaptureFixture[str],
    s3: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, final = edited
    s3.put(str(root / "cache" / "objects"), "shows/team/objects", recursive=True)
    uploaded = {m.group() for p in s3.find("shows/team/objects") if (m := KEY.match(p.rsplit("/", 1)[-1]))}
    assert uploaded == keys(root)
    monkeypatch.setenv("MIXDOWN_REMOTE", "s3://shows/team")
    code, out, err = gc(root, capsys, "--remote", "--dry-run")
    assert code == 0, err
    assert listed(out) == uploaded - final
    code, out, err = gc(root, capsys, "--remote")
    assert code == 0, err
    s3.invalidate_cache()
    left = s3.find("shows/team/objects")
    assert {m.group() for p in left if (m := KEY.match(p.rsplit("/", 1)[-1]))} == final
    assert len(left) == len(files_of(root, final))  # every file of what is kept, and only those


DEMO_EDITS = (
    ("weather.j2", "have a good weekend", "have a lovely weekend"),
    ("weather.j2", "mild and dry", "mild and bright"),
    ("briefing.j2", "It opens to walkers", "It opens to runners"),
)


@pytest.mark.slow
def test_on_the_demo_after_three_edits_the_dry_run_lists_exactly_the_superseded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo, voiced by piper, built, edited three times and built after each: the dry run
    lists what a fresh build of the final show does not make, and nothing else."""
    pytest.importorskip("piper")
    from .test_demo import REPO, counting_piper
    from .test_demo import build as build_demo

    def copy(to: Path) -> Path:
        to.mkdir()
        shutil.copy(REPO / "project.toml", to)
        for folder in ("stanzas", "data", "renderers"):
            shutil.copytree(REPO / folder, to / folder)
        return to

    piper = counting_piper()
    root = copy(tmp_path / "demo")
    assert build_demo(root, piper)[0] == 0
    old_texts = []
    for name, old, new in DEMO_EDITS:
        path = root / "stanzas" / name
        text = path.read_text()
        assert text.count(old) == 1
        path.write_text(text.replace(old, new))
        old_texts.append(old)
        code, out, err = build_demo(root, piper)
        assert code == 0, out + err
    fresh = copy(tmp_path / "fresh")
    for name in {name for name, _, _ in DEMO_EDITS}:
        (fresh / "stanzas" / name).write_text((root / "stanzas" / name).read_text())
    assert build_demo(fresh, piper)[0] == 0
    before = keys(root)
    superseded = before - keys(fresh)

    code, out, err = gc(root, capsys, "--dry-run")
    assert code == 0, err
    assert listed(out) == superseded
    assert keys(root) == before
    gone = records(root, superseded)
    voices = [r["text"] for r in gone if r.get("kind") == "voice"]
    # each edit supersedes the one line it changed (the forecast's line for Saturday only)
    assert len(voices) == 3 and all(any(old in text for text in voices) for old in old_texts)
    mixes = sorted(r["name"] for r in gone if r.get("kind") == "mix")
    # the weather mixed three times (two superseded), each listener's briefing twice
    assert mixes == [f"daily/briefing@{n}" for n in ("anna", "kofi", "mei")] + ["daily/weather"] * 2
