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

__all__ = ["LineMarks", "Origin", "unmark"]

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


def _number(digits: str) -> int:
    return int("".join(str(ord(c) - _DIGIT0) for c in digits))


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

    ``files`` is the environment's ``line_mark_files``; a line before any
    mark (none in practice) is given ``default`` line 1. The origin of a
    line is the last mark before its first visible character, else the last
    mark before the line.
    """
    origins: list[Origin] = []
    last = Origin(default, 1)
    for line in text.splitlines():
        marks = list(_MARK.finditer(line))
        lead = [m for m in marks if m.start() < _first_visible(line)]
        origins.append(_origin(lead[-1], files) if lead else last)
        if marks:
            last = _origin(marks[-1], files)
    return _MARK.sub("", text), origins


def _first_visible(line: str) -> int:
    """The index of the first character of ``line`` that is neither a mark nor a space."""
    plain = _MARK.sub(lambda m: _OPEN * len(m.group(0)), line)
    return next((i for i, c in enumerate(plain) if c != _OPEN and not c.isspace()), len(line))


def _origin(mark: re.Match[str], files: list[str]) -> Origin:
    return Origin(files[_number(mark.group(1))], _number(mark.group(2)))
