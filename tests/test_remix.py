"""An edit re-mixes only what it touched: a mix spliced from the rendition's last one (issue 19).

A programme of five minutes at a low rate (the mix's parts are two
minutes): one line edited in the middle, at the same length and two seconds
longer. The spliced mix must be, bit for bit, the mix made whole from the
same timeline, and equal to the mix before the edit outside the stretch it
says changed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixdown.actions import published
from mixdown.actions.mix import ANALYSIS, change_of, mix_once
from mixdown.dsp.master import Analysis
from mixdown.loader import load_show
from mixdown.renderers import Registry, RenderRequest, RenderResult

from .conftest import CountingVoice
from .test_build import doit


class TextVoice(CountingVoice):
    """The counting fake, pitched by its text: an edit at the same length sounds different."""

    def render(self, request: RenderRequest) -> RenderResult:
        result = super().render(request)
        pitch = 1.0 + (sum(request.text.encode()) % 50) / 100
        t = np.arange(len(result.audio)) / result.sample_rate
        tone = 0.3 * np.sin(2 * np.pi * 150 * pitch * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
        return RenderResult(tone.astype(np.float32)[:, None], result.sample_rate, result.meta)


@pytest.fixture
def fakes(fakes: dict[str, Any]) -> dict[str, Any]:
    return {**fakes, "fake": TextVoice()}


TOML = """
[project]
name = "Remix"
voice = "anna"
sample_rate = {rate}
channels = {channels}

[voices.anna]
renderer = "fake"

[voices.ben]
renderer = "fake"
speed = 1.25

[sfx.ding]
renderer = "noise"
seconds = 0.4
seed = 1
offset = -0.3

[music.bed]
renderer = "noise"
seconds = 3.0
seed = 2
gain_db = -22

[modules.show]
music = "bed"

[scripts.episode]
module = "show"
template = "stanzas/episode.j2"

[master]
formats = ["wav"]
"""

WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike".split()


def sentence(seed: int, chars: int = 150) -> str:
    """A line of about ``chars`` characters (the fake voice speaks 50 a second)."""
    rng = np.random.default_rng(seed)
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(str(rng.choice(WORDS)))
    return " ".join(words).capitalize() + "."


def script(edit: str = "") -> str:
    """Four sections of fifteen lines (about 80 s each); ``edit`` replaces line 7 of the third."""
    out = []
    for section in range(4):
        voice = " voice=ben" if section == 1 else ""
        out.append(f"## part{section}{voice}\n")
        for line in range(15):
            text = edit if (section, line) == (2, 7) and edit else sentence(section * 100 + line)
            cue = " [sfx:ding]" if line % 5 == 0 else ""
            out.append(f"{text}{cue}\n\n")
    return "".join(out)


@pytest.fixture(
    params=[(22050, 1, "bed"), (44100, 2, "bed"), (22050, 2, "none")],
    ids=["22k-mono", "44k-stereo", "22k-stereo-no-bed"],
)
def long_show(request: Any, tmp_path: Path) -> Path:
    rate, channels, music = request.param
    (tmp_path / "stanzas").mkdir()
    toml = TOML.format(rate=rate, channels=channels)
    if music == "none":  # no bed: nothing ducks, the mix is its voice and SFX
        toml = toml.replace('[modules.show]\nmusic = "bed"', "[modules.show]")
    (tmp_path / "project.toml").write_text(toml)
    (tmp_path / "stanzas" / "episode.j2").write_text(script())
    return tmp_path


def _mix_of(root: Path, fakes: dict[str, Any]) -> tuple[Any, Any]:
    loaded = load_show(root, registry=Registry(root, extra=fakes))
    return loaded.context, loaded.plan.mixes[0]


def _delete(root: Path, keys: list[str]) -> None:
    """Delete cache objects ``keys`` and everything kept beside them."""
    objects = root / "cache" / "objects"
    for key in keys:
        for path in (objects / key[:2]).glob(f"{key}*"):
            path.unlink()


def _whole(root: Path, fakes: dict[str, Any], key: str) -> tuple[np.ndarray, np.ndarray]:
    """The mix ``key`` made whole again (no parent to splice from), and its hop energies."""
    _delete(root, [key])
    context, plan = _mix_of(root, fakes)  # a fresh cache listing
    assert plan.key == key and key not in context.cache
    published.forget(context, plan)
    mix_once(context, plan)
    assert change_of(context, plan) is None  # made whole
    analysis = Analysis.load(context.cache.side_path(plan.key, ANALYSIS))
    assert analysis is not None
    return context.cache.get(plan.key)[0], analysis.meter.hop_energies()


def _premix_whole(root: Path, fakes: dict[str, Any], index: int) -> list[np.ndarray]:
    """The buses of section ``index``'s pre-mix made whole again (no earlier version to start from)."""
    from mixdown.actions.section import premix_once
    from mixdown.plan.model import section_sfx_key

    context, plan = _mix_of(root, fakes)
    key = plan.section_keys[index]
    buses = [k for k in (key, section_sfx_key(key)) if k in context.cache]
    made = [context.cache.get(k)[0] for k in buses]
    _delete(root, buses)
    context, plan = _mix_of(root, fakes)
    assert key not in context.cache
    published.forget(context, plan)
    premix_once(context, plan, index)
    return [*made, *(context.cache.get(k)[0] for k in buses)]


