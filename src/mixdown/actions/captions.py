"""Captions (WebVTT, SRT) and chapters (Podcasting 2.0 JSON, a text list) of a programme.

Words are timed within each voice line: from the renderer's per-character
alignment when its cache record holds one (ElevenLabs with timestamps:
``meta["alignment"]``, ``[[character, start_seconds], …]``), otherwise
estimated by spreading the line's characters evenly over its voiced span
(where the line's audio is within 40 dB of its loudest 10 ms frame).
Words become cues of one speaker each:

* at most :data:`MAX_LINES` lines of :data:`LINE_CHARS` characters;
* :data:`MIN_CUE` to :data:`MAX_CUE` long (a short line's cue is held
  on, or started earlier, to last :data:`MIN_CUE`);
* never overlapping, never across a section's boundary.

Times are whole milliseconds throughout, so the rules hold exactly in the
written files. Text is shown as written (before pronunciation rules).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import numpy as np

    from .placement import Programme

__all__ = [
    "Chapter",
    "Cue",
    "LINE_CHARS",
    "MAX_CUE",
    "MAX_LINES",
    "MIN_CUE",
    "SpokenWords",
    "Word",
    "caption_cues",
    "chapters",
    "chapters_json",
    "chapters_text",
    "line_words",
    "srt",
    "voiced_span",
    "vtt",
]

LINE_CHARS = 42
MAX_LINES = 2
MIN_CUE = 1000  # ms
MAX_CUE = 7000  # ms
_SILENCE_DB = -40.0  # below the line's loudest frame: not voiced
_SENTENCE_END = re.compile(r"[.!?…][\"')\]]*$")


class Word(NamedTuple):
    """A word and when it is spoken, in seconds (from the start of its line, or of the programme)."""

    text: str
    start: float
    end: float


class SpokenWords(NamedTuple):
    """A voice line's words placed in the programme: who speaks, and which section it is in."""

    voice: str
    section: int
    words: tuple[Word, ...]


class Cue(NamedTuple):
    """One caption: ``[start, end)`` in milliseconds, its speaker and its lines of text."""

    start: int
    end: int
    voice: str
    lines: tuple[str, ...]


class Chapter(NamedTuple):
    """A chapter of a programme: from ``start`` to ``end`` seconds, and its title."""

    start: float
    end: float
    title: str


# -- words ----------------------------------------------------------------------


def voiced_span(audio: np.ndarray, sr: int) -> tuple[float, float]:
    """Where ``audio`` [shape=(n, channels)] is voiced: the first and last 10 ms frame within
    40 dB of its loudest, in seconds; the whole of it when it is silent throughout."""
    import numpy as np

    hop = max(1, sr // 100)
    frames = len(audio) // hop
    if frames == 0:
        return 0.0, len(audio) / sr
    power = np.mean(np.square(audio[: frames * hop].astype(np.float64)).reshape(frames, -1), axis=1)
    loud = np.flatnonzero(power > power.max() * 10 ** (_SILENCE_DB / 10))
    if power.max() <= 0 or len(loud) == 0:
        return 0.0, len(audio) / sr
    return float(loud[0] * hop / sr), float(min(len(audio), (loud[-1] + 1) * hop) / sr)


def line_words(
    text: str,
    spoken: str,
    voiced: tuple[float, float],
    alignment: Sequence[Sequence[Any]] | None = None,
) -> list[Word]:
    """When each word of a line's ``text`` (as written) is spoken, in seconds from the line's start.

    Parameters
    ----------
    text : str
        The line as written, as captions show it.
    spoken : str
        The text the voice was given (pronunciation rules applied).
    voiced : tuple of float
        Where the line's audio is voiced (:func:`voiced_span`).
    alignment : sequence of [character, start_seconds], optional
        The renderer's timing of ``spoken``, character by character.

    Returns
    -------
    list of Word
        With an alignment, a word starts when its first character does and
        ends when the character after it starts (the last at the end of the
        voiced span). Without, the characters of ``text`` share the voiced
        span evenly. When ``text`` and ``spoken`` differ, a written
        character is timed as the spoken one at the same fraction of the text.
    """
    found = [(m.group(0), m.start(), m.end()) for m in re.finditer(r"\S+", text)]
    if not found:
        return []
    first, last = voiced
    total = len(text)
    if not alignment:
        span = max(last - first, 0.0)
        return [Word(w, first + a / total * span, first + b / total * span) for w, a, b in found]
    times = [float(t) for _, t in alignment]
    same = "".join(str(c) for c, _ in alignment) == text

    def at(offset: int) -> float:
        index = offset if same else round(offset * len(times) / total)
        return times[index] if index < len(times) else max(last, times[-1])

    return [Word(w, at(a), max(at(a), at(b))) for w, a, b in found]


# -- cues -----------------------------------------------------------------------


def _wrapped(words: Sequence[str]) -> tuple[str, ...] | None:
    """``words`` on at most two lines of :data:`LINE_CHARS`, as even as can be; None if they do not fit."""
    whole = " ".join(words)
    if len(whole) <= LINE_CHARS:
        return (whole,)
    best: tuple[str, ...] | None = None
    for cut in range(1, len(words)):
        top, bottom = " ".join(words[:cut]), " ".join(words[cut:])
        if len(top) <= LINE_CHARS and len(bottom) <= LINE_CHARS:
            if best is None or max(len(top), len(bottom)) < max(len(x) for x in best):
                best = (top, bottom)
    return best


def _pieces(word: Word) -> list[Word]:
    """A word longer than a caption line, cut in pieces that fit (timed by their characters)."""
    if len(word.text) <= LINE_CHARS:
        return [word]
    n, span = len(word.text), word.end - word.start
    cuts = range(0, n, LINE_CHARS)
    return [
        Word(
            word.text[a : a + LINE_CHARS],
            word.start + a / n * span,
            word.start + min(n, a + LINE_CHARS) / n * span,
        )
        for a in cuts
    ]


def _grouped(words: Sequence[Word]) -> list[list[Word]]:
    """A line's words in groups that fit a cue: two lines of text, seven seconds, ended early at
    the end of a sentence once a cue has lasted a second."""
    groups: list[list[Word]] = []
    for word in (piece for w in words for piece in _pieces(w)):
        group = groups[-1] if groups else None
        if group is not None:
            fits = _wrapped([w.text for w in [*group, word]]) is not None
            short = _ms(word.end) - _ms(group[0].start) <= MAX_CUE
            ended = (
                _SENTENCE_END.search(group[-1].text) and _ms(group[-1].end) - _ms(group[0].start) >= MIN_CUE
            )
            if fits and short and not ended:
                group.append(word)
                continue
        groups.append([word])
    return groups


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def caption_cues(lines: Sequence[SpokenWords], bounds: Sequence[tuple[float, float]]) -> list[Cue]:
    """The cues of a programme's voice lines (words in programme seconds, in order).

    ``bounds`` is each section's ``(start, end)`` in seconds: no cue crosses one. Cues are
    held to :data:`MIN_CUE` by lengthening them into the silence after (up to the next cue or
    the section's end), else by starting them earlier (after the cue before).
    """
    cues: list[Cue] = []
    for index, (low, high) in enumerate(bounds):
        start_ms, end_ms = _ms(low), _ms(high)
        raw = [
            (_ms(group[0].start), _ms(group[-1].end), line.voice, _wrapped([w.text for w in group]) or ())
            for line in lines
            if line.section == index
            for group in _grouped(line.words)
        ]
        cues.extend(_timed(raw, start_ms, end_ms, cues[-1].end if cues else 0))
    return cues


def _timed(raw: list[tuple[int, int, str, tuple[str, ...]]], low: int, high: int, before: int) -> list[Cue]:
    """One section's cues, kept within ``[low, high)`` and after ``before``, 1 to 7 s each, in order.

    Forwards, a cue starts when its first word does (or when the cue before ends) and is held
    on to last a second, into the silence before the next; backwards, a cue with no room left
    before the section's end (or the next cue) starts earlier, and the one before it ends there.
    """
    out: list[list[Any]] = []
    for index, (start, end, voice, lines) in enumerate(raw):
        start = max(start, low, before, out[-1][1] if out else 0)
        following = raw[index + 1][0] if index + 1 < len(raw) else high
        end = min(max(end, start + MIN_CUE), start + MAX_CUE, high)
        if following - start >= MIN_CUE:
            end = min(end, following)
        out.append([start, end, voice, lines])
    limit = high
    for cue in reversed(out):
        cue[1] = min(cue[1], limit)
        if cue[1] - cue[0] < MIN_CUE:
            cue[0] = max(low, before, cue[1] - MIN_CUE)
        limit = cue[0]
    return [Cue(*cue) for cue in out]


# -- files ----------------------------------------------------------------------


def _clock(ms: int, point: str) -> str:
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}{point}{rest % 1000:03d}"


