"""Ducking: the music's gain under the voice bus, from the voice's speech activity.

:class:`Ducker` turns the voice bus's power per 10 ms frame into a gain per
sample, section by section; :func:`_slew` moves that gain at the attack and
release rates without a loop over frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..settings import DUCK_SETTINGS

if TYPE_CHECKING:
    from .items import MixSettings, Premixed, Section

__all__ = ["ducking_hop"]

_DUCK_FRAME = 0.01  # s, control period of the ducker (100 Hz)
_SPEECH_THRESHOLD_DB = -35.0  # a voice frame is speech within this of the loudest frame


def ducking_hop(sr: int) -> int:
    """Samples per ducking frame (10 ms) at ``sr``."""
    return max(1, round(sr * _DUCK_FRAME))


@dataclass(frozen=True)
class _Ducking:
    """One section's ducking: depth (dB) and times (s)."""

    duck_db: float
    duck_attack: float
    duck_release: float
    duck_hold: float


def section_ducking(sections: Sequence[Section | Premixed], settings: MixSettings) -> list[_Ducking]:
    """Each section's ducking: the settings', overridden by the section's own."""
    base = {name: float(getattr(settings, name)) for name in DUCK_SETTINGS}
    return [_Ducking(**{**base, **section.duck}) for section in sections]


