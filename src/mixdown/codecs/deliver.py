"""Encoding, and the spec check that guards ``build/``.

A delivery (a preset of :data:`mixdown.settings.PRESETS` plus a show's
overrides) takes a master, brings it to a preset's loudness target under its
true-peak ceiling, converts rate and channels, encodes it, then decodes the
file it wrote and measures it. Only a file within the preset's tolerance is
moved into ``build/``; otherwise the target fails with a one-line message
and nothing is published.

=============  ==========  ==========  =========  ===============================
preset         target      true peak   tolerance  format
=============  ==========  ==========  =========  ===============================
``podcast``    −16 LUFS    −1 dBTP     ±1 LU      as asked (WAV, FLAC, MP3)
``streaming``  −14 LUFS    −1 dBTP     ±1 LU      as asked
``ebu-r128``   −23 LUFS    −1 dBTP     ±0.5 LU    as asked
``atsc-a85``   −24 LKFS    −2 dBTP     ±2 LU      as asked
``alexa``      −14 LUFS    −2 dBTP     ±5 LU      MP3 48 kbps CBR, mono, 24 kHz
``custom``     given       given       ±1 LU      given
=============  ==========  ==========  =========  ===============================

MP3 is encoded with LAME (``lameenc``) in a child process, beside the
other formats: exact bitrates, CBR or VBR, and several times faster than
libsndfile's MP3 writer. Every stage streams: a ten-hour programme is read,
mastered, encoded and checked a block at a time (WAVs over 4 GiB are
written as RF64).
"""

from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..errors import RenderFailed
from ..settings import LOSSY, LOSSY_HEADROOM_DB, Delivery, rate_for
from ..store.files import discard, publish, temporary_beside

if TYPE_CHECKING:  # presets are read when a show loads; the DSP loads when a delivery runs
    from collections.abc import Iterator, Sequence

    import numpy as np

    from ..dsp.master import Loudness
    from ..dsp.signal import Stream
    from .tags import Chapter, Tags
    from .wav import Source

__all__ = ["Formats", "deliver", "measure_file", "subtype_for", "temporary_for"]

# A file that still decodes over its ceiling is made again under a ceiling lowered, where it
# overshot, by the excess and this much more (its overshoot moves a little with the level).
# Lowered only where it overshot (not everywhere), a file keeps its loudness: low-bitrate
# MP3s of limited speech overshoot in places, and a ceiling lowered everywhere cost them LUs.
_RETRY_MARGIN_DB = 1.0
_ATTEMPTS = 4
_REGION = 0.05  # s: the ceiling is lowered in regions this long
# and over this much either side of an overshoot: a decoder's delay (MP3: 1105 samples), the
# limiter's look-ahead, and the codec's frames (which spread a change over 50 ms at 24 kHz)
_SPREAD = 0.15  # s


