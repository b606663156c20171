"""The stanza syntax: a rendered script template → sections of items.

::

    ## intro music=intro
    Good morning, {{ name }}! [sfx:chime] Here is the news.

    [voice:ben] Thanks, Anna. [pause 0.8s] First, the weather.

    [sfx:door]

    ## weather voice=ben
    …

    ## news at=1:30 duck_db=-18
    …

* ``## name key=value …`` starts a section. Settings: ``voice`` (a declared
  voice), ``music`` (``auto``, ``intro``, ``main``, ``outro`` or ``none``),
  ``at`` and ``duck_*`` (below). Text before the first heading belongs to a
  section named ``main``.
* ``at=TIME`` pins the section: its first item starts exactly TIME after the
  start of the programme, whatever came before (the gap before it stretches;
  the build fails if the content before runs past it). TIME is ``90``,
  ``90s``, ``1500ms``, ``1:30`` or ``1:02:03.5``; markers must increase from
  section to section. Parsed into :attr:`ScriptSection.at` (seconds).
* ``duck_db``, ``duck_attack``, ``duck_release``, ``duck_hold`` override the
  ``[mix]`` ducking settings under this section's speech: ``duck_db=-18``
  (dB, at most 0), ``duck_attack=0.1`` / ``0.1s`` / ``100ms`` (seconds, at
  least 0). Parsed into :attr:`ScriptSection.duck` (only the ones given).
* ``title="World news"`` names the section's chapter (the section name
  otherwise); ``chapter=no`` leaves it out of the chapters (``yes`` is the
  default). Neither reaches the audio or any content key.
* Paragraphs (separated by blank lines) become voice lines; line breaks
  inside a paragraph are spaces.
* ``[voice:name]`` at the start of a paragraph speaks it with that voice.
* ``[sfx:name]`` inside text plays a cue anchored at that point of the line;
  alone in a paragraph it plays in sequence, taking its own time.
* ``[pause 1.5s]`` / ``[pause 300ms]`` / ``[pause]`` (0.5 s) inserts silence;
  inside a paragraph it splits the line in two.

Other bracketed text (``[laughs]``) is spoken as written; ``[word:…]`` with an
unknown word is an error, so typos in directives do not reach a voice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import TemplateError
from ..settings import DUCK_SETTINGS, MUSIC_CHOICES, NAME, RANGES

__all__ = [
    "CueRef",
    "Play",
    "Rest",
    "Say",
    "ScriptSection",
    "parse",
    "pronounce",
    "split_line",
]

SECTION_SETTINGS = ("voice", "music", "at", *DUCK_SETTINGS)
CHAPTER_SETTINGS = ("title", "chapter")  # for chapters and captions only: never in a key
#: a heading's words: ``key="a quoted value"`` or a run without spaces
_WORD = re.compile(r'[^\s"=]+="[^"]*"|\S+')
_HEADING = re.compile(r"^##(?!#)\s*(.*)$")
_DIRECTIVE = re.compile(r"\[(sfx|voice|pause)(?::\s*([^\]\s]*))?(?:\s+([^\]]*))?\]")
_UNKNOWN = re.compile(r"\[([A-Za-z_]+):[^\]]*\]")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)?$")
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d{1,2}(?:\.\d+)?)$")  # [h:]m:s
_DECIBELS = re.compile(r"^[+-]?\d+(?:\.\d+)?$")


class _Written:
    """What has a place in a template (an item, a section's heading): ``file`` and ``line``."""

    file: str
    line: int

    @property
    def where(self) -> str:
        """``file:line`` for messages."""
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class CueRef:
    """An SFX cue anchored at character ``at`` of its line's text."""

    sfx: str
    at: int
    where: str = field(default="", compare=False)  # ``file:line`` of the directive, for messages


@dataclass(frozen=True)
class Say(_Written):
    """A voice line: ``voice`` (``None`` = the section's) speaks ``text``."""

    text: str
    voice: str | None
    cues: tuple[CueRef, ...]
    line: int
    file: str = field(default="", compare=False)  # the template the line is in (an include's, maybe)


@dataclass(frozen=True)
class Rest(_Written):
    """Silence in the sequence."""

    seconds: float
    line: int
    file: str = field(default="", compare=False)


@dataclass(frozen=True)
class Play(_Written):
    """An SFX played in sequence, taking its own time."""

    sfx: str
    line: int
    file: str = field(default="", compare=False)


@dataclass
class ScriptSection(_Written):
    """A named part of a script with its settings and items in order.

    ``settings`` holds ``voice`` and ``music`` as written; ``at`` is the fixed
    start of the section's first item in seconds from the programme start
    (``None``: it follows the section before), and ``duck`` the ducking
    settings the heading overrides (names from :data:`DUCK_SETTINGS`).
    """

    name: str
    line: int
    settings: dict[str, str] = field(default_factory=dict)
    items: list[Say | Rest | Play] = field(default_factory=list)
    at: float | None = None
    duck: dict[str, float] = field(default_factory=dict)
    file: str = field(default="", compare=False)
    title: str = ""  # the chapter's title as written; "" for the section's name
    chapter: bool = True  # False: ``chapter=no``, left out of the chapters
    heading: bool = True  # False: the text before any ``##`` heading (named "main")


def parse(text: str, *, source: str, origins: Sequence[tuple[str, int]] | None = None) -> list[ScriptSection]:
    """Parse rendered stanza ``text``; errors name where each line came from.

    ``origins`` gives, for each line of ``text``, the template file and
    source line it was rendered from (see :mod:`mixdown.show.sourcemap`);
    without it, line *n* of ``text`` is line *n* of ``source``.
    """
    lines = text.splitlines()
    where = list(origins or ())[: len(lines)]
    where += [(source, n) for n in range(len(where) + 1, len(lines) + 1)]
    sections: list[ScriptSection] = []
    paragraph: list[tuple[tuple[str, int], str]] = []

    def flush() -> None:
        if paragraph:
            if not sections:
                sections.append(
                    ScriptSection("main", paragraph[0][0][1], file=paragraph[0][0][0], heading=False)
                )
            sections[-1].items.extend(_paragraph(paragraph))
            paragraph.clear()

    for origin, raw in zip(where, lines, strict=True):
        heading = _HEADING.match(raw.strip())
        if heading:
            flush()
            sections.append(_heading(heading.group(1), origin, sections))
        elif raw.strip():
            paragraph.append((origin, raw.strip()))
        else:
            flush()
    flush()
    if not sections:
        raise TemplateError(f"{source}: the script is empty; add a '## section' with text")
    for section in sections:
        if not any(isinstance(item, (Say, Play)) for item in section.items):
            raise TemplateError(f"{section.where}: section '{section.name}' is empty; add text or remove it")
    return sections


def _heading(rest: str, origin: tuple[str, int], before: list[ScriptSection]) -> ScriptSection:
    words = _WORD.findall(rest)
    where = f"{origin[0]}:{origin[1]}"
    if not words:
        raise TemplateError(f"{where}: a section heading needs a name: '## intro'")
    name = words[0]
    if not NAME.match(name):
        raise TemplateError(
            f"{where}: section name {name!r} has a character that is not allowed; "
            "use letters, digits, '_', '-' and '.', starting with a letter or digit: '## intro'"
        )
    earlier = next((s for s in before if s.name == name), None)
    if earlier is not None:
        raise TemplateError(
            f"{where}: section '{name}' appears twice (first at {_seen(earlier, origin[0])}); "
            "section names are unique"
        )
    section = ScriptSection(name, origin[1], file=origin[0])
    given: dict[str, str] = {}
    for word in words[1:]:
        key, eq, value = word.partition("=")
        if not eq or key not in SECTION_SETTINGS + CHAPTER_SETTINGS or not value:
            raise TemplateError(
                f"{where}: bad section setting {word!r}; use "
                + ", ".join(f"{k}=…" for k in SECTION_SETTINGS[:-1])
                + f' or {SECTION_SETTINGS[-1]}=…; for chapters title="…" or chapter=no'
            )
        if key in given:
            raise TemplateError(f"{where}: section setting {key}= is given twice; keep one")
        given[key] = word
        if key == "at":
            section.at = RANGES[key].check(key, _marker(value, word, where), where, TemplateError)
        elif key == "duck_db":
            section.duck[key] = RANGES[key].check(key, _decibels(value, word, where), where, TemplateError)
        elif key in DUCK_SETTINGS:
            section.duck[key] = RANGES[key].check(key, _time(value, word, where), where, TemplateError)
        elif key == "title":
            section.title = _title(value, word, where)
        elif key == "chapter":
            section.chapter = _yes_no(value, word, where)
        else:
            section.settings[key] = value
    if section.settings.get("music", "auto") not in MUSIC_CHOICES:
        raise TemplateError(
            f"{where}: music={section.settings['music']} is not a bed part; use one of {', '.join(MUSIC_CHOICES)}"
        )
    section.duck = {k: section.duck[k] for k in DUCK_SETTINGS if k in section.duck}
    if section.at is not None:
        last = next((s for s in reversed(before) if s.at is not None), None)
        if last is not None and last.at is not None and section.at <= last.at:
            raise TemplateError(
                f"{where}: section '{name}' {given['at']} is not after section '{last.name}' "
                f"({_seen(last, origin[0])}) at {_clock(last.at)}; "
                "markers must increase down the script; put the sections in time order"
            )
    return section


def _title(value: str, word: str, where: str) -> str:
    """Parse ``title=``: ``"World news"`` (quoted, for spaces) or ``News``; not empty."""
    quoted = len(value) >= 2 and value[0] == value[-1] == '"'
    title = value[1:-1].strip() if quoted else value
    if not title or '"' in title:
        raise TemplateError(f'{where}: bad title {word!r}; write title="World news" (in double quotes)')
    return title


def _yes_no(value: str, word: str, where: str) -> bool:
    """Parse ``chapter=``: ``yes`` or ``no``."""
    if value not in ("yes", "no"):
        raise TemplateError(f"{where}: bad setting {word!r}; write chapter=no (or chapter=yes)")
    return value == "yes"


def _seen(section: ScriptSection, file: str) -> str:
    """Where an earlier ``section`` is: ``line 4`` in the same file, else ``other.j2:4``."""
    return f"line {section.line}" if section.file == file else section.where


def _marker(value: str, word: str, where: str) -> float:
    """Parse ``at=`` TIME: ``90``, ``90s``, ``1500ms``, ``1:30`` or ``1:02:03.5``."""
    hint = "write at=90, at=90s, at=1500ms, at=1:30 or at=1:02:03.5"
    if value.startswith("-"):
        raise TemplateError(f"{where}: {word!r} is before the programme starts; {hint}")
    clock = _CLOCK.match(value)
    if clock:
        hours, minutes, seconds = clock.group(1), clock.group(2), clock.group(3)
        if float(seconds) >= 60 or (hours is not None and int(minutes) >= 60):
            raise TemplateError(f"{where}: bad time {word!r}: minutes and seconds go up to 59; {hint}")
        return int(hours or 0) * 3600.0 + int(minutes) * 60.0 + float(seconds)
    seconds = _duration(value)
    if seconds is None:
        raise TemplateError(f"{where}: bad time {word!r}; {hint}")
    return seconds


def _time(value: str, word: str, where: str) -> float:
    """Parse a ducking time: ``0.1``, ``0.1s`` or ``100ms``, at least 0."""
    key = word.partition("=")[0]
    seconds = _duration(value)
    if seconds is None:
        problem = "cannot be negative" if value.startswith("-") else "is not a time"
        raise TemplateError(f"{where}: {word!r} {problem}; write {key}=0.1, {key}=0.1s or {key}=100ms")
    return seconds


def _duration(value: str) -> float | None:
    """``value`` in seconds when it is a duration (``1.5``, ``1.5s``, ``300ms``), else None."""
    m = _DURATION.match(value)
    return None if m is None else float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)


