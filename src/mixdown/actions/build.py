"""The actions doit runs: render an asset, mix a rendition, master it.

Each action takes a :class:`Context` and one plan entry. User-facing
failures come back as doit ``TaskFailed`` with mixdown's one-line message, so
doit reports the failed target without a traceback; nothing partial reaches
the cache or ``build/``.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MixdownError, RenderFailed
from ..plan.model import Asset, MixPlan, request_for
from ..renderers import Registry
from ..settings import STEMS
from ..show.project import Project
from ..store import files
from ..store.cache import Cache, safe_params

# The DSP modules (numpy, scipy) load when the first action runs, so that
# listing or checking a show stays fast.

__all__ = [
    "Context",
    "aligned_anchor",
    "build_delivery",
    "build_master",
    "build_mix",
    "render_asset",
    "stamp_matches",
]

MIN_SECONDS = {"voice": 0.05, "sfx": 0.005, "music": 0.5}
# files kept beside cache objects: a mix's measurement, a long master's recipe
ANALYSIS, RECIPE = "analysis.npz", "recipe.json"
_TEMPORARY_NAME = re.compile(r"^\..*\.tmp(\.[a-z0-9]+)?$")


@dataclass
class Context:
    """What every action needs: the project, its cache and its renderers."""

    project: Project
    cache: Cache
    registry: Registry


def render_asset(context: Context, asset: Asset) -> Any:
    """doit action: render one asset into the cache, unless the cache holds it already."""
    return _reported(_render_asset, context, asset, asset.task)


def build_mix(context: Context, plan: MixPlan) -> Any:
    """doit action: mix one rendition into the cache."""
    return _reported(_build_mix, context, plan, f"mix:{plan.name}")


def build_delivery(context: Context, item: tuple[MixPlan, str]) -> Any:
    """doit action: one extra delivery of a rendition, spec-checked."""
    return _reported(_build_delivery, context, item, f"deliver:{item[0].name}/{item[1]}")


def build_master(context: Context, plan: MixPlan) -> Any:
    """doit action: master one rendition and write its deliverables."""
    return _reported(_build_master, context, plan, f"master:{plan.name}")


def _reported(action: Any, context: Context, item: Any, target: str) -> Any:
    """Run ``action``; a :class:`MixdownError`, or a file that cannot be written (a full
    disk, a read-only directory), becomes doit's ``TaskFailed``: one line, no traceback."""
    from . import stopping

    stopping.install()
    try:
        with stopping.action():
            return action(context, item)
    except MixdownError as err:
        from doit.exceptions import TaskFailed

        return TaskFailed(str(err))
    except Exception as err:
        if not _is_file_error(err):
            raise
        from doit.exceptions import TaskFailed

        return TaskFailed(_file_error(context, target, err))


def _is_file_error(err: Exception) -> bool:
    """Whether ``err`` is the system refusing a file: :class:`OSError`, or libsndfile's "System error"."""
    if isinstance(err, OSError):
        return True
    soundfile = sys.modules.get("soundfile")
    return soundfile is not None and isinstance(err, getattr(soundfile, "SoundFileError", ()))


def _file_error(context: Context, target: str, err: Exception) -> str:
    """The one line for a file that could not be written (or read): the target, the file, why."""
    filename = getattr(err, "filename", None)
    where = filename if isinstance(filename, str) and filename else files.last_destination()
    if isinstance(where, str) and _TEMPORARY_NAME.match(os.path.basename(where)):
        where = files.last_destination()
    named = _relative(context, Path(where)) if where is not None else "a file"
    strerror = err.strerror if isinstance(err, OSError) else None
    why = f"{strerror} [errno {err.errno}]" if isinstance(err, OSError) and strerror else str(err)
    why = " ".join(why.split())
    return (
        f"{target}: cannot write {named}: {why}; nothing partial was kept: "
        "free some space (or make the directory writable) and run the build again"
    )


