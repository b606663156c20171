"""Splicing a mix: an edit mixes again only the parts of the programme it touched.

A mix is made in parts of half a minute (:func:`mixdown.actions.mix.mix_parts`)
from its sections' pre-mixes. Beside it the cache keeps where each section
was placed (:class:`Layout`, side file :data:`LAYOUT`) and the voice bus's
power per ducking frame (:data:`POWERS`). When a rendition is mixed again
after an edit, its last published mix (:mod:`mixdown.actions.published`) is
the parent: :func:`plan` compares the two layouts, and the new mix differs
from the parent only where

* a section's pre-mix differs or sits elsewhere (every section after one
  whose length changed),
* the bed is laid out differently (:meth:`mixdown.dsp.bed.Music.changed`),
* the ducking differs (:meth:`mixdown.dsp.ducking.Ducker.changed`, from the
  parent's powers with the changed stretch measured again: a new loudest
  voice frame moves the threshold, and so the whole programme).

The parts that overlap that stretch (or whose meter's lead-in does) are
mixed again; the others are copied from the parent, with their measurement.
The result is the same mix, bit for bit, as a whole mix of the new
timeline: every sample is made by the same code from the same inputs.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any, NamedTuple

from ..keys import content_key
from ..plan.model import MIX_VERSION, MixPlan
from . import published
from .context import Context

if TYPE_CHECKING:  # numpy is imported by the actions that run, not by every build's planning
    import numpy as np

__all__ = [
    "ANALYSIS",
    "LAYOUT",
    "POWERS",
    "Found",
    "Layout",
    "Placed",
    "Reuse",
    "earlier_section",
    "lead",
    "plan",
    "reuse_premix",
    "stored_alike",
    "store",
]

# kept beside a mix's cache object: its measurement, which saves the master a pass
ANALYSIS = "analysis.npz"
# where its sections were placed, and what it was spliced from (see mixdown.actions.mix.change_of)
LAYOUT = "layout.json"
# the voice bus's power per ducking frame (float64), which the ducking of a splice starts from
POWERS = "powers.npy"


class Placed(NamedTuple):
    """Where one section of a mix sits, and what there decides the bed and the ducking."""

    key: str  # its pre-mix's key ("" for a section without items; "direct:KEY" if laid out from items)
    start: int  # where the section starts
    first: int  # where its clips start sounding
    stop: int  # and stop
    music: str
    duck: dict[str, float]


class Layout(NamedTuple):
    """Where a mix's sections sit, and what every part of it depends on."""

    context: str  # the key of the rate, channels, [mix] settings and bed: equal, or no splice
    frames: int
    voice_channels: int
    ducked: bool
    sections: tuple[Placed, ...]

    @classmethod
    def of(cls, plan: MixPlan, program: Any) -> Layout:
        """The layout of ``program``, the mixer's :class:`~mixdown.dsp.mixer.Mix` of ``plan``."""
        from ..dsp.mixer import Premixed
        from ..dsp.rendering import ducked, voice_channels

        timeline = json.loads(plan.timeline_json)  # the JSON the mix's key was made from
        context = content_key(
            {
                "splice": MIX_VERSION,
                **{k: timeline[k] for k in ("sample_rate", "channels", "settings", "bed")},
            }
        )
        placed = []
        for section, start in zip(program.sections, program.starts, strict=True):
            duck = {k: float(v) for k, v in section.duck.items()}
            if not isinstance(section, Premixed):
                placed.append(Placed("", start, start, start, section.music, duck))
                continue
            key = plan.section_keys[len(placed)] or ""
            if start >= section.pre:  # placed as its pre-mix
                first = start - section.pre
                placed.append(Placed(key, start, first, first + section.frames, section.music, duck))
            else:  # laid out from its items, cues moved to the programme's start: no splice past it
                placed.append(Placed(f"direct:{key}", start, 0, program.frames, section.music, duck))
        return cls(context, program.frames, voice_channels(program), ducked(program), tuple(placed))

    def to_json(self) -> dict[str, Any]:
        """The layout as JSON-ready values."""
        return {**self._asdict(), "sections": [list(s) for s in self.sections]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        """A layout from :meth:`to_json`'s values (KeyError, TypeError or ValueError if it is not one)."""
        sections = tuple(
            Placed(str(k), int(a), int(b), int(c), str(m), dict(d)) for k, a, b, c, m, d in data["sections"]
        )
        return cls(
            str(data["context"]),
            int(data["frames"]),
            int(data["voice_channels"]),
            bool(data["ducked"]),
            sections,
        )


class Found(NamedTuple):
    """A splice: the parent mix, which parts to mix again, and what the others keep of it."""

    parent: str  # the parent mix's key
    changed: tuple[int, int]  # the stretch where the mix may differ from the parent's
    redo: list[bool]  # per part: mix it again (else copy it)
    powers: np.ndarray | None  # the new mix's voice powers, where no part is mixed again
    measured: tuple[
        np.ndarray, np.ndarray, np.ndarray
    ]  # the parent's analysis: hops, row peaks, row energies
    parts: list[tuple[int, int]]
    sample_rate: int

    @property
    def redone(self) -> int:
        """How many parts are mixed again."""
        return sum(self.redo)

    @property
    def seconds(self) -> float:
        """How long they are."""
        return (
            sum(b - a for (a, b), again in zip(self.parts, self.redo, strict=True) if again)
            / self.sample_rate
        )

    def joined(self, measured: list[Any]) -> list[Any]:
        """Every part's measurement: those mixed again (``measured``), and the parent's for the others."""
        from ..dsp.loudness import ROW

        hops, peaks, energy = self.measured
        sr, last = self.sample_rate, len(self.parts) - 1
        out = []
        for index, ((start, stop), found) in enumerate(zip(self.parts, measured, strict=True)):
            if found is not None:
                out.append(found)
                continue
            a, b = start * 10 // sr, (stop * 10 // sr if index < last else len(hops))
            r, s = start // ROW, (stop // ROW if index < last else len(peaks))
            out.append((hops[a:b], peaks[r:s], energy[r:s]))
        return out


def plan(
    context: Context,
    plan: MixPlan,
    program: Any,
    layout: Layout,
    parts: list[tuple[int, int]],
) -> Found | None:
    """The splice that makes ``plan``'s mix from its rendition's last published mix, or None (mix it whole)."""
    from ..dsp.master import Analysis

    last = published.read(context, plan)
    cache = context.cache
    if last is None or last.mix == plan.key or last.mix not in cache:
        return None
    parent = last.mix
    if not stored_alike(context, parent):
        return None
    old = _layout(context, parent)
    if old is None or (old.context, old.voice_channels, old.ducked) != (
        layout.context,
        layout.voice_channels,
        layout.ducked,
    ):
        return None
    analysis = Analysis.load(cache.side_path(parent, ANALYSIS))
    if analysis is None or analysis.frames != old.frames:
        return None
    changed = _sections_changed(context, old, layout)
    powers = None
    if layout.ducked:
        found = _ducking(context, parent, program, old, layout, changed)
        if found is None:
            return None
        powers, ducking = found
        changed = _hull(changed, ducking)
    if program.bed is not None:
        changed = _hull(changed, _bed_changed(program, old))
    lo, hi = (max(changed[0], 0), min(changed[1], program.frames)) if changed else (0, 0)
    before_part = lead(program.sample_rate, program.hop)
    # a part is made again if its samples may change, or what primes its meter may
    redo = [(changed is not None and a - before_part < hi and b > lo) or b > old.frames for a, b in parts]
    measured = (analysis.meter.hop_energies(), *analysis.predictor.rows())
    return Found(parent, (lo, hi), redo, powers, measured, parts, program.sample_rate)


def stored_alike(context: Context, key: str) -> bool:
    """Whether the cached mix or pre-mix ``key`` is stored as the show stores them now: its
    samples can then be copied into a new one and read back as that one made whole would
    hold them (a compact object holds whole 24-bit steps, :mod:`mixdown.codecs.flac24`;
    a float one the mixer's float sums)."""
    from ..codecs.flac24 import HEADROOM

    meta = context.cache.meta(key)
    stored = (meta.get("codec"), float(meta.get("scale", 1.0)))
    return stored == (("flac24", HEADROOM) if context.project.compact else (None, 1.0))


def store(
    context: Context, plan: MixPlan, layout: Layout, powers: np.ndarray | None, found: Found | None
) -> None:
    """Keep ``plan``'s layout (with its parent and changed stretch, if spliced) and voice powers beside it."""
    import numpy as np

    record = {**layout.to_json(), "parent": None, "changed": None}
    if found is not None:
        record.update(parent=found.parent, changed=list(found.changed))
    cache = context.cache
    if powers is not None:
        out = io.BytesIO()
        np.save(out, powers)
        cache.put_side(plan.key, POWERS, out.getvalue())
    cache.put_side(plan.key, LAYOUT, json.dumps(record).encode("utf-8"))


def _layout(context: Context, key: str) -> Layout | None:
    try:
        return Layout.from_json(json.loads(context.cache.side_path(key, LAYOUT).read_text("utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lead(sr: int, hop: int) -> int:
    """Samples of the mix before a part that prime its meter: the master's lead-in, on a ducking frame."""
    from ..codecs.parts import lead_in

    return int(-(-lead_in(sr) // hop) * hop)


def _hull(a: tuple[int, int] | None, b: tuple[int, int] | None) -> tuple[int, int] | None:
    if a is None or b is None:
        return a or b
    return min(a[0], b[0]), max(a[1], b[1])


def _sections_changed(context: Context, old: Layout, new: Layout) -> tuple[int, int] | None:
    """The stretch covering what sounds in one mix and not the other: the clips of a section
    edited in place (same start), every clip of a section placed in one mix and not the
    other, and the end of the programme if its length changed."""
    before = {(s.key, s.start, s.first, s.stop) for s in old.sections if s.key}
    after = {(s.key, s.start, s.first, s.stop) for s in new.sections if s.key}
    gone, came = before - after, after - before
    changed = None
    starts = {s[1] for s in gone} & {s[1] for s in came}
    for start in starts:
        was = [s for s in gone if s[1] == start]
        now = [s for s in came if s[1] == start]
        if len(was) == len(now) == 1:
            compared, edited = _clips_changed(context, was[0], now[0])
            if compared:
                changed = _hull(changed, edited)
                gone.discard(was[0])
                came.discard(now[0])
    for _, _, first, stop in gone | came:
        changed = _hull(changed, (first, stop))
    if old.frames != new.frames:
        changed = _hull(changed, (min(old.frames, new.frames), new.frames))
    return changed


def _clips_changed(
    context: Context, was: tuple[str, int, int, int], now: tuple[str, int, int, int]
) -> tuple[bool, tuple[int, int] | None]:
    """Whether two versions of a section at the same place could be compared clip by clip (not
    if a pre-mix, or its list of clips, is gone), and the stretch covering the clips that
    differ (None: none)."""
    found = []
    for key, _, first, _ in (was, now):
        try:
            clips = context.cache.meta(key)["clips"] if not key.startswith("direct:") else None
        except (OSError, ValueError, KeyError):
            clips = None
        if not isinstance(clips, list):
            return False, None
        found.append({(str(what), first + int(a), first + int(b)) for what, a, b in clips})
    changed = None
    for _, a, b in found[0] ^ found[1]:
        changed = _hull(changed, (a, b))
    return True, changed


def _sections(layout: Layout) -> list[Any]:
    """Stand-ins for a layout's sections, as the bed and the ducker read them (music, ducking)."""
    from ..dsp.mixer import Section

    return [Section((), music=s.music, duck=s.duck) for s in layout.sections]


def _bed_changed(program: Any, old: Layout) -> tuple[int, int] | None:
    from ..dsp.bed import Music

    settings, bed = program.settings, program.bed
    now = Music(bed, program.sections, program.starts, program.frames, settings)
    before = Music(bed, _sections(old), [s.start for s in old.sections], old.frames, settings)
    return now.changed(before)


def _ducking(
    context: Context, parent: str, program: Any, old: Layout, new: Layout, changed: tuple[int, int] | None
) -> tuple[np.ndarray, tuple[int, int] | None] | None:
    """The new mix's voice powers (the parent's, measured again over ``changed``) and the stretch
    where its ducking differs from the parent's; None if the parent's powers are not kept."""
    import numpy as np

    from ..dsp.ducking import Ducker
    from ..dsp.rendering import voice_powers

    try:
        before = np.load(context.cache.side_path(parent, POWERS))
    except (OSError, ValueError):
        return None
    hop = program.hop
    count = -(-program.frames // hop)
    if len(before) != -(-old.frames // hop):
        return None
    powers = np.zeros(count)
    keep = min(count, len(before))
    powers[:keep] = before[:keep]
    if changed is not None:
        first = changed[0] // hop * hop
        stop = min(program.frames, -(-changed[1] // hop) * hop)
        powers[first // hop : first // hop + -(-(stop - first) // hop)] = voice_powers(program, first, stop)
    scale = hop * new.voice_channels
    settings = program.settings
    now = Ducker(powers / scale, program.sections, program.starts, program.frames, hop, settings)
    then = Ducker(before / scale, _sections(old), [s.start for s in old.sections], old.frames, hop, settings)
    return powers, now.changed(then)


class Reuse(NamedTuple):
    """How a section's new pre-mix reuses its earlier one: the same samples before ``start``,
    and from ``stop`` on those the earlier one has from ``stop - shift``; only ``[start, stop)``
    is made again."""

    earlier: str  # the earlier pre-mix's key
    start: int
    stop: int
    shift: int


def earlier_section(context: Context, plan: MixPlan, index: int) -> str | None:
    """The pre-mix section ``index`` had in the rendition's last published mix, if it was another
    and is cached (what an edit of the section starts from), else None."""
    last = published.read(context, plan)
    old = _layout(context, last.mix) if last is not None else None
    if old is None or index >= len(old.sections):
        return None
    key = old.sections[index].key.removeprefix("direct:")
    return key if key and key != plan.section_keys[index] and key in context.cache else None


def reuse_premix(
    context: Context, earlier: str, clips: list[list[Any]], pre: int, length: int, frames: int
) -> Reuse | None:
    """How a section's new pre-mix (its ``clips`` as ``[what, start, stop]``, ``pre``, ``length``
    and ``frames``) can reuse the ``earlier`` one, or None if it cannot.

    Before the first clip that is not in both at the same place, both are made of the
    same clips; after the last that is not in both at places ``shift`` apart (the
    change in the section's length), likewise, shifted.
    """
    try:
        meta = context.cache.meta(earlier)
        was = {(str(w), int(a), int(b)) for w, a, b in meta["clips"]}
        before = (int(meta["pre"]), int(meta["length"]), context.cache.info(earlier)[0])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    shift = length - before[1]
    if before[0] != pre or frames - before[2] != shift:
        return None
    now = {(str(w), int(a), int(b)) for w, a, b in clips}
    start = min((a for _, a, _ in now ^ was), default=frames)
    moved = {(w, a + shift, b + shift) for w, a, b in was}
    stop = max(
        [b for w, a, b in now - moved]
        + [b + shift for w, a, b in was if (w, a + shift, b + shift) not in now],
        default=0,
    )
    if not 0 <= start <= before[2] or stop - shift > before[2]:
        return None
    return Reuse(earlier, min(start, frames), max(stop, min(start, frames)), shift)
