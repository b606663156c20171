"""A plain build with nothing to do, told from the record of the last one (mixdown.actions.quiet)."""

from __future__ import annotations

import io
import os
import textwrap
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import soundfile as sf
from doit.doit_cmd import DoitMain

from mixdown import loader
from mixdown.actions import quiet
from mixdown.loader import MixdownLoader

from .test_build import ran
from .test_memo import SHOW


class Build(NamedTuple):
    code: int
    out: str
    planned: bool  # whether the build loaded the show's plan (the usual way)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A show with its own renderers only (the plan memo is used), built, then once again with
    nothing to do: the second build keeps the record."""
    for sub in ("stanzas", "data", "media"):
        (tmp_path / sub).mkdir()
    (tmp_path / "project.toml").write_text(textwrap.dedent(SHOW))
    (tmp_path / "stanzas" / "talk.j2").write_text("## a\nHello {{ name }}. [sfx:knock]\n\n## b\nBye.\n")
    (tmp_path / "data" / "rows.csv").write_text("id,name\nx,Xena\ny,Yann\n")
    noise = np.random.default_rng(3).uniform(-0.3, 0.3, (8000, 1))  # something to master
    sf.write(tmp_path / "media" / "knock.wav", noise, 8000)
    return tmp_path


@pytest.fixture
def build(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Build]:
    """``doit *args`` in-process on a show, as the ``doit`` command loads it (no registry given)."""
    for name in quiet.USUAL:
        monkeypatch.delenv(name, raising=False)

    def run(root: Path, *args: str) -> Build:
        loads: list[Path] = []
        real = loader.load_show

        def counted(where: Path, **kwargs: object) -> loader.Show:
            loads.append(Path(where))
            return real(where, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(loader, "load_show", counted)
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = DoitMain(MixdownLoader(root, config={"outfile": out}), config_filenames=()).run(list(args))
        monkeypatch.setattr(loader, "load_show", real)
        assert code == 0, out.getvalue() + err.getvalue()
        return Build(code, out.getvalue(), bool(loads))

    return run


@pytest.fixture
def quiet_show(root: Path, build: Callable[..., Build]) -> Path:
    first = build(root)
    assert "master:talk@x" in ran(first.out) and first.planned
    assert not (root / ".mixdown" / quiet.FILENAME).exists()  # it did something: nothing kept
    noop = build(root)
    assert ran(noop.out) == [] and noop.planned
    assert (root / ".mixdown" / quiet.FILENAME).is_file()
    return root


def test_a_noop_after_a_noop_reads_no_plan_and_says_the_same(
    quiet_show: Path, build: Callable[..., Build]
) -> None:
    before = build(quiet_show)  # the usual way wrote the record; this one reads it
    assert not before.planned and ran(before.out) == []
    assert "-- master:talk@x" in before.out.splitlines() and "-- voice:talk/a/0@x" in before.out.splitlines()
    os.remove(quiet_show / ".mixdown" / quiet.FILENAME)
    usual = build(quiet_show)
    assert usual.planned and usual.out == before.out


def _touched(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _replaced(path: Path) -> None:
    """``path`` written again as a build writes it: a new file renamed over it."""
    new = path.with_name(f".{path.name}.new")
    new.write_bytes(path.read_bytes())
    os.replace(new, path)


CHANGES: dict[str, tuple[Callable[[Path], None], list[str]]] = {
    # what changed since the record: what the build it sends the usual way then runs
    "a deliverable removed": (lambda r: (r / "build" / "talk@y.wav").unlink(), ["master:talk@y"]),
    "a deliverable replaced": (lambda r: _replaced(r / "build" / "talk@y.wav"), []),  # doit: up to date
    "its captions removed": (lambda r: (r / "build" / "talk@x.vtt").unlink(), ["captions:talk@x"]),
    "a listener added": (
        lambda r: (r / "data" / "rows.csv").write_text("id,name\nx,Xena\ny,Yann\nz,Zoe\n"),
        [
            "voice:talk/a/0@z",
            "section:talk/a@z",
            "mix:talk@z",
            "master:talk@z",
            "captions:talk@z",
            "otio:talk@z",
        ],
    ),
    "the lockfile removed": (lambda r: (r / "mixdown.lock").unlink(), []),
    "the report removed": (lambda r: (r / "build" / "report.html").unlink(), []),
}


def test_a_file_changed_in_place_is_left_as_the_usual_way_leaves_it(
    quiet_show: Path, build: Callable[..., Build]
) -> None:
    """Its folder vouches for it: nothing added, removed or replaced there. The usual way hands
    its rendition to doit, which finds it up to date: its stamp and its name are unchanged."""
    wav = quiet_show / "build" / "talk@x.wav"
    data = bytearray(wav.read_bytes())
    data[-1] ^= 1
    wav.write_bytes(bytes(data))
    _touched(wav)
    quick = build(quiet_show)
    assert not quick.planned and ran(quick.out) == []
    os.remove(quiet_show / ".mixdown" / quiet.FILENAME)
    usual = build(quiet_show)
    assert usual.planned and ran(usual.out) == [] and wav.read_bytes() == bytes(data)


@pytest.mark.parametrize("change", CHANGES)
def test_anything_changed_since_goes_the_usual_way(
    quiet_show: Path, build: Callable[..., Build], change: str
) -> None:
    make, runs = CHANGES[change]
    make(quiet_show)
    after = build(quiet_show)
    assert after.planned
    assert sorted(ran(after.out)) == sorted(runs)
    assert (quiet_show / "mixdown.lock").is_file() and (quiet_show / "build" / "report.html").is_file()
    # the record is kept again by the first build that hands doit nothing, and read by the next
    again = [build(quiet_show) for _ in range(3)]
    assert all(ran(b.out) == [] for b in again)
    assert [b.planned for b in again] in ([False] * 3, [True, False, False], [True, True, False])


def test_a_cache_object_removed_is_made_again(quiet_show: Path, build: Callable[..., Build]) -> None:
    section = next(
        t for t in loader.load_show(quiet_show).plan.sections.values() if t.task == "section:talk/b"
    )
    (quiet_show / "cache" / "objects" / section.key[:2] / f"{section.key}.wav").unlink()
    after = build(quiet_show)
    assert after.planned and ran(after.out) == ["section:talk/b"]


def test_a_dodo_py_without_tasks_keeps_the_quiet_way_and_one_with_tasks_leaves_it(
    quiet_show: Path, build: Callable[..., Build], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(quiet_show)  # doit runs a show's dodo.py in its folder: back after the test
    dodo = quiet_show / "dodo.py"
    dodo.write_text('"""No task yet, as mixdown init writes it."""\n')
    assert build(quiet_show).planned  # a new file the record did not hold
    assert not build(quiet_show).planned
    dodo.write_text(
        'def task_publish():\n    return {"actions": ["echo published"], "task_dep": ["master"], "verbosity": 2}\n'
    )
    for _ in range(3):
        after = build(quiet_show)
        assert after.planned and ran(after.out) == ["publish"]


@pytest.mark.parametrize(
    ("args", "variable"),
    [(["master:talk@x"], None), (["--frozen"], None), ([], "MIXDOWN_REMOTE"), ([], "MIXDOWN_SHARD")],
)
def test_other_builds_go_the_usual_way(
    quiet_show: Path,
    build: Callable[..., Build],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    variable: str | None,
) -> None:
    if variable == "MIXDOWN_REMOTE":
        monkeypatch.setenv(variable, (quiet_show.parent / "remote").as_uri())
    elif variable is not None:
        monkeypatch.setenv(variable, "0/1")
    assert build(quiet_show, *args).planned
