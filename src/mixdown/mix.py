"""Mix stage: lay voice lines, SFX and a music bed out on one timeline.

:func:`mix` turns a sequence of :class:`Section` objects (and an optional
:class:`Bed`) into three equal-length :class:`Stems`: ``voice``, ``sfx`` and
``music``, each float32 ``[shape=(n, channels)]`` at ``settings.sample_rate``.
No bus is clipped or normalised here; that is the master stage's job.

Timeline
--------
Every input is resampled to ``settings.sample_rate``, mapped to
``settings.channels`` and scaled by its ``gain_db`` before it is placed.
Times are rounded to whole samples once per step, so positions are exact:

- the first item starts at ``lead_in`` when there is a bed, else at 0;
- items of a section follow each other with ``line_gap`` of silence between
  them; a :class:`Sting` occupies its own length like a line;
- a :class:`Pause` adds its seconds where it stands and adds no gap of its
  own: ``line, Pause(1.0), line`` leaves ``line_gap + 1.0`` s of silence, a
  pause at the start of a section delays its first item by exactly its
  seconds, one at the end lengthens the section;
- non-empty sections are separated by ``section_gap``; a section without
  items takes no time and adds no gap;
- the program ends ``tail`` after the last item (0.3 s without a bed), or
  later if a cue runs past that point.

Cues are placed on the sfx bus at ``line_start + at * line_length + offset``
(never before the program start) and may extend past their line.

Music
-----
Each section owns the music from its start to the next section's start; the
first also owns the lead-in, the last the tail. A section's ``music`` picks
what plays there (``"auto"``: intro for the first section, outro for the last,
both for a single section, main otherwise):

- ``"intro"``: the intro clip from the span start, then the main loop;
- ``"main"``: the main segment looped with equal-power crossfades; the loop
  runs on across consecutive sections without restarting;
- ``"outro"``: the main loop until the outro, which ends exactly at the span
  end (its head is cut, with a fade in, if the span is shorter);
- ``"none"``: silence; the music fades out before and back in after it.

The bed is then ducked under the voice bus (see :func:`mix`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .audio import as_channels, db_to_gain, resample, valid_audio
from .errors import AudioError

__all__ = [
    "Bed",
    "Cue",
    "Item",
    "Line",
    "MixSettings",
    "Pause",
    "Section",
    "Stems",
    "Sting",
    "mix",
]

_NO_BED_TAIL = 0.3  # s of silence after the last item when there is no bed
_DUCK_FRAME = 0.01  # s, control period of the ducker (100 Hz)
_SPEECH_THRESHOLD_DB = -35.0  # a voice frame is speech within this of the loudest frame
_MUSIC_CHOICES = ("auto", "intro", "main", "outro", "none")
_TIMES = (
    "line_gap",
    "section_gap",
    "lead_in",
    "tail",
    "duck_attack",
    "duck_release",
    "duck_hold",
    "crossfade",
    "length",
)


# Audio-bearing records compare by identity (eq=False): field-wise equality
# of numpy arrays is ambiguous, and identity hashing keeps them usable as keys.
@dataclass(frozen=True, eq=False)
class Cue:
    """A sound effect anchored inside a voice line.

    ``at`` is the anchor as a fraction 0..1 of the line's duration (the
    character offset divided by the text length); ``offset`` seconds are
    added to the anchor time and may be negative.
    """

    audio: np.ndarray
    sample_rate: int
    at: float
    gain_db: float = 0.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.at <= 1.0:
            raise ValueError(f"Cue.at must be a fraction in [0, 1] of the line, got {self.at}")


@dataclass(frozen=True, eq=False)
class Line:
    """A voice line, with the cues anchored in it."""

    audio: np.ndarray
    sample_rate: int
    cues: tuple[Cue, ...] = ()
    gain_db: float = 0.0


@dataclass(frozen=True)
class Pause:
    """Silence of ``seconds`` inside a section (adds no extra gap)."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"Pause.seconds must be >= 0, got {self.seconds}")


@dataclass(frozen=True, eq=False)
class Sting:
    """A standalone sound effect occupying its own time in the sequence."""

    audio: np.ndarray
    sample_rate: int
    gain_db: float = 0.0


Item = Line | Pause | Sting


@dataclass(frozen=True)
class Section:
    """Items played in order, and which bed segment plays under them."""

    items: tuple[Item, ...]
    music: str = "auto"

    def __post_init__(self) -> None:
        if self.music not in _MUSIC_CHOICES:
            raise ValueError(f"Section.music must be one of {_MUSIC_CHOICES}, got {self.music!r}")


