"""Master stage: loudness normalisation under a true-peak ceiling.

:func:`measure` reads integrated loudness, true peak and loudness range with
:mod:`mixdown.dsp.loudness` (ITU-R BS.1770-4 / EBU R128). :func:`master_stream`
normalises a programme of any length to a loudness target and limits it
under a true-peak ceiling, block by block: an :class:`Analysis` (made by its
first pass, or by the mix stage as it wrote the programme) predicts the gain
that lands on the target after the :class:`~mixdown.dsp.dynamics.Limiter`,
and one limiting pass usually finishes the job. :func:`master` is the same
code for arrays in memory. The limiter itself (:class:`Limiter`,
:func:`limit`) is in :mod:`mixdown.dsp.dynamics`. Encoding
and the spec check of written files are in :mod:`mixdown.codecs.deliver`.

All audio is float32 ``[shape=(n, channels)]`` at an explicit ``sr``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .dynamics import AIM, Limiter, simulate
from .signal import db_to_gain, valid_audio

if TYPE_CHECKING:
    from pathlib import Path

    from .signal import Stream

__all__ = [
    "Analysis",
    "Loudness",
    "MasterSettings",
    "Sink",
    "master",
    "master_stream",
    "measure",
    "normalise",
    "true_peak",
]

GATING_BLOCK = 0.4  # s, the BS.1770 gating block: the shortest thing a meter can measure
MASTER_MARGIN_DB = 0.3  # master() limits this far under the ceiling
_NORMALISE_PASSES = 6
_LOUDNESS_TOLERANCE = 0.1  # LU: master() stops correcting its gain within this (EBU QC: 0.2)
_MAX_PUSH_DB = 12.0  # master() drives its limiter at most this much harder to reach a target
_CLIFF_LU = 0.5  # a pass this much quieter than a pass at less gain is past a cliff (see _Climb)
_NARROW_DB = 0.02  # a cliff located this closely: the target is out of reach under it
_BACK_OFF_DB = 0.25  # a pass aims this far under a predicted cliff (about 0.1 LU quieter)
_PREDICTED_STEPS = 12  # tries on the predicted loudness (each simulates the limiter: cheap)


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
    integrated = found.integrated if len(y) >= math.ceil(GATING_BLOCK * sr) else short_integrated(y, sr)
    return Loudness(integrated, found.true_peak, found.lra)


def true_peak(y: np.ndarray, sr: int) -> float:
    """Return the true peak of ``y`` as a linear amplitude (see :mod:`mixdown.dsp.loudness`)."""
    from .loudness import true_peak as meter_true_peak

    return meter_true_peak(valid_audio(y), sr)


def master(
    y: np.ndarray,
    sr: int,
    settings: MasterSettings = MasterSettings(),  # noqa: B008 - frozen, never mutated
) -> tuple[np.ndarray, Loudness]:
    """Normalise ``y`` to the target loudness and limit it under the ceiling.

    The in-memory form of :func:`master_stream` (same result).

    Returns
    -------
    mastered : np.ndarray [shape=(n, channels)]
        Float32, limited to ``ceiling_dbtp - 0.3`` dBTP (headroom for
        resampling and codecs).
    loudness : Loudness
        The measurement of ``mastered``.
    """
    from ..codecs.wav import Source

    y = valid_audio(y)
    sink = _Collect()
    loudness = master_stream(Source.of_array(y, sr), settings, lambda: sink)
    return sink.audio(y.shape[1]), loudness


class Sink(Protocol):
    """Where :func:`master_stream` writes: blocks in order, then kept or thrown away."""

    def write(self, block: np.ndarray) -> None: ...

    def discard(self) -> None: ...


class _Collect:
    """A sink that keeps the blocks in memory (for :func:`master`)."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def write(self, block: np.ndarray) -> None:
        self.blocks.append(block)

    def discard(self) -> None:
        self.blocks = []

    def audio(self, channels: int) -> np.ndarray:
        if not self.blocks:
            return np.zeros((0, channels), dtype=np.float32)
        return np.concatenate(self.blocks)


