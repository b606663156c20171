"""Every setting a show can make: names, defaults, ranges and presets.

Data that the show's validation (:mod:`mixdown.show`) and the stages that
use a setting (the planner, the mixer, the master, the encoders, the HTTP
layer) all read, so that each fact has one home: a default changed here is
the default everywhere, and a range checked here is the range on every
table and section heading that sets the name. Nothing here imports numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .errors import ConfigError, ProjectError

__all__ = [
    "BED_GAIN_DB",
    "METADATA_FIELDS",
    "PUBLISH_KEYS",
    "PublishSettings",
    "SEGMENTS",
    "DELIVERY_KEYS",
    "DUCK_SETTINGS",
    "FORMATS",
    "LOSSY",
    "LOSSY_HEADROOM_DB",
    "MASTER_SETTINGS",
    "MIX_KEYS",
    "MIX_SETTINGS",
    "MUSIC_CHOICES",
    "NAME",
    "PRESETS",
    "PRICES",
    "PRICES_TAKEN",
    "PRICE_KEYS",
    "PRICE_UNITS",
    "PROGRAMME_RATES",
    "PROVIDER_KEYS",
    "RANGES",
    "REMOTE_ENV",
    "SPEECH_SWITCHES",
    "STATE_DIR",
    "STEMS",
    "Delivery",
    "Price",
    "Range",
    "checked_formats",
    "delivery_from",
    "kind_name",
    "mp3_bitrate",
    "mp3_bitrates",
    "preset_named",
    "prices_from",
    "rate_for",
    "typed_as",
]

#: What a name in project.toml, a section or a variant id may look like; it
#: becomes part of target names and of file names under build/.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

#: The segments of a music bed, each rendered once: under the first section, the middle, the last.
SEGMENTS = ("intro", "main", "outro")
#: A section's ``music=``: a bed part, ``auto`` (by the section's place) or ``none``.
MUSIC_CHOICES = ("auto", *SEGMENTS, "none")
#: Per-section overrides of the ``[mix]`` ducking settings, in this order in a timeline.
DUCK_SETTINGS = ("duck_db", "duck_attack", "duck_release", "duck_hold")
#: what a build writes in build/ about itself (mixdown.publish): the manifest and the report
MANIFEST_FILE = "manifest.json"
REPORT_FILE = "report.html"
#: the environment variable that names the Dask scheduler, over ``[executor] dask``
DASK_ENV = "MIXDOWN_DASK"
#: the environment variable that names the remote cache, over ``[cache] remote``
REMOTE_ENV = "MIXDOWN_REMOTE"
#: a show's own doit tasks, beside its project.toml (mixdown.showtasks)
SHOW_TASKS_FILE = "dodo.py"
#: the environment variable that selects a shard of the renditions (``I/N``), as ``--shard`` does
SHARD_ENV = "MIXDOWN_SHARD"
#: actions in flight at once on a Dask cluster when neither ``[executor] jobs`` nor ``doit -n`` says
DASK_JOBS = 16
BED_GAIN_DB = -20.0  # a music bed's level in the mix unless its table sets gain_db
#: machine-local state in a show: doit's database, the plan memo, what build/ was made from
STATE_DIR = ".mixdown"
#: ``[publish]``: the files published beside each deliverable, each on by default
PUBLISH_KEYS = ("captions", "chapters", "timeline", "manifest", "report")


@dataclass(frozen=True)
class PublishSettings:
    """``[publish]``: captions (``.vtt``/``.srt``), chapters (``.chapters.json``/``.txt``) and the
    OpenTimelineIO timeline (``.otio``) written beside the deliverables, and ``build/manifest.json``
    and ``build/report.html`` about them (:mod:`mixdown.actions.publishing`). Never part of a key."""

    captions: bool = True
    chapters: bool = True
    timeline: bool = True
    manifest: bool = True
    report: bool = True


STEMS = ("voice", "sfx", "music")  # the buses a mix keeps, written with [master] stems = true
#: the stems summed again from the section pre-mixes (the mix's own buses); the music stem is the mix less them
SUMMED_STEMS = ("voice", "sfx")
#: The keys of a ``[providers.NAME]`` table: how a cloud renderer is reached (never in a key).
PROVIDER_KEYS = (
    "base_url",
    "concurrency",
    "timeout",
    "connect_timeout",
    "max_retries",
    "backoff",
    "max_backoff",
)

#: ``[providers.NAME] price = {per = UNIT, usd = N}`` (or a list of them, one per unit or kind):
#: each unit is a number of what a renderer's bill counts (see :mod:`mixdown.plan.spend`).
PRICE_UNITS: dict[str, tuple[str, float]] = {
    "char": ("characters", 1.0),
    "1k_chars": ("characters", 1e3),
    "1m_chars": ("characters", 1e6),
    "second": ("seconds", 1.0),
    "minute": ("seconds", 60.0),
    "hour": ("seconds", 3600.0),
    "request": ("requests", 1.0),  # per render, whatever its bill counts
}
PRICE_KEYS = ("per", "usd", "kind")  # kind: only that kind's renders (voice, sfx, music)


@dataclass(frozen=True)
class Price:
    """What one unit of a provider's bill costs: ``usd`` per ``per`` (a :data:`PRICE_UNITS` name),
    for every kind of render or only ``kind``'s."""

    per: str
    usd: float
    kind: str | None = None


