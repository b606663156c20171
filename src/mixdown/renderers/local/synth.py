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
from typing import Any

import numpy as np

from ...errors import RenderFailed
from ...settings import SEGMENTS
from ..base import RendererBase, RenderRequest, RenderResult
from . import tones
from .tones import SR, Rng

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

SAMPLE_RATE = SR
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
_PEAK, _F32 = 10 ** (-3 / 20), np.float32


def _whoosh(rng: Rng, n: int, semis: float) -> np.ndarray:
    peak, lo = rng.uniform(0.45, 0.65), 260 * rng.uniform(0.8, 1.25) * 2 ** (semis / 12)
    top, warp = math.log2(rng.uniform(9, 15)), math.log(0.5) / math.log(peak)

    def gain(f: np.ndarray, t: np.ndarray) -> np.ndarray:  # a 1.1-octave band riding a bump
        b = (np.sin(np.pi * np.clip(t * _F32(SR / n), 0, 1) ** warp) ** 2)[:, None]
        z = (np.log2(np.maximum(f, 1) / _F32(lo)) - top * b) * _F32(1 / 1.1)
        g: np.ndarray = np.exp(-0.5 * z * z) * b**1.5
        return g

    side = rng.choice([-0.8, 0.8])
    return tones.pan(tones.shaped_noise(rng, n, gain), np.linspace(-side, side, n, dtype=_F32))


def _chime(rng: Rng, n: int, semis: float) -> np.ndarray:
    d, note = n / SR, 76 + semis + rng.choice([0, 2, 4, 7, 9])
    t60 = min(0.85 * d, 6.0)
    y = np.zeros((min(n, int((0.3 + 1.3 * t60) * SR)), 2), _F32)
    tones.place(y, 0, tones.bell(rng, note, t60))
    if rng.random() < 0.5:  # "ding-dong": a softer strike a major third lower
        tones.place(y, 0.28 * min(1.0, d / 2) * SR, 0.7 * tones.bell(rng, note - 4, t60 * 0.8))
    return y


def _click(rng: Rng, n: int, semis: float) -> np.ndarray:
    m, tau = min(n, int(0.1 * SR)), min(n / SR / 6, 0.005)
    tick = tones.tick_noise(rng, m) * tones.decay(m, tau * 0.5, 0.0003)
    blip = tones.osc(tones.hz(97 + semis) * rng.uniform(0.95, 1.05), m, 3, 2.0, 0.25) * tones.decay(
        m, tau, 0.0005
    )
    return tones.pan(0.35 * tick + blip, rng.uniform(-0.15, 0.15))


def _door(rng: Rng, n: int, semis: float) -> np.ndarray:
    d, m = n / SR, int(0.5 * SR)
    modes = np.array([105, 190, 340, 620, 1150]) * rng.uniform(0.93, 1.07) * 2 ** (semis / 12)
    knock = 0.5 * np.convolve(tones.noise(rng, m), np.full(4, 0.25, _F32), "same") * tones.decay(m, 0.004)
    for f, tau, amp in zip(modes, (0.09, 0.06, 0.035, 0.02, 0.012), (1, 0.8, 0.5, 0.35, 0.2), strict=True):
        knock += amp * tones.osc(f, m, phase=rng.random()) * tones.decay(m, tau, 0.0008)
    knock = tones.fade(knock[:, None], 0, 0.05)[:, 0]
    y = np.zeros((min(n, int(1.4 * SR)), 2), _F32)
    gap = rng.uniform(0.17, 0.24)
    for i in range(2 + int(rng.random() < 0.35)):
        when = (0.03 + i * gap + rng.uniform(0, 0.015)) * min(1.0, d)
        tones.place(y, when * SR, tones.pan(knock * rng.uniform(0.75, 1.0), rng.uniform(-0.1, 0.1)))
    return tones.reverb(y, 0.4, 0.12)[:n]


def _rain(rng: Rng, n: int, semis: float) -> np.ndarray:
    x = tones.noise(rng, (2, n))  # channels first while filtering: contiguous rows are faster
    x[1] = 0.6 * x[0] + 0.8 * x[1]  # partly correlated: wide but solid
    bed = tones.filtered(x, "bandpass", (400.0, 11000.0), axis=1)
    knots = rng.uniform(0.6, 1.0, int(n / SR / 0.7) + 2)  # slow gusts, 1 ms control rate
    gust = np.interp(np.arange(0, n, 48) / (0.7 * SR), np.arange(len(knots)), knots)
    bed *= np.repeat(gust.astype(_F32), 48)[:n]
    count, klen = rng.poisson(rng.uniform(25, 60) * n / SR), min(n, int(0.02 * SR))
    t = np.arange(klen, dtype=_F32) / _F32(SR)
    f0 = np.minimum(rng.uniform(1500, 4500, (count, 1)) * 2 ** (semis / 12), 8000).astype(_F32)
    drops = np.sin(_F32(2 * np.pi) * f0 * (t + 60 * t * t)) * tones.decay(klen, 0.003, 0.0005)
    drops *= rng.lognormal(-1.9, 0.6, (count, 1)).astype(_F32)
    idx = (rng.integers(0, n - klen + 1, (count, 1)) + np.arange(klen)).ravel()
    pan = rng.uniform(0, np.pi / 2, (count, 1))
    for ch, g in enumerate((np.cos(pan), np.sin(pan))):
        bed[ch] += np.bincount(idx, (drops * g).ravel(), minlength=n).astype(_F32)
    return tones.fade(bed.T, 0.15, 0.25)


