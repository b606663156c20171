"""The streamed MP3 writer: a short programme encoded in this process, a long one in a child,
the same file either way."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from mixdown.codecs import lame
from mixdown.codecs.lame import Mp3Writer


def _signal(sr: int, channels: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(7)
    t = np.arange(int(sr * seconds)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)[:, None] * np.linspace(0.5, 1.0, channels)
    return (tone + 0.02 * rng.standard_normal((len(t), channels))).astype(np.float32)


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The command lines of the child processes the MP3 writer starts."""
    commands: list[list[str]] = []
    popen = subprocess.Popen

    def counted(args: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
        commands.append(args)
        return popen(args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(lame.subprocess, "Popen", counted)
    return commands


def _write(path: Path, y: np.ndarray, sr: int, frames: int | None, *, bitrate: int, vbr: bool) -> bytes:
    writer = Mp3Writer(path, sr, y.shape[1], bitrate=bitrate, vbr=vbr, frames=frames)
    for start in range(0, len(y), 12_345):  # blocks that split LAME's frames anywhere
        writer.write(y[start : start + 12_345])
    writer.close()
    return path.read_bytes()


@pytest.mark.parametrize(
    ("sr", "channels", "bitrate", "vbr"),
    [(48000, 2, 128, False), (24000, 1, 48, False), (44100, 2, 160, True)],
)
def test_inline_encoding_writes_the_child_processes_bytes(
    tmp_path: Path, started: list[list[str]], sr: int, channels: int, bitrate: int, vbr: bool
) -> None:
    y = _signal(sr, channels, 3.7)
    inline = _write(tmp_path / "inline.mp3", y, sr, len(y), bitrate=bitrate, vbr=vbr)
    assert started == []
    child = _write(tmp_path / "child.mp3", y, sr, None, bitrate=bitrate, vbr=vbr)
    assert len(started) == 1 and started[0][1:3] == ["-m", "mixdown.codecs.lame"]
    assert len(inline) > bitrate * 1000 / 8 * 3  # the whole programme, not a stub
    assert inline == child


def test_a_programme_longer_than_inline_seconds_goes_to_a_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, started: list[list[str]]
) -> None:
    sr = 24000
    y = _signal(sr, 1, 1.0)
    monkeypatch.setattr(lame, "INLINE_SECONDS", 0.5)
    _write(tmp_path / "long.mp3", y, sr, len(y), bitrate=48, vbr=False)
    assert len(started) == 1
    monkeypatch.setattr(lame, "INLINE_SECONDS", 1.0)
    assert (
        _write(tmp_path / "short.mp3", y, sr, len(y), bitrate=48, vbr=False)
        == (tmp_path / "long.mp3").read_bytes()
    )
    assert len(started) == 1


def test_an_aborted_inline_writer_leaves_its_file_closed_and_can_be_aborted_twice(tmp_path: Path) -> None:
    sr = 24000
    y = _signal(sr, 1, 0.5)
    path = tmp_path / "aborted.mp3"
    writer = Mp3Writer(path, sr, 1, bitrate=48, vbr=False, frames=len(y))
    writer.write(y)
    writer.abort()
    writer.abort()
    path.unlink()  # closed: nothing holds it
    assert not path.exists()
