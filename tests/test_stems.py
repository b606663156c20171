"""Stems cost the cache nothing: the voice and SFX stems made again from the pre-mixes, music from the mix.

The stems in ``build/`` must add up, in 24-bit steps, to the mix exactly,
the voice and SFX stems being the buses the mix summed; and a spliced mix's
stems (and master) must be, bit for bit, those of the mix made whole, in a
float cache and in a compact one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown.actions import published
from mixdown.actions.mix import change_of, mix_once, program_of
from mixdown.codecs.flac24 import steps24
from mixdown.loader import load_show
from mixdown.renderers import Registry
from mixdown.store.cache import Cache

from .test_build import doit
from .test_remix import TOML, TextVoice, script, sentence

STEMS_TOML = TOML.format(rate=22050, channels=2).replace(
    'formats = ["wav"]', 'formats = ["wav"]\nstems = true'
)


@pytest.fixture
def fakes(fakes: dict[str, Any]) -> dict[str, Any]:
    return {**fakes, "fake": TextVoice()}


@pytest.fixture
def stem_show(tmp_path: Path, fakes: dict[str, Any]) -> Path:
    (tmp_path / "stanzas").mkdir()
    (tmp_path / "project.toml").write_text(STEMS_TOML)
    (tmp_path / "stanzas" / "episode.j2").write_text(script())
    code, out, err = doit(tmp_path, fakes)
    assert code == 0, out + err
    return tmp_path


def _loaded(root: Path, fakes: dict[str, Any]) -> tuple[Any, Any]:
    show = load_show(root, registry=Registry(root, extra=fakes))
    return show.context, show.plan.mixes[0]


def _steps(path: Path) -> np.ndarray:
    """A 24-bit WAV's samples as whole steps."""
    found, _ = sf.read(path, dtype="int32", always_2d=True)
    assert sf.info(str(path)).subtype == "PCM_24"
    return found >> 8


def test_stems_add_up_to_the_mix_in_24_bit_steps(stem_show: Path, fakes: dict[str, Any]) -> None:
    context, plan = _loaded(stem_show, fakes)
    cache = context.cache
    mixed = steps24(cache.get(plan.key)[0])
    folder = stem_show / "build" / "show" / "episode.stems"
    stems = {bus: _steps(folder / f"{bus}.wav") for bus in ("voice", "sfx", "music")}
    np.testing.assert_array_equal(stems["voice"] + stems["sfx"] + stems["music"], mixed)
    # the voice and SFX stems are the buses the mix summed, step for step
    buses = list(program_of(context, plan).blocks())
    for bus in ("voice", "sfx"):
        np.testing.assert_array_equal(stems[bus], steps24(np.concatenate([getattr(b, bus) for b in buses])))
        assert np.abs(stems[bus]).max() > 2**23 // 100  # each bus sounds (above -40 dBFS)
    kinds = {
        json.loads(p.read_text()).get("kind") for p in (stem_show / "cache" / "objects").glob("*/*.json")
    }
    assert "stem" not in kinds and "mix" in kinds  # no stem is cached: they are made from the pre-mixes
    # the bed sounds where nothing else does: there the music stem is the mix
    quiet = (stems["voice"] == 0).all(axis=1) & (stems["sfx"] == 0).all(axis=1)
    assert quiet.sum() > 22050
    np.testing.assert_array_equal(stems["music"][quiet], mixed[quiet])
    assert np.abs(stems["music"][quiet]).max() > 2**23 // 1000


@pytest.mark.parametrize("compact", [False, True])
def test_an_edit_splices_to_the_stems_a_whole_build_makes(
    stem_show: Path, fakes: dict[str, Any], compact: bool
) -> None:
    project = stem_show / "project.toml"
    project.write_text(project.read_text() + f"\n[cache]\ncompact = {str(compact).lower()}\n")
    code, out, err = doit(stem_show, fakes)  # the show as it is (again, if compact: other keys)
    assert code == 0, out + err
    context, before = _loaded(stem_show, fakes)
    (stem_show / "stanzas" / "episode.j2").write_text(script(sentence(207).upper()))
    code, out, err = doit(stem_show, fakes)
    assert code == 0, out + err
    assert "mix:show/episode  spliced: mixed" in out, out
    context, after = _loaded(stem_show, fakes)
    assert (cache_codec(context.cache, after.key) == "flac24") is compact
    change = change_of(context, after)
    assert change is not None and change.parent == before.key
    folder = stem_show / "build" / "show" / "episode.stems"
    built = {
        p.name: p.read_bytes() for p in [*folder.iterdir(), stem_show / "build" / "show" / "episode.wav"]
    }
    assert len(built) == 4
    # made whole: the mix deleted, and nothing published to splice from
    for path in (stem_show / "cache" / "objects" / after.key[:2]).glob(f"{after.key}*"):
        path.unlink()
    published.forget(context, after)
    mix_once(context, after)
    assert change_of(context, after) is None
    code, out, err = doit(stem_show, fakes, "-a")
    assert code == 0, out + err
    assert {
        p.name: p.read_bytes() for p in [*folder.iterdir(), stem_show / "build" / "show" / "episode.wav"]
    } == built


def cache_codec(cache: Cache, key: str) -> str | None:
    """The codec a cache object is stored in, as its record says (None: a float WAV)."""
    codec: str | None = cache.meta(key).get("codec")
    return codec
