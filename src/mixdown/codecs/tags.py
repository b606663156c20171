"""Tags in the published files: what a show's ``[metadata]`` says, in each format's own way.

=======  ==============================================================
format   tags
=======  ==============================================================
MP3      ID3v2.4: TIT2, TPE1, TALB, TRCK (episode), TDRC, COMM, APIC
         (cover); chapters as CHAP frames under one CTOC
FLAC     Vorbis comments (TITLE, ARTIST, ALBUM, TRACKNUMBER, DATE,
OGG      COMMENT) and the cover as a picture (a FLAC PICTURE block, in
Opus     OGG/Opus a METADATA_BLOCK_PICTURE comment)
WAV      a RIFF ``LIST``/``INFO`` chunk (INAM, IART, IPRD, ICRD, ICMT)
         and a BWF ``bext`` chunk, version 2, with the file's loudness
=======  ==============================================================

:func:`write_tags` tags a file in place; the delivery step calls it on each
temporary file after the spec check and before the rename that publishes
it, so the lock's sha256 is the tagged file's. The audio is not touched:
ID3 goes before the first MP3 frame, Vorbis comments in their own blocks or
pages, and the WAV chunks after the samples (RIFF allows chunks in any
order; appending keeps the samples' offsets, so a long master is still
spliced part by part). A WAV has no cover: RIFF INFO has no field for one.

The ``bext`` loudness fields (EBU Tech 3285 v2) are the published file's own
measurement, in 0.01 LU or dB as signed 16-bit numbers, ``0x7FFF`` where a
value is not known (a silent file). mutagen is imported only when a file
with tags is written.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import AudioError

__all__ = [
    "COVER_TYPES",
    "Chapter",
    "Tags",
    "bext_chunk",
    "chapter_frames",
    "id3_size",
    "info_chunk",
    "untagged_copy",
    "write_tags",
]

#: the cover images a tag can carry, by file suffix
COVER_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
#: what a ``bext`` loudness field holds when the value is not known (EBU Tech 3285 v2)
UNKNOWN = 0x7FFF
_BEXT_VERSION = 2
_VORBIS = {"title": "TITLE", "artist": "ARTIST", "album": "ALBUM", "episode": "TRACKNUMBER"}
_VORBIS |= {"date": "DATE", "comment": "COMMENT"}
_INFO = (("INAM", "title"), ("IART", "artist"), ("IPRD", "album"), ("ICRD", "date"), ("ICMT", "comment"))


class Chapter(NamedTuple):
    """A chapter of a programme: from ``start`` to ``end`` seconds, and its title."""

    start: float
    end: float
    title: str


@dataclass(frozen=True)
class Tags:
    """One rendition's ``[metadata]``, rendered: what its published files are tagged with.

    Empty strings are left out of the files. ``cover`` is the absolute path
    of a JPEG or PNG in the show, ``cover_sha256`` its content's digest (so
    that a new image republishes the files).
    """

    title: str = ""
    artist: str = ""
    album: str = ""
    episode: str = ""
    date: str = ""
    comment: str = ""
    cover: str | None = None
    cover_sha256: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The tags as JSON values (the publishing stamps hash them)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Tags:
        """The tags :meth:`to_json` gave."""
        return cls(**data)

    def text(self) -> dict[str, str]:
        """The text fields that are set, by name."""
        return {k: v for k, v in asdict(self).items() if k not in ("cover", "cover_sha256") and v}


def write_tags(path: Path, fmt: str, tags: Tags, found: Any, chapters: Sequence[Chapter] = ()) -> None:
    """Tag the file ``path`` of format ``fmt`` in place with ``tags`` (and ``chapters``: MP3 only).

    ``found`` is the file's :class:`~mixdown.dsp.loudness.Measurement`, which
    a WAV's ``bext`` chunk records. A format without tags (none here today)
    is left as it is. Raises :class:`AudioError` naming the file if it
    cannot be tagged.
    """
    if fmt == "mp3":
        _write_id3(path, tags, chapters)
    elif fmt in ("flac", "ogg", "opus"):
        _write_vorbis(path, fmt, tags)
    elif fmt == "wav":
        from .riff import append_chunks

        append_chunks(path, info_chunk(tags) + bext_chunk(tags, found, _coding(path)))


def _cover(tags: Tags) -> tuple[str, bytes] | None:
    """The cover's MIME type and bytes, or None."""
    if tags.cover is None:
        return None
    cover = Path(tags.cover)
    try:
        return COVER_TYPES[cover.suffix.lower()], cover.read_bytes()
    except OSError as err:
        raise AudioError(
            f"{cover}: cannot read the cover image ({err.strerror}); check [metadata] cover"
        ) from None


