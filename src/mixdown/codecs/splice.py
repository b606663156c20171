"""Splicing a parted master: after an edit, only the parts it touched are made again.

A part of a parted master (:mod:`mixdown.codecs.parts`) is a pure function
of its stretch of the mix (:func:`~mixdown.codecs.parts.spans`) and of the
pass's settings. When an edit leaves every sample of the mix outside
``[start, stop)`` as it was, the parts whose stretch misses that range are
the same samples, the same MP3 frames and the same measurements as before:
they are copied from the files published before (:class:`Reuse`), and only
the others (:func:`dirty_parts`) are limited, encoded and metered again.

What a splice needs of the master it starts from is kept beside it
(:class:`PartData`): each part's measurement, its MP3's, and the size of
each of its MP3 frames (so the published MP3 is cut at part boundaries
without reading it).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import numpy as np

from . import parts

__all__ = [
    "LOUDNESS_MOVE_LU",
    "CannotSplice",
    "Landed",
    "PartData",
    "Reuse",
    "check_master",
    "check_mix",
    "dirty_parts",
]

# How far a splice may move the programme's integrated loudness, in LU. A spliced master keeps the
# gain its parent master landed on the target with, so it moves by what the edit moved; a full
# master of the edited mix would land with about the parent's error instead (normalise's error is
# its prediction's, a property of the programme that a small edit barely changes). The two differ
# by about the move, which this bound keeps to under half of the 0.05 LU they may differ by,
# leaving the rest to that error's own change. The mix's move is checked before a splice (from
# its analysis), the master's after it (the limiter may take more or less off the new stretch);
# both from the last master normalised in full, so that the moves of splices in turn do not add up.
LOUDNESS_MOVE_LU = 0.02

Measured = tuple[np.ndarray, float, float]  # a part's (hop energies, sample peak, true peak)


class CannotSplice(Exception):  # noqa: N818 - a reason, shown to the user, not an error
    """Why a master cannot be spliced (it is made in full instead)."""


class Landed(NamedTuple):
    """Where the last master normalised in full (not spliced) before a master landed: its mix's
    integrated loudness and its own (LUFS). Splices after splices are held to it, not to their
    parent, so that their moves do not add up (see :data:`LOUDNESS_MOVE_LU`)."""

    mix_lufs: float
    lufs: float


def check_mix(mix_lufs: float, landed: Landed) -> None:
    """Raise :class:`CannotSplice` if a mix's integrated loudness moved too far for a splice."""
    moved = abs(mix_lufs - landed.mix_lufs)
    if not moved <= LOUDNESS_MOVE_LU:  # NaN (a silent mix) too
        raise CannotSplice(
            f"the mix's loudness moved {moved:.2f} LU (a splice keeps within {LOUDNESS_MOVE_LU:g})"
        )


def check_master(found: Any, landed: Landed, ceiling_dbtp: float) -> None:
    """Raise :class:`CannotSplice` unless the spliced master measured ``found`` (a
    :class:`~mixdown.dsp.loudness.Measurement`) moved by no more than a splice allows and stays
    under ``ceiling_dbtp``, as a full master's pass must."""
    moved = abs(found.integrated - landed.lufs)
    if not moved <= LOUDNESS_MOVE_LU or found.true_peak > ceiling_dbtp:
        raise CannotSplice(
            f"the spliced master measured {found.integrated:.2f} LUFS, {found.true_peak:.2f} dBTP "
            f"(mastered in full: {landed.lufs:.2f} LUFS)"
        )


