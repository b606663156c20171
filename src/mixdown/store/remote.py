"""The shared remote cache: the local cache's objects on any fsspec URL, read and written through.

``[cache] remote = "s3://bucket/prefix"`` in ``project.toml``, or ``MIXDOWN_REMOTE``
(which wins: CI points a build elsewhere), names it. Layout under the URL ``R``,
the local cache's own::

    R/objects/ab/abcdef….wav     the object, bytes as in the local cache
    R/objects/ab/abcdef….<name>  a side file of a shared mix (listed in its record)
    R/objects/ab/abcdef….json    its record, incl. ``sha256`` and ``size``: written LAST

With ``share = "all"``, what a rendition publishes in ``build/`` too (its
[master] files and stems, or one ``[deliveries.NAME]``'s files), under a
key of its own (:func:`mixdown.plan.model.shipment_key`) and with a record
of another shape (:mod:`mixdown.actions.shipments`)::

    R/objects/ab/abcdef….<sha256[:16]>.<ext>  each file, named by its content
    R/objects/ab/abcdef….json    {"kind": "master"|"delivery", "master", "files", "stems"}: LAST

A record's presence means a whole object: uploads write the object (and its
side files) first and the record last, with a conditional create where the
backend has one (S3's ``If-None-Match: *``; a hard link on a ``file://``
remote), so of two machines uploading one key, one wins and neither tears
the other's. Downloads are checked against the record (size and sha256)
before they are published into the local cache, record first and object
last as the local cache does; a remote object that does not match is never
used: it is reported, made again, and its upload replaces it.

Credentials come only from each backend's own chain (environment, profile,
instance role); the URL is shown without any userinfo. A remote that cannot
be reached, or refuses the credentials, costs one warning line for the whole
build, which then goes on locally; with ``MIXDOWN_REMOTE_REQUIRED=1`` it is
an error instead. ``fsspec`` and the backend are imported only when a
remote is configured and first used.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from . import files, transfers
from .backends import BACKENDS, Backend, RemoteUnavailable, open_filesystem, redacted, trouble_line
from .cache import Cache

if TYPE_CHECKING:  # a build without a remote does not import the pool
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = [
    "BACKENDS",
    "Backend",
    "Fetched",
    "Remote",
    "RemoteUnavailable",
    "Uploaded",
    "Wanted",
    "configured",
    "corrupt_line",
    "redacted",
]

#: an object on the remote with no record, older than this, was left by an interrupted upload
ORPHAN_SECONDS = 600.0
#: uploads in flight at once beside a build
UPLOADERS = 4
# BACKENDS, Backend, RemoteUnavailable and redacted live in .backends; they stay importable from here


class Wanted(NamedTuple):
    """One object to share, as the build names it.

    ``companions`` are objects that go with it (a section's SFX bus, a mix's
    stems): uploaded before it, published locally before it, and it is
    published only if every one the remote holds arrived whole. ``sides``
    are the side files uploaded with it when the local cache has them.
    """

    key: str
    target: str  # the task it belongs to, for messages: voice:news/main/0
    kind: str = "asset"  # or "section", "mix": shared only with [cache] share = "all"
    companions: tuple[str, ...] = ()
    sides: tuple[str, ...] = ()


class Fetched(NamedTuple):
    """What a batch download did."""

    wanted: int  # objects asked for (companions included)
    found: int  # of them with a record on the remote
    fetched: tuple[str, ...]  # the keys published into the local cache
    corrupt: tuple[str, ...]  # remote objects that did not match their records (made again)
    size: int  # bytes downloaded
    seconds: float


class Uploaded(NamedTuple):
    """What the uploads of a build did."""

    objects: int  # objects whose record this build wrote
    size: int
    seconds: float  # from the first upload's start to the last's end
    failed: tuple[str, ...]  # one line each


class _Settings(Protocol):
    @property
    def remote(self) -> str | None: ...
    @property
    def share(self) -> str: ...


class _Project(Protocol):
    @property
    def cache(self) -> _Settings: ...


class _Downloaded(NamedTuple):
    key: str
    record: dict[str, Any]
    record_bytes: bytes
    tmp: str  # the object, downloaded into a temporary file beside its place in the cache
    sides: dict[str, bytes]


def configured(project: _Project, *, required: bool | None = None) -> Remote | None:
    """The remote cache of ``project`` (``MIXDOWN_REMOTE`` wins over ``[cache] remote``), or None.

    ``required`` (default: ``MIXDOWN_REMOTE_REQUIRED``) turns a remote that
    cannot be used into an error instead of a warning. Imports nothing.
    """
    url = os.environ.get("MIXDOWN_REMOTE") or project.cache.remote
    if not url:
        return None
    if required is None:
        required = os.environ.get("MIXDOWN_REMOTE_REQUIRED", "") not in ("", "0")
    return Remote(url, share=project.cache.share, required=required)


class Remote:
    """A remote cache at an fsspec URL: batch downloads, background uploads, listings."""

    def __init__(self, url: str, *, share: str = "assets", required: bool = False) -> None:
        """``share``: ``"assets"`` (rendered assets only) or ``"all"`` (pre-mixes and mixes too)."""
        self.url, self.share, self.required = url, share, required
        self.shown = redacted(url)
        self.protocol = urlsplit(url).scheme or "file"
        self.bad: set[str] = set()  # keys whose remote copy is corrupt: their upload replaces it
        self.absent: set[str] = set()  # keys a batch found missing: not asked for again
        self.down: str | None = None  # why the remote cannot be used, once it is known
        self._fs: Any = None
        self._root = ""
        self._guard = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._uploads: list[Future[int]] = []
        self._started: float | None = None
        self._written = 0
        self._failed: list[str] = []
        self._told = False  # the one warning of a build was printed

    def __repr__(self) -> str:
        return f"Remote({self.shown!r})"

    def joined(self, *, share: str | None = None) -> Remote:
        """A new :class:`Remote` on the same connection, with uploads and counts of its own (and
        ``share``, if given): one job's use of a connection that a cluster worker keeps."""
        other = Remote(self.url, share=share or self.share, required=self.required)
        other._fs, other._root = self.filesystem()
        return other

    def shares(self, kind: str) -> bool:
        """Whether objects of ``kind`` (``asset``, ``section``, ``mix``, ``master``) are shared."""
        return kind == "asset" or self.share == "all"

    # -- the filesystem, and what goes wrong with it -------------------------------------------

    def filesystem(self) -> tuple[Any, str]:
        """The fsspec filesystem and the root path in it (imported and made on first use)."""
        with self._guard:
            if self._fs is None:
                try:
                    self._fs, self._root = open_filesystem(self.url, self.protocol)
                except RemoteUnavailable as err:
                    self.down = str(err)
                    raise
            return self._fs, self._root

    def trouble(self, err: BaseException) -> RemoteUnavailable:
        """The one line for ``err`` from the remote (unreachable, or credentials refused); the
        remote is not used again in this process."""
        if isinstance(err, RemoteUnavailable):
            return err
        line = trouble_line(err, self.url, self.protocol)
        with self._guard:
            if self.down is None:
                self.down = line
        return RemoteUnavailable(line)

    def warn(self, err: BaseException) -> None:
        """Report ``err`` once for the whole build and go on locally; raise it if the remote is required."""
        problem = self.trouble(err)
        if self.required:
            raise RemoteUnavailable(f"{problem}; MIXDOWN_REMOTE_REQUIRED is set: not building without it")
        with self._guard:
            told, self._told = self._told, True
        if not told:
            print(f"warning: {problem}; building locally", file=sys.stderr, flush=True)

    def usable(self) -> bool:
        """Whether the remote may be tried (nothing has gone wrong with it yet)."""
        if self.down is not None:
            return False
        try:
            self.filesystem()
        except RemoteUnavailable as err:
            self.warn(err)
            return False
        return True

    def path(self, key: str, suffix: str) -> str:
        """Where the file ``key.suffix`` lives on the remote."""
        return f"{self._root}/objects/{key[:2]}/{key}.{suffix}"

    # -- reading --------------------------------------------------------------------------------

    def keys(self) -> set[str]:
        """Every key with a record on the remote (one listing)."""
        fs, root = self.filesystem()
        try:
            found = fs.find(f"{root}/objects")
        except FileNotFoundError:
            return set()
        except Exception as err:
            raise self.trouble(err) from None
        return {name.rsplit("/", 1)[-1][:-5] for name in found if name.endswith(".json")}

    def fetch(self, cache: Cache, wanted: Sequence[Wanted]) -> Fetched:
        """Download ``wanted`` (those the local cache lacks) in one batch, check and publish them.

        Records first, then every object (and side file) they list, all
        concurrently; each object is checked against its record's ``size``
        and ``sha256`` and published with its record into ``cache``. A
        corrupt one is reported on one line and left out (made again, and
        its upload replaces it). Raises :class:`RemoteUnavailable` if the
        remote cannot be used.
        """
        started = time.perf_counter()
        skip = self.absent | self.bad  # asked for already in this build: not asked again
        todo = [w for w in wanted if w.key not in cache and w.key not in skip]
        keys = list(dict.fromkeys(k for w in todo for k in (*w.companions, w.key) if k not in cache))
        if not keys:
            return Fetched(0, 0, (), (), 0, 0.0)
        fs, _ = self.filesystem()
        records = self._records(fs, keys)
        got, size, corrupt, failure = self._objects(fs, cache, records, {w.key: w.target for w in todo})
        fetched = self._publish(cache, todo, got)
        if failure is not None:  # what arrived whole is kept; the remote is not tried again
            raise self.trouble(failure)
        return Fetched(len(keys), len(records), fetched, corrupt, size, time.perf_counter() - started)

    def fetch_one(self, cache: Cache, wanted: Wanted) -> bool:
        """Fetch one object (the build's read-through); whether it is now in ``cache``.

        Anything wrong with the remote is warned about once, or raised when it is required.
        """
        if wanted.key in self.absent or wanted.key in self.bad or not self.usable():
            return False
        try:
            done = self.fetch(cache, [wanted])
        except RemoteUnavailable as err:
            self.warn(err)
            return False
        return wanted.key in done.fetched

    def _records(self, fs: Any, keys: list[str]) -> dict[str, tuple[dict[str, Any], bytes]]:
        """The records of ``keys`` that the remote holds, parsed."""
        answers = transfers.each(fs, [("cat_file", self.path(k, "json")) for k in keys])
        found: dict[str, tuple[dict[str, Any], bytes]] = {}
        for key, answer in zip(keys, answers, strict=True):
            if isinstance(answer, FileNotFoundError):
                self.absent.add(key)
            elif isinstance(answer, BaseException):
                raise self.trouble(answer)
            else:
                try:
                    record = json.loads(answer)
                except ValueError:
                    self.bad.add(key)  # unreadable: replaced by the next upload
                    continue
                found[key] = (record, answer)
        return found

    def _objects(
        self, fs: Any, cache: Cache, records: dict[str, tuple[dict[str, Any], bytes]], targets: dict[str, str]
    ) -> tuple[dict[str, _Downloaded], int, tuple[str, ...], BaseException | None]:
        """Download the objects (into temporary files in ``cache``) and side files of ``records``,
        and check each against its record: the whole ones, bytes downloaded, the corrupt ones,
        and the first failure of the remote itself (None if there was none)."""
        tmps: dict[str, str] = {}
        try:
            for key in records:
                fd, tmps[key] = files.temporary_beside(cache.path(key))
                os.close(fd)
            answers, sides = self._download(fs, records, tmps)
            checks = _in_threads(
                lambda key: self._check(answers[key], tmps[key], records[key][0], sides[key]), list(tmps)
            )
        except BaseException:
            for tmp in tmps.values():
                files.discard(tmp)
            raise
        good: dict[str, _Downloaded] = {}
        corrupt: list[str] = []
        failure: BaseException | None = None
        for key, problem in zip(tmps, checks, strict=True):
            if problem is None:
                good[key] = _Downloaded(key, records[key][0], records[key][1], tmps[key], sides[key])
                continue
            files.discard(tmps[key])
            if isinstance(problem, BaseException):
                failure = failure or problem
                continue
            self.bad.add(key)
            corrupt.append(key)
            print(corrupt_line(self, targets.get(key, key[:12]), key, problem), file=sys.stderr, flush=True)
        size = sum(os.path.getsize(item.tmp) for item in good.values())
        return good, size, tuple(corrupt), failure

    def _download(
        self, fs: Any, records: dict[str, tuple[dict[str, Any], bytes]], tmps: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Every object into its temporary file and every side file into memory, at once: the
        answer for each object (or the exception), and each object's side files (or exceptions)."""
        sides = [(k, n) for k, (record, _) in records.items() for n in sorted(record.get("sides", {}))]
        calls = [("get_file", self.path(k, "wav"), tmp) for k, tmp in tmps.items()]
        answers = transfers.each(fs, calls + [("cat_file", self.path(k, n)) for k, n in sides])
        by_key: dict[str, dict[str, Any]] = {key: {} for key in tmps}
        for (key, name), answer in zip(sides, answers[len(calls) :], strict=True):
            by_key[key][name] = answer
        return dict(zip(tmps, answers, strict=False)), by_key

    def _check(
        self, answer: Any, tmp: str, record: dict[str, Any], sides: dict[str, Any]
    ) -> str | BaseException | None:
        """Why a downloaded object (or its side files) does not match its record, or None."""
        for name, got in [("object", answer), *sides.items()]:
            if isinstance(got, FileNotFoundError):
                return f"its {name} is missing"
            if isinstance(got, BaseException):
                return got
        expected_size, expected_sha = record.get("size"), record.get("sha256")
        if not isinstance(expected_size, int) or not isinstance(expected_sha, str):
            return "its record has no sha256 and size"
        held = os.path.getsize(tmp)
        if held != expected_size:
            return f"{held:,} of {expected_size:,} bytes"
        if files.sha256_of(tmp) != expected_sha:
            return "its sha256 differs from its record's"
        import hashlib

        for name, want in record.get("sides", {}).items():
            if hashlib.sha256(sides[name]).hexdigest() != want:
                return f"its side file {name} differs from its record's sha256"
        return None

    def _publish(self, cache: Cache, todo: list[Wanted], got: dict[str, _Downloaded]) -> tuple[str, ...]:
        """Publish what arrived whole: each wanted object after its companions, and only if every
        companion the remote holds arrived too."""
        published: list[str] = []
        try:
            for wanted in todo:
                if wanted.key not in got:
                    continue
                companions = [k for k in wanted.companions if k not in self.absent]
                if not all(k in got or k in cache for k in companions):
                    continue
                for key in [*companions, wanted.key]:
                    item = got.pop(key, None)
                    if item is not None:
                        with cache.lock(key, target=wanted.target):
                            cache.adopt(key, item.tmp, item.record_bytes, item.sides)
                        published.append(key)
        finally:
            for item in got.values():
                files.discard(item.tmp)
        return tuple(published)

    # -- writing ---------------------------------------------------------------------------------

    def upload(self, cache: Cache, wanted: Wanted) -> None:
        """Upload ``wanted`` (and its companions) on the background pool, unless the remote is down."""
        self.background(wanted.target, lambda fs: self._upload(fs, cache, wanted))

    def background(self, target: str, send: Callable[[Any], int]) -> None:
        """Run ``send(fs)``, an upload for ``target`` returning the bytes it sent, on the
        background pool (unless the remote is down); :meth:`drain` waits for it."""
        if self.down is not None:
            return
        with self._guard:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(UPLOADERS, thread_name_prefix="mixdown-upload")
                self._started = time.perf_counter()
            self._uploads.append(self._pool.submit(self._sent, target, send))

    def _sent(self, target: str, send: Callable[[Any], int]) -> int:
        if self.down is not None:
            return 0
        try:
            return send(self.filesystem()[0])
        except Exception as err:
            problem = self.trouble(err)
            with self._guard:
                self._failed.append(f"{target}: not uploaded: {problem}")
            return 0

    def wrote(self, key: str) -> None:
        """Count a record just written for ``key`` (whose remote copy is whole again)."""
        with self._guard:
            self._written += 1
            self.bad.discard(key)

    def _upload(self, fs: Any, cache: Cache, wanted: Wanted) -> int:
        """Upload one object after its companions; the bytes sent."""
        sent = 0
        for key in wanted.companions:
            if key in cache:
                sent += self._put(fs, cache, key, ())
        return sent + self._put(fs, cache, wanted.key, wanted.sides)

    def _put(self, fs: Any, cache: Cache, key: str, sides: tuple[str, ...]) -> int:
        """Upload one object: side files, the object, then its record (created only if absent)."""
        record = cache.digest(key)
        present = [n for n in sides if cache.side_path(key, n).exists()]
        if present:
            record = {**record, "sides": {n: files.sha256_of(cache.side_path(key, n)) for n in present}}
        body = json.dumps(record, indent=1, sort_keys=True).encode("utf-8")
        force = key in self.bad
        sent = 0
        for name in present:
            transfers.put_over(fs, cache.side_path(key, name), self.path(key, name))
            sent += os.path.getsize(cache.side_path(key, name))
        target = self.path(key, "wav")
        if force:
            transfers.put_over(fs, cache.path(key), target)
        else:
            try:
                transfers.put_new(fs, cache.path(key), target)
            except FileExistsError:
                if not self._take_over(fs, key, record):
                    return 0  # another machine's take is going up, or is up: theirs wins
                transfers.put_over(fs, cache.path(key), target)
        sent += int(record["size"])
        try:
            (transfers.put_over if force else transfers.put_new)(fs, body, self.path(key, "json"))
        except FileExistsError:
            return sent  # another machine wrote the record first: its object is the same one
        self.wrote(key)
        return sent

    def _take_over(self, fs: Any, key: str, record: dict[str, Any]) -> bool:
        """Whether an object already on the remote (where this one was to go) may be replaced by
        ours: it is ours byte for byte (its record is what is missing), or it has had no record
        for :data:`ORPHAN_SECONDS` (an upload interrupted between the two)."""
        if fs.exists(self.path(key, "json")):
            return False
        import hashlib

        theirs = fs.cat_file(self.path(key, "wav"))
        if hashlib.sha256(theirs).hexdigest() == record["sha256"]:
            return True
        try:
            age = time.time() - fs.modified(self.path(key, "wav")).timestamp()
        except (NotImplementedError, OSError):
            return False
        return bool(age > ORPHAN_SECONDS)

    def drain(self) -> Uploaded:
        """Wait for every upload started so far; what they did."""
        with self._guard:
            pending, self._uploads = self._uploads, []
        size = sum(f.result() for f in pending)
        with self._guard:
            written, failed, self._written, self._failed = self._written, tuple(self._failed), 0, []
            started, self._started = self._started, None
        seconds = time.perf_counter() - started if started is not None else 0.0
        return Uploaded(written, size, seconds, failed)

    def close(self) -> None:
        """Stop the upload pool (after :meth:`drain`)."""
        with self._guard:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def _in_threads(fn: Any, items: list[str]) -> list[Any]:
    """``fn(item)`` for each item on a few threads (hashing releases the GIL), in order."""
    if len(items) < 2:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(4, os.cpu_count() or 1), thread_name_prefix="mixdown-verify") as pool:
        return list(pool.map(fn, items))


def corrupt_line(remote: Remote, target: str, key: str, why: str = "it does not match its record") -> str:
    """The one line for ``target``'s remote copy (``key``) that is not used, and ``why``."""
    return (
        f"{target}: the remote copy of {key[:12]} in {remote.shown} is corrupt ({why}); "
        "not used: it is made again and its upload replaces it"
    )
