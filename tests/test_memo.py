"""The plan memo: reused while inputs are unchanged, dropped as soon as one changes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import ConfigError
from mixdown.loader import load_show
from mixdown.plan import planner

SHOW = """
[project]
voice = "host"

[voices.host]
renderer = "silence"
duration = 0.5

[sfx.knock]
renderer = "file"
path = "media/knock.wav"

[scripts.talk]
template = "stanzas/talk.j2"
variants = "data/rows.csv"

[master]
formats = ["wav"]
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "stanzas").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "media").mkdir()
    (tmp_path / "project.toml").write_text(textwrap.dedent(SHOW))
    (tmp_path / "stanzas" / "talk.j2").write_text(
        "## a\n{% include 'stanzas/hello.j2' %} {{ name }}. [sfx:knock]\n"
    )
    (tmp_path / "stanzas" / "hello.j2").write_text("Hello")
    (tmp_path / "data" / "rows.csv").write_text("id,name\nx,Xena\n")
    sf.write(tmp_path / "media" / "knock.wav", np.full((800, 1), 0.1), 8000)
    return tmp_path


def texts(root: Path) -> list[str]:
    return sorted(a.text for a in load_show(root).plan.assets.values() if a.kind == "voice")


def touch(path: Path, text: str | None = None) -> None:
    if text is not None:
        path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def test_unchanged_inputs_reuse_the_plan(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_show(root)
    assert (root / ".mixdown" / "plan.pickle").is_file()

    def no_planning(*args: object) -> None:
        raise AssertionError("planned again although nothing changed")

    monkeypatch.setattr(planner, "plan", no_planning)
    again = load_show(root)
    assert list(again.plan.assets) == list(first.plan.assets)
    assert again.context.project == first.context.project


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("stanzas/hello.j2", "Goodbye", ["Goodbye Xena."]),  # an included template
        ("data/rows.csv", "id,name\nx,Yuri\n", ["Hello Yuri."]),
        ("project.toml", SHOW.replace("duration = 0.5", "duration = 0.6"), ["Hello Xena."]),
    ],
)
def test_any_changed_input_plans_again(root: Path, path: str, text: str, expected: list[str]) -> None:
    before = set(load_show(root).plan.assets)
    touch(root / path, textwrap.dedent(text))
    assert texts(root) == expected
    assert set(load_show(root).plan.assets) != before


def test_changed_media_changes_the_key(root: Path) -> None:
    before = {a.task: a.key for a in load_show(root).plan.assets.values()}
    sf.write(root / "media" / "knock.wav", np.full((800, 1), 0.2), 8000)
    touch(root / "media" / "knock.wav")
    after = {a.task: a.key for a in load_show(root).plan.assets.values()}
    assert after["sfx:knock"] != before["sfx:knock"]
    assert after["voice:talk/a/0"] == before["voice:talk/a/0"]


def test_a_new_local_renderer_is_noticed(root: Path) -> None:
    load_show(root)
    (root / "renderers").mkdir()
    (root / "renderers" / "silence.py").write_text(
        "raise RuntimeError('the shadowing renderer was loaded')\n"
    )
    with pytest.raises(ConfigError, match="silence.py:1: failed to import .*shadowing renderer was loaded"):
        load_show(root)


def test_corrupt_memo_is_ignored(root: Path) -> None:
    load_show(root)
    (root / ".mixdown" / "plan.pickle").write_bytes(b"\x80\x05not a pickle")
    assert texts(root) == ["Hello Xena."]


def test_the_doit_command_uses_the_loader_plugin(root: Path) -> None:
    # Something to master: a placeholder voice is silent, and a silent programme is out of any spec.
    sf.write(root / "media" / "knock.wav", np.random.default_rng(3).uniform(-0.3, 0.3, (8000, 1)), 8000)
    (root / "doit.cfg").write_text(
        "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "doit", "list", "--all"], cwd=root, capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines() if line.startswith("voice:")] == [
        "voice:talk/a/0"
    ]
    built = subprocess.run([sys.executable, "-m", "doit"], cwd=root, capture_output=True, text=True, env=env)
    assert built.returncode == 0, built.stderr
    assert (root / "build" / "talk@x.wav").is_file()
    assert (root / ".mixdown" / "doit.sqlite3").is_file()


NOOP = """
import sys
from doit.doit_cmd import DoitMain
code = DoitMain().run([])
print("exit", code)
print("\\n".join(sorted(name for name in sys.modules if name.startswith(("mixdown.", "numpy", "tomllib")))))
"""


