"""``[metadata]``: the tags of a show's published files, a Jinja template per field.

``[metadata]`` (and ``[scripts.NAME.metadata]``, whose fields win over it)
names the fields of :data:`mixdown.settings.METADATA_FIELDS`. Each value is
a Jinja template rendered for every rendition with what its stanza sees
(the script's ``vars`` and its variant's row) and ``script`` and
``rendition`` (its name), so each variant gets its own. A show without
either table publishes untagged files, as before tags existed: its files,
its lock and its build stamps stay as they were. With one, ``title``
defaults to the rendition's name and ``album`` to ``[project] name`` (if
given: a name taken from the folder differs between clones, and so would
their files).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..codecs.tags import COVER_TYPES, Tags
from ..errors import ConfigError, TemplateError
from ..keys import record
from ..settings import METADATA_FIELDS

__all__ = ["MetadataTable", "checked", "rendered"]

_DATE = re.compile(r"\d{4}(-\d{2}(-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?)?)?")
_EPISODE = re.compile(r"\d+(/\d+)?")
_TEMPLATE = re.compile(r"{{|{%|{#")


@dataclass(frozen=True)
class MetadataTable:
    """A ``[metadata]`` table as written: each field's template and where it is (``project.toml:LINE``)."""

    values: dict[str, str]
    where: dict[str, str]
    defaults: dict[str, str]  # what a field left out says: the album is the show's [project] name

    def over(self, base: MetadataTable | None) -> MetadataTable:
        """This table's fields over ``base``'s."""
        if base is None:
            return self
        return MetadataTable({**base.values, **self.values}, {**base.where, **self.where}, self.defaults)


def checked(
    table: Mapping[str, Any], where: Callable[[list[str]], str], path: list[str], root: Path, name: str | None
) -> MetadataTable:
    """``table`` (at ``path`` in project.toml) checked: known fields, text (an episode may be a
    number), and a cover that is not templated must be a JPEG or PNG in the show.

    ``name`` is the show's ``[project] name`` if it gives one: the album unless
    the table names one (not the folder's name, which differs between clones).
    """
    values: dict[str, str] = {}
    for key, value in table.items():
        at = where([*path, key])
        if key not in METADATA_FIELDS:
            raise ConfigError(
                f"{at}: unknown key '{key}' in [{'.'.join(path)}]; allowed: {', '.join(sorted(METADATA_FIELDS))}"
            )
        if key == "episode" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{at}: '{key}' must be a string (a Jinja template)")
        if key == "cover" and not _TEMPLATE.search(value):
            _cover(root, value, at, "")
        values[key] = value
    defaults = {"album": name} if name else {}
    return MetadataTable(values, {key: where([*path, key]) for key in values}, defaults)


def rendered(
    root: Path,
    table: MetadataTable,
    variables: dict[str, Any],
    names: tuple[str, str],
    covers: dict[Path, str],
) -> Tags:
    """The :class:`~mixdown.codecs.tags.Tags` of one rendition: ``table`` rendered with
    ``variables``, then checked (a cover is relative to the show's ``root``).

    ``names`` are the script's and the rendition's names;
    ``covers`` the digests of cover images already read (filled here).
    Raises :class:`TemplateError` or :class:`ConfigError` naming the field's
    line in project.toml and the rendition.
    """
    import jinja2

    script, rendition = names
    context = {"script": script, "rendition": rendition, **variables}
    found = {"title": rendition, **table.defaults}
    for key, text in table.values.items():
        at = f"{table.where[key]}: [metadata] {key}"
        try:
            found[key] = (_template(text).render(**context) if _TEMPLATE.search(text) else text).strip()
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as err:
            raise TemplateError(
                f"{at}: {err} (for {rendition}); define it in vars or the variants file"
            ) from None
        _check_value(key, found[key], at, rendition)
    cover = found.pop("cover", "")
    tags = Tags(**found)
    if not cover:
        return tags
    path = _cover(root, cover, table.where["cover"], f" (for {rendition})")
    if path not in covers:
        record(path)
        covers[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return Tags(**found, cover=str(path), cover_sha256=covers[path])


@lru_cache(maxsize=256)
def _template(text: str) -> Any:
    """A field's template, compiled once for every rendition (undefined names are errors,
    nothing is escaped)."""
    import jinja2

    return jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False).from_string(text)


def _check_value(key: str, value: str, at: str, rendition: str) -> None:
    """A rendered field's value is one the tags can hold."""
    if key == "date" and value and not _DATE.fullmatch(value):
        raise ConfigError(f"{at} is {value!r} for {rendition}; give a date as YYYY-MM-DD (or YYYY, YYYY-MM)")
    if key == "episode" and value and not _EPISODE.fullmatch(value):
        raise ConfigError(f"{at} is {value!r} for {rendition}; give the episode as a number (or N/TOTAL)")
    if key not in ("comment", "cover") and "\n" in value:
        raise ConfigError(f"{at} spans lines for {rendition}; keep it on one line")


def _cover(root: str | Path, relative: str, at: str, rendition: str) -> Path:
    """The cover image ``relative`` to the show's ``root``, checked."""
    root = Path(root).resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ConfigError(f"{at}: cover {relative!r} points outside the show{rendition}; keep it inside")
    if path.suffix.lower() not in COVER_TYPES:
        raise ConfigError(f"{at}: cover {relative!r} is not a .jpg or .png{rendition}; convert it")
    if not path.is_file():
        raise ConfigError(f"{at}: cover {relative!r} does not exist{rendition}; check the path")
    return path