def _write_id3(path: Path, tags: Tags, chapters: Sequence[Chapter]) -> None:
    from mutagen.id3 import APIC, COMM, ID3, TALB, TDRC, TIT2, TPE1, TRCK

    made = {"title": TIT2, "artist": TPE1, "album": TALB, "episode": TRCK, "date": TDRC}
    id3 = ID3()
    for name, value in tags.text().items():
        if name == "comment":
            id3.add(COMM(encoding=3, lang="eng", desc="", text=[value]))
        else:
            id3.add(made[name](encoding=3, text=[value]))
    cover = _cover(tags)
    if cover is not None:
        id3.add(APIC(encoding=3, mime=cover[0], type=3, desc="", data=cover[1]))
    for frame in chapter_frames(chapters):
        id3.add(frame)
    id3.save(path, v1=0, v2_version=4, padding=lambda info: 0)


def chapter_frames(chapters: Sequence[Chapter]) -> list[Any]:
    """ID3v2 chapter frames (ID3v2 Chapter Frame Addendum 1.0) for ``chapters``, in order: one
    top-level, ordered CTOC listing a CHAP per chapter (``chp0``, ``chp1``, …) with its title as a
    TIT2 sub-frame and its times in milliseconds. Empty for no chapters."""
    from mutagen.id3 import CHAP, CTOC, TIT2, CTOCFlags

    if not chapters:
        return []
    ids = [f"chp{i}" for i in range(len(chapters))]
    flags = CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED
    frames: list[Any] = [CTOC(element_id="toc", flags=flags, child_element_ids=ids, sub_frames=[])]
    for name, chapter in zip(ids, chapters, strict=True):
        start, end = round(chapter.start * 1000), round(chapter.end * 1000)
        title = [TIT2(encoding=3, text=[chapter.title])]
        # offsets 0xFFFFFFFF: readers place chapters by time, not by byte
        frames.append(CHAP(element_id=name, start_time=start, end_time=end, sub_frames=title))
    return frames