@dataclass(frozen=True, eq=False)
class Bed:
    """A music bed's three rendered segments, at any rate and channel count.

    ``intro`` or ``outro`` may be empty (``(0, channels)``): the main loop
    plays in their place. ``main`` must hold at least two samples.
    ``seamless`` says ``main`` already loops exactly when tiled (a bar-grid
    loop from the ``synth`` renderer): repeats are then butted, not
    crossfaded, so the loop keeps its length and its beat.
    """

    intro: np.ndarray
    main: np.ndarray
    outro: np.ndarray
    sample_rate: int
    gain_db: float = -20.0
    seamless: bool = False


@dataclass(frozen=True)
class MixSettings:
    """Layout, ducking and crossfade settings; all times in seconds."""

    sample_rate: int = 48000
    channels: int = 2
    line_gap: float = 0.35
    section_gap: float = 0.9
    lead_in: float = 1.5
    tail: float = 2.0
    duck_db: float = -12.0
    duck_attack: float = 0.08
    duck_release: float = 0.6
    duck_hold: float = 0.3
    crossfade: float = 0.5
    length: float = 0.0  # > 0: the programme lasts exactly this long; the bed's outro lands on its end

    def __post_init__(self) -> None:
        if self.sample_rate <= 0 or self.channels < 1:
            raise ValueError("MixSettings: sample_rate and channels must be positive")
        negative = [name for name in _TIMES if getattr(self, name) < 0]
        if negative:
            raise ValueError(f"MixSettings: {', '.join(negative)} must be >= 0 seconds")
        if self.duck_db > 0:
            raise ValueError(f"MixSettings: duck_db must be <= 0 dB, got {self.duck_db}")


@dataclass
class Stems:
    """The mix as three buses of equal length, float32 ``[shape=(n, channels)]``."""

    voice: np.ndarray
    sfx: np.ndarray
    music: np.ndarray
    sample_rate: int

    def mixdown(self) -> np.ndarray:
        """Return ``voice + sfx + music`` as float32 (unclipped)."""
        out: np.ndarray = self.voice + self.sfx
        out += self.music
        return out


def mix(
    sections: Sequence[Section],
    *,
    bed: Bed | None = None,
    settings: MixSettings = MixSettings(),  # noqa: B008 - frozen, never mutated
) -> Stems:
    """Lay ``sections`` out on a timeline and mix them over an optional ``bed``.

    Parameters
    ----------
    sections : sequence of Section
        The program in order; at least one (a section may be empty).
    bed : Bed, optional
        Music under the whole program, segmented per section (module docs).
    settings : MixSettings
        Output rate and channels, gaps, ducking and crossfades.

    Returns
    -------
    Stems
        ``voice``, ``sfx`` and ``music`` of identical length at
        ``settings.sample_rate``.

    Notes
    -----
    The music bus is ducked by ``duck_db`` while the voice bus carries speech:
    10 ms frames whose RMS is within 35 dB of the loudest voice frame count as
    speech; activity is held ``duck_hold`` after speech and anticipated by
    ``duck_attack`` (so the bed is fully down when a line starts); the gain
    then moves linearly in dB, reaching full depth in ``duck_attack`` and
    recovering in ``duck_release``, and is interpolated to the sample rate.

    Raises
    ------
    ValueError
        If ``sections`` is empty.
    AudioError
        If an input is not float audio of shape ``(n, channels)``, or its
        channels cannot be mapped to ``settings.channels``.
    """
    if not sections:
        raise ValueError("mix: no sections to mix; give at least one Section")
    sr = settings.sample_rate
    lead_in = _samples(settings.lead_in, sr) if bed is not None else 0
    timeline = _layout(sections, settings, start=lead_in)
    tail = settings.tail if bed is not None else _NO_BED_TAIL
    n = max(timeline.end + _samples(tail, sr), timeline.reach())
    if settings.length > 0:
        n = _fixed_length(settings.length, sr, max(timeline.end, timeline.reach()))
    voice = _bus(timeline.voice, n, settings.channels)
    sfx = _bus(timeline.sfx, n, settings.channels)
    if bed is None:
        return Stems(voice, sfx, np.zeros_like(voice), sr)
    music = _music_bus(bed, sections, timeline.starts, n, settings)
    duck = _duck_gain(voice, settings)
    if duck is not None:
        music *= duck[:, None]
    return Stems(voice, sfx, music, sr)


# -- layout ---------------------------------------------------------------------


