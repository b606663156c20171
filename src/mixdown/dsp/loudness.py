"""A fast ITU-R BS.1770-4 / EBU R128 loudness and true-peak meter.

Pure numpy/scipy, vectorised and streaming: audio is fed in blocks of
``[shape=(n, channels)]`` float samples (in order), and nothing longer than a
block is ever held, so memory does not grow with the programme's length.

What is measured
----------------
* **Integrated loudness** (BS.1770-4): K-weighting, 400 ms blocks with 75 %
  overlap, absolute gate -70 LUFS, relative gate -10 LU.
* **Loudness range** (EBU Tech 3342): 3 s short-term blocks every 100 ms,
  absolute gate -70 LUFS, relative gate -20 LU, 10th to 95th percentile.
* **Momentary** (400 ms) and **short-term** (3 s) loudness every 100 ms, and
  their maxima.
* **Sample peak** and **true peak** (BS.1770-4 Annex 2: oversampled 4x below
  88.2 kHz, 2x below 176.4 kHz, not at all above).

Design
------
K-weighting
    The two BS.1770 biquads (pre-filter shelf, RLB high-pass): the
    standard's exact coefficients at 48 kHz; at other rates the same filters
    re-derived by the bilinear design libebur128 and pyloudnorm's ``"DeMan"``
    class use (shelf f0 = 1681.97 Hz, G = 3.99984 dB, Q = 0.70718; high-pass
    f0 = 38.1355 Hz, Q = 0.50033). They run through ``scipy.signal.sosfilt``
    in float64 (the high-pass has poles 0.005 from the unit circle), one
    channel at a time, with the filter state carried from block to block.
Energies
    Squared filtered samples are summed (float64) per 100 ms hop, where hop
    ``k`` covers samples ``[k*sr//10, (k+1)*sr//10)`` of the stream (exact
    even for rates that are not a multiple of 10 Hz); a hop still open at the
    end of a block is carried as a partial sum. Hop energies are weighted by
    channel (1.0 for L, R, C; 1.41 for Ls, Rs when 5 channels are given) and
    summed over channels. A 400 ms gating block is then the sum of 4
    consecutive hops and a 3 s short-term block the sum of 30, computed by
    vectorised sliding sums, with no loop over blocks. A trailing partial
    block is not counted.
Gates and percentiles
    BS.1770-4 literally: a block counts if its loudness is strictly above the
    absolute gate and strictly above the relative gate. For the loudness
    range the relative gate keeps short-term blocks at or above
    ``mean - 20 LU`` and the percentiles are libebur128's nearest rank on the
    sorted gated blocks: index ``int((n - 1) * p + 0.5)`` for p = 0.10, 0.95.
True peak
    A linear-phase interpolator designed once per oversampling factor ``P``
    with ``scipy.signal.firwin``: a Kaiser-windowed (beta 6) sinc of
    ``32 * P + 1`` taps cut off at the input's Nyquist frequency, i.e. 32 taps
    per phase. Its phase 0 is exactly the input (a Nyquist filter), so only
    the ``P - 1`` in-between phases are computed; they are flat within
    0.01 dB up to 0.42 fs (20 kHz at 48 kHz; -0.35 dB at 20 kHz at 44.1 kHz)
    and images are rejected by about 68 dB. All phases are applied at once
    as a float32 matrix product: the stream is cut into rows of 32 samples,
    each row plus the 31 samples before it (a 63-sample window) is multiplied
    by a fixed 63 x 32(P - 1) banded Toeplitz matrix, which yields the
    row's 32 outputs of every phase. One dense product keeps BLAS at full
    speed, where FFT convolution and ``resample_poly`` spend their time on
    overhead at this filter length. The stream is processed in
    fixed chunks of 65,536 samples counted from its start, with 31 samples
    of history, so the result does not depend on how the audio was split
    into blocks; the end is flushed with zeros so that the ringing after the
    last sample is included. A row whose neighbourhood's sample peak times
    the interpolator's largest sum of absolute taps (2.48) cannot beat the
    peak found so far is skipped: an exact shortcut that leaves only the rows
    of mastered speech loud enough to matter to interpolate. The limiter in
    :mod:`mixdown.dsp.dynamics` uses the same rows (:func:`peak_rows`).
Parallelism
    Each block's channels (and, for mono, the K-weighting and the true peak)
    are processed by a small module-wide thread pool: ``sosfilt``, BLAS and
    numpy's reductions release the GIL.

All values are in float: LUFS, LU, dBFS, dBTP; ``-inf`` where there is
nothing to measure (silence, or less than one block).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import AudioError
from .signal import check_audio_shape, gain_to_db, valid_audio

__all__ = [
    "Measurement",
    "Meter",
    "PartMeter",
    "interpolation_filter",
    "joined",
    "measure",
    "oversampling",
    "part_grid",
    "part_loudness",
    "peak_rows",
    "row_max",
    "true_peak",
]

_OFFSET = -0.691  # LUFS of a unit mean-square K-weighted signal, BS.1770 eq. 2
_ABS_GATE = -70.0  # LUFS
_REL_GATE = -10.0  # LU, integrated loudness
_LRA_REL_GATE = -20.0  # LU, loudness range
_LRA_LOW, _LRA_HIGH = 0.10, 0.95
_HOPS_PER_SECOND = 10  # 100 ms hops
_MOMENTARY_HOPS = 4  # 400 ms
_SHORT_TERM_HOPS = 30  # 3 s
_MAX_CHANNELS = 5  # L, R, C, Ls, Rs
_SURROUND_WEIGHT = 1.41

# BS.1770-4 Table 1 and 2: the K-weighting biquads at 48 kHz, (b0, b1, b2, a0, a1, a2).
_SOS_48K = (
    (1.53512485958697, -2.69169618940638, 1.19839281085285, 1.0, -1.69065929318241, 0.73248077421585),
    (1.0, -2.0, 1.0, 1.0, -1.99004745483398, 0.99007225036621),
)
# The analogue prototypes behind them (as derived for libebur128).
_SHELF_F0, _SHELF_GAIN_DB, _SHELF_Q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
_SHELF_VB_EXPONENT = 0.4996667741545416
_HIGHPASS_F0, _HIGHPASS_Q = 38.13547087602444, 0.5003270373238773

_TP_TAPS = 32  # per phase (even, so that phase 0 is exactly the input)
_TP_BETA = 6.0  # Kaiser window
_TP_ROW = 32  # outputs per row of the matrix product
_TP_CHUNK = 1 << 16  # samples per chunk (a multiple of _TP_ROW)
_TP_BATCH = 32  # rows per matrix product (small products stay single-threaded)
_TP_MARGIN = 1.0001  # float32 rounding allowance on the skip bound
_PAIR_TYPE = {1: np.float32, 2: np.complex64}  # the K-weighting's state, a channel or a pair
_BLOCK = 1 << 20  # frames per block in measure() and true_peak()
_PARALLEL_FRAMES = 1 << 14  # below this, a block is not worth a thread hand-off
ENVELOPE_BEFORE = _TP_TAPS // 2 - 1  # context peak_rows() needs before a sample (15)
ENVELOPE_AFTER = _TP_TAPS // 2  # and after it (16)
ROW = _TP_ROW  # samples per value of peak_rows()
# K-weighting state left to decay through digital silence (pauses between lines, fades)
# sinks into float32 denormals, which the CPU handles far more slowly: an alternating signal
# of 1e-15 (-300 dBFS, at Nyquist, so the high-pass keeps it) holds it above them, and
# energies under -200 dB per sample read as silence.
_GUARD = np.float32(1e-15)
_SILENT = 1e-20


@dataclass(frozen=True)
class Measurement:
    """The result of metering a programme.

    Attributes
    ----------
    integrated : float
        Gated integrated loudness in LUFS; ``-inf`` for silence, for input
        shorter than one 400 ms block, or when every block is gated out.
    true_peak : float
        True peak in dBTP (never below ``sample_peak``); ``-inf`` for
        silence, ``nan`` when the meter was built with ``true_peak=False``.
    sample_peak : float
        Largest absolute sample in dBFS; ``-inf`` for silence.
    lra : float
        Loudness range in LU (EBU Tech 3342); ``0.0`` when no 3 s block
        passes the gates (as libebur128 reports).
    max_momentary : float
        Loudest 400 ms window in LUFS; ``-inf`` if there is none.
    max_short_term : float
        Loudest 3 s window in LUFS; ``-inf`` if there is none.
    short_term : np.ndarray or None
        The short-term loudness every 100 ms (:meth:`Meter.short_term`), for
        a report to plot without reading the audio again; None where a
        measurement was not made by a :class:`Meter`. Not compared.
    """

    integrated: float
    true_peak: float
    sample_peak: float
    lra: float
    max_momentary: float
    max_short_term: float
    short_term: np.ndarray | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.integrated:.1f} LUFS  {self.true_peak:.1f} dBTP  LRA {self.lra:.1f}"


class Meter:
    """Streaming meter: feed blocks of ``(n, channels)`` float audio in order, then :meth:`result`.

    Parameters
    ----------
    sr : int
        Sample rate in Hz.
    channels : int
        1 to 5 channels, in BS.1770 order (L, R, C, Ls, Rs); with 5, the
        last two are weighted 1.41.
    true_peak : bool
        Measure the true peak (the most expensive part). When false,
        :attr:`Measurement.true_peak` is ``nan``.

    Notes
    -----
    Blocks may have any length (including 0); the result does not depend on
    how the stream is split. :meth:`result` may be called at any time and
    feeding may continue afterwards. A block containing NaN or infinite
    samples raises :class:`~mixdown.errors.AudioError`, after which the meter
    refuses further use.

    Examples
    --------
    >>> meter = Meter(48000, 2)
    >>> for block in blocks:  # doctest: +SKIP
    ...     meter.add(block)
    >>> print(meter.result())  # doctest: +SKIP
    -16.0 LUFS  -1.3 dBTP  LRA 4.2
    """

    def __init__(
        self,
        sr: int,
        channels: int,
        *,
        true_peak: bool = True,
        threads: bool = True,
        peaks: bool = True,
    ) -> None:
        """``threads=False`` keeps the work on the calling thread (when another process,
        such as an encoder, has the other cores). ``peaks=False`` measures loudness only
        (both peaks read NaN), for a caller that finds them itself."""
        if int(sr) != sr or sr < _HOPS_PER_SECOND:
            raise ValueError(f"sample rate must be a whole number of Hz >= 10, got {sr}")
        if not 1 <= channels <= _MAX_CHANNELS:
            raise AudioError(f"cannot meter {channels} channels; the meter takes 1 to 5 (L, R, C, Ls, Rs)")
        self.sr = int(sr)
        self.channels = int(channels)
        self.measures_true_peak = bool(true_peak)
        self._threads = threads
        self._sos = _k_weighting(self.sr).astype(np.float32)
        self._weights = _channel_weights(self.channels)
        # Channels are K-weighted in pairs: a pair's interleaved samples are one complex signal
        # (the filter's coefficients are real), one pass over the two instead of a pass each.
        self._pairs = [slice(c, min(c + 2, channels)) for c in range(0, channels, 2)]
        self._zi: list[np.ndarray] = [
            np.zeros((len(self._sos), 2), _PAIR_TYPE[p.stop - p.start]) for p in self._pairs
        ]
        self._partial = self._open_hops()  # energy of the open hop, per channel of each pair
        self._frames = 0
        self._hops: list[np.ndarray] = []  # weighted energy per complete hop
        self._tracks_peaks = bool(peaks)
        self._peaks = self._new_trackers()
        self._error: str | None = None

    # -- feeding -------------------------------------------------------------

    def add(self, block: np.ndarray) -> None:
        """Meter the next block of the stream.

        Parameters
        ----------
        block : np.ndarray [shape=(n, channels)]
            Float samples (float32 is used as is; other float types are
            converted). Not modified.

        Raises
        ------
        AudioError
            If the block has the wrong shape or dtype, or holds NaN or
            infinite samples.
        """
        if self._error is not None:
            raise AudioError(self._error)
        y = self._checked(block)
        n = len(y)
        if n == 0:
            return
        start, stop = self._frames, self._frames + n
        ends = _hop_ends(start, stop, self.sr)
        hops: list[np.ndarray] = [np.empty(0)] * len(self._pairs)

        def weigh(i: int) -> Callable[[], None]:
            def task() -> None:
                hops[i], self._partial[i], self._zi[i] = _hop_energies(
                    self._sos, y[:, self._pairs[i]], self._zi[i], self._partial[i], ends - start, start
                )

            return task

        def peak(c: int) -> Callable[[], None]:
            return lambda: self._peaks[c].feed(y[:, c])

        tasks = [weigh(i) for i in range(len(self._pairs))] + [peak(c) for c in range(len(self._peaks))]
        _run(tasks, parallel=self._threads and n >= _PARALLEL_FRAMES)
        self._frames = stop
        if not all(np.isfinite(h).all() for h in hops) or not all(
            np.isfinite(p).all() for p in self._partial
        ):
            self._error = "audio: contains NaN or infinite samples; the meter cannot go on"
            raise AudioError(self._error)
        if len(ends):
            self._hops.append(np.dot(np.concatenate(hops, axis=1), self._weights))

    def _checked(self, block: np.ndarray) -> np.ndarray:
        check_audio_shape(block, channels=self.channels)
        return np.asarray(block, dtype=np.float32)

    def restart(self) -> None:
        """Forget what was measured, keeping the filters' state: what was fed so far only
        primed them (the lead-in of a part measured on its own). Parts of a stream that
        start on 100 ms boundaries, each primed with a second or so of what precedes it,
        give the stream's hop energies (:meth:`hop_energies`) in turn."""
        self._hops, self._partial = [], self._open_hops()
        self._peaks = self._new_trackers()

    def _open_hops(self) -> list[np.ndarray]:
        return [np.zeros(p.stop - p.start) for p in self._pairs]

    def _new_trackers(self) -> list[_PeakTracker]:
        """One peak tracker per channel (none with ``peaks=False``); factor 1: sample peak only."""
        if not self._tracks_peaks:
            return []
        factor = oversampling(self.sr) if self.measures_true_peak else 1
        return [_PeakTracker(factor) for _ in range(self.channels)]

    # -- reading -------------------------------------------------------------

    def momentary(self) -> np.ndarray:
        """Momentary loudness (400 ms windows) every 100 ms, in LUFS.

        Returns
        -------
        np.ndarray [shape=(m,)]
            Entry ``i`` is the window ending at ``(i + 4) * 100 ms``; only
            complete windows are reported (none for less than 400 ms).
            Silent windows read ``-inf``.
        """
        return _to_lufs(self._window_powers(_MOMENTARY_HOPS))

    def short_term(self) -> np.ndarray:
        """Short-term loudness (3 s windows) every 100 ms, in LUFS.

        Returns
        -------
        np.ndarray [shape=(m,)]
            Entry ``i`` is the window ending at ``(i + 30) * 100 ms``; only
            complete windows are reported. Silent windows read ``-inf``.
        """
        return _to_lufs(self._window_powers(_SHORT_TERM_HOPS))

    def result(self) -> Measurement:
        """Measure everything fed so far.

        Returns
        -------
        Measurement
            See :class:`Measurement` for the values reported for silence and
            for input shorter than a block.
        """
        if self._error is not None:
            raise AudioError(self._error)
        blocks = self._window_powers(_MOMENTARY_HOPS)
        short = self._window_powers(_SHORT_TERM_HOPS)
        finals = [tracker.final() for tracker in self._peaks]
        peak = gain_to_db(max(t for _, t in finals)) if self.measures_true_peak and finals else math.nan
        return Measurement(
            integrated=_integrated(blocks),
            true_peak=peak,
            sample_peak=gain_to_db(max(s for s, _ in finals)) if finals else math.nan,
            lra=_loudness_range(short),
            max_momentary=_max_lufs(blocks),
            max_short_term=_max_lufs(short),
            short_term=_to_lufs(short),
        )

    @classmethod
    def of_hops(cls, sr: int, channels: int, hops: np.ndarray, frames: int) -> Meter:
        """A meter restored from :meth:`hop_energies` of ``frames`` (loudness only: no peaks)."""
        meter = cls(sr, channels, true_peak=False)
        meter._hops = [np.asarray(hops, dtype=np.float64)]
        meter._frames = frames
        return meter

    def hop_energies(self) -> np.ndarray:
        """The K-weighted energy (weighted, summed over channels) of every complete 100 ms hop."""
        if len(self._hops) > 1:
            self._hops = [np.concatenate(self._hops)]
        return self._hops[0] if self._hops else np.empty(0)

    def integrated_with(self, scale: np.ndarray) -> float:
        """The integrated loudness had each hop's energy been multiplied by ``scale``."""
        return _integrated(self._window_powers(_MOMENTARY_HOPS, self.hop_energies() * scale))

    def _window_powers(self, hops: int, energy: np.ndarray | None = None) -> np.ndarray:
        """Mean-square (weighted, summed over channels) of every complete window of ``hops`` hops."""
        if energy is None:
            energy = self.hop_energies()
        if len(energy) < hops:
            return np.empty(0)
        sums = sliding_window_view(energy, hops).sum(axis=1)
        first = np.arange(len(sums), dtype=np.int64)
        frames = (first + hops) * self.sr // _HOPS_PER_SECOND - first * self.sr // _HOPS_PER_SECOND
        powers: np.ndarray = sums / frames
        return powers


