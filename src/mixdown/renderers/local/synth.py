"""The ``synth`` renderer: procedural, seeded, deterministic SFX and music beds.

Pure vectorised numpy/scipy: band-limited wavetable oscillators, noise shaped
in the STFT domain, a convolution reverb. The same settings give bit-identical
audio; ``seed`` drives every random choice. Output is always 48 kHz stereo
float32 with its peak at -3 dBFS.

SFX presets (``kind = "sfx"``; default seconds, ``duration`` overrides):

- ``whoosh`` (1.2): noise through a band-pass sweeping up and down, panning across.
- ``chime`` (2.0): one or two bell strikes of inharmonic partials (1, 2.76, 5.40).
- ``click`` (0.05): a UI click, a bright noise tick over a short tonal blip.
- ``door`` (1.0): two or three knocks on wood, damped low modes and a transient.
- ``rain`` (4.0): band-passed stereo noise with slow gusts and random drops.
- ``riser`` (2.0): two detuned saws gliding up two octaves over a rising noise band.
- ``sting`` (1.5): a pick-up note into a plucked chord, a bell on top and a sub.

Music presets (``kind = "music"``; default tempo in BPM, ``tempo`` overrides):

- ``ambient`` (70): slow soft pad chords and bass, sparse bell glints, big reverb.
- ``pulse`` (96): a news bed, soft kick, off-beat ticks, a plucked 8th-note
  arpeggio over a side-chain-ducked pad and bass.

Music is rendered per segment, in whole 4-beat bars: ``intro`` (up to 4 bars,
fading in), ``main`` (8-16 s; it loops seamlessly, ``np.tile(main, (k, 1))`` is
continuous because the tail past the loop point is folded back onto the start)
and ``outro`` (up to 4 bars, ending in a decay to silence). ``duration`` does
not apply to music; ``pitch`` (semitones) transposes both kinds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from functools import cache, lru_cache
from typing import Any

import numpy as np
import scipy.fft as sfft
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import butter, sosfilt

from ...errors import RenderFailed
from ...settings import SEGMENTS
from ..base import RendererBase, RenderRequest, RenderResult

__all__ = [
    "MUSIC_PRESETS",
    "SAMPLE_RATE",
    "SEGMENTS",
    "SFX_PRESETS",
    "Synth",
    "render_music",
    "render_sfx",
    "segment_bars",
]

SAMPLE_RATE = SR = 48000
SFX_PRESETS: dict[str, float] = {
    "whoosh": 1.2,
    "chime": 2.0,
    "click": 0.05,
    "door": 1.0,
    "rain": 4.0,
    "riser": 2.0,
    "sting": 1.5,
}
MUSIC_PRESETS: dict[str, float] = {"ambient": 70.0, "pulse": 96.0}
_HELP = f"use one of {', '.join(SFX_PRESETS)} for sfx, or {', '.join(MUSIC_PRESETS)} for music"
_PEAK, _TBITS, _F32 = 10 ** (-3 / 20), 14, np.float32
_TN = 1 << _TBITS
Rng = np.random.Generator


def _hz(midi: float) -> float:
    return float(440.0 * 2.0 ** ((midi - 69.0) / 12.0))


@cache
def _table(harmonics: int, tilt: float) -> np.ndarray:
    """One cycle of ``sum_k sin(k x) / k**tilt`` with peak 1 (read-only)."""
    k = np.arange(1, harmonics + 1)[:, None]
    w: np.ndarray = (np.sin(k * np.arange(_TN)[None, :] * (2 * np.pi / _TN)) / k**tilt).sum(0)
    w = (w / np.abs(w).max()).astype(_F32)
    w.setflags(write=False)
    return w


def _wave(cycles: np.ndarray, fmax: float, harmonics: int = 1, tilt: float = 1.0) -> np.ndarray:
    """Look up phases ``cycles`` (int64 in 1/2**32 cycle, or float64 cycles) in a
    wavetable keeping partials of a tone up to ``fmax`` Hz below 0.45 * SR."""
    if cycles.dtype != np.int64:
        cycles = (cycles * 2.0**32).astype(np.int64)
    cycles >>= 32 - _TBITS
    cycles &= _TN - 1
    out: np.ndarray = _table(int(np.clip(0.45 * SR / max(fmax, 1.0), 1, harmonics)), float(tilt))[cycles]
    return out


def _osc(freq: float, n: int, harmonics: int = 1, tilt: float = 1.0, phase: float = 0.0) -> np.ndarray:
    """Constant-frequency band-limited oscillator (an exact integer phase accumulator)."""
    acc = np.arange(n, dtype=np.int64) * round(freq / SR * 2**32) + int(phase % 1 * 2**32)
    return _wave(acc, freq, harmonics, tilt)


def _ramp(m: int) -> np.ndarray:
    """``m`` samples rising from 0 towards 1 along sin**2."""
    return np.sin(np.linspace(0, np.pi / 2, m, endpoint=False, dtype=_F32)) ** 2


def _env(n: int, attack: float, hold: float, release: float) -> np.ndarray:
    """Raised-cosine attack, sustain until ``hold`` seconds, raised-cosine release."""
    e = np.ones(n, _F32)
    a, h, r = min(n, int(attack * SR)), min(n, int(hold * SR)), max(1, int(release * SR))
    e[:a] = _ramp(a)
    e[h : h + r] *= 1 - _ramp(r + 1)[1:][: n - h]
    e[h + r :] = 0
    return e


def _decay(n: int, tau: float, attack: float = 0.002) -> np.ndarray:
    """Exponential decay with time constant ``tau`` seconds after a short attack."""
    e: np.ndarray = np.exp(np.arange(n, dtype=_F32) * _F32(-1 / (tau * SR)))
    a = min(n, int(attack * SR))
    e[:a] *= _ramp(a)
    return e


def _fade(y: np.ndarray, fade_in: float, fade_out: float) -> np.ndarray:
    """Raised-cosine fades of ``(n, c)`` audio in place; the end samples become 0."""
    for secs, view in ((fade_in, y), (fade_out, y[::-1])):
        if secs > 0:
            m = min(len(y), max(2, int(secs * SR)))
            view[:m] *= _ramp(m)[:, None]
    return y


def _pan(x: np.ndarray, pos: Any) -> np.ndarray:
    """Equal-power pan of mono ``x`` to ``(n, 2)``; ``pos`` in [-1, 1], 0 is centre."""
    a = (np.asarray(pos, dtype=_F32) + 1) * _F32(np.pi / 4)
    return np.stack([x * np.cos(a), x * np.sin(a)], axis=1) * _F32(math.sqrt(2))


def _place(buf: np.ndarray, start: float, sig: np.ndarray) -> None:
    """Add ``sig`` into ``buf`` from sample ``start``, clipped at the end."""
    s = int(round(start))
    m = min(len(sig), len(buf) - s)
    if m > 0:
        buf[s : s + m] += sig[:m]


def _noise(rng: Rng, shape: Any) -> np.ndarray:
    """Uniform white noise in [-0.5, 0.5), float32."""
    x: np.ndarray = rng.random(shape, dtype=_F32)
    x -= _F32(0.5)
    return x


def _tick_noise(rng: Rng, n: int) -> np.ndarray:
    """Bright noise without DC or Nyquist energy (it peaks near 12 kHz)."""
    return np.convolve(_noise(rng, n + 3), np.array([1, 1, -1, -1], _F32), "valid")


def _shaped_noise(rng: Rng, n: int, gain: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Mono white noise through a time-varying magnitude response.

    ``gain(freqs, times)`` gives ``(len(times), len(freqs))`` gains for STFT
    frames (up to 1024 samples, sqrt-Hann, 50 % overlap: unit gain is transparent).
    """
    nper = 2 ** int(np.clip(math.log2(n / 8), 6, 10))
    hop = nper // 2
    win = np.sqrt(np.hanning(nper + 1)[:-1]).astype(_F32)
    frames = sliding_window_view(_noise(rng, n + 2 * nper), nper)[::hop] * win
    times = ((np.arange(len(frames)) * hop + nper / 2 - hop) / SR).astype(_F32)
    spec = sfft.rfft(frames, axis=1)
    spec *= gain(np.fft.rfftfreq(nper, 1 / SR).astype(_F32), times)
    out = sfft.irfft(spec, nper, axis=1) * win
    ola = np.zeros((len(frames) + 1, hop), _F32)
    ola[:-1] += out[:, :hop]
    ola[1:] += out[:, hop:]
    return ola.ravel()[hop : hop + n]


