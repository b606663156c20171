"""The synth's instruments: band-limited oscillators, envelopes, shaped noise,
filters, a convolution reverb, and the plucked, bell and pad voices its
SFX and music presets are made of. Arrays are float32 at :data:`SR`,
channels first while they are built.

scipy is imported where it is used, not with the module: a show names the
synth renderer, so loading any such show imported scipy.signal (about half
a second, before the first task could start) only to check its settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import cache, lru_cache
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["SR", "Rng"]

SR = 48000
_TBITS, _F32 = 14, np.float32
_TN = 1 << _TBITS
Rng = np.random.Generator


def hz(midi: float) -> float:
    return float(440.0 * 2.0 ** ((midi - 69.0) / 12.0))


@cache
def table(harmonics: int, tilt: float) -> np.ndarray:
    """One cycle of ``sum_k sin(k x) / k**tilt`` with peak 1 (read-only)."""
    k = np.arange(1, harmonics + 1)[:, None]
    w: np.ndarray = (np.sin(k * np.arange(_TN)[None, :] * (2 * np.pi / _TN)) / k**tilt).sum(0)
    w = (w / np.abs(w).max()).astype(_F32)
    w.setflags(write=False)
    return w


def wave(cycles: np.ndarray, fmax: float, harmonics: int = 1, tilt: float = 1.0) -> np.ndarray:
    """Look up phases ``cycles`` (int64 in 1/2**32 cycle, or float64 cycles) in a
    wavetable keeping partials of a tone up to ``fmax`` Hz below 0.45 * SR."""
    if cycles.dtype != np.int64:
        cycles = (cycles * 2.0**32).astype(np.int64)
    cycles >>= 32 - _TBITS
    cycles &= _TN - 1
    out: np.ndarray = table(int(np.clip(0.45 * SR / max(fmax, 1.0), 1, harmonics)), float(tilt))[cycles]
    return out


def osc(freq: float, n: int, harmonics: int = 1, tilt: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Constant-frequency band-limited oscillator (an exact integer phase accumulator)."""
    acc = np.arange(n, dtype=np.int64) * round(freq / SR * 2**32) + int(phase % 1 * 2**32)
    return wave(acc, freq, harmonics, tilt)


def ramp(m: int) -> np.ndarray:
    """``m`` samples rising from 0 towards 1 along sin**2."""
    return np.sin(np.linspace(0, np.pi / 2, m, endpoint=False, dtype=_F32)) ** 2


def env(n: int, attack: float, hold: float, release: float) -> np.ndarray:
    """Raised-cosine attack, sustain until ``hold`` seconds, raised-cosine release."""
    e = np.ones(n, _F32)
    a, h, r = min(n, int(attack * SR)), min(n, int(hold * SR)), max(1, int(release * SR))
    e[:a] = ramp(a)
    e[h : h + r] *= 1 - ramp(r + 1)[1:][: n - h]
    e[h + r :] = 0
    return e