def _write_vorbis(path: Path, fmt: str, tags: Tags) -> None:
    import base64

    from mutagen.flac import FLAC, Picture
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis

    opened: Any = {"flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}[fmt](path)
    if opened.tags is None:
        opened.add_tags()
    for name, value in tags.text().items():
        opened.tags[_VORBIS[name]] = [value]
    cover = _cover(tags)
    if cover is not None:
        picture = Picture()
        picture.type, picture.mime, picture.data = 3, cover[0], cover[1]
        if fmt == "flac":
            opened.add_picture(picture)
        else:
            opened.tags["METADATA_BLOCK_PICTURE"] = [base64.b64encode(picture.write()).decode("ascii")]
    opened.save()


def info_chunk(tags: Tags) -> bytes:
    """A RIFF ``LIST`` chunk of type ``INFO`` with the tags that are set (UTF-8, NUL-ended); empty
    if none is."""
    text = tags.text()
    body = b"".join(
        _chunk(kind.encode(), text[name].encode("utf-8") + b"\0") for kind, name in _INFO if name in text
    )
    return _chunk(b"LIST", b"INFO" + body) if body else b""


def bext_chunk(tags: Tags, found: Any, coding_history: str = "") -> bytes:
    """A BWF ``bext`` chunk, version 2 (EBU Tech 3285 v2): the title as its description, the
    artist as its originator, the date (if it is ``YYYY-MM-DD``) as its origination date, and the
    loudness fields from ``found`` (a :class:`~mixdown.dsp.loudness.Measurement`): integrated
    loudness, loudness range, max true peak, max momentary and max short-term loudness, each in
    hundredths as a signed 16-bit number."""
    date = tags.date[:10] if re.fullmatch(r"\d{4}-\d{2}-\d{2}", tags.date[:10]) else ""
    loudness = [
        _hundredths(v)
        for v in (found.integrated, found.lra, found.true_peak, found.max_momentary, found.max_short_term)
    ]
    body = struct.pack(
        "<256s32s32s10s8sIIH64s5h180s",
        _field(tags.title, 256),
        _field(tags.artist, 32),
        b"",
        date.encode("ascii"),
        b"",
        0,
        0,
        _BEXT_VERSION,
        b"",
        *loudness,
        b"",
    )
    return _chunk(b"bext", body + coding_history.encode("ascii"))


def _hundredths(value: float) -> int:
    """``value`` in hundredths as a ``bext`` field holds it; :data:`UNKNOWN` if it is not finite
    or does not fit."""
    if not math.isfinite(value) or not -32768 <= round(value * 100) < UNKNOWN:
        return UNKNOWN
    return round(value * 100)


def _field(text: str, size: int) -> bytes:
    """``text`` as UTF-8 cut to ``size`` bytes at a character boundary."""
    data = text.encode("utf-8")[:size]
    return data.decode("utf-8", "ignore").encode("utf-8")


def _coding(path: Path) -> str:
    """The ``bext`` coding history line of the WAV at ``path`` (EBU R98), e.g.
    ``A=PCM,F=48000,W=24,M=stereo,T=mixdown``."""
    import soundfile as sf

    info = sf.info(str(path))
    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64}.get(info.subtype, 0)
    mode = {1: ",M=mono", 2: ",M=stereo"}.get(info.channels, "")
    return f"A=PCM,F={info.samplerate},W={bits}{mode},T=mixdown\r\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    """One RIFF chunk: ``kind``, its size, ``data`` and a pad byte if it is odd."""
    return kind + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)


def untagged_copy(path: Path, out: Path, fmt: str) -> None:
    """Write to ``out`` the file ``path`` of format ``fmt`` without the tags :func:`write_tags`
    gave it: the file as it was encoded (for a tag edit, which tags it again)."""
    if fmt == "wav":
        from .riff import riff_chunks, set_riff_size

        chunks = riff_chunks(path)
        while len(chunks) > 1 and chunks[-1].kind in (b"LIST", b"bext"):  # ours come last
            chunks.pop()
        keep = min(chunks[-1].end + (chunks[-1].size & 1), path.stat().st_size)
        _copy(path, out, 0, keep)
        with open(out, "r+b") as fh:
            set_riff_size(fh, keep)
    elif fmt == "mp3":
        with open(path, "rb") as fh:
            start = id3_size(fh.read(10))
        _copy(path, out, start, path.stat().st_size - start)
    else:
        _copy(path, out, 0, path.stat().st_size)
        if fmt in ("flac", "ogg", "opus"):
            _clear_vorbis(out, fmt)


def _copy(path: Path, out: Path, start: int, count: int) -> None:
    """Copy ``count`` bytes of ``path`` from ``start`` into a new file ``out``."""
    with open(path, "rb") as source, open(out, "wb") as target:
        source.seek(start)
        while count > 0:
            block = source.read(min(count, 1 << 22))
            if not block:
                raise AudioError(f"{path}: the file ended early while its tags were replaced; build again")
            target.write(block)
            count -= len(block)


def _clear_vorbis(path: Path, fmt: str) -> None:
    """Remove the Vorbis comments (and a FLAC's pictures) of ``path``, keeping its vendor string."""
    from mutagen.flac import FLAC
    from mutagen.oggopus import OggOpus
    from mutagen.oggvorbis import OggVorbis

    opened: Any = {"flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}[fmt](path)
    if fmt == "flac":
        opened.clear_pictures()
    if opened.tags is not None:
        opened.tags.clear()
    opened.save()


def id3_size(head: bytes) -> int:
    """The bytes an ID3v2 tag takes at the start of ``head`` (its first 10 bytes at least),
    footer included; 0 if it starts with none."""
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return 0
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return 10 + size + (10 if head[5] & 0x10 else 0)
