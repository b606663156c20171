"""build/report.html: one self-contained page; plots per deliverable, or histograms for many variants."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from mixdown.actions import publishing
from mixdown.publish import plots, report
from mixdown.publish.manifest import BuildSummary, Cost, Deliverable, FileReport, Manifest, Spec

from .test_build import doit

HAS_MATPLOTLIB = plots.available()


class Page(HTMLParser):
    """Every tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def assert_self_contained(page: Page) -> None:
    for tag, attrs in page.tags:
        assert tag not in ("script", "link", "iframe"), tag
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http://", "https://", "//")), (tag, value)


def test_the_built_report_has_the_table_and_a_plot_per_deliverable(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = show()
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    text = (root / "build" / "report.html").read_text("utf-8")
    page = parse(text)
    assert_self_contained(page)
    words = "".join(page.text)
    for name in ("news/briefing@anna", "news/briefing@kofi", "news/extra"):
        assert f"build/{name}.wav" in words
    assert "0 out of spec" in words and "12 renders" in words
    svgs = [tag for tag, _ in page.tags if tag == "svg"]
    if HAS_MATPLOTLIB:
        assert len(svgs) == 3
    else:
        assert svgs == [] and plots.MISSING in words


def test_without_matplotlib_the_report_says_how_to_get_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in ("matplotlib", "matplotlib.figure"):  # as if the publish extra were not installed
        monkeypatch.setitem(sys.modules, name, None)
    assert not plots.available()
    made = manifest([-16.0, -16.2, -15.9])
    text = report.html(made, {})
    page = parse(text)
    assert_self_contained(page)
    assert "svg" not in [tag for tag, _ in page.tags]
    assert "pip install 'mixdown[publish]'" in "".join(page.text)


def deliverable(index: int, lufs: float, seconds: float) -> Deliverable:
    spec = Spec("podcast", -16.0, 1.0, -1.0)
    name = f"show@v{index:03d}"
    f = FileReport(
        f"build/{name}.wav", "wav", "0" * 64, seconds, lufs, -2.0, 3.0, -12.0, -14.0, spec.passes(lufs, -2.0)
    )
    return Deliverable(f"master:{name}", name, None, spec, (f,), (), Cost(), Cost())


def manifest(lufs: list[float], seconds: list[float] | None = None) -> Manifest:
    seconds = seconds or [30.0] * len(lufs)
    items = tuple(deliverable(i, v, s) for i, (v, s) in enumerate(zip(lufs, seconds, strict=True)))
    return Manifest("Show", items, BuildSummary(len(items), 0, 0, Cost()), Cost())


def test_many_variants_get_histograms_and_their_outliers() -> None:
    rng = np.random.default_rng(4)
    lufs = list(-16.0 + 0.2 * rng.standard_normal(40))
    seconds = list(30.0 + 0.3 * rng.standard_normal(40))
    lufs[7], seconds[21] = -18.5, 45.0  # one out of spec, one far longer than the rest
    made = manifest(lufs, seconds)
    found = {(o.target, o.measure) for o in report.outliers(made.deliverables)}
    assert found == {("master:show@v007", "LUFS"), ("master:show@v021", "seconds")}
    page = parse(report.html(made, {}))
    assert_self_contained(page)
    svgs = [tag for tag, _ in page.tags if tag == "svg"]
    assert len(svgs) == (2 if HAS_MATPLOTLIB else 0)  # two histograms, never one plot a variant
    words = "".join(page.text)
    assert "master:show@v007" in words and "1 out of spec" in words


def test_a_built_files_series_comes_from_its_spec_check_not_a_second_reading(
    show: Callable[..., Path], fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The master's spec check measured every published file: the report plots what it kept,
    which is what a meter reading the file again finds."""
    import hashlib

    from mixdown.actions import published

    metered = publishing._metered

    def no_second_reading(path: Path) -> Any:
        raise AssertionError(f"{path} read again")

    monkeypatch.setattr(publishing, "_metered", no_second_reading)
    root = show()
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert "read again" not in out + err
    assert HAS_MATPLOTLIB is ("<svg" in (root / "build" / "report.html").read_text("utf-8"))
    context = SimpleNamespace(project=SimpleNamespace(root=root))
    wavs = sorted((root / "build").glob("**/*.wav"))
    assert wavs
    for wav in wavs:
        sha = hashlib.sha256(wav.read_bytes()).hexdigest()
        item = deliverable(0, -16.0, 1.0)
        item = replace(
            item, files=(replace(item.files[0], path=wav.relative_to(root).as_posix(), sha256=sha),)
        )
        points = publishing.short_term(context, item)  # type: ignore[arg-type]
        again = published.keep_series(tmp_path := root / "again.json", metered(wav))
        tmp_path.unlink()
        assert [t for t, _ in points] == [t for t, _ in again] and points
        assert max(abs(a - b) for (_, a), (_, b) in zip(points, again, strict=True)) < 0.05


def test_short_term_loudness_is_read_once_and_matches_a_steady_signal(tmp_path: Path) -> None:
    sr = 48000
    t = np.arange(10 * sr) / sr
    y = (0.1 * np.sin(2 * np.pi * 1000 * t))[:, None].repeat(2, axis=1)
    (tmp_path / "build").mkdir()
    sf.write(tmp_path / "build" / "a.wav", y, sr, subtype="PCM_24")
    expected = pyloudnorm.Meter(sr).integrated_loudness(y)
    item = deliverable(0, expected, 10.0)
    item = replace(item, files=(replace(item.files[0], path="build/a.wav"),))
    context = SimpleNamespace(project=SimpleNamespace(root=tmp_path))
    points = publishing.short_term(context, item)  # type: ignore[arg-type]
    assert [p[0] for p in points] == pytest.approx([3.0 + i for i in range(8)])
    assert all(math.isclose(v, expected, abs_tol=0.05) for _, v in points)
    (tmp_path / "build" / "a.wav").unlink()  # kept by its sha256: not read again
    assert publishing.short_term(context, item) == points  # type: ignore[arg-type]


def test_an_mp3_only_deliverable_is_metered_from_its_frames_without_decoder_noise(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A delivery published only as a low-bitrate MP3 (made as mixdown makes them, with tags before
    its frames): its series follows the audio's, and the decoder prints nothing on the console."""
    from mixdown.codecs.mp3 import encode
    from mixdown.codecs.tags import Tags, write_tags
    from mixdown.dsp.loudness import measure

    sr = 24000
    rng = np.random.default_rng(3)
    t = np.arange(12 * sr) / sr
    y = (0.2 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.5 * t)))[:, None]
    y = (y + 0.01 * rng.standard_normal(y.shape)).astype(np.float32)
    (tmp_path / "build").mkdir()
    sf.write(tmp_path / "build" / "a.wav", y, sr, subtype="FLOAT")
    mp3 = tmp_path / "build" / "a.mp3"
    mp3.write_bytes(encode(y, sr, bitrate=48, vbr=False, quality=2))  # as Alexa's
    write_tags(mp3, "mp3", Tags(title="A"), measure(y, sr))
    context = SimpleNamespace(project=SimpleNamespace(root=tmp_path))
    base = deliverable(0, -20.0, 12.0)
    series = {}
    capfd.readouterr()
    for name, fmt in (("a.wav", "wav"), ("a.mp3", "mp3")):
        item = replace(base, files=(replace(base.files[0], path=f"build/{name}", format=fmt, sha256=name),))
        series[fmt] = publishing.short_term(context, item)  # type: ignore[arg-type]
    assert capfd.readouterr().err == ""
    assert [at for at, _ in series["mp3"]] == [at for at, _ in series["wav"]] and len(series["wav"]) == 10
    for (at, heard), (_, made) in zip(series["mp3"], series["wav"], strict=True):
        assert heard == pytest.approx(made, abs=0.3), at
