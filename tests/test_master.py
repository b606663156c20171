"""Numeric tests of the master stage: meter, true peak, limiter, export."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample_poly

from mixdown.codecs.wav import Source
from mixdown.dsp.dynamics import Limiter, limit
from mixdown.dsp.master import (
    Analysis,
    Loudness,
    MasterSettings,
    master,
    master_stream,
    measure,
    true_peak,
)
from mixdown.errors import AudioError

from .conftest import speech_like

SR = 48000
CEILING = -1.0


def db(x: float) -> float:
    return 20 * math.log10(x)


def lufs(y: np.ndarray, sr: int = SR) -> float:
    """Independent reading with pyloudnorm's BS.1770 meter."""
    return pyloudnorm.Meter(sr, filter_class="DeMan").integrated_loudness(y.astype(np.float64))


def sine(seconds: float, freq: float, amp: float, phase: float = 0.0, sr: int = SR) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = amp * np.sin(2 * np.pi * freq * t + phase)
    return np.repeat(y[:, None], 2, axis=1).astype(np.float32)


def faded(y: np.ndarray, seconds: float = 0.02) -> np.ndarray:
    """Fade in and out, so filter ringing at a hard onset does not move the peak."""
    k = round(seconds * SR)
    ramp = np.linspace(0, 1, k, dtype=np.float32)[:, None]
    y = y.copy()
    y[:k] *= ramp
    y[-k:] *= ramp[::-1]
    return y


# -- meter ----------------------------------------------------------------------


def test_ebu_3341_case_1() -> None:
    loud = measure(sine(20, 1000, 10 ** (-23 / 20)), SR)
    assert loud.integrated_lufs == pytest.approx(-23.0, abs=0.1)


def test_ebu_3341_true_peak_fs4_at_45_degrees() -> None:
    y = faded(sine(1.0, SR / 4, 0.5, phase=np.pi / 4))
    assert db(np.abs(y).max()) == pytest.approx(-9.03, abs=0.05)  # sample peak
    assert -6.02 - 0.4 <= db(true_peak(y, SR)) <= -6.02 + 0.2


def test_measure_silence_and_short_programs() -> None:
    silence = measure(np.zeros((SR, 2), np.float32), SR)
    assert silence.integrated_lufs == -math.inf and silence.true_peak_dbtp == -math.inf
    assert str(silence) == "-inf LUFS  -inf dBTP  LRA 0.0"
    assert measure(np.zeros((0, 1), np.float32), SR).integrated_lufs == -math.inf
    short = measure(sine(0.1, 1000, 10 ** (-23 / 20)), SR)  # shorter than one 400 ms block
    assert short.integrated_lufs == pytest.approx(-23.0, abs=0.5)
    assert str(Loudness(-16.04, -1.26)) == "-16.0 LUFS  -1.3 dBTP"


def test_bad_shape_raises_audio_error() -> None:
    with pytest.raises(AudioError):
        measure(np.zeros(SR, np.float32), SR)
    with pytest.raises(AudioError):
        limit(np.zeros((SR, 2), np.int16), SR, ceiling_dbtp=CEILING)


# -- limiter --------------------------------------------------------------------


def square(seconds: float) -> np.ndarray:
    return np.sign(sine(seconds, 1000, 1.0, phase=0.1))


def fs4_overs(seconds: float) -> np.ndarray:
    return sine(seconds, SR / 4, 1.41, phase=np.pi / 4)  # samples at 1.0, true peak +3 dBTP


