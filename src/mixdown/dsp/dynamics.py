"""Gain machinery: the look-ahead true-peak limiter and the release follower.

:class:`Limiter` (and :func:`limit` for arrays) computes a gain per row of
samples; :func:`follow_release`, shared with the speech compressor, reduces
gain at once and lets it recover exponentially without a Python loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .signal import db_to_gain, gain_frames, valid_audio

__all__ = ["Limiter", "follow_release", "limit", "ramp_rows"]

_LIMIT_PASSES = 4
AIM = 0.9995  # each limiter pass aims this factor (-0.004 dB) under the ceiling
_SIMULATION_ROWS = 1 << 20  # rows per chunk of the predictor's limiter simulation
_NEGLIGIBLE_DB = 1e-6  # a gain reduction the predictor no longer follows (energy off by 2e-7)
_LOOKAHEAD = 0.005  # s, the limiter's attack (and the averaging window of its gain)
_RELEASE = 0.08  # s, the time constant of its release


def follow_release(reduction: np.ndarray, tau: float, state: float = 0.0) -> np.ndarray:
    """An instant-attack, exponential-release follower of gain reduction (dB, >= 0).

    ``r[i] = max(d[i], r[i - 1] * exp(-1 / tau))`` from ``r[-1] = state``,
    i.e. ``r[i] = max_{j<=i} d[j] * exp(-(i - j) / tau)``, computed without a
    loop as a running maximum in the log domain. ``tau`` is in samples (or
    rows: whatever ``reduction`` is indexed by). The limiter and the speech
    compressor both release their gain this way.
    """
    values = np.empty(len(reduction) + 1)
    values[0], values[1:] = state, reduction
    with np.errstate(divide="ignore"):
        log_reduction = np.log(values)  # -inf where there is none
    t = np.arange(-1, len(reduction)) / tau
    log_reduction += t
    np.maximum.accumulate(log_reduction, out=log_reduction)
    log_reduction -= t
    released: np.ndarray = np.exp(log_reduction[1:])
    return released


def ramp_rows(ends: np.ndarray, hop: int) -> np.ndarray:
    """Per-sample float32 gains ramping linearly over rows of ``hop`` samples.

    Row ``i`` moves from ``ends[i]`` (exclusive) to ``ends[i + 1]``
    (reached on its last sample): ``(len(ends) - 1) * hop`` gains. The
    limiter and the speech compressor compute their gain per row and
    interpolate it this way, so the curve has no steps.
    """
    ramp = np.arange(1, hop + 1, dtype=np.float32) / np.float32(hop)
    gain: np.ndarray = (ends[:-1, None] + (ends[1:] - ends[:-1])[:, None] * ramp).reshape(-1)
    return gain


def limit(
    y: np.ndarray,
    sr: int,
    *,
    ceiling_dbtp: float,
    lookahead: float = _LOOKAHEAD,
    release: float = _RELEASE,
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
    Runs :class:`Limiter` over the array. Gain changes move inter-sample
    peaks a little, so a pass that leaves any excess is repeated on its own
    output with the aim lowered by that excess (at most 4 passes); a plain
    gain settles whatever is left.
    """
    from .loudness import true_peak

    y = valid_audio(y)
    ceiling = db_to_gain(ceiling_dbtp)
    out, aim = y, AIM
    for _ in range(_LIMIT_PASSES):
        peak = true_peak(out, sr)  # out is valid audio: y, or the limiter's output of it
        if peak <= ceiling:
            return out if out is not y else y.copy()
        limiter = Limiter(sr, y.shape[1], ceiling_dbtp=ceiling_dbtp, lookahead=lookahead, release=release)
        limiter.aim *= aim / AIM
        out = np.concatenate([limiter.process(out), limiter.flush()])
        aim *= AIM
    peak = true_peak(out, sr)  # the meter's interpolator has the last word
    if peak > ceiling:
        out *= np.float32(ceiling * AIM / peak)
    return out