def _escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def vtt(cues: Sequence[Cue]) -> str:
    """The cues as WebVTT, each line's speaker in a ``<v Voice>`` tag."""
    out = ["WEBVTT", ""]
    for cue in cues:
        out.append(f"{_clock(cue.start, '.')} --> {_clock(cue.end, '.')}")
        text = [_escaped(line) for line in cue.lines]
        out += [f"<v {_escaped(cue.voice)}>{text[0]}", *text[1:], ""]
    return "\n".join(out)


def srt(cues: Sequence[Cue]) -> str:
    """The cues as SubRip (SRT), numbered from 1."""
    out = []
    for number, cue in enumerate(cues, 1):
        out += [str(number), f"{_clock(cue.start, ',')} --> {_clock(cue.end, ',')}", *cue.lines, ""]
    return "\n".join(out)


def chapters(programme: Programme) -> list[Chapter]:
    """The chapters of ``programme``: one per section not marked ``chapter=no``.

    Parameters
    ----------
    programme : Programme
        A rendition as laid out (:func:`mixdown.actions.placement.placement`).

    Returns
    -------
    list of Chapter
        In seconds; a section's chapter runs from its start (the first
        section's from 0, over the bed's lead-in) to the next section's start,
        the last to the programme's end; titled ``title=`` or the section's name.
    """
    sr = programme.sample_rate
    return [
        Chapter(0.0 if index == 0 else span.start / sr, span.end / sr, span.title)
        for index, span in enumerate(programme.sections)
        if span.chapter
    ]


def chapters_json(found: Sequence[Chapter]) -> str:
    """Podcasting 2.0 JSON chapters (version 1.2.0): start and end in seconds, and title."""
    entries = [{"startTime": round(c.start, 3), "endTime": round(c.end, 3), "title": c.title} for c in found]
    return json.dumps({"version": "1.2.0", "chapters": entries}, indent=2, ensure_ascii=False) + "\n"


def chapters_text(found: Sequence[Chapter]) -> str:
    """The chapters as show notes list them: ``00:00 Title`` (``0:00:00`` from an hour on)."""
    hours = any(c.start >= 3600 for c in found)

    def stamp(seconds: float) -> str:
        h, rest = divmod(int(seconds), 3600)
        m, s = divmod(rest, 60)
        return f"{h}:{m:02d}:{s:02d}" if hours else f"{m:02d}:{s:02d}"

    return "".join(f"{stamp(c.start)} {c.title}\n" for c in found)
