"""``mixdown.lock``: what every target of a show was built from, and what it sounded like.

The lock lives at the show's root and is committed with it. It has one table
per target: its content key and, per asset, the renderer, the sha256 and
duration of the audio (and the provider's request id and bill where there are
ones); per mix its key and duration; per master and delivery the keys they
were made from and, per file in ``build/``, its sha256, duration, loudness and
true peak::

    ["voice:daily/weather/intro/0"]
    key = "6f1d…"
    renderer = "piper"
    renderer_version = "1"
    sha256 = "9a0c…"
    seconds = 2.345

    ["master:daily/weather"]
    key = "…"
    mix = "…"
    files = [
      { file = "build/daily/weather.wav", sha256 = "…", seconds = 18.1, lufs = -16.0, true_peak = -2.3 },
    ]

It is written by hand, not by a TOML library, so that its layout never
moves: tables in a fixed order (voice, sfx, music, mix, master, deliver; by
target name within a kind), fields in a fixed order, a blank line between
tables. An edit then changes only the lines of the targets it touched, and
two edits of different scripts on two branches merge in git without a
conflict. It is read with :mod:`tomllib`.

This module is the format and its comparison (:func:`compare`, what
``mixdown diff`` prints); the build writes it from what it made
(:mod:`mixdown.actions.locking`).
"""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import ConfigError
from ..show.reader import committed_text, parsed_toml
from ..store.files import write_if_changed
from .model import Plan

__all__ = [
    "FILENAME",
    "KIND_ORDER",
    "VERSION",
    "Change",
    "Entry",
    "FileEntry",
    "Lock",
    "Wanted",
    "as_written",
    "at_revision",
    "compare",
    "describe",
    "differences",
    "digest",
    "dumps",
    "fingerprint",
    "loads",
    "read",
    "wanted",
    "write",
]

FILENAME = "mixdown.lock"
VERSION = 1
#: the order of the tables, by the kind before the target name's colon
KIND_ORDER = ("voice", "sfx", "music", "mix", "master", "deliver")
_HEADER = (
    "# mixdown.lock: every target's content key and the audio it produced (see the README).\n"
    "# Written by mixdown at the end of each build that changes it: commit it with the show.\n"
)
_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f]')  # what a TOML basic string cannot hold as it is
_ASSET_FIELDS = ("key", "renderer", "renderer_version", "sha256", "seconds", "request_id", "billed")


class FileEntry(NamedTuple):
    """One published file of a master or delivery, as the lock records it."""

    file: str  # relative to the show's root, with forward slashes
    sha256: str
    seconds: float
    lufs: float
    true_peak: float


@dataclass(frozen=True)
class Entry:
    """One target's table: its key, and what is known of what it produced.

    Assets fill ``renderer`` … ``billed``; mixes ``seconds``; masters and
    deliveries ``mix`` and ``files``. Fields that do not apply are None (or empty).
    """

    target: str
    key: str
    renderer: str | None = None
    renderer_version: str | None = None
    sha256: str | None = None
    seconds: float | None = None
    request_id: str | None = None
    billed: str | None = None
    mix: str | None = None
    files: tuple[FileEntry, ...] = ()

    @property
    def kind(self) -> str:
        """``voice``, ``sfx``, ``music``, ``mix``, ``master`` or ``deliver``."""
        return self.target.split(":", 1)[0]


@dataclass(frozen=True)
class Lock:
    """Every entry of a lock, by target name."""

    entries: Mapping[str, Entry] = field(default_factory=dict)

    def keys(self) -> set[str]:
        """Every content key the lock references (each entry's ``key``, and a master's ``mix``)."""
        found = {entry.key for entry in self.entries.values()}
        found.update(entry.mix for entry in self.entries.values() if entry.mix)
        return found

    def get(self, target: str) -> Entry | None:
        """The entry of ``target``, or None."""
        return self.entries.get(target)

    def __len__(self) -> int:
        return len(self.entries)