def _once(context: Context, key: str, target: str, doing: str, done: Any, make: Any) -> None:
    """``make()`` unless ``done()``: checked first without the key's lock (a read-only cache
    that holds it is enough), then again under it (another build may have made it)."""
    if done():
        return
    with _locked(context, key, target, doing):
        if not done():
            make()


def _locked(context: Context, key: str, target: str, doing: str) -> Any:
    """Hold the cache's lock of ``key`` while ``target`` checks, makes and stores it: a
    second build making the same key at once waits, says so, and then finds it made."""
    from .stopping import check

    def waiting() -> None:
        print(f"{target}  waiting for another build {doing} it", file=sys.stdout, flush=True)

    return context.cache.lock(key, target=target, waiting=waiting, check=check)


def _render_asset(context: Context, asset: Asset) -> None:
    """Render one asset and store it under its key, unless the cache already holds the key
    (``doit -a`` runs every task: a paid render is never made twice)."""
    _once(
        context,
        asset.key,
        asset.task,
        "rendering",
        lambda: asset.key in context.cache,
        lambda: _render_missing(context, asset),
    )


def _render_missing(context: Context, asset: Asset) -> None:
    """Render one asset and store it under its key."""
    import numpy as np

    renderer = context.registry.instance(asset.renderer)
    request = request_for(asset, context.project)
    named = _renderer_named(context, asset.renderer, renderer)
    try:
        result = renderer.render(request)
    except MixdownError:
        raise
    except Exception as err:  # a show's own renderer may raise anything: one line, not a traceback
        why = _without_secrets(" ".join(f"{type(err).__name__}: {err}".split()))
        raise RenderFailed(f"{asset.task}: {named} raised {why}; nothing was cached") from None
    audio, sample_rate = _result_audio(result, asset, named)
    seconds = len(audio) / sample_rate
    if seconds < MIN_SECONDS[asset.kind] or np.abs(audio).max() > 4.0:
        peak = float(np.abs(audio).max()) if len(audio) else 0.0
        raise RenderFailed(
            f"{asset.task}: {named} returned implausible audio "
            f"({seconds:.3f} s, peak {peak:.2f}); nothing was cached"
        )
    meta = {
        "kind": asset.kind,
        "renderer": asset.renderer,
        "version": getattr(context.registry.cls(asset.renderer), "version", "1"),
        "params": safe_params(request.params),
        **({"text": asset.text} if asset.kind == "voice" else {}),
        **({"segment": asset.segment} if asset.segment else {}),
        **safe_params(result.meta or {}),
    }
    context.cache.put(asset.key, audio, sample_rate, meta)


def _result_audio(result: Any, asset: Asset, named: str) -> tuple[Any, int]:
    """The audio ``[shape=(n, channels)]`` and rate of a renderer's result, checked."""
    from ..dsp.signal import valid_audio

    rate, meta = _whole_rate(getattr(result, "sample_rate", None)), getattr(result, "meta", None)
    if not hasattr(result, "audio") or rate is None or not isinstance(meta, dict | None):
        got = (
            type(result).__name__
            if not hasattr(result, "audio")
            else f"sample rate {getattr(result, 'sample_rate', None)!r}, meta {type(meta).__name__}"
        )
        raise RenderFailed(
            f"{asset.task}: {named} returned {got}, not a RenderResult(audio, sample_rate, meta); "
            "nothing was cached"
        )
    try:
        audio = valid_audio(result.audio, what=asset.task)
    except MixdownError as err:
        raise RenderFailed(f"{asset.task}: {named} returned bad audio: {err}; nothing was cached") from None
    return audio, rate


def _whole_rate(rate: Any) -> int | None:
    """``rate`` as a positive whole number of samples per second, or None."""
    if isinstance(rate, bool | str | bytes):
        return None
    try:
        value = float(rate)
    except (TypeError, ValueError):
        return None
    return int(value) if value > 0 and value.is_integer() else None


