"""A mix's stems: kept in the cache as 24-bit FLAC, written to ``build/`` as 24-bit WAVs.

Stems are delivered at 24 bits, so a stem object needs no more than 24 bits
a sample: :func:`write_flac24` quantizes exactly as
:class:`~mixdown.codecs.wav.WavWriter` does for ``PCM_24`` (``round(x * 2**23)``,
clipped), and FLAC keeps those integers losslessly, silence in a few bytes a
block. libsndfile reads them back as ``q / 2**23`` exactly (a float32 holds
every 24-bit step), so quantizing what is read back gives the same integers
again: a stem copied from a stored one, or written to ``build/``, is bit for
bit the stored one.

The music stem is not stored: it is the mix less the others, in 24-bit
steps (:func:`remainder`), so the stems in ``build/`` add up to the mix's
24-bit steps exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

__all__ = ["FULL_SCALE", "remainder", "steps24", "write_flac24", "write_wav24_atomic"]

FULL_SCALE = 1 << 23  # a 24-bit sample's steps per unit of float audio


def steps24(block: np.ndarray) -> np.ndarray:
    """``block`` as whole 24-bit steps, int32 ``[shape=(n, channels)]``: ``round(x * 2**23)``, clipped."""
    q = np.multiply(block, np.float32(FULL_SCALE), dtype=np.float32)
    np.rint(q, out=q)
    np.clip(q, -FULL_SCALE, FULL_SCALE - 1, out=q)
    steps: np.ndarray = q.astype(np.int32)
    return steps


def write_flac24(
    path: str | os.PathLike[str], blocks: Iterable[np.ndarray], sample_rate: int, channels: int
) -> None:
    """Write float32 ``blocks`` ``[shape=(n, channels)]`` to a new 24-bit FLAC at ``path`` (quantized
    as :func:`steps24`; the caller publishes the file).

    libsndfile takes int32 samples to 24 bits by their top 24 bits, so the
    steps go in shifted up by 8: no rounding of libsndfile's own.
    """
    import soundfile as sf

    with sf.SoundFile(os.fspath(path), "w", sample_rate, channels, "PCM_24", format="FLAC") as fh:
        for block in blocks:
            fh.write(steps24(block) << 8)


def remainder(mix: Iterable[np.ndarray], *others: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The blocks of ``mix`` less those of ``others`` (blocks of the same sizes), in 24-bit steps.

    Each block is float32 ``[shape=(n, channels)]`` on the 24-bit grid: the
    mix's steps less the others' steps, clipped to 24 bits.
    """
    for blocks in zip(mix, *others, strict=True):
        q = steps24(blocks[0])
        for other in blocks[1:]:
            q -= steps24(other)
        np.clip(q, -FULL_SCALE, FULL_SCALE - 1, out=q)
        yield q.astype(np.float32) / np.float32(FULL_SCALE)


def write_wav24_atomic(
    path: str | os.PathLike[str], blocks: Iterable[np.ndarray], sample_rate: int, channels: int, frames: int
) -> None:
    """Write ``frames`` frames of float32 ``blocks`` to a 24-bit WAV at ``path``, whole or not at all
    (quantized as :func:`steps24`: a stored stem's steps go through unchanged)."""
    from ..errors import AudioError
    from ..store.files import discard, publish, temporary_beside
    from .wav import WavWriter

    fd, tmp = temporary_beside(path)
    os.close(fd)
    try:
        writer = WavWriter(tmp, sample_rate, channels, "PCM_24", frames)
        try:
            position = 0
            for block in blocks:
                writer.write_at(position, block)
                position += len(block)
            if position != frames:
                raise AudioError(f"{path}: {position:,} frames to write of {frames:,}; nothing was written")
            writer.flush()
        finally:
            writer.close()
        publish(tmp, path)
    except BaseException:
        discard(tmp)
        raise
