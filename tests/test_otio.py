"""The OpenTimelineIO timeline of a rendition, read back with OpenTimelineIO itself."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from mixdown.actions.placement import placement
from mixdown.loader import load_show
from mixdown.renderers import Registry

from .test_build import doit
from .test_captions import SR, Bursts, SpeakingVoice, build, make_show

otio = pytest.importorskip("opentimelineio")


@pytest.fixture
def fakes() -> dict[str, Any]:
    return {"speaking": SpeakingVoice(), "bursts": Bursts()}


def read_back(root: Path, fakes: dict[str, Any]) -> tuple[Any, Any]:
    """The show built; its timeline as OpenTimelineIO reads it, and its programme as mixdown placed it."""
    build(root, fakes)
    timeline = otio.adapters.read_from_file(str(root / "build" / "episode.otio"))
    show = load_show(root, registry=Registry(root, extra=fakes))
    return timeline, placement(show.context, show.plan.mixes[0])


def _items(timeline: Any) -> list[tuple[str, int, int, str]]:
    """Every clip as (bus, start, duration, asset key), in samples, from its place on its track."""
    out = []
    for track in timeline.tracks:
        assert track.kind == otio.schema.TrackKind.Audio
        for clip in track.find_clips():
            where = clip.range_in_parent()
            assert where.start_time.rate == SR and where.duration.rate == SR
            start, frames = where.start_time.value, where.duration.value
            assert start == int(start) and frames == int(frames)  # whole samples
            out.append((track.name.split()[0], int(start), int(frames), clip.metadata["mixdown"]["key"]))
    return sorted(out)


def test_every_item_reads_back_at_its_place_to_the_sample(tmp_path: Path, fakes: dict[str, Any]) -> None:
    root = make_show(tmp_path)
    timeline, programme = read_back(root, fakes)
    assert _items(timeline) == sorted((c.kind, c.start, c.frames, c.key) for c in programme.clips)
    assert {c.kind for c in programme.clips} == {"voice", "sfx", "music"}
    # markers at the sections, titled as the chapters
    markers = [
        (
            m.name,
            m.marked_range.start_time.value,
            m.marked_range.duration.value,
            m.metadata["mixdown"]["chapter"],
        )
        for m in timeline.tracks.markers
    ]
    assert markers == [(s.title, s.start, s.end - s.start, s.chapter) for s in programme.sections]
    assert [m[0] for m in markers] == ["Good morning", "World news", "credits"]
    # without stems, every clip plays its cached asset: a path relative to build/
    for clip in timeline.find_clips():
        url = clip.media_reference.target_url
        target = (root / "build" / unquote(url)).resolve()
        assert target.is_file() and target.parent.parent.name == "objects", url
        assert clip.source_range.start_time.value == 0


def test_with_stems_clips_play_their_stretch_of_the_stem(tmp_path: Path, fakes: dict[str, Any]) -> None:
    root = make_show(tmp_path, extra="stems = true")
    timeline, programme = read_back(root, fakes)
    assert _items(timeline) == sorted((c.kind, c.start, c.frames, c.key) for c in programme.clips)
    for track in timeline.tracks:
        bus = track.name.split()[0]
        for clip in track.find_clips():
            assert clip.media_reference.target_url == f"episode.stems/{bus}.wav"
            assert (root / "build" / "episode.stems" / f"{bus}.wav").is_file()
            # the clip's stretch of the stem is where it sits in the programme
            assert clip.source_range.start_time.value == clip.range_in_parent().start_time.value
            assert clip.media_reference.available_range.duration.value == programme.frames


def test_without_opentimelineio_the_timeline_is_skipped_with_one_line(
    show: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from .conftest import CountingSound, CountingVoice

    monkeypatch.setitem(sys.modules, "opentimelineio", None)  # import fails as if not installed
    root = show()
    code, out, err = doit(root, {"fake": CountingVoice(), "noise": CountingSound()})
    assert code == 0, out + err
    said = [line for line in out.splitlines() if "OpenTimelineIO is not installed" in line]
    assert len(said) == 1 and "pip install 'mixdown[publish]'" in said[0], out
    assert not list((root / "build").rglob("*.otio"))
    assert list((root / "build").rglob("*.vtt"))  # captions need no extra
