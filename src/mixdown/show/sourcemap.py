"""Where each line of a rendered template came from: file and source line.

Jinja2 renders a template into text whose line numbers differ from the
template's: whitespace control (``{%- -%}``), loops and includes all move
lines. :class:`LineMarks` is a Jinja2 extension that writes an invisible
mark (private-use characters naming the template and its source line) where
each source line's text starts and before each ``{{ … }}``; the lexer has
already applied whitespace control to the ``data`` tokens it edits, so the
marks land where output lines start. :func:`unmark` takes the marks out
again, returning exactly the text Jinja2 would have rendered without the
extension, and for each of its lines the ``(file, line)`` it came from.

A loop body's lines point at the body's lines on every pass; an included
template's lines point into the included file. Bodies of ``{% set %}…{%
endset %}``, ``{% macro %}``, ``{% call %}`` and ``{% filter %}`` are left
unmarked, because their text may be compared, measured or filtered before
it is output; their lines point at the line that outputs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream

__all__ = ["LineMarks", "Origin", "toml_lines", "unmark"]

_OPEN, _SEP, _CLOSE = "\ue000", "\ue001", "\ue002"
_DIGIT0 = 0xE010  # digits 0-9 as private-use characters, untouched by upper(), trim() and the like
_MARK = re.compile(f"{_OPEN}([\ue010-\ue019]+){_SEP}([\ue010-\ue019]+){_CLOSE}")
_UNMARKED_BLOCKS = {"macro": "endmacro", "call": "endcall", "filter": "endfilter", "set": "endset"}


class Origin(NamedTuple):
    """A line of a template file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def _digits(number: int) -> str:
    return "".join(chr(_DIGIT0 + int(d)) for d in str(number))


_ASCII = str.maketrans({chr(_DIGIT0 + d): str(d) for d in range(10)})


def _number(digits: str) -> int:
    return int(digits.translate(_ASCII))


class LineMarks(Extension):
    """Marks the start of every source line in a template's output (see the module docstring)."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.extend(line_mark_files=[])

    def _mark(self, name: str | None, line: int) -> str:
        files: list[str] = self.environment.line_mark_files  # type: ignore[attr-defined]  # from extend()
        name = name or "<template>"
        if name not in files:
            files.append(name)
        return f"{_OPEN}{_digits(files.index(name))}{_SEP}{_digits(line)}{_CLOSE}"

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        """Yield the template's tokens with marks added to its ``data``."""
        closing: list[str] = []  # the end tags of the unmarked blocks we are in
        tag: list[Token] = []
        for token in stream:
            if tag or token.type == "block_begin":
                tag.append(token)
                if token.type == "block_end":
                    outside = not closing
                    _track(tag, closing)
                    if outside and closing:  # the block's output starts here
                        yield Token(tag[0].lineno, "data", self._mark(stream.name, tag[0].lineno))
                    yield from tag
                    tag = []
            elif closing:
                yield token
            elif token.type == "data":
                yield Token(token.lineno, "data", self._marked(stream.name, token.lineno, token.value))
            elif token.type == "variable_begin":
                yield Token(token.lineno, "data", self._mark(stream.name, token.lineno))
                yield token
            else:
                yield token
        yield from tag

    def _marked(self, name: str | None, first: int, text: str) -> str:
        pieces = text.split("\n")
        return "\n".join(self._mark(name, first + n) + piece for n, piece in enumerate(pieces))


def _track(tag: list[Token], closing: list[str]) -> None:
    """Update ``closing`` for one ``{% … %}`` tag: entering or leaving an unmarked block."""
    words = [t for t in tag if t.type not in ("block_begin", "block_end")]
    if not words or words[0].type != "name":
        return
    word = words[0].value
    if closing and word == closing[-1]:
        closing.pop()
    elif word in _UNMARKED_BLOCKS and not (word == "set" and any(t.type == "assign" for t in words)):
        closing.append(_UNMARKED_BLOCKS[word])


