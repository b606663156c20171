"""Conformance and behaviour tests of the BS.1770-4 / EBU R128 meter (mixdown.dsp.loudness).

Signals are synthesised: EBU Tech 3341 / 3342 cases as 1 kHz stereo sines
(both channels equal, "dBFS" is the sine's peak), true-peak sines after
Tech 3341 cases 15-19, and speech-like noise for cross-checks.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.queues
import time
from collections.abc import Sequence

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import lfilter

from mixdown.dsp.loudness import (
    _SOS_48K,
    Measurement,
    Meter,
    _complete_hops,
    _design_k_weighting,
    _interpolator,
    measure,
    row_max,
    true_peak,
)
from mixdown.errors import AudioError

RATES = (48000, 44100)


def tone(
    segments: Sequence[tuple[float, float]], sr: int, *, freq: float = 1000.0, channels: int = 2
) -> np.ndarray:
    """A continuous sine whose peak level steps through ``(dBFS, seconds)`` segments."""
    counts = [round(seconds * sr) for _, seconds in segments]
    gain = np.repeat([10 ** (level / 20) for level, _ in segments], counts)
    y = gain * np.sin(2 * np.pi * freq * np.arange(len(gain)) / sr)
    return np.repeat(y[:, None], channels, axis=1).astype(np.float32)


def speech_like(seconds: float, sr: int, *, channels: int = 2, seed: int = 0) -> np.ndarray:
    """Pink-ish noise with a syllabic (~4 Hz) envelope and pauses, different per channel."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    noise: np.ndarray = lfilter([0.05, 0.05], [1, -0.95], rng.standard_normal((n, channels)), axis=0)
    t = np.arange(n) / sr
    syllables = np.maximum(np.sin(2 * np.pi * 4.1 * t + rng.uniform(0, 6)), 0) ** 2
    phrases = (np.sin(2 * np.pi * 0.23 * t) > -0.4).astype(float)  # pauses
    y: np.ndarray = noise * (0.1 + syllables * phrases)[:, None] * 0.8
    return y.astype(np.float32)


def faded(y: np.ndarray, sr: int, seconds: float = 0.02) -> np.ndarray:
    """Raised-cosine fade in and out: a hard onset rings above the true peak."""
    k = round(seconds * sr)
    ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)).astype(np.float32)[:, None]
    y = y.copy()
    y[:k] *= ramp
    y[-k:] *= ramp[::-1]
    return y


def db(x: float) -> float:
    return 20 * math.log10(x)


# -- EBU Tech 3341: integrated loudness --------------------------------------------

Segments = list[tuple[float, float]]

EBU_3341: dict[str, tuple[Segments, float]] = {
    "3341-1": ([(-23, 20)], -23.0),
    "3341-2": ([(-33, 20)], -33.0),
    "3341-3": ([(-36, 10), (-23, 60), (-36, 10)], -23.0),
    "3341-4": ([(-72, 10), (-36, 10), (-23, 60), (-36, 10), (-72, 10)], -23.0),
    "3341-5": ([(-26, 20), (-20, 20.1), (-26, 20)], -23.0),
}


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("case", sorted(EBU_3341))
def test_ebu_3341_integrated_loudness(case: str, sr: int) -> None:
    segments, expected = EBU_3341[case]
    m = measure(tone(segments, sr), sr, true_peak=False)
    assert abs(m.integrated - expected) <= 0.1, m
    assert math.isnan(m.true_peak) and m.sample_peak == pytest.approx(
        max(level for level, _ in segments), abs=0.01
    )


# -- EBU Tech 3342: loudness range -----------------------------------------------

