"""The music bed under a mix: its segments placed per section, looped and crossfaded.

:class:`Music` renders the (unducked) music bus for any range of samples from
a :class:`~mixdown.dsp.mixer.Bed`, as the module docs of :mod:`~mixdown.dsp.mixer` describe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import AudioError
from .clips import prepare, samples
from .items import Bed, MixSettings, Premixed, Section


@dataclass(frozen=True)
class _Span:
    """A section's stretch of music, in samples, and whether it opens/closes the bed."""

    start: int
    end: int
    intro: bool
    outro: bool


@dataclass(frozen=True)
class _Clip:
    """One bed segment placed at ``start``, with ``skip`` samples cut from its head."""

    start: int
    kind: str  # "intro" | "main" | "outro"
    skip: int = 0


@dataclass(frozen=True, eq=False)
class _Segments:
    """The bed at the mix rate and channels, gain applied; ``xf`` is the crossfade
    between segments, ``loop_xf`` the one between repeats of ``main``."""

    intro: np.ndarray
    main: np.ndarray
    outro: np.ndarray
    xf: int
    loop_xf: int


@dataclass(frozen=True)
class _Piece:
    """A placed clip's extent ``[start, stop)`` and its fades, in samples."""

    clip: _Clip
    stop: int
    fade_in: int
    fade_out: int


class Music:
    """The (unducked) music bus, rendered for any range of samples."""

    def __init__(
        self,
        bed: Bed,
        sections: Sequence[Section | Premixed],
        starts: Sequence[int],
        n: int,
        settings: MixSettings,
    ) -> None:
        self.segments = segments = _prepare_bed(bed, settings)
        self.channels = settings.channels
        self.pieces: list[_Piece] = []
        for group in _groups(_spans(sections, starts, n)):
            clips, end = _clips(group, segments), group[-1].end
            for index, clip in enumerate(clips):
                last = index == len(clips) - 1
                stop = end if last else min(clips[index + 1].start + segments.xf, end)
                clean_start = index == 0 and clip.kind != "main" and clip.skip == 0
                fade_in = 0 if clean_start else segments.xf
                fade_out = 0 if last and clip.kind == "outro" else segments.xf
                self.pieces.append(_Piece(clip, stop, fade_in, fade_out))
        self._loop_unit = _loop_unit(segments.main, segments.loop_xf)

    def changed(self, other: Music) -> tuple[int, int] | None:
        """The stretch ``[start, stop)`` outside which this bed and ``other`` (the same bed, laid
        out for another programme) render the same samples; None if they render the same everywhere.

        A piece renders the same where its clip, its fade-in and (before its
        fade-out) its stop are the same.
        """
        lo, hi = None, None
        pairs = list(zip(self.pieces, other.pieces, strict=False))
        extra = self.pieces[len(pairs) :] + other.pieces[len(pairs) :]
        for a, b in pairs:
            if a == b:
                continue
            if (a.clip, a.fade_in) != (b.clip, b.fade_in):
                first = min(a.clip.start, b.clip.start)
            else:
                first = min(a.stop - a.fade_out, b.stop - b.fade_out)
            lo, hi = min(first, lo if lo is not None else first), max(a.stop, b.stop, hi or 0)
        for piece in extra:
            lo = min(piece.clip.start, lo if lo is not None else piece.clip.start)
            hi = max(piece.stop, hi or 0)
        return None if lo is None or hi is None else (max(lo, 0), hi)

    def render(self, start: int, stop: int) -> np.ndarray:
        """The music bus over ``[start, stop)``."""
        out = np.zeros((stop - start, self.channels), dtype=np.float32)
        for piece in self.pieces:
            lo, hi = max(piece.clip.start, start), min(piece.stop, stop)
            if lo < hi:
                y = self._piece(piece, lo - piece.clip.start, hi - piece.clip.start)
                out[lo - start : hi - start] += y
        return out

    def _piece(self, piece: _Piece, first: int, last: int) -> np.ndarray:
        """Samples ``first..last`` (offsets from the clip's start) of a piece, faded."""
        clip, segments = piece.clip, self.segments
        if clip.kind == "main":
            y = _loop_range(segments.main, self._loop_unit, segments.loop_xf, first, last)
        else:
            source = segments.intro if clip.kind == "intro" else segments.outro
            y = np.zeros((last - first, source.shape[1]), dtype=np.float32)
            part = source[clip.skip + first : clip.skip + last]
            y[: len(part)] = part
        if piece.fade_in and first < piece.fade_in:
            k = min(piece.fade_in, last) - first
            y[:k] *= _fades(piece.fade_in)[0][first : first + k]
        length = piece.stop - clip.start
        fade_from = length - min(piece.fade_out, length)  # the fade-out covers [fade_from, length)
        if piece.fade_out and last > fade_from:
            lo = max(first, fade_from)
            curve = _fades(piece.fade_out)[1]
            offset = piece.fade_out - length  # curve index of offset o is o + offset
            y[lo - first :] *= curve[lo + offset : last + offset]
        return y


