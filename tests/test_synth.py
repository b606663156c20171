"""The ``synth`` renderer: numeric checks of every preset and of the music segments."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest
from scipy.signal import welch

from mixdown.errors import RenderFailed
from mixdown.renderers.base import RenderRequest, RenderResult
from mixdown.renderers.local import synth, tones
from mixdown.renderers.local.synth import MUSIC_PRESETS, SFX_PRESETS, Synth

SR = 48000
ALL_PRESETS = [*SFX_PRESETS, *MUSIC_PRESETS]


def render(kind: str, segment: str | None = None, **params: Any) -> RenderResult:
    return Synth().render(RenderRequest(kind, params, segment=segment, target=f"{kind}.test"))


def rms(y: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(y, dtype=np.float64))))


def flatness(y: np.ndarray) -> float:
    """Spectral flatness (geometric / arithmetic mean of the PSD), 20 Hz - 20 kHz."""
    f, p = welch(y.mean(axis=1), SR, nperseg=4096)
    p = p[(f > 20) & (f < 20000)] + 1e-20
    return float(np.exp(np.mean(np.log(p))) / np.mean(p))


def seam_ratios(main: np.ndarray) -> tuple[float, float]:
    """The step from a loop's last sample to its first (worst channel), against the
    loop's 99th-percentile step and against the largest step within 1 ms of the seam."""
    steps = np.abs(np.diff(np.tile(main, (2, 1)), axis=0))
    i = len(main) - 1
    typical = np.percentile(steps[:i], 99, axis=0)
    nearby = np.r_[steps[i - 48 : i], steps[i + 1 : i + 49]].max(axis=0)
    return float(np.max(steps[i] / typical)), float(np.max(steps[i] / nearby))


def dominant_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y.mean(axis=1)))
    return float(np.fft.rfftfreq(len(y), 1 / SR)[np.argmax(spec)])


def check_asset(y: np.ndarray, ends_silent: bool) -> None:
    assert y.dtype == np.float32 and y.ndim == 2 and y.shape[1] == 2
    assert np.isfinite(y).all()
    assert 0.5 < np.abs(y).max() <= 0.9
    assert rms(y) > 0.01  # clearly audible, not a few stray samples
    assert np.all(np.abs(y.mean(axis=0)) < 0.02 * rms(y))  # no DC offset
    if ends_silent:
        assert np.abs(y[0]).max() < 1e-3 and np.abs(y[-1]).max() < 1e-3


@pytest.mark.parametrize("preset", SFX_PRESETS)
def test_sfx_format_level_and_ends(preset: str) -> None:
    res = render("sfx", preset=preset)
    assert res.sample_rate == SR
    assert len(res.audio) == round(SFX_PRESETS[preset] * SR)
    check_asset(res.audio, ends_silent=True)
    assert res.meta == {"preset": preset, "seed": 0, "pitch": 0.0, "duration": SFX_PRESETS[preset]}


@pytest.mark.parametrize("preset", SFX_PRESETS)
@pytest.mark.parametrize("duration", [0.01, 7.5])
def test_sfx_duration_overrides_the_length(preset: str, duration: float) -> None:
    y = render("sfx", preset=preset, duration=duration, seed=4, pitch=-5).audio
    assert len(y) == round(duration * SR)
    assert np.isfinite(y).all() and 0.5 < np.abs(y).max() <= 0.9
    assert np.abs(y[0]).max() < 1e-3 and np.abs(y[-1]).max() < 1e-3


@pytest.mark.parametrize("preset", MUSIC_PRESETS)
@pytest.mark.parametrize("segment", synth.SEGMENTS)
def test_music_format_level_and_ends(preset: str, segment: str) -> None:
    res = render("music", segment, preset=preset, seed=5)
    assert res.sample_rate == SR
    assert res.meta["preset"] == preset and res.meta["seed"] == 5 and res.meta["segment"] == segment
    check_asset(res.audio, ends_silent=segment != "main")


@pytest.mark.parametrize("preset", ALL_PRESETS)
def test_same_settings_give_identical_audio(preset: str) -> None:
    kind, segment = ("sfx", None) if preset in SFX_PRESETS else ("music", "main")
    a = render(kind, segment, preset=preset, seed=11, pitch=2).audio
    b = render(kind, segment, preset=preset, seed=11, pitch=2).audio
    assert np.array_equal(a, b)


