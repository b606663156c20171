"""Master stage: loudness normalisation and a true-peak limiter.

:func:`measure` reads integrated loudness, true peak and loudness range with
:mod:`mixdown.loudness` (ITU-R BS.1770-4 / EBU R128). :func:`master`
normalises a mix to a loudness target and limits it under a true-peak
ceiling. Encoding and the spec check of written files are in
:mod:`mixdown.deliver`.

All audio is float32 ``[shape=(n, channels)]`` at an explicit ``sr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .audio import db_to_gain, valid_audio

__all__ = ["Loudness", "MasterSettings", "limit", "master", "measure", "true_peak"]

_BLOCK = 0.4  # s, the BS.1770 gating block: the shortest thing a meter can measure
_LIMIT_PASSES = 4
_AIM = 0.9995  # each limiter pass aims this factor (-0.004 dB) under the ceiling
_MASTER_MARGIN_DB = 0.3  # master() limits this far under the ceiling
_NORMALISE_PASSES = 6
_LOUDNESS_TOLERANCE = 0.05  # LU: master() stops correcting its gain within this


@dataclass(frozen=True)
class MasterSettings:
    """A delivery target: integrated loudness (LUFS) and true-peak ceiling (dBTP)."""

    target_lufs: float = -16.0
    ceiling_dbtp: float = -1.0


@dataclass(frozen=True)
class Loudness:
    """Integrated loudness (LUFS), true peak (dBTP) and loudness range (LU).

    ``-inf`` for silence; ``lra`` is NaN when it was not measured.
    """

    integrated_lufs: float
    true_peak_dbtp: float
    lra: float = math.nan

    def __str__(self) -> str:
        text = f"{self.integrated_lufs:.1f} LUFS  {self.true_peak_dbtp:.1f} dBTP"
        return text if math.isnan(self.lra) else f"{text}  LRA {self.lra:.1f}"


def measure(y: np.ndarray, sr: int) -> Loudness:
    """Measure integrated loudness and true peak.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        Audio, at most 5 channels (L, R, C, Ls, Rs).
    sr : int
        Sample rate of ``y``.

    Returns
    -------
    Loudness
        ``-inf`` for both values on digital silence. A program shorter than
        one 400 ms gating block is measured as if looped to fill one block,
        so its reading is its own mean loudness rather than diluted by padding.
    """
    from .loudness import measure as meter

    y = valid_audio(y)
    found = meter(y, sr)
    integrated = found.integrated if len(y) >= math.ceil(_BLOCK * sr) else _integrated(y, sr)
    return Loudness(integrated, found.true_peak, found.lra)


def true_peak(y: np.ndarray, sr: int) -> float:
    """Return the true peak of ``y`` as a linear amplitude (see :mod:`mixdown.loudness`)."""
    from .loudness import true_peak as meter_true_peak

    return meter_true_peak(valid_audio(y), sr)


def limit(
    y: np.ndarray,
    sr: int,
    *,
    ceiling_dbtp: float,
    lookahead: float = 0.005,
    release: float = 0.08,
) -> np.ndarray:
    """Limit ``y`` so that its true peak does not exceed ``ceiling_dbtp``.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        Audio to limit; not modified.
    sr : int
        Sample rate of ``y``.
    ceiling_dbtp : float
        True-peak ceiling in dBTP.
    lookahead : float
        Seconds over which the gain ramps down before a peak (and back up
        after it, before the release).
    release : float
        Time constant, in seconds, of the exponential recovery of the gain
        reduction (in dB).

    Returns
    -------
    np.ndarray [shape=(n, channels)]
        A new float32 array with true peak <= the ceiling.

    Notes
    -----
    Per sample, the required gain is ``ceiling / peak`` from the oversampled
    peaks of all channels (one gain for all channels). It is min-filtered over
    the look-ahead window, given an exponential release, and averaged over the
    same window: the average of values that are each <= the required gain at
    the peak cannot exceed it, and the curve has no steps. Gain changes move
    inter-sample peaks a little, so the pass repeats on what still exceeds
    the ceiling (at most 4 passes); a plain gain settles any last excess.
    """
    y = valid_audio(y)
    ceiling = db_to_gain(ceiling_dbtp)
    window = max(1, round(lookahead * sr))
    out = y.copy()
    for _ in range(_LIMIT_PASSES):
        peaks = _peak_envelope(out, sr)
        if peaks.max(initial=0.0) <= ceiling:
            break
        aim = ceiling * _AIM
        need = aim / np.maximum(peaks.astype(np.float64), aim)  # 1 where under the aim
        out *= _gain_curve(need, window, max(release * sr, 1.0)).astype(np.float32)[:, None]
    peak = true_peak(out, sr)  # the meter's interpolator has the last word
    if peak > ceiling:
        out *= np.float32(ceiling * _AIM / peak)
    return out


def master(
    y: np.ndarray,
    sr: int,
    settings: MasterSettings = MasterSettings(),  # noqa: B008 - frozen, never mutated
) -> tuple[np.ndarray, Loudness]:
    """Normalise ``y`` to the target loudness and limit it under the ceiling.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        The mix.
    sr : int
        Sample rate of ``y``.
    settings : MasterSettings
        Loudness target and true-peak ceiling.

    Returns
    -------
    mastered : np.ndarray [shape=(n, channels)]
        Float32, limited to ``ceiling_dbtp - 0.3`` dBTP (headroom for
        resampling and codecs).
    loudness : Loudness
        The measurement of ``mastered``.

    Notes
    -----
    Limiting lowers the loudness of peaky material a little, so the gain is
    corrected by the measured error and the limiter rerun (at most 3 passes,
    stopping within 0.05 LU). Digital silence is returned unchanged.
    """
    y = valid_audio(y)
    loudness = _integrated(y, sr)
    if not math.isfinite(loudness):
        return y.copy(), Loudness(loudness, _to_db(true_peak(y, sr)))
    gain_db = settings.target_lufs - loudness
    ceiling = settings.ceiling_dbtp - _MASTER_MARGIN_DB
    for _ in range(_NORMALISE_PASSES):
        out = limit(y * np.float32(db_to_gain(gain_db)), sr, ceiling_dbtp=ceiling)
        error = settings.target_lufs - _integrated(out, sr)
        if abs(error) <= _LOUDNESS_TOLERANCE:
            break
        gain_db += error
    return out, Loudness(settings.target_lufs - error, _to_db(true_peak(out, sr)))


# -- helpers --------------------------------------------------------------------


def _to_db(gain: float) -> float:
    """Convert a linear amplitude to dB (``-inf`` for 0)."""
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def _integrated(y: np.ndarray, sr: int) -> float:
    """Integrated loudness of valid audio, in LUFS (``-inf`` for silence).

    A programme shorter than one 400 ms gating block is measured as if looped
    to fill one, so a short sting reads its own loudness.
    """
    from .loudness import measure as meter

    if len(y) == 0:
        return -math.inf
    block = math.ceil(_BLOCK * sr)
    if len(y) < block:
        y = np.tile(y, (-(-block // len(y)), 1))[:block]
    return meter(y, sr, true_peak=False).integrated


def _peak_envelope(y: np.ndarray, sr: int) -> np.ndarray:
    """Per sample, the largest oversampled magnitude over its phases and channels.

    Returns float32 ``[shape=(n,)]``. Oversampling uses the loudness meter's
    own interpolation filter, so the limiter and the meter agree on peaks.
    """
    from scipy.signal import upfirdn

    from .loudness import interpolation_filter, oversampling

    factor, (n, channels) = oversampling(sr), y.shape
    envelope = np.abs(y).max(axis=1) if n else np.zeros(0, np.float32)
    if factor == 1 or n == 0:
        return envelope.astype(np.float32)
    h = interpolation_filter(factor).astype(np.float32)
    delay = (len(h) - 1) // 2
    for c in range(channels):
        up = upfirdn(h, y[:, c], up=factor)[delay : delay + n * factor]
        np.maximum(envelope, np.abs(up).reshape(n, factor).max(axis=1), out=envelope)
    return envelope.astype(np.float32)


def _gain_curve(need: np.ndarray, window: int, tau: float) -> np.ndarray:
    """Smooth per-sample required gains into a limiter gain that never exceeds them."""
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    held = minimum_filter1d(need, window, origin=-(window // 2), mode="nearest")  # i..i+w-1
    released = _release(held, tau)
    smooth: np.ndarray = uniform_filter1d(released, window, origin=(window - 1) // 2, mode="nearest")
    return smooth  # mean over i-w+1..i


def _release(gain: np.ndarray, tau: float) -> np.ndarray:
    """Let gain reduction (in dB) decay exponentially with time constant ``tau`` samples.

    ``r[i] = max_{j<=i} d[j] * exp(-(i - j) / tau)`` for reductions ``d``: an
    instant-attack, exponential-release follower, computed without a loop as
    a running maximum in the log domain. The result is never above ``gain``.
    """
    reduction = -20.0 * np.log10(gain)
    with np.errstate(divide="ignore"):
        log_reduction = np.log(reduction)
    t = np.arange(len(gain)) / tau
    reduction = np.exp(np.maximum.accumulate(log_reduction + t) - t)
    return 10.0 ** (-reduction / 20.0)