@dataclass
class _Timeline:
    """Placed clips (start sample, audio) per bus, and section boundaries."""

    voice: list[tuple[int, np.ndarray]] = field(default_factory=list)
    sfx: list[tuple[int, np.ndarray]] = field(default_factory=list)
    starts: list[int] = field(default_factory=list)
    end: int = 0  # end of the last item: where the tail starts

    def reach(self) -> int:
        """Return the end of the last-ending clip on any bus (0 if none)."""
        return max((start + len(y) for start, y in self.voice + self.sfx), default=0)


def _fixed_length(seconds: float, sr: int, needed: int) -> int:
    """The programme's length in samples when ``length`` is set; it must hold everything."""
    n = _samples(seconds, sr)
    if needed > n:
        raise AudioError(
            f"mix: the programme needs {needed / sr:.2f} s but length is {seconds:g} s; "
            "raise [mix] length or shorten the script"
        )
    return n


def _samples(seconds: float, sr: int) -> int:
    """Convert seconds to a whole number of samples."""
    return int(round(seconds * sr))


def _prepare(y: np.ndarray, sr: int, gain_db: float, settings: MixSettings, what: str) -> np.ndarray:
    """Validate ``y``, bring it to the mix rate and channels, apply ``gain_db`` (a new array)."""
    y = valid_audio(y, what=what)
    if sr <= 0:
        raise AudioError(f"{what}: sample rate must be positive, got {sr}")
    y = as_channels(resample(y, sr, settings.sample_rate), settings.channels)
    return y * np.float32(db_to_gain(gain_db))


def _layout(sections: Sequence[Section], settings: MixSettings, *, start: int) -> _Timeline:
    """Place every item of every section, starting at sample ``start``."""
    timeline = _Timeline(end=start)
    gap = _samples(settings.section_gap, settings.sample_rate)
    cursor, started = start, False
    for index, section in enumerate(sections):
        if section.items and started:
            cursor += gap
        started = started or bool(section.items)
        timeline.starts.append(cursor)
        cursor = _layout_section(timeline, section, cursor, settings, f"section {index}")
    timeline.end = cursor
    return timeline


def _layout_section(
    timeline: _Timeline, section: Section, cursor: int, settings: MixSettings, where: str
) -> int:
    """Place one section's items from ``cursor``; return where the section ends."""
    sr = settings.sample_rate
    gap, after_item = _samples(settings.line_gap, sr), False
    for index, item in enumerate(section.items):
        what = f"{where}, item {index}"
        if isinstance(item, Pause):
            cursor += _samples(item.seconds, sr)
            continue
        if not isinstance(item, Line | Sting):
            raise TypeError(f"{what}: expected Line, Pause or Sting, got {type(item).__name__}")
        cursor += gap if after_item else 0
        y = _prepare(item.audio, item.sample_rate, item.gain_db, settings, what)
        if isinstance(item, Line):
            timeline.voice.append((cursor, y))
            _place_cues(timeline, item.cues, cursor, len(y), settings, what)
        else:
            timeline.sfx.append((cursor, y))
        cursor, after_item = cursor + len(y), True
    return cursor


def _place_cues(
    timeline: _Timeline,
    cues: Sequence[Cue],
    start: int,
    length: int,
    settings: MixSettings,
    what: str,
) -> None:
    """Place a line's cues on the sfx bus relative to the line at ``start``."""
    for index, cue in enumerate(cues):
        y = _prepare(cue.audio, cue.sample_rate, cue.gain_db, settings, f"{what}, cue {index}")
        at = start + round(cue.at * length) + _samples(cue.offset, settings.sample_rate)
        timeline.sfx.append((max(at, 0), y))


def _bus(clips: Sequence[tuple[int, np.ndarray]], n: int, channels: int) -> np.ndarray:
    """Sum placed clips into a silent bus of ``n`` samples."""
    bus = np.zeros((n, channels), dtype=np.float32)
    for start, y in clips:
        bus[start : start + len(y)] += y
    return bus


# -- music bed ------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    """A section's stretch of music, in samples, and whether it opens/closes the bed."""

    start: int
    end: int
    intro: bool
    outro: bool


@dataclass(frozen=True)
class _Clip:
    """One bed segment placed at ``start``, with ``skip`` samples cut from its head."""

    start: int
    kind: str  # "intro" | "main" | "outro"
    skip: int = 0