@pytest.mark.parametrize("longer", [False, True], ids=["same-length", "two-seconds-longer"])
def test_an_edit_splices_the_mix_bit_for_bit(long_show: Path, fakes: dict[str, Any], longer: bool) -> None:
    code, out, err = doit(long_show, fakes)
    assert code == 0, out + err
    context, before = _mix_of(long_show, fakes)
    old = context.cache.get(before.key)[0]
    original = sentence(207)
    edit = original.upper() if not longer else original + " " + sentence(999, 99)
    (long_show / "stanzas" / "episode.j2").write_text(script(edit))
    fakes["fake"].calls.clear()
    code, out, err = doit(long_show, fakes)
    assert code == 0, out + err
    assert len(fakes["fake"].calls) == 1  # one line rendered (a long one is split: its new part)
    assert "section:show/episode/part2  spliced: summed" in out, out
    assert "mix:show/episode  spliced: mixed" in out, out
    context, after = _mix_of(long_show, fakes)
    change = change_of(context, after)
    assert change is not None and change.parent == before.key
    spliced = context.cache.get(after.key)[0]
    analysis = Analysis.load(context.cache.side_path(after.key, ANALYSIS))
    assert analysis is not None
    hops = analysis.meter.hop_energies().copy()
    sr = after.timeline.sample_rate
    # the edit is in the third of four sections (about 50 s each): the first two did not change
    assert change.start > 90 * sr
    if longer:
        assert 2.0 * sr <= len(spliced) - len(old) <= 2.5 * sr  # two seconds and a line gap
        assert change.stop == len(spliced)
    else:
        # only the edited line (about 3 s) and what ducks under it: not its whole section
        assert len(spliced) == len(old) and change.stop - change.start < 8 * sr
        np.testing.assert_array_equal(spliced[change.stop :], old[change.stop :])
    np.testing.assert_array_equal(spliced[: change.start], old[: change.start])
    assert not np.array_equal(spliced[change.start : change.stop], old[change.start : change.stop])
    edited = [i for i, key in enumerate(after.section_keys) if key not in before.section_keys]
    assert edited == [2]
    buses = _premix_whole(long_show, fakes, 2)  # spliced from its earlier pre-mix, then made whole
    for spliced_bus, whole_bus in zip(buses[: len(buses) // 2], buses[len(buses) // 2 :], strict=True):
        np.testing.assert_array_equal(spliced_bus, whole_bus)
    whole, whole_hops = _whole(long_show, fakes, after.key)
    np.testing.assert_array_equal(spliced, whole)  # the same samples as a whole mix
    np.testing.assert_array_equal(hops, whole_hops)  # and the same measurement


def test_a_mix_without_a_published_parent_is_made_whole(long_show: Path, fakes: dict[str, Any]) -> None:
    code, out, err = doit(long_show, fakes)
    assert code == 0, out + err
    context, before = _mix_of(long_show, fakes)
    assert change_of(context, before) is None  # the first build had nothing to splice from
    (long_show / ".mixdown" / "published").rename(long_show / "elsewhere")  # as on a fresh clone
    (long_show / "stanzas" / "episode.j2").write_text(script(sentence(207).upper()))
    code, out, err = doit(long_show, fakes)
    assert code == 0, out + err
    assert "spliced" not in out
    context, after = _mix_of(long_show, fakes)
    assert change_of(context, after) is None
    assert os.path.exists(long_show / ".mixdown" / "published")  # recorded again for the next edit