def deliver(
    source: Source,
    stem: Path,
    delivery: Delivery,
    *,
    target: str,
    loudness: Loudness | None = None,
    written: Sequence[tuple[str, Path, Any]] = (),
    tags: Tags | None = None,
    chapters: Sequence[Chapter] = (),
    own: bool = False,
) -> list[tuple[Path, Any]]:
    """Write ``stem.<format>`` for each format of ``delivery``; return (path, measurement) pairs.

    ``source`` is read in blocks, never whole. Formats that share a sample
    rate and a ceiling (lossy formats get :data:`LOSSY_HEADROOM_DB` more) are
    written in one pass. ``loudness`` is what is known of the source (a
    master's own measurement): when the source already has the delivery's
    rate, channels and loudness and sits under its ceiling, it is encoded as
    it is; otherwise it is mastered again for the delivery, straight into the
    encoders (:func:`mixdown.dsp.master.master_stream`). ``written`` are files
    of this delivery already encoded and measured by a :class:`Formats` sink
    (format, temporary path, measurement): they are checked and published
    with the rest. ``tags`` (and ``chapters``) are written into each file
    once it passed the check, before it is published
    (:func:`mixdown.codecs.tags.write_tags`). ``own``: the source is this
    delivery's own master (the [master] files), measured at ``loudness``: a
    format at its rate is encoded as it is wherever it is under the format's
    ceiling, even where the master landed off its target (a programme whose
    target is out of reach), so every file of a master holds the same audio.

    A file that decodes over the ceiling (an encoder's inter-sample peaks)
    is made again, the ceiling lowered where it overshot by its excess and
    :data:`_RETRY_MARGIN_DB`, so that the rest keeps its loudness; the last
    attempt lowers it everywhere by at least its excess and the margin.

    Each file is written beside its destination under a temporary name,
    decoded and measured, and renamed into place only if it meets the
    delivery's loudness tolerance and ceiling; otherwise :class:`RenderFailed`
    names ``target`` and what was measured, and no file of this call is left.
    """
    files: dict[str, tuple[Path, Any]] = {}
    overshot: dict[str, tuple[Path, Any]] = {}  # written files whose encoder overshot: made again below
    try:
        for fmt, tmp, found in written:
            (overshot if found.true_peak > delivery.ceiling_dbtp else files)[fmt] = (tmp, found)
        groups: dict[tuple[int, float], list[str]] = {}
        for fmt in delivery.formats:
            if fmt not in files:
                rate = rate_for(fmt, delivery.sample_rate or source.sample_rate)
                groups.setdefault((rate, delivery.ceiling_dbtp - _margin(fmt)), []).append(fmt)
        for (rate, ceiling), formats in groups.items():
            seen = {fmt: overshot[fmt] for fmt in formats if fmt in overshot and rate == source.sample_rate}
            lowered = _lowered(seen, rate, delivery.ceiling_dbtp, None) if seen else None
            group = _Group(source, stem, formats, rate, ceiling, delivery, loudness, own)
            files.update(_under_ceiling(group, lowered))
        return _publish(files, stem, delivery, target, (tags, chapters))
    finally:
        for tmp, _ in [*files.values(), *overshot.values()]:
            discard(tmp)


class _Group(NamedTuple):
    """Formats of a delivery written in one pass: at one rate, under one ceiling."""

    source: Source
    stem: Path
    formats: list[str]
    sr: int
    ceiling: float
    delivery: Delivery
    loudness: Loudness | None  # what is known of the source's, if anything
    own: bool = False  # the source is the delivery's own master (see deliver)


def _under_ceiling(group: _Group, lowered: np.ndarray | None) -> dict[str, tuple[Path, Any]]:
    """:func:`_write_group`, made again (up to :data:`_ATTEMPTS` in all) while a file decodes over
    the delivery's ceiling, the ceiling lowered where it overshot (:func:`_lowered`; ``lowered``:
    where to start), and on the last attempt everywhere too."""
    sr, delivery = group.sr, group.delivery
    attempt = 1
    while True:
        profile = None if lowered is None else _profile(lowered, sr)
        made = _write_group(group, profile)
        excess = max(found.true_peak for _, found in made.values()) - delivery.ceiling_dbtp
        if excess <= 0 or attempt == _ATTEMPTS:
            return made
        lowered = _lowered(made, sr, delivery.ceiling_dbtp, lowered)
        if attempt + 1 == _ATTEMPTS:
            import numpy as np

            # The last attempt: the codec's noise has moved the overshoot to new places at each
            # one so far, so the ceiling comes down everywhere, by this excess and the margin.
            lowered = np.maximum(lowered, excess + _RETRY_MARGIN_DB)
        for tmp, _ in made.values():
            discard(tmp)
        attempt += 1


def _publish(
    files: dict[str, tuple[Path, Any]],
    stem: Path,
    delivery: Delivery,
    target: str,
    tagged: tuple[Tags | None, Sequence[Chapter]],
) -> list[tuple[Path, Any]]:
    """Check every file, tag it, then move them all into place (none if one fails)."""
    for fmt in delivery.formats:
        _check(files[fmt][1], delivery, target, stem.with_name(f"{stem.name}.{fmt}"))
    tags, chapters = tagged
    if tags is not None:
        from .tags import write_tags

        for fmt in delivery.formats:
            write_tags(files[fmt][0], fmt, tags, files[fmt][1], chapters)
    published = []
    for fmt in delivery.formats:
        path = stem.with_name(f"{stem.name}.{fmt}")
        publish(files[fmt][0], path)
        published.append((path, files[fmt][1]))
    return published


def _margin(fmt: str) -> float:
    return LOSSY_HEADROOM_DB if fmt in LOSSY else 0.0