def test_a_noop_build_imports_no_action_nor_audio_module(root: Path) -> None:
    # What a no-op build imports is most of its time: the actions, the DSP and the codecs are
    # imported only by a build that runs them.
    sf.write(root / "media" / "knock.wav", np.random.default_rng(3).uniform(-0.3, 0.3, (8000, 1)), 8000)
    (root / "doit.cfg").write_text(
        "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}

    def noop() -> list[str]:
        done = subprocess.run([sys.executable, "-c", NOOP], cwd=root, capture_output=True, text=True, env=env)
        assert done.returncode == 0 and "exit 0" in done.stdout, done.stdout + done.stderr
        return done.stdout.splitlines()[done.stdout.splitlines().index("exit 0") + 1 :]

    first = noop()  # the build itself: it mixes and masters
    assert {"mixdown.actions.master", "mixdown.dsp.mixer"} <= set(first)
    imported = noop()
    assert "mixdown.loader" in imported and "mixdown.actions.current" in imported
    heavy = [
        name
        for name in imported
        if name.startswith(("numpy", "tomllib", "mixdown.dsp", "mixdown.codecs.", "mixdown.plan.planner"))
        or name in {f"mixdown.actions.{a}" for a in ("render", "section", "mix", "master", "deliver")}
    ]
    assert heavy == ["mixdown.codecs.tags"]  # a rendition's tags are part of its plan


def test_doits_plugin_lookups_after_the_loader_share_one_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from doit import plugin

    from mixdown import loader

    monkeypatch.setattr(plugin, "entry_points_impl", plugin.entry_points_impl)  # restored after
    every = importlib.metadata.entry_points()
    reads: list[int] = []

    def counted() -> object:
        reads.append(1)
        return every

    monkeypatch.setattr(importlib.metadata, "entry_points", counted)
    loader._entry_points_read_once()
    lookup = plugin.entry_points_impl()
    for group in ("doit.BACKEND", "doit.REPORTER", "doit.LOADER", "mixdown.renderers"):
        assert list(lookup(group=group)) == list(every.select(group=group))
    assert len(reads) == 1
    found = plugin.PluginDict()
    found.add_plugins({}, "LOADER")  # as doit itself asks
    assert set(found) == {point.name for point in every.select(group="doit.LOADER")}
    assert len(reads) == 1


def test_a_copied_show_plans_its_own_files(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    # `cp -a show copy` keeps .mixdown/ and every modification time: the original's memo
    # must not stand for the copy, whose plan names the copy's own paths and text.
    original = load_show(root)
    copy = tmp_path_factory.mktemp("elsewhere") / "copy"
    shutil.copytree(root, copy, symlinks=True)  # copy2: modification times kept, like cp -a
    (copy / "data" / "rows.csv").write_text("id,name\nx,Yuri\n")
    os.utime(copy / "data" / "rows.csv", ns=((root / "data" / "rows.csv").stat().st_mtime_ns,) * 2)
    copied = load_show(copy)
    assert copied.context.project.root == copy.resolve()
    assert copied.context.project.build_dir == copy.resolve() / "build"
    assert all(m.outputs[0].is_relative_to(copy.resolve()) for m in copied.plan.mixes)
    assert texts(copy) == ["Hello Yuri."]
    assert texts(root) == ["Hello Xena."]
    assert original.context.project.root == root.resolve()


def test_a_copied_show_with_a_bad_key_fails(root: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    load_show(root)
    copy = tmp_path_factory.mktemp("elsewhere") / "copy"
    shutil.copytree(root, copy)
    (copy / "project.toml").write_text(textwrap.dedent(SHOW).replace("duration = 0.5", "durration = 0.5"))
    with pytest.raises(ConfigError, match="unknown key 'durration'"):
        load_show(copy)


def test_a_changed_renderer_module_inside_mixdown_plans_again(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A renderer's `version` or `max_chars` lives under mixdown/renderers/: it shapes keys too.
    from mixdown.plan import memo

    load_show(root)
    real = memo._signature

    def renderers_changed(path: str) -> tuple[int, int] | None:
        found = real(path)
        if found is not None and os.sep + "renderers" + os.sep in path and path.endswith("silence.py"):
            return found[0] + 1, found[1]
        return found

    monkeypatch.setattr(memo, "_signature", renderers_changed)
    monkeypatch.setattr(planner, "plan", lambda *a: (_ for _ in ()).throw(AssertionError("planned")))
    with pytest.raises(AssertionError, match="planned"):
        load_show(root)


def test_the_plans_many_tuples_pickle_as_they_were(root: Path) -> None:
    import pickle

    from mixdown.plan.model import Asset, SpokenLine

    plan = load_show(root).plan
    again = pickle.loads(pickle.dumps(plan, pickle.HIGHEST_PROTOCOL))
    assert again.assets == plan.assets and again.mixes == plan.mixes
    assert all(type(asset) is Asset for asset in again.assets.values())
    lines = [line for mix in again.mixes for info in mix.section_info for line in info.lines]
    assert lines and all(type(line) is SpokenLine for line in lines)
    retaken = pickle.loads(pickle.dumps(next(iter(plan.assets.values()))._replace(take=2)))
    assert type(retaken) is Asset and retaken.take == 2 and retaken._replace(take=0).take == 0


def test_what_renditions_publish_beside_is_kept_with_the_plan(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A no-op build checks every rendition's captions and timeline: their stamps and files are
    # made once with the plan and kept in the memo, as is each master's stamp.
    from mixdown import loader
    from mixdown.actions.tasks import beside

    first = load_show(root)
    made = beside(first.context)
    assert first.besides == {mix.name: made(mix) for mix in first.plan.mixes}
    assert any(kept.files and kept.stamps for kept in first.besides.values())

    def refuse(context: object) -> object:
        raise AssertionError("a planned show made what it publishes beside again")

    monkeypatch.setattr(loader, "beside", refuse)
    again = load_show(root)
    assert again.besides == first.besides
    assert all({"stamp", "delivery_stamps"} <= set(vars(mix)) for mix in again.plan.mixes)  # kept
    mix = again.plan.mixes[0]
    assert loader._besides(again)(mix) is again.besides[mix.name]
    monkeypatch.undo()
    bare = loader.Show(again.context, again.plan)  # a show loaded without the memo: made when asked
    assert loader._besides(bare)(mix) == again.besides[mix.name]
