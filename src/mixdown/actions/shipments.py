"""What a rendition publishes in ``build/``, shared through the remote cache (``[cache] share = "all"``).

A master task publishes the [master] files (and the stems, when asked for),
a delivery task one ``[deliveries.NAME]``'s files: a *shipment*, under the
key :func:`~mixdown.plan.model.shipment_key`. Once the files are in place
and recorded (:mod:`mixdown.actions.published`), :func:`upload` sends them on
the remote's background pool beside the build: each file named by its
content, then, LAST and created only if absent, a record naming them
(:class:`Record`; the layout is in :mod:`mixdown.store.remote`).

Before a master or delivery is made, :func:`fetched` looks its record up.
Each file is downloaded beside its place in ``build/`` and checked against
the record's size and sha256; only when every one is whole are they
published, recorded and printed as made ones would be, and the master is
not made at all. The lock's entries then come out byte for byte as the
author's. A corrupt file is reported on one line and the files are made
here (their upload replaces the remote's); a missing record (an upload
that was interrupted) is simply not there.

:func:`status` and :func:`push` serve ``mixdown status`` and ``mixdown push``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..plan.lock import FileEntry
from ..plan.model import MixPlan, Plan, shipment_key
from ..store import files, transfers
from ..store.remote import Remote, corrupt_line
from . import published
from .context import Context, relative
from .locking import check_pinned

__all__ = [
    "FROM_REMOTE",
    "Record",
    "Shipment",
    "ShippedFile",
    "Standing",
    "fetched",
    "push",
    "shipment",
    "shipments",
    "status",
    "upload",
]

#: what the lines of files that came from the remote end with
FROM_REMOTE = "(from the remote cache)"


class Shipment(NamedTuple):
    """The files one master or delivery task publishes, as the remote cache shares them."""

    key: str  # mixdown.plan.model.shipment_key
    target: str  # master:news, deliver:news/podcast
    plan: MixPlan
    delivery: str | None  # the [deliveries.NAME], None for the [master] files


class ShippedFile(NamedTuple):
    """One file of a shipment as its record lists it; a stem has no measurement."""

    file: str  # relative to the show's root, as mixdown.lock writes it
    name: str  # the remote file's name after the key: <sha256[:16]>.<ext>
    sha256: str
    size: int
    seconds: float | None = None
    lufs: float | None = None
    true_peak: float | None = None
    shown: str | None = None  # the measurement as the build printed it


@dataclass(frozen=True)
class Record:
    """A shipment's record on the remote: what it was made from, and its files."""

    kind: str  # "master" or "delivery"
    key: str
    target: str
    mix: str
    master: str
    files: tuple[ShippedFile, ...]
    stems: tuple[ShippedFile, ...] = ()

    def to_json(self) -> bytes:
        """The record's bytes on the remote."""
        data = {
            "kind": self.kind,
            "key": self.key,
            "name": self.target,
            "mix": self.mix,
            "master": self.master,
            "files": [f._asdict() for f in self.files],
            "stems": [f._asdict() for f in self.stems],
        }
        return json.dumps(data, indent=1, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Record:
        """The record in ``data``; :class:`ValueError` if it is not one."""
        try:
            found = json.loads(data)
            listed = [tuple(_file(item) for item in found[name]) for name in ("files", "stems")]
            return cls(
                str(found["kind"]),
                str(found["key"]),
                str(found["name"]),
                str(found["mix"]),
                str(found["master"]),
                listed[0],
                listed[1],
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"not a shipment's record ({err})") from None


def _file(item: dict[str, Any]) -> ShippedFile:
    """A listed file; fields a later mixdown may add are left out, not a reason to distrust it."""
    return ShippedFile(**{name: value for name, value in item.items() if name in ShippedFile._fields})


class _Measured(NamedTuple):
    """A file's loudness as :func:`mixdown.actions.published.record` reads a measurement."""

    integrated: float
    true_peak: float


def shipment(plan: MixPlan, delivery: str | None = None) -> Shipment:
    """The shipment of ``plan``'s [master] files, or of its ``[deliveries.NAME]`` named ``delivery``."""
    target = f"master:{plan.name}" if delivery is None else f"deliver:{plan.name}/{delivery}"
    return Shipment(shipment_key(plan, delivery), target, plan, delivery)


def shipments(plan: Plan) -> list[Shipment]:
    """Every shipment of ``plan``: each rendition's [master] files, then its deliveries."""
    return [shipment(mix, name) for mix in plan.mixes for name in (None, *(d.name for d in mix.deliveries))]


def _paths(ship: Shipment) -> tuple[list[Path], list[Path]]:
    """The files of ``ship`` in ``build/``, and its stems."""
    plan = ship.plan
    if ship.delivery is not None:
        return list(plan.delivery(ship.delivery)[1]), []
    stems = [p for p in plan.outputs if p.parent.suffix == ".stems"]
    return [p for p in plan.outputs if p.parent.suffix != ".stems"], stems


def _shares(context: Context) -> Remote | None:
    remote = context.remote
    return remote if remote is not None and remote.shares("master") else None


# -- writing ---------------------------------------------------------------------------------


def upload(
    context: Context, plan: MixPlan, delivery: str | None = None, made: tuple[tuple[Path, Any], ...] = ()
) -> bool:
    """Write-through: upload the files ``plan``'s master (or ``delivery``) task just published,
    beside the build; whether an upload was started.

    ``made`` are the files with their measurements, as the task printed them.
    Nothing goes when the remote does not share masters, or when the files
    in ``build/`` are not those recorded for the current plan.
    """
    remote = _shares(context)
    return remote is not None and _upload(context, remote, shipment(plan, delivery), made)


def _upload(context: Context, remote: Remote, ship: Shipment, made: tuple[tuple[Path, Any], ...]) -> bool:
    """:func:`upload` of ``ship`` to ``remote``."""
    listed = _current(context, ship)
    if listed is None:
        return False
    shown = {os.fspath(path): str(found) for path, found in made}
    root = context.project.root
    entries = [(root / f.file, f, shown.get(os.fspath(root / f.file))) for f in listed]
    stems = [(p, relative(context, p).as_posix()) for p in _paths(ship)[1]]
    remote.background(ship.target, lambda fs: _send(remote, fs, ship, entries, stems))
    return True


def _current(context: Context, ship: Shipment) -> tuple[FileEntry, ...] | None:
    """The files of ``ship`` as recorded when published, if ``build/`` holds them as they were
    made from the current plan (and its stems, if it has any); else None."""
    plan = ship.plan
    found = published.read(context, plan, ship.delivery)
    main, stems = _paths(ship)
    wanted = tuple(relative(context, p).as_posix() for p in main)
    if (
        found is None
        or (found.mix, found.master) != (plan.key, plan.master_key)
        or tuple(f.file for f in found.measured) != wanted
        or not found.intact()
        or not all(p.is_file() for p in stems)
    ):
        return None
    return found.measured


def _send(
    remote: Remote,
    fs: Any,
    ship: Shipment,
    entries: list[tuple[Path, FileEntry, str | None]],
    stems: list[tuple[Path, str]],
) -> int:
    """Upload ``ship``'s files, then its record (on the upload pool); the bytes sent.

    ``stems`` are each stem's path and its name relative to the show's root.
    """
    listed = [
        ShippedFile(
            entry.file,
            _name(entry.sha256, path),
            entry.sha256,
            os.path.getsize(path),
            entry.seconds,
            entry.lufs,
            entry.true_peak,
            shown,
        )
        for path, entry, shown in entries
    ]
    stem_files = []
    for path, name in stems:  # hashed here, off the build's path
        sha = files.sha256_of(path)
        stem_files.append(ShippedFile(name, _name(sha, path), sha, os.path.getsize(path)))
    force = ship.key in remote.bad  # the remote's copy was corrupt: replace it
    if not force and fs.exists(remote.path(ship.key, "json")):
        return 0  # shared already (this build made what another had not finished sharing)
    sent = 0
    for path, item in zip(
        [p for p, _, _ in entries] + [p for p, _ in stems], listed + stem_files, strict=True
    ):
        rpath = remote.path(ship.key, item.name)
        if force:
            transfers.put_over(fs, path, rpath)
        else:
            try:
                transfers.put_new(fs, path, rpath)
            except FileExistsError:
                continue  # named by its content: the same bytes are there
        sent += item.size
    record = Record(
        "master" if ship.delivery is None else "delivery",
        ship.key,
        ship.target,
        ship.plan.key,
        ship.plan.master_key,
        tuple(listed),
        tuple(stem_files),
    )
    body = record.to_json()
    try:
        (transfers.put_over if force else transfers.put_new)(fs, body, remote.path(ship.key, "json"))
    except FileExistsError:
        return sent  # another machine's record went up first: it names whole files too
    remote.wrote(ship.key)
    return sent + len(body)


def _name(sha256: str, path: Path) -> str:
    """A file's name on the remote after its shipment's key: by its content and format."""
    return f"{sha256[:16]}{path.suffix}"


class Standing(NamedTuple):
    """Where one shipment stands: in ``build/`` as made from the current plan, and on the remote."""

    shipment: Shipment
    built: bool
    held: bool


def status(context: Context, plan: Plan, held: set[str]) -> list[Standing]:
    """Where each of ``plan``'s shipments stands; ``held`` are the keys the remote has records of."""
    return [Standing(s, _current(context, s) is not None, s.key in held) for s in shipments(plan)]


def push(context: Context, remote: Remote, plan: Plan, held: set[str]) -> list[Standing]:
    """Upload to ``remote`` (on its pool: drain it) every shipment of ``plan`` that ``build/``
    holds and the remote lacks; where each stood."""
    found = status(context, plan, held)
    for item in found:
        if item.built and not item.held:
            _upload(context, remote, item.shipment, ())
    return found


# -- reading ---------------------------------------------------------------------------------


def fetched(context: Context, plan: MixPlan, delivery: str | None = None, *, quiet: bool = False) -> bool:
    """Read-through: whether ``plan``'s [master] files (or ``delivery``'s) are now in ``build/``,
    published from the remote cache, recorded, printed and checked as made ones are.

    False (having said why, for a corrupt file or an unusable remote) when
    they must be made here. ``quiet``: their lines are not printed (a cluster's
    worker that made them printed its own).
    """
    remote = _shares(context)
    ship = shipment(plan, delivery)
    if remote is None or ship.key in remote.absent or ship.key in remote.bad or not remote.usable():
        return False
    main, stems = _paths(ship)
    record = _record(remote, ship, tuple(relative(context, p).as_posix() for p in main + stems))
    if record is None:
        return False
    pairs = list(zip(main + stems, record.files + record.stems, strict=True))
    tmps = _downloaded(remote, ship, pairs)
    if tmps is None:
        return False
    try:
        published.forget(context, plan, delivery)  # the files are about to be replaced
        for (path, _), tmp in zip(pairs, tmps, strict=True):
            files.publish(tmp, path)
    finally:
        for tmp in tmps:
            files.discard(tmp)  # none left once published
    _recorded(context, ship, record, main, stems, quiet=quiet)
    return True


def _record(remote: Remote, ship: Shipment, names: tuple[str, ...]) -> Record | None:
    """``ship``'s record on the remote, if it has one for these very files (``names``,
    relative to the show's root: the files, then the stems)."""
    fs, _ = remote.filesystem()
    try:
        record = Record.from_json(fs.cat_file(remote.path(ship.key, "json")))
    except FileNotFoundError:
        remote.absent.add(ship.key)
        return None
    except ValueError:
        remote.bad.add(ship.key)  # unreadable: this build's upload replaces it
        return None
    except Exception as err:
        remote.warn(err)
        return None
    listed = tuple(f.file for f in (*record.files, *record.stems))
    return record if listed == names else None  # its key names these files: a stranger's otherwise


def _downloaded(remote: Remote, ship: Shipment, pairs: list[tuple[Path, ShippedFile]]) -> list[str] | None:
    """Each listed file downloaded into a temporary file beside its place and checked against
    the record, or None (all discarded) when one is not whole or the remote failed."""
    fs, _ = remote.filesystem()
    tmps: list[str] = []
    try:
        for path, _ in pairs:
            files.sweep_once(path.parent)  # what killed builds left there
            fd, tmp = files.temporary_beside(path)
            os.close(fd)
            tmps.append(tmp)
        calls = [
            ("get_file", remote.path(ship.key, item.name), tmp)
            for (_, item), tmp in zip(pairs, tmps, strict=True)
        ]
        answers = transfers.each(fs, calls)
        for (_, item), tmp, answer in zip(pairs, tmps, answers, strict=True):
            why = _problem(item, tmp, answer)
            if isinstance(why, BaseException):
                remote.warn(why)
                raise _Unused
            if why is not None:
                remote.bad.add(ship.key)
                print(corrupt_line(remote, ship.target, ship.key, why), file=sys.stderr, flush=True)
                raise _Unused
    except BaseException as err:
        for tmp in tmps:
            files.discard(tmp)
        if isinstance(err, _Unused):
            return None
        raise
    return tmps


class _Unused(Exception):
    """The remote's files are not used (said why already)."""


def _problem(item: ShippedFile, tmp: str, answer: Any) -> str | BaseException | None:
    """Why the downloaded ``tmp`` is not the file ``item`` (a failure of the remote itself as
    the exception), or None."""
    if isinstance(answer, FileNotFoundError):
        return f"its file {item.file} is missing"
    if isinstance(answer, BaseException):
        return answer
    held = os.path.getsize(tmp)
    if held != item.size:
        return f"{item.file}: {held:,} of {item.size:,} bytes"
    if files.sha256_of(tmp) != item.sha256:
        return f"{item.file}: its sha256 differs from its record's"
    return None


def _recorded(
    context: Context, ship: Shipment, record: Record, main: list[Path], stems: list[Path], *, quiet: bool
) -> None:
    """Record the files just published from ``record`` as :mod:`~mixdown.actions.published` does
    for made ones, print their lines, and hold them to the lock under ``--frozen``."""
    plan = ship.plan
    made = [
        (path, _Measured(_number(f.lufs), _number(f.true_peak)))
        for path, f in zip(main, record.files, strict=True)
    ]
    seconds = _number(record.files[0].seconds) if record.files else 0.0
    measured = published.record(context, plan, made, seconds=seconds, delivery=ship.delivery)
    if not quiet:
        for path, item in zip(main, record.files, strict=True):
            shown = item.shown or f"{_number(item.lufs):.1f} LUFS  {_number(item.true_peak):.1f} dBTP"
            timed = f"  {seconds:6.1f} s" if ship.delivery is None else ""
            print(f"{ship.target}  {shown}{timed}  {relative(context, path)}  {FROM_REMOTE}", file=sys.stdout)
        for path in stems:
            print(f"{ship.target}  stem {path.stem:<5}  {relative(context, path)}  {FROM_REMOTE}", file=sys.stdout)
    check_pinned(context, ship.target, plan.master_key, made=measured)


def _number(value: float | None) -> float:
    return float(value) if value is not None else float("nan")