def measure(
    y: np.ndarray, sr: int, *, block: int = _BLOCK, true_peak: bool = True, threads: bool = True
) -> Measurement:
    """Measure loudness, loudness range and peaks of a whole signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        Float audio, 1 to 5 channels (L, R, C, Ls, Rs).
    sr : int
        Sample rate in Hz.
    block : int
        Frames fed to the :class:`Meter` at a time; the result does not
        depend on it, only the size of the temporaries does.
    true_peak : bool
        Also measure the true peak.
    threads : bool
        Run the channels on the module's threads (False: on the calling
        thread, when the caller is one of several threads already).

    Returns
    -------
    Measurement
        Integrated loudness, true and sample peak, LRA, maximum momentary and
        short-term loudness.

    Examples
    --------
    >>> t = np.arange(48000 * 20) / 48000
    >>> y = np.repeat((10 ** (-23 / 20) * np.sin(2 * np.pi * 1000 * t))[:, None], 2, axis=1)
    >>> round(measure(y.astype(np.float32), 48000).integrated, 1)
    -23.0
    """
    if not isinstance(y, np.ndarray) or y.ndim != 2:
        shape = getattr(y, "shape", type(y).__name__)
        raise AudioError(f"audio: expected an array of shape (n, channels), got {shape}")
    if block < 1:
        raise ValueError(f"block must be at least 1 frame, got {block}")
    meter = Meter(sr, y.shape[1], true_peak=true_peak, threads=threads)
    for start in range(0, len(y), block):
        meter.add(y[start : start + block])
    return meter.result()