def unmark(text: str, files: list[str], default: str) -> tuple[str, list[Origin]]:
    """Remove the marks from ``text``; return it and the origin of each of its lines.

    ``files`` is the environment's ``line_mark_files``; lines before any
    mark (none in practice) are given ``default`` line 1. The origin of a
    line is the last mark before its first visible character, else (a line
    with none) the last mark before its end. Lines are ``str.splitlines``'s.
    """
    parts = _MARK.split(text)  # text, file, line, text, file, line, …, text
    origins: list[Origin] = []
    last = Origin(default, 1)
    shown: Origin | None = None  # the current line's origin, once it shows a character
    open_line = False
    for i in range(0, len(parts), 3):
        if i:
            last = Origin(files[_number(parts[i - 2])], _number(parts[i - 1]))
        for piece in parts[i].splitlines(keepends=True):
            body = (piece.splitlines() or [""])[0]
            if shown is None and body.strip():
                shown = last
            if len(body) < len(piece):  # the line ends here
                origins.append(shown or last)
                shown, open_line = None, False
            elif body:
                open_line = True
    if open_line:
        origins.append(shown or last)
    return "".join(parts[0::3]), origins


def toml_lines(text: str) -> dict[tuple[str, ...], int]:
    """The line of every table and key of a valid TOML document, by its full dotted path.

    Every form counts: ``[a.b]`` headers, ``[[a]]`` array tables (their
    entries are not told apart), dotted keys (``a.b.c = 1``, each prefix a
    table), quoted keys and inline tables (``a = { b = 1 }``). A path is
    given the line where it first appears.
    """
    return _TomlScanner(text).scan()


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


class _TomlScanner:
    """Walks TOML text the way a parser would, noting where each key path starts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[tuple[str, ...], int] = {}

    def scan(self) -> dict[tuple[str, ...], int]:
        table: tuple[str, ...] = ()
        while self._skip(newlines=True) < len(self.text):
            if self.text.startswith("[", self.pos):
                table = self._header()
            else:
                self._pair(table)
            self._skip_line()
        return self.found

    def _line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def _skip(self, *, newlines: bool) -> int:
        """Skip spaces (and newlines and comments, if ``newlines``); return the new position."""
        text = self.text
        while self.pos < len(text):
            c = text[self.pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self.pos += 1
            elif newlines and c == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                break
        return self.pos

    def _skip_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1

    def _note(self, path: tuple[str, ...], line: int) -> None:
        for n in range(1, len(path) + 1):
            self.found.setdefault(path[:n], line)

    def _header(self) -> tuple[str, ...]:
        line = self._line()
        self.pos += 2 if self.text.startswith("[[", self.pos) else 1
        path = self._key()
        self._note(path, line)
        return path

    def _key(self) -> tuple[str, ...]:
        """A (dotted, maybe quoted) key at the current position."""
        parts: list[str] = []
        while True:
            self._skip(newlines=False)
            c = self.text[self.pos : self.pos + 1]
            if c in ('"', "'"):
                parts.append(self._string())
            else:
                m = _BARE.match(self.text, self.pos)
                parts.append(m.group(0) if m else "")
                self.pos = m.end() if m else self.pos + 1
            self._skip(newlines=False)
            if not self.text.startswith(".", self.pos):
                return tuple(parts)
            self.pos += 1

    def _pair(self, table: tuple[str, ...]) -> None:
        line = self._line()
        path = table + self._key()
        self._note(path, line)
        self._skip(newlines=False)
        self.pos += 1  # "="
        self._value(path)

    def _string(self) -> str:
        """A string at the current position (any of TOML's four kinds); its raw contents."""
        text, quote = self.text, self.text[self.pos]
        delimiter = quote * 3 if text.startswith(quote * 3, self.pos) else quote
        start = self.pos + len(delimiter)
        end = start
        while True:
            end = text.find(delimiter, end)
            if end < 0:
                end = len(text)
                break
            escapes = len(text[start:end]) - len(text[start:end].rstrip("\\"))
            if quote == "'" or escapes % 2 == 0:
                break
            end += 1
        while delimiter != quote and text.startswith(quote, end + len(delimiter)):
            end += 1  # up to two quotes may close a multi-line string's contents
        self.pos = end + len(delimiter)
        return text[start:end]

    def _value(self, path: tuple[str, ...]) -> None:
        self._skip(newlines=False)
        c = self.text[self.pos : self.pos + 1]
        if c in ('"', "'"):
            self._string()
        elif c in ("[", "{"):  # an array of values, or an inline table of pairs
            close, item = ("]", self._value) if c == "[" else ("}", self._pair)
            self.pos += 1
            while self._skip(newlines=True) < len(self.text) and self.text[self.pos] != close:
                if self.text[self.pos] == ",":
                    self.pos += 1
                else:
                    item(path)
            self.pos += 1
        else:
            m = _SCALAR_END.search(self.text, self.pos)
            self.pos = m.start() if m else len(self.text)
