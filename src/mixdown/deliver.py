"""Delivery presets, encoding, and the spec check that guards ``build/``.

A delivery takes a master, brings it to a preset's loudness target under its
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

MP3 is encoded with LAME (``lameenc``): exact bitrates, CBR or VBR, and
several times faster than libsndfile's MP3 writer.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, RenderFailed

if TYPE_CHECKING:  # presets are read when a show loads; the DSP loads when a delivery runs
    import numpy as np

__all__ = ["FORMATS", "PRESETS", "Delivery", "deliver", "delivery_from"]

FORMATS = ("wav", "flac", "mp3", "ogg", "opus")  # ogg: Vorbis; opus: Opus in Ogg
LOSSY = frozenset({"mp3", "ogg", "opus"})
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
LOSSY_HEADROOM_DB = 1.0  # MP3 decodes with inter-sample peaks above its input's: start this far under
SETTINGS = (
    "preset",
    "target_lufs",
    "ceiling_dbtp",
    "formats",
    "sample_rate",
    "channels",
    "bit_depth",
    "bitrate",
    "vbr",
)


@dataclass(frozen=True)
class Delivery:
    """What one deliverable must be: loudness, ceiling, tolerance and encoding."""

    preset: str
    target_lufs: float
    ceiling_dbtp: float
    tolerance_lu: float
    formats: tuple[str, ...] = ("wav", "mp3")
    sample_rate: int | None = None  # None: the master's rate
    channels: int | None = None  # None: the master's channels
    bit_depth: int = 24  # WAV/FLAC: 16, 24 or 32 (32 = float WAV)
    bitrate: int = 192  # MP3 kbps (CBR), or the mean for VBR
    vbr: bool = False


PRESETS: dict[str, Delivery] = {
    "podcast": Delivery("podcast", -16.0, -1.0, 1.0),
    "streaming": Delivery("streaming", -14.0, -1.0, 1.0),
    "ebu-r128": Delivery("ebu-r128", -23.0, -1.0, 0.5),
    "atsc-a85": Delivery("atsc-a85", -24.0, -2.0, 2.0),
    "alexa": Delivery("alexa", -14.0, -2.0, 5.0, ("mp3",), sample_rate=24000, channels=1, bitrate=48),
    "custom": Delivery("custom", -16.0, -1.0, 1.0),
}


def delivery_from(table: dict[str, Any], where: str) -> Delivery:
    """A :class:`Delivery` from a ``[deliveries.NAME]`` table (a preset plus overrides)."""
    unknown = sorted(set(table) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(SETTINGS)}")
    name = table.get("preset", "podcast")
    if name not in PRESETS:
        raise ConfigError(f"{where}: unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in table.items() if k != "preset"}
    if "formats" in overrides:
        formats = overrides["formats"]
        if not isinstance(formats, list) or not formats or any(f not in FORMATS for f in formats):
            raise ConfigError(f"{where}: formats must be a non-empty list of {', '.join(FORMATS)}")
        overrides["formats"] = tuple(dict.fromkeys(formats))
    if overrides.get("bit_depth", 24) not in (16, 24, 32) or overrides.get("channels", 1) not in (1, 2):
        raise ConfigError(f"{where}: bit_depth must be 16, 24 or 32 and channels 1 or 2")
    try:
        return replace(PRESETS[name], **overrides)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None


def deliver(y: np.ndarray, sr: int, stem: Path, delivery: Delivery, *, target: str) -> list[tuple[Path, Any]]:
    """Write ``stem.<format>`` for each format of ``delivery``; return (path, measurement) pairs.

    Each file is written beside its destination under a temporary name,
    decoded and measured, and renamed into place only if it meets the
    delivery's loudness tolerance and ceiling; otherwise :class:`RenderFailed`
    names ``target`` and what was measured, and no file of this call is left.
    """
    from .audio import as_channels, resample, valid_audio
    from .master import MasterSettings
    from .master import master as normalise

    y = valid_audio(y)
    if delivery.channels is not None:
        y = as_channels(y, delivery.channels)
    if delivery.sample_rate is not None and delivery.sample_rate != sr:
        y, sr = resample(y, sr, delivery.sample_rate), delivery.sample_rate
    written: list[tuple[Path, Path, Any]] = []
    levelled: dict[tuple[int, float], np.ndarray] = {}  # (rate, ceiling) -> audio: wav and flac share one

    def at(sr: int, ceiling: float) -> np.ndarray:
        if (sr, ceiling) not in levelled:
            source = resample(y, programme_sr, sr)
            levelled[sr, ceiling] = normalise(source, sr, MasterSettings(delivery.target_lufs, ceiling))[0]
        return levelled[sr, ceiling]

    programme_sr = sr
    try:
        for fmt in delivery.formats:
            sr = _rate_for(fmt, programme_sr)
            path = stem.with_name(f"{stem.name}.{fmt}")
            margin = LOSSY_HEADROOM_DB if fmt in LOSSY else 0.0
            for attempt in range(4):  # encoders overshoot: aim lower by the excess, encode again
                data = at(sr, delivery.ceiling_dbtp - margin)
                tmp = _encode(data, sr, path, fmt, delivery)
                found = _measure_file(tmp)
                excess = found.true_peak - delivery.ceiling_dbtp
                if excess <= 0 or attempt == 3:
                    break
                tmp.unlink()
                margin += excess + 0.2
            written.append((tmp, path, found))
            _check(found, delivery, target, path)
        for tmp, path, _ in written:
            os.replace(tmp, path)
    finally:
        for tmp, _, _ in written:
            tmp.unlink(missing_ok=True)
    return [(path, found) for _, path, found in written]


def _check(found: Any, delivery: Delivery, target: str, path: Path) -> None:
    off = abs(found.integrated - delivery.target_lufs)
    if off > delivery.tolerance_lu or found.true_peak > delivery.ceiling_dbtp:
        raise RenderFailed(
            f"{target}: {path.name} is out of spec for '{delivery.preset}' "
            f"({found.integrated:.1f} LUFS, {found.true_peak:.1f} dBTP; wanted {delivery.target_lufs:g} "
            f"±{delivery.tolerance_lu:g} LU, at most {delivery.ceiling_dbtp:g} dBTP); nothing was published"
        )


def _encode(y: np.ndarray, sr: int, path: Path, fmt: str, delivery: Delivery) -> Path:
    """Encode to a temporary file beside ``path``; return the temporary path."""
    from .audio import write_audio_atomic

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp.{fmt}", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    if fmt == "mp3":
        tmp.write_bytes(_mp3(y, sr, delivery))
    elif fmt in ("ogg", "opus"):
        write_audio_atomic(tmp, y, sr, format="OGG", subtype="VORBIS" if fmt == "ogg" else "OPUS")
    else:
        subtype = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT" if fmt == "wav" else "PCM_24"}[delivery.bit_depth]
        write_audio_atomic(tmp, y, sr, format=fmt.upper(), subtype=subtype)
    return tmp


def _rate_for(fmt: str, sr: int) -> int:
    """The rate a format is written at: MP3 and Opus take only some rates."""
    if fmt == "mp3" and sr not in MP3_RATES:
        return 44100
    if fmt == "opus" and sr not in OPUS_RATES:
        return 48000
    return sr


def _mp3(y: np.ndarray, sr: int, delivery: Delivery) -> bytes:
    import lameenc
    import numpy as np

    encoder = lameenc.Encoder()
    encoder.set_in_sample_rate(sr)
    encoder.set_channels(y.shape[1])
    encoder.set_quality(2)
    if delivery.vbr:
        encoder.set_vbr(4)
        encoder.set_vbr_mean_bitrate_kbps(delivery.bitrate)
    else:
        encoder.set_bit_rate(delivery.bitrate)
    pcm = (np.clip(y, -1.0, 32767 / 32768) * 32768).astype("<i2")
    return bytes(encoder.encode(pcm.tobytes()) + encoder.flush())


def _measure_file(path: Path) -> Any:
    from .audio import read_audio
    from .loudness import measure

    return measure(*read_audio(path))