#: When the default prices below were taken from the providers' published list prices
#: (pay-as-you-go API rates, before tax; a plan's included credits are not counted).
PRICES_TAKEN = "2026-06"
#: Default prices by provider; a show's ``[providers.NAME] price`` replaces a provider's list
#: (give every unit it bills). AudioStack (contract pricing) and Suno (resellers only) have none: a show that
#: budgets them sets its own.
PRICES: dict[str, tuple[Price, ...]] = {
    # multilingual v2/v3 speech (flash/turbo: 0.05), a sound effect, music by the minute
    "elevenlabs": (Price("1k_chars", 0.10), Price("request", 0.12, "sfx"), Price("minute", 0.30, "music")),
    "openai": (Price("1k_chars", 0.015),),  # tts-1 ($15 per million characters)
    "stability": (Price("request", 0.20),),  # Stable Audio 2.5: 20 credits a generation, any length
}

#: Settings that shape the mix, not the rendered asset: kept out of keys.
MIX_KEYS = {"voice": {"gain_db"}, "sfx": {"gain_db", "offset"}, "music": {"gain_db"}}
MIX_SETTINGS = {
    "line_gap": 0.35,
    "section_gap": 0.9,
    "lead_in": 1.5,
    "tail": 2.0,
    "duck_db": -12.0,
    "duck_attack": 0.08,
    "duck_release": 0.6,
    "duck_hold": 0.3,
    "crossfade": 0.5,
    "line_lufs": -20.0,  # every voice line is brought to this loudness before mixing
    "length": 0.0,  # seconds; > 0 fixes every programme's length (the bed's outro lands on its end)
}
#: Processing of every voice line before it is levelled (see mixdown.dsp.speech).
SPEECH_SWITCHES = {"speech_compress": True, "speech_eq": False, "speech_rotate": False}
MASTER_SETTINGS = {"target_lufs": -16.0, "ceiling_dbtp": -1.0}


@dataclass(frozen=True)
class Range:
    """What a number a show sets may be: finite, from ``low`` to ``high`` (or one of ``choices``)."""

    low: float
    high: float
    unit: str = ""
    choices: tuple[int, ...] = ()  # when given, only these values
    above: bool = False  # ``low`` itself is not allowed
    integer: bool = False

    def check(self, name: str, value: Any, where: str, error: type[ProjectError] = ConfigError) -> float:
        """``value`` as a float, or a one-line ``error`` at ``where`` saying what is allowed."""
        kind = int if self.integer else (int, float)
        if not typed_as(value, kind):
            raise error(f"{where}: '{name}' must be {kind_name(kind)}; {self}")
        number = float(value) if abs(value) < 1e300 else math.inf  # float() of a huge int overflows
        fits = number in self.choices if self.choices else self.low <= number <= self.high
        if not fits or (self.above and number == self.low):  # nan and infinities never fit
            raise error(f"{where}: '{name}' = {value} is not allowed; {self}")
        return number

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        if self.choices:
            return f"use one of {', '.join(str(c) for c in self.choices)}{unit}"
        low = "more than" if self.above else "from"
        return f"use a number {low} {self.low:g} to {self.high:g}{unit}"