def test_identical_across_processes() -> None:
    code = (
        "import hashlib; from mixdown.renderers.local.synth import render_music, render_sfx; "
        "print(hashlib.sha256(render_sfx('rain', seed=2).tobytes() "
        "+ render_music('pulse', 'main', seed=5).tobytes()).hexdigest())"
    )
    here = hashlib.sha256(
        synth.render_sfx("rain", seed=2).tobytes() + synth.render_music("pulse", "main", seed=5).tobytes()
    ).hexdigest()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


@pytest.mark.parametrize("preset", ALL_PRESETS)
def test_different_seeds_differ(preset: str) -> None:
    kind, segment = ("sfx", None) if preset in SFX_PRESETS else ("music", "main")
    a = render(kind, segment, preset=preset, seed=0).audio
    b = render(kind, segment, preset=preset, seed=1).audio
    n = min(len(a), len(b))
    assert rms(a[:n] - b[:n]) > 0.3 * rms(a[:n])


def test_music_seeds_change_the_harmony() -> None:
    # Long-term spectra of different seeds' beds differ (chords, voicing, key of glints),
    # not just their noise or phases.
    spectra = []
    for seed in range(4):
        f, p = welch(synth.render_music("ambient", "main", seed=seed).mean(axis=1), SR, nperseg=16384)
        band = (f > 60) & (f < 2000)
        spectra.append(np.log(p[band] + 1e-12))
    corr = np.corrcoef(spectra)[np.triu_indices(4, 1)]
    assert corr.max() < 0.95


def test_chime_is_tonal_and_follows_pitch() -> None:
    y = synth.render_sfx("chime", seed=3)
    _, p = welch(y.mean(axis=1), SR, nperseg=8192)
    assert p.max() > 1e4 * np.median(p)
    f0 = dominant_hz(y)
    notes = 440 * 2 ** ((np.array([76, 78, 80, 83, 85]) - 69) / 12)
    assert np.min(np.abs(f0 / notes - 1)) < 0.005  # a pentatonic note around E5..C#6
    assert dominant_hz(synth.render_sfx("chime", seed=3, pitch=12)) == pytest.approx(2 * f0, rel=0.005)
    assert len({round(dominant_hz(synth.render_sfx("chime", seed=s))) for s in range(8)}) >= 2


def test_rain_is_broadband_and_chime_is_not() -> None:
    rain, chime = flatness(synth.render_sfx("rain")), flatness(synth.render_sfx("chime"))
    assert rain > 0.2
    assert rain > 50 * chime