def as_written(entry: Entry) -> Entry:
    """``entry`` with its figures rounded as the file holds them (what reading it back gives)."""
    files = tuple(
        FileEntry(f.file, f.sha256, _rounded(f.seconds, 3), _rounded(f.lufs, 2), _rounded(f.true_peak, 2))
        for f in entry.files
    )
    seconds = _rounded(entry.seconds, 3) if entry.seconds is not None else None
    return replace(entry, seconds=seconds, files=files)


def _rounded(value: float, digits: int) -> float:
    return round(value, digits) + 0.0 if math.isfinite(value) else value


class Wanted(NamedTuple):
    """What the plan wants of one target's entry: its key, and for a master or delivery its files."""

    key: str
    files: tuple[str, ...] = ()

    def matches(self, entry: Entry | None) -> bool:
        """Whether ``entry`` is for this key (and these files)."""
        return (
            entry is not None and entry.key == self.key and tuple(f.file for f in entry.files) == self.files
        )


def _order(target: str) -> tuple[int, str]:
    kind = target.split(":", 1)[0]
    return (KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER), target)


# -- writing -------------------------------------------------------------------------------


def dumps(lock: Lock) -> str:
    """The text of ``lock``: the header, ``version``, then every table in :data:`KIND_ORDER`."""
    parts = [_HEADER, f"version = {VERSION}\n"]
    for target in sorted(lock.entries, key=_order):
        parts.append("\n" + _table(lock.entries[target]))
    return "".join(parts)


def write(path: Path, lock: Lock) -> bool:
    """Write ``lock`` to ``path`` atomically, unless the file already holds exactly that text.

    Returns whether it was written (an unchanged lock keeps its bytes and
    modification time).
    """
    return write_if_changed(path, dumps(lock).encode("utf-8"))


def _table(entry: Entry) -> str:
    lines = [f"[{_string(entry.target)}]"]
    for name in _ASSET_FIELDS:
        value = getattr(entry, name)
        if value is not None:
            lines.append(f"{name} = {_value(value, 3)}")
    if entry.mix is not None:
        lines.append(f"mix = {_string(entry.mix)}")
    if entry.files:
        lines.append("files = [")
        lines.extend(f"  {_file(item)}," for item in entry.files)
        lines.append("]")
    return "\n".join(lines) + "\n"


def _file(item: FileEntry) -> str:
    return (
        f"{{ file = {_string(item.file)}, sha256 = {_string(item.sha256)}, seconds = {_value(item.seconds, 3)}, "
        f"lufs = {_value(item.lufs, 2)}, true_peak = {_value(item.true_peak, 2)} }}"
    )


def _value(value: Any, digits: int) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(_rounded(value, digits))
    return str(value)


def _string(text: str) -> str:
    """``text`` as a TOML basic string: quotes, backslashes and control characters escaped."""
    if not _ESCAPED.search(text):
        return f'"{text}"'
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


# -- reading -------------------------------------------------------------------------------


def read(path: Path) -> Lock:
    """The lock in ``path`` (empty when there is none).

    Raises :class:`~mixdown.errors.ConfigError` naming the file for one
    that cannot be read (a merge left conflict markers, a hand edit broke it).
    """
    text = committed_text(path)
    return Lock() if text is None else loads(text, path.name)


def loads(text: str, name: str = FILENAME) -> Lock:
    """The lock in ``text`` (``name`` is the file it came from, for messages)."""
    data = parsed_toml(
        text, name, "resolve it (a merge conflict?) or delete it: the next build writes it again"
    )
    if data.get("version") != VERSION:
        raise ConfigError(
            f"{name}: version {data.get('version')!r} is not one this mixdown reads ({VERSION}); "
            "upgrade mixdown, or delete the file: the next build writes it again"
        )
    entries = {}
    for target, table in data.items():
        if target == "version":
            continue
        try:
            entries[target] = _entry(target, table)
        except (TypeError, ValueError, KeyError) as err:
            raise ConfigError(
                f'{name}: ["{target}"] is not an entry mixdown wrote ({err}); restore it from git or '
                "delete the file: the next build writes it again"
            ) from None
    return Lock(entries)