#: The rates a programme is mixed and mastered at (``[project] sample_rate``); a delivery may
#: also go down to the rates of narrowband MP3.
PROGRAMME_RATES = (22050, 24000, 32000, 44100, 48000, 88200, 96000)
_HOURS = 12 * 3600.0  # the longest programme, marker or length a show may ask for
#: Every number a show can set, by its name (the same name means the same thing wherever it is
#: set: ``duck_db`` in [mix] and on a section heading, ``target_lufs`` in [master] and
#: [deliveries.NAME]). Wide enough for any real programme, narrow enough to catch a typo.
RANGES: dict[str, Range] = {
    "gain_db": Range(-60.0, 24.0, "dB"),  # a mix level of a voice, effect or bed
    "offset": Range(-10.0, 10.0, "seconds"),  # of an effect from its anchor in the line
    "line_gap": Range(0.0, 60.0, "seconds"),
    "section_gap": Range(0.0, 60.0, "seconds"),
    "lead_in": Range(0.0, 600.0, "seconds"),
    "tail": Range(0.0, 600.0, "seconds"),
    "duck_db": Range(-60.0, 0.0, "dB"),
    "duck_attack": Range(0.0, 10.0, "seconds"),
    "duck_release": Range(0.0, 10.0, "seconds"),
    "duck_hold": Range(0.0, 10.0, "seconds"),
    "crossfade": Range(0.0, 10.0, "seconds"),
    "line_lufs": Range(-40.0, -5.0, "LUFS"),
    "length": Range(0.0, _HOURS, "seconds (0: as long as the script)"),
    "at": Range(0.0, _HOURS, "seconds"),  # a section's start marker
    "pause": Range(0.0, 60.0, "seconds", above=True),
    "target_lufs": Range(-40.0, -5.0, "LUFS"),
    "ceiling_dbtp": Range(-12.0, 0.0, "dBTP"),
    "sample_rate": Range(0, 0, "Hz", choices=(8000, 11025, 12000, 16000, *PROGRAMME_RATES)),
    "channels": Range(1, 2, choices=(1, 2)),
    "bit_depth": Range(16, 32, "bits", choices=(16, 24, 32)),
    # LAME's bitrates (kbps); which of them a sample rate allows is checked with the delivery
    "bitrate": Range(
        8,
        320,
        "kbps",
        choices=(8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 192, 224, 256, 320),
    ),
    # [providers.NAME]: how a cloud renderer is reached
    "concurrency": Range(1, 64, "requests", integer=True),
    "timeout": Range(0.0, 3600.0, "seconds", above=True),
    "connect_timeout": Range(0.0, 600.0, "seconds", above=True),
    "max_retries": Range(0, 20, integer=True),
    "backoff": Range(0.0, 600.0, "seconds"),
    "max_backoff": Range(0.0, 3600.0, "seconds"),
    "usd": Range(0.0, 1e6, "USD"),  # a price per unit
}


def prices_from(given: Any, where: str) -> tuple[Price, ...]:
    """A ``price`` setting (one ``{per, usd, kind}`` table or a list of them) as :class:`Price`
    values, or a one-line :class:`ConfigError` at ``where``."""
    entries = given if isinstance(given, list) else [given]
    if not entries or not all(isinstance(entry, dict) for entry in entries):
        raise ConfigError(
            f'{where}: price must be a table such as {{ per = "1k_chars", usd = 0.30 }}, or a list of them'
        )
    prices = tuple(_price(entry, where) for entry in entries)
    seen = [(PRICE_UNITS[p.per][0], p.kind) for p in prices]
    if len(set(seen)) < len(seen):
        raise ConfigError(f"{where}: two prices for the same unit and kind; give each once")
    return prices