def transient(seconds: float) -> np.ndarray:
    y = np.zeros((round(seconds * SR), 2), np.float32)
    burst = np.random.default_rng(1).uniform(-1, 1, (SR // 4, 2)).astype(np.float32)
    y[SR : SR + len(burst)] = burst
    y[SR] = 1.0  # a full-scale first sample straight after silence
    return y


@pytest.mark.parametrize("signal", [square, fs4_overs, transient])
def test_limit_keeps_true_peak_under_the_ceiling(signal: Callable[[float], np.ndarray]) -> None:
    y = signal(2.0)
    assert db(true_peak(y, SR)) > CEILING + 2
    out = limit(y, SR, ceiling_dbtp=CEILING)
    assert out.shape == y.shape and out.dtype == np.float32
    assert db(true_peak(out, SR)) <= CEILING
    assert db(true_peak(out, SR)) > CEILING - 0.1  # limited, not merely turned down
    finer = np.abs(resample_poly(out, 16, 1, axis=0)).max()
    assert db(finer) <= CEILING + 0.2  # 16x oversampling agrees within EBU's tolerance


def test_limit_leaves_quiet_audio_alone() -> None:
    y = sine(1.0, 440, 0.5)
    np.testing.assert_array_equal(limit(y, SR, ceiling_dbtp=CEILING), y)


def test_limiter_gain_is_smooth() -> None:
    y = np.full((SR, 1), 0.25, np.float32)
    y[SR // 2 : SR // 2 + 4800] = 2.0  # a 100 ms block 18 dB over the ceiling
    out = limit(y, SR, ceiling_dbtp=CEILING)
    gain = out[:, 0] / y[:, 0]
    lookahead = round(0.005 * SR)
    depth = 1 - gain.min()
    assert depth > 0.5
    assert np.abs(np.diff(gain)).max() <= 1.5 * depth / lookahead  # ramps, no steps
    assert gain[SR // 2 - 2 * lookahead] == 1.0  # untouched well before the peak
    assert gain[-1] == pytest.approx(1.0, abs=0.01)  # released afterwards


# -- master and export ----------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: speech_like(8, 2),
        lambda: 0.05 * np.random.default_rng(3).standard_normal((8 * SR, 2)).astype(np.float32),
    ],
)
def test_master_reaches_target_under_ceiling(make: Callable[[], np.ndarray]) -> None:
    y = make()
    out, loud = master(y, SR, MasterSettings(target_lufs=-16.0, ceiling_dbtp=CEILING))
    assert lufs(out) == pytest.approx(-16.0, abs=0.2)
    assert loud.integrated_lufs == pytest.approx(lufs(out), abs=0.01)
    assert loud.true_peak_dbtp <= CEILING - 0.3 + 1e-6
    assert loud.true_peak_dbtp == pytest.approx(db(true_peak(out, SR)), abs=1e-6)


def test_master_of_silence_is_silence() -> None:
    out, loud = master(np.zeros((SR, 2), np.float32), SR)
    assert not out.any() and loud.integrated_lufs == -math.inf


# -- streaming ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 777, 48000])
def test_limiter_output_does_not_depend_on_block_boundaries(size: int) -> None:
    y = transient(1.5)
    y[: SR // 2] += sine(0.5, 997, 1.3)  # a loud stretch to limit, then silence, then the burst
    whole = Limiter(SR, 2, ceiling_dbtp=CEILING)
    reference = np.concatenate([whole.process(y), whole.flush()])
    limiter = Limiter(SR, 2, ceiling_dbtp=CEILING)
    chunks = [limiter.process(y[i : i + size]) for i in range(0, len(y), size)] + [limiter.flush()]
    out = np.concatenate(chunks)
    assert out.shape == y.shape
    np.testing.assert_allclose(out, reference, atol=1e-6)
    assert limiter.reduction_db > 3.0


class Recorder:
    """A sink that keeps what it is given and remembers being discarded."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.discarded = False

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(block.copy())

    def discard(self) -> None:
        self.discarded = True


def test_the_predicted_gain_lands_on_target_in_one_limiting_pass() -> None:
    y = speech_like(8, 7) * np.float32(4.0)  # peaky: limiting takes off over a dB
    passes: list[str] = []
    settings = MasterSettings(target_lufs=-14.0, ceiling_dbtp=CEILING)
    loud = master_stream(Source.of_array(y, SR), settings, Recorder, progress=passes.append)
    assert [m for m in passes if m.startswith("pass")] == [
        f"pass 1: {loud.integrated_lufs:.2f} LUFS, {loud.true_peak_dbtp:.2f} dBTP"
    ]
    assert loud.integrated_lufs == pytest.approx(-14.0, abs=0.1)


def _bed_under_a_pause(gap_lu: float, sr: int = 24000) -> np.ndarray:
    """Speech-band syllables, 30 s of a steady bed ``gap_lu`` under them, the syllables again (mono)."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(1)
    t = np.arange(8 * sr) / sr
    speech = sosfilt(
        butter(4, [150, 4000], btype="bandpass", fs=sr, output="sos"), rng.standard_normal(len(t))
    )
    speech *= np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2 * (np.sin(2 * np.pi * 0.3 * t) > -0.5)
    speech = (0.1 * speech / np.abs(speech).max()).astype(np.float32)[:, None]
    bed = np.sin(2 * np.pi * 220 * np.arange(30 * sr) / sr).astype(np.float32)[:, None]
    bed *= np.float32(10 ** ((lufs(speech, sr) - gap_lu - lufs(bed, sr)) / 20))
    return np.concatenate([speech, bed, speech])


def test_a_quiet_bed_crossing_the_relative_gate_does_not_throw_the_master_off_its_target() -> None:
    # As the limiter holds the syllables, more gain lifts the bed over BS.1770's relative gate
    # and the programme's loudness falls 5 LU at once: its loudest short of that is -16.3 LUFS.
    # Secant steps alone ran past that cliff to the most gain allowed, and landed at -17.5 LUFS.
    sr = 24000
    y = _bed_under_a_pause(16.1, sr)
    passes: list[str] = []
    settings = MasterSettings(target_lufs=-16.0, ceiling_dbtp=CEILING)
    sinks: list[Recorder] = []

    def open_sink() -> Recorder:
        sinks.append(Recorder())
        return sinks[-1]

    loud = master_stream(Source.of_array(y, sr), settings, open_sink, progress=passes.append)
    out = np.concatenate(sinks[-1].blocks)
    assert lufs(out, sr) == pytest.approx(-16.0, abs=1.0) and loud.integrated_lufs == pytest.approx(
        lufs(out, sr), abs=0.01
    )
    assert db(true_peak(out, sr)) <= CEILING - 0.3 + 1e-6
    assert len([m for m in passes if m.startswith("pass")]) <= 2  # the prediction saw the cliff


def test_the_limiting_passes_step_back_from_a_cliff_and_keep_the_nearest_pass() -> None:
    from types import SimpleNamespace

    from mixdown.dsp.master import normalise

    # A programme under one gating block is not predicted: the passes find the cliff themselves.
    # Loudness rises 0.3 LU a dB from 1.5 LU under the target, and falls 4 LU at +4.5 dB.
    y = faded(sine(0.3, 1000, 0.1))
    start = -16.0 - measure(y, SR).integrated_lufs
    kept: list[tuple[float, float, bool]] = []

    def curve(gain: float) -> float:
        over = gain - start
        return -17.5 + 0.3 * over - (4.0 if over >= 4.5 else 0.0)

    def limiting(gain: float, aim: float, trim: float) -> tuple[object, float, Callable[[], None]]:
        kept.append((gain, curve(gain), True))
        at = len(kept) - 1

        def discard() -> None:
            kept[at] = (*kept[at][:2], False)

        return SimpleNamespace(true_peak=-1.5, lra=0.0), curve(gain), discard

    loud = normalise(Source.of_array(y, SR), MasterSettings(-16.0, CEILING), limiting)
    assert [k for _, _, k in kept] == [False] * (len(kept) - 1) + [True]  # only the last pass is kept
    assert loud.integrated_lufs == kept[-1][1]
    assert kept[-1][0] < start + 4.5 and loud.integrated_lufs >= -16.3  # short of the cliff, at its top
    assert max(g for g, _, _ in kept) < start + 12.0  # and never on to the most gain allowed


def test_master_stream_keeps_only_its_last_sink_and_matches_master(monkeypatch: pytest.MonkeyPatch) -> None:
    import mixdown.dsp.master as mastering

    y = speech_like(8, 7) * np.float32(4.0)  # peaky: limiting moves the loudness, so a pass repeats

    def unpredicted(self: object, target: float, gain_db: float, limiter: object, meter: object) -> object:
        climb = mastering._Climb(target, gain_db)
        climb.add(gain_db, target)  # as if nothing were limited: the first pass at the plain gain
        return climb

    monkeypatch.setattr(mastering._Predictor, "climbed", unpredicted)
    sinks: list[Recorder] = []

    def open_sink() -> Recorder:
        sinks.append(Recorder())
        return sinks[-1]

    settings = MasterSettings(target_lufs=-14.0, ceiling_dbtp=CEILING)
    loud = master_stream(Source.of_array(y, SR), settings, open_sink)
    assert len(sinks) >= 2 and all(s.discarded for s in sinks[:-1]) and not sinks[-1].discarded
    out = np.concatenate(sinks[-1].blocks)
    assert out.shape == y.shape
    assert lufs(out) == pytest.approx(-14.0, abs=0.1) and loud.integrated_lufs == pytest.approx(
        lufs(out), abs=1e-4
    )
    assert db(true_peak(out, SR)) <= CEILING - 0.3 + 1e-6
    in_memory, _ = master(y, SR, settings)
    np.testing.assert_array_equal(in_memory, out)


class Counted(Source):
    """A source that counts how often it is read."""

    reads = 0

    def blocks(self, size: int = 1 << 17):  # type: ignore[no-untyped-def]
        self.reads += 1
        return super().blocks(size)


def test_a_saved_analysis_replaces_the_measuring_pass(tmp_path: Path) -> None:
    y = speech_like(8, 9) * np.float32(3.0)
    settings = MasterSettings(target_lufs=-16.0, ceiling_dbtp=CEILING)
    analysis = Analysis(SR, 2)
    for start in range(0, len(y), 10_000):  # fed as a writer would, in its own blocks
        analysis.add(y[start : start + 10_000])
    (tmp_path / "mix.analysis.npz").write_bytes(analysis.to_bytes())
    loaded = Analysis.load(tmp_path / "mix.analysis.npz")
    assert loaded is not None and loaded.frames == len(y)

    plain, fast = Counted(SR, 2, len(y), array=y), Counted(SR, 2, len(y), array=y)
    first, second = Recorder(), Recorder()
    measured = master_stream(plain, settings, lambda: first)
    predicted = master_stream(fast, settings, lambda: second, analysis=loaded)
    assert (plain.reads, fast.reads) == (2, 1)  # measure + limit, against limit only
    assert predicted == measured
    np.testing.assert_array_equal(np.concatenate(first.blocks), np.concatenate(second.blocks))
    assert Analysis.load(tmp_path / "missing.npz") is None
    # Damaged on disk (a byte changed inside a member, the file cut short): unreadable, not an error.
    data = analysis.to_bytes()
    damaged = bytearray(data)
    damaged[len(data) // 2] ^= 0xFF
    for name, content in (("damaged", bytes(damaged)), ("cut", data[: len(data) // 2]), ("empty", b"")):
        (tmp_path / f"{name}.npz").write_bytes(content)
        assert Analysis.load(tmp_path / f"{name}.npz") is None, name


def test_an_analysis_of_parts_joins_into_the_analysis_of_the_whole() -> None:
    from mixdown.codecs.parts import lead_in

    y = speech_like(20, 11) * np.float32(2.0)
    whole = Analysis(SR, 2)
    for start in range(0, len(y), 10_000):
        whole.add(y[start : start + 10_000])
    cuts = [0, 4800 * 37, 4800 * 121, len(y)]  # on 100 ms hops (and so on 32-sample rows)
    parts = []
    for start, stop in zip(cuts[:-1], cuts[1:], strict=True):
        part = Analysis(SR, 2, threads=False)
        lead = min(start, lead_in(SR))
        part.meter.add(y[start - lead : start])  # primes the K-weighting only
        part.meter.restart()
        for first in range(start, stop, 7_000):
            part.add(y[first : min(first + 7_000, stop)])
        parts.append(part.parts())
    joined = Analysis.joined(SR, 2, len(y), parts)
    assert joined.frames == whole.frames == len(y)
    hops, expected = joined.meter.hop_energies(), whole.meter.hop_energies()
    assert hops.shape == expected.shape
    np.testing.assert_allclose(hops, expected, rtol=1e-4, atol=1e-9 * expected.max())  # silence: -90 dB
    assert joined.meter.result().integrated == pytest.approx(whole.meter.result().integrated, abs=1e-4)
    for mine, theirs in zip(joined.predictor.rows(), whole.predictor.rows(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_predictor_simulates_only_the_rows_the_limiter_reduces() -> None:
    from mixdown.dsp.dynamics import Limiter, _row_gains, simulate

    rng = np.random.default_rng(5)
    limiter = Limiter(SR, 2, ceiling_dbtp=-1.0)
    peaks = (rng.random(300_000) * 0.5).astype(np.float32)
    peaks[[1_000, 1_004, 90_000, 299_990]] = [1.5, 1.2, 3.0, 2.0]  # a cluster, a deep one, one at the end
    scale = np.float32(1.1)
    w = limiter._window
    need = limiter.aim / np.maximum((peaks * scale).astype(np.float64), limiter.aim)
    dense, _, _ = _row_gains(np.append(need, np.ones(w)), len(peaks), limiter, 0.0, np.ones(w))
    sparse = np.ones(len(peaks))
    simulated = 0
    for first, gains in simulate(peaks, scale, limiter):
        sparse[first : first + len(gains)] = gains
        simulated += len(gains)
    assert simulated < len(peaks) // 10  # three runs of a few thousand rows
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-6)
    assert dense.min() < 0.3 and sparse.argmin() == dense.argmin()
    assert not list(simulate(peaks, np.float32(0.25), limiter))  # nothing reaches the aim


@pytest.mark.parametrize("sr", [22050, 48000, 96000])
def test_a_programme_under_one_gating_block_is_mastered_to_its_target(sr: int) -> None:
    """Shorter than 400 ms it has no gated loudness: it is mastered as it reads looped."""
    y = speech_like(1, seed=3, sr=sr)[: math.ceil(0.4 * sr) - 1]
    out, loudness = master(y, sr, MasterSettings(-16.0, -1.0))
    assert len(out) == len(y)
    assert loudness.integrated_lufs == pytest.approx(-16.0, abs=0.2)
    assert measure(out, sr).integrated_lufs == pytest.approx(loudness.integrated_lufs, abs=0.01)
    assert loudness.true_peak_dbtp <= -1.0


def test_a_limiter_profile_lowers_the_ceiling_only_where_it_says() -> None:
    from mixdown.dsp.loudness import ROW

    y = speech_like(4, seed=2) * np.float32(4.0)  # peaks far over the ceiling everywhere
    rows = -(-len(y) // ROW)
    profile = np.ones(rows)
    loudest = SR + int(np.argmax(np.abs(y[SR : 3 * SR, 0])))  # a region the ceiling holds down
    lo = loudest // ROW - 300
    hi = lo + 700
    profile[lo:hi] = 10 ** (-3.0 / 20)

    def limited(profile: np.ndarray | None) -> np.ndarray:
        limiter = Limiter(SR, 2, ceiling_dbtp=-2.0, profile=profile)
        return np.concatenate([limiter.process(y), limiter.flush()])

    plain, lowered = limited(None), limited(profile)
    inside = lowered[lo * ROW : hi * ROW]
    assert 20 * np.log10(true_peak(inside, SR)) <= -5.0 + 0.05  # the meter's context at the edges
    assert 20 * np.log10(true_peak(lowered, SR)) <= -2.0
    reach = round(0.1 * SR)  # look-ahead before, release after: the rest is untouched
    np.testing.assert_array_equal(lowered[: lo * ROW - reach], plain[: lo * ROW - reach])
    assert 20 * np.log10(true_peak(plain[lo * ROW : hi * ROW], SR)) > -3.0


def test_an_analysis_takes_blocks_shorter_than_a_row() -> None:
    """A resampler's last block can be a few samples: they wait for the next, as any remainder does."""
    y = speech_like(2, seed=4)
    whole, pieces = Analysis(SR, 2), Analysis(SR, 2)
    whole.add(y)
    for first, stop in ((0, 40001), (40001, 40006), (40006, 40007), (40007, len(y))):
        pieces.add(y[first:stop])
    for a, b in zip(whole.predictor.rows(), pieces.predictor.rows(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