def master_stream(
    source: Stream,
    settings: MasterSettings,
    open_sink: Callable[[], Sink],
    *,
    progress: Callable[[str], None] | None = None,
    threads: bool = True,
    analysis: Analysis | None = None,
    profile: np.ndarray | None = None,
) -> Loudness:
    """Normalise and limit ``source`` block by block into a sink; return what was measured.

    Two passes over the source: one measures its integrated loudness, the
    next applies the gain and the :class:`Limiter` and meters what it writes
    (loudness, true peak, LRA). Limiting takes loudness off peaky material:
    the gain is predicted from the first pass (:class:`_Predictor`), and
    when the result is more than 0.1 LU off the target, or over the
    ceiling, the limiting pass runs again at a gain the search so far points
    to (:class:`_Climb`: it also steps back from a cliff where a quiet stretch
    crosses the gate; at most 6 more times, each into a new sink; the caller
    keeps only the last one). The limiter is never driven more than 12 dB
    past the first estimate: a target that needs more (very peaky speech at
    -14 LUFS under -3 dBTP) stops at the loudest the limiter reaches, and
    the measurement says so.
    Memory stays at a few blocks whatever the length.

    The sink returned by ``open_sink`` receives the master; on a retry it is
    told to :meth:`Sink.discard` what it got. Digital silence passes unchanged.
    ``threads=False`` meters the limiting pass on the calling thread: for a
    sink that feeds an encoder process, which then has the other core.
    ``analysis`` of the source, made while it was written (the mix stage
    does), saves the measurement pass. ``profile`` lowers the ceiling where
    an encoder overshot it (see :class:`Limiter`).
    """
    from .loudness import Meter

    sr, channels = source.sample_rate, source.channels

    def streamed(gain_db: float, aim: float, trim: float) -> tuple[Any, float, Callable[[], None]]:
        sink = open_sink()
        limiter = Limiter(
            sr, channels, ceiling_dbtp=settings.ceiling_dbtp - MASTER_MARGIN_DB, profile=profile
        )
        limiter.aim *= aim
        gain = np.float32(db_to_gain(gain_db))
        meter = Meter(sr, channels, threads=threads)
        kept: list[np.ndarray] | None = [] if source.frames < math.ceil(GATING_BLOCK * sr) else None
        for block in source.blocks():
            _emit(limiter.process(block * gain), trim, sink, meter, kept)
        _emit(limiter.flush(), trim, sink, meter, kept)
        if kept is not None:  # under one gating block: measured as if looped, from what was written
            return meter.result(), short_integrated(_joined(kept).reshape(-1, channels), sr), sink.discard
        return meter.result(), _integrated_of(meter, source.frames, sr), sink.discard

    return normalise(source, settings, streamed, progress=progress, analysis=analysis)


Pass = Callable[[float, float, float], tuple[Any, float, Callable[[], None]]]
"""One limiting pass: ``(gain_db, aim, trim) -> (measurement, integrated LUFS, discard)``.

The pass applies ``gain_db``, a :class:`Limiter` whose aim is scaled by
``aim``, then a plain gain ``trim``, writes the result where it goes and
measures it; ``discard`` throws its output away (the pass is run again).
"""