def _entry(target: str, table: Any) -> Entry:
    if not isinstance(table, dict) or not isinstance(table.get("key"), str):
        raise ValueError("no key")
    found: dict[str, Any] = {name: table[name] for name in _ASSET_FIELDS if name in table}
    if "seconds" in found:
        found["seconds"] = float(found["seconds"])
    if isinstance(table.get("mix"), str):
        found["mix"] = table["mix"]
    files = tuple(
        FileEntry(
            str(item["file"]),
            str(item["sha256"]),
            float(item["seconds"]),
            float(item["lufs"]),
            float(item["true_peak"]),
        )
        for item in table.get("files", [])
    )
    return Entry(target, files=files, **found)


def at_revision(root: Path, rev: str) -> Lock | None:
    """The lock of the show in ``root`` as it was at the git revision ``rev``.

    Read with ``git show REV:mixdown.lock`` (the path relative to ``root``,
    which may be a folder of the repository). None when git is missing,
    ``root`` is not in a repository, ``rev`` is unknown or has no lock.
    """
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "show", f"{rev}:./{FILENAME}"],
            capture_output=True,
            check=False,
        )
    except OSError:
        return None
    if done.returncode != 0:
        return None
    return loads(done.stdout.decode("utf-8"), f"{rev}:{FILENAME}")


# -- the plan's side -----------------------------------------------------------------------


def wanted(plan: Plan, root: Path) -> dict[str, Wanted]:
    """What every target of ``plan`` wants in the lock: its key (and a master's or delivery's files)."""
    out = {asset.task: Wanted(asset.key) for asset in plan.assets.values()}
    for mix in plan.mixes:
        out[f"mix:{mix.name}"] = Wanted(mix.key)
        masters = [p for p in mix.outputs if p.parent.suffix != ".stems"]
        out[f"master:{mix.name}"] = Wanted(mix.master_key, _relative(root, masters))
        for delivery in mix.deliveries:
            out[f"deliver:{mix.name}/{delivery.name}"] = Wanted(
                mix.master_key, _relative(root, delivery.files)
            )
    return out


def fingerprint(plan: Plan, root: Path) -> str:
    """What a lock written for ``plan`` is written for (:func:`digest` of what it wants): the
    plan's own, made when it was planned (:attr:`Plan.lock_fingerprint`), when it has one."""
    return plan.lock_fingerprint or digest(wanted(plan, root), plan)


def digest(want: Mapping[str, Wanted], plan: Plan) -> str:
    """The fingerprint of a lock that holds ``want``: every target's key and files, and what makes
    each of ``plan``'s masters' and deliveries' files current (their stamps)."""
    found = hashlib.sha256()
    found.update("\n".join(f"{t}\t{w.key}\t{' '.join(w.files)}" for t, w in want.items()).encode("utf-8"))
    for mix in plan.mixes:
        stamps = [mix.stamp, *mix.delivery_stamps.values()]
        found.update(("\n" + " ".join(stamps)).encode("utf-8"))
    return found.hexdigest()


def _relative(root: Path, paths: Iterable[Path]) -> tuple[str, ...]:
    # As Path.relative_to, on the text: a no-op build asks this of every rendition's files.
    inside = root.as_posix().rstrip("/") + "/"
    texts = (p.as_posix() for p in paths)
    return tuple(t[len(inside) :] if t.startswith(inside) else t for t in texts)


def differences(want: Mapping[str, Wanted], lock: Lock) -> list[str]:
    """The targets whose entry a build of the plan would add, change or remove, in lock order."""
    out = [target for target, wish in want.items() if not wish.matches(lock.get(target))]
    out.extend(target for target in lock.entries if target not in want)
    return sorted(out, key=_order)


# -- comparing two locks -------------------------------------------------------------------


class Change(NamedTuple):
    """One target whose entry differs between two locks (None: absent on that side)."""

    target: str
    before: Entry | None
    after: Entry | None


