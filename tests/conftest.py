"""Shared fixtures: a tiny show on disk and a renderer that counts its calls."""

from __future__ import annotations

import os
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixdown.renderers import RendererBase, RenderRequest, RenderResult

from .s3server import s3, s3_endpoint  # noqa: F401  # fixtures: an S3 on 127.0.0.1 for the remote cache


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may depend on (or leak) a real API key."""
    for name in list(os.environ):
        if name.endswith("_API_KEY") or name == "MIXDOWN_CACHE":
            monkeypatch.delenv(name)


class CountingVoice(RendererBase):
    """A fake TTS: a tone whose length follows the text, recording every call."""

    version = "1"
    kinds = frozenset({"voice"})
    params = {"speed": (int, float), "pitch": (int, float)}
    max_chars = 200

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def render(self, request: RenderRequest) -> RenderResult:
        with self._lock:
            self.calls.append(request.text)
        sr = 16000
        seconds = 0.02 * len(request.text) / float(request.params.get("speed", 1.0))
        t = np.arange(max(int(seconds * sr), 800)) / sr
        f0 = 180.0 * 2 ** (float(request.params.get("pitch", 0.0)) / 12)
        tone = 0.3 * np.sin(2 * np.pi * f0 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
        return RenderResult(tone.astype(np.float32)[:, None], sr, {"request_id": f"fake-{len(self.calls)}"})


class CountingSound(RendererBase):
    """A fake SFX/music renderer: short noise bursts, recording every call."""

    version = "1"
    kinds = frozenset({"sfx", "music"})
    params = {"seconds": (int, float), "seed": int}

    def __init__(self) -> None:
        self.calls: list[str] = []

    def render(self, request: RenderRequest) -> RenderResult:
        self.calls.append(request.target)
        rng = np.random.default_rng(int(request.params.get("seed", 0)))
        n = int(float(request.params.get("seconds", 0.5)) * 24000)
        return RenderResult((0.2 * rng.standard_normal((n, 2))).astype(np.float32), 24000)


#: what a build writes in build/ about itself (mixdown.actions.publishing; tests/test_manifest.py):
#: its figures of the build (renders, cache hits) differ between builds that publish the same audio
ABOUT_THE_BUILD = frozenset({"manifest.json", "report.html"})


BASIC_TOML = """
[project]
name = "Test Show"
voice = "anna"
vars = { show = "Test Show" }

[voices.anna]
renderer = "fake"
speed = 1.0

[voices.ben]
renderer = "fake"
speed = 1.2

[sfx.ding]
renderer = "noise"
seconds = 0.3
seed = 1

[music.bed]
renderer = "noise"
seconds = 2.0
seed = 2
gain_db = -24

[modules.news]
music = "bed"

[scripts.briefing]
module = "news"
template = "stanzas/briefing.j2"
variants = "data/people.csv"

[scripts.extra]
module = "news"
template = "stanzas/extra.j2"
voice = "ben"

[master]
formats = ["wav"]
"""

BRIEFING = """\
## intro
Hello {{ name }}, this is {{ show }}. [sfx:ding]

Here is the news.

## story voice=ben
The bridge opened today. [pause 0.3s] It is long.

[sfx:ding]

## close
Goodbye {{ name }}.
"""

EXTRA = """\
## only
Here is the news.

The bridge opened today.
"""

PEOPLE = "id,name\nanna,Anna\nkofi,Kofi\n"


@pytest.fixture
def show(tmp_path: Path) -> Callable[..., Path]:
    """Write a small show into ``tmp_path``; keyword arguments replace its files."""

    def make(**files: str) -> Path:
        contents = {
            "project.toml": BASIC_TOML,
            "stanzas/briefing.j2": BRIEFING,
            "stanzas/extra.j2": EXTRA,
            "data/people.csv": PEOPLE,
            **{k.replace("__", "/").replace("_dot_", "."): v for k, v in files.items()},
        }
        for name, text in contents.items():
            path = tmp_path / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text) if name.endswith(".toml") else text)
        return tmp_path

    return make


@pytest.fixture
def fakes() -> dict[str, Any]:
    """Fresh counting renderers, registered as ``fake`` (voice) and ``noise`` (sfx/music)."""
    return {"fake": CountingVoice(), "noise": CountingSound()}


def speech_like(seconds: int, seed: int, sr: int = 48000) -> np.ndarray:
    """Speech-band noise in syllables and words, with plosive-like transients (stereo float32).

    Its peak-to-loudness ratio is ~20 dB, so mastering to -16 LUFS under
    -1.3 dBTP needs several dB of limiting.
    """
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    band = butter(4, [150, 4000], btype="bandpass", fs=sr, output="sos")
    y = sosfilt(band, rng.standard_normal((n, 2)), axis=0)
    syllables = np.clip(np.sin(2 * np.pi * 4 * np.arange(n) / sr), 0, None) ** 2
    words = np.repeat(rng.random(3 * seconds + 3) < 0.8, sr // 3)[:n]
    y *= (syllables * words)[:, None]
    for at in rng.integers(0, n - 200, 20):
        y[at : at + 200] *= 3
    return (0.3 * y / np.abs(y).max()).astype(np.float32)


@pytest.fixture
def built(show: Callable[..., Path], fakes: dict[str, Any]) -> Path:
    """The default show, built once with the counting fakes, their counts then cleared."""
    from .test_build import doit

    root = show()
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    fakes["fake"].calls.clear()
    fakes["noise"].calls.clear()
    return root
