"""A project-local renderer: newsroom teletype clatter for the demo's intro.

mixdown loads every ``renderers/<name>.py`` of a show on demand and
registers its ``Renderer`` class as ``<name>``; ``project.toml`` then uses it
like a built-in (``renderer = "teletype"``). This one is procedural: bursts
of keystrokes (short filtered noise clicks) and a carriage-return bell.
"""

from __future__ import annotations

import numpy as np

from mixdown.renderers import RendererBase, RenderRequest, RenderResult

SR = 48000


class Renderer(RendererBase):
    """Teletype clatter: ``duration`` seconds, ``rate`` keystrokes/s, ``seed``."""

    version = "1"
    kinds = frozenset({"sfx"})
    params = {"duration": (int, float), "rate": (int, float), "seed": int}

    @classmethod
    def check(cls, params):
        if not 0.2 <= params.get("duration", 2.0) <= 20:
            raise ValueError("'duration' must be between 0.2 and 20 seconds")
        if not 2 <= params.get("rate", 14) <= 40:
            raise ValueError("'rate' must be between 2 and 40 keystrokes per second")

    def render(self, request: RenderRequest) -> RenderResult:
        p = request.params
        rng = np.random.default_rng(p.get("seed", 0))
        n = int(p.get("duration", 2.0) * SR)
        out = np.zeros(n, dtype=np.float64)
        strokes = rng.uniform(0, n / SR - 0.05, int(p.get("rate", 14) * n / SR))
        click = _click(rng)
        for start in (strokes * SR).astype(int):
            out[start : start + len(click)] += click[: n - start] * rng.uniform(0.4, 1.0)
        bell = _bell()
        out[n - len(bell) :] += bell[:n] * 0.5
        out *= 0.7 / max(np.abs(out).max(), 1e-9)
        stereo = np.stack([out, np.roll(out, 24)], axis=1).astype(np.float32)
        return RenderResult(stereo, SR, {"seed": p.get("seed", 0)})


def _click(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.012 * SR)) / SR
    body = rng.standard_normal(len(t)) * np.exp(-t * 900)
    return body + 0.5 * np.sin(2 * np.pi * 1800 * t) * np.exp(-t * 600)


def _bell() -> np.ndarray:
    t = np.arange(int(0.6 * SR)) / SR
    partials = sum(np.sin(2 * np.pi * f * t) / (i + 1) for i, f in enumerate((2093.0, 4186.0, 6300.0)))
    return partials * np.exp(-t * 7) * np.minimum(t / 0.002, 1.0)
