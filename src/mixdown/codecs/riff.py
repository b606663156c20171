"""RIFF chunks of a WAV or RF64 file: listed, and appended after its samples (tags).

A WAV's tags (:mod:`mixdown.codecs.tags`: a ``LIST``/``INFO`` and a ``bext``
chunk) go after its last chunk: RIFF allows chunks in any order, and the
samples keep their offsets, which a long master's splice relies on
(:meth:`mixdown.codecs.wav.WavWriter.copy_from`).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

from ..errors import AudioError

__all__ = ["RiffChunk", "append_chunks", "riff_chunks", "set_riff_size"]


class RiffChunk(NamedTuple):
    """A top-level chunk of a RIFF or RF64 file: its id, where it starts (its header) and its size."""

    kind: bytes
    offset: int
    size: int  # of its data (an RF64's data chunk: from the ds64 chunk), without the pad byte

    @property
    def end(self) -> int:
        """The byte after its data, before any pad byte."""
        return self.offset + 8 + self.size


def riff_chunks(path: str | os.PathLike[str]) -> list[RiffChunk]:
    """The top-level chunks of the WAV or RF64 file at ``path``, in order.

    Raises :class:`AudioError` for a file that is not one.
    """
    import struct

    with open(path, "rb") as fh:
        head = fh.read(36)
        length = os.fstat(fh.fileno()).st_size
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise AudioError(f"{path}: not a WAV file")
        rf64_data = struct.unpack_from("<Q", head, 28)[0] if head[:4] == b"RF64" and len(head) >= 36 else None
        found, pos = [], 12
        while pos + 8 <= length:
            fh.seek(pos)
            kind, size = struct.unpack("<4sI", fh.read(8))
            if kind == b"data" and rf64_data is not None and size == 0xFFFFFFFF:
                size = rf64_data
            found.append(RiffChunk(kind, pos, size))
            pos += 8 + size + (size & 1)
    return found


def set_riff_size(fh: Any, length: int) -> None:
    """Write ``length`` (the whole file's) into the RIFF header of the open WAV ``fh`` (an RF64's
    into its ds64 chunk)."""
    import struct

    fh.seek(0)
    rf64 = fh.read(4) == b"RF64"
    fh.seek(20 if rf64 else 4)
    fh.write(struct.pack("<Q", length - 8) if rf64 else struct.pack("<I", length - 8))


def append_chunks(path: str | os.PathLike[str], chunks: bytes) -> None:
    """Append RIFF ``chunks`` (each id, size, data and pad byte) after the last chunk of the
    WAV or RF64 file at ``path``, and update its RIFF size (an RF64's in its ds64 chunk).

    The samples and the header before them keep their bytes and offsets, so
    a file tagged this way is still spliced part by part
    (:meth:`WavWriter.copy_from`) and hashed as before up to its old end.
    Raises :class:`AudioError` for a file that is not a WAV ending on a
    whole chunk, or a RIFF WAV the chunks would take past 4 GiB.
    """
    found = riff_chunks(path)
    length = os.path.getsize(path)
    end = found[-1].end if found else 12
    if not end <= length <= end + (end & 1):
        raise AudioError(f"{path}: the WAV does not end on a whole chunk; cannot add its tags")
    pad = b"\0" * (end & 1) if length == end else b""
    size = length + len(pad) + len(chunks)
    with open(path, "r+b") as fh:
        if fh.read(4) == b"RIFF" and size - 8 > 0xFFFFFFFF:
            raise AudioError(f"{path}: tags would take the WAV past 4 GiB; leave [metadata] out for it")
        fh.seek(length)
        fh.write(pad + chunks)
        set_riff_size(fh, size)
