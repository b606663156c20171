"""A mix's stems, written to ``build/`` as 24-bit WAVs that add up to the mix exactly.

No stem is kept in the cache: the voice and SFX stems are the mix's voice and
SFX buses, made again from the section pre-mixes the mix was made from
(:meth:`mixdown.dsp.mixer.Mix.bus_blocks`: placed clips summed, no ducking to
work out), and the music stem is the mix less them, in 24-bit steps
(:func:`music`). Each is quantized as :class:`~mixdown.codecs.wav.WavWriter`
does for ``PCM_24`` (:func:`~mixdown.codecs.flac24.steps24`), so the stems in
``build/`` add up to the mix's 24-bit steps exactly.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .flac24 import FULL_SCALE, steps24

__all__ = ["music", "write_stems_atomic"]


def music(mix: np.ndarray, voice: np.ndarray, sfx: np.ndarray) -> np.ndarray:
    """The music stem of a block: ``mix`` less ``voice`` and ``sfx`` (blocks of one shape), in
    24-bit steps, as float32 ``[shape=(n, channels)]`` on the 24-bit grid (clipped to 24 bits)."""
    q = steps24(mix)
    q -= steps24(voice)
    q -= steps24(sfx)
    np.clip(q, -FULL_SCALE, FULL_SCALE - 1, out=q)
    out: np.ndarray = q.astype(np.float32) / np.float32(FULL_SCALE)
    return out


def write_stems_atomic(
    paths: Mapping[str, Path],
    buses: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    sample_rate: int,
    channels: int,
    frames: int,
) -> None:
    """Write the stems named in ``paths`` (``voice``, ``sfx``, ``music`` -> path) as 24-bit WAVs in
    one pass over ``buses`` (blocks of the mix, its voice bus and its SFX bus), each whole or
    not at all. The music stem is :func:`music`; every stem is quantized as :func:`steps24`."""
    from ..errors import AudioError
    from ..store.files import discard, publish, temporary_beside
    from .wav import WavWriter

    made: dict[str, tuple[str, WavWriter]] = {}
    try:
        for name, path in paths.items():
            fd, tmp = temporary_beside(path)
            os.close(fd)
            made[name] = (tmp, WavWriter(tmp, sample_rate, channels, "PCM_24", frames))
        position = 0
        for mix, voice, sfx in buses:
            blocks = {"voice": voice, "sfx": sfx}
            if "music" in made:
                blocks["music"] = music(mix, voice, sfx)
            for name, (_, writer) in made.items():
                writer.write_at(position, blocks[name])
            position += len(mix)
        if position != frames:
            raise AudioError(
                f"{next(iter(paths.values()))}: {position:,} frames of {frames:,}; nothing was written"
            )
        for _, writer in made.values():
            writer.flush()
            writer.close()
        for name, (tmp, _) in made.items():
            publish(tmp, paths[name])
    except BaseException:
        for tmp, writer in made.values():
            writer.close()
            discard(tmp)
        raise