def _prepare_bed(bed: Bed, settings: MixSettings) -> _Segments:
    """Bring the bed's segments to the mix format and pick a crossfade that fits them."""
    intro, main, outro = (
        prepare(getattr(bed, name), bed.sample_rate, bed.gain_db, settings, f"bed.{name}")
        for name in ("intro", "main", "outro")
    )
    if len(main) < 2:
        raise AudioError(f"bed.main: needs at least 2 samples to loop, got {len(main)}")
    lengths = [len(main) // 2] + [len(y) for y in (intro, outro) if len(y)]
    xf = min(samples(settings.crossfade, settings.sample_rate), *lengths)
    return _Segments(intro, main, outro, xf, 0 if bed.seamless else xf)


def _segments_of(music: str, index: int, count: int) -> tuple[bool, bool] | None:
    """Return (intro, outro) for a section's music choice, or None for silence."""
    if music == "none":
        return None
    if music == "auto":
        return index == 0, index == count - 1
    return music == "intro", music == "outro"


def _spans(sections: Sequence[Section | Premixed], starts: Sequence[int], n: int) -> list[_Span | None]:
    """Cut ``[0, n)`` into one music span per section (None where music is off)."""
    bounds = [0, *starts[1:], n]
    spans: list[_Span | None] = []
    for index, section in enumerate(sections):
        flags = _segments_of(section.music, index, len(sections))
        span = None if flags is None else _Span(bounds[index], bounds[index + 1], *flags)
        spans.append(span)
    return spans


def _groups(spans: Sequence[_Span | None]) -> list[list[_Span]]:
    """Split spans into runs of consecutive sections that have music."""
    groups: list[list[_Span]] = [[]]
    for span in spans:
        if span is None:
            groups.append([])
        else:
            groups[-1].append(span)
    return [group for group in groups if group]


def _clips(group: Sequence[_Span], segments: _Segments) -> list[_Clip]:
    """Place the bed's segments over one run of musical spans, in time order."""
    clips: list[_Clip] = []
    n_intro, n_outro = len(segments.intro), len(segments.outro)
    for span in group:
        if span.intro and n_intro:
            clips.append(_Clip(span.start, "intro"))
            clips.append(_Clip(span.start + n_intro - segments.xf, "main"))
        elif not clips or clips[-1].kind == "outro":
            clips.append(_Clip(span.start, "main"))
        if span.outro and n_outro:
            _add_outro(clips, span, n_outro)
    end = group[-1].end
    return [clip for clip in clips if clip.start < end]


def _add_outro(clips: list[_Clip], span: _Span, length: int) -> None:
    """End ``span`` with the outro, cutting its head if the span is too short."""
    start = max(span.start, span.end - length)
    skip = start - (span.end - length)
    if skip >= length:
        return
    while clips and clips[-1].start >= start:
        clips.pop()
    clips.append(_Clip(start, "outro", skip))


def _loop_unit(main: np.ndarray, xf: int) -> np.ndarray:
    """One period of the main loop: its head crossfaded with the tail of the repeat before."""
    period = len(main) - xf
    fade_in, fade_out = _fades(xf)
    unit = main[:period].copy()
    unit[:xf] = main[:xf] * fade_in + main[period:] * fade_out
    return unit


def _loop_range(main: np.ndarray, unit: np.ndarray, xf: int, first: int, last: int) -> np.ndarray:
    """Samples ``first..last`` of ``main`` repeated, each repeat crossfading over ``xf``.

    The first pass starts clean (``main`` itself), not mid-crossfade.
    """
    period = len(unit)
    out = np.empty((last - first, main.shape[1]), dtype=np.float32)
    pos = first
    while pos < last:
        offset = pos % period
        take = min(period - offset, last - pos)
        out[pos - first : pos - first + take] = unit[offset : offset + take]
        pos += take
    if first < xf:
        head = min(xf, last)
        out[: head - first] = main[first:head]
    return out


@lru_cache(maxsize=8)
def _fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power fade-in and fade-out curves of ``[shape=(n, 1)]`` (shared: read only)."""
    x = (np.arange(n) + 0.5) * (np.pi / 2 / max(n, 1))
    fade_in, fade_out = np.sin(x).astype(np.float32)[:, None], np.cos(x).astype(np.float32)[:, None]
    fade_in.flags.writeable = fade_out.flags.writeable = False
    return fade_in, fade_out
