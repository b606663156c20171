"""Stems kept compactly: the voice and SFX buses as 24-bit FLAC, the music stem made from the mix.

The stems in ``build/`` must add up, in 24-bit steps, to the mix exactly; a
spliced mix's stems must be, bit for bit, those of the mix made whole; and a
programme minute of stems must cost the cache a small part of what three
float32 copies of the mix cost before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown.actions import published
from mixdown.actions.mix import change_of, mix_once
from mixdown.codecs.stems import steps24
from mixdown.loader import load_show
from mixdown.renderers import Registry
from mixdown.store.cache import Cache
from mixdown.store.files import sha256_of

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
    for bus in ("voice", "sfx"):  # what the cache keeps, step for step
        stored, _ = sf.read(cache.path(plan.stem_key(bus)), dtype="int32", always_2d=True)
        np.testing.assert_array_equal(stored >> 8, stems[bus])
        assert cache.meta(plan.stem_key(bus))["codec"] == "flac24"
        assert np.abs(stems[bus]).max() > 2**23 // 100  # each bus sounds (above -40 dBFS)
    assert plan.stem_key("music") not in cache  # made from the mix, not stored
    # the bed sounds where nothing else does: there the music stem is the mix
    quiet = (stems["voice"] == 0).all(axis=1) & (stems["sfx"] == 0).all(axis=1)
    assert quiet.sum() > 22050
    np.testing.assert_array_equal(stems["music"][quiet], mixed[quiet])
    assert np.abs(stems["music"][quiet]).max() > 2**23 // 1000


def test_a_programme_minute_of_stems_costs_a_fraction_of_a_float_copy(
    stem_show: Path, fakes: dict[str, Any]
) -> None:
    context, plan = _loaded(stem_show, fakes)
    cache = context.cache
    frames, sr, channels = cache.info(plan.key)
    minutes = frames / sr / 60
    float_per_minute = frames * channels * 4 / minutes  # one bus as the cache kept each of three before
    stored = sum(cache.path(plan.stem_key(bus)).stat().st_size for bus in ("voice", "sfx"))
    assert 3 < minutes < 4
    # measured 0.09 of a float copy per programme minute here (3.0 before: three float buses);
    # benchmarks/cachesize.py measures a whole show's cache per programme minute
    assert stored / minutes < 0.2 * float_per_minute


def test_an_edit_splices_the_stems_bit_for_bit(stem_show: Path, fakes: dict[str, Any]) -> None:
    context, before = _loaded(stem_show, fakes)
    (stem_show / "stanzas" / "episode.j2").write_text(script(sentence(207).upper()))
    code, out, err = doit(stem_show, fakes)
    assert code == 0, out + err
    assert "mix:show/episode  spliced: mixed" in out, out
    context, after = _loaded(stem_show, fakes)
    change = change_of(context, after)
    assert change is not None and change.parent == before.key
    buses = ("voice", "sfx")
    spliced = {bus: context.cache.get(after.stem_key(bus))[0] for bus in buses}
    folder = stem_show / "build" / "show" / "episode.stems"
    built = {bus: (folder / f"{bus}.wav").read_bytes() for bus in ("voice", "sfx", "music")}
    assert not np.array_equal(spliced["voice"], context.cache.get(before.stem_key("voice"))[0])
    # made whole: the mix and its stems deleted, and nothing published to splice from
    for key in (after.key, *(after.stem_key(bus) for bus in buses)):
        for path in (stem_show / "cache" / "objects" / key[:2]).glob(f"{key}*"):
            path.unlink()
    context, plan = _loaded(stem_show, fakes)
    published.forget(context, plan)
    mix_once(context, plan)
    assert change_of(context, plan) is None
    for bus in buses:
        np.testing.assert_array_equal(context.cache.get(plan.stem_key(bus))[0], spliced[bus])
    code, out, err = doit(stem_show, fakes, "-a")
    assert code == 0, out + err
    assert {bus: (folder / f"{bus}.wav").read_bytes() for bus in built} == built


def test_a_flac_object_is_copied_from_at_any_frame(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    rng = np.random.default_rng(3)
    audio = np.clip(0.3 * rng.standard_normal((50_000, 2)), -0.99, 0.99).astype(np.float32)
    audio[10_000:30_000] = 0.0
    with cache.writer("ab" + "1" * 62, 16000, 2, frames=len(audio)) as writer:
        writer.write(audio)
        path = writer.commit({"kind": "stem"}, digest=True, flac=True)
    record = cache.meta("ab" + "1" * 62)
    assert record["codec"] == "flac24" and record["sha256"] == sha256_of(path)
    assert record["size"] == path.stat().st_size < len(audio) * 2 * 3 * 0.8  # silence costs little
    assert sf.info(str(path)).format == "FLAC" and cache.info("ab" + "1" * 62) == (50_000, 16000, 2)
    stored = cache.get("ab" + "1" * 62)[0]
    np.testing.assert_array_equal(steps24(stored), steps24(audio))
    assert np.abs(stored - audio).max() <= 2.0**-24
    with cache.writer("cd" + "2" * 62, 16000, 2, frames=40_000) as writer:
        writer.copy_from("ab" + "1" * 62, 5_000, 25_000, at=20_000)  # a stretch, shifted
        writer.copy_from("ab" + "1" * 62, 0, 20_000)
        writer.commit({"kind": "stem"})
    copied = cache.get("cd" + "2" * 62)[0]
    np.testing.assert_array_equal(copied[:20_000], stored[:20_000])
    np.testing.assert_array_equal(copied[20_000:], stored[5_000:25_000])


def test_silence_in_a_float_object_takes_no_disk(tmp_path: Path) -> None:
    from mixdown.codecs.wav import sounding_runs

    cache = Cache(tmp_path)
    sr, frames = 48000, 48000 * 20
    audio = np.zeros((frames, 2), np.float32)
    rng = np.random.default_rng(5)
    for at in (0, 7 * sr, 19 * sr):  # three half-second stings in twenty seconds of silence
        audio[at : at + sr // 2] = (0.2 * rng.standard_normal((sr // 2, 2))).astype(np.float32)
    audio[12 * sr, 1] = -0.0  # not silence, bit for bit: it is written
    key = "ef" + "3" * 62
    with cache.writer(key, sr, 2, frames=frames) as writer:
        for start in range(0, frames, 65536):
            writer.write_at(start, audio[start : start + 65536])
        path = writer.commit({"kind": "section", "bus": "sfx"}, digest=True)
    stored = cache.get(key)[0]
    assert stored.tobytes() == audio.tobytes()
    assert (
        cache.meta(key)["size"] == path.stat().st_size == 58 + frames * 8
    )  # a float WAV header and every frame
    on_disk = path.stat().st_blocks * 512
    assert on_disk < 0.1 * path.stat().st_size  # 1.5 s of 20 sound; a hole wherever the rest is
    assert sounding_runs(audio[12 * sr - 10 : 12 * sr + 10]) == [(10, 11)]
    assert sounding_runs(audio[: sr // 2 + 100], min_silence=101) == [(0, sr // 2)]
    assert sounding_runs(audio[: sr // 2 + 4000]) == [(0, sr // 2)]
