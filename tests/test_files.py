"""Temporary files: made beside their target, and what a killed process left of them removed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from mixdown.files import STALE_SECONDS, temporary_beside


def test_a_temporary_file_is_hidden_beside_its_target(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir" / "episode.wav"
    fd, name = temporary_beside(target, ".tmp.wav")
    os.close(fd)
    made = Path(name)
    assert made.parent == target.parent and made.is_file()
    assert made.name.startswith(".episode.wav.") and made.name.endswith(".tmp.wav")


def test_stale_temporary_files_of_the_same_target_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "episode.wav"
    old = time.time() - STALE_SECONDS - 60

    def left(name: str, *, stale: bool) -> Path:
        path = tmp_path / name
        path.write_bytes(b"partial")
        if stale:
            os.utime(path, (old, old))
        return path

    killed = left(".episode.wav.k1ll3d00.tmp.wav", stale=True)  # a writer killed an hour ago
    writing = left(".episode.wav.wr1t1ng0.tmp.wav", stale=False)  # a writer still at work
    other = left(".episode.mp3.k1ll3d00.tmp.mp3", stale=True)  # another target's
    other_kind = left(".episode.wav.k1ll3d00.tmp", stale=True)  # another suffix
    lookalike = left(".episode.wav.notmkstemp.tmp.wav", stale=True)  # not a name mkstemp makes
    fd, name = temporary_beside(target, ".tmp.wav")
    os.close(fd)
    assert not killed.exists()
    assert writing.exists() and other.exists() and other_kind.exists() and lookalike.exists()
    assert Path(name).exists()
