"""Gain followers shared by the limiter and the speech compressor.

Both reduce gain at once and let it recover exponentially; the follower is
a running maximum in the log domain, so it runs without a Python loop.
"""

from __future__ import annotations

import numpy as np

__all__ = ["follow_release"]


def follow_release(reduction: np.ndarray, tau: float, state: float = 0.0) -> np.ndarray:
    """An instant-attack, exponential-release follower of gain reduction (dB, >= 0).

    ``r[i] = max(d[i], r[i - 1] * exp(-1 / tau))`` from ``r[-1] = state``,
    i.e. ``r[i] = max_{j<=i} d[j] * exp(-(i - j) / tau)``, computed without a
    loop as a running maximum in the log domain. ``tau`` is in samples (or
    rows: whatever ``reduction`` is indexed by). The limiter and the speech
    compressor both release their gain this way.
    """
    values = np.empty(len(reduction) + 1)
    values[0], values[1:] = state, reduction
    with np.errstate(divide="ignore"):
        log_reduction = np.log(values)  # -inf where there is none
    t = np.arange(-1, len(reduction)) / tau
    log_reduction += t
    np.maximum.accumulate(log_reduction, out=log_reduction)
    log_reduction -= t
    released: np.ndarray = np.exp(log_reduction[1:])
    return released
