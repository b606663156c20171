"""Numeric tests of the speech EQ, phase rotator and compressor (mixdown.dsp.speech)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from mixdown.dsp.loudness import measure
from mixdown.dsp.speech import (
    SpeechSettings,
    compress,
    compressor_gain,
    phase_rotate,
    process,
    speech_eq,
    speech_level,
)
from mixdown.errors import AudioError

from .conftest import speech_like

SR = 48000


def db(x: float) -> float:
    return 20 * math.log10(x)


def sine(seconds: float, freq: float, amp: float = 0.5, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * freq * t)
    return np.repeat(y[:, None], channels, axis=1).astype(np.float32)


def steady_gain_db(y: np.ndarray, out: np.ndarray, skip: int) -> float:
    """Gain of ``out`` over ``y`` by RMS, after the first ``skip`` samples (filter settling)."""
    return 10 * math.log10(
        float(np.mean(out[skip:].astype(float) ** 2) / np.mean(y[skip:].astype(float) ** 2))
    )


def plr(y: np.ndarray, sr: int = SR) -> float:
    found = measure(y, sr)
    return found.true_peak - found.integrated


def gain_db(y: np.ndarray, **kwargs: float) -> np.ndarray:
    return np.asarray(20 * np.log10(compressor_gain(y, SR, **kwargs)))


# -- EQ --------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [48000, 22050])
def test_highpass_response(sr: int) -> None:
    def response(freq: float) -> float:
        y = sine(2.0, freq, sr=sr)
        return steady_gain_db(y, speech_eq(y, sr, highpass_hz=80, presence_db=0), skip=sr)

    assert response(80) == pytest.approx(-3.01, abs=0.1)  # Butterworth: -3 dB at the cut-off
    assert response(20) < -23  # 2nd order: 12 dB/octave, -24.1 dB two octaves down
    assert response(1000) == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("sr", [48000, 22050])
def test_presence_peak(sr: int) -> None:
    def response(freq: float) -> float:
        y = sine(1.0, freq, sr=sr)
        out = speech_eq(y, sr, highpass_hz=0, presence_hz=3500, presence_db=2.0, presence_q=0.8)
        return steady_gain_db(y, out, skip=sr // 10)

    assert response(3500) == pytest.approx(2.0, abs=0.2)
    assert 0.5 < response(2000) < 2.0  # broad
    assert abs(response(200)) < 0.15


def test_presence_skipped_when_the_rate_cannot_carry_it() -> None:
    y = sine(0.5, 440, sr=8000)
    out = speech_eq(y, 8000, highpass_hz=0, presence_hz=5000, presence_db=2.0)  # 5000 > 0.45 * 8000
    np.testing.assert_array_equal(out, y)
    with pytest.raises(ValueError, match="highpass_hz must be below"):
        speech_eq(y, 8000, highpass_hz=4000)


# -- phase rotator --------------------------------------------------------------


def test_phase_rotator_is_flat_and_lowers_pulse_peaks() -> None:
    for freq in (60, 200, 1000, 5000):
        y = sine(1.0, freq)
        assert steady_gain_db(y, phase_rotate(y, SR), skip=SR // 5) == pytest.approx(0.0, abs=0.01)
    # Glottal-like pulses: a one-sided pulse every 8.3 ms through a 700 Hz resonance.
    pulses = np.zeros(SR)
    pulses[:: SR // 120] = 1.0
    voiced = lfilter([1.0, -1.0], [1.0, -0.9], pulses)
    voiced = lfilter([1.0], [1.0, -1.8 * math.cos(2 * math.pi * 700 / SR), 0.81], voiced)
    y = (0.1 * voiced)[:, None].astype(np.float32)
    out = phase_rotate(y, SR)

    def crest(x: np.ndarray) -> float:
        x = x[SR // 10 :].astype(float)
        return db(np.abs(x).max() / math.sqrt(np.mean(x**2)))

    assert crest(out) < crest(y) - 3  # measured: 15.9 -> 10.9 dB
    np.testing.assert_array_equal(phase_rotate(y, SR, stages=0), y)


# -- compressor -------------------------------------------------------------------


def test_compressor_lowers_the_peak_to_loudness_ratio() -> None:
    y = speech_like(8, seed=1)
    out = compress(y, SR)
    assert plr(y) - plr(out) > 3.0  # measured: 21.0 -> 14.9 dB
    # Gentle: most speech passes nearly untouched.
    reduction = -gain_db(y)
    assert np.median(reduction[np.abs(y).max(axis=1) > 0.01]) < 3.0
    # Never a make-up gain: nothing gets louder.
    assert np.all(np.abs(out) <= np.abs(y))


def test_steady_signal_below_threshold_is_unchanged() -> None:
    y = sine(1.0, 1000, amp=0.3, channels=2)  # peaks 3 dB over its RMS: under 9 - 3 dB (knee)
    out = compress(y, SR)
    assert np.all(compressor_gain(y, SR) == 1.0)
    assert steady_gain_db(y, out, skip=0) == pytest.approx(0.0, abs=0.1)
    np.testing.assert_array_equal(out, y)


def test_static_curve_above_threshold() -> None:
    # A sine's peaks sit 3.01 dB over its RMS: 6.01 dB over a -3 dB threshold,
    # so ratio 4 with a hard knee takes 6.01 * 3/4 = 4.51 dB off.
    y = sine(1.0, 1000, amp=0.3)
    reduction = -gain_db(y, threshold_db=-3.0, ratio=4.0, knee_db=0.0)
    assert reduction[SR // 10 :].mean() == pytest.approx(4.51, abs=0.1)
    # In the middle of a 6 dB soft knee the reduction is (1 - 1/4) * 3^2 / 12 = 0.5625 dB.
    reduction = -gain_db(y, threshold_db=3.01, ratio=4.0, knee_db=6.0)
    assert reduction[SR // 10 :].mean() == pytest.approx(0.5625, abs=0.05)


@pytest.mark.parametrize("scale", [0.01, 3.0])
def test_scale_invariance(scale: float) -> None:
    y = speech_like(3, seed=2)
    out = compress(y, SR)
    scaled = compress(y * np.float32(scale), SR)
    np.testing.assert_allclose(scaled, out * np.float32(scale), rtol=0, atol=1e-5 * scale)
    assert speech_level(y * np.float32(scale), SR) == pytest.approx(speech_level(y, SR) + db(scale), abs=1e-4)


def test_channels_are_linked() -> None:
    n = SR
    y = np.zeros((n, 2), np.float32)
    y[:, 0] = sine(1.0, 300, amp=0.05)[:, 0]
    y[:, 1] = sine(1.0, 450, amp=0.05)[:, 0]
    y[SR // 2 : SR // 2 + 2400, 1] *= 10  # a 50 ms burst, right only
    out = compress(y, SR)
    gain = compressor_gain(y, SR)
    for c in range(2):
        big = np.abs(y[:, c]) > 1e-3
        np.testing.assert_allclose(out[big, c] / y[big, c], gain[big], rtol=1e-5)
    # The left channel is turned down with the right one.
    assert db(gain[SR // 2 + 1200]) < -3


def test_no_clicks_on_a_sudden_transient() -> None:
    y = sine(1.0, 200, amp=0.05)
    burst = slice(SR // 2, SR // 2 + SR // 20)
    y[burst] *= 10  # +20 dB for 50 ms, from one sample to the next
    settings = {"threshold_db": 0.0, "ratio": 4.0}
    gain = gain_db(y, **settings)
    assert np.abs(np.diff(gain)).max() < 0.1  # dB per sample; measured 0.05
    assert gain[burst].min() < -8  # it does compress the burst
    # Look-ahead: the gain is already down at the burst's first peak.
    out = compress(y, SR, **settings)
    onset = slice(SR // 2, SR // 2 + SR // 400)  # its first 2.5 ms: half a cycle
    assert db(np.abs(out[onset]).max() / np.abs(y[onset]).max()) < -8


def test_silence_and_tiny_inputs() -> None:
    everything = SpeechSettings(eq=True, rotate=True, compress=True)
    for n in (0, 1, 7, 400):  # 400 samples: 8 ms
        for y in (
            np.zeros((n, 2), np.float32),
            (0.5 * np.random.default_rng(n).standard_normal((n, 2))).astype(np.float32),
        ):
            out = process(y, SR, everything)
            assert out.shape == y.shape and out.dtype == np.float32
            assert np.isfinite(out).all()
    silence = np.zeros((SR, 1), np.float32)
    np.testing.assert_array_equal(process(silence, SR, everything), silence)
    assert speech_level(silence, SR) == -math.inf


def test_dtype_shape_and_input_untouched() -> None:
    y = speech_like(1, seed=3).astype(np.float64)
    before = y.copy()
    for settings in (SpeechSettings(), SpeechSettings(eq=True, rotate=True)):
        out = process(y, SR, settings)
        assert out.dtype == np.float32 and out.shape == y.shape
    np.testing.assert_array_equal(y, before)
    mono = y[:, :1].astype(np.float32)
    off = process(mono, SR, SpeechSettings(compress=False))
    assert off is not mono
    np.testing.assert_array_equal(off, mono)
    with pytest.raises(AudioError):
        process(mono[:, 0], SR)


def test_speech_level_ignores_pauses() -> None:
    y = sine(2.0, 1000, amp=0.5)
    y[SR // 2 : SR] = 0  # a pause
    y[SR : SR + SR // 4] *= 0.001  # breath-quiet: gated out
    assert speech_level(y, SR) == pytest.approx(db(0.5 / math.sqrt(2)), abs=0.05)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("ratio", 0.5, "ratio"),
        ("ratio", math.inf, "ratio"),
        ("threshold_db", math.nan, "threshold_db"),
        ("knee_db", -1.0, "knee_db"),
        ("attack", 0.0, "attack"),
        ("release", -0.1, "release"),
        ("highpass_hz", -80.0, "highpass_hz"),
        ("presence_hz", 0.0, "presence_hz"),
        ("presence_db", 40.0, "presence_db"),
        ("presence_q", 0.0, "presence_q"),
        ("rotate_hz", 0.0, "rotate_hz"),
        ("rotate_stages", -1, "rotate_stages"),
        ("rotate_stages", 2.5, "rotate_stages"),
    ],
)
def test_settings_validation(field: str, value: float, match: str) -> None:
    with pytest.raises(ValueError, match=f"SpeechSettings: {match}"):
        SpeechSettings(**{field: value})  # type: ignore[arg-type]


def test_function_argument_validation() -> None:
    y = sine(0.1, 440)
    with pytest.raises(ValueError, match="compress: ratio"):
        compress(y, SR, ratio=0.9)
    with pytest.raises(ValueError, match="speech_eq: presence_q"):
        speech_eq(y, SR, presence_q=-1)
    with pytest.raises(ValueError, match="sample rate"):
        compress(y, 0)