def test_whoosh_swells_and_moves() -> None:
    y = synth.render_sfx("whoosh", seed=1)
    frames = y[: len(y) // 2400 * 2400].reshape(-1, 2400, 2)
    energy = np.sqrt((frames**2).mean(axis=(1, 2)))
    assert energy.max() > 10 * energy[[0, -1]].max()  # silent-ish ends, a loud middle
    assert 0.3 < np.argmax(energy) / len(energy) < 0.8
    left, right = (frames**2).mean(axis=1).T
    start, end = slice(2, 8), slice(-8, -2)  # it pans from one side to the other
    assert np.sign(np.log(left[start].sum() / right[start].sum())) == -np.sign(
        np.log(left[end].sum() / right[end].sum())
    )


def test_riser_rises() -> None:
    y = synth.render_sfx("riser")
    quarters = np.array_split(y.mean(axis=1), 4)
    assert all(rms(a) < rms(b) for a, b in zip(quarters, quarters[1:], strict=False))
    centroids = []
    for q in quarters:
        spec = np.abs(np.fft.rfft(q)) ** 2
        centroids.append((spec * np.fft.rfftfreq(len(q), 1 / SR)).sum() / spec.sum())
    assert centroids[-1] > 2 * centroids[0]


@pytest.mark.parametrize("preset", ["chime", "sting", "riser", "click"])
def test_tonal_presets_stay_band_limited_when_transposed_up(preset: str) -> None:
    y = synth.render_sfx(preset, seed=2, pitch=24).mean(axis=1)
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert spec[f > 20000].sum() < 0.02 * spec.sum()


@pytest.mark.parametrize("preset", MUSIC_PRESETS)
@pytest.mark.parametrize(("seed", "tempo"), [(0, None), (5, None), (7, 133.3)])
def test_main_loops_without_a_click(preset: str, seed: int, tempo: float | None) -> None:
    main = synth.render_music(preset, "main", seed=seed, tempo=tempo)
    typical, local = seam_ratios(main)
    assert typical < 2.0  # the jump at the seam is an ordinary step for this loop ...
    assert local < 1.25  # ... and no bigger than the steps right around it


@pytest.mark.parametrize(("preset", "seed"), [("ambient", 2), ("pulse", 3)])
def test_seam_check_catches_an_unfolded_loop(preset: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Cutting the tail off instead of folding it back onto the start must fail the check.
    monkeypatch.setattr(tones, "wrap", lambda y, n: y[:n])
    assert seam_ratios(synth.render_music(preset, "main", seed=seed))[1] > 2.5


@pytest.mark.parametrize("tempo", [40, 70, 96, 133.3, 200])
@pytest.mark.parametrize("preset", MUSIC_PRESETS)
def test_segments_are_whole_bars(preset: str, tempo: float) -> None:
    for segment in synth.SEGMENTS:
        res = render("music", segment, preset=preset, tempo=tempo)
        bars = res.meta["bars"]
        assert res.meta["tempo"] == tempo and isinstance(bars, int)
        assert abs(len(res.audio) - bars * 4 * 60 / tempo * SR) <= 1
        seconds = len(res.audio) / SR
        if segment == "main":
            assert 8.0 - 1e-6 <= seconds <= 16.0 + 1e-6
        else:
            assert bars <= 4 and seconds <= 14.0


def test_default_tempos() -> None:
    assert render("music", "main", preset="pulse").meta["tempo"] == 96
    assert render("music", "main", preset="ambient").meta["tempo"] == 70
    assert len(synth.render_music("pulse", "main")) == 4 * 4 * 60 / 96 * SR


def test_intro_fades_in_and_outro_decays_to_silence() -> None:
    for preset in MUSIC_PRESETS:
        intro = synth.render_music(preset, "intro", seed=5)
        outro = synth.render_music(preset, "outro", seed=5)
        assert rms(intro[: SR // 10]) < 0.05 * rms(intro[len(intro) // 2 :])
        assert rms(outro[-SR // 2 :]) < 0.02 * rms(outro[: len(outro) // 2])


def test_pitch_transposes_music() -> None:
    a = synth.render_music("ambient", "main", seed=1)
    b = synth.render_music("ambient", "main", seed=1, pitch=12)
    assert dominant_hz(b) > 1.5 * dominant_hz(a)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({}, "synth needs a preset"),
        ({"preset": "harp"}, "synth has no preset 'harp'"),
        ({"preset": "rain", "duration": 0}, "duration must be more than 0 and at most 60"),
        ({"preset": "rain", "duration": -1.0}, "duration"),
        ({"preset": "rain", "duration": 61}, "duration"),
        ({"preset": "rain", "duration": float("nan")}, "duration"),
        ({"preset": "pulse", "tempo": 39}, "tempo must be between 40 and 200"),
        ({"preset": "pulse", "tempo": 200.5}, "tempo"),
        ({"preset": "chime", "pitch": 25}, "pitch must be between -24 and 24"),
        ({"preset": "chime", "seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_check_rejects_bad_values(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        Synth.check(params)
    if "preset" in match:
        assert all(name in str(err.value) for name in ALL_PRESETS)


def test_check_accepts_good_values() -> None:
    Synth.check({"preset": "rain", "duration": 60, "seed": 9, "pitch": -24})
    Synth.check({"preset": "ambient", "tempo": 40.0, "pitch": 24})


def test_render_refuses_bad_requests_naming_the_target() -> None:
    with pytest.raises(RenderFailed, match=r"music\.test: unknown music segment 'bridge'"):
        render("music", "bridge", preset="pulse")
    with pytest.raises(RenderFailed, match=r"music\.test: unknown music segment None"):
        render("music", None, preset="pulse")
    with pytest.raises(RenderFailed, match=r"sfx\.test: synth preset 'pulse' does not make 'sfx'"):
        render("sfx", preset="pulse")
    with pytest.raises(RenderFailed, match=r"music\.test: synth preset 'chime' does not make 'music'"):
        render("music", "main", preset="chime")
    with pytest.raises(RenderFailed, match=r"voice\.test: .*does not make 'voice'"):
        render("voice", preset="chime")
    with pytest.raises(RenderFailed, match=r"sfx\.test: synth duration must be"):
        render("sfx", preset="rain", duration=100)


@pytest.mark.parametrize("preset", ALL_PRESETS)
def test_renders_fast(preset: str) -> None:
    # The budget is 0.5 s on a 2-core machine; allow slack for a busy test runner.
    kind, segment = ("sfx", None) if preset in SFX_PRESETS else ("music", "main")
    render(kind, segment, preset=preset)  # warm the wavetable and reverb caches
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        render(kind, segment, preset=preset, seed=7)
        best = min(best, time.perf_counter() - start)
    assert best < 0.5