@dataclass(frozen=True)
class PartData:
    """What a splice needs of a parted master's parts (kept beside its recipe).

    ``bounds`` are the parts (:func:`~mixdown.codecs.parts.bounds`); ``wav``
    each part's measurement (what the pass metered; the WAV holds those
    samples) and ``crcs`` the CRC-32 of its WAV bytes, when the pass wrote a
    WAV; ``mp3`` each part's MP3 measurement, ``mp3_sizes`` the byte size of
    each of its frames and ``mp3_encoding`` ``(bitrate, vbr, quality)``,
    when the pass wrote an MP3.
    """

    bounds: list[tuple[int, int]]
    wav: list[Measured]
    crcs: list[int] | None = None
    mp3: list[Measured] | None = None
    mp3_sizes: list[np.ndarray] | None = None
    mp3_encoding: tuple[int, bool, int] | None = None

    @classmethod
    def of(cls, passes: parts.ParallelPasses) -> PartData:
        """The parts of ``passes``'s last pass."""
        encoding = None if passes.mp3 is None else (passes.mp3[1], bool(passes.mp3[2]), passes.mp3[3])
        sizes = passes.mp3_sizes() if passes.mp3 is not None else None
        bounds, crcs = list(passes.bounds), passes.wav_crcs()
        return cls(bounds, list(passes.measures), crcs, passes.mp3_measures, sizes, encoding)

    def to_bytes(self) -> bytes:
        """The parts as an ``.npz`` file's bytes (see :meth:`load`)."""
        arrays: dict[str, Any] = {
            "bounds": np.array(self.bounds, np.int64).reshape(-1, 2),
            **_packed("wav", self.wav),
        }
        if self.crcs is not None:
            arrays["crcs"] = np.array(self.crcs, np.int64)
        if self.mp3 is not None and self.mp3_sizes is not None and self.mp3_encoding is not None:
            arrays.update(_packed("mp3", self.mp3))
            arrays["mp3_frames"] = np.array([len(s) for s in self.mp3_sizes], np.int64)
            arrays["mp3_sizes"] = np.concatenate(self.mp3_sizes).astype(np.int32)
            bitrate, vbr, quality = self.mp3_encoding
            arrays["mp3_encoding"] = np.array([bitrate, int(vbr), quality], np.int64)
        out = io.BytesIO()
        np.savez(out, **arrays)
        return out.getvalue()

    @classmethod
    def load(cls, path: Path) -> PartData | None:
        """The parts written by :meth:`to_bytes`, or None if there are none or they do not read."""
        import zipfile

        try:
            with np.load(path) as data:
                bounds = [(int(a), int(b)) for a, b in data["bounds"]]
                wav = _unpacked("wav", data)
                crcs = [int(c) for c in data["crcs"]] if "crcs" in data else None
                if len(wav) != len(bounds) or (crcs is not None and len(crcs) != len(bounds)):
                    return None
                if "mp3_encoding" not in data:
                    return cls(bounds, wav, crcs)
                mp3 = _unpacked("mp3", data)
                cuts = np.cumsum(data["mp3_frames"])[:-1]
                sizes = np.split(data["mp3_sizes"].astype(np.int64), cuts)
                bitrate, vbr, quality = (int(v) for v in data["mp3_encoding"])
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
            return None
        if not len(mp3) == len(sizes) == len(bounds):
            return None
        return cls(bounds, wav, crcs, mp3, sizes, (bitrate, bool(vbr), quality))


def _packed(name: str, measured: list[Measured]) -> dict[str, np.ndarray]:
    return {
        f"{name}_counts": np.array([len(m[0]) for m in measured], np.int64),
        f"{name}_hops": np.concatenate([np.asarray(m[0], np.float64) for m in measured]),
        f"{name}_peaks": np.array([[m[1], m[2]] for m in measured], np.float64).reshape(-1, 2),
    }


def _unpacked(name: str, data: Any) -> list[Measured]:
    hops = np.split(data[f"{name}_hops"], np.cumsum(data[f"{name}_counts"])[:-1])
    peaks = data[f"{name}_peaks"]
    if len(hops) != len(peaks):
        raise ValueError("a part without its peaks")
    return [(h, float(p[0]), float(p[1])) for h, p in zip(hops, peaks, strict=True)]


def dirty_parts(old: parts.Recipe, frames: int, start: int, stop: int) -> list[bool]:
    """Which parts of the master of a mix of ``frames`` must be made again, the master ``old``
    describing its parent, when the mixes differ only in ``[start, stop)`` (to the new mix's end
    when their lengths differ): those whose stretch of the mix meets the range, or differs from
    the part's in the parent (bounds, length, or whether it ends the programme)."""
    sr, seconds = old.sample_rate, old.seconds
    before = list(
        zip(parts.bounds(old.frames, sr, seconds), parts.spans(old.frames, sr, seconds), strict=True)
    )
    now = zip(parts.bounds(frames, sr, seconds), parts.spans(frames, sr, seconds), strict=True)
    dirty = []
    for index, (bounds, (first, end)) in enumerate(now):
        same = (
            index < len(before)
            and before[index] == (bounds, (first, end))
            and (end == frames) == (end == old.frames)
        )
        dirty.append(not same or (first < stop and start < end))
    return dirty