def true_peak(y: np.ndarray, sr: int) -> float:
    """Return the true peak of ``y`` as a linear amplitude.

    Parameters
    ----------
    y : np.ndarray [shape=(n, channels)]
        Finite float audio, any number of channels.
    sr : int
        Sample rate in Hz: oversampled 4x below 88.2 kHz, 2x below 176.4 kHz.

    Returns
    -------
    float
        The largest absolute value of the oversampled signal (including the
        original samples) over all channels; 0.0 for silence or empty input.

    Notes
    -----
    Streams over ``y`` in blocks of 1M frames with the same interpolator as
    :class:`Meter`, so memory stays bounded for long inputs.
    """
    y = valid_audio(y)
    trackers = [_PeakTracker(oversampling(int(sr))) for _ in range(y.shape[1])]
    for start in range(0, len(y), _BLOCK):
        part = y[start : start + _BLOCK]
        tasks = [_feeder(tracker, part[:, c]) for c, tracker in enumerate(trackers)]
        _run(tasks, parallel=len(part) >= _PARALLEL_FRAMES)
    return max((tracker.final()[1] for tracker in trackers), default=0.0)


# -- K-weighting and gating ---------------------------------------------------


@lru_cache(maxsize=16)
def _k_weighting(sr: int) -> np.ndarray:
    """The two K-weighting biquads at ``sr`` as a float64 ``sos`` array ``[shape=(2, 6)]``."""
    return np.array(_SOS_48K) if sr == 48000 else _design_k_weighting(sr)


