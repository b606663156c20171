"""One clip at the mix's rate: checked, speech-processed, levelled, resampled, gained."""

from __future__ import annotations

import math

import numpy as np

from ..errors import AudioError
from .items import MixSettings
from .signal import as_channels, db_to_gain, resample, valid_audio

__all__ = ["check_rate", "leveling_gain", "prepare", "samples"]


def leveling_gain(audio: np.ndarray, sr: int, line_lufs: float | None) -> float:
    """dB that bring a voice line to ``line_lufs``, so voices from different renderers match.

    Lines too short to measure (under 400 ms) and silent lines are left as
    they are; the voice's own ``gain_db`` still applies on top.
    """
    from .loudness import measure

    if line_lufs is None:
        return 0.0
    loudness = measure(audio, sr, true_peak=False, threads=False).integrated  # lines are made on threads
    return float(line_lufs - loudness) if math.isfinite(loudness) else 0.0


def samples(seconds: float, sr: int) -> int:
    """Convert seconds to a whole number of samples."""
    return int(round(seconds * sr))


def prepare(
    y: np.ndarray,
    sr: int,
    gain_db: float,
    settings: MixSettings,
    what: str,
    speech: bool = False,
    *,
    mono: bool = False,
) -> np.ndarray:
    """Validate ``y``, bring it to the mix rate and channels, apply ``gain_db`` (a new array).

    A voice line (``speech``) is also processed by ``settings.speech`` and
    levelled to ``settings.line_lufs`` first. With ``mono``, a mono item is
    left mono (a sum broadcasts it to the channels: half the samples to make).
    """
    y = valid_audio(y, what=what)
    check_rate(sr, what)
    if speech and settings.speech is not None:
        from .speech import process

        y = process(y, sr, settings.speech)  # at the line's own rate: often half the mix's
    if speech:
        gain_db += leveling_gain(y, sr, settings.line_lufs)
    y = resample(y, sr, settings.sample_rate) * np.float32(db_to_gain(gain_db))
    return y if mono and y.shape[1] == 1 else as_channels(y, settings.channels)


def check_rate(sr: int, what: str) -> None:
    if sr <= 0:
        raise AudioError(f"{what}: sample rate must be positive, got {sr}")
