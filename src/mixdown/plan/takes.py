"""Takes: a new render of an asset whose inputs did not change, asked for by name.

An asset renders once per content key, and a generative renderer (a cloud
voice, a sound or music model) gives a different take each time it is asked.
To hear another, ``mixdown retake TARGET…`` gives the asset a take number,
kept in ``takes.toml`` at the show's root. The number enters the asset's
content key (the first take, 0, leaves the key as it always was), so the new
take renders once, is cached beside the old ones, and every mix, master and
file in ``build/`` that uses it is made again; ``doit forget`` and ``doit
clean`` keep it. ``--take N`` goes back to an earlier take, which is still
in the cache: nothing renders.

``takes.toml`` is part of the show: commit it, and teammates and CI hear the
same takes. Each entry is keyed by the asset's first-take key, so renaming
or moving the section that uses it keeps the take, while an edit of its text
or settings makes a new asset whose first take renders::

    ["6f1d…"]                       # the asset's key at take 0
    take = 2
    target = "voice:daily/briefing/intro/0"
    text = "Good morning."
    used_by = ["mix:daily/briefing@anna", "mix:daily/briefing@kofi"]

``target``, ``text`` and ``used_by`` say what the take is for (a reviewer
reads them in a diff); only ``take`` is read back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..keys import record
from ..show.reader import committed_text, parsed_toml
from ..store.files import write_bytes_atomic

__all__ = ["FILENAME", "load", "read", "save"]

FILENAME = "takes.toml"
_KEY = re.compile(r"^[0-9a-f]{64}$")
_HEADER = "# Takes asked for with `mixdown retake` (see the README). Commit this file with the show.\n"


def load(root: Path) -> dict[str, int]:
    """The take number of every asset that has one, by its first-take key (empty without a file).

    Raises :class:`~mixdown.errors.ConfigError` naming the line of an entry that is not usable.
    """
    path = root / FILENAME
    record(path)  # a retake plans the show again, as any edit does
    text = committed_text(path)
    if text is None:
        return {}
    data = parsed_toml(
        text, FILENAME, "restore it from git or delete it (every asset goes back to its first take)"
    )
    takes: dict[str, int] = {}
    for key, entry in data.items():
        take = entry.get("take") if isinstance(entry, dict) else None
        if not _KEY.match(key) or isinstance(take, bool) or not isinstance(take, int) or take < 0:
            raise ConfigError(
                f'{FILENAME}:{_line(text, key)}: ["{key}"] needs a 64-digit content key and take = a whole '
                "number >= 0; use `mixdown retake` to change takes"
            )
        if take:
            takes[key] = take
    return takes


def read(root: Path) -> dict[str, dict[str, Any]]:
    """Every entry of ``takes.toml`` as written (after :func:`load` has checked it)."""
    import tomllib

    path = root / FILENAME
    if not path.is_file():
        return {}
    return {key: dict(entry) for key, entry in tomllib.loads(path.read_text("utf-8")).items()}


def save(root: Path, entries: Mapping[str, Mapping[str, Any]]) -> None:
    """Write ``takes.toml`` atomically, entries in key order (stable, merge-friendly diffs)."""
    parts = [_HEADER]
    for key in sorted(entries):
        entry = entries[key]
        parts.append(f'\n["{key}"]\n')
        for field in ("take", "target", "text", "used_by"):
            if field in entry:
                parts.append(f"{field} = {_toml_value(entry[field])}\n")
    write_bytes_atomic(root / FILENAME, "".join(parts).encode("utf-8"))


def _toml_value(value: Any) -> str:
    """A TOML value: a JSON string or list of strings is valid TOML, and so is an integer."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return "[" + ", ".join(_toml_value(v) for v in _strings(value)) + "]"


def _strings(values: Iterable[Any]) -> list[str]:
    return [str(v) for v in values]


def _line(text: str, key: str) -> int:
    for number, raw in enumerate(text.splitlines(), start=1):
        if key in raw and raw.lstrip().startswith("["):
            return number
    return 1


def retake(root: Path, plan: Any, patterns: list[str], *, take: int | None = None) -> list[str]:
    """Give the assets named by ``patterns`` their next take (or take ``take``); return a report line each.

    ``plan`` is the show's :class:`~mixdown.plan.model.Plan`. A pattern is a target
    name as ``doit list --all`` prints it, or a shell-style pattern over them
    (``voice:daily/briefing/*``); ``music:BED`` (or any of its segments) names
    the whole bed, whose segments are made together. Raises
    :class:`~mixdown.errors.ConfigError` when a pattern names no asset.
    """
    from fnmatch import fnmatchcase

    assets = list(plan.assets.values())
    chosen: dict[str, Any] = {}
    for pattern in patterns:
        found = [a for a in assets if fnmatchcase(a.task, pattern) or _same_bed(a.task, pattern)]
        if not found:
            raise ConfigError(_unknown(pattern, [a.task for a in assets], plan))
        chosen.update((plan.first_take(a.key), a) for a in found)
    entries = read(root)
    lines = []
    for first, asset in chosen.items():
        was = int(entries.get(first, {}).get("take", 0))
        now = was + 1 if take is None else take
        users = [f"mix:{m.name}" for m in plan.mixes if asset.key in m.assets]
        entry: dict[str, Any] = {"take": now, "target": asset.task}
        if asset.text:
            entry["text"] = asset.text
        entries[first] = {**entry, "used_by": users}
        shown = ", ".join(users[:3]) + (f" and {len(users) - 3} more" if len(users) > 3 else "")
        lines.append(f"{asset.task}  take {now} (was {was}); used by {shown or 'no mix'}")
    save(root, {k: v for k, v in entries.items() if int(v.get("take", 0)) or k in chosen})
    return lines


def _same_bed(task: str, pattern: str) -> bool:
    """``music:bed`` and ``music:bed/main`` both name every segment of the bed ``bed``."""
    return (
        task.startswith("music:")
        and pattern.startswith("music:")
        and (task.split("/", 1)[0] == pattern.split("/", 1)[0])
    )


def _unknown(pattern: str, tasks: list[str], plan: Any) -> str:
    from difflib import get_close_matches

    if pattern.split(":", 1)[0] in ("mix", "master", "deliver"):
        return (
            f"{pattern}: retake renders assets again, not mixes or masters; name a voice:, sfx: or music: "
            "target it uses (see `doit list --all`)"
        )
    close = get_close_matches(pattern, tasks, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `doit list --all` for every target"
    return f"{pattern}: no voice, sfx or music target of this show has that name{hint}"