def compare(old: Lock, new: Lock) -> list[Change]:
    """Every target whose entry differs from ``old`` to ``new``, in lock order."""
    targets = sorted(set(old.entries) | set(new.entries), key=_order)
    return [Change(t, old.get(t), new.get(t)) for t in targets if old.get(t) != new.get(t)]


_GROUPS = (
    ("lines", ("voice",)),
    ("sfx", ("sfx",)),
    ("beds", ("music",)),
    ("deliverables", ("master", "deliver")),
)


def describe(changes: list[Change], *, text_of: Callable[[str], str | None] = lambda key: None) -> list[str]:
    """``changes`` as a reviewer reads them: lines, SFX, beds and deliverables, with deltas.

    Mixes are counted, not listed (their deliverables say what they sound
    like). ``text_of(key)`` gives a voice line's text where it is known (the
    local cache's record), shown beside a changed line.
    """
    out = []
    for heading, kinds in _GROUPS:
        found = [c for c in changes if c.target.split(":", 1)[0] in kinds]
        if not found:
            continue
        out.append(f"{heading} ({len(found)}):")
        for change in found:
            out.extend(_change_lines(change, text_of))
    mixes = sum(c.target.startswith("mix:") for c in changes)
    if mixes:
        out.append(f"mixes: {mixes} changed")
    return out


def _change_lines(change: Change, text_of: Callable[[str], str | None]) -> list[str]:
    before, after = change.before, change.after
    mark = "+" if before is None else "-" if after is None else "~"
    head = f"  {mark} {change.target}"
    entry = after or before
    assert entry is not None
    if entry.files:
        return [head, *_file_lines(before, after)]
    out = [f"{head}  {_delta(_seconds(before), _seconds(after), 's', 2)}"]
    if before is not None and after is not None and before.key == after.key:
        out[0] += "  (same inputs, different audio: a new render)"
    if entry.kind == "voice":
        texts = [text_of(e.key) if e is not None else None for e in (before, after)]
        if before is not None and after is not None and texts[0] and texts[1] and texts[0] != texts[1]:
            out.append(f'      was "{texts[0]}"')
            out.append(f'      now "{texts[1]}"')
        elif texts[1] or texts[0]:
            out.append(f'      "{texts[1] or texts[0]}"')
    return out


def _seconds(entry: Entry | None) -> float | None:
    return entry.seconds if entry is not None else None


def _file_lines(before: Entry | None, after: Entry | None) -> list[str]:
    old = {f.file: f for f in before.files} if before is not None else {}
    new = {f.file: f for f in after.files} if after is not None else {}
    out = []
    for name in [*new, *(n for n in old if n not in new)]:
        was, now = old.get(name), new.get(name)
        if was == now:
            continue
        pairs = [(getattr(was, a, None), getattr(now, a, None)) for a in ("seconds", "lufs", "true_peak")]
        figures = [
            _delta(*pairs[0], "s", 2),
            _delta(*pairs[1], "LUFS", 1, "LU"),
            _delta(*pairs[2], "dBTP", 1, "dB"),
        ]
        out.append(f"      {name}  " + ", ".join(figures))
    return out


def _delta(was: float | None, now: float | None, unit: str, digits: int, step: str | None = None) -> str:
    """``2.35 -> 2.81 s (+0.46 s)``; one figure when only one side has it or both show the same."""
    if was is None and now is None:
        return ""
    if was is None or now is None or round(was, digits) == round(now, digits):
        return f"{_figure(now if now is not None else was, digits)} {unit}"
    if not (math.isfinite(was) and math.isfinite(now)):
        return f"{_figure(was, digits)} -> {_figure(now, digits)} {unit}"
    change = round(now, digits) - round(was, digits)  # the difference of the figures shown
    return f"{_figure(was, digits)} -> {_figure(now, digits)} {unit} ({change:+.{digits}f} {step or unit})"


def _figure(value: float | None, digits: int) -> str:
    assert value is not None
    return f"{round(value, digits) + 0.0:.{digits}f}"  # + 0.0: no "-0.0"