def _without_secrets(text: str) -> str:
    """``text`` with the value of every ``*_API_KEY`` variable replaced: a renderer's own
    exception may quote its request, and the message reaches the console and CI logs."""
    for name, value in os.environ.items():
        if name.endswith("_API_KEY") and len(value) >= 8:
            text = text.replace(value, "***")
    return text


def _renderer_named(context: Context, name: str, renderer: Any) -> str:
    """``renderer 'x'``, with the show's file that defines it when it is the show's own."""
    render = getattr(type(getattr(renderer, "inner", renderer)), "render", None)
    source = getattr(getattr(render, "__code__", None), "co_filename", None)
    root = context.project.root.resolve()
    if isinstance(source, str) and Path(source).resolve().is_relative_to(root):
        return f"renderer '{name}' ({Path(source).resolve().relative_to(root)})"
    return f"renderer '{name}'"


def _build_mix(context: Context, plan: MixPlan) -> None:
    """Mix a rendition into the cache unless it is there whole already (its stems too, if
    the show asks for them): a mix made by another build, or before a ``doit -a``."""
    _once(
        context,
        plan.key,
        f"mix:{plan.name}",
        "mixing",
        lambda: _mix_cached(context, plan),
        lambda: _mix(context, plan),
    )


def _mix_cached(context: Context, plan: MixPlan) -> bool:
    cache = context.cache
    stems = STEMS if any(p.parent.suffix == ".stems" for p in plan.outputs) else ()
    return (
        plan.key in cache
        and cache.side_path(plan.key, ANALYSIS).exists()
        and all(plan.stem_key(bus) in cache for bus in stems)
    )