def _price(entry: dict[str, Any], where: str) -> Price:
    unknown = sorted(set(entry) - set(PRICE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' in a price; allowed: {', '.join(PRICE_KEYS)}")
    per, kind = entry.get("per"), entry.get("kind")
    if per not in PRICE_UNITS:
        raise ConfigError(f"{where}: a price needs per = one of {', '.join(PRICE_UNITS)}, not {per!r}")
    if "usd" not in entry:
        raise ConfigError(f'{where}: a price needs usd = the dollars per "{per}"')
    if kind is not None and kind not in ("voice", "sfx", "music"):
        raise ConfigError(f"{where}: a price's kind must be voice, sfx or music, not {kind!r}")
    return Price(per, RANGES["usd"].check("usd", entry["usd"], where), kind)


def typed_as(value: Any, kind: Any) -> bool:
    """Whether ``value`` is of ``kind`` (a type or a tuple of them); a bool is never a number."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        return False
    return isinstance(value, kinds)


def kind_name(kind: Any) -> str:
    """``kind`` in words for a message: "a number", "a string or a table"."""
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "true or false",
        dict: "a table",
        list: "a list",
    }
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


#: ``[metadata]`` (and ``[scripts.NAME.metadata]``): the tags of the published files, each a
#: Jinja template rendered per rendition (see :mod:`mixdown.show.metadata`). Without either
#: table the files carry no tags; with one, title and album have the defaults given here.
METADATA_FIELDS = {
    "title": "the episode's title (default: the rendition's name, e.g. news@anna)",
    "artist": "who made it (ID3 TPE1, Vorbis ARTIST, RIFF IART, bext Originator)",
    "album": "the show (default: [project] name)",
    "episode": "the episode number, N or N/TOTAL (ID3 TRCK, Vorbis TRACKNUMBER)",
    "date": "YYYY-MM-DD, YYYY-MM or YYYY (ID3 TDRC, Vorbis DATE, RIFF ICRD, bext OriginationDate)",
    "comment": "a description (ID3 COMM, Vorbis COMMENT, RIFF ICMT)",
    "cover": "a JPEG or PNG in the show (ID3 APIC, FLAC/Vorbis picture; WAV has none)",
}
FORMATS = ("wav", "flac", "mp3", "ogg", "opus")  # ogg: Vorbis; opus: Opus in Ogg
LOSSY = frozenset({"mp3", "ogg", "opus"})
OPUS_RATES = frozenset({8000, 12000, 16000, 24000, 48000})
MP3_RATES = frozenset({8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000})
LOSSY_HEADROOM_DB = 1.0  # MP3 decodes with inter-sample peaks above its input's: start this far under
DELIVERY_KEYS = (
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


def preset_named(name: Any, where: str) -> Delivery:
    """The delivery preset ``name``, or a one-line error at ``where`` listing the presets."""
    if name not in PRESETS:
        raise ConfigError(f"{where}: unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    return PRESETS[name]


def checked_formats(formats: Any, where: str) -> tuple[str, ...]:
    """``formats`` (a list from a show) without repeats, or a one-line error at ``where``."""
    if not isinstance(formats, list) or not formats or any(f not in FORMATS for f in formats):
        raise ConfigError(f"{where}: formats must be a non-empty list of {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(formats))


def delivery_from(
    table: dict[str, Any], where: str | Callable[[str], str], *, master_rate: int | None = None
) -> Delivery:
    """A :class:`Delivery` from a ``[deliveries.NAME]`` table (a preset plus overrides).

    ``where`` names the table in messages, or is a function naming the line
    of a key. Every number is checked against :data:`RANGES`,
    and an MP3 bitrate against the sample rate it is written at
    (``master_rate``, the programme's, when the delivery keeps it).
    """
    at = where if callable(where) else lambda key: where
    unknown = sorted(set(table) - set(DELIVERY_KEYS))
    if unknown:
        raise ConfigError(
            f"{at(unknown[0])}: unknown key '{unknown[0]}'; allowed: {', '.join(DELIVERY_KEYS)}"
        )
    name = table.get("preset", "podcast")
    preset = preset_named(name, at("preset"))
    overrides = {k: v for k, v in table.items() if k != "preset"}
    if "formats" in overrides:
        overrides["formats"] = checked_formats(overrides["formats"], at("formats"))
    if not isinstance(overrides.get("vbr", False), bool):
        raise ConfigError(f"{at('vbr')}: 'vbr' must be true or false")
    for key, value in overrides.items():
        if key in RANGES:
            number = RANGES[key].check(key, value, at(key))
            overrides[key] = int(number) if RANGES[key].choices else number
    delivery = replace(preset, **overrides)
    rate = delivery.sample_rate or master_rate
    if "mp3" in delivery.formats and rate is not None:
        mp3_rate = rate_for("mp3", rate)
        allowed = mp3_bitrates(mp3_rate)
        if "bitrate" not in table:  # the preset's bitrate, as near as this rate allows
            return replace(delivery, bitrate=mp3_bitrate(delivery.bitrate, mp3_rate))
        if delivery.bitrate not in allowed:
            raise ConfigError(
                f"{at('bitrate')}: MP3 at {mp3_rate} Hz takes "
                f"{', '.join(map(str, allowed))} kbps, not {delivery.bitrate}; change bitrate or sample_rate"
            )
    return delivery


def mp3_bitrates(rate: int) -> tuple[int, ...]:
    """The bitrates (kbps) an MP3 written at ``rate`` Hz can have: MPEG-1 at 32-48 kHz,
    MPEG-2 at 16-24 kHz, MPEG-2.5 below."""
    mpeg1 = (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
    mpeg2 = (8, 16, 24, *mpeg1[:9], 144, 160)
    return mpeg1 if rate >= 32000 else mpeg2 if rate >= 16000 else mpeg2[:8]


def mp3_bitrate(wanted: int, rate: int) -> int:
    """``wanted`` kbps, or the nearest below it that an MP3 at ``rate`` Hz can have (a preset's
    192 kbps is 160 at 22.05 and 24 kHz, where MPEG-2 stops)."""
    allowed = mp3_bitrates(rate)
    return max((b for b in allowed if b <= wanted), default=allowed[0])


def rate_for(fmt: str, sr: int) -> int:
    """The rate a format is written at: MP3 and Opus take only some rates.

    MP3 stops at 48 kHz: an 88.2 or 96 kHz programme's MP3 is made at half its rate.
    """
    if fmt == "mp3" and sr not in MP3_RATES:
        return 48000 if sr % 8000 == 0 else 44100
    if fmt == "opus" and sr not in OPUS_RATES:
        return 48000
    return sr