class Formats:
    """A sink writing one or more formats of a delivery at once, block by block.

    Each format goes to a temporary file beside ``stem``; :meth:`finish`
    closes them, decodes each and measures it. :meth:`discard` (or an error)
    removes them. :func:`mixdown.dsp.master.master_stream` can write into it
    directly, so a master is encoded as it is made.
    """

    def __init__(
        self, stem: Path, formats: Sequence[str], sr: int, channels: int, delivery: Delivery, frames: int
    ) -> None:
        stem.parent.mkdir(parents=True, exist_ok=True)
        self.formats = list(formats)
        self.paths: list[Path] = []
        self._encoders: list[Any] = []
        try:
            for fmt in self.formats:
                self.paths.append(temporary_for(stem, fmt))
                self._encoders.append(_encoder(self.paths[-1], fmt, sr, channels, delivery, frames))
        except BaseException:
            self.discard()
            raise

    def write(self, block: np.ndarray) -> None:
        try:
            for encoder in self._encoders:
                encoder.write(block)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        for encoder in self._encoders:
            encoder.abort()
        for path in self.paths:
            discard(path)

    def finish(self) -> list[tuple[str, Path, Any]]:
        """Close the files; return (format, temporary path, measurement of the decoded file)."""
        try:
            for encoder in self._encoders:
                encoder.close()
            found = _measure_files(self.paths)
        except BaseException:
            self.discard()
            raise
        return list(zip(self.formats, self.paths, found, strict=True))


def _write_group(group: _Group, profile: np.ndarray | None = None) -> dict[str, tuple[Path, Any]]:
    """Encode the formats of ``group`` in one pass; decode and measure each file.

    ``profile`` lowers the ceiling row by row (see :class:`mixdown.dsp.dynamics.Limiter`).
    """
    from ..dsp.master import MASTER_MARGIN_DB, MasterSettings, master_stream

    source, stem, formats, sr, ceiling, delivery, loudness, own = group

    channels = delivery.channels or source.channels
    converted = _converted(source, channels, sr)
    ready = (
        profile is None
        and loudness is not None
        and converted is source
        and (own or abs(loudness.integrated_lufs - delivery.target_lufs) <= 0.1)
        and loudness.true_peak_dbtp <= ceiling - MASTER_MARGIN_DB + 0.01
    )
    sinks: list[Formats] = []

    def open_sink() -> Formats:
        sinks.append(Formats(stem, formats, sr, channels, delivery, converted.frames))
        return sinks[-1]

    if ready:
        sink = open_sink()
        for block in converted.blocks():
            sink.write(block)
    else:
        master_stream(converted, MasterSettings(delivery.target_lufs, ceiling), open_sink, profile=profile)
    return {fmt: (tmp, found) for fmt, tmp, found in sinks[-1].finish()}


def _lowered(
    made: dict[str, tuple[Path, Any]], sr: int, ceiling_dbtp: float, before: np.ndarray | None
) -> np.ndarray:
    """How far under the ceiling to aim, per region of :data:`_REGION` (dB): ``before``, and
    where a file of ``made`` decodes over ``ceiling_dbtp``, its excess there and
    :data:`_RETRY_MARGIN_DB` more, spread :data:`_SPREAD` either side."""
    import numpy as np
    from scipy.ndimage import maximum_filter1d

    from ..dsp.loudness import ROW

    rows = max(1, round(_REGION * sr / ROW))
    lowered = np.zeros(0) if before is None else before
    for tmp, found in made.values():
        if found.true_peak <= ceiling_dbtp:
            continue
        peaks = _row_peaks(tmp)
        regions = np.pad(peaks, (0, -len(peaks) % rows)).reshape(-1, rows).max(axis=1)
        with np.errstate(divide="ignore"):
            excess = np.maximum(20 * np.log10(regions) - ceiling_dbtp, 0.0)
        spread = maximum_filter1d(excess, 2 * math.ceil(_SPREAD / _REGION) + 1, mode="constant")
        more = np.where(spread > 0, spread + _RETRY_MARGIN_DB, 0.0)
        size = max(len(lowered), len(more))
        lowered = np.pad(lowered, (0, size - len(lowered))) + np.pad(more, (0, size - len(more)))
    return lowered


def _profile(lowered: np.ndarray, sr: int) -> np.ndarray:
    """:func:`_lowered` as a factor on the limiter's aim per row of its output."""
    import numpy as np

    from ..dsp.loudness import ROW

    rows = max(1, round(_REGION * sr / ROW))
    factors: np.ndarray = np.repeat(10 ** (-lowered / 20), rows)
    return factors