def _design_k_weighting(sr: int) -> np.ndarray:
    """Bilinear design of the K-weighting biquads from their analogue prototypes."""
    k = math.tan(math.pi * _SHELF_F0 / sr)
    vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
    vb = vh**_SHELF_VB_EXPONENT
    a0 = 1.0 + k / _SHELF_Q + k * k
    shelf = (
        (vh + vb * k / _SHELF_Q + k * k) / a0,
        2.0 * (k * k - vh) / a0,
        (vh - vb * k / _SHELF_Q + k * k) / a0,
        1.0,
        2.0 * (k * k - 1.0) / a0,
        (1.0 - k / _SHELF_Q + k * k) / a0,
    )
    k = math.tan(math.pi * _HIGHPASS_F0 / sr)
    a0 = 1.0 + k / _HIGHPASS_Q + k * k
    highpass = (1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / _HIGHPASS_Q + k * k) / a0)
    return np.array([shelf, highpass])


def _channel_weights(channels: int) -> np.ndarray:
    weights = np.ones(channels)
    if channels == _MAX_CHANNELS:
        weights[3:] = _SURROUND_WEIGHT
    return weights


def _complete_hops(frames: int, sr: int) -> int:
    """How many 100 ms hops ``[k*sr//10, (k+1)*sr//10)`` lie within the first ``frames`` samples."""
    # (k * sr) // 10 <= frames  <=>  k * sr < 10 * (frames + 1)
    return -(-_HOPS_PER_SECOND * (frames + 1) // sr) - 1


def _hop_ends(start: int, stop: int, sr: int) -> np.ndarray:
    """Stream positions (exclusive ends) of the hops completed by samples ``[start, stop)``."""
    k = np.arange(_complete_hops(start, sr), _complete_hops(stop, sr), dtype=np.int64)
    ends: np.ndarray = (k + 1) * sr // _HOPS_PER_SECOND
    return ends


def _hop_energies(
    sos: np.ndarray, x: np.ndarray, zi: np.ndarray, partial: np.ndarray, ends: np.ndarray, start: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K-weight one or two channels' block ``x`` ``[shape=(n, k)]`` and sum its squares per hop.

    Two channels are filtered as one complex signal (``zi`` complex64; one
    channel: float32). ``ends`` are the block-relative ends (1..n) of the
    hops the block completes; ``start`` is the block's place in the stream
    (the guard signal's phase, so that results do not depend on the split).
    Returns the completed hops' energies ``[shape=(hops, k)]``, the energy
    of the hop left open at the end of the block (per channel) and the
    filter state.
    """
    from scipy.signal import sosfilt

    n, k = x.shape
    flat = np.ascontiguousarray(x).reshape(-1)
    guarded = np.add(flat, _guard(n + 1, k)[start % 2 * k : (start % 2 + n) * k])
    filtered, zi = sosfilt(sos, guarded.view(np.complex64) if k == 2 else guarded, zi=zi)
    squares = filtered.view(np.float32)
    np.square(squares, out=squares)
    cuts = ends[ends < n]
    starts = np.concatenate(([0], cuts))
    steps = np.diff(cuts)
    segments = np.empty((len(starts), k), dtype=np.float64)
    for c in range(k):
        column = squares[c::k]
        if len(steps) and steps.min() == steps.max():  # whole hops of one length: summed as rows
            segments[0, c] = column[: cuts[0]].sum(dtype=np.float64)
            segments[1:-1, c] = (
                column[cuts[0] : cuts[-1]].reshape(-1, int(steps[0])).sum(axis=1, dtype=np.float64)
            )
            segments[-1, c] = column[cuts[-1] :].sum(dtype=np.float64)
        else:
            segments[:, c] = np.add.reduceat(column, starts, dtype=np.float64)
    segments[segments < _SILENT * np.diff(starts, append=n)[:, None]] = 0.0
    done = len(ends)
    if done == 0:
        return np.empty((0, k)), partial + segments[0], zi
    hops = segments[:done]
    hops[0] += partial
    left = segments[done] if len(segments) > done else np.zeros(k)
    return hops, left, zi


def _guard(n: int, k: int = 1) -> np.ndarray:
    """``_GUARD`` with alternating signs, frame by frame, for at least ``n`` frames of ``k``
    interleaved channels (shared: never written to)."""
    return _guard_pattern(1 << max(n - 1, 1).bit_length(), k)


@lru_cache(maxsize=8)
def _guard_pattern(size: int, k: int) -> np.ndarray:
    pattern = np.full((size, k), _GUARD, dtype=np.float32)
    pattern[1::2] = -_GUARD
    flat = pattern.reshape(-1)
    flat.flags.writeable = False
    return flat


def _integrated(powers: np.ndarray) -> float:
    """BS.1770-4 gated loudness of 400 ms block powers."""
    gated = powers[powers > _lufs_to_power(_ABS_GATE)]
    if not len(gated):
        return -math.inf
    relative = float(gated.mean()) * 10.0 ** (_REL_GATE / 10.0)
    gated = gated[gated > relative]
    return float(_to_lufs(np.array([gated.mean()]))[0])


def _loudness_range(powers: np.ndarray) -> float:
    """EBU Tech 3342 loudness range of 3 s block powers (libebur128's percentiles)."""
    gated = powers[powers > _lufs_to_power(_ABS_GATE)]
    if not len(gated):
        return 0.0
    gated = np.sort(gated[gated >= float(gated.mean()) * 10.0 ** (_LRA_REL_GATE / 10.0)])
    last = len(gated) - 1
    low = gated[int(last * _LRA_LOW + 0.5)]
    high = gated[int(last * _LRA_HIGH + 0.5)]
    return float(10.0 * math.log10(high / low))


def _lufs_to_power(lufs: float) -> float:
    return float(10.0 ** ((lufs - _OFFSET) / 10.0))


def _to_lufs(powers: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        lufs: np.ndarray = _OFFSET + 10.0 * np.log10(powers)
    return lufs


def _max_lufs(powers: np.ndarray) -> float:
    return float(_to_lufs(np.array([powers.max()]))[0]) if len(powers) else -math.inf


def _abs_max(x: np.ndarray) -> float:
    """Largest absolute value of ``x`` without an ``abs`` temporary (0.0 if empty)."""
    if x.size == 0:
        return 0.0
    return max(float(x.max()), -float(x.min()))


# -- true peak -------------------------------------------------------------------


def oversampling(sr: int) -> int:
    """BS.1770 Annex 2: at least 4x at 48 kHz, i.e. an oversampled rate of 176.4 kHz or more."""
    return 4 if sr < 88200 else 2 if sr < 176400 else 1


@dataclass(frozen=True)
class _Interpolator:
    """The in-between phases of a polyphase FIR, as one banded matrix."""

    taps: int  # per phase
    matrix: np.ndarray  # float32 [shape=(_TP_ROW + taps - 1, _TP_ROW * (phases - 1))]
    gain: float  # the largest sum of absolute taps over the phases


@lru_cache(maxsize=4)
def interpolation_filter(factor: int) -> np.ndarray:
    """The true-peak interpolation FIR for oversampling by ``factor`` (>= 2).

    A Kaiser-windowed sinc cut at the input's Nyquist frequency, of
    ``factor * 32 + 1`` taps; unscaled, so that its centre tap is exactly
    1 and phase 0 reproduces the input. The limiter in
    :mod:`mixdown.dsp.dynamics` detects peaks with the same filter, so what it
    keeps under a ceiling is what this meter reads.
    """
    from scipy.signal import firwin

    taps = factor * _TP_TAPS + 1
    h: np.ndarray = factor * firwin(taps, 0.5, window=("kaiser", _TP_BETA), fs=factor, scale=False)
    h.flags.writeable = False  # shared by every caller through the lru_cache
    return h


@lru_cache(maxsize=4)
def _interpolator(factor: int) -> _Interpolator:
    """Design the interpolator for oversampling by ``factor`` (>= 2)."""
    taps = _TP_TAPS
    h = interpolation_filter(factor)
    phases = np.stack([h[q::factor] for q in range(1, factor)])  # [shape=(factor - 1, taps)]
    width = _TP_ROW + taps - 1
    # Output j of a row is sum_k g[k] * window[taps - 1 + j - k].
    matrix = np.zeros((width, _TP_ROW, factor - 1))
    j = np.arange(_TP_ROW)[:, None]
    k = np.arange(taps)[None, :]
    matrix[taps - 1 + j - k, j, :] = phases.T[k]
    gain = float(np.abs(phases).sum(axis=1).max())
    return _Interpolator(taps, matrix.reshape(width, -1).astype(np.float32), gain)


def peak_rows(z: np.ndarray, sr: int, *, above: float = 0.0) -> np.ndarray:
    """The largest magnitude of the oversampled signal in each row of :data:`ROW` samples.

    Parameters
    ----------
    z : np.ndarray [shape=(m, channels)]
        Float32 audio with :data:`ENVELOPE_BEFORE` samples of context before
        the first sample of interest and :data:`ENVELOPE_AFTER` after the last.
    sr : int
        Sample rate (sets the oversampling, as for the meter).
    above : float
        Only values above this matter to the caller: a row whose interpolated
        values cannot exceed it (the sample peak of its neighbourhood times the
        filter's largest sum of absolute taps) reads its sample peak, without
        interpolating. Speech limited near its ceiling interpolates few of
        its rows.

    Returns
    -------
    np.ndarray [shape=(ceil(n / ROW),)]
        float32, for the ``n`` samples of interest: per row of ``ROW`` samples,
        the largest of their magnitudes and of the interpolated values that
        follow each of them, over all channels, with the meter's own
        interpolation filter, so that what a limiter keeps under a ceiling is
        what the meter reads.
    """
    factor = oversampling(int(sr))
    n = len(z) - ENVELOPE_BEFORE - ENVELOPE_AFTER
    rows = -(-max(n, 0) // ROW)
    width = rows * ROW + _TP_TAPS - 1  # the samples the rows' outputs depend on
    if len(z) < width:  # a ragged end: pad with zeros
        padded = np.zeros((width, z.shape[1]), dtype=np.float32)
        padded[: len(z)] = z
        z = padded
    channels = z.shape[1]
    bits = _magnitude_bits(z)
    first = ENVELOPE_BEFORE * channels
    peaks: np.ndarray = row_max(bits[first : first + rows * ROW * channels], ROW * channels).view(np.float32)
    if factor == 1 or rows == 0:
        return peaks
    interp = _interpolator(factor)
    busy = _rows_above(bits[: width * channels], rows, interp.gain, above, channels)
    if not len(busy):
        return peaks
    for c in range(z.shape[1]):
        # A view of the interleaved block: only the busy rows' windows are copied.
        windows = sliding_window_view(z[:width, c], ROW + _TP_TAPS - 1)[::ROW]
        values = _interpolate(windows[busy], interp.matrix)
        found = row_max(_magnitude_bits(values), values.shape[1]).view(np.float32)  # each row's largest
        np.maximum(peaks[busy], found, out=found)
        peaks[busy] = found
    return peaks


def part_grid(sr: int) -> int:
    """Samples between the stream positions where a part may start: whole 100 ms hops."""
    return sr // math.gcd(sr, _HOPS_PER_SECOND)


def part_loudness(z: np.ndarray, sr: int, lead: int, n: int) -> tuple[np.ndarray, float, float]:
    """Meter one part of a longer stream on its own: ``(hop energies, sample peak, true peak)``.

    ``z`` ``[shape=(m, channels)]`` starts ``lead`` samples before the part
    (a multiple of :func:`part_grid`, and so must the part's start be), which
    only prime the K-weighting (a second is plenty), and holds the part's
    ``n`` samples then, if the stream goes on, at least
    :data:`ENVELOPE_AFTER` more as the true peak's context (zeros past the
    end of the stream, as :class:`Meter` reads it). Parts that tile a stream,
    each measured so, :func:`joined` into what one meter reads over the
    whole, up to float rounding. :class:`PartMeter` takes ``z`` in blocks.
    """
    meter = PartMeter(sr, z.shape[1], lead, n)
    for first in range(0, len(z), _BLOCK):
        meter.add(z[first : first + _BLOCK])
    return meter.result()


class PartMeter:
    """:func:`part_loudness` fed block by block, so that a part is metered as it is made.

    Feed ``z`` (from ``lead`` samples before the part) in order, in blocks of
    any length, then call :meth:`result` once; samples past the part's
    :data:`ENVELOPE_AFTER` of context are ignored. With ``energies=False``
    only the peaks are read (the caller knows the hop energies otherwise).
    """

    def __init__(self, sr: int, channels: int, lead: int, n: int, *, energies: bool = True) -> None:
        self.sr, self.lead, self.n = sr, lead, n
        self._meter = Meter(sr, channels, true_peak=False, threads=False, peaks=False) if energies else None
        self._fed = 0
        # the true peak's samples not yet read, after ENVELOPE_BEFORE of context (zeros before the stream)
        self._pending = np.zeros((max(0, ENVELOPE_BEFORE - lead), channels), dtype=np.float32)
        self._peaked = 0  # samples of the part read by peak_rows() so far
        self._sample = self._true = 0.0

    def add(self, block: np.ndarray) -> None:
        """Take the next samples of ``z``."""
        at, lead, stop = self._fed, self.lead, self.lead + self.n
        self._fed += len(block)
        if at < lead and self._meter is not None:
            self._meter.add(block[: lead - at])
            if self._fed >= lead:
                self._meter.restart()
        body = block[max(0, lead - at) : max(0, stop - at)]
        if len(body):
            if self._meter is not None:
                self._meter.add(body)
            self._sample = max(self._sample, _abs_max(body))
        context = block[max(0, lead - ENVELOPE_BEFORE - at) : max(0, stop + ENVELOPE_AFTER - at)]
        if len(context):
            self._pending = np.concatenate([self._pending, context])
            ready = len(self._pending) - ENVELOPE_BEFORE - ENVELOPE_AFTER
            if ready >= _TP_CHUNK:
                self._peak(min(ready // ROW * ROW, self.n - self._peaked))

    def _peak(self, count: int) -> None:
        """Read the true peak of the next ``count`` samples of the part (whole rows but at its end)."""
        z = self._pending[: ENVELOPE_BEFORE + count + ENVELOPE_AFTER]
        self._true = max(self._true, float(peak_rows(z, self.sr, above=self._true).max(initial=0.0)))
        self._pending = self._pending[count:]
        self._peaked += count

    def result(self) -> tuple[np.ndarray, float, float]:
        """``(hop energies, sample peak, true peak)`` of the part (see :func:`part_loudness`)."""
        if self._fed < self.lead + self.n:
            raise ValueError(f"a part metered {self._fed - self.lead} samples of its {self.n}")
        if self._peaked < self.n:
            missing = ENVELOPE_BEFORE + self.n - self._peaked + ENVELOPE_AFTER - len(self._pending)
            if missing > 0:  # the stream ends: zeros after it
                self._pending = np.concatenate(
                    [self._pending, np.zeros((missing, self._pending.shape[1]), np.float32)]
                )
            self._peak(self.n - self._peaked)
        hops = self._meter.hop_energies() if self._meter is not None else np.empty(0)
        return hops, self._sample, self._true


def joined(
    sr: int, channels: int, frames: int, parts: Sequence[tuple[np.ndarray, float, float]]
) -> Measurement:
    """The measurement of a stream of ``frames`` from its parts' :func:`part_loudness`, in order."""
    hops = np.concatenate([p[0] for p in parts]) if parts else np.empty(0)
    found = Meter.of_hops(sr, channels, hops, frames).result()
    sample = max((p[1] for p in parts), default=0.0)
    true = max((max(p[1], p[2]) for p in parts), default=0.0)
    return replace(found, true_peak=gain_to_db(true), sample_peak=gain_to_db(sample))


def row_max(values: np.ndarray, width: int) -> np.ndarray:
    """The largest of every ``width`` consecutive ``values`` (1-D, a whole number of rows).

    ``np.maximum.reduceat``: twice as fast as ``reshape(-1, width).max(axis=1)``
    on rows this short, which numpy reduces one at a time.
    """
    if not len(values):
        return values[:0].copy()
    found: np.ndarray = np.maximum.reduceat(values, _row_starts(len(values), width))
    return found


@lru_cache(maxsize=8)
def _row_starts(size: int, width: int) -> np.ndarray:
    starts = np.arange(0, size, width)
    starts.flags.writeable = False
    return starts


def _magnitude_bits(z: np.ndarray) -> np.ndarray:
    """``|z|`` of float32 samples, interleaved, as their bit patterns (uint32, 1-D).

    Clearing the sign bit is the magnitude; non-negative floats order as
    their bit patterns do, and numpy reduces unsigned integers over short
    rows about twice as fast as floats (no NaN checks): the maxima of rows
    of them, viewed as float32, are the magnitudes' maxima.
    """
    flat = np.ascontiguousarray(z, dtype=np.float32).reshape(-1).view(np.uint32)
    bits: np.ndarray = np.bitwise_and(flat, np.uint32(0x7FFFFFFF))
    return bits


def _rows_above(bits: np.ndarray, rows: int, gain: float, above: float, channels: int = 1) -> np.ndarray:
    """Indices of the rows whose interpolated values could exceed ``above``.

    ``bits`` holds ``rows * ROW + taps - 1`` frames of :func:`_magnitude_bits`
    (``channels`` interleaved); row r's outputs come from frames
    ``r * ROW : r * ROW + 63``, inside 32-frame blocks r and r + 1, and
    cannot exceed their sample peak times ``gain`` (the interpolator's
    largest sum of absolute taps).
    """
    width = _TP_ROW * channels
    blocks = np.empty(rows + 1, dtype=np.uint32)
    blocks[:rows] = row_max(bits[: rows * width], width)
    blocks[rows] = bits[rows * width :].max()
    peaks = blocks.view(np.float32)
    bound = np.maximum(peaks[:-1], peaks[1:]) * np.float32(gain * _TP_MARGIN)
    return np.flatnonzero(bound > above)


def _interpolate(windows: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``windows @ matrix`` in batches of ``_TP_BATCH`` rows.

    One large product makes OpenBLAS start its threads, which costs far
    more than the arithmetic of a few hundred rows; batches of a few rows
    stay on the calling thread, and the meter runs its channels on threads
    of its own.
    """
    rows = len(windows)
    batches = -(-rows // _TP_BATCH)
    padded = np.zeros((batches * _TP_BATCH, windows.shape[1]), dtype=np.float32)
    padded[:rows] = windows
    out = np.matmul(padded.reshape(batches, _TP_BATCH, -1), matrix)
    values: np.ndarray = out.reshape(batches * _TP_BATCH, -1)[:rows]
    return values


class _PeakTracker:
    """Sample and true peak of one channel, fed in order.

    Samples are gathered into chunks of ``_TP_CHUNK`` counted from the
    stream's start, each with the ``taps - 1`` samples before it, so results
    are the same however the stream is split.
    """

    def __init__(self, factor: int) -> None:
        self.sample = 0.0
        self.true = 0.0
        self._interp = _interpolator(factor) if factor > 1 else None
        history = self._interp.taps - 1 if self._interp else 0
        self._history = history
        self._fill = history
        if self._interp is None:
            return
        self._buffer = np.zeros(history + _TP_CHUNK, dtype=np.float32)
        self._rows = _TP_CHUNK // _TP_ROW

    def feed(self, x: np.ndarray) -> None:
        """Take the next samples ``x`` ``[shape=(n,)]`` (float32, any stride)."""
        if self._interp is None:
            self.sample = max(self.sample, _abs_max(x))
            self.true = self.sample
            return
        buffer, history = self._buffer, self._history
        pos, n = 0, len(x)
        while pos < n:
            take = min(n - pos, len(buffer) - self._fill)
            buffer[self._fill : self._fill + take] = x[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == len(buffer):
                self.sample, self.true = self._chunk(buffer, self.sample, self.true)
                buffer[:history] = buffer[len(buffer) - history :]
                self._fill = history

    def final(self) -> tuple[float, float]:
        """Sample and true peak of everything fed, flushing the interpolator (state unchanged)."""
        if self._interp is None or self._fill == self._history and self.sample == 0.0:
            return self.sample, max(self.true, self.sample)
        # The pending samples, then zeros: outputs run taps - 1 samples past the end.
        chunks = -(-self._fill // _TP_CHUNK)
        z = np.zeros(self._history + chunks * _TP_CHUNK, dtype=np.float32)
        z[: self._fill] = self._buffer[: self._fill]
        sample, true = self.sample, self.true
        for i in range(chunks):
            sample, true = self._chunk(z[i * _TP_CHUNK : i * _TP_CHUNK + len(self._buffer)], sample, true)
        return sample, max(true, sample)

    def _chunk(self, z: np.ndarray, sample: float, true: float) -> tuple[float, float]:
        """Update the peaks with one chunk ``z`` (history + ``_TP_CHUNK`` samples)."""
        assert self._interp is not None
        # The history was counted before; counting it again does not change a maximum.
        peak = _abs_max(z)
        sample = max(sample, peak)
        best = max(true, sample)
        if peak * self._interp.gain * _TP_MARGIN <= best:
            return sample, best  # no interpolated value here can beat the peak so far
        # Only rows whose neighbourhood could beat the best so far are interpolated.
        busy = _rows_above(_magnitude_bits(z), self._rows, self._interp.gain, best)
        if not len(busy):
            return sample, best
        windows = sliding_window_view(z, _TP_ROW + self._history)[::_TP_ROW][busy]
        return sample, max(best, _abs_max(_interpolate(windows, self._interp.matrix)))


def _feeder(tracker: _PeakTracker, x: np.ndarray) -> Callable[[], None]:
    return lambda: tracker.feed(x)


# -- threads -----------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the parent's worker threads do not exist: start a new pool when needed."""
    global _POOL, _POOL_LOCK
    _POOL, _POOL_LOCK = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool)


def _pool() -> ThreadPoolExecutor | None:
    """The module's worker threads (``None`` on a single CPU)."""
    global _POOL
    workers = min(os.cpu_count() or 1, 4)
    if workers < 2:
        return None
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mixdown-loudness")
        return _POOL


def _run(tasks: Sequence[Callable[[], None]], *, parallel: bool) -> None:
    """Run independent tasks, on the pool when it pays; the first runs on this thread."""
    pool = _pool() if parallel and len(tasks) > 1 else None
    if pool is None:
        for task in tasks:
            task()
        return
    futures = [pool.submit(task) for task in tasks[1:]]
    error: BaseException | None = None
    try:
        tasks[0]()
    except BaseException as err:  # still wait for the others: they share state with the caller
        error = err
    for future in futures:
        try:
            future.result()
        except BaseException as err:
            error = error or err
    if error is not None:
        raise error