class Reuse:
    """The parts a spliced pass copies from the files published before (see
    :class:`~mixdown.codecs.parts.ParallelPasses`).

    ``data`` describes the published files' parts (of their master); ``dirty``
    flags the parts of the new master to make again (:func:`dirty_parts`).
    The pass writes the formats named: ``wav`` is the published WAV and the
    :class:`~mixdown.codecs.wav.WavWriter` of the new one, ``mp3`` the
    published MP3 and the new one's ``(bitrate, vbr, quality)``. Raises
    :class:`CannotSplice` when the files are not what ``data`` describes in
    the format asked for now.
    """

    def __init__(
        self,
        data: PartData,
        dirty: list[bool],
        *,
        wav: tuple[Path, Any] | None = None,
        mp3: tuple[Path, tuple[int, bool, int]] | None = None,
    ) -> None:
        self.data, self.dirty = data, dirty
        self.wav, self.mp3 = (wav[0] if wav else None), (mp3[0] if mp3 else None)
        self._mp3_at = np.zeros(1, np.int64)
        if wav is not None:
            if data.crcs is None:
                raise CannotSplice(f"{wav[0].name}'s parts were not recorded")
            _check_wav(wav[0], wav[1], data.bounds[-1][1])
        if mp3 is not None:
            if data.mp3_sizes is None or mp3[1] != data.mp3_encoding:
                raise CannotSplice(f"{mp3[0].name} was encoded with other settings")
            self._mp3_at = np.concatenate([[0], np.cumsum([int(s.sum()) for s in data.mp3_sizes])])
            self._mp3_at += _tag_bytes(mp3[0])  # the frames follow the file's ID3 tag
            if os.path.getsize(mp3[0]) != self._mp3_at[-1]:
                raise CannotSplice(f"{mp3[0].name} is not the MP3 its master recorded")

    @property
    def made(self) -> int:
        """How many parts are made again."""
        return sum(self.dirty)

    def measure(self, index: int) -> Measured:
        """Part ``index``'s measurement, as kept."""
        return self.data.wav[index]

    def mp3_measure(self, index: int) -> Measured:
        """Part ``index``'s MP3 measurement, as kept."""
        assert self.data.mp3 is not None
        return self.data.mp3[index]

    def remeasure_mp3(self, index: int) -> bool:
        """Whether part ``index``'s MP3 is decoded and metered again: it, or a part whose frames
        its decoder reads (the one before: lead-in; the one after: its last peaks), is new."""
        return any(self.dirty[max(0, index - 1) : index + 2])

    def crc(self, index: int) -> int:
        """The CRC-32 of part ``index``'s bytes in the published WAV, as its pass wrote them."""
        assert self.data.crcs is not None
        return self.data.crcs[index]

    def differs(self, index: int) -> NoReturn:
        """Raise :class:`CannotSplice`: part ``index``, copied from the published WAV, did not read
        back as its pass wrote it."""
        assert self.wav is not None
        raise CannotSplice(f"{self.wav.name} is not the WAV its master recorded (part {index})")

    def copy_wav(self, writer: Any, start: int, stop: int) -> None:
        """Copy frames ``[start, stop)`` of the published WAV into ``writer`` (a WavWriter)."""
        assert self.wav is not None
        writer.copy_from(self.wav, start, stop)

    def copy_mp3(self, index: int, out: Any) -> np.ndarray:
        """Append part ``index``'s frames from the published MP3 to ``out``; their sizes."""
        assert self.mp3 is not None and self.data.mp3_sizes is not None
        at, left = int(self._mp3_at[index]), int(self._mp3_at[index + 1] - self._mp3_at[index])
        with open(self.mp3, "rb") as source:
            source.seek(at)
            head = source.read(min(left, 1 << 22))
            if left and (len(head) < 2 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0):
                raise CannotSplice(f"{self.mp3.name} has no MP3 frame where part {index} starts")
            while head:
                out.write(head)
                left -= len(head)
                head = source.read(min(left, 1 << 22)) if left else b""
        if left:
            raise CannotSplice(f"{self.mp3.name} ends inside part {index}")
        out.flush()
        return self.data.mp3_sizes[index]


def _tag_bytes(path: Path) -> int:
    """The bytes of the ID3v2 tag the MP3 at ``path`` starts with (0 for none)."""
    from .tags import id3_size

    with open(path, "rb") as fh:
        return id3_size(fh.read(10))


def _check_wav(path: Path, writer: Any, frames: int) -> None:
    """The published WAV at ``path`` holds ``frames`` of the kind ``writer`` writes, in a header
    of the same layout (RIFF or RF64); else :class:`CannotSplice`."""
    import soundfile as sf

    from .wav import wav_container

    info = sf.info(os.fspath(path))
    container = wav_container((frames, writer.channels), writer.subtype)
    if (info.frames, info.samplerate, info.channels, info.subtype, info.format) != (
        frames,
        writer.sample_rate,
        writer.channels,
        writer.subtype,
        container,
    ) or wav_container((writer.frames, writer.channels), writer.subtype) != container:
        raise CannotSplice(f"{path.name} is not in the format asked for now")