def _row_peaks(path: Path) -> np.ndarray:
    """The true peak (linear) of every row of :data:`mixdown.dsp.loudness.ROW` samples of the file at ``path``."""
    import numpy as np

    from ..dsp.loudness import ENVELOPE_AFTER, ENVELOPE_BEFORE, ROW, peak_rows
    from .wav import Source as Audio

    if path.suffix == ".mp3":
        from .mp3 import decoded, frame_index

        data = path.read_bytes()
        _, _, sr, channels = frame_index(data)
        blocks: Iterator[np.ndarray] = decoded(data, channels)
    else:
        source = Audio.of_file(path)
        sr, channels, blocks = source.sample_rate, source.channels, source.blocks()
    out, buffer = [], np.zeros((ENVELOPE_BEFORE, channels), np.float32)
    for block in blocks:
        buffer = np.concatenate([buffer, block])
        ready = (len(buffer) - ENVELOPE_BEFORE - ENVELOPE_AFTER) // ROW * ROW
        if ready > 0:
            out.append(peak_rows(buffer[: ENVELOPE_BEFORE + ready + ENVELOPE_AFTER], sr))
            buffer = buffer[ready:]
    if len(buffer) > ENVELOPE_BEFORE:
        out.append(peak_rows(np.concatenate([buffer, np.zeros((ENVELOPE_AFTER, channels), np.float32)]), sr))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _converted(source: Source, channels: int, sr: int) -> Stream:
    """``source`` itself if it has ``channels`` at ``sr``, else a :class:`_Converted` view."""
    if source.channels == channels and source.sample_rate == sr:
        return source
    return _Converted(source, channels, sr)


class _Converted:
    """``source`` mapped to ``channels`` and resampled to ``sr`` block by block (soxr, streaming)."""

    def __init__(self, source: Source, channels: int, sr: int) -> None:
        self.source, self.channels, self.sample_rate = source, channels, sr
        self.frames = round(source.frames * sr / source.sample_rate)

    def blocks(self, size: int = 1 << 17) -> Iterator[np.ndarray]:
        import numpy as np
        import soxr

        from ..dsp.signal import as_channels

        same_rate = self.source.sample_rate == self.sample_rate
        stream = (
            None
            if same_rate
            else soxr.ResampleStream(
                self.source.sample_rate, self.sample_rate, self.channels, dtype="float32", quality="HQ"
            )
        )
        for block in self.source.blocks(size):
            block = as_channels(block, self.channels)
            if stream is None:
                yield block
                continue
            out = stream.resample_chunk(np.ascontiguousarray(block))
            if len(out):
                yield out.reshape(-1, self.channels)
        if stream is not None:
            out = stream.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)
            if len(out):
                yield out.reshape(-1, self.channels)


class _Writer:
    """A libsndfile writer of float blocks (WAV, FLAC, OGG Vorbis, Opus)."""

    def __init__(self, path: Path, sr: int, channels: int, fmt: str, subtype: str, *, frames: int) -> None:
        import soundfile as sf

        from .wav import wav_container

        if fmt == "WAV":
            fmt = wav_container((frames, channels), subtype)
        self.path, self._chunk = path, 1 << 16 if fmt == "OGG" else 0
        self._file = sf.SoundFile(os.fspath(path), "w", sr, channels, subtype, format=fmt)

    def write(self, block: np.ndarray) -> None:
        if not self._chunk:
            self._file.write(block)
            return
        for start in range(0, len(block), self._chunk):  # libvorbis crashes on very long writes
            self._file.write(block[start : start + self._chunk])

    def discard(self) -> None:
        self._file.close()
        discard(self.path)

    def close(self) -> None:
        self._file.close()

    abort = close


def temporary_for(stem: Path, fmt: str) -> Path:
    """A new temporary file beside ``stem`` for its ``fmt`` file (published by rename later)."""
    fd, name = temporary_beside(stem, f".tmp.{fmt}")
    os.close(fd)
    return Path(name)


def _encoder(tmp: Path, fmt: str, sr: int, channels: int, delivery: Delivery, frames: int) -> Any:
    """A writer of ``fmt`` into ``tmp`` (see :class:`_Writer` and :class:`mixdown.codecs.lame.Mp3Writer`)."""
    if fmt == "mp3":
        from .lame import Mp3Writer

        return Mp3Writer(tmp, sr, channels, bitrate=delivery.bitrate, vbr=delivery.vbr, frames=frames)
    if fmt in ("ogg", "opus"):
        return _Writer(tmp, sr, channels, "OGG", "VORBIS" if fmt == "ogg" else "OPUS", frames=frames)
    subtype = subtype_for(fmt, delivery.bit_depth)
    return _Writer(tmp, sr, channels, fmt.upper(), subtype, frames=frames)


