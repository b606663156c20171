"""Temporary files: made beside their target with the umask's permissions, locked while written,
and what a killed process left of them removed at once."""

from __future__ import annotations

import fcntl
import gc
import os
import pickle
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixdown.store import files
from mixdown.store.files import discard, publish, sweep, temporary_beside

# A writer that makes its temporary file, says where, and writes until it is killed.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from mixdown.store.files import temporary_beside

    fd, name = temporary_beside(sys.argv[1], sys.argv[2])
    os.write(fd, b"partial" * 1000)
    print(name, flush=True)
    time.sleep(600)
    """
)


@contextmanager
def writer_process(target: Path, suffix: str) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """A live writer in another process, and its temporary file."""
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target), suffix], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        yield child, Path(child.stdout.readline().strip())
    finally:
        child.kill()
        child.wait()


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def locked(path: Path) -> bool:
    """Whether someone holds ``path``'s lock (a descriptor of our own tries to take it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_temporary_file_is_hidden_beside_its_target(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "episode.wav"
    fd, name = temporary_beside(target, ".tmp.wav")
    os.close(fd)
    made = Path(name)
    assert made.parent == target.parent and made.is_file()
    assert made.name.startswith(".episode.wav.") and made.name.endswith(".tmp.wav")
    discard(made)


def test_a_temporary_file_stays_locked_until_published(tmp_path: Path) -> None:
    target = tmp_path / "episode.wav"
    fd, name = temporary_beside(target, ".tmp.wav")
    os.close(fd)  # writers reopen it by name (libsndfile, WavWriter): the lock outlives the descriptor
    assert locked(Path(name))
    publish(name, target)
    assert target.exists() and not Path(name).exists()
    assert not locked(target)
    fd, name = temporary_beside(target, ".tmp.wav")
    os.close(fd)
    discard(name)
    assert not Path(name).exists()


def test_a_killed_writers_temporary_file_goes_at_once_and_a_live_ones_stays(tmp_path: Path) -> None:
    target = tmp_path / "episode.wav"
    with writer_process(target, ".tmp.wav") as (killed, dead_file):
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait()
    assert dead_file.exists()  # seconds old: an age rule would keep it for an hour
    with writer_process(target, ".tmp.wav") as (_, live_file):
        fd, name = temporary_beside(target, ".tmp.wav")
        os.close(fd)
        assert not dead_file.exists()
        assert live_file.exists()  # its writer is alive: left alone
    discard(name)


def test_only_the_same_targets_unlocked_temporary_files_go(tmp_path: Path) -> None:
    target = tmp_path / "episode.wav"

    def left(name: str) -> Path:
        path = tmp_path / name
        path.write_bytes(b"partial")
        return path

    dead = left(".episode.wav.k1ll3d00.tmp.wav")  # no writer holds it: its process is gone
    other = left(".episode.mp3.k1ll3d00.tmp.mp3")  # another target's
    other_kind = left(".episode.wav.k1ll3d00.tmp")  # another suffix
    lookalike = left(".episode.wav.notmkstemp.tmp.wav")  # not a name temporary_beside makes
    alive = left(".episode.wav.wr1t1ng0.tmp.wav")
    holder = os.open(alive, os.O_RDONLY)  # a writer on another thread holds its lock
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        fd, name = temporary_beside(target, ".tmp.wav")
        os.close(fd)
    finally:
        os.close(holder)
    assert not dead.exists()
    assert alive.exists() and other.exists() and other_kind.exists() and lookalike.exists()
    assert Path(name).exists()
    discard(name)