@dataclass(frozen=True, eq=False)
class _Segments:
    """The bed at the mix rate and channels, gain applied; ``xf`` is the crossfade
    between segments, ``loop_xf`` the one between repeats of ``main``."""

    intro: np.ndarray
    main: np.ndarray
    outro: np.ndarray
    xf: int
    loop_xf: int


def _music_bus(
    bed: Bed, sections: Sequence[Section], starts: Sequence[int], n: int, settings: MixSettings
) -> np.ndarray:
    """Render the (unducked) music bus of ``n`` samples."""
    segments = _prepare_bed(bed, settings)
    bus = np.zeros((n, settings.channels), dtype=np.float32)
    for group in _groups(_spans(sections, starts, n)):
        _render_group(bus, _clips(group, segments), group[-1].end, segments)
    return bus


def _prepare_bed(bed: Bed, settings: MixSettings) -> _Segments:
    """Bring the bed's segments to the mix format and pick a crossfade that fits them."""
    intro, main, outro = (
        _prepare(getattr(bed, name), bed.sample_rate, bed.gain_db, settings, f"bed.{name}")
        for name in ("intro", "main", "outro")
    )
    if len(main) < 2:
        raise AudioError(f"bed.main: needs at least 2 samples to loop, got {len(main)}")
    lengths = [len(main) // 2] + [len(y) for y in (intro, outro) if len(y)]
    xf = min(_samples(settings.crossfade, settings.sample_rate), *lengths)
    return _Segments(intro, main, outro, xf, 0 if bed.seamless else xf)


def _segments_of(music: str, index: int, count: int) -> tuple[bool, bool] | None:
    """Return (intro, outro) for a section's music choice, or None for silence."""
    if music == "none":
        return None
    if music == "auto":
        return index == 0, index == count - 1
    return music == "intro", music == "outro"


def _spans(sections: Sequence[Section], starts: Sequence[int], n: int) -> list[_Span | None]:
    """Cut ``[0, n)`` into one music span per section (None where music is off)."""
    bounds = [0, *starts[1:], n]
    spans: list[_Span | None] = []
    for index, section in enumerate(sections):
        flags = _segments_of(section.music, index, len(sections))
        span = None if flags is None else _Span(bounds[index], bounds[index + 1], *flags)
        spans.append(span)
    return spans


def _groups(spans: Sequence[_Span | None]) -> list[list[_Span]]:
    """Split spans into runs of consecutive sections that have music."""
    groups: list[list[_Span]] = [[]]
    for span in spans:
        if span is None:
            groups.append([])
        else:
            groups[-1].append(span)
    return [group for group in groups if group]


def _clips(group: Sequence[_Span], segments: _Segments) -> list[_Clip]:
    """Place the bed's segments over one run of musical spans, in time order."""
    clips: list[_Clip] = []
    n_intro, n_outro = len(segments.intro), len(segments.outro)
    for span in group:
        if span.intro and n_intro:
            clips.append(_Clip(span.start, "intro"))
            clips.append(_Clip(span.start + n_intro - segments.xf, "main"))
        elif not clips or clips[-1].kind == "outro":
            clips.append(_Clip(span.start, "main"))
        if span.outro and n_outro:
            _add_outro(clips, span, n_outro)
    end = group[-1].end
    return [clip for clip in clips if clip.start < end]


def _add_outro(clips: list[_Clip], span: _Span, length: int) -> None:
    """End ``span`` with the outro, cutting its head if the span is too short."""
    start = max(span.start, span.end - length)
    skip = start - (span.end - length)
    if skip >= length:
        return
    while clips and clips[-1].start >= start:
        clips.pop()
    clips.append(_Clip(start, "outro", skip))


def _render_group(bus: np.ndarray, clips: Sequence[_Clip], end: int, segments: _Segments) -> None:
    """Add ``clips`` to ``bus``, each crossfading into the next; the run stops at ``end``."""
    xf = segments.xf
    for index, clip in enumerate(clips):
        last = index == len(clips) - 1
        stop = end if last else min(clips[index + 1].start + xf, end)
        y = _clip_audio(clip, stop - clip.start, segments)
        clean_start = index == 0 and clip.kind != "main" and clip.skip == 0
        fade_in = 0 if clean_start else xf
        fade_out = 0 if last and clip.kind == "outro" else xf
        _apply_fades(y, fade_in, fade_out)
        bus[clip.start : stop] += y


def _clip_audio(clip: _Clip, n: int, segments: _Segments) -> np.ndarray:
    """Return ``n`` samples of a clip (a segment zero-padded, or the main loop)."""
    if clip.kind == "main":
        return _loop(segments.main, n, segments.loop_xf)
    source = segments.intro if clip.kind == "intro" else segments.outro
    out = np.zeros((n, source.shape[1]), dtype=np.float32)
    part = source[clip.skip : clip.skip + n]
    out[: len(part)] = part
    return out


def _loop(main: np.ndarray, n: int, xf: int) -> np.ndarray:
    """Return ``n`` samples of ``main`` repeated, each repeat crossfading over ``xf``."""
    period = len(main) - xf
    fade_in, fade_out = _fades(xf)
    unit = main[:period].copy()
    unit[:xf] = main[:xf] * fade_in + main[period:] * fade_out
    out = np.tile(unit, (-(-n // period), 1))[:n]
    head = min(xf, n)
    out[:head] = main[:head]  # the first pass starts clean, not mid-crossfade
    return out


def _fades(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Equal-power fade-in and fade-out curves of ``[shape=(n, 1)]``."""
    x = (np.arange(n) + 0.5) * (np.pi / 2 / max(n, 1))
    return np.sin(x).astype(np.float32)[:, None], np.cos(x).astype(np.float32)[:, None]


def _apply_fades(y: np.ndarray, fade_in: int, fade_out: int) -> None:
    """Fade ``y`` in and out in place (a clip shorter than a fade gets part of it)."""
    if fade_in:
        k = min(fade_in, len(y))
        y[:k] *= _fades(fade_in)[0][:k]
    if fade_out:
        k = min(fade_out, len(y))
        y[len(y) - k :] *= _fades(fade_out)[1][fade_out - k :]


# -- ducking --------------------------------------------------------------------


def _duck_gain(voice: np.ndarray, settings: MixSettings) -> np.ndarray | None:
    """Return the music gain ``[shape=(n,)]`` under ``voice``, or None if there is none."""
    hop = max(1, round(settings.sample_rate * _DUCK_FRAME))
    active = _speech_frames(voice, hop)
    if settings.duck_db == 0 or not active.any():
        return None
    rate = settings.sample_rate / hop  # control frames per second
    back, ahead = round(settings.duck_hold * rate), round(settings.duck_attack * rate)
    held = _window_max(active, back=back, ahead=ahead)
    target = np.where(held, settings.duck_db, 0.0)
    depth = -settings.duck_db
    down = depth / max(settings.duck_attack * rate, 1.0)
    up = depth / max(settings.duck_release * rate, 1.0)
    return _to_samples(_slew(target, down=down, up=up), hop, len(voice))


def _speech_frames(voice: np.ndarray, hop: int) -> np.ndarray:
    """Flag ``hop``-sample frames whose power is within the threshold of the loudest."""
    n, channels = voice.shape
    frames = -(-n // hop)
    power = np.zeros(frames * hop, dtype=np.float32)
    power[:n] = np.einsum("ij,ij->i", voice, voice) / channels
    mean = power.reshape(frames, hop).mean(axis=1)
    loudest = mean.max(initial=0.0)
    if loudest <= 0:
        return np.zeros(frames, dtype=bool)
    active: np.ndarray = mean > loudest * 10.0 ** (_SPEECH_THRESHOLD_DB / 10.0)
    return active


def _window_max(x: np.ndarray, *, back: int, ahead: int) -> np.ndarray:
    """Return ``out[i] = max(x[i - back : i + ahead + 1])`` (zeros beyond the edges)."""
    from scipy.ndimage import maximum_filter1d

    size = back + ahead + 1
    padded = np.pad(x.astype(np.uint8), (back, ahead))
    held: np.ndarray = maximum_filter1d(padded, size, origin=-(size // 2))[: len(x)]
    return held.astype(bool)


def _slew(target: np.ndarray, *, down: float, up: float) -> np.ndarray:
    """Follow ``target`` (dB per frame) moving at most ``down``/``up`` dB per frame.

    A loop over ~100 Hz control frames, not samples.
    """
    out, gain = [], 0.0
    for value in target.tolist():
        gain = max(value, gain - down) if value < gain else min(value, gain + up)
        out.append(gain)
    return np.asarray(out)


def _to_samples(db: np.ndarray, hop: int, n: int) -> np.ndarray:
    """Turn per-frame dB into linear gain, interpolated linearly over ``n`` samples."""
    gain = (10.0 ** (db / 20.0)).astype(np.float32)
    step = np.append(gain[1:], gain[-1]) - gain
    ramp = np.arange(hop, dtype=np.float32) / np.float32(hop)
    return (gain[:, None] + step[:, None] * ramp).reshape(-1)[:n]