def decay(n: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Exponential decay with time constant ``tau`` seconds after a short attack."""
    e: np.ndarray = np.exp(np.arange(n, dtype=_F32) * _F32(-1 / (tau * SR)))
    a = min(n, int(attack * SR))
    e[:a] *= ramp(a)
    return e


def fade(y: np.ndarray, fade_in: float, fade_out: float) -> np.ndarray:
    """Raised-cosine fades of ``(n, c)`` audio in place; the end samples become 0."""
    for secs, view in ((fade_in, y), (fade_out, y[::-1])):
        if secs > 0:
            m = min(len(y), max(2, int(secs * SR)))
            view[:m] *= ramp(m)[:, None]
    return y


def pan(x: np.ndarray, pos: Any) -> np.ndarray:
    """Equal-power pan of mono ``x`` to ``(n, 2)``; ``pos`` in [-1, 1], 0 is centre."""
    a = (np.asarray(pos, dtype=_F32) + 1) * _F32(np.pi / 4)
    return np.stack([x * np.cos(a), x * np.sin(a)], axis=1) * _F32(math.sqrt(2))


def place(buf: np.ndarray, start: float, sig: np.ndarray) -> None:
    """Add ``sig`` into ``buf`` from sample ``start``, clipped at the end."""
    s = int(round(start))
    m = min(len(sig), len(buf) - s)
    if m > 0:
        buf[s : s + m] += sig[:m]


def noise(rng: Rng, shape: Any) -> np.ndarray:
    """Uniform white noise in [-0.5, 0.5), float32."""
    x: np.ndarray = rng.random(shape, dtype=_F32)
    x -= _F32(0.5)
    return x


def tick_noise(rng: Rng, n: int) -> np.ndarray:
    """Bright noise without DC or Nyquist energy (it peaks near 12 kHz)."""
    return np.convolve(noise(rng, n + 3), np.array([1, 1, -1, -1], _F32), "valid")


def shaped_noise(rng: Rng, n: int, gain: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Mono white noise through a time-varying magnitude response.

    ``gain(freqs, times)`` gives ``(len(times), len(freqs))`` gains for STFT
    frames (up to 1024 samples, sqrt-Hann, 50 % overlap: unit gain is transparent).
    """
    nper = 2 ** int(np.clip(math.log2(n / 8), 6, 10))
    hop = nper // 2
    win = np.sqrt(np.hanning(nper + 1)[:-1]).astype(_F32)
    frames = sliding_window_view(noise(rng, n + 2 * nper), nper)[::hop] * win
    times = ((np.arange(len(frames)) * hop + nper / 2 - hop) / SR).astype(_F32)
    import scipy.fft as sfft

    spec = sfft.rfft(frames, axis=1)
    spec *= gain(np.fft.rfftfreq(nper, 1 / SR).astype(_F32), times)
    out = sfft.irfft(spec, nper, axis=1) * win
    ola = np.zeros((len(frames) + 1, hop), _F32)
    ola[:-1] += out[:, :hop]
    ola[1:] += out[:, hop:]
    return ola.ravel()[hop : hop + n]


@lru_cache(maxsize=8)
def sos(kind: str, cutoff: float | tuple[float, float], order: int = 2) -> np.ndarray:
    """Second-order sections of a Butterworth ``kind`` filter at :data:`SR`, as float32."""
    from scipy.signal import butter

    sections: np.ndarray = butter(order, cutoff, kind, fs=SR, output="sos")
    return sections.astype(_F32)


def filtered(
    x: np.ndarray, kind: str, cutoff: float | tuple[float, float], order: int = 2, *, axis: int
) -> np.ndarray:
    """``x`` through the Butterworth filter :func:`sos` designs, along ``axis``."""
    from scipy.signal import sosfilt

    y: np.ndarray = sosfilt(sos(kind, cutoff, order), x, axis=axis)
    return y


@lru_cache(maxsize=4)
def ir_spectrum(t60: float, nfft: int) -> np.ndarray:
    """Spectrum of a stereo reverb impulse: decorrelated decaying noise, unit energy."""
    import scipy.fft as sfft

    t = np.arange(int(t60 * SR)) / SR
    ir = np.random.default_rng(1234).standard_normal((len(t), 2)) * np.exp(-6.9 * t / t60)[:, None]
    ir = filtered(ir, "lowpass", 4500.0, 1, axis=0) * np.clip((t - 0.012) / 0.004, 0, 1)[:, None]
    spec: np.ndarray = sfft.rfft((ir / np.sqrt((ir**2).sum(0))).astype(_F32), nfft, axis=0)
    spec.setflags(write=False)
    return spec


def reverb(dry: np.ndarray, t60: float, mix: float) -> np.ndarray:
    """Dry plus ``mix`` times a stereo reverb of the mono sum; longer by the tail."""
    import scipy.fft as sfft

    total = len(dry) + int(t60 * SR) - 1
    nfft = sfft.next_fast_len(total, real=True)
    send = sfft.rfft(dry[:, 0] + dry[:, 1], nfft)[:, None] * _F32(mix / 2)
    wet: np.ndarray = sfft.irfft(send * ir_spectrum(t60, nfft), nfft, axis=0)[:total]
    wet[: len(dry)] += dry
    return wet


def wrap(y: np.ndarray, n: int) -> np.ndarray:
    """Fold ``y`` onto its first ``n`` samples (overlap-add), so that it loops."""
    padded = np.zeros((-(-len(y) // n) * n, y.shape[1]), y.dtype)
    padded[: len(y)] = y
    folded: np.ndarray = padded.reshape(-1, n, y.shape[1]).sum(axis=0)
    return folded


def pluck(note: float, n: int, ring: float = 0.35) -> np.ndarray:
    """A plucked tone: a bright fast-decaying layer over a mellow slower one (``ring`` s)."""
    f = hz(note)
    y = osc(f, n, 14, 1.1) * decay(n, ring * 0.22) + 0.7 * osc(f, n, 4, 1.6) * decay(n, ring)
    return fade(y[:, None], 0, 0.05)[:, 0]


def bell(rng: Rng, note: float, t60: float) -> np.ndarray:
    """Bell partials (1, 2.756, 5.404) decaying exponentially, slightly wide; ``(m, 2)``."""
    out = np.zeros((int(1.3 * t60 * SR), 2), _F32)
    spread = rng.uniform(0.0004, 0.001)
    for ratio, amp, life in ((1.0, 1.0, 1.0), (2.756, 0.35, 0.5), (5.404, 0.15, 0.28)):
        f, m, ph = hz(note) * ratio, int(1.3 * t60 * life * SR), rng.random()
        if f * (1 + spread) < 0.45 * SR:
            shape = decay(m, t60 * life / 6.9, 0.0015) * _F32(amp)
            out[:m, 0] += osc(f, m, phase=ph) * shape
            out[:m, 1] += osc(f * (1 + spread), m, phase=ph) * shape
    return out


def pad(
    rng: Rng,
    notes: list[float],
    bass: float,
    dur: float,
    attack: float,
    release: float,
    level: tuple[float, float],
) -> np.ndarray:
    """A soft pad chord (left and right voices detuned apart) over a bass; ``(m, 2)``."""
    m = int((dur + release) * SR)
    shape, sub = env(m, attack, dur, release), _F32(level[1]) * osc(hz(bass), m, 3, 2.2)
    chans = []
    for cents in (-7.0, 7.0):
        acc = np.zeros(m, _F32)
        for note in notes:
            acc += osc(hz(note) * 2 ** (cents / 1200), m, 6, 1.8, rng.random())
        chans.append((acc * _F32(level[0]) + sub) * shape)
    return np.stack(chans, axis=1)