def normalise(
    source: Stream,
    settings: MasterSettings,
    limiting: Pass,
    *,
    progress: Callable[[str], None] | None = None,
    analysis: Analysis | None = None,
) -> Loudness:
    """Find the gain that lands ``source`` on the target through the limiter, running ``limiting`` passes.

    The loop of :func:`master_stream`, for any way of running a pass (in one
    stream, or in parallel segments: :mod:`mixdown.codecs.parts`).
    """
    say = progress or (lambda _: None)
    sr, channels = source.sample_rate, source.channels
    if analysis is None or analysis.frames != source.frames:
        analysis = Analysis.of(source)
    meter, predictor = analysis.meter, analysis.predictor
    loudness = _integrated_of(meter, source.frames, sr, source)
    say(f"measured {loudness:.1f} LUFS")
    if not math.isfinite(loudness):
        found, _, _ = limiting(0.0, 1.0, 1.0)  # silence: nothing to limit
        return Loudness(loudness, found.true_peak)
    ceiling_dbtp = settings.ceiling_dbtp - MASTER_MARGIN_DB
    ceiling = db_to_gain(ceiling_dbtp)
    gain_db, aim, trim = settings.target_lufs - loudness, 1.0, 1.0
    climb = _Climb(settings.target_lufs, gain_db)
    expected = settings.target_lufs  # what the first pass should read
    if source.frames >= math.ceil(GATING_BLOCK * sr):
        limiter = Limiter(sr, channels, ceiling_dbtp=ceiling_dbtp)
        predicted = predictor.climbed(settings.target_lufs, gain_db, limiter, meter)
        (gain_db, expected), climb = predicted.answer, predicted.for_passes()
    for attempt in range(_NORMALISE_PASSES + 1):
        found, result, discard = limiting(gain_db, aim, trim)
        over = db_to_gain(found.true_peak) / ceiling
        say(f"pass {attempt + 1}: {result:.2f} LUFS, {found.true_peak:.2f} dBTP")
        if over > 1.0:
            discard()
            if attempt >= _NORMALISE_PASSES - 1:
                trim *= AIM / over  # the last resort: a plain gain scales the true peak exactly
            else:  # a limiter aimed lower is another curve: the climb starts again from here
                aim *= AIM / over
                climb = _Climb(settings.target_lufs, gain_db)
            continue
        # far quieter than predicted near a cliff: past it (the prediction placed it a little later)
        fell = attempt == 0 and climb.fallen < math.inf and result < expected - _CLIFF_LU
        following = climb.add(gain_db, result, fell=fell)
        if attempt == _NORMALISE_PASSES:
            return Loudness(result, found.true_peak, found.lra)
        if following is None or attempt == _NORMALISE_PASSES - 1:
            best = climb.answer[0]
            if best == gain_db:
                return Loudness(result, found.true_peak, found.lra)
            following = best  # an earlier pass was the nearest: made again, its output was not kept
        discard()
        gain_db = following
    raise AssertionError("unreachable: the trimmed pass is always under the ceiling")


