"""Reading the show's TOML: ``project.toml``'s text, its syntax errors, and typed access to its tables.

:class:`TomlReader` hands out the parsed tables with their types checked, and
every error it raises names the line of ``project.toml`` where the key or
table was written (from :func:`mixdown.show.sourcemap.toml_lines`). The
checks of names and paths that every table shares live here too, so each
table's validator (:mod:`mixdown.show.tables`, :mod:`mixdown.show.sounds`,
:mod:`mixdown.show.project`) says only what is particular to it. The files
mixdown writes beside the show for git (``mixdown.lock``, ``takes.toml``)
are read with :func:`committed_text` and :func:`parsed_toml`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..settings import NAME, kind_name, typed_as

__all__ = [
    "TomlReader",
    "check_name",
    "committed_text",
    "inside",
    "must_exist",
    "parsed_toml",
    "read_text",
    "toml_syntax",
]


def read_text(path: Path, name: str) -> str:
    """The UTF-8 text of a show's file; one-line :class:`ConfigError` if it cannot be read as text.

    ``name`` is how messages name the file (relative to the show).
    """
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a directory, not a file; point at a file") from None
    except OSError as err:
        raise ConfigError(f"{name}: cannot be read ({err.strerror or err}); check the file") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise ConfigError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[err.start]:02x}); save the file as UTF-8"
        ) from None


def committed_text(path: Path) -> str | None:
    """The text of a file mixdown writes beside the show for git (``mixdown.lock``,
    ``takes.toml``); None while there is none. One that cannot be read is a one-line
    :class:`ConfigError`."""
    try:
        return path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path.name}: cannot be read ({err}); restore it from git or delete it") from None


def parsed_toml(text: str, name: str, advice: str) -> dict[str, Any]:
    """``text``, the file ``name``, parsed as TOML; a syntax error is one line ending in ``advice``."""
    import tomllib

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{name}: {err}; {advice}") from None


def toml_syntax(err: Exception) -> str:
    """A one-line message for a TOML syntax error: tomllib's words at its line, and what to do."""
    message = str(err)
    where = re.search(r"\s*\(at line (\d+), column (\d+)\)", message)
    line = getattr(err, "lineno", None) or (int(where.group(1)) if where else None)
    column = getattr(err, "colno", None) or (int(where.group(2)) if where else None)
    if where:
        message = message[: where.start()] + message[where.end() :]
    at = f" at column {column}" if column else ""
    return (
        f"project.toml{f':{line}' if line else ''}: TOML syntax error{at}: {message.strip()}; "
        "check the quotes, brackets and '=' on that line (strings need quotes, tables [name])"
    )


class TomlReader:
    """Typed access to parsed TOML with errors that point at the source line."""

    def __init__(self, text: str, root: Path) -> None:
        from .sourcemap import toml_lines

        self.lines = toml_lines(text)
        self.root = root

    def line(self, path: list[str]) -> int:
        """The line of ``path`` (a table or a key, in any TOML form), else of its nearest parent; 1 if none."""
        for n in range(len(path), 0, -1):
            if tuple(path[:n]) in self.lines:
                return self.lines[tuple(path[:n])]
        return 1

    def where(self, path: list[str]) -> str:
        """``project.toml:LINE`` of ``path``, as messages begin."""
        return f"project.toml:{self.line(path)}"

    def table(self, data: Mapping[str, Any], key: str, path: list[str] | None = None) -> dict[str, Any]:
        """``data[key]`` (``path`` leads to ``data``), which must be a table; ``{}`` if absent."""
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{self.where([*(path or []), key])}: '{key}' must be a table")
        return value

    def check_keys(self, data: Mapping[str, Any], allowed: set[str], path: list[str]) -> None:
        """Refuse a key of ``data`` (at ``path``) that is not ``allowed``, listing those that are."""
        for key in data:
            if key not in allowed:
                scope = f"[{'.'.join(path)}]" if path else "the top level"
                raise ConfigError(
                    f"{self.where([*path, key])}: unknown key '{key}' in {scope}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )

    def typed(self, data: Mapping[str, Any], key: str, kind: Any, path: list[str], default: Any) -> Any:
        """``data[key]`` (or ``default``), which must be of ``kind`` unless it is None."""
        value = data.get(key, default)
        if value is not None and not typed_as(value, kind):
            raise ConfigError(f"{self.where([*path, key])}: '{key}' must be {kind_name(kind)}")
        return value


def check_name(name: str, toml: TomlReader, path: list[str]) -> None:
    """Refuse a table's ``name`` that cannot be part of file and target names."""
    if not NAME.match(name):
        raise ConfigError(
            f"{toml.where(path)}: name {name!r} may use only letters, digits, '_', '-' and '.' "
            "(it becomes part of file and target names)"
        )


def inside(root: Path, relative: str, toml: TomlReader, path: list[str]) -> Path:
    """``root/relative``, resolved; refused if it points outside ``root``."""
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise ConfigError(f"{toml.where(path)}: {relative!r} points outside the project; keep it inside")
    return resolved


def must_exist(toml: TomlReader, path: list[str], relative: str) -> None:
    """Refuse ``relative`` (set at ``path``) unless it names a file inside the show."""
    resolved = inside(toml.root, relative, toml, path)
    if resolved.is_dir():
        raise ConfigError(f"{toml.where(path)}: {relative!r} is a directory; name a file in it")
    if not resolved.is_file():
        raise ConfigError(f"{toml.where(path)}: {relative!r} does not exist; check the path")
