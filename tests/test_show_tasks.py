"""A show's own doit tasks (dodo.py), the loader's entry point and where doit finds the show,
and the podcast feed (mixdown.feed) the demo's dodo.py writes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import mixdown
from mixdown.loader import MixdownLoader, find_show

from .test_build import doit, ran

SRC = Path(mixdown.__file__).resolve().parent.parent
PUBLISH = '''
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Where:  # a dataclass needs its module in sys.modules while it is defined
    source: str = "build/news/extra.wav"


def task_publish():
    """Copy the extra's master to public/."""
    def copy():
        Path("public").mkdir(exist_ok=True)
        shutil.copyfile(Where().source, "public/extra.wav")

    return {
        "actions": [copy],
        "task_dep": ["master:news/extra"],
        "file_dep": ["build/news/extra.wav"],
        "targets": ["public/extra.wav"],
    }
'''


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Work in a folder of the test's own: the loader makes a show with dodo.py the working
    directory (as doit does for a dodo.py), and monkeypatch puts the old one back."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_a_dodo_task_runs_after_the_master_it_depends_on_and_is_up_to_date_after(
    show: Callable[..., Path], fakes: dict[str, Any], in_tmp: Path
) -> None:
    root = show(dodo_dot_py=PUBLISH)
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert ran(out)[-1] == "publish" and ran(out).index("master:news/extra") < len(ran(out)) - 1
    assert (root / "public/extra.wav").read_bytes() == (root / "build/news/extra.wav").read_bytes()
    # the no-op hands doit no master task: the task_dep on it, satisfied, is dropped, not an error
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert ran(out) == [] and "-- publish" in out and "-- master:news/extra" in out


def test_doit_list_and_a_named_dodo_task_treat_it_like_mixdowns(
    show: Callable[..., Path], fakes: dict[str, Any], in_tmp: Path
) -> None:
    root = show(dodo_dot_py=PUBLISH)
    code, out, err = doit(root, fakes, "list")
    assert code == 0, out + err
    assert {line.split()[0] for line in out.splitlines() if line.strip()} >= {"publish", "master", "voice"}
    code, out, err = doit(root, fakes, "publish")
    assert code == 0, out + err
    assert "master:news/extra" in ran(out) and ran(out)[-1] == "publish"
    assert "master:news/briefing@anna" not in ran(out)  # only what publish needs
    assert (root / "public/extra.wav").stat().st_size == (root / "build/news/extra.wav").stat().st_size


def test_a_shards_build_leaves_the_shows_own_tasks_out(
    show: Callable[..., Path], fakes: dict[str, Any], in_tmp: Path
) -> None:
    root = show(dodo_dot_py=PUBLISH)
    code, out, err = doit(root, fakes, "--shard", "0/2", "list")
    assert code == 0, out + err
    assert "publish" not in out.split() and "master" in out.split()


@pytest.mark.parametrize(
    ("dodo", "expected"),
    [
        (
            "def task_master():\n    return {'actions': ['true']}\n",
            "task 'master' has the name of one of mixdown's",
        ),
        (
            "def task_x():\n    yield {'basename': 'mix:news/extra', 'actions': ['true']}\n",
            "task 'mix:news/extra' has the name of one of mixdown's",
        ),
        (
            "import no_such_module_here\n",
            "line 1: ModuleNotFoundError: No module named 'no_such_module_here'",
        ),
        ("x = 1\ndef task_a(:\n", ":2: SyntaxError"),
        (
            "def task_a():\n    return {'actions': ['true'], 'name': 'a'}\n",
            "Task 'a'. Only subtasks use field name",
        ),
        ("def task_a():\n    raise ValueError('bad\\nthing')\n", "line 2: ValueError: bad; thing"),
    ],
)
def test_a_broken_dodo_is_one_line_naming_it(
    show: Callable[..., Path], fakes: dict[str, Any], in_tmp: Path, dodo: str, expected: str
) -> None:
    root = show(dodo_dot_py=dodo)
    code, out, err = doit(root, fakes, "list")
    assert code == 3
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: {root / 'dodo.py'}") and expected in lines[0], err


def test_without_dodo_nothing_changes_working_directory_or_tasks(
    show: Callable[..., Path], fakes: dict[str, Any], tmp_path: Path
) -> None:
    root = show()
    before = os.getcwd()
    code, out, err = doit(root, fakes, "list")
    assert code == 0, out + err
    assert os.getcwd() == before
    assert sorted(line.split()[0] for line in out.splitlines() if line.strip()) == sorted(
        ["voice", "sfx", "music", "section", "mix", "master", "deliver", "captions", "otio"]
    )


def test_the_loader_finds_the_show_from_a_subdirectory(
    show: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = show()
    monkeypatch.chdir(root / "stanzas")
    loader = MixdownLoader()
    loader.setup({})
    assert loader.root == root.resolve()
    assert find_show(root.parent) == root.parent.resolve()  # no show above: itself, to say so
    loader = MixdownLoader()
    loader.setup({"cwdPath": str(root / "data")})  # -d DIR is the show, as given
    assert loader.root == (root / "data").resolve()


# -- real doit, in a subprocess: the entry point, doit.cfg and pyproject settings, -d DIR

TONE = '''
import numpy as np
from mixdown.renderers import RendererBase, RenderResult


