"""MP3 encoding of a streamed delivery: in this process for a short programme, else in a child.

On a long programme LAME is the slowest step of a delivery:
:class:`Mp3Writer` feeds 16-bit PCM to ``python -m mixdown.codecs.lame`` through a
pipe, which encodes it with :class:`mixdown.codecs.mp3.Encoder` (bit reservoir on,
at the level it is given), and the parent goes on metering and writing the
other formats on the other core. Starting that child costs about 0.3 s of
CPU (a Python with numpy), more than LAME takes for a programme of a
minute, so a programme up to :data:`INLINE_SECONDS` is encoded by the same
encoder in this process, on the writer's thread, from the same 16-bit
samples: the file is the same, byte for byte.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from ..errors import RenderFailed

__all__ = [
    "INLINE_SECONDS",
    "QUALITY",
    "QUALITY_HIGH_BITRATE",
    "Mp3Writer",
    "main",
    "quality_for",
    "to_pcm16",
]

# LAME's algorithm quality (0 best .. 9 fastest). At 2-3, 48 kbps MPEG-2 streams hold
# frames mpg123 rejects. From 128 kbps up the bitrate, not the search, sets what is heard,
# so the faster search is used there.
QUALITY = 5
QUALITY_HIGH_BITRATE = 7
HIGH_BITRATE = 128
_CHUNK = 1 << 20  # bytes read from the pipe at a time
#: programmes up to this long (seconds) are encoded in this process: LAME takes about 7 ms of
#: CPU a second of 48 kHz stereo, so a child pays its start-up back only on longer ones
INLINE_SECONDS = 120.0


def quality_for(bitrate: int) -> int:
    """LAME's algorithm quality for a bitrate in kbps (see :data:`QUALITY`)."""
    return QUALITY_HIGH_BITRATE if bitrate >= HIGH_BITRATE else QUALITY


def to_pcm16(block: np.ndarray) -> np.ndarray:
    """Float samples as the 16-bit PCM LAME takes."""
    pcm: np.ndarray = np.clip(block * np.float32(32768), -32768, 32767).astype("<i2")
    return pcm


class Mp3Writer:
    """Write an MP3 file from float blocks ``[shape=(n, channels)]`` with LAME.

    ``frames`` (the programme's length, when known) up to :data:`INLINE_SECONDS`
    are encoded in this process, longer ones through a LAME child process.
    """

    def __init__(
        self, path: Path, sr: int, channels: int, *, bitrate: int, vbr: bool, frames: int | None = None
    ) -> None:
        self.path = path
        self._inline: _InlineLame | None = None
        self._child: subprocess.Popen[bytes] | None = None
        if frames is not None and frames <= INLINE_SECONDS * sr:
            self._inline = _InlineLame(path, sr, channels, bitrate=bitrate, vbr=vbr)
            return
        args = [
            str(path),
            str(sr),
            str(channels),
            str(bitrate),
            "1" if vbr else "0",
            str(quality_for(bitrate)),
        ]
        self._child = subprocess.Popen(
            [sys.executable, "-m", "mixdown.codecs.lame", *args],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def write(self, block: np.ndarray) -> None:
        pcm = to_pcm16(block)
        if self._inline is not None:
            self._inline.write(pcm)
            return
        assert self._child is not None and self._child.stdin is not None
        try:
            self._child.stdin.write(pcm.data.cast("B"))
        except BrokenPipeError:
            self.close()  # raises with the child's own message

    def close(self) -> None:
        """Finish the file; raise :class:`RenderFailed` if the encoder failed."""
        if self._inline is not None:
            self._inline.close()
            return
        assert self._child is not None
        _, err = self._child.communicate()
        if self._child.returncode != 0:
            message = err.decode("utf-8", "replace").strip().splitlines()
            raise RenderFailed(
                f"{self.path.name}: the MP3 encoder failed: {message[-1] if message else 'no output'}"
            )

    def abort(self) -> None:
        """Stop the child without finishing the file (nothing if it has finished)."""
        if self._inline is not None:
            self._inline.abort()
        elif self._child is not None and self._child.returncode is None:
            self._child.kill()
            self._child.wait()


class _InlineLame:
    """:func:`main`'s encoding, in this process: 16-bit PCM blocks to an open MP3 file."""

    def __init__(self, path: Path, sr: int, channels: int, *, bitrate: int, vbr: bool) -> None:
        from .mp3 import Encoder

        self._encoder: Encoder | None = Encoder(
            sr, channels, bitrate=bitrate, vbr=vbr, quality=quality_for(bitrate), reservoir=True
        )
        try:
            self._out = open(path, "wb")  # noqa: SIM115 - closed by close() or abort()
        except BaseException:
            self.abort()
            raise

    def write(self, pcm: np.ndarray) -> None:
        assert self._encoder is not None
        self._out.write(self._encoder.encode(pcm.astype(np.float32) / np.float32(32768)))

    def close(self) -> None:
        assert self._encoder is not None
        try:
            self._out.write(self._encoder.finish())
        finally:
            self.abort()

    def abort(self) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None
        out = getattr(self, "_out", None)
        if out is not None:
            out.close()


def main(argv: list[str] | None = None) -> int:
    """Encode 16-bit PCM from stdin to the MP3 file named first: path rate channels kbps vbr quality.

    LAME through :class:`mixdown.codecs.mp3.Encoder`, with its bit reservoir: at the
    level it is given (see there), one stream.
    """
    from .mp3 import Encoder

    path, sr, channels, bitrate, vbr, quality = (argv if argv is not None else sys.argv[1:])[:6]
    count = int(channels)
    encoder = Encoder(
        int(sr), count, bitrate=int(bitrate), vbr=vbr == "1", quality=int(quality), reservoir=True
    )
    frame = 2 * count
    try:
        with open(path, "wb") as out:
            pending = b""
            while chunk := sys.stdin.buffer.read(_CHUNK):
                data = pending + chunk
                whole = len(data) // frame * frame
                pcm = np.frombuffer(data[:whole], dtype="<i2").reshape(-1, count)
                out.write(encoder.encode(pcm.astype(np.float32) / np.float32(32768)))
                pending = data[whole:]
            out.write(encoder.finish())
    finally:
        encoder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