class Analysis:
    """What the measurement pass learns of a programme: its loudness, and what the
    master's prediction of its limiter needs (per 32-sample row: peak and energy).

    Fed block by block, by the master's first pass or by whatever writes the
    programme (the mix stage); saved beside a cache object so that mastering
    it later does not read it an extra time.
    """

    def __init__(self, sr: int, channels: int, *, threads: bool = True) -> None:
        from .loudness import Meter

        self.sr, self.channels, self.frames = sr, channels, 0
        # no peaks: the predictor keeps row peaks
        self.meter = Meter(sr, channels, true_peak=False, peaks=False, threads=threads)
        self.predictor = _Predictor(sr, channels)

    @classmethod
    def of(cls, source: Stream) -> Analysis:
        """The analysis of ``source``, read once."""
        analysis = cls(source.sample_rate, source.channels)
        for block in source.blocks():
            analysis.add(block)
        return analysis

    def add(self, block: np.ndarray) -> None:
        self.meter.add(block)
        self.predictor.add(block)
        self.frames += len(block)

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What :meth:`joined` needs of this analysis of one part of a programme: its hop
        energies and its rows' peaks and energies (the part starts on a 100 ms hop and a
        row, and its meter was primed by what precedes it: :meth:`Meter.restart`)."""
        return (self.meter.hop_energies(), *self.predictor.rows())

    @classmethod
    def joined(
        cls, sr: int, channels: int, frames: int, parts: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]]
    ) -> Analysis:
        """The analysis of a programme of ``frames`` from its consecutive parts' :meth:`parts`."""
        from .loudness import Meter

        analysis = cls(sr, channels)
        analysis.meter = Meter.of_hops(sr, channels, np.concatenate([p[0] for p in parts]), frames)
        analysis.predictor.restore(
            np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])
        )
        analysis.frames = frames
        return analysis

    def to_bytes(self) -> bytes:
        """The analysis as an ``.npz`` file's bytes (about 40 MB an hour; see :meth:`load`)."""
        import io

        peaks, energy = self.predictor.rows()
        out = io.BytesIO()
        np.savez(out, hops=self.meter.hop_energies(), peaks=peaks, energy=energy,
                 shape=np.array([self.sr, self.channels, self.frames]))  # fmt: skip
        return out.getvalue()

    @classmethod
    def load(cls, path: Path) -> Analysis | None:
        """An analysis written from :meth:`to_bytes`, or None if there is none or it is unreadable
        (cut short, or damaged: reading a member checks its CRC-32), so that the programme is
        measured again instead of the build failing."""
        import zipfile

        from .loudness import Meter

        try:
            with np.load(path) as data:
                sr, channels, frames = (int(v) for v in data["shape"])
                analysis = cls(sr, channels)
                analysis.meter = Meter.of_hops(sr, channels, data["hops"], frames)
                analysis.predictor.restore(data["peaks"], data["energy"].astype(np.float32, copy=False))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        analysis.frames = frames
        return analysis