@lru_cache(maxsize=8)
def _sos(kind: str, cutoff: float | tuple[float, float], order: int = 2) -> np.ndarray:
    sos: np.ndarray = butter(order, cutoff, kind, fs=SR, output="sos")
    return sos.astype(_F32)


@lru_cache(maxsize=4)
def _ir_spectrum(t60: float, nfft: int) -> np.ndarray:
    """Spectrum of a stereo reverb impulse: decorrelated decaying noise, unit energy."""
    t = np.arange(int(t60 * SR)) / SR
    ir = np.random.default_rng(1234).standard_normal((len(t), 2)) * np.exp(-6.9 * t / t60)[:, None]
    ir = sosfilt(_sos("lowpass", 4500.0, 1), ir, axis=0) * np.clip((t - 0.012) / 0.004, 0, 1)[:, None]
    spec: np.ndarray = sfft.rfft((ir / np.sqrt((ir**2).sum(0))).astype(_F32), nfft, axis=0)
    spec.setflags(write=False)
    return spec


def _reverb(dry: np.ndarray, t60: float, mix: float) -> np.ndarray:
    """Dry plus ``mix`` times a stereo reverb of the mono sum; longer by the tail."""
    total = len(dry) + int(t60 * SR) - 1
    nfft = sfft.next_fast_len(total, real=True)
    send = sfft.rfft(dry[:, 0] + dry[:, 1], nfft)[:, None] * _F32(mix / 2)
    wet: np.ndarray = sfft.irfft(send * _ir_spectrum(t60, nfft), nfft, axis=0)[:total]
    wet[: len(dry)] += dry
    return wet