def subtype_for(fmt: str, bit_depth: int) -> str:
    """libsndfile's subtype for a WAV or FLAC of ``bit_depth`` (32: float WAV; FLAC stops at 24)."""
    return {16: "PCM_16", 24: "PCM_24", 32: "FLOAT" if fmt == "wav" else "PCM_24"}[bit_depth]


def _measure_files(paths: list[Path]) -> list[Any]:
    """Decode and measure each file, side by side on the meter's threads."""
    from concurrent.futures import ThreadPoolExecutor

    if len(paths) == 1:
        return [_measure_file(paths[0])]
    with ThreadPoolExecutor(max_workers=len(paths), thread_name_prefix="mixdown-check") as pool:
        return list(pool.map(_measure_file, paths))


# A file this close under its ceiling has had its peaks limited as far as they go (the master's
# margin, and a lossy format's headroom, under the ceiling, and a little more)
_AT_CEILING_DB = _RETRY_MARGIN_DB + LOSSY_HEADROOM_DB


def _check(found: Any, delivery: Delivery, target: str, path: Path) -> None:
    off = abs(found.integrated - delivery.target_lufs)
    if off > delivery.tolerance_lu or found.true_peak > delivery.ceiling_dbtp:
        raise RenderFailed(
            f"{target}: {path.name} is out of spec for '{delivery.preset}' "
            f"({found.integrated:.1f} LUFS, {found.true_peak:.1f} dBTP; wanted {delivery.target_lufs:g} "
            f"±{delivery.tolerance_lu:g} LU, at most {delivery.ceiling_dbtp:g} dBTP); nothing was published"
            + _too_quiet_hint(found, delivery)
        )


def _too_quiet_hint(found: Any, delivery: Delivery) -> str:
    """What to do about a file too quiet with its peaks at the ceiling: the limiter makes it no
    louder (limiting the few loud moments harder lets more of the quiet stretches into the
    programme's gated loudness, which then falls), so the programme has to change."""
    quiet = found.integrated < delivery.target_lufs - delivery.tolerance_lu
    if not quiet or found.true_peak < delivery.ceiling_dbtp - _AT_CEILING_DB:
        return ""
    return (
        ": limiting makes it no louder under its ceiling; make its quiet stretches louder "
        "(a music bed's gain_db, shorter pauses) or its loud moments less peaky, or set a lower target_lufs"
    )


def _measure_file(path: Path) -> Any:
    """Decode ``path`` block by block and measure it (BS.1770, true peak); MP3 in parallel parts."""
    from ..dsp.loudness import Meter
    from .wav import Source as Audio

    if path.suffix == ".mp3":
        from .mp3 import measure

        found = measure(path)
        if found is not None:
            return found if found.integrated != -math.inf else _measure_short(path, found)
    source = Audio.of_file(path)
    meter = Meter(source.sample_rate, source.channels)
    for block in source.blocks():
        meter.add(block)
    found = meter.result()
    return found if found.integrated != -math.inf else _measure_short(path, found)


def _measure_short(path: Path, found: Any) -> Any:
    """``found`` with the integrated loudness of a file under one gating block read as if looped
    (as :func:`mixdown.dsp.master.measure` reads a short programme); other files as they are."""

    from ..dsp.master import GATING_BLOCK, short_integrated

    if path.suffix == ".mp3":
        from .mp3 import decode, frame_index

        data = path.read_bytes()
        _, _, sr, channels = frame_index(data)
        y = decode(data, channels)
    else:
        import soundfile as sf

        y, sr = sf.read(os.fspath(path), dtype="float32", always_2d=True)
    if len(y) == 0 or len(y) >= math.ceil(GATING_BLOCK * sr):
        return found
    return replace(found, integrated=short_integrated(y, sr))


def measure_file(path: Path) -> Any:
    """The :class:`~mixdown.dsp.loudness.Measurement` of the audio file at ``path``, decoded
    block by block (as the spec check measures every file it publishes)."""
    return _measure_file(path)