class _Predictor:
    """Predicts, from the measurement pass, the gain that lands on the target after limiting.

    Limiting takes loudness off peaky material, so the plain gain lands
    short. The measurement pass also keeps each 32-sample row's sample peak
    and energy (a few tens of megabytes an hour); the limiter's gain per row
    is then simulated for a candidate gain (as :class:`Limiter` computes it,
    from sample peaks rather than true peaks), the meter's hop energies are
    scaled by what it would take off, and the gain is refined by secant
    steps on the prediction. The real pass then usually lands within the
    tolerance, and an hour is not limited twice.
    """

    def __init__(self, sr: int, channels: int) -> None:
        self.sr = sr
        self._carry = np.zeros((0, channels), dtype=np.float32)
        self._peaks: list[np.ndarray] = []
        self._energy: list[np.ndarray] = []

    def add(self, block: np.ndarray) -> None:
        from .loudness import ROW, row_max

        x = np.concatenate([self._carry, block]) if len(self._carry) else block
        rows = len(x) // ROW
        body, self._carry = x[: rows * ROW], x[rows * ROW :].copy()
        if not rows:  # a block shorter than a row (a resampler's last few samples): carried
            return
        flat = np.ascontiguousarray(body).reshape(rows, -1)  # a row's samples over every channel
        # Short rows: one reduction over magnitudes, and float32 dot products (a prediction:
        # 1e-7 relative is plenty), each twice as fast as max/min or a float64 sum of squares.
        self._peaks.append(row_max(np.abs(flat).reshape(-1), flat.shape[1]))
        self._energy.append(np.einsum("ij,ij->i", flat, flat))

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """Every complete row's peak and energy so far (float32: 1e-7 relative is plenty for a
        prediction; an hour has 5.4 million rows)."""
        peaks, energy = _joined(self._peaks), _joined(self._energy)
        self._peaks, self._energy = [peaks], [energy]
        return peaks, energy

    def restore(self, peaks: np.ndarray, energy: np.ndarray) -> None:
        """Take rows saved by :meth:`rows` (the stream is then complete)."""
        self._peaks, self._energy = [peaks], [energy]

    def climbed(self, target: float, gain_db: float, limiter: Limiter, meter: Any) -> _Climb:
        """The climb (see :class:`_Climb`) to ``target`` through ``limiter`` on the predicted
        loudness, from the plain gain ``gain_db``; its answer is the gain to try first."""
        from .loudness import ROW

        climb = _Climb(target, gain_db)
        peaks, energy = self.rows()
        hops = len(meter.hop_energies())
        if not len(peaks) or not hops or peaks.max() * db_to_gain(gain_db) <= limiter.aim:
            climb.add(gain_db, target)  # nothing will be limited: the plain gain lands on it
            return climb
        hop_of_row = np.minimum((np.arange(len(peaks)) * ROW + ROW // 2) * 10 // self.sr, hops)
        total = np.bincount(hop_of_row, energy, minlength=hops + 1)[:hops]
        total[total <= 0] = 1.0

        def loudness(db: float) -> float:
            g = db_to_gain(db)
            lost = np.zeros(hops + 1)
            for first, gains in simulate(peaks, np.float32(g), limiter):
                rows = slice(first, first + len(gains))
                lost += np.bincount(
                    hop_of_row[rows], energy[rows] * (1.0 - gains * gains), minlength=hops + 1
                )
            kept = 1.0 - lost[:hops] / total
            kept[total == 1.0] = 1.0
            return float(meter.integrated_with(g * g * kept))

        step: float | None = gain_db
        for _ in range(_PREDICTED_STEPS):
            if step is None:
                break
            step = climb.add(step, loudness(step), tolerance=_LOUDNESS_TOLERANCE / 2)
        gain, landed = climb.answer
        if climb.target - landed > _LOUDNESS_TOLERANCE / 2 and gain > climb.fallen - _BACK_OFF_DB:
            # Out of reach under a cliff, as predicted: the real pass aims a little short of the
            # cliff, which a prediction places to within about a tenth of a dB
            gain = climb.fallen - _BACK_OFF_DB
            climb.chosen = (gain, loudness(gain))
        return climb


class _Climb:
    """The search for the gain that brings a programme to its target loudness through a limiter.

    Into a limiter, loudness rises less than the gain, and not always at
    all. As the limiter holds the loud passages down, more gain lifts the
    quiet ones (a music bed under a long pause) over BS.1770's relative gate,
    which then counts them: the integrated loudness falls by LUs at once (a
    cliff), then rises slowly again. Secant steps alone run off such a cliff
    and on to the most gain allowed, far under the target. The climb keeps a
    bracket: :attr:`lo`, the most gain tried on the rising side short of the
    target, and :attr:`hi`, the least gain tried over the target or past a
    cliff (quieter than a smaller gain was). It steps by secants inside the
    bracket, or to its middle; once the bracket is :data:`_NARROW_DB` wide,
    the target is out of reach and the loudest gain short of the cliff is
    the answer (a file a little under the target, within its tolerance,
    rather than one 4 LU under it).
    """

    def __init__(self, target: float, start: float) -> None:
        self.target, self.most = target, start + _MAX_PUSH_DB
        self.tried: list[tuple[float, float]] = []  # (gain dB, loudness LUFS), in the order tried
        self.lo, self.hi = -math.inf, math.inf
        self.fallen = math.inf  # the least gain tried past a cliff
        self.reach = math.inf  # the most loudness expected (a prediction's, under a cliff)
        self.chosen: tuple[float, float] | None = None  # an answer settled on, else the nearest

    def for_passes(self) -> _Climb:
        """A climb for the limiting passes from this one on the predicted loudness: the same
        bracket above and cliff, and, if the prediction's answer falls short of the target,
        its loudness as :attr:`reach` (a pass landing there will do)."""
        climb = _Climb(self.target, self.most - _MAX_PUSH_DB)
        climb.hi, climb.fallen = self.hi, self.fallen
        if self.target - self.answer[1] > _LOUDNESS_TOLERANCE:
            climb.reach = self.answer[1]
        return climb

    @property
    def answer(self) -> tuple[float, float]:
        """The gain tried that landed nearest the target, and where it landed."""
        return self.chosen or min(self.tried, key=lambda t: abs(self.target - t[1]))

    def add(
        self, gain: float, result: float, *, fell: bool = False, tolerance: float = _LOUDNESS_TOLERANCE
    ) -> float | None:
        """Record that ``gain`` landed at ``result`` (``fell``: known to be past a cliff); return
        the gain to try next, or None when :attr:`answer` is as near as the climb gets."""
        fell = fell or any(g < gain and r > result + _CLIFF_LU for g, r in self.tried)
        for g, r in self.tried:  # a louder result at less gain: that earlier try was past a cliff
            if g > gain and r < result - _CLIFF_LU:
                self.hi, self.fallen = min(self.hi, g), min(self.fallen, g)
        last = self.tried[-1] if self.tried else None
        self.tried.append((gain, result))
        error = self.target - result
        if abs(error) <= tolerance or (not fell and self.reach - tolerance <= result < self.target):
            return None
        if fell:
            self.fallen = min(self.fallen, gain)
        if fell or error < 0:
            self.hi = min(self.hi, gain)
        else:
            self.lo = max(self.lo, gain)
        if (
            self.hi == math.inf
            and last is not None
            and abs(result - last[1]) < tolerance / 2 < gain - last[0]
        ):
            return None  # the limiter is saturated: more gain gains nothing
        if self.hi - self.lo <= _NARROW_DB:
            return None
        # Loudness rises 0.1-1 LU a dB into a limiter: a secant on the last two tries on the
        # rising side, else the plain gain's slope
        rising = [t for t in self.tried if t[0] <= self.lo] if error > 0 else []
        slope = 1.0
        if len(rising) > 1 and rising[-1][0] != rising[-2][0]:
            (g0, r0), (g1, r1) = rising[-2], rising[-1]
            slope = min(max((r1 - r0) / (g1 - g0), 0.1), 1.0)
        step = min(gain + error / slope, self.most)
        if not self.lo < step < self.hi:
            step = (self.lo + self.hi) / 2 if math.isfinite(self.lo) else self.hi - 1.0
            step = min(step, self.most)
        return None if step == gain else step


def _joined(arrays: list[np.ndarray]) -> np.ndarray:
    """One float32 array of ``arrays`` (not copied when there is one)."""
    if len(arrays) == 1:
        return arrays[0]
    return np.concatenate(arrays) if arrays else np.zeros(0, np.float32)


def _emit(
    block: np.ndarray, trim: float, sink: Sink, meter: Any, kept: list[np.ndarray] | None = None
) -> None:
    if trim != 1.0:
        block *= np.float32(trim)
    if len(block):
        sink.write(block)
        meter.add(block)
        if kept is not None:
            kept.append(block)


def _integrated_of(meter: Any, frames: int, sr: int, source: Stream | None = None) -> float:
    """A meter's integrated loudness; a programme under one gating block reads as if looped."""
    if frames >= math.ceil(GATING_BLOCK * sr):
        return float(meter.result().integrated)
    if frames == 0:
        return -math.inf
    if source is None:
        raise AssertionError("short programmes are measured from their source")
    return short_integrated(np.concatenate(list(source.blocks())), sr)


# -- helpers --------------------------------------------------------------------


def short_integrated(y: np.ndarray, sr: int) -> float:
    """Integrated loudness of valid audio, in LUFS (``-inf`` for silence).

    A programme shorter than one 400 ms gating block is measured as if looped
    to fill one, so a short sting reads its own loudness.
    """
    from .loudness import measure as meter

    if len(y) == 0:
        return -math.inf
    block = math.ceil(GATING_BLOCK * sr)
    if len(y) < block:
        y = np.tile(y, (-(-block // len(y)), 1))[:block]
    return meter(y, sr, true_peak=False).integrated