def _wrap(y: np.ndarray, n: int) -> np.ndarray:
    """Fold ``y`` onto its first ``n`` samples (overlap-add), so that it loops."""
    padded = np.zeros((-(-len(y) // n) * n, y.shape[1]), y.dtype)
    padded[: len(y)] = y
    folded: np.ndarray = padded.reshape(-1, n, y.shape[1]).sum(axis=0)
    return folded


def _pluck(note: float, n: int, decay: float = 0.35) -> np.ndarray:
    """A plucked tone: a bright fast-decaying layer over a mellow slower one."""
    f = _hz(note)
    y = _osc(f, n, 14, 1.1) * _decay(n, decay * 0.22) + 0.7 * _osc(f, n, 4, 1.6) * _decay(n, decay)
    return _fade(y[:, None], 0, 0.05)[:, 0]


def _bell(rng: Rng, note: float, t60: float) -> np.ndarray:
    """Bell partials (1, 2.756, 5.404) decaying exponentially, slightly wide; ``(m, 2)``."""
    out = np.zeros((int(1.3 * t60 * SR), 2), _F32)
    spread = rng.uniform(0.0004, 0.001)
    for ratio, amp, life in ((1.0, 1.0, 1.0), (2.756, 0.35, 0.5), (5.404, 0.15, 0.28)):
        f, m, ph = _hz(note) * ratio, int(1.3 * t60 * life * SR), rng.random()
        if f * (1 + spread) < 0.45 * SR:
            env = _decay(m, t60 * life / 6.9, 0.0015) * _F32(amp)
            out[:m, 0] += _osc(f, m, phase=ph) * env
            out[:m, 1] += _osc(f * (1 + spread), m, phase=ph) * env
    return out


def _pad(
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
    env, sub = _env(m, attack, dur, release), _F32(level[1]) * _osc(_hz(bass), m, 3, 2.2)
    chans = []
    for cents in (-7.0, 7.0):
        acc = np.zeros(m, _F32)
        for note in notes:
            acc += _osc(_hz(note) * 2 ** (cents / 1200), m, 6, 1.8, rng.random())
        chans.append((acc * _F32(level[0]) + sub) * env)
    return np.stack(chans, axis=1)


def _whoosh(rng: Rng, n: int, semis: float) -> np.ndarray:
    peak, lo = rng.uniform(0.45, 0.65), 260 * rng.uniform(0.8, 1.25) * 2 ** (semis / 12)
    top, warp = math.log2(rng.uniform(9, 15)), math.log(0.5) / math.log(peak)

    def gain(f: np.ndarray, t: np.ndarray) -> np.ndarray:  # a 1.1-octave band riding a bump
        b = (np.sin(np.pi * np.clip(t * _F32(SR / n), 0, 1) ** warp) ** 2)[:, None]
        z = (np.log2(np.maximum(f, 1) / _F32(lo)) - top * b) * _F32(1 / 1.1)
        g: np.ndarray = np.exp(-0.5 * z * z) * b**1.5
        return g

    side = rng.choice([-0.8, 0.8])
    return _pan(_shaped_noise(rng, n, gain), np.linspace(-side, side, n, dtype=_F32))


def _chime(rng: Rng, n: int, semis: float) -> np.ndarray:
    d, note = n / SR, 76 + semis + rng.choice([0, 2, 4, 7, 9])
    t60 = min(0.85 * d, 6.0)
    y = np.zeros((min(n, int((0.3 + 1.3 * t60) * SR)), 2), _F32)
    _place(y, 0, _bell(rng, note, t60))
    if rng.random() < 0.5:  # "ding-dong": a softer strike a major third lower
        _place(y, 0.28 * min(1.0, d / 2) * SR, 0.7 * _bell(rng, note - 4, t60 * 0.8))
    return y


def _click(rng: Rng, n: int, semis: float) -> np.ndarray:
    m, tau = min(n, int(0.1 * SR)), min(n / SR / 6, 0.005)
    tick = _tick_noise(rng, m) * _decay(m, tau * 0.5, 0.0003)
    blip = _osc(_hz(97 + semis) * rng.uniform(0.95, 1.05), m, 3, 2.0, 0.25) * _decay(m, tau, 0.0005)
    return _pan(0.35 * tick + blip, rng.uniform(-0.15, 0.15))


def _door(rng: Rng, n: int, semis: float) -> np.ndarray:
    d, m = n / SR, int(0.5 * SR)
    modes = np.array([105, 190, 340, 620, 1150]) * rng.uniform(0.93, 1.07) * 2 ** (semis / 12)
    knock = 0.5 * np.convolve(_noise(rng, m), np.full(4, 0.25, _F32), "same") * _decay(m, 0.004)
    for f, tau, amp in zip(modes, (0.09, 0.06, 0.035, 0.02, 0.012), (1, 0.8, 0.5, 0.35, 0.2), strict=True):
        knock += amp * _osc(f, m, phase=rng.random()) * _decay(m, tau, 0.0008)
    knock = _fade(knock[:, None], 0, 0.05)[:, 0]
    y = np.zeros((min(n, int(1.4 * SR)), 2), _F32)
    gap = rng.uniform(0.17, 0.24)
    for i in range(2 + int(rng.random() < 0.35)):
        when = (0.03 + i * gap + rng.uniform(0, 0.015)) * min(1.0, d)
        _place(y, when * SR, _pan(knock * rng.uniform(0.75, 1.0), rng.uniform(-0.1, 0.1)))
    return _reverb(y, 0.4, 0.12)[:n]


def _rain(rng: Rng, n: int, semis: float) -> np.ndarray:
    x = _noise(rng, (2, n))  # channels first while filtering: contiguous rows are faster
    x[1] = 0.6 * x[0] + 0.8 * x[1]  # partly correlated: wide but solid
    bed: np.ndarray = sosfilt(_sos("bandpass", (400.0, 11000.0)), x, axis=1)
    knots = rng.uniform(0.6, 1.0, int(n / SR / 0.7) + 2)  # slow gusts, 1 ms control rate
    gust = np.interp(np.arange(0, n, 48) / (0.7 * SR), np.arange(len(knots)), knots)
    bed *= np.repeat(gust.astype(_F32), 48)[:n]
    count, klen = rng.poisson(rng.uniform(25, 60) * n / SR), min(n, int(0.02 * SR))
    t = np.arange(klen, dtype=_F32) / _F32(SR)
    f0 = np.minimum(rng.uniform(1500, 4500, (count, 1)) * 2 ** (semis / 12), 8000).astype(_F32)
    drops = np.sin(_F32(2 * np.pi) * f0 * (t + 60 * t * t)) * _decay(klen, 0.003, 0.0005)
    drops *= rng.lognormal(-1.9, 0.6, (count, 1)).astype(_F32)
    idx = (rng.integers(0, n - klen + 1, (count, 1)) + np.arange(klen)).ravel()
    pan = rng.uniform(0, np.pi / 2, (count, 1))
    for ch, g in enumerate((np.cos(pan), np.sin(pan))):
        bed[ch] += np.bincount(idx, (drops * g).ravel(), minlength=n).astype(_F32)
    return _fade(bed.T, 0.15, 0.25)


def _riser(rng: Rng, n: int, semis: float) -> np.ndarray:
    f0, x = _hz(45 + semis), np.arange(n, dtype=_F32) / _F32(n)
    inc = np.exp2(2 * x) * _F32(f0 / SR * 2**32)  # phase steps gliding exponentially f0 -> 4 f0
    voices = [
        _wave(
            np.cumsum((inc * _F32(2 ** (c * rng.uniform(0.7, 1.3) / 1200))).astype(np.int64))
            + int(rng.random() * 2**32),
            4.1 * f0,
            16,
        )
        for c in (-8.0, 8.0)
    ]

    def gain(f: np.ndarray, t: np.ndarray) -> np.ndarray:  # an octave-wide band rising to 6 kHz
        fc = 350 * 2 ** (4.1 * np.clip(t * _F32(SR / n), 0, 1)[:, None])
        g: np.ndarray = np.exp(-0.5 * np.log2(np.maximum(f, 1) / fc) ** 2)
        return g

    noise, env = 1.6 * _shaped_noise(rng, n, gain), x * x
    return _fade(np.stack([(voices[0] + noise) * env, (voices[1] + noise) * env], axis=1), 0, 0.03)


def _sting(rng: Rng, n: int, semis: float) -> np.ndarray:
    d = n / SR
    ring, root = min(0.8 * d, 4.0), 60 + semis + rng.choice([0, 2, 5, 7])
    chords = [(0, 4, 7, 11, 14), (0, 4, 7, 9, 14), (0, 7, 12, 14, 16), (0, 4, 7, 12, 19)]
    hit, m = 0.13 * min(1.0, d / 1.5) * SR, int(ring * 1.3 * SR)
    y = np.zeros((min(n, int(hit) + m), 2), _F32)
    _place(y, 0, _pan(0.6 * _pluck(root - 5, m, 0.12), -0.2))
    for i, q in enumerate(chords[rng.integers(len(chords))]):
        _place(y, hit + i * 0.012 * SR, _pan(0.55 * _pluck(root + q, m, ring / 4), (i - 2) / 4))
    _place(y, hit, _pan(0.9 * _pluck(root - 12, m, ring / 3), 0.0))
    _place(y, hit, 0.35 * _bell(rng, root + 24, ring))
    return _reverb(y, 1.2, 0.25)[:n]


_SFX: dict[str, Callable[[Rng, int, float], np.ndarray]] = {
    "whoosh": _whoosh,
    "chime": _chime,
    "click": _click,
    "door": _door,
    "rain": _rain,
    "riser": _riser,
    "sting": _sting,
}


def _normalise(y: np.ndarray) -> np.ndarray:
    peak = max(float(y.max()), -float(y.min()))
    out: np.ndarray = np.multiply(y, _F32(_PEAK / peak if peak > 1e-9 else 1), dtype=_F32, order="C")
    return out


def render_sfx(
    preset: str, *, seed: int = 0, duration: float | None = None, pitch: float = 0.0
) -> np.ndarray:
    """Render one SFX preset.

    Parameters
    ----------
    preset : str
        A key of :data:`SFX_PRESETS`.
    seed : int
        Seeds every random choice; the same arguments give bit-identical audio.
    duration : float, optional
        Seconds (default: the preset's in :data:`SFX_PRESETS`); at least 64 samples.
    pitch : float
        Transposition of tonal material in semitones.

    Returns
    -------
    np.ndarray
        ``[shape=(n, 2)]`` float32 at 48 kHz, peak -3 dBFS, zero at both ends.
    """
    if preset not in SFX_PRESETS:
        raise ValueError(f"unknown synth sfx preset {preset!r}: {_HELP}")
    secs = SFX_PRESETS[preset] if duration is None else float(duration)
    n = max(64, round(secs * SR))
    y = _SFX[preset](np.random.default_rng(seed), n, float(pitch))
    if preset in ("chime", "click", "door", "sting"):  # decaying tones may leave a little DC
        y = sosfilt(_sos("highpass", 20.0, 1), y, axis=0)
    y = np.pad(y, ((0, n - len(y)), (0, 0))) if len(y) < n else y
    return _normalise(_fade(y, 0.001, min(0.01, secs / 10)))


_QUALITY = {
    "maj7": (0, 4, 7, 11),
    "add9": (0, 4, 7, 14),
    "m7": (0, 3, 7, 10),
    "m9": (0, 3, 7, 14),
    "sus2": (0, 2, 7, 10),
    "sus4": (0, 5, 7, 10),
}
_PROGRESSIONS = {  # (root, quality) x 4; the first chord is the tonic the outro ends on
    "ambient": (
        "0 maj7 9 m7 5 maj7 7 sus2",
        "0 add9 7 sus4 9 m9 5 maj7",
        "0 maj7 5 add9 2 m7 7 sus4",
        "0 add9 4 m7 5 maj7 5 add9",
    ),
    "pulse": (
        "0 m9 8 maj7 3 add9 10 sus2",
        "0 m7 5 m7 8 maj7 7 sus4",
        "0 m9 10 sus2 8 maj7 10 add9",
        "0 m7 8 maj7 10 sus2 7 m7",
    ),
}
_KEY = {"ambient": 50, "pulse": 45}  # D and A
_TAIL = 3.0  # seconds rendered past a segment's end, then folded back (main) or cut


def segment_bars(segment: str, tempo: float) -> int:
    """Return the number of whole 4-beat bars in a music ``segment`` at ``tempo`` BPM.

    ``main`` takes the power of two whose length is nearest (in log) to 11.3 s,
    so it lasts 8-16 s; ``intro`` and ``outro`` take 4 bars, or 2 or 1 if 4 bars
    would exceed 14 s.
    """
    bar = 240.0 / tempo
    if segment == "main":
        return int(2 ** np.clip(math.floor(math.log2(math.sqrt(128) / bar) + 0.5), 0, 4))
    return next((b for b in (4, 2) if b * bar <= 14.0), 1)


def _song(preset: str, rng: Rng) -> dict[str, Any]:
    """The seed's musical choices (chords, voicing, patterns), shared by all segments."""
    words = _PROGRESSIONS[preset][rng.integers(4)].split()
    low, key = int(rng.integers(52, 59)), _KEY[preset]
    chords = []
    for root, quality in zip(map(int, words[::2]), words[1::2], strict=True):
        close = sorted(low + (key + root + q - low) % 12 for q in _QUALITY[quality])
        spread = [float(v + 12 * (i % 2)) for i, v in enumerate(close)]  # 2nd, 4th up an octave
        chords.append((spread, float(36 + (key + root) % 12)))
    rest = rng.random(8) < 0.2
    rest[0] = False
    return {
        "chords": chords,
        "arp": rng.integers(0, 6, 8),
        "rest": rest,
        "vel": rng.uniform(0.5, 1.0, 8),
        "kick": ((0, 2), (0, 2, 2.5), (0, 1.5, 2))[rng.integers(3)],
    }


def _plan(segment: str, song: dict[str, Any], n: int) -> dict[str, Any]:
    """Chords as ``(start, length, notes, bass)`` in samples; where the groove and beat play."""
    ch = song["chords"]
    if segment == "main":
        return {"chords": [(i * n / 4, n / 4, *ch[i]) for i in range(4)], "groove": n, "beat": (0, n)}
    if segment == "intro":  # the second half of the progression, leading into main
        return {"chords": [(0, n / 2, *ch[2]), (n / 2, n / 2, *ch[3])], "groove": n, "beat": (n / 2, n)}
    return {"chords": [(0, 0.75 * n, *ch[0])], "groove": n / 2, "beat": (0, n / 2), "stab": n / 2}


def _chord_at(plan: dict[str, Any], pos: float) -> list[float]:
    return next(c[2] for c in reversed(plan["chords"]) if c[0] <= pos)


def _ambient(
    rng: Rng, dry: np.ndarray, plan: dict[str, Any], beat: float, semis: float, song: dict[str, Any]
) -> None:
    for start, length, notes, bass in plan["chords"]:
        _place(
            dry,
            start,
            _pad(
                rng,
                [v + semis for v in notes],
                bass + semis,
                length / SR,
                min(2.0, length / SR / 2),
                2.5,
                (0.11, 0.3),
            ),
        )
    step = beat / 2 * SR
    for k in range(math.ceil(plan["groove"] / step)):
        if rng.random() < 0.12:  # a sparse bell glint on a chord tone, G5..F#6
            notes = _chord_at(plan, k * step)
            note, g = 79 + (notes[rng.integers(len(notes))] - 79) % 12 + semis, rng.uniform(0.15, 1.35)
            _place(dry, k * step, _bell(rng, note, 2.0) * np.array([math.cos(g), math.sin(g)], _F32) * 0.07)


def _pulse(
    rng: Rng, dry: np.ndarray, plan: dict[str, Any], beat: float, semis: float, song: dict[str, Any]
) -> None:
    bed = np.zeros_like(dry)
    for start, length, notes, bass in plan["chords"]:
        _place(
            bed,
            start,
            _pad(rng, [v + semis for v in notes], bass + semis, length / SR, 0.3, 1.2, (0.07, 0.35)),
        )
    x = np.arange(len(dry)) / (beat * SR)
    phase = (x - np.floor(x)).astype(_F32)  # position within the beat, for side-chain ducking
    dry += bed * (1 - 0.4 * np.exp(-6 * phase) * (1 - np.exp(-60 * phase)))[:, None]
    t = np.arange(int(0.45 * SR)) / SR
    kick_cycles = 48 * t + 90 * 0.035 * (1 - np.exp(-t / 0.035))  # 138 Hz falling to 48 Hz
    kick = _fade(_pan(_wave(kick_cycles, 140) * _decay(len(t), 0.16, 0.0015), 0), 0, 0.05) * 0.9
    ticks = [_tick_noise(rng, 4800) * _decay(4800, 0.012, 0.0005) for _ in range(4)]
    plucks: dict[float, np.ndarray] = {}
    step = beat / 2 * SR
    for k in range(math.ceil(plan["groove"] / step)):
        pos, i = k * step, k % 8
        if plan["beat"][0] <= pos < plan["beat"][1]:
            if i / 2 in song["kick"]:
                _place(dry, pos, kick)
            if k % 2:
                _place(dry, pos, _pan(0.07 * song["vel"][i] * ticks[k % 4], 0.35))
        if not song["rest"][i]:
            notes = _chord_at(plan, pos)
            note = (notes + [notes[0] + 12, notes[1] + 12])[song["arp"][i] % 6] + semis
            note += 12 * (note < 66 + semis)
            if note not in plucks:
                plucks[note] = _pluck(note, int(0.9 * SR))
            _place(dry, pos, _pan(0.2 * plucks[note], 0.3 if k % 2 else -0.3))
    if "stab" in plan:  # the outro's final hit
        _place(dry, plan["stab"], kick)
        for j, v in enumerate(plan["chords"][0][2]):
            _place(dry, plan["stab"], _pan(0.16 * _pluck(v + 12 + semis, int(1.5 * SR), 0.6), (j - 1.5) / 4))


def render_music(
    preset: str, segment: str, *, seed: int = 0, tempo: float | None = None, pitch: float = 0.0
) -> np.ndarray:
    """Render one segment of a music bed.

    Parameters
    ----------
    preset : str
        A key of :data:`MUSIC_PRESETS`.
    segment : str
        ``"intro"``, ``"main"`` or ``"outro"``.
    seed : int
        Chooses the progression, voicing and patterns; same arguments, same audio.
    tempo : float, optional
        Beats per minute (default: the preset's in :data:`MUSIC_PRESETS`).
    pitch : float
        Transposition in semitones.

    Returns
    -------
    np.ndarray
        ``[shape=(n, 2)]`` float32 at 48 kHz, ``n = round(segment_bars(segment,
        tempo) * 240 / tempo * 48000)``. ``main`` loops seamlessly, ``intro``
        fades in, ``outro`` decays to silence.
    """
    if preset not in MUSIC_PRESETS or segment not in SEGMENTS:
        raise ValueError(
            f"unknown synth music {preset!r}/{segment!r}: use one of "
            f"{', '.join(MUSIC_PRESETS)} and one of {', '.join(SEGMENTS)}"
        )
    tempo = float(tempo or MUSIC_PRESETS[preset])
    rng = np.random.default_rng(seed)
    song, beat = _song(preset, rng), 60.0 / tempo
    n = round(segment_bars(segment, tempo) * 4 * beat * SR)
    dry = np.zeros((n + int(_TAIL * SR), 2), _F32)
    arrange = _ambient if preset == "ambient" else _pulse
    arrange(rng, dry, _plan(segment, song, n), beat, float(pitch), song)
    _fade(dry, 0, 0.3)
    t60, mix = (3.2, 0.35) if preset == "ambient" else (1.4, 0.2)
    if segment == "main":  # fold the dry tail, add reverb, fold the reverb tail
        return _normalise(_wrap(_reverb(_wrap(dry, n), t60, mix), n))
    y = _reverb(dry, t60, mix)[:n]
    t = np.arange(n, dtype=_F32) / _F32(n)
    if segment == "intro":
        y *= (np.minimum(2 * t, 1) ** 2)[:, None]
        return _normalise(_fade(y, 0, 0.08))
    y *= np.exp(-7 * np.clip(t - 0.55, 0, None) / 0.45)[:, None]  # to -60 dB at the end
    return _normalise(_fade(y, 0, 0.1))


class Synth(RendererBase):
    """Procedural, seeded SFX and music beds; the module docstring lists the presets."""

    version = "1"
    kinds = frozenset({"sfx", "music"})
    params = {
        "preset": str,
        "seed": int,
        "duration": (int, float),
        "pitch": (int, float),
        "tempo": (int, float),
    }

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Require a known ``preset``; ``seed`` >= 0, ``duration`` in (0, 60] s,
        ``pitch`` in [-24, 24] semitones, ``tempo`` in [40, 200] BPM.

        Raises
        ------
        ValueError
            One sentence saying what is allowed (with the presets, if it is about them).
        """
        preset = params.get("preset")
        if preset not in SFX_PRESETS and preset not in MUSIC_PRESETS:
            what = "needs a preset" if preset is None else f"has no preset {preset!r}"
            raise ValueError(f"synth {what}: {_HELP}")
        limits = {
            "duration": (0, 60, "more than 0 and at most 60 seconds"),
            "tempo": (40, 200, "between 40 and 200 BPM"),
            "pitch": (-24, 24, "between -24 and 24 semitones"),
            "seed": (0, math.inf, "a non-negative integer"),
        }
        for key, (lo, hi, what) in limits.items():
            value = params.get(key, hi)
            if not (lo <= value <= hi) or (key == "duration" and value == 0):
                raise ValueError(f"synth {key} must be {what}, got {value!r}")

    def render(self, request: RenderRequest) -> RenderResult:
        """Render an ``sfx`` preset, or one ``segment`` of a ``music`` preset.

        Raises
        ------
        RenderFailed
            Naming ``request.target``: bad settings, a preset of the other kind,
            or a segment other than intro, main and outro.
        """
        p, where, kind = request.params, request.target or "synth", request.kind
        try:
            self.check(p)
        except ValueError as err:
            raise RenderFailed(f"{where}: {err}") from None
        table = SFX_PRESETS if kind == "sfx" else MUSIC_PRESETS if kind == "music" else {}
        if p["preset"] not in table:
            raise RenderFailed(f"{where}: synth preset {p['preset']!r} does not make {kind!r}; {_HELP}")
        # a later take draws from another seed: one per (seed, take), the first take's unchanged
        seed, pitch = int(p.get("seed", 0)) + (request.take << 32), float(p.get("pitch", 0))
        meta: dict[str, Any] = {"preset": p["preset"], "seed": seed, "pitch": pitch}
        if kind == "sfx":
            meta["duration"] = float(p.get("duration", SFX_PRESETS[p["preset"]]))
            audio = render_sfx(p["preset"], seed=seed, duration=meta["duration"], pitch=pitch)
        elif request.segment not in SEGMENTS:
            raise RenderFailed(
                f"{where}: unknown music segment {request.segment!r}; use one of {', '.join(SEGMENTS)}"
            )
        else:
            tempo = float(p.get("tempo", MUSIC_PRESETS[p["preset"]]))
            meta |= {"segment": request.segment, "tempo": tempo, "bars": segment_bars(request.segment, tempo)}
            if request.segment == "main":
                meta["loop"] = "seamless"  # the mix tiles it without crossfades
            audio = render_music(p["preset"], request.segment, seed=seed, tempo=tempo, pitch=pitch)
        return RenderResult(audio=audio, sample_rate=SR, meta=meta)
