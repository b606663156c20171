"""The ``captions:`` and ``otio:`` actions: files published beside a rendition's deliverables.

For every published file ``build/P.EXT`` (the [master] formats of a
rendition share one set; a delivery ``build/P.radio.wav`` has its own), the
sidecars are ``build/P.vtt``, ``build/P.srt`` (captions) and
``build/P.chapters.json``, ``build/P.chapters.txt`` (chapters); the rendition's
OpenTimelineIO timeline is ``build/P.otio``. They are made on the machine
running doit, from the cache and the timeline alone (:mod:`~mixdown.actions.placement`),
after the files they go with. ``[publish] captions``, ``chapters`` and
``timeline`` turn them off.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..keys import content_key
from ..plan.model import MixPlan
from ..store import files
from .context import Context, relative, reported

__all__ = [
    "CaptionsJob",
    "PUBLISH_VERSION",
    "build_captions",
    "build_otio",
    "otio_path",
    "otio_stamp",
    "programme_words",
    "sidecar_stems",
    "sidecars",
    "with_assets",
    "write_sidecars",
]

PUBLISH_VERSION = "1"  # bump when the same timeline would give other captions, chapters or timelines
CAPTION_SUFFIXES = (".vtt", ".srt")
CHAPTER_SUFFIXES = (".chapters.json", ".chapters.txt")


def _stem_of(path: Path) -> Path:
    """``build/P.EXT`` → ``build/P``."""
    return path.with_name(path.name.rsplit(".", 1)[0])


def sidecar_stems(plan: MixPlan) -> list[Path]:
    """``build/P`` of each set of sidecars: the [master] files', then each delivery's."""
    stems = [_stem_of(plan.outputs[0])] if plan.outputs else []
    return stems + [_stem_of(d.files[0]) for d in plan.deliveries if d.files]


def sidecars(plan: MixPlan, *, captions: bool = True, chapters: bool = True) -> list[Path]:
    """Every sidecar file of ``plan``'s rendition (those switched on)."""
    suffixes = (CAPTION_SUFFIXES if captions else ()) + (CHAPTER_SUFFIXES if chapters else ())
    return [stem.with_name(stem.name + suffix) for stem in sidecar_stems(plan) for suffix in suffixes]


def otio_path(plan: MixPlan) -> Path:
    """``build/P.otio``: the rendition's timeline, beside its [master] files."""
    stem = sidecar_stems(plan)[0]
    return stem.with_name(stem.name + ".otio")


@dataclass(frozen=True)
class CaptionsJob:
    """What a ``captions:`` task writes: for rendition ``mix``, captions and/or chapters."""

    mix: MixPlan
    captions: bool = True
    chapters: bool = True
    stamp: str = field(default="")

    @classmethod
    def of(cls, mix: MixPlan, *, captions: bool, chapters: bool) -> CaptionsJob:
        """The job, stamped with what its files are made from (the mix's key settles every
        asset and so every duration and alignment; the sections' titles and text are not in it)."""
        made_of = [
            PUBLISH_VERSION,
            mix.key,
            mix.info_digest(),
            [captions, chapters],
            [p.name for p in sidecars(mix, captions=captions, chapters=chapters)],
        ]
        return cls(mix, captions, chapters, content_key(made_of))


def build_captions(context: Context, job: CaptionsJob) -> Any:
    """doit action: write the rendition's captions and chapters beside its deliverables."""
    return reported(write_sidecars, context, job, f"captions:{job.mix.name}")


def write_sidecars(context: Context, job: CaptionsJob) -> dict[str, str]:
    """Write ``job``'s sidecars (each whole or not at all); return the stamp doit keeps."""
    from . import captions as cc
    from .placement import placement

    target = f"captions:{job.mix.name}"
    programme = placement(context, with_assets(context, job.mix, target))
    sr = programme.sample_rate
    texts: dict[str, str] = {}
    if job.captions:
        bounds = [(s.start / sr, s.end / sr) for s in programme.sections]
        cues = cc.caption_cues(programme_words(context, programme), bounds)
        texts |= {".vtt": cc.vtt(cues), ".srt": cc.srt(cues)}
    if job.chapters:
        found = cc.chapters(programme)
        texts |= {".chapters.json": cc.chapters_json(found), ".chapters.txt": cc.chapters_text(found)}
    for stem in sidecar_stems(job.mix):
        stem.parent.mkdir(parents=True, exist_ok=True)
        for suffix, text in texts.items():
            files.write_bytes_atomic(stem.with_name(stem.name + suffix), text.encode("utf-8"))
    for stem in sidecar_stems(job.mix):
        print(f"{target}  {', '.join(texts)}  {relative(context, stem)}", file=sys.stdout)
    return {"stamp": job.stamp}


