"""The demo show at the repository root, rendered for real (piper included).

A copy of the demo is built in a temporary directory; the piper renderer is
wrapped to count its calls, so the incremental cases are checked exactly on
real audio.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from mixdown.loader import load_show
from mixdown.renderers import Registry, RenderRequest, RenderResult

from .test_build import doit, ran

REPO = Path(__file__).resolve().parent.parent
DELIVERABLES = ["daily/briefing@anna", "daily/briefing@kofi", "daily/briefing@mei", "daily/weather"]

pytest.importorskip("piper")


def counting_piper() -> Any:
    from mixdown.renderers.local.piper import Piper

    class CountingPiper(Piper):
        """The real piper renderer, counting the lines it speaks."""

        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []

        def render(self, request: RenderRequest) -> RenderResult:
            self.calls.append(request.text)  # the registry serialises piper's calls
            return super().render(request)

    return CountingPiper()


@pytest.fixture(scope="module")
def piper() -> Any:
    return counting_piper()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, piper: Any) -> Path:
    root = tmp_path_factory.mktemp("demo")
    shutil.copy(REPO / "project.toml", root)
    for folder in ("stanzas", "data", "renderers"):
        shutil.copytree(REPO / folder, root / folder)
    code, out, err = build(root, piper)
    assert code == 0, out + err
    return root


def build(root: Path, piper: Any) -> tuple[int, str, str]:
    return doit(root, {"piper": piper}, "-n", "2")


def voice_texts(root: Path, piper: Any, voice: str | None = None) -> set[str]:
    """The distinct texts the show's plan gives to ``voice`` (or to any voice)."""
    show = load_show(root, registry=Registry(root, extra={"piper": piper}))
    return {a.text for a in show.plan.assets.values() if a.kind == "voice" and voice in (None, a.source)}


def true_peak_db(y: np.ndarray) -> float:
    return float(20 * np.log10(np.abs(resample_poly(y, 4, 1, axis=0)).max()))


def test_every_deliverable_is_on_target(demo: Path, piper: Any) -> None:
    assert len(piper.calls) == len(set(piper.calls))  # each distinct line once
    assert set(piper.calls) == voice_texts(demo, piper)
    meter = pyloudnorm.Meter(48000)
    for name in DELIVERABLES:
        wav, sr = sf.read(demo / "build" / f"{name}.wav", always_2d=True)
        mp3, mp3_sr = sf.read(demo / "build" / f"{name}.mp3", always_2d=True)
        assert sr == 48000 and wav.shape[1] == 2 and mp3_sr == 48000
        assert abs(len(mp3) - len(wav)) < 0.1 * sr  # same programme, encoder padding aside
        assert meter.integrated_loudness(wav) == pytest.approx(-16.0, abs=0.3), name
        assert meter.integrated_loudness(mp3) == pytest.approx(-16.0, abs=0.5), name
        assert true_peak_db(wav) <= -1.0 + 0.05 and true_peak_db(mp3) <= -1.0 + 0.1, name
        alexa = demo / "build" / f"{name}.alexa.mp3"  # [deliveries.alexa]: its own preset and format
        flash, flash_sr = sf.read(alexa, always_2d=True)
        assert (flash_sr, flash.shape[1]) == (24000, 1)
        assert abs(pyloudnorm.Meter(24000).integrated_loudness(flash) + 14.0) <= 5.0
        assert true_peak_db(flash) <= -2.0 + 0.1
    briefing, _ = sf.read(demo / "build" / "daily" / "briefing@anna.wav")
    assert 30 < len(briefing) / 48000 < 90


def test_variants_differ_only_in_their_own_lines(demo: Path) -> None:
    anna, _ = sf.read(demo / "build" / "daily" / "briefing@anna.wav")
    kofi, _ = sf.read(demo / "build" / "daily" / "briefing@kofi.wav")
    assert not np.array_equal(anna[: len(kofi)], kofi[: len(anna)])


def test_incremental_edits_render_exactly_what_changed(demo: Path, piper: Any) -> None:
    briefing = demo / "stanzas" / "briefing.j2"
    original = briefing.read_text()
    piper.calls.clear()

    code, out, _ = build(demo, piper)
    assert code == 0 and piper.calls == [] and ran(out) == []

    briefing.write_text(original.replace("It opens to walkers", "It opens to runners"))
    code, out, _ = build(demo, piper)
    assert code == 0 and len(piper.calls) == 1 and "runners" in piper.calls[0]
    assert {t for t in ran(out) if t.startswith("mix:")} == {f"mix:{n}" for n in DELIVERABLES[:3]}

    briefing.write_text(original)
    piper.calls.clear()
    code, out, _ = build(demo, piper)
    assert code == 0 and piper.calls == []

    toml = demo / "project.toml"
    toml.write_text(toml.read_text().replace("speed = 1.15", "speed = 1.2"))
    code, out, _ = build(demo, piper)
    assert code == 0
    reporter = voice_texts(demo, piper, "reporter")
    assert sorted(piper.calls) == sorted(reporter) and len(reporter) == 5  # weather's 4, the briefing's 1
    assert "voice:daily/briefing/headlines/3" in ran(out)