def _decibels(value: str, word: str, where: str) -> float:
    """Parse ``duck_db=``: a number of dB, at most 0."""
    if not _DECIBELS.match(value):
        raise TemplateError(f"{where}: {word!r} is not a number of dB; write duck_db=-18")
    db = float(value)
    if db > 0:
        raise TemplateError(f"{where}: {word!r} would raise the bed; use 0 or less, like duck_db=-18")
    return db + 0.0  # -0 → 0


def _clock(seconds: float) -> str:
    """``seconds`` as a marker is written: ``45``, ``1:30``, ``1:02:03.5``."""
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}"
    if not minutes and not hours:
        return text
    text = f"{int(minutes)}:{'0' if secs < 10 else ''}{text}"
    return f"{int(hours)}:{'0' if minutes < 10 else ''}{text}" if hours else text


def _paragraph(lines: list[tuple[tuple[str, int], str]]) -> list[Say | Rest | Play]:
    """The items of one paragraph; ``lines`` are its (origin, stripped text) lines."""
    (file, first), _ = lines[0]
    text = " ".join(part for _, part in lines)
    starts = [0]
    for _, part in lines[:-1]:
        starts.append(starts[-1] + len(part) + 1)

    def at(offset: int) -> tuple[str, int]:
        """The origin of the paragraph line that holds character ``offset`` of ``text``."""
        return lines[max(i for i, s in enumerate(starts) if s <= offset)][0]

    def where(offset: int) -> str:
        return "{}:{}".format(*at(offset))

    bad = next((m for m in _UNKNOWN.finditer(text) if m.group(1) not in ("sfx", "voice")), None)
    if bad:
        raise TemplateError(
            f"{where(bad.start())}: unknown directive {bad.group(0)!r}; "
            "use [sfx:name], [voice:name] or [pause 1s]"
        )
    voice: str | None = None
    items: list[Say | Rest | Play] = []
    spoken: list[str] = []
    cues: list[tuple[CueRef, tuple[str, int]]] = []
    pos = 0

    def emit_line() -> None:
        said = re.sub(r"\s+", " ", "".join(spoken))
        lead = len(said) - len(said.lstrip())
        said = said.strip()
        anchored = tuple(
            CueRef(c.sfx, min(max(c.at - lead, 0), len(said)), "{}:{}".format(*origin)) for c, origin in cues
        )
        if said:
            items.append(Say(said, voice, anchored, first, file))
        else:
            items.extend(Play(c.sfx, line, cue_file) for c, (cue_file, line) in cues)
        spoken.clear()
        cues.clear()

    for m in _DIRECTIVE.finditer(text):
        spoken.append(text[pos : m.start()])
        pos = m.end()
        kind, name, arg = m.group(1), m.group(2), m.group(3)
        here = where(m.start())
        if kind == "sfx":
            offset = len(re.sub(r"\s+", " ", "".join(spoken)))
            cues.append((CueRef(_named(name, m.group(0), here), offset), at(m.start())))
        elif kind == "voice":
            if "".join(spoken).strip() or items:
                raise TemplateError(f"{here}: [voice:…] must open the paragraph")
            voice = _named(name, m.group(0), here)
        else:
            emit_line()
            pause_file, pause_line = at(m.start())
            items.append(Rest(_seconds(arg or name or "", m.group(0), here), pause_line, pause_file))
    spoken.append(text[pos:])
    emit_line()
    return items