class Renderer(RendererBase):
    """A voice that hums: 60 ms of a 220 Hz tone per character."""

    version = "1"
    kinds = frozenset({"voice"})

    def render(self, request):
        t = np.arange(int(0.06 * len(request.text) * 24000)) / 24000
        y = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        return RenderResult(y.astype(np.float32)[:, None], 24000)
'''
TONE_SHOW = {
    "project.toml": """
        [project]
        name = "Hum & Co"
        voice = "hum"
        [voices.hum]
        renderer = "tone"
        [scripts.ep]
        template = "stanzas/ep.j2"
        variants = "data/who.csv"
        [master]
        formats = ["wav", "mp3"]
        """,
    "stanzas/ep.j2": "## one\nHello {{ name }}, here we are.\n\n## two\nAnd that is all for now.\n",
    "data/who.csv": "id,name\nada,Ada\nkai,Kai Lee\n",
    "renderers/tone.py": TONE,
}


def write_show(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return root


def entry_point_path(tmp_path: Path) -> str:
    """A PYTHONPATH on which mixdown (this source) has the distribution metadata its pyproject
    declares, entry points included: what `pip install` of this checkout would give."""
    import tomllib

    meta = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]
    info = tmp_path / "site" / f"mixdown-{meta['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: mixdown\nVersion: {meta['version']}\n")
    groups = meta["entry-points"]
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in points.items())
            for group, points in groups.items()
        )
    )
    return os.pathsep.join([str(info.parent), str(SRC)])


def run(
    cwd: Path, *args: str, path: str | None = None, module: str = "doit"
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": path or str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("pyproject.toml", '[tool.doit]\nloader = "mixdown"\n'),
        ("doit.cfg", "[GLOBAL]\nloader = mixdown\n"),
    ],
)
def test_the_entry_point_is_enough_to_name_the_loader(tmp_path: Path, name: str, config: str) -> None:
    root = write_show(tmp_path / "show", {**TONE_SHOW, name: config})
    found = run(root, "list", path=entry_point_path(tmp_path))
    assert found.returncode == 0, found.stderr
    assert "master" in found.stdout.split()


def test_the_loader_named_by_its_class_still_works_and_dash_d_picks_the_show(tmp_path: Path) -> None:
    config = "[GLOBAL]\nloader = mixdown\n\n[LOADER]\nmixdown = mixdown.loader:MixdownLoader\n"
    root = write_show(tmp_path / "show", {**TONE_SHOW, "doit.cfg": config})
    other = write_show(tmp_path / "other", {"doit.cfg": config})
    listed = run(other, "-d", str(root), "list", "--all")
    assert listed.returncode == 0, listed.stderr
    assert "master:ep@kai" in listed.stdout.split()
    found = run(root / "stanzas", "build", "list", module="mixdown")  # mixdown build: from a subdirectory
    assert found.returncode == 0, found.stderr
    assert "master" in found.stdout.split()


FEED_DODO = """
from pathlib import Path

from mixdown.feed import feed_task


def task_feed():
    return feed_task(Path(__file__).parent, "https://example.org/hum/")
"""
NS = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "podcast": "https://podcastindex.org/namespace/1.0",
}


def test_the_feed_lists_every_mp3_master_with_its_size_and_duration(tmp_path: Path) -> None:
    root = write_show(tmp_path / "show", {**TONE_SHOW, "dodo.py": FEED_DODO})
    (root / "doit.cfg").write_text("[GLOBAL]\nloader = mixdown\n")
    path = entry_point_path(tmp_path)
    built = run(root, path=path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert ran(built.stdout)[-1] == "feed" and {"master:ep@ada", "master:ep@kai"} <= set(ran(built.stdout))
    channel = ET.parse(root / "build/feed.xml").getroot().find("channel")
    assert channel is not None and channel.findtext("title") == "Hum & Co"
    items = channel.findall("item")
    assert [item.findtext("title") for item in items] == ["ep@ada", "ep@kai"]
    for item, name in zip(items, ["ep@ada", "ep@kai"], strict=True):
        mp3 = root / "build" / f"{name}.mp3"
        enclosure = item.find("enclosure")
        assert enclosure is not None
        assert enclosure.attrib == {
            "url": f"https://example.org/hum/{name}.mp3",
            "length": str(mp3.stat().st_size),
            "type": "audio/mpeg",
        }
        seconds = float(item.findtext("itunes:duration", namespaces=NS) or "nan")
        y, sr = sf.read(mp3)
        assert seconds == pytest.approx(len(y) / sr, abs=0.05)
        # the programme's own length, plus what LAME pads it with: up to two 1152-sample frames
        wav = sf.info(root / "build" / f"{name}.wav")
        assert 0 <= seconds - wav.duration <= 2 * 1152 / wav.samplerate + 1e-3
        for tag, suffix, kind in (
            ("chapters", ".chapters.json", "application/json+chapters"),
            ("transcript", ".vtt", "text/vtt"),
        ):
            sidecar = item.find(f"podcast:{tag}", NS)
            assert sidecar is not None and sidecar.attrib == {
                "url": f"https://example.org/hum/{name}{suffix}",
                "type": kind,
            }
            assert (root / "build" / f"{name}{suffix}").stat().st_size > 0
    again = run(root, path=path)
    assert "-- feed" in again.stdout and ".  feed" not in again.stdout


def test_the_feed_points_to_the_sidecars_the_show_writes_and_follows_them(tmp_path: Path) -> None:
    off = "[publish]\ncaptions = false\nchapters = false\n"
    toml = TONE_SHOW["project.toml"]
    root = write_show(tmp_path / "show", {**TONE_SHOW, "project.toml": toml + off, "dodo.py": FEED_DODO})
    (root / "doit.cfg").write_text("[GLOBAL]\nloader = mixdown\n")
    path = entry_point_path(tmp_path)
    assert run(root, path=path).returncode == 0
    assert not list((root / "build").glob("*.vtt")) and not list((root / "build").glob("*.chapters.json"))
    items = ET.parse(root / "build/feed.xml").getroot().iter("item")
    assert all(
        i.find("podcast:chapters", NS) is None and i.find("podcast:transcript", NS) is None for i in items
    )
    before = (root / "build/feed.xml").read_bytes()
    (root / "project.toml").write_text(textwrap.dedent(toml).lstrip() + off.replace("captions = false\n", ""))
    rebuilt = run(root, path=path)  # captions on: written, and the feed follows them
    assert rebuilt.returncode == 0 and ".  feed" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr
    assert (root / "build/feed.xml").read_bytes() != before
    items = {i.findtext("title"): i for i in ET.parse(root / "build/feed.xml").getroot().iter("item")}
    chapters, transcript = (
        items["ep@kai"].find("podcast:chapters", NS),
        items["ep@kai"].find("podcast:transcript", NS),
    )
    assert chapters is None and transcript is not None
    assert transcript.attrib == {"url": "https://example.org/hum/ep@kai.vtt", "type": "text/vtt"}
    assert (root / "build/ep@kai.vtt").read_text().startswith("WEBVTT")
    assert not list((root / "build").glob("*.tmp")) and not list((root / "build").glob(".*"))
    assert np.isfinite(float(items["ep@kai"].findtext("itunes:duration", namespaces=NS) or "nan"))