class Ducker:
    """The music gain under the voice bus, from its speech activity per 10 ms frame.

    ``powers`` are the voice bus's mean powers per ``hop``-sample frame over
    the whole programme. Frames within 35 dB of the loudest are speech. Per
    section, activity is held ``duck_hold`` after speech and anticipated by
    ``duck_attack``; the gain moves linearly in dB towards ``duck_db`` while
    active (reaching it in ``duck_attack``) and back to 0 dB otherwise (in
    ``duck_release``), and is interpolated to the sample rate.
    """

    def __init__(
        self,
        powers: np.ndarray,
        sections: Sequence[Section | Premixed],
        starts: Sequence[int],
        n: int,
        hop: int,
        settings: MixSettings,
    ) -> None:
        self.hop, self.frames = hop, len(powers)
        loudest = powers.max(initial=0.0)
        active = powers > loudest * 10.0 ** (_SPEECH_THRESHOLD_DB / 10.0)  # none in silence
        rate = settings.sample_rate / hop  # control frames per second
        bounds = [0, *starts[1:], n]
        target, depth = np.zeros(len(powers)), np.zeros(len(powers))
        attack, release = np.ones(len(powers)), np.ones(len(powers))
        before = 0.0  # the depth of the section before: a section recovers from it at its own pace
        for index, ducking in enumerate(section_ducking(sections, settings)):
            back, ahead = round(ducking.duck_hold * rate), round(ducking.duck_attack * rate)
            # A section rules from `ahead` frames before it starts, so that it anticipates its own speech.
            first = max(bounds[index] // hop - (ahead if index else 0), 0)
            last = min(-(-bounds[index + 1] // hop), len(powers))
            if first >= last:
                continue
            lo, hi = max(first - back, 0), min(last + ahead, len(powers))
            held = _window_max(active[lo:hi], back=back, ahead=ahead)[first - lo : last - lo]
            target[first:last] = np.where(held, ducking.duck_db, 0.0)
            depth[first:last] = max(-ducking.duck_db, before)
            attack[first:last] = max(ducking.duck_attack * rate, 1.0)
            release[first:last] = max(ducking.duck_release * rate, 1.0)
            before = -ducking.duck_db
        db = _slew(target, depth=depth, attack=attack, release=release)
        self._gain = (10.0 ** (db / 20.0)).astype(np.float32)
        self._step = np.append(self._gain[1:], self._gain[-1:]) - self._gain

    def changed(self, other: Ducker) -> tuple[int, int] | None:
        """The stretch ``[start, stop)`` of samples outside which this ducker's gain and
        ``other``'s are the same (None: the same everywhere); past the shorter, they differ."""
        n = min(len(self._gain), len(other._gain))
        differ = np.flatnonzero(self._gain[:n] != other._gain[:n])
        if len(self._gain) != len(other._gain):
            differ = np.append(differ, [n, max(len(self._gain), len(other._gain)) - 1])
        if not len(differ):
            return None
        # a sample's gain is read from its frame's and the next frame's (the ramp between them)
        return max(int(differ[0]) - 1, 0) * self.hop, (int(differ[-1]) + 1) * self.hop

    def gain(self, start: int, stop: int) -> np.ndarray:
        """Linear gain per sample over ``[start, stop)`` (``start`` on a frame boundary)."""
        hop = self.hop
        first, last = start // hop, -(-stop // hop)
        ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
        curve = self._gain[first:last, None] + self._step[first:last, None] * ramp
        return curve.reshape(-1)[: stop - start]


def _window_max(x: np.ndarray, *, back: int, ahead: int) -> np.ndarray:
    """Return ``out[i] = max(x[i - back : i + ahead + 1])`` (zeros beyond the edges)."""
    from scipy.ndimage import maximum_filter1d

    size = back + ahead + 1
    padded = np.pad(x.astype(np.uint8), (back, ahead))
    held: np.ndarray = maximum_filter1d(padded, size, origin=-(size // 2))[: len(x)]
    return held.astype(bool)


def _slew(target: np.ndarray, *, depth: np.ndarray, attack: np.ndarray, release: np.ndarray) -> np.ndarray:
    """Follow ``target`` (dB per frame), moving in ``attack``/``release`` frames over the depth.

    A frame moves ``depth / attack`` dB down or ``depth / release`` up (at
    least ``|gain|`` over those times): full depth takes the attack and
    release times, and a section that ducks less (or not at all) still
    recovers from the section before it.

    :func:`_slew_frames` frame by frame, but computed a run of frames with
    the same settings at a time: where the step is constant the gain is a
    running sum (``np.cumsum`` adds in order, as the loop does: the same
    values to the bit) held at the target once it gets there; frames
    deeper than the depth (recovering from a deeper section) go one by one.
    """
    n = len(target)
    out = np.empty(n)
    if not n:
        return out
    params = np.stack([target, depth, attack, release])
    starts: list[int] = np.flatnonzero(np.r_[True, (params[:, 1:] != params[:, :-1]).any(axis=0)]).tolist()
    gain = 0.0
    for first, last in zip(starts, [*starts[1:], n], strict=True):
        value, full, fall, rise = params[:, first].tolist()
        i = first
        while i < last:
            if gain < -full:  # deeper than the depth: the span follows the gain, frame by frame
                out[i] = gain = _slew_frames([value], [full], [fall], [rise], gain)[0]
                i += 1
                continue
            if gain == value:  # there: it stays
                out[i:last] = gain
                break
            falling = value < gain
            path = np.cumsum(np.r_[gain, np.full(last - i, -full / fall if falling else full / rise)])[1:]
            (np.maximum if falling else np.minimum)(path, value, out=path)
            deep = np.flatnonzero(path < -full)  # a target past the depth: frames from there on
            stop = i + (int(deep[0]) + 1 if len(deep) else len(path))
            out[i:stop] = path[: stop - i]
            gain, i = float(out[stop - 1]), stop
    return out


def _slew_frames(
    target: Sequence[float],
    depth: Sequence[float],
    attack: Sequence[float],
    release: Sequence[float],
    gain: float,
) -> list[float]:
    """The slew of :func:`_slew` frame by frame, from ``gain``."""
    out = []
    for value, full, fall, rise in zip(target, depth, attack, release, strict=True):
        span = max(full, -gain)
        gain = max(value, gain - span / fall) if value < gain else min(value, gain + span / rise)
        out.append(gain)
    return out