def _riser(rng: Rng, n: int, semis: float) -> np.ndarray:
    f0, x = tones.hz(45 + semis), np.arange(n, dtype=_F32) / _F32(n)
    inc = np.exp2(2 * x) * _F32(f0 / SR * 2**32)  # phase steps gliding exponentially f0 -> 4 f0
    voices = [
        tones.wave(
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

    noise, env = 1.6 * tones.shaped_noise(rng, n, gain), x * x
    return tones.fade(np.stack([(voices[0] + noise) * env, (voices[1] + noise) * env], axis=1), 0, 0.03)


def _sting(rng: Rng, n: int, semis: float) -> np.ndarray:
    d = n / SR
    ring, root = min(0.8 * d, 4.0), 60 + semis + rng.choice([0, 2, 5, 7])
    chords = [(0, 4, 7, 11, 14), (0, 4, 7, 9, 14), (0, 7, 12, 14, 16), (0, 4, 7, 12, 19)]
    hit, m = 0.13 * min(1.0, d / 1.5) * SR, int(ring * 1.3 * SR)
    y = np.zeros((min(n, int(hit) + m), 2), _F32)
    tones.place(y, 0, tones.pan(0.6 * tones.pluck(root - 5, m, 0.12), -0.2))
    for i, q in enumerate(chords[rng.integers(len(chords))]):
        tones.place(
            y, hit + i * 0.012 * SR, tones.pan(0.55 * tones.pluck(root + q, m, ring / 4), (i - 2) / 4)
        )
    tones.place(y, hit, tones.pan(0.9 * tones.pluck(root - 12, m, ring / 3), 0.0))
    tones.place(y, hit, 0.35 * tones.bell(rng, root + 24, ring))
    return tones.reverb(y, 1.2, 0.25)[:n]


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
        y = tones.filtered(y, "highpass", 20.0, 1, axis=0)
    y = np.pad(y, ((0, n - len(y)), (0, 0))) if len(y) < n else y
    return _normalise(tones.fade(y, 0.001, min(0.01, secs / 10)))


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
        tones.place(
            dry,
            start,
            tones.pad(
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
            tones.place(
                dry, k * step, tones.bell(rng, note, 2.0) * np.array([math.cos(g), math.sin(g)], _F32) * 0.07
            )


def _pulse(
    rng: Rng, dry: np.ndarray, plan: dict[str, Any], beat: float, semis: float, song: dict[str, Any]
) -> None:
    bed = np.zeros_like(dry)
    for start, length, notes, bass in plan["chords"]:
        tones.place(
            bed,
            start,
            tones.pad(rng, [v + semis for v in notes], bass + semis, length / SR, 0.3, 1.2, (0.07, 0.35)),
        )
    x = np.arange(len(dry)) / (beat * SR)
    phase = (x - np.floor(x)).astype(_F32)  # position within the beat, for side-chain ducking
    dry += bed * (1 - 0.4 * np.exp(-6 * phase) * (1 - np.exp(-60 * phase)))[:, None]
    t = np.arange(int(0.45 * SR)) / SR
    kick_cycles = 48 * t + 90 * 0.035 * (1 - np.exp(-t / 0.035))  # 138 Hz falling to 48 Hz
    kick = (
        tones.fade(tones.pan(tones.wave(kick_cycles, 140) * tones.decay(len(t), 0.16, 0.0015), 0), 0, 0.05)
        * 0.9
    )
    ticks = [tones.tick_noise(rng, 4800) * tones.decay(4800, 0.012, 0.0005) for _ in range(4)]
    plucks: dict[float, np.ndarray] = {}
    step = beat / 2 * SR
    for k in range(math.ceil(plan["groove"] / step)):
        pos, i = k * step, k % 8
        if plan["beat"][0] <= pos < plan["beat"][1]:
            if i / 2 in song["kick"]:
                tones.place(dry, pos, kick)
            if k % 2:
                tones.place(dry, pos, tones.pan(0.07 * song["vel"][i] * ticks[k % 4], 0.35))
        if not song["rest"][i]:
            notes = _chord_at(plan, pos)
            note = (notes + [notes[0] + 12, notes[1] + 12])[song["arp"][i] % 6] + semis
            note += 12 * (note < 66 + semis)
            if note not in plucks:
                plucks[note] = tones.pluck(note, int(0.9 * SR))
            tones.place(dry, pos, tones.pan(0.2 * plucks[note], 0.3 if k % 2 else -0.3))
    if "stab" in plan:  # the outro's final hit
        tones.place(dry, plan["stab"], kick)
        for j, v in enumerate(plan["chords"][0][2]):
            tones.place(
                dry,
                plan["stab"],
                tones.pan(0.16 * tones.pluck(v + 12 + semis, int(1.5 * SR), 0.6), (j - 1.5) / 4),
            )


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
    tones.fade(dry, 0, 0.3)
    t60, mix = (3.2, 0.35) if preset == "ambient" else (1.4, 0.2)
    if segment == "main":  # fold the dry tail, add reverb, fold the reverb tail
        return _normalise(tones.wrap(tones.reverb(tones.wrap(dry, n), t60, mix), n))
    y = tones.reverb(dry, t60, mix)[:n]
    t = np.arange(n, dtype=_F32) / _F32(n)
    if segment == "intro":
        y *= (np.minimum(2 * t, 1) ** 2)[:, None]
        return _normalise(tones.fade(y, 0, 0.08))
    y *= np.exp(-7 * np.clip(t - 0.55, 0, None) / 0.45)[:, None]  # to -60 dB at the end
    return _normalise(tones.fade(y, 0, 0.1))


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
