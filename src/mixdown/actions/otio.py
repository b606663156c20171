"""A rendition's programme as an OpenTimelineIO timeline, for video editors.

Tracks ``voice``, ``sfx`` and ``music`` (audio) hold a clip per item at its
place in the programme, gaps between; clips that overlap on a bus (SFX cues
running into each other) go on further tracks, ``sfx 2`` and on. Every time
is a whole number of samples at the project's rate. A clip refers to the
rendition's stem of its bus when [master] stems are written (the stretch
of the stem where it sounds, so the editor hears the mix's processing),
else to the cached asset (the cache object). Media are referred to by URLs
relative to the ``.otio`` file's folder, so that every clone of a show (and
every machine of a build) writes the same file, and moving ``build/`` with
the cache beside it keeps the timeline working. Sections
are markers on the timeline's stack, titled as the chapters are, with their
name and chapter flag in the marker's metadata (``mixdown``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..settings import STEMS
from .placement import Clip, Programme

__all__ = ["timeline_text"]


def timeline_text(programme: Programme, cache: Any, folder: Path, *, stem_dir: Path | None = None) -> str:
    """The OTIO JSON of ``programme``.

    Parameters
    ----------
    programme : Programme
        The rendition as laid out (:func:`mixdown.actions.placement.placement`).
    cache : Cache
        Where the assets live (referred to without stems).
    folder : Path
        The folder the timeline is written in: URLs are relative to it.
    stem_dir : Path, optional
        ``build/P.stems``: clips refer to its ``voice.wav``, ``sfx.wav`` and
        ``music.wav`` instead of the assets.

    Returns
    -------
    str
        The timeline, as ``opentimelineio.adapters.write_to_string`` gives it.
    """
    import opentimelineio as otio

    sr = programme.sample_rate
    timeline = otio.schema.Timeline(name=programme.rendition)
    timeline.global_start_time = otio.opentime.RationalTime(0, sr)
    for bus in STEMS:
        for lane, clips in enumerate(_lanes([c for c in programme.clips if c.kind == bus])):
            track = otio.schema.Track(
                name=bus if lane == 0 else f"{bus} {lane + 1}", kind=otio.schema.TrackKind.Audio
            )
            cursor = 0
            for clip in clips:
                if clip.start > cursor:
                    track.append(otio.schema.Gap(source_range=_range(0, clip.start - cursor, sr)))
                track.append(_clip(clip, programme, cache, _Media(folder, stem_dir)))
                cursor = clip.start + clip.frames
            timeline.tracks.append(track)
    for span in programme.sections:
        marker = otio.schema.Marker(
            name=span.title,
            marked_range=_range(span.start, span.end - span.start, sr),
            metadata={"mixdown": {"section": span.name, "chapter": span.chapter}},
        )
        timeline.tracks.markers.append(marker)
    return str(otio.adapters.write_to_string(timeline, "otio_json"))


def _lanes(clips: list[Clip]) -> list[list[Clip]]:
    """``clips`` on as few non-overlapping lanes as they need, each in order of start."""
    lanes: list[list[Clip]] = []
    for clip in sorted(clips, key=lambda c: (c.start, c.frames)):
        lane = next((lane for lane in lanes if lane[-1].start + lane[-1].frames <= clip.start), None)
        if lane is None:
            lanes.append([clip])
        else:
            lane.append(clip)
    return lanes


def _range(start: int, frames: int, sr: int) -> Any:
    import opentimelineio as otio

    return otio.opentime.TimeRange(
        otio.opentime.RationalTime(start, sr), otio.opentime.RationalTime(frames, sr)
    )


class _Media:
    """Where clips' media are, as URLs relative to the timeline's folder."""

    def __init__(self, folder: Path, stem_dir: Path | None) -> None:
        self.folder, self.stem_dir = folder.resolve(), stem_dir

    def url(self, path: Path) -> str:
        return quote(Path(os.path.relpath(path.resolve(), self.folder)).as_posix(), safe="/@")


def _clip(clip: Clip, programme: Programme, cache: Any, media: _Media) -> Any:
    """An OTIO clip playing ``clip``: a stretch of its bus's stem, or its cached asset."""
    import opentimelineio as otio

    sr = programme.sample_rate
    name = clip.text[:60] if clip.kind == "voice" else clip.segment or clip.kind
    if media.stem_dir is not None:
        url, offset, available = media.url(media.stem_dir / f"{clip.kind}.wav"), clip.start, programme.frames
    else:
        frames, rate, _ = cache.info(clip.key)
        url, offset, available = media.url(Path(cache.path(clip.key))), 0, round(frames * sr / rate)
    reference = otio.schema.ExternalReference(target_url=url, available_range=_range(0, available, sr))
    metadata = {"mixdown": {"key": clip.key, "kind": clip.kind, "voice": clip.voice, "text": clip.text}}
    return otio.schema.Clip(
        name=name or clip.kind,
        media_reference=reference,
        source_range=_range(offset, clip.frames, sr),
        metadata=metadata,
    )