def _named(name: str | None, directive: str, where: str) -> str:
    if not name or not NAME.match(name):
        raise TemplateError(f"{where}: {directive!r} needs a name, like [sfx:chime]")
    return name


def _seconds(arg: str, directive: str, where: str) -> float:
    arg = arg.strip()
    if not arg:
        return 0.5
    value = _duration(arg)
    if value is None:
        raise TemplateError(f"{where}: bad pause {directive!r}; write [pause 1.5s] or [pause 300ms]")
    return RANGES["pause"].check("pause", value, where, TemplateError)


_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+")


def split_line(say: Say, max_chars: int | None) -> list[Say]:
    """Split a voice line into lines of at most ``max_chars`` characters.

    Splits at sentence boundaries (then at commas or spaces for a sentence
    that alone is too long), so each piece is a natural unit for a renderer's
    per-request limit. Cues keep their place in the piece they fall in.
    """
    if max_chars is None or len(say.text) <= max_chars:
        return [say]
    pieces: list[tuple[int, int]] = []
    start = 0
    for cut in _cut_points(say.text, max_chars):
        pieces.append((start, cut))
        start = cut
    pieces.append((start, len(say.text)))
    out: list[Say] = []
    for begin, end in pieces:
        chunk = say.text[begin:end]
        lead = len(chunk) - len(chunk.lstrip())
        text = chunk.strip()
        last = end == len(say.text)
        cues = tuple(
            CueRef(c.sfx, min(max(c.at - begin - lead, 0), len(text)), c.where)
            for c in say.cues
            if begin <= c.at < end or (last and c.at == end)
        )
        out.append(Say(text, say.voice, cues, say.line))
    return out


def _cut_points(text: str, limit: int) -> list[int]:
    """Positions to cut ``text`` at so that no piece exceeds ``limit``."""
    bounds = [m.end() for m in _SENTENCE_END.finditer(text)]
    cuts: list[int] = []
    start = 0
    while len(text[start:].strip()) > limit:
        fitting = [b for b in bounds if start < b and len(text[start:b].strip()) <= limit]
        if not fitting:
            window = text[start : start + limit]
            soft = max(window.rfind(", "), window.rfind("; "))
            space = window.rfind(" ")
            fitting = [start + (soft + 2 if soft > limit // 3 else space + 1 if space > 0 else limit)]
        cuts.append(fitting[-1])
        start = fitting[-1]
    return cuts


def pronounce(text: str, rules: dict[str, str]) -> str:
    """Apply whole-word pronunciation rules (``{"SQL": "sequel"}``) to ``text``."""
    if not rules:
        return text
    words = sorted(rules, key=len, reverse=True)
    pattern = re.compile(r"(?<!\w)(" + "|".join(re.escape(w) for w in words) + r")(?!\w)")
    return pattern.sub(lambda m: rules[m.group(0)], text)