EBU_3342: dict[str, tuple[Segments, float]] = {
    "3342-1": ([(-20, 20), (-30, 20)], 10.0),
    "3342-2": ([(-20, 20), (-15, 20)], 5.0),
    "3342-3": ([(-40, 20), (-20, 20)], 20.0),
    "3342-4": ([(-50, 20), (-35, 20), (-20, 20), (-35, 20), (-50, 20)], 15.0),
}


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("case", sorted(EBU_3342))
def test_ebu_3342_loudness_range(case: str, sr: int) -> None:
    segments, expected = EBU_3342[case]
    m = measure(tone(segments, sr), sr, true_peak=False)
    assert abs(m.lra - expected) <= 1.0, m


# -- true peak (after EBU Tech 3341 cases 15-19) -------------------------------------

TRUE_PEAK: dict[
    str, tuple[float, float, float, float]
] = {  # (amplitude, frequency as a fraction of fs, phase in degrees) -> dBTP
    "15: fs/4 0deg": (0.5, 1 / 4, 0.0, -6.02),
    "16: fs/4 45deg": (0.5, 1 / 4, 45.0, -6.02),
    "17: fs/6 60deg": (0.5, 1 / 6, 60.0, -6.02),
    "18: fs/8 67.5deg": (0.5, 1 / 8, 67.5, -6.02),
    "19: fs/4 1.41 45deg": (1.41, 1 / 4, 45.0, 2.98),
}


def peak_sine(amplitude: float, fraction: float, phase: float, sr: int, seconds: float = 1.0) -> np.ndarray:
    n = np.arange(round(seconds * sr))
    y = amplitude * np.sin(2 * np.pi * fraction * n + np.radians(phase))
    return faded(np.repeat(y[:, None], 2, axis=1).astype(np.float32), sr)


@pytest.mark.parametrize("sr", RATES)
@pytest.mark.parametrize("case", sorted(TRUE_PEAK))
def test_true_peak_sines(case: str, sr: int) -> None:
    amplitude, fraction, phase, expected = TRUE_PEAK[case]
    y = peak_sine(amplitude, fraction, phase, sr)
    m = measure(y, sr)
    assert expected - 0.4 <= m.true_peak <= expected + 0.2, m
    assert db(true_peak(y, sr)) == pytest.approx(m.true_peak, abs=1e-9)
    assert m.sample_peak <= m.true_peak


def test_true_peak_finds_inter_sample_peaks() -> None:
    # fs/4 at 45 degrees: every sample is at 0.5 * sin(45) = -9.03 dBFS, the peaks fall between.
    y = peak_sine(0.5, 1 / 4, 45.0, 48000)
    m = measure(y, 48000)
    assert m.sample_peak == pytest.approx(-9.03, abs=0.01)
    assert m.true_peak == pytest.approx(-6.02, abs=0.05)


def test_quiet_looking_chunk_after_a_louder_one_is_still_interpolated() -> None:
    # The meter skips chunks whose sample peak cannot hide a higher true peak; this one can:
    # its samples (0.35) are below the first part's (0.45), its true peak (0.5) is above.
    sr = 48000
    first = faded(tone([(db(0.45), 1.0)], sr), sr)  # 1 kHz at 48 kHz: peaks fall on samples
    second = peak_sine(0.5, 1 / 4, 45.0, sr)
    y = np.concatenate([first, np.zeros_like(first), second])  # second in a chunk of its own
    m = measure(y, sr)
    assert m.sample_peak == pytest.approx(db(0.45), abs=0.01)
    assert m.true_peak == pytest.approx(db(true_peak(second, sr)), abs=1e-9)
    assert m.true_peak == pytest.approx(-6.02, abs=0.05)


def test_true_peak_oversampling_by_rate() -> None:
    # 2x at 96 kHz still lands on the peak of an fs/4 45-degree sine; 192 kHz is not oversampled.
    assert db(true_peak(peak_sine(0.5, 1 / 4, 45.0, 96000), 96000)) == pytest.approx(-6.02, abs=0.05)
    y = peak_sine(0.5, 1 / 4, 45.0, 192000)
    m = measure(y, 192000)
    assert m.true_peak == m.sample_peak == pytest.approx(-9.03, abs=0.01)


