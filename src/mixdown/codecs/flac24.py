"""Cache objects as 24-bit FLAC: mixes, section pre-mixes and masters in under a third of a float copy.

A float32 WAV is the fastest object to write and read (a memory map, a copy
in the kernel), and the largest: a 14-minute stereo mix at 48 kHz is 300
MiB, and a show with variants keeps one per listener. A compact object holds
the same audio as whole 24-bit steps of ``scale / 2**23`` (:func:`steps24`)
losslessly compressed: about 30% of the float file for programme audio, a few
bytes a block for silence.

``scale`` is a power of two, so quantizing and reading back are exact in
float32: a sample read back is ``q * scale / 2**23`` for the integer ``q``
stored, and quantizing it again gives ``q`` again. An object copied in part
from a compact one (a spliced mix) therefore holds, outside what changed,
exactly its parent's samples. A mix is not normalised before mastering, so
mixes and pre-mixes use :data:`HEADROOM` (4: +12 dBFS, steps of 2**-21,
quantization noise near -137 dBFS); what goes beyond it is clipped, and
:func:`write_flac24` returns the peak so that the writer can say so.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np

__all__ = ["FULL_SCALE", "HEADROOM", "MAX_CHANNELS", "quantize", "quantized", "steps24", "write_flac24"]

FULL_SCALE = 1 << 23  # a 24-bit sample's steps per unit of float audio (at scale 1)
HEADROOM = 4.0  # the scale of a compact mix or pre-mix: peaks up to +12 dBFS kept
MAX_CHANNELS = 8  # FLAC's limit: an object with more channels stays a float WAV


def steps24(block: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``block`` as whole 24-bit steps of ``scale / 2**23``, int32 ``[shape=(n, channels)]``:
    ``round(x / scale * 2**23)``, clipped."""
    q = np.multiply(block, np.float32(FULL_SCALE / scale), dtype=np.float32)
    steps: np.ndarray = _rounded(q).astype(np.int32)
    return steps


def _rounded(q: np.ndarray) -> np.ndarray:
    """``q`` (float32, in steps) rounded to whole steps and clipped to 24 bits, in place."""
    np.rint(q, out=q)
    np.clip(q, -FULL_SCALE, FULL_SCALE - 1, out=q)
    return q


def quantized(block: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """``block`` as a compact object of ``scale`` reads it back: its :func:`steps24`, as float32."""
    out: np.ndarray = steps24(block, scale).astype(np.float32) * np.float32(scale / FULL_SCALE)
    return out


def quantize(samples: np.ndarray, scale: float = 1.0) -> float:
    """Make float32 ``samples`` what a compact object of ``scale`` reads back as, in place: the
    same values as :func:`quantized` gives, without a copy; return their largest magnitude
    before (beyond ``scale``, they were clipped)."""
    peak = max(float(samples.max()), -float(samples.min())) if samples.size else 0.0
    np.multiply(samples, np.float32(FULL_SCALE / scale), out=samples)
    np.multiply(_rounded(samples), np.float32(scale / FULL_SCALE), out=samples)
    return peak


def write_flac24(
    path: str | os.PathLike[str],
    blocks: Iterable[np.ndarray],
    sample_rate: int,
    channels: int,
    *,
    scale: float = 1.0,
    into: np.ndarray | None = None,
) -> float:
    """Write float32 ``blocks`` ``[shape=(n, channels)]`` to a new 24-bit FLAC at ``path`` as steps
    of ``scale / 2**23`` (:func:`steps24`; the caller publishes the file); return the
    largest magnitude written (beyond ``scale``, samples were clipped). ``into``, a float32
    array as long as the blocks, receives the samples the file reads back as, bit for bit
    (:func:`quantized`).

    libsndfile takes int32 samples to 24 bits by their top 24 bits, so the
    steps go in shifted up by 8: no rounding of libsndfile's own. Level 5
    (libsndfile's 0.5) compresses programme audio nearly as well as level 8
    at five times the speed.
    """
    import soundfile as sf

    peak, at, step = 0.0, 0, np.float32(scale / FULL_SCALE)
    with sf.SoundFile(
        os.fspath(path), "w", sample_rate, channels, "PCM_24", format="FLAC", compression_level=0.5
    ) as fh:
        for block in blocks:
            if len(block):
                peak = max(peak, float(np.max(np.abs(block))))
            steps = steps24(block, scale)
            if into is not None:
                np.multiply(steps, step, out=into[at : at + len(steps)], dtype=np.float32)
                at += len(steps)
            fh.write(steps << 8)
    return peak
