"""The mixer's vocabulary: what goes into a mix and what comes out of it.

Voice :class:`Line` objects with their SFX :class:`Cue` objects, a
:class:`Pause`, a :class:`Sting`, grouped in :class:`Section` objects; a
music :class:`Bed`; the :class:`MixSettings`; and the three :class:`Stems`
a mix makes. :class:`Placed` is one clip laid out on a bus. See
:mod:`mixdown.dsp.mixer` for how they are laid out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..settings import BED_GAIN_DB, DUCK_SETTINGS, MIX_SETTINGS, MUSIC_CHOICES

__all__ = [
    "Audio",
    "Bed",
    "Cue",
    "Item",
    "Lazy",
    "Line",
    "MixSettings",
    "Pause",
    "Placed",
    "Premixed",
    "Section",
    "Stems",
    "Sting",
]

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


@dataclass(frozen=True, eq=False)
class Lazy:
    """Audio read only when the mix reaches it: ``frames`` long, ``load()`` returns it.

    Any item's ``audio`` may be a :class:`Lazy`: a long programme then holds
    only the lines that sound in the block being mixed, not all of them.
    """

    frames: int
    load: Callable[[], np.ndarray]
    channels: int = 0  # as ``load()`` will return them, if known (0: not known)


Audio = np.ndarray | Lazy


# Audio-bearing records compare by identity (eq=False): field-wise equality
# of numpy arrays is ambiguous, and identity hashing keeps them usable as keys.
@dataclass(frozen=True, eq=False)
class Cue:
    """A sound effect anchored inside a voice line.

    ``at`` is the anchor as a fraction 0..1 of the line's duration (the
    character offset divided by the text length); ``offset`` seconds are
    added to the anchor time and may be negative.
    """

    audio: Audio
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

    audio: Audio
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

    audio: Audio
    sample_rate: int
    gain_db: float = 0.0


Item = Line | Pause | Sting


@dataclass(frozen=True)
class Section:
    """Items played in order, and which bed segment plays under them.

    ``at`` pins the section's start (seconds from the start of the
    programme): the gap before it stretches to reach it. ``duck`` overrides
    the :class:`MixSettings` ducking (``duck_db``, ``duck_attack``,
    ``duck_release``, ``duck_hold``) while this section plays.
    """

    items: tuple[Item, ...]
    music: str = "auto"
    at: float | None = None
    duck: Mapping[str, float] = field(default_factory=dict)
    heading: str = ""  # where the section is written, for messages: "stanzas/x.j2:12: section 'news'"

    def __post_init__(self) -> None:
        if self.music not in MUSIC_CHOICES:
            raise ValueError(f"Section.music must be one of {MUSIC_CHOICES}, got {self.music!r}")
        if self.at is not None and self.at < 0:
            raise ValueError(f"Section.at must be >= 0 seconds, got {self.at}")
        unknown = set(self.duck) - set(DUCK_SETTINGS)
        if unknown:
            raise ValueError(
                f"Section.duck: unknown setting {sorted(unknown)[0]!r}; use {', '.join(DUCK_SETTINGS)}"
            )


@dataclass(frozen=True, eq=False)
class Premixed:
    """A section whose speech and SFX were mixed on their own: its pre-mix.

    ``voice`` and ``sfx`` (None: no SFX) are ``frames`` long at the mix
    rate, their sample 0 ``pre`` samples before the section's start (a cue
    may start before its section); the section lasts ``length`` samples.
    ``items`` makes the section's :class:`Section` (a pre-mix that would
    start before the programme is laid out from its items instead, where
    cues are moved to the programme's start). ``music``, ``at``, ``duck`` and
    ``heading`` are as a :class:`Section`'s.
    """

    voice: Audio
    sfx: Audio | None
    pre: int
    length: int
    items: Callable[[], Section]
    music: str = "auto"
    at: float | None = None
    duck: Mapping[str, float] = field(default_factory=dict)
    heading: str = ""

    @property
    def frames(self) -> int:
        """The pre-mix's length in samples."""
        return self.voice.frames if isinstance(self.voice, Lazy) else len(self.voice)


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
    gain_db: float = BED_GAIN_DB
    seamless: bool = False


@dataclass(frozen=True)
class MixSettings:
    """Layout, ducking and crossfade settings; all times in seconds."""

    sample_rate: int = 48000
    channels: int = 2
    line_gap: float = MIX_SETTINGS["line_gap"]
    section_gap: float = MIX_SETTINGS["section_gap"]
    lead_in: float = MIX_SETTINGS["lead_in"]
    tail: float = MIX_SETTINGS["tail"]
    duck_db: float = MIX_SETTINGS["duck_db"]
    duck_attack: float = MIX_SETTINGS["duck_attack"]
    duck_release: float = MIX_SETTINGS["duck_release"]
    duck_hold: float = MIX_SETTINGS["duck_hold"]
    crossfade: float = MIX_SETTINGS["crossfade"]
    length: float = MIX_SETTINGS[
        "length"
    ]  # > 0: the programme lasts exactly this long; the bed's outro lands on its end
    line_lufs: float | None = None  # bring every voice line to this loudness before its gain
    speech: Any = None  # a mixdown.dsp.speech.SpeechSettings applied to every voice line, or None

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
        """Return ``voice + sfx + music`` as float32 (unclipped); a mono voice bus goes to every channel."""
        if self.voice.shape[1] == 1 < self.sfx.shape[1]:  # a channel at a time (see gain_frames)
            out = np.empty_like(self.sfx)
            for c in range(out.shape[1]):
                np.add(self.voice[:, 0], self.sfx[:, c], out=out[:, c])
        else:
            out = self.voice + self.sfx
        out += self.music
        return out


@dataclass(frozen=True, eq=False)
class Placed:
    """An item on a bus: where it starts, how long it is, and how to make its samples."""

    start: int
    length: int
    make: Callable[[], np.ndarray]
    mono: bool = False  # ``make()`` is known to return one channel

    @property
    def end(self) -> int:
        return self.start + self.length