def test_true_peak_is_flat_across_the_band() -> None:
    # Steady sines up to 20 kHz at 48 kHz: 4x oversampling reads at most ~0.5 dB low, never high.
    sr = 48000
    for freq in (100.0, 997.0, 5000.0, 11000.0, 15000.0, 19000.0, 20000.0):
        n = np.arange(sr // 2)
        y = faded((0.5 * np.sin(2 * np.pi * freq / sr * n + 0.3))[:, None].astype(np.float32), sr, 0.05)
        assert -0.5 <= db(true_peak(y, sr)) - db(0.5) <= 0.05, freq


def test_interpolator_reconstructs_the_waveform() -> None:
    # Each matrix column is one (output, phase) of a 63-sample window: output j of phase q is the
    # signal at time 31 + j - 16 + q / 4 (the prototype's delay is 16 input samples).
    interp = _interpolator(4)
    assert interp.taps == 32 and interp.matrix.shape == (32 + 31, 32 * 3)
    assert 2.0 < interp.gain < 3.0
    for freq in (0.01, 0.1, 0.2, 0.3):  # cycles per sample
        t = np.arange(63)
        window = np.sin(2 * np.pi * freq * t + 0.7)
        got = (window @ interp.matrix).reshape(32, 3)
        when = 31 + np.arange(32)[:, None] - 16 + np.arange(1, 4)[None, :] / 4
        np.testing.assert_allclose(got, np.sin(2 * np.pi * freq * when + 0.7), atol=2e-3)


# -- momentary and short-term (after EBU Tech 3341 cases 9 and 12) ----------------------


@pytest.mark.parametrize("sr", RATES)
def test_short_term_of_alternating_tone(sr: int) -> None:
    y = tone([(-20, 1.34), (-30, 1.66)] * 5, sr)
    meter = Meter(sr, 2, true_peak=False)
    meter.add(y)
    short = meter.short_term()
    assert len(short) == round(len(y) / sr * 10) - 29  # every complete 3 s window ending at >= 3 s
    assert np.all(np.abs(short + 23) <= 0.1), short.min()
    assert abs(meter.result().max_short_term + 23) <= 0.1


@pytest.mark.parametrize("sr", RATES)
def test_momentary_of_alternating_tone(sr: int) -> None:
    y = tone([(-20, 0.18), (-30, 0.22)] * 25, sr)
    meter = Meter(sr, 2, true_peak=False)
    meter.add(y)
    momentary = meter.momentary()
    assert len(momentary) == round(len(y) / sr * 10) - 3
    after_1s = momentary[6:]  # entry i is the window ending at (i + 4) * 100 ms
    assert np.all(np.abs(after_1s + 23) <= 0.1), after_1s.min()


# -- streaming --------------------------------------------------------------------


@pytest.mark.parametrize(("sr", "channels"), [(44100, 2), (48000, 1), (48000, 5)])
def test_blocked_equals_whole(sr: int, channels: int) -> None:
    y = speech_like(7.3, sr, channels=channels)
    y[sr : 2 * sr] = 0  # a silent second: exercises the gates and the true-peak shortcut
    whole = Meter(sr, channels)
    whole.add(y)
    expected = whole.result()
    for block in (1000, 4096, 1 << 20):
        got = measure(y, sr, block=block)
        for field in ("integrated", "true_peak", "sample_peak", "lra", "max_momentary", "max_short_term"):
            assert getattr(got, field) == pytest.approx(getattr(expected, field), abs=1e-6), (block, field)
        meter = Meter(sr, channels)
        for start in range(0, len(y), block):
            meter.add(y[start : start + block])
        np.testing.assert_allclose(meter.momentary(), whole.momentary(), atol=1e-6)
        np.testing.assert_allclose(meter.short_term(), whole.short_term(), atol=1e-6)


def test_result_can_be_read_while_streaming() -> None:
    sr = 48000
    y = speech_like(5, sr)
    meter = Meter(sr, 2)
    meter.add(y[: 2 * sr])
    partial = meter.result()
    assert meter.result() == partial  # reading does not consume the state
    meter.add(y[2 * sr :])
    assert meter.result() == measure(y, sr)


# -- cross-check against pyloudnorm --------------------------------------------------


@pytest.mark.parametrize(("sr", "channels"), [(48000, 2), (44100, 2), (44100, 1)])
def test_matches_pyloudnorm_deman(sr: int, channels: int) -> None:
    y = speech_like(20.0, sr, channels=channels, seed=sr + channels)  # whole 100 ms: no partial block
    reference = pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(y.astype(np.float64))
    got = measure(y, sr, true_peak=False).integrated
    assert abs(got - reference) <= 0.05, (got, reference)


def test_k_weighting_design() -> None:
    # The bilinear design reproduces BS.1770's 48 kHz table, and pyloudnorm's DeMan filters elsewhere.
    np.testing.assert_allclose(_design_k_weighting(48000), np.array(_SOS_48K), atol=1e-12)
    for sr in (44100, 96000):
        filters = pyloudnorm.Meter(sr, filter_class="DeMan")._filters.values()
        expected = np.array([np.concatenate([f.b, f.a]) for f in filters])
        np.testing.assert_allclose(_design_k_weighting(sr), expected, atol=1e-9)


# -- edge cases -------------------------------------------------------------------------


@pytest.mark.filterwarnings("error")
def test_silence() -> None:
    m = measure(np.zeros((48000 * 5, 2), dtype=np.float32), 48000)
    assert m == Measurement(-math.inf, -math.inf, -math.inf, 0.0, -math.inf, -math.inf)
    meter = Meter(48000, 2)
    meter.add(np.zeros((48000 * 4, 2), dtype=np.float32))
    assert np.all(meter.momentary() == -math.inf) and len(meter.momentary()) == 37
    assert str(m) == "-inf LUFS  -inf dBTP  LRA 0.0"


@pytest.mark.filterwarnings("error")
def test_shorter_than_one_block() -> None:
    y = tone([(-6, 0.2)], 48000)  # 1 kHz, peak 0.501
    m = measure(y, 48000)
    assert m.integrated == -math.inf and m.max_momentary == -math.inf and m.max_short_term == -math.inf
    assert m.lra == 0.0
    assert m.sample_peak == pytest.approx(-6.0, abs=0.01)
    assert m.sample_peak <= m.true_peak <= -6.0 + 0.2
    assert measure(np.zeros((0, 1), dtype=np.float32), 48000) == Measurement(
        -math.inf, -math.inf, -math.inf, 0.0, -math.inf, -math.inf
    )
    assert true_peak(np.zeros((0, 2), dtype=np.float32), 48000) == 0.0


def test_partial_trailing_block_is_not_counted() -> None:
    # 0.79 s: the 400 ms blocks ending at 0.4 .. 0.7 s count, the quiet tail after 0.7 s does not.
    sr = 48000
    y = tone([(-20, 0.7), (-60, 0.09)], sr)
    meter = Meter(sr, 2, true_peak=False)
    meter.add(y)
    assert len(meter.momentary()) == 4
    assert abs(meter.result().integrated + 20) <= 0.1


def test_surround_channels_are_weighted() -> None:
    sr = 48000
    mono = tone([(-23, 5)], sr, channels=1)
    front, surround = np.zeros((len(mono), 5), np.float32), np.zeros((len(mono), 5), np.float32)
    front[:, :1], surround[:, 3:4] = mono, mono
    gain = measure(surround, sr, true_peak=False).integrated - measure(front, sr, true_peak=False).integrated
    assert gain == pytest.approx(10 * math.log10(1.41), abs=1e-6)
    stereo = measure(tone([(-23, 5)], sr), sr, true_peak=False).integrated
    assert stereo - measure(mono, sr, true_peak=False).integrated == pytest.approx(
        10 * math.log10(2), abs=1e-6
    )


def test_rate_not_a_multiple_of_10_hz() -> None:
    sr = 11025  # 100 ms is 1102.5 samples: hops alternate 1102 / 1103
    ends = [(k + 1) * sr // 10 for k in range(40)]
    for frames in (0, 1101, 1102, 1103, 2204, 2205, 2206, 44100):
        assert _complete_hops(frames, sr) == sum(e <= frames for e in ends), frames
    m = measure(tone([(-23, 20)], sr, freq=997.0), sr)
    assert abs(m.integrated + 23) <= 0.1


def test_bad_input() -> None:
    meter = Meter(48000, 2)
    with pytest.raises(AudioError, match="shape"):
        meter.add(np.zeros((10, 1), np.float32))
    with pytest.raises(AudioError, match="float"):
        meter.add(np.zeros((10, 2), np.int16))
    with pytest.raises(AudioError, match="1 to 5"):
        Meter(48000, 6)
    y = speech_like(1, 48000)
    y[1234, 1] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        meter.add(y)
    with pytest.raises(AudioError, match="NaN"):
        meter.result()
    with pytest.raises(AudioError, match="NaN"):
        true_peak(y, 48000)


def _measure_in_child(queue: multiprocessing.queues.Queue[float]) -> None:
    queue.put(measure(speech_like(2, 48000), 48000).integrated)


def test_works_in_a_forked_child() -> None:
    # The meter's worker threads do not survive a fork; a child must not wait on them forever.
    measure(speech_like(2, 48000), 48000)  # the pool now exists in this process
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.queues.Queue[float] = context.Queue()
    child = context.Process(target=_measure_in_child, args=(queue,))
    child.start()
    try:
        assert queue.get(timeout=30) == pytest.approx(measure(speech_like(2, 48000), 48000).integrated)
    finally:
        child.join(timeout=5)
        if child.is_alive():
            child.kill()


def test_str() -> None:
    m = Measurement(-16.04, -1.26, -1.9, 4.21, -12.0, -14.0)
    assert str(m) == "-16.0 LUFS  -1.3 dBTP  LRA 4.2"


def test_speed() -> None:
    # 60 s of 48 kHz stereo: ~0.1 s on two free cores; the bound leaves room for a loaded machine.
    y = speech_like(60, 48000)
    start = time.perf_counter()
    measure(y, 48000)
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize("channels", [2, 3, 5])
def test_channels_weighted_in_pairs_read_as_each_alone(channels: int) -> None:
    """Pairs of channels are K-weighted as one complex signal: the same as each channel alone."""
    rng = np.random.default_rng(channels)
    y = (rng.standard_normal((48000 * 3 + 123, channels)) * rng.uniform(0.01, 0.3, channels)).astype(
        np.float32
    )
    y[:, 0] *= np.sin(np.linspace(0, 40, len(y))).astype(np.float32)  # channels unlike each other
    together = Meter(48000, channels, true_peak=False)
    for block in np.array_split(y, 7):
        together.add(block)
    weights = [1.0, 1.0, 1.0, 1.41, 1.41][:channels]
    alone = np.zeros(len(together.hop_energies()))
    for c in range(channels):
        meter = Meter(48000, 1, true_peak=False)
        meter.add(y[:, c : c + 1])
        alone += weights[c] * meter.hop_energies()
    np.testing.assert_allclose(together.hop_energies(), alone, rtol=1e-12)


@pytest.mark.parametrize("width", [1, 32, 64])
def test_row_max_is_the_largest_of_each_row(width: int) -> None:
    values = np.abs(np.random.default_rng(width).standard_normal(width * 301)).astype(np.float32)
    np.testing.assert_array_equal(row_max(values, width), values.reshape(-1, width).max(axis=1))
    assert row_max(values[:0], width).shape == (0,)