class Limiter:
    """A streaming look-ahead true-peak limiter.

    Feed blocks of ``[shape=(n, channels)]`` in order to :meth:`process`,
    then call :meth:`flush` once; the outputs, concatenated, are the input
    limited, sample for sample (the limiter's delay is absorbed). Memory is
    a block plus a few milliseconds, whatever the length of the programme.

    The gain is computed per row of 32 samples (0.67 ms at 48 kHz): each
    row's peak is the largest oversampled magnitude over its samples and all
    channels (one gain for all channels, with the meter's interpolation
    filter), and its required gain ``aim / peak``. Required gains are
    min-filtered over the look-ahead window plus one row, given an
    instant-attack exponential release (in dB), and averaged over the
    look-ahead window; within a row the gain moves linearly between the
    averages at the ends of the row before and of this one. Both are averages
    of values that are each <= the required gain of the row, so no sample
    gets more than its row allows, and the curve has no steps. The result
    does not depend on how the input is split into blocks.

    ``profile`` ``[shape=(rows,)]`` lowers the ceiling row by row (a factor
    on the aim of each row of the output, from its start; rows past its end
    keep the ceiling): where an encoder's decoded output overshot, the
    ceiling there anticipates it and the rest of the programme keeps its
    loudness.
    """

    def __init__(
        self,
        sr: int,
        channels: int,
        *,
        ceiling_dbtp: float,
        lookahead: float = _LOOKAHEAD,
        release: float = _RELEASE,
        profile: np.ndarray | None = None,
    ) -> None:
        from .loudness import ENVELOPE_AFTER, ENVELOPE_BEFORE, ROW

        self.sr = sr
        self.aim = db_to_gain(ceiling_dbtp) * AIM
        self._profile = profile  # per row from the start: a factor (<= 1) on the aim there
        self._window = w = max(1, math.ceil(lookahead * sr / ROW))  # rows
        self._tau = max(release * sr / ROW, 1e-3)  # rows
        self._before = ENVELOPE_BEFORE  # input kept before the next output sample
        self._after = w * ROW + ENVELOPE_AFTER  # input needed after the last output sample
        self._buffer = np.zeros((self._before, channels), dtype=np.float32)
        self._state = 0.0  # gain reduction (dB) of the last row output
        self._history = np.ones(w)  # released gains of the last w rows output
        self._last = 1.0  # the gain at the end of the last row output
        self._done = 0  # output samples produced
        self._fed = 0  # input samples taken
        self.reduction_db = 0.0  # the largest gain reduction applied so far
        # per row of the output last returned: whether its gain was anything but 1 (a flushed
        # output's last row may be cut short)
        self.touched = np.zeros(0, dtype=bool)

    def process(self, block: np.ndarray) -> np.ndarray:
        """Take the next input samples; return the output that is now complete."""
        from .loudness import ROW

        self._fed += len(block)
        self._buffer = np.concatenate([self._buffer, np.asarray(block, dtype=np.float32)])
        ready = len(self._buffer) - self._before - self._after
        return self._step(ready // ROW * ROW)

    def flush(self) -> np.ndarray:
        """Return the rest of the output (the input ends here)."""
        from .loudness import ROW

        count = self._fed - self._done
        rows = -(-count // ROW)
        pad = rows * ROW - count + self._after
        self._buffer = np.concatenate([self._buffer, np.zeros((pad, self._buffer.shape[1]), np.float32)])
        return self._step(rows * ROW)[:count]

    def _aims(self, first: int, count: int) -> Any:
        """The aim of rows ``[first, first + count)``: one value, or one per row with a profile."""
        if self._profile is None:
            return self.aim
        part = self._profile[first : first + count]
        return self.aim * np.concatenate([part, np.ones(count - len(part))])

    def _step(self, count: int) -> np.ndarray:
        from .loudness import ENVELOPE_AFTER, ENVELOPE_BEFORE, ROW, peak_rows

        buffer, w = self._buffer, self._window
        if count <= 0:
            self.touched = np.zeros(0, dtype=bool)
            return buffer[:0].copy()
        rows = count // ROW
        # Row peaks for the output rows and the w rows of look-ahead after them.
        span = (rows + w) * ROW + ENVELOPE_BEFORE + ENVELOPE_AFTER
        aims = self._aims(self._done // ROW, rows + w)
        peaks = peak_rows(buffer[:span], self.sr, above=float(np.min(aims)))
        x = buffer[self._before : self._before + count]
        self._buffer = buffer[count:]
        self._done += count
        if np.all(peaks <= aims) and self._last == 1.0:
            self.touched = np.zeros(rows, dtype=bool)
            return x  # nothing to do here, and no release still running (a view: never written to)
        need = aims / np.maximum(peaks.astype(np.float64), aims)
        gains, self._state, self._history = _row_gains(need, rows, self)
        ends = np.concatenate([[self._last], gains]).astype(np.float32)
        gain = ramp_rows(ends, ROW)
        self.touched = (ends[:-1] != 1.0) | (ends[1:] != 1.0)
        self.reduction_db = max(self.reduction_db, float(-20.0 * np.log10(gains.min())))
        if self._state < 1e-6 and self._history.min() > 1.0 - 1e-6:  # the release has decayed:
            self._state, self._history, self._last = 0.0, np.ones(w), 1.0  # quiet spans pass untouched
        else:
            self._last = float(gains[-1])
        return gain_frames(x, gain)


def simulate(peaks: np.ndarray, scale: np.float32, limiter: Limiter) -> Iterator[tuple[int, np.ndarray]]:
    """The gain :class:`Limiter` would give the rows of ``peaks * scale`` that it reduces.

    Yields (first row, gains) for runs of rows around the rows over the
    limiter's aim: from its look-ahead before them to where its release has
    faded under :data:`_NEGLIGIBLE_DB` after them. The rows between get no
    reduction (as the limiter passes quiet spans untouched) and are not
    yielded: speech limited here and there is simulated in a small fraction
    of its rows. Runs are simulated in chunks with the state carried across,
    so memory stays bounded on a long programme (ten hours have 54 million
    rows).
    """
    w, tau, aim = limiter._window, limiter._tau, limiter.aim
    scaled = peaks * scale  # as the dense simulation reads them: float32 products
    hot = np.flatnonzero(scaled > np.float32(aim) * np.float32(1.0 - 1e-6))  # a hair under: never misses one
    if not len(hot):
        return
    deepest = 20.0 * math.log10(max(float(scaled[hot].max()), aim) / aim)
    fade = math.ceil(tau * math.log(max(deepest, _NEGLIGIBLE_DB) / _NEGLIGIBLE_DB))
    firsts = np.maximum(hot - w - 1, 0)  # the first row whose held requirement sees a hot row
    # past the release and its averaging; runs that overlap merge
    lasts = np.maximum.accumulate(np.minimum(hot + fade + 2 * w + 1, len(peaks)))
    breaks = np.flatnonzero(firsts[1:] > lasts[:-1]) + 1
    for first, last in zip(firsts[np.r_[0, breaks]], lasts[np.r_[breaks - 1, len(hot) - 1]], strict=True):
        state, history = 0.0, np.ones(w)
        for start in range(int(first), int(last), _SIMULATION_ROWS):
            count = min(_SIMULATION_ROWS, int(last) - start)
            ahead = scaled[start : start + count + w]
            need = aim / np.maximum(ahead.astype(np.float64), aim)
            gains, state, history = _row_gains(need, count, limiter, state, history)
            yield start, gains


def _row_gains(
    need: np.ndarray,
    count: int,
    limiter: Limiter,
    state: float | None = None,
    history: np.ndarray | None = None,
) -> tuple[np.ndarray, float, np.ndarray]:
    """The limiter's gain at the end of each of ``count`` rows, from their required gains.

    ``need`` holds the required gains of the rows and of up to ``w`` rows of
    look-ahead after them (missing rows, past the end, need nothing). Each
    row's requirement is held over the look-ahead plus one row, released
    (:func:`_release` from ``state``, the reduction of the row before), and
    averaged over ``w`` rows with ``history``, the released gains of the ``w``
    rows before. Returns the gains and the new state and history; without
    ``state``/``history``, the limiter's own are used.
    """
    from scipy.ndimage import minimum_filter1d

    w = limiter._window
    state = limiter._state if state is None else state
    history = limiter._history if history is None else history
    if len(need) < count + w:
        need = np.concatenate([need, np.ones(count + w - len(need))])
    held = minimum_filter1d(need, w + 1, origin=-((w + 1) // 2), mode="nearest")[:count]  # rows i..i+w
    released, state = _release(held, limiter._tau, state, keep=count - 1)
    padded = np.concatenate([history, released])
    csum = np.concatenate([[0.0], np.cumsum(padded)])
    gains: np.ndarray = (csum[w + 1 :] - csum[1:-w]) / w  # mean over rows r - w + 1 .. r
    return gains, state, padded[-w:]


def _release(held: np.ndarray, tau: float, state: float, *, keep: int) -> tuple[np.ndarray, float]:
    """:func:`follow_release` for gains: returns the released gains (never above
    ``held``) and the reduction of row ``keep``, the state for what follows it."""
    reduction = follow_release(-20.0 * np.log10(held), tau, state)
    gains: np.ndarray = 10.0 ** (-reduction / 20.0)
    return gains, float(reduction[keep]) if 0 <= keep < len(reduction) else state