def _mix(context: Context, plan: MixPlan) -> None:
    """Mix a rendition's timeline from cached assets, block by block, into the cache.

    The stems are stored beside the mix when the show asks for them. A long
    programme is mixed in two halves at once (:func:`_mix_parts`).
    """
    import numpy as np

    # scipy.signal (the resampler, the filters) takes ~0.7 s to import; imported here on a
    # thread of its own it is ready when the first lines are prepared, instead of stalling
    # every thread that needs it then (the mix stage: 9.6 -> 8.7 s on average over six
    # alternating runs of the longform benchmark's hour).
    threading.Thread(target=importlib.import_module, args=("scipy.signal",), daemon=True).start()

    from ..codecs.parts import lead_in
    from ..dsp import mixer as mixing
    from ..dsp.master import Analysis
    from ..dsp.signal import resample

    timeline = plan.timeline
    sections = [
        mixing.Section(
            tuple(_item(context, it) for it in s["items"]),
            music=s["music"],
            at=s.get("at"),
            duck=s.get("duck", {}),
            heading=plan.sections[index] if index < len(plan.sections) else "",
        )
        for index, s in enumerate(timeline["sections"])
    ]
    bed = None
    if timeline["bed"] is not None:
        segments = {name: context.cache.get(timeline["bed"][name]) for name in ("intro", "main", "outro")}
        rates = {sr for _, sr in segments.values()}
        sr = max(rates)
        parts = {name: resample(y, s, sr) for name, (y, s) in segments.items()}
        seamless = context.cache.meta(timeline["bed"]["main"]).get("loop") == "seamless"
        bed = mixing.Bed(
            parts["intro"],
            parts["main"],
            parts["outro"],
            sr,
            gain_db=timeline["bed"]["gain_db"],
            seamless=seamless,
        )
    settings = _mix_settings(timeline)
    program = mixing.Mix(sections, bed=bed, settings=settings)
    sr, channels, frames = program.sample_rate, program.channels, program.frames
    buses = STEMS if any(p.parent.suffix == ".stems" for p in plan.outputs) else ()
    writers = {bus: context.cache.writer(plan.stem_key(bus), sr, channels, frames=frames) for bus in buses}
    writers["mix"] = context.cache.writer(plan.key, sr, channels, frames=frames)
    halves = _mix_parts(frames, sr)
    voiced = _Progress(f"mix:{plan.name}", "voice bus", frames, sr)
    mixed = _Progress(f"mix:{plan.name}", "mixed", frames, sr)
    failed = threading.Event()

    def mix_part(part: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # Each part is written in place and measured for the master on its own (a second
        # of the mix before it primes its meter), so the parts join into one measurement.
        start, stop = part
        analysis = Analysis(sr, channels, threads=False)
        lead = min(start, lead_in(sr))
        for _, stems in rendering.blocks(start - lead, start):
            analysis.meter.add(stems.mixdown())
        analysis.meter.restart()
        for position, stems in rendering.blocks(start, stop):
            if failed.is_set():
                break
            block = stems.mixdown()
            for bus in buses:
                writers[bus].write_at(position, getattr(stems, bus))
            writers["mix"].write_at(position, block)
            analysis.add(block)
            mixed.add(len(block))
        return analysis.parts()

    def run(part: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        try:
            return mix_part(part)
        except BaseException:
            failed.set()
            raise

    try:
        with program.rendering(halves, progress=voiced.add) as rendering:
            if len(halves) == 1:
                measured = [run(halves[0])]
            else:
                with ThreadPoolExecutor(
                    max_workers=len(halves), thread_name_prefix="mixdown-part"
                ) as threads:
                    futures = [threads.submit(run, half) for half in halves]
                    measured = [future.result() for future in futures]
        for bus in buses:
            writers[bus].commit({"kind": "stem", "bus": bus, "name": plan.name})
        analysis = Analysis.joined(sr, channels, frames, measured)
        context.cache.put_side(plan.key, ANALYSIS, analysis.to_bytes())
        writers["mix"].commit({"kind": "mix", "name": plan.name})
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise


def _mix_parts(frames: int, sr: int) -> list[tuple[int, int]]:
    """The ranges a programme is mixed in, a thread each: halves of a long programme.

    Fixed by the programme's length (as the master's segments are), so that
    its measurement is the same on every machine; the cut falls on the
    master's segment grid and on a ducking frame.
    """
    import math

    from ..codecs import parts as segments
    from ..dsp.mixer import ducking_hop

    if not segments.usable(frames, sr):
        return [(0, frames)]
    unit = math.lcm(segments.grid(sr), ducking_hop(sr))
    middle = max(unit, round(frames / 2 / unit) * unit)
    return [(0, middle), (middle, frames)] if middle < frames else [(0, frames)]


def _mix_settings(timeline: dict[str, Any]) -> Any:
    """The mixer's settings from a timeline: [mix] plus the project's rate and channels."""
    from ..dsp import mixer as mixing

    settings = dict(timeline["settings"])
    switches = settings.pop("speech", None)
    speech = None
    if isinstance(switches, dict) and any(switches.values()):
        from ..dsp.speech import SpeechSettings

        speech = SpeechSettings(**switches)
    return mixing.MixSettings(
        sample_rate=timeline["sample_rate"], channels=timeline["channels"], speech=speech, **settings
    )


class _Progress:
    """Prints how far a long step has got (programmes over ten minutes), at most every 10 %."""

    def __init__(self, target: str, verb: str, frames: int, sr: int) -> None:
        self.target, self.verb, self.frames, self.sr = target, verb, frames, sr
        self.long = frames > 600 * sr
        self._next = 0.1
        self._done = 0
        self._lock = threading.Lock()

    def show(self, done: int) -> None:
        """Report ``done`` frames done; raise :class:`~mixdown.actions.stopping.Interrupted` if the build
        is stopping, so that long steps stop where they report."""
        from .stopping import check

        check()
        with self._lock:
            if self.long and done >= self._next * self.frames:
                print(
                    f"{self.target}  {self.verb} {_clock(done / self.sr)} of {_clock(self.frames / self.sr)}"
                )
                while self._next <= done / self.frames:
                    self._next += 0.1

    def add(self, frames: int) -> None:
        """Count ``frames`` more done (from any thread)."""
        with self._lock:
            self._done += frames
            done = self._done
        self.show(done)

    def say(self, text: str) -> None:
        from .stopping import check

        check()
        if self.long:
            print(f"{self.target}  {text}")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def _item(context: Context, item: list[Any]) -> Any:
    """A mixer item from a timeline entry; its audio is read when the mix reaches it."""
    from ..dsp import mixer as mixing

    kind = item[0]
    if kind == "pause":
        return mixing.Pause(item[1])
    audio, sr = _lazy(context, item[1])
    if kind == "sting":
        return mixing.Sting(audio, sr, gain_db=item[2])
    cues = []
    alignment = context.cache.meta(item[1]).get("alignment") if item[3] else None
    for cue_key, at, gain_db, offset in item[3]:
        cue_audio, cue_sr = _lazy(context, cue_key)
        if alignment:
            at = aligned_anchor(alignment, at, audio.frames / sr)
        cues.append(mixing.Cue(cue_audio, cue_sr, at=at, gain_db=gain_db, offset=offset))
    return mixing.Line(audio, sr, cues=tuple(cues), gain_db=item[2])


def _lazy(context: Context, key: str) -> tuple[Any, int]:
    """A cache object as the mixer's :class:`~mixdown.dsp.mixer.Lazy` audio, and its rate."""
    from ..dsp.mixer import Lazy

    frames, sr, channels = context.cache.info(key)
    return Lazy(frames, lambda: context.cache.get(key)[0], channels), sr


def aligned_anchor(alignment: list[list[Any]], at: float, seconds: float) -> float:
    """Move a cue's anchor from its character position to when that character is spoken.

    ``alignment`` is a renderer's ``[[character, start_seconds], …]`` for the
    line (ElevenLabs with-timestamps); ``at`` is the cue's place as a fraction
    of the text. Returns the fraction of the line's duration.
    """
    if seconds <= 0 or not alignment:
        return at
    index = min(round(at * len(alignment)), len(alignment))
    spoken = alignment[index][1] if index < len(alignment) else seconds
    return min(max(float(spoken) / seconds, 0.0), 1.0)


def _mastered(
    context: Context, plan: MixPlan, deliverable: Any = None, *, threads: bool = True
) -> tuple[Any, Any, list[Any]]:
    """The master of ``plan`` (a block source) and its loudness.

    Made from the mix if missing: the mix's saved analysis gives the gain,
    then one limiting pass (rarely more) makes the master, in parallel
    segments for a long programme (:mod:`mixdown.codecs.parts`: the cache keeps
    its recipe, and the samples are made again only if something reads
    them), else as one stream into a cache object. ``deliverable`` ``(stem,
    delivery, formats)`` names files to write from the master as it is made
    (formats at the master's rate); those written come back third with their
    measurements (empty when the master was already cached). ``threads=False``
    keeps a streamed pass's metering on one core (an MP3 encoder process has
    the other).
    """
    found = _master_cached(context, plan, deliverable)
    if found is not None:  # no lock to take: a read-only cache that holds it is enough
        return found
    with _locked(context, plan.master_key, f"master:{plan.name}", "mastering"):
        return _master_made(context, plan, deliverable, threads=threads)


def _master_cached(context: Context, plan: MixPlan, deliverable: Any) -> tuple[Any, Any, list[Any]] | None:
    """:func:`_mastered`'s answer when the cache has what it needs, else None."""
    cache = context.cache
    stored = _stored_recipe(context, plan)
    direct = bool(deliverable and deliverable[2])
    # A long master's files are made again from its recipe even when the master is cached (a
    # delivery made it): written that way they are the same bytes as the first build's.
    if plan.master_key in cache and not (stored is not None and direct):
        return cache.source(plan.master_key), _measured(cache.meta(plan.master_key)), []
    if stored is not None and not direct:
        return _RecipeMaster(context, plan, *stored), stored[1], []  # no files to make
    return None


def _master_made(
    context: Context, plan: MixPlan, deliverable: Any = None, *, threads: bool = True
) -> tuple[Any, Any, list[Any]]:
    """:func:`_mastered`, with the master's lock held."""
    from ..codecs import parts as segments
    from ..codecs.wav import Source
    from ..dsp.master import Analysis, MasterSettings

    found = _master_cached(context, plan, deliverable)  # made meanwhile by another build
    if found is not None:
        return found
    cache = context.cache
    stored = _stored_recipe(context, plan)
    mixed = cache.source(plan.key)
    progress = _Progress(f"master:{plan.name}", "mastered", mixed.frames, mixed.sample_rate)
    settings = MasterSettings(plan.master["target_lufs"], plan.master["limit_dbtp"])
    if stored is not None or segments.usable(mixed.frames, mixed.sample_rate):
        return _mastered_in_segments(context, plan, mixed, settings, progress, deliverable, stored)
    analysis = Analysis.load(cache.side_path(plan.key, ANALYSIS))  # saves the measuring pass
    sinks: list[_Tee] = []

    def open_sink() -> _Tee:
        from ..codecs.deliver import Formats

        writer = cache.writer(plan.master_key, mixed.sample_rate, mixed.channels, frames=mixed.frames)
        formats = None
        if deliverable is not None and deliverable[2]:
            stem, delivery, direct = deliverable
            formats = Formats(stem, direct, mixed.sample_rate, mixed.channels, delivery, mixed.frames)
        sinks.append(_Tee(writer, formats))
        return sinks[-1]

    from ..dsp.master import master_stream

    try:
        loudness = master_stream(
            mixed, settings, open_sink, progress=progress.say, threads=threads, analysis=analysis
        )
        path = sinks[-1].writer.commit(_master_meta(plan, loudness))
        encoded = sinks[-1].formats.finish() if sinks[-1].formats else []
    except BaseException:
        if sinks:
            sinks[-1].discard()
        raise
    return Source.of_file(path), loudness, encoded


def _master_meta(plan: MixPlan, loudness: Any) -> dict[str, Any]:
    measured = [loudness.integrated_lufs, loudness.true_peak_dbtp, loudness.lra]
    return {"kind": "master", "name": plan.name, "loudness": str(loudness), "measured": measured}


def _measured(meta: dict[str, Any]) -> Any:
    """The :class:`~mixdown.dsp.master.Loudness` a :func:`_master_meta` record holds, or None."""
    from ..dsp.master import Loudness

    found = meta.get("measured")
    return Loudness(*found) if isinstance(found, list) and len(found) == 3 else None


def _mastered_in_segments(
    context: Context,
    plan: MixPlan,
    mixed: Any,
    settings: Any,
    progress: Any,
    deliverable: Any,
    stored: tuple[Any, Any] | None,
) -> tuple[Any, Any, list[Any]]:
    """:func:`_mastered` for a long programme: every core limits, writes, meters and encodes a segment.

    The master's samples are not stored: its recipe is (``<key>.recipe.json``
    beside the cache objects), and the master comes back as a
    :class:`_RecipeMaster`. With a recipe already ``stored`` (and its
    loudness), the files are made in one pass from it.
    """
    import json

    from ..codecs import mp3
    from ..codecs.deliver import _temporary, subtype_for
    from ..codecs.lame import quality_for
    from ..codecs.parts import Segmented
    from ..codecs.wav import WavWriter
    from ..dsp.master import _MASTER_MARGIN_DB, Analysis, Loudness, normalise

    cache = context.cache
    sr, channels, frames = mixed.sample_rate, mixed.channels, mixed.frames
    stem, delivery, direct = deliverable if deliverable is not None else (None, None, [])
    wav: Any = None
    mp3_path: Any = None
    try:
        if direct:
            stem.parent.mkdir(parents=True, exist_ok=True)
        if "wav" in direct:
            subtype = subtype_for("wav", delivery.bit_depth)
            wav = WavWriter(_temporary(stem, "wav"), sr, channels, subtype, frames)
        encoding = None
        if "mp3" in direct and mp3.available():
            mp3_path = _temporary(stem, "mp3")
            encoding = (mp3_path, delivery.bitrate, delivery.vbr, quality_for(delivery.bitrate))
        analysis = Analysis.load(cache.side_path(plan.key, ANALYSIS))  # saves the measuring pass
        if analysis is None or analysis.frames != frames:
            analysis = Analysis.of(mixed)
        recipe = stored[0] if stored is not None else None
        passes = Segmented(
            cache.path(plan.key),
            sr,
            channels,
            frames,
            recipe.ceiling_dbtp if recipe else settings.ceiling_dbtp - _MASTER_MARGIN_DB,
            wav=wav,
            mp3=encoding,
            seconds=recipe.seconds if recipe else None,
            progress=progress.show,
            mix_hops=analysis.meter.hop_energies(),
        )
        if recipe is not None:  # the files again, from the master's recipe
            found, _, _ = passes(recipe.gain_db, recipe.aim, recipe.trim)
            loudness = Loudness(found.integrated, found.true_peak, found.lra)
        else:
            loudness = normalise(mixed, settings, passes, progress=progress.say, analysis=analysis)
            assert passes.recipe is not None
            recipe = passes.recipe
            record = {**_master_meta(plan, loudness), "recipe": recipe.record()}
            cache.put_side(plan.master_key, RECIPE, json.dumps(record, indent=1).encode("utf-8"))
        written: list[Any] = []
        if wav is not None:
            wav.flush()
            wav.close()
            passes.check_wav_header()
            written.append(("wav", wav.path, passes.found))
        if mp3_path is not None:
            written.append(("mp3", mp3_path, passes.mp3_found))
    except BaseException:
        if wav is not None:
            wav.close()
        for tmp in (wav.path if wav is not None else None, mp3_path):
            if tmp is not None:
                files.discard(tmp)
        raise
    return _RecipeMaster(context, plan, recipe, loudness), loudness, written


def _stored_recipe(context: Context, plan: MixPlan) -> tuple[Any, Any] | None:
    """The recipe of ``plan``'s segmented master and its loudness, if the cache has them (the
    master's key names its mix: a recipe under it is that mix's)."""
    import json

    from ..codecs.parts import Recipe

    try:
        record = json.loads(context.cache.side_path(plan.master_key, RECIPE).read_text("utf-8"))
        recipe, loudness = Recipe.from_record(record["recipe"]), _measured(record)
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none, or unreadable: master again
    return (recipe, loudness) if recipe is not None and loudness is not None else None


class _RecipeMaster:
    """A segmented master as a block source: made into a cache object the first time it is read.

    Most long masters are only ever written to their files, as they are
    made; a delivery at another loudness or rate, or a file encoded again,
    reads the master, and the first to read it pays for making it (every
    core limits the mix again, :func:`mixdown.codecs.parts.write_master`).
    """

    def __init__(self, context: Context, plan: MixPlan, recipe: Any, loudness: Any) -> None:
        self.sample_rate, self.channels, self.frames = recipe.sample_rate, recipe.channels, recipe.frames
        self._context, self._plan, self._recipe, self._loudness = context, plan, recipe, loudness
        self._source: Any = None

    def blocks(self, size: int | None = None) -> Any:
        if self._source is None:
            self._source = self._made()
        return self._source.blocks() if size is None else self._source.blocks(size)

    def _made(self) -> Any:
        from ..codecs.parts import write_master

        cache, plan = self._context.cache, self._plan
        target = f"master:{plan.name}"

        def make() -> None:
            cache.info(plan.key)  # the mix is whole (a damaged one is removed, and the build stops)
            progress = _Progress(target, "made from its recipe", self.frames, self.sample_rate)
            with cache.writer(plan.master_key, self.sample_rate, self.channels, frames=self.frames) as writer:
                write_master(self._recipe, cache.path(plan.key), writer, progress=progress.show)
                writer.commit(_master_meta(plan, self._loudness))

        _once(self._context, plan.master_key, target, "mastering", lambda: plan.master_key in cache, make)
        return cache.source(plan.master_key)


class _Tee:
    """A master_stream sink feeding the cache object and, optionally, the deliverables."""

    def __init__(self, writer: Any, formats: Any) -> None:
        self.writer, self.formats = writer, formats

    def write(self, block: Any) -> None:
        self.writer.write(block)
        if self.formats is not None:
            self.formats.write(block)

    def discard(self) -> None:
        self.writer.discard()
        if self.formats is not None:
            self.formats.discard()


def _build_delivery(context: Context, item: tuple[MixPlan, str]) -> dict[str, str]:
    """Bring the master to a delivery preset, encode, check the files and publish them."""
    from ..codecs.deliver import deliver
    from ..settings import delivery_from

    plan, name = item
    table, paths = plan.delivery(name)
    delivery = delivery_from(table, f"[deliveries.{name}]")
    stem = paths[0].with_name(paths[0].name.rsplit(".", 1)[0])
    files.sweep_once(stem.parent)  # what killed builds left there
    source, loudness, _ = _mastered(context, plan)
    target = f"deliver:{plan.name}/{name}"
    for path, found in deliver(source, stem, delivery, target=target, loudness=loudness):
        print(f"{target}  {found}  {_relative(context, path)}", file=sys.stdout)
    return {"stamp": plan.delivery_stamp(name)}


def _relative(context: Context, path: Any) -> Any:
    root = context.project.root
    return path.relative_to(root) if path.is_relative_to(root) else path


def _build_master(context: Context, plan: MixPlan) -> dict[str, str]:
    """Master the mix (or reuse a cached master) and write the [master] formats to ``build/``.

    The files go through the same encode, decode and spec check as every
    delivery, against the master's own target and ceiling (±1 LU).
    """
    from ..codecs.deliver import deliver
    from ..settings import Delivery, mp3_bitrate, rate_for

    settings = plan.master
    paths = [p for p in plan.outputs if p.parent.suffix != ".stems"]
    formats = tuple(p.suffix[1:] for p in paths)
    sr = plan.timeline["sample_rate"]
    delivery = Delivery(
        "master",
        settings["target_lufs"],
        settings["ceiling_dbtp"],
        1.0,
        formats,
        bitrate=mp3_bitrate(Delivery.bitrate, rate_for("mp3", sr)),
    )
    stem = paths[0].with_name(paths[0].name[: -len(paths[0].suffix)])
    files.sweep_once(stem.parent)  # what killed builds left there
    direct = [fmt for fmt in formats if rate_for(fmt, sr) == sr]  # encoded while the master is made

    # An MP3 encoder process takes one core: a streamed limiting pass keeps to the other.
    source, loudness, written = _mastered(
        context, plan, (stem, delivery, direct), threads="mp3" not in direct
    )
    seconds = source.frames / source.sample_rate
    target = f"master:{plan.name}"
    for path, found in deliver(source, stem, delivery, target=target, loudness=loudness, written=written):
        print(f"{target}  {found}  {seconds:6.1f} s  {_relative(context, path)}", file=sys.stdout)
    _write_stems(context, plan, [p for p in plan.outputs if p.parent.suffix == ".stems"])
    return {"stamp": plan.stamp}


def _write_stems(context: Context, plan: MixPlan, paths: list[Any]) -> None:
    """Write the mix's buses as 24-bit WAVs: before mastering, they sum to the mix."""
    from ..codecs.wav import write_blocks_atomic

    if paths and any(plan.stem_key(bus) not in context.cache for bus in STEMS):
        _build_mix(context, plan)  # a mix cached before stems were asked for
    for path in paths:
        files.sweep_once(path.parent)
        source = context.cache.source(plan.stem_key(path.stem))
        write_blocks_atomic(path, source, subtype="PCM_24")
        print(f"master:{plan.name}  stem {path.stem:<5}  {_relative(context, path)}", file=sys.stdout)


def stamp_matches(task: Any, values: dict[str, Any], stamp: str) -> bool:
    """doit ``uptodate``: the files in ``build/`` were made from this master."""
    return bool(values.get("stamp") == stamp)
