"""Audio conventions and small helpers shared by every stage.

One convention everywhere: audio is a float32 ``np.ndarray`` of
``[shape=(n, channels)]`` with samples in [-1, 1] at an explicit ``sr``.
Mono is ``(n, 1)``, never ``(n,)``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from .errors import AudioError

__all__ = [
    "as_channels",
    "db_to_gain",
    "read_audio",
    "resample",
    "valid_audio",
    "write_audio_atomic",
]


def valid_audio(y: np.ndarray, *, what: str = "audio") -> np.ndarray:
    """Check ``y`` is finite float audio of ``[shape=(n, channels)]``.

    Returns ``y`` as contiguous float32; raises :class:`AudioError` naming
    ``what`` and the offending shape or dtype otherwise.
    """
    if not isinstance(y, np.ndarray) or y.ndim != 2 or y.shape[1] < 1:
        shape = getattr(y, "shape", type(y).__name__)
        raise AudioError(f"{what}: expected an array of shape (n, channels), got {shape}")
    if not np.issubdtype(y.dtype, np.floating):
        raise AudioError(f"{what}: expected float samples, got {y.dtype}")
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not np.isfinite(y).all():
        raise AudioError(f"{what}: contains NaN or infinite samples")
    return y


def db_to_gain(db: float) -> float:
    """Convert decibels to a linear amplitude factor."""
    return float(10.0 ** (db / 20.0))


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
    ~0.91 of Nyquist): about five times faster than scipy's polyphase
    ``resample_poly`` on short voice lines, with no filter to design per call.
    The output has ``round(n * target_sr / sr)`` samples.
    """
    if sr == target_sr or len(y) == 0:
        return y
    import soxr

    out = soxr.resample(np.ascontiguousarray(y, dtype=np.float32), int(sr), int(target_sr), quality="HQ")
    return np.ascontiguousarray(out.reshape(-1, y.shape[1]), dtype=np.float32)


def read_audio(path: str | os.PathLike[str]) -> tuple[np.ndarray, int]:
    """Read any file libsndfile decodes; returns float32 ``(n, channels)`` and its rate."""
    import soundfile as sf

    try:
        y, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(f"{path}: cannot read audio ({err}); use WAV, FLAC, OGG or MP3") from None
    return y, int(sr)


def write_audio_atomic(
    path: str | os.PathLike[str],
    y: np.ndarray,
    sr: int,
    *,
    format: str = "WAV",
    subtype: str | None = None,
) -> None:
    """Write ``y`` to ``path`` so that readers never see a half-written file.

    The audio goes to a temporary file in the same directory, is flushed to
    disk, and is renamed over ``path`` in one step.
    """
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            sf.write(fh, y, sr, format=format, subtype=subtype)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