def test_a_sweep_removes_every_dead_temporary_file_of_a_directory(tmp_path: Path) -> None:
    names = [".a.wav.00000000.tmp.wav", ".b.0a1b2c3d.tmp", ".c.mp3.abcdefgh.tmp.mp3", "KEY.lock"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    kept = tmp_path / "episode.wav"
    kept.write_bytes(b"published")
    fd, live = temporary_beside(tmp_path / "d.wav")
    os.close(fd)
    assert sweep(tmp_path) == 3
    assert (tmp_path / "KEY.lock").exists()  # lock files only when asked
    assert sweep(tmp_path, locks=True) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([kept.name, Path(live).name])
    discard(live)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_written_files_follow_the_umask(tmp_path: Path, mask: int) -> None:
    from mixdown.codecs.wav import Source, write_audio_atomic, write_blocks_atomic
    from mixdown.store.cache import Cache

    y = np.zeros((4800, 2), np.float32)
    with umask(mask):
        fd, name = temporary_beside(tmp_path / "raw.bin")
        os.close(fd)
        publish(name, tmp_path / "raw.bin")
        write_audio_atomic(tmp_path / "whole.wav", y, 48000)
        write_blocks_atomic(tmp_path / "blocks.wav", Source.of_array(y, 48000), subtype="PCM_24")
        cache = Cache(tmp_path / "cache")
        cache.put("ab" + "0" * 62, y + 0.1, 48000, {"kind": "sfx"})
    written = [
        tmp_path / "raw.bin",
        tmp_path / "whole.wav",
        tmp_path / "blocks.wav",
        cache.path("ab" + "0" * 62),
        cache.meta_path("ab" + "0" * 62),
    ]
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path.name


def test_errors_name_the_file_being_made(tmp_path: Path) -> None:
    fd, name = temporary_beside(tmp_path / "episode", ".tmp.mp3")
    os.close(fd)
    assert files.last_destination() == tmp_path / "episode.mp3"
    discard(name)


def test_a_noted_sha256_follows_its_file_when_published_while_the_file_is_unchanged(tmp_path: Path) -> None:
    import hashlib
    import time

    from mixdown.store import files

    target = tmp_path / "out.wav"
    fd, tmp = files.temporary_beside(target)
    os.write(fd, b"x" * 1000)
    os.close(fd)
    files.note_sha256(tmp, "f" * 64)  # a stand-in: what was noted is what comes back, not the bytes'
    files.publish(tmp, target)
    assert files.sha256_of(target) == "f" * 64
    real = hashlib.sha256(b"x" * 1000).hexdigest()
    assert files.sha256_of(target) == real  # taken once: the file's own bytes next time
    files.note_sha256(target, "f" * 64)
    time.sleep(0.02)  # past the file system's clock tick
    target.write_bytes(b"y" * 1000)  # the same size, written since: the note no longer holds
    assert files.sha256_of(target) == hashlib.sha256(b"y" * 1000).hexdigest()
    fd, tmp = files.temporary_beside(target)
    os.close(fd)
    files.note_sha256(tmp, "f" * 64)
    files.discard(tmp)  # a discarded file's note goes with it


def test_a_file_is_written_again_only_when_its_bytes_change(tmp_path: Path) -> None:
    path = tmp_path / "mixdown.lock"
    assert files.write_if_changed(path, b"version = 1\n")
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert not files.write_if_changed(path, b"version = 1\n")
    assert path.stat().st_mtime_ns == 1_000_000_000  # untouched: same bytes, same time
    assert files.write_if_changed(path, b"version = 2\n")
    assert path.read_bytes() == b"version = 2\n" and path.stat().st_mtime_ns != 1_000_000_000
    assert [p.name for p in tmp_path.iterdir()] == ["mixdown.lock"]  # no temporary file left


class _Witness:
    """Notes, as it is unpickled, whether the cyclic garbage collector was running."""

    seen: list[bool] = []

    def __init__(self) -> None:
        self.state = "kept"  # pickled, so that unpickling calls __setstate__

    def __setstate__(self, state: dict[str, object]) -> None:
        _Witness.seen.append(gc.isenabled())


@pytest.mark.parametrize("collecting", [True, False])
def test_state_is_unpickled_with_the_collector_paused_and_left_as_it_was(
    tmp_path: Path, collecting: bool
) -> None:
    path = tmp_path / "state.pickle"
    files.write_bytes_atomic(path, pickle.dumps({"plan": [_Witness(), _Witness()], "n": 3}))
    _Witness.seen = []
    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        found = files.unpickled(path)
        assert gc.isenabled() is collecting
    finally:
        (gc.enable if was else gc.disable)()
    assert isinstance(found, dict) and found["n"] == 3 and len(found["plan"]) == 2
    assert _Witness.seen == [False, False]
    with pytest.raises(FileNotFoundError):
        files.unpickled(tmp_path / "missing.pickle")
    path.write_bytes(b"\x80\x05truncated")
    with pytest.raises(pickle.UnpicklingError):
        files.unpickled(path)
    assert gc.isenabled() is was


def test_a_directory_is_listed_once_for_the_temporary_files_written_in_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build/ holds half a dozen files a listener: listing it at every write grew with the show."""
    dead = tmp_path / ".late.wav.k1ll3d00.tmp.wav"  # a killed build's, of a target written last
    dead.write_bytes(b"partial")
    for i in range(200):
        (tmp_path / f"episode{i}.wav").write_bytes(b"")
    listed: list[str] = []
    real = os.scandir

    def counted(path: Any) -> Any:
        if not isinstance(path, int):  # a descriptor: the tree's removal at the end
            listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counted)
    for i in range(50):
        fd, name = temporary_beside(tmp_path / f"episode{i}.wav", ".tmp.wav")
        os.close(fd)
        publish(name, tmp_path / f"episode{i}.wav")
    assert dead.exists() and listed == [os.fspath(tmp_path)]
    fd, name = temporary_beside(tmp_path / "late.wav", ".tmp.wav")
    os.close(fd)
    assert not dead.exists() and listed == [os.fspath(tmp_path)]
    discard(name)
