"""A section's pre-mix: its speech and SFX laid out on their own, as the mix lays them out.

:class:`Premix` places one :class:`~mixdown.dsp.items.Section` from sample 0
with the mixer's own code (:func:`~mixdown.dsp.mixer.layout_section`), so
that its clips are made exactly as the mix makes them (speech processing,
levelling, resampling, gains), and sums them block by block into a voice
bus and an SFX bus. Nothing is held whole: a section may be an hour long.

Positions
---------
Sample 0 of a pre-mix is :attr:`Premix.pre` samples before the section's
start: a cue with a negative offset may start before its section (the mix
places it there too, unless that is before the programme's start).
:attr:`Premix.length` is the section's own duration, where the next item
would go (what the mix's layout advances by); the pre-mix runs on to the
end of its last clip, so it holds
``pre + max(length, end of the last clip)`` frames. Placed at the
section's start minus ``pre``, its buses add, sample for sample, to the
mix's voice and SFX buses.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from .items import MixSettings, Placed, Section
from .mixer import Placement, layout_section
from .rendering import Bus
from .signal import BLOCK

__all__ = ["Premix", "PremixBlock"]


class PremixBlock(NamedTuple):
    """One block of a pre-mix: where it starts, and its voice and SFX buses (None without SFX)."""

    position: int
    voice: np.ndarray  # [shape=(n, voice_channels)]
    sfx: np.ndarray | None  # [shape=(n, channels)]


class Premix:
    """One section laid out on its own (see the module docs), ready to be summed in blocks.

    Parameters
    ----------
    section : Section
        Its items; its ``music``, ``at`` and ``duck`` act in the mix, not here.
    settings : MixSettings
        The mix's settings: its rate, channels, ``line_gap`` and voice processing.
    where : str
        Names the section in messages (its target).

    Attributes
    ----------
    pre : int
        Samples before the section's start that its earliest clip reaches (>= 0).
    length : int
        The section's own duration in samples.
    frames : int
        ``pre + max(length, end of its last clip)``.
    voice_channels : int
        1 when every voice line is mono (they are added to each channel of the mix), else
        ``settings.channels``.
    has_sfx : bool
        Whether any SFX sounds in it (no SFX bus otherwise).
    """

    def __init__(self, section: Section, settings: MixSettings, *, where: str = "section") -> None:
        placement = Placement()
        self.length = layout_section(placement, section, 0, settings, where, floor=None)
        clips = [clip for clip in placement.voice + placement.sfx if clip.length > 0]
        self.pre = max(0, -min((clip.start for clip in clips), default=0))
        self.frames = self.pre + max(self.length, max((clip.end for clip in clips), default=0))
        self.settings = settings
        self.voice_channels = 1 if all(clip.mono for clip in placement.voice) else settings.channels
        self.has_sfx = any(clip.length > 0 for clip in placement.sfx)
        self._voice = [_shifted(clip, self.pre) for clip in placement.voice]
        self._sfx = [_shifted(clip, self.pre) for clip in placement.sfx]

    def extents(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Where each voice clip and each SFX clip sounds, ``(start, stop)`` from sample 0, in the
        order the layout placed them: lines in order; each line's cues, or a sting, in order."""
        return [(c.start, c.end) for c in self._voice], [(c.start, c.end) for c in self._sfx]

    def blocks(
        self, size: int = BLOCK, *, threads: int = 1, start: int = 0, stop: int | None = None
    ) -> Iterator[PremixBlock]:
        """Yield the buses in consecutive blocks of ``size`` frames over ``[start, stop)`` (by
        default all of it; the last block may be shorter).

        With ``threads`` > 1, clips are made ahead on that many threads
        (see :class:`~mixdown.dsp.rendering.Bus`); the samples are the same,
        and the same whatever the range: only the clips that sound in it are made.
        """
        sr, channels = self.settings.sample_rate, self.settings.channels
        stop = self.frames if stop is None else stop
        pool = (
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mixdown-premix")
            if threads > 1
            else None
        )

        def sounding(clips: list[Placed]) -> list[Placed]:
            return [clip for clip in clips if clip.start < stop and clip.end > start]

        try:
            voice = Bus(sounding(self._voice), self.voice_channels, pool, sr)
            sfx = Bus(sounding(self._sfx), channels, pool, sr) if self.has_sfx else None
            for first in range(start, stop, size):
                last = min(first + size, stop)
                yield PremixBlock(first, voice.render(first, last), sfx.render(first, last) if sfx else None)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)


def _shifted(clip: Placed, by: int) -> Placed:
    """``clip`` placed ``by`` samples later."""
    return Placed(clip.start + by, clip.length, clip.make, clip.mono)
