"""Audio conventions and the small array helpers every stage shares.

One convention everywhere: audio is a float32 ``np.ndarray`` of
``[shape=(n, channels)]`` with samples in [-1, 1] at an explicit ``sr``.
Mono is ``(n, 1)``, never ``(n,)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Protocol

import numpy as np

from ..errors import AudioError

BLOCK = 1 << 18  # frames per block when a stage streams (5.5 s at 48 kHz, 2 MiB in stereo float32)

__all__ = [
    "BLOCK",
    "Stream",
    "as_channels",
    "check_audio_shape",
    "db_to_gain",
    "gain_frames",
    "gain_to_db",
    "resample",
    "valid_audio",
]


def valid_audio(y: np.ndarray, *, what: str = "audio") -> np.ndarray:
    """Check ``y`` is finite float audio of ``[shape=(n, channels)]``.

    Returns ``y`` as contiguous float32; raises :class:`AudioError` naming
    ``what`` and the offending shape or dtype otherwise.
    """
    check_audio_shape(y, what=what)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise AudioError(f"{what}: contains NaN or infinite samples")
    return y


def check_audio_shape(y: np.ndarray, *, what: str = "audio", channels: int | None = None) -> None:
    """Check ``y`` is a float array of ``[shape=(n, channels)]`` (any channels >= 1 when ``None``).

    Raises :class:`AudioError` naming ``what`` and the offending shape or
    dtype. Unlike :func:`valid_audio` it reads no sample: a streaming stage
    checks each block this way and the samples where it already visits them.
    """
    if (
        not isinstance(y, np.ndarray)
        or y.ndim != 2
        or (y.shape[1] < 1 if channels is None else y.shape[1] != channels)
    ):
        shape = getattr(y, "shape", type(y).__name__)
        want = "channels" if channels is None else channels
        raise AudioError(f"{what}: expected an array of shape (n, {want}), got {shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise AudioError(f"{what}: expected float samples, got {y.dtype}")


def gain_frames(x: np.ndarray, gain: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``x * gain[:, None]``: each frame of ``x`` ``[shape=(n, channels)]`` times its gain.

    A channel at a time: numpy broadcasts a column over a row of two
    channels several times slower than it multiplies two strided
    columns (the same products). ``out`` may be ``x``.
    """
    if out is None:
        out = np.empty(x.shape, dtype=np.result_type(x, gain))
    for c in range(x.shape[1]):
        np.multiply(x[:, c], gain, out=out[:, c])
    return out


def db_to_gain(db: float) -> float:
    """Convert decibels to a linear amplitude factor."""
    return float(10.0 ** (db / 20.0))


def gain_to_db(gain: float) -> float:
    """Convert a linear amplitude to decibels (``-inf`` for 0)."""
    return 20.0 * math.log10(gain) if gain > 0 else -math.inf


def as_channels(y: np.ndarray, channels: int) -> np.ndarray:
    """Return ``y`` with ``channels`` channels: mono is copied, stereo is averaged down."""
    have = y.shape[1]
    if have == channels:
        return y
    if have == 1:
        return np.repeat(y, channels, axis=1)
    if channels == 1:
        mono: np.ndarray = y.mean(axis=1, keepdims=True, dtype=np.float32)
        return mono
    raise AudioError(f"cannot map {have} channels to {channels}; use mono or matching channels")


def resample(y: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Resample ``y`` ``[shape=(n, channels)]`` from ``sr`` to ``target_sr``.

    Uses libsoxr at its high-quality setting (linear phase, passband to
    ~0.91 of Nyquist): faster than scipy's polyphase ``resample_poly`` on
    short voice lines, with no filter to design per call.
    The output has ``round(n * target_sr / sr)`` samples.
    """
    if sr == target_sr or len(y) == 0:
        return y
    import soxr

    out = soxr.resample(np.ascontiguousarray(y, dtype=np.float32), int(sr), int(target_sr), quality="HQ")
    return np.ascontiguousarray(out.reshape(-1, y.shape[1]), dtype=np.float32)


class Stream(Protocol):
    """Audio read in blocks, as often as needed: what the streaming stages take."""

    sample_rate: int
    channels: int
    frames: int

    def blocks(self, size: int = BLOCK) -> Iterator[np.ndarray]:
        """Yield float32 blocks ``[shape=(<= size, channels)]`` from the start."""
        ...