def programme_words(context: Context, programme: Any) -> list[Any]:
    """Every voice line's words in programme seconds: aligned by the renderer where its cache
    record holds an alignment, else estimated over the line's voiced span."""
    from .captions import SpokenWords, Word, line_words, voiced_span

    out = []
    sr = programme.sample_rate
    for clip in programme.clips:
        if clip.kind != "voice" or not clip.text.strip():
            continue
        meta = context.cache.meta(clip.key)
        alignment = meta.get("alignment")
        seconds = clip.frames / sr
        voiced: tuple[float, float] | None = (0.0, seconds) if alignment else None
        if voiced is None:
            take = (clip.key, str(meta.get("sha256", "")))  # a retake keeps the key, not the audio
            voiced = context.voiced.get(take)
            if voiced is None:
                voiced = context.voiced[take] = voiced_span(*context.cache.get(clip.key))
        words = line_words(clip.text, str(meta.get("text", clip.text)), voiced, alignment)
        at = clip.start / sr
        placed = tuple(Word(w.text, at + min(w.start, seconds), at + min(w.end, seconds)) for w in words)
        out.append(SpokenWords(clip.voice, clip.section, placed))
    return out


def with_assets(context: Context, plan: MixPlan, target: str) -> MixPlan:
    """``plan``, every asset of it in the local cache: fetched from the remote cache where
    another machine made it (a Dask build, a master shipped from the remote); one-line
    :class:`~mixdown.errors.MixdownError` if one is nowhere."""
    from ..errors import MixdownError
    from ..store.remote import Wanted
    from .shared import fetched

    cache = context.cache
    for key in plan.assets:
        if not cache.path(key).exists() and not fetched(context, Wanted(key, target)):
            raise MixdownError(
                f"{target}: asset {key[:12]} of {plan.name} is not in the cache {cache.root}; "
                "run doit again to render it"
            )
    return plan


def tag_chapters(context: Context, plan: MixPlan, target: str) -> list[Any]:
    """The chapters ``plan``'s tagged files carry (ID3 CHAP/CTOC), as
    :class:`mixdown.codecs.tags.Chapter`; none unless its ``chapter_marks`` ask for them."""
    if not plan.chapter_marks:
        return []
    from ..codecs.tags import Chapter
    from .captions import chapters
    from .placement import placement

    return [Chapter(*c) for c in chapters(placement(context, with_assets(context, plan, target)))]


_SKIPPED: set[Path] = set()  # the shows told that their timelines need an extra: told once


def build_otio(context: Context, plan: MixPlan, stamp: str) -> Any:
    """doit action: write the rendition's OpenTimelineIO timeline (``build/P.otio``)."""
    return reported(_write_otio, context, (plan, stamp), f"otio:{plan.name}")


def _write_otio(context: Context, job: tuple[MixPlan, str]) -> dict[str, str] | None:
    from .otio import timeline_text
    from .placement import placement

    plan, stamp = job
    target = f"otio:{plan.name}"
    try:
        import opentimelineio  # noqa: F401  # only to know it is there
    except ImportError:
        if context.project.root not in _SKIPPED:
            _SKIPPED.add(context.project.root)
            print(
                f"{target}  skipped: OpenTimelineIO is not installed; pip install 'mixdown[publish]' "
                "for build/*.otio timelines, or set [publish] timeline = false",
                file=sys.stdout,
            )
        return None
    path = otio_path(plan)
    stems = context.project.master.get("stems", False)
    stem_dir = _stem_dir(plan) if stems else None
    text = timeline_text(
        placement(context, with_assets(context, plan, target)), context.cache, path.parent, stem_dir=stem_dir
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_bytes_atomic(path, text.encode("utf-8"))
    print(f"{target}  timeline  {relative(context, path)}", file=sys.stdout)
    return {"stamp": stamp}


def _stem_dir(plan: MixPlan) -> Path:
    """``build/P.stems``: where [master] stems = true writes the rendition's buses."""
    stem = sidecar_stems(plan)[0]
    return stem.with_name(stem.name + ".stems")


@functools.lru_cache(maxsize=1024)
def _relative(cache: str, folder: str) -> str:
    """The cache's path relative to a folder of ``build/`` (resolved once per folder: every
    rendition's timeline is stamped on every plain build that checks it)."""
    return os.path.relpath(Path(cache).resolve(), Path(folder).resolve())


def otio_stamp(plan: MixPlan, context: Context) -> str:
    """What ``build/P.otio`` is made from: the mix, the sections' titles, and where the media are
    (the stems, or the cache relative to the file)."""
    stems = bool(context.project.master.get("stems", False))
    where = _relative(str(context.cache.root), str(otio_path(plan).parent))
    return content_key([PUBLISH_VERSION, "otio", plan.key, plan.info_digest(), stems, where])
