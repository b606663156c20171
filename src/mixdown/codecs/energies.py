"""A part of a parted master's hop energies, from the mix's (see :class:`Energies`).

Used by :class:`mixdown.codecs.parts.ParallelPasses`: most of a master's
K-weighting is the mix stage's, already done.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["Energies"]


class Energies:
    """A part's hop energies (as :class:`~mixdown.dsp.loudness.PartMeter` reads them), from the mix's.

    Where the limiter leaves the signal alone, the master is the mix times
    the pass's gain, and K-weighting is linear: a hop's energy there is the
    mix's (the mix stage measured it) times the gain squared. Only the hops
    the limiter touched, and the hop after each (where the K-weighting's
    memory of them dies away: its response falls by 1e-11 in 100 ms), are
    K-weighted from the output as it is made, each run of them primed by the
    hop before it. In the longform benchmark's hour of speech and music,
    mastered to -16 LUFS, that leaves 42 % of the hops to the mix's figures.

    A hop is settled once the output has passed its end (every row that can
    mark it has been seen); the output kept between chunks is the hop before
    the first unsettled one and what follows it, a hop or two.

    ``mix_hops`` are the mix's hop energies (``sr`` a multiple of 10 Hz), the
    part ``n`` samples from ``start`` after a ``lead``-sample lead-in, and
    ``gain`` the pass's gain and trim; feed it the output with :meth:`take`.
    """

    def __init__(
        self, mix_hops: np.ndarray, sr: int, channels: int, start: int, lead: int, n: int, gain: float
    ) -> None:
        self.sr, self.channels, self.lead = sr, channels, lead
        self.hop = sr // 10
        first, self.count = start // self.hop, n // self.hop
        self.hops = mix_hops[first : first + self.count] * (gain * gain)
        self.dirty = np.zeros(self.count, dtype=bool)
        self.settled = 0  # hops [0, settled) have their energies
        # the output kept from the last chunk: the samples just before the next one
        self.kept = np.zeros((0, self.channels), np.float32)
        self._run: Any = None  # the meter of a run of touched hops still open, and where it started
        self._run_start = 0

    def take(self, y: np.ndarray, at: int, touched: np.ndarray) -> None:
        """Take output ``y`` (from output sample ``at``, counted from the lead-in's start;
        ``touched``: per row of it, whether the limiter changed it)."""
        from ..dsp.loudness import ROW

        hop, p0 = self.hop, at - self.lead  # where y starts in the part
        rows = np.flatnonzero(touched[: -(-len(y) // ROW)])
        if len(rows):
            first = p0 + rows * ROW  # the rows' first samples, in the part
            hops = np.concatenate([first // hop, (first + ROW - 1) // hop + 1, first // hop + 1])
            self.dirty[hops[(hops >= 0) & (hops < self.count)]] = True
        end = p0 + len(y)
        upto = min(self.count, max(0, end) // hop)
        if upto > self.settled:
            self._settle(upto, y, p0)
        keep = min(end, max((self.settled - 1) * hop, -hop, p0 - len(self.kept)))
        self.kept = self._span(keep, end, y, p0).copy()

    def _span(self, a: int, b: int, y: np.ndarray, p0: int) -> np.ndarray:
        """Samples ``[a, b)`` of the part, from what was kept and the chunk ``y`` at ``p0``."""
        if a >= p0:
            return y[a - p0 : b - p0]
        kept_from = p0 - len(self.kept)
        if a < kept_from:
            raise AssertionError("a run of touched hops reaches back past the output kept")
        return np.concatenate([self.kept[a - kept_from : b - kept_from], y[: max(0, b - p0)]])

    def _settle(self, upto: int, y: np.ndarray, p0: int) -> None:
        """Give hops ``[settled, upto)`` their energies: K-weight the runs of touched ones."""
        from ..dsp.loudness import Meter

        hop, base = self.hop, self.settled
        dirty = self.dirty[base:upto]
        if self._run is not None and not dirty[0]:
            self._close(base)  # the open run ended with the last stretch
        edges = np.flatnonzero(np.diff(np.concatenate([[False], dirty, [False]]).astype(np.int8))) + base
        for a, b in zip(edges[::2], edges[1::2], strict=True):  # runs [a, b) of touched hops
            if self._run is None:  # a new run, primed by the hop before it (none before the programme)
                self._run = Meter(self.sr, self.channels, true_peak=False, threads=False, peaks=False)
                self._run_start = a
                if a > 0 or self.lead >= hop:
                    self._run.add(self._span((a - 1) * hop, a * hop, y, p0))
                    self._run.restart()
            self._run.add(self._span(a * hop, b * hop, y, p0))
            if b < upto:
                self._close(b)
        self.settled = upto

    def _close(self, stop: int) -> None:
        """End the open run at hop ``stop``: its hops' energies are the meter's."""
        assert self._run is not None
        energies = self._run.hop_energies()
        self.hops[self._run_start : stop] = energies[: stop - self._run_start]
        self._run = None

    def result(self) -> np.ndarray:
        """The part's hop energies."""
        if self.settled < self.count:
            raise AssertionError("a part's output stopped before its last hop")
        if self._run is not None:
            self._close(self.count)
        return self.hops
