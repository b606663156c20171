"""A parted master spliced after an edit: only the touched parts are made again (issue 19).

The mixes are cache objects made here (the mix, its analysis, and for an
edited one the layout record naming its parent), mastered by the master
action as doit runs it; a programme just over two parts at a low rate.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import numpy as np
import pytest
import soundfile as sf

from mixdown.actions import published
from mixdown.actions.context import Context
from mixdown.actions.master import PARTS, RECIPE, build_master
from mixdown.actions.mix import ANALYSIS, LAYOUT
from mixdown.codecs import mp3, parts
from mixdown.codecs.deliver import _measure_file
from mixdown.codecs.splice import PartData, dirty_parts
from mixdown.codecs.wav import Source, WavWriter
from mixdown.dsp.loudness import joined
from mixdown.dsp.master import Analysis
from mixdown.keys import content_key
from mixdown.plan.model import MixPlan
from mixdown.store.cache import Cache

pytestmark = pytest.mark.skipif(not mp3.available(), reason="no LAME API")


@pytest.fixture(autouse=True)
def _parts_of_two_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The programmes, edits and loudness moves here are laid out for parts of 120 s (a splice
    reads the parts' length from the master's recipe: any length splices alike)."""
    monkeypatch.setattr(parts, "PART_SECONDS", 120.0)


MASTER = {"target_lufs": -16.0, "ceiling_dbtp": -1.0, "limit_dbtp": -2.0}


def programme(seconds: float, sr: int, channels: int, seed: int = 1) -> np.ndarray:
    """Speech-like bursts: noise at changing levels, a pause every half second in five, and
    isolated peaks for the limiter."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sr)
    hop = sr // 10
    y = rng.standard_normal((n, channels)).astype(np.float32) * 0.1
    envelope = np.repeat(rng.uniform(0.05, 1.0, n // hop + 1), hop)[:n].astype(np.float32)
    envelope[(np.arange(n) // (sr // 2)) % 5 == 4] = 0.0
    y *= envelope[:, None]
    y[rng.integers(0, n, 60)] = 0.9
    return y


class Show(NamedTuple):
    """A show's root, cache and action context, mastering renditions named ``ep``."""

    root: Path
    context: Context

    @classmethod
    def at(cls, root: Path) -> Show:
        project: Any = SimpleNamespace(root=root, compact=False)  # what the master action reads of a project
        return cls(root, Context(project=project, cache=Cache(root / "cache"), registry=None))  # type: ignore[arg-type]

    def mix(self, y: np.ndarray, sr: int, parent: tuple[str, int, int] | None = None) -> MixPlan:
        """Store ``y`` as a mix (with its analysis; spliced from ``parent``: key, start, stop) and
        return the plan mastering it to ``build/ep.wav`` and ``.mp3``."""
        cache = self.context.cache
        key = content_key({"mix": hashlib.sha256(y.tobytes()).hexdigest(), "shape": list(y.shape)})
        if key not in cache:
            cache.put(key, y, sr, {"kind": "mix", "name": "ep"})
            cache.put_side(key, ANALYSIS, Analysis.of(Source.of_array(y, sr)).to_bytes())
        if parent is not None:
            record = {"parent": parent[0], "changed": [parent[1], parent[2]]}
            cache.put_side(key, LAYOUT, json.dumps(record).encode())
        timeline = {"sample_rate": sr, "channels": y.shape[1], "settings": {}, "sections": [], "bed": None}
        return MixPlan(
            name="ep",
            timeline_json=json.dumps(timeline),
            key=key,
            master_key=content_key({"master": key, **MASTER}),
            master=dict(MASTER),
            outputs=[self.root / "build" / "ep.wav", self.root / "build" / "ep.mp3"],
        )

    def master(self, plan: MixPlan, capsys: pytest.CaptureFixture[str]) -> str:
        """Run the master action; return what it printed."""
        capsys.readouterr()
        result = build_master(self.context, plan)
        assert result == {"stamp": plan.stamp}, result
        return capsys.readouterr().out

    def files(self) -> dict[str, bytes]:
        return {path.name: path.read_bytes() for path in sorted((self.root / "build").iterdir())}

    def parts(self, plan: MixPlan) -> PartData:
        found = PartData.load(self.context.cache.side_path(plan.master_key, PARTS))
        assert found is not None
        return found


def mp3_parts(data: bytes, kept: PartData) -> list[bytes]:
    """The MP3 ``data`` cut into its master's parts."""
    assert kept.mp3_sizes is not None
    ends = np.cumsum([int(s.sum()) for s in kept.mp3_sizes])
    assert ends[-1] == len(data)
    return [data[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]


def wav_samples(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype="float32", always_2d=True)[0]


@pytest.mark.parametrize(
    ("sr", "channels", "inserted"),
    [(16000, 1, 0.0), (22050, 2, 0.0), (16000, 2, 2.0), (22050, 1, 2.0)],
)
def test_an_edit_splices_only_the_touched_parts_into_the_published_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sr: int, channels: int, inserted: float
) -> None:
    y = programme(2 * parts.PART_SECONDS + 15.0, sr, channels)
    show = Show.at(tmp_path / "show")
    first = show.mix(y, sr)
    show.master(first, capsys)
    before = show.files()
    # An edit 130 s in: two seconds replaced by others of the same kind, or two more inserted.
    at = round(130.0 * sr)
    other = programme(60.0, sr, channels, seed=7)[10 * sr : 10 * sr + round((2.0 + inserted) * sr)]
    if inserted:
        mix = np.concatenate([y[:at], other, y[at:]])
        change = (at, len(mix))
    else:
        mix = y.copy()
        mix[at : at + len(other)] = other
        change = (at, at + len(other))
    second = show.mix(mix, sr, parent=(first.key, *change))
    out = show.master(second, capsys)
    # The part with the edit is made again, and for a longer mix every one after it too.
    bounds = parts.bounds(len(mix), sr)
    edited_part = next(i for i, (a, b) in enumerate(bounds) if a <= at < b)
    dirty = [i >= edited_part if inserted else i == edited_part for i in range(len(bounds))]
    parent = parts.Recipe(sr, channels, len(y), -2.3, 0.0, 1.0, 1.0, parts.PART_SECONDS)
    assert dirty_parts(parent, len(mix), *change) == dirty and 0 < edited_part
    seconds = sum(b - a for (a, b), made in zip(bounds, dirty, strict=True) if made) / sr
    assert f"master:ep  spliced {sum(dirty)} of {len(bounds)} parts ({seconds:.1f} s)" in out
    after = show.files()
    assert set(after) == {"ep.wav", "ep.mp3"}  # no temporary file left
    record = published.read(show.context, second)
    assert record is not None and (record.mix, record.master) == (second.key, second.master_key)
    assert record.intact()

    kept_outside_the_dirty_parts(before, after, bounds, dirty, show.parts(first), show.parts(second))
    measured_as_the_files_are(show, second, len(mix))
    made_by_its_recipe(show, second, mix, wav_samples(after["ep.wav"]), tmp_path)
    # And it is a full master of the edited mix, to 0.05 LU and 0.1 dB of true peak.
    whole = Show.at(tmp_path / "whole")
    assert "spliced" not in whole.master(whole.mix(mix, sr), capsys)
    for name in ("ep.wav", "ep.mp3"):
        one, two = _measure_file(show.root / "build" / name), _measure_file(whole.root / "build" / name)
        assert one.integrated == pytest.approx(two.integrated, abs=0.05)
        assert one.true_peak == pytest.approx(two.true_peak, abs=0.1)


def kept_outside_the_dirty_parts(
    before: dict[str, bytes],
    after: dict[str, bytes],
    bounds: list[tuple[int, int]],
    dirty: list[bool],
    kept: PartData,
    made: PartData,
) -> None:
    """The files ``after`` a splice are those ``before`` it, but in the ``dirty`` parts, which
    differ where the edit is; ``kept`` and ``made`` describe their parts."""
    old, new = wav_samples(before["ep.wav"]), wav_samples(after["ep.wav"])
    assert len(new) == bounds[-1][1]
    for (a, b), remade in zip(bounds, dirty, strict=True):
        if not remade:
            np.testing.assert_array_equal(new[a:b], old[a:b])
    changed = np.flatnonzero(np.any(old[: len(new)] != new[: len(old)], axis=1))
    assert len(changed)
    for sample in (changed[0], changed[-1]):
        assert dirty[next(i for i, (a, b) in enumerate(bounds) if a <= sample < b)]
    # The MP3: the published frames of every kept part, byte for byte, in order.
    old_mp3, new_mp3 = mp3_parts(before["ep.mp3"], kept), mp3_parts(after["ep.mp3"], made)
    for index, remade in enumerate(dirty):
        if not remade:
            assert new_mp3[index] == old_mp3[index]
    first = dirty.index(True)  # the part with the edit
    assert new_mp3[first] != old_mp3[first]
    assert len(mp3.frame_index(after["ep.mp3"])[0]) - 1 == sum(len(s) for s in made.mp3_sizes or [])


def measured_as_the_files_are(show: Show, plan: MixPlan, frames: int) -> None:
    """The parts' measurements kept for ``plan``'s master join into the files' own."""
    made = show.parts(plan)
    _, sr, channels = show.context.cache.info(plan.key)
    wav, mp3_file = (
        _measure_file(show.root / "build" / "ep.wav"),
        _measure_file(show.root / "build" / "ep.mp3"),
    )
    kept = joined(sr, channels, frames, made.wav)
    assert kept.integrated == pytest.approx(wav.integrated, abs=1e-3)
    assert kept.true_peak == pytest.approx(wav.true_peak, abs=1e-3)
    assert made.mp3 is not None and made.mp3_sizes is not None
    count = sum(len(s) for s in made.mp3_sizes)
    kept = joined(sr, channels, count * mp3.samples_per_frame(sr), made.mp3)
    assert kept.integrated == pytest.approx(mp3_file.integrated, abs=1e-4)
    assert kept.true_peak == pytest.approx(mp3_file.true_peak, abs=1e-4)


def made_by_its_recipe(show: Show, plan: MixPlan, mix: np.ndarray, wav: np.ndarray, tmp_path: Path) -> None:
    """The recipe kept for ``plan``'s spliced master makes exactly the samples of its ``wav``."""
    recipe = json.loads(show.context.cache.side_path(plan.master_key, RECIPE).read_text())["recipe"]
    master = np.zeros_like(mix)

    class Into:
        def write_at(self, start: int, block: np.ndarray) -> None:
            master[start : start + len(block)] = block

    parts.write_master(parts.Recipe(**recipe), show.context.cache.source(plan.key), Into())
    _, sr, channels = show.context.cache.info(plan.key)
    writer = WavWriter(tmp_path / "q.wav", sr, channels, "PCM_24", 1)
    np.testing.assert_array_equal(wav, writer.quantized(master))
    writer.close()


def edited(y: np.ndarray, sr: int, at: float, replacement: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """``y`` with ``replacement`` over it from ``at`` seconds, and the stretch changed."""
    start = round(at * sr)
    out = y.copy()
    out[start : start + len(replacement)] = replacement
    return out, (start, start + len(replacement))


@pytest.fixture
def first(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Show, MixPlan, np.ndarray]:
    """A show whose long programme (16 kHz mono) is mastered and published."""
    y = programme(2 * parts.PART_SECONDS + 15.0, 16000, 1)
    show = Show.at(tmp_path / "show")
    plan = show.mix(y, 16000)
    show.master(plan, capsys)
    return show, plan, y


def as_full_master(show: Show, tmp_path: Path, y: np.ndarray, capsys: pytest.CaptureFixture[str]) -> None:
    """``show``'s files are those of a full master of the mix ``y``, made in a show of its own."""
    whole = Show.at(tmp_path / "whole")
    whole.master(whole.mix(y, 16000), capsys)
    assert show.files() == whole.files()


@pytest.mark.parametrize(
    ("replace", "why"),
    [
        (
            lambda y: 2.0 * y[: 10 * 16000],
            "the mix's loudness moved 0.50 LU (a splice keeps within 0.02)",
        ),  # 10 s 6 dB louder
        # two seconds as loud as before, but full of peaks: the limiter takes the master down more
        (lambda y: programme(2.0, 16000, 1, seed=7), "the spliced master measured -16.0"),
    ],
)
def test_an_edit_that_moves_the_loudness_masters_in_full(
    first: tuple[Show, MixPlan, np.ndarray],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    replace: Any,
    why: str,
) -> None:
    show, plan, y = first
    mix, change = edited(y, 16000, 130.0, replace(y))
    out = show.master(show.mix(mix, 16000, parent=(plan.key, *change)), capsys)
    assert f"master:ep  mastered in full: {why}" in out and "spliced" not in out.replace("the spliced", "")
    assert set(show.files()) == {"ep.wav", "ep.mp3"}
    as_full_master(show, tmp_path, mix, capsys)


def test_a_published_file_touched_by_hand_masters_in_full(
    first: tuple[Show, MixPlan, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    show, plan, y = first
    wav = show.root / "build" / "ep.wav"
    stat = wav.stat()
    os.utime(wav, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same size, touched
    mix, change = edited(y, 16000, 130.0, 0.5 * y[: 2 * 16000])
    out = show.master(show.mix(mix, 16000, parent=(plan.key, *change)), capsys)
    assert "master:ep  mastered in full: the files in build/ changed since they were published" in out
    as_full_master(show, tmp_path, mix, capsys)


@pytest.mark.parametrize("lost", [PARTS, RECIPE, "landing", "record"])
def test_what_a_splice_needs_missing_masters_in_full(
    first: tuple[Show, MixPlan, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str], lost: str
) -> None:
    show, plan, y = first
    cache = show.context.cache
    if lost == "landing":  # a master made before splicing
        path = cache.side_path(plan.master_key, RECIPE)
        path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "landed"}))
    elif lost == "record":
        published.forget(show.context, plan)
    else:
        cache.side_path(plan.master_key, lost).unlink()
    mix, change = edited(y, 16000, 130.0, y[50 * 16000 : 52 * 16000])
    out = show.master(show.mix(mix, 16000, parent=(plan.key, *change)), capsys)
    said = {
        PARTS: "the master of the files in build/ is not in the cache",
        RECIPE: "the master of the files in build/ is not in the cache",
        "landing": "the master of the files in build/ is not in the cache",
        "record": "the files in build/ were not made from the mix this one was edited from",
    }[lost]
    assert f"master:ep  mastered in full: {said}" in out
    as_full_master(show, tmp_path, mix, capsys)


def test_a_failure_mid_splice_leaves_the_published_files_as_they_were(
    first: tuple[Show, MixPlan, np.ndarray],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    show, plan, y = first
    before = show.files()
    mix, change = edited(y, 16000, 130.0, y[50 * 16000 : 52 * 16000])
    second = show.mix(mix, 16000, parent=(plan.key, *change))
    made = parts.ParallelPasses._part

    def full_disk(self: parts.ParallelPasses, index: int, *args: Any) -> Any:
        made(self, index, *args)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(parts.ParallelPasses, "_part", full_disk)
    failed = build_master(show.context, second)
    assert "master:ep: cannot write" in str(failed) and "No space left on device" in str(failed)
    assert show.files() == before  # as published, and no temporary file beside them
    record = published.read(show.context, plan)
    assert record is not None and record.mix == plan.key and record.intact()
    monkeypatch.setattr(parts.ParallelPasses, "_part", made)  # the disk has room again
    assert "master:ep  spliced 1 of 6 parts (29.7 s)" in show.master(second, capsys)


def test_a_short_master_records_what_its_files_were_made_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    show = Show.at(tmp_path / "show")
    plan = show.mix(programme(20.0, 16000, 2), 16000)
    assert published.read(show.context, plan) is None
    show.master(plan, capsys)
    record = published.read(show.context, plan)
    assert record is not None and (record.mix, record.master) == (plan.key, plan.master_key)
    assert sorted(record.files) == sorted(os.fspath(p) for p in plan.outputs) and record.intact()
    assert not show.context.cache.side_path(plan.master_key, PARTS).exists()  # streamed: no parts


@pytest.mark.parametrize("sr", [16000, 48000])
def test_a_part_is_dirty_when_its_stretch_of_the_mix_meets_the_change(sr: int) -> None:
    frames = round((2 * parts.PART_SECONDS + 15.0) * sr)
    recipe = parts.Recipe(sr, 1, frames, -2.3, 0.0, 1.0, 1.0, parts.PART_SECONDS)
    cuts, spans = parts.bounds(frames, sr), parts.spans(frames, sr)
    assert spans[0] == (0, cuts[0][1] + 8192) and spans[1][0] == cuts[1][0] - parts.lead_in(sr)
    assert spans[-1] == (cuts[-1][0] - parts.lead_in(sr), frames)
    # a change just past part 0's tail touches part 1 alone; one sample earlier, part 0 too
    end0 = spans[0][1]
    assert dirty_parts(recipe, frames, end0, end0 + 1) == [False, True, False, False, False, False]
    assert dirty_parts(recipe, frames, end0 - 1, end0)[:2] == [True, True]
    # part 2's lead-in reaches back into part 1
    lead2 = spans[2][0]
    assert dirty_parts(recipe, frames, lead2, lead2 + 1)[1:3] == [True, True]
    assert dirty_parts(recipe, frames, 0, 0) == [False] * 6  # nothing changed
    # a longer mix: every part from the change on, and the last whatever it reads
    longer = frames + 2 * sr
    assert dirty_parts(recipe, longer, cuts[3][0] + 10, longer) == [False, False, True, True, True, True]
    assert dirty_parts(recipe, frames - sr, frames - sr, frames - sr)[-1]


def test_splices_in_turn_are_held_to_the_last_master_made_in_full(
    first: tuple[Show, MixPlan, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    show, plan, y = first
    sr = 16000
    # Each edit lifts four seconds by 0.8 dB: the programme by 0.014 LU, then by as much again.
    once, change = edited(y, sr, 130.0, 1.1 * y[130 * sr : 134 * sr])
    second = show.mix(once, sr, parent=(plan.key, *change))
    assert "master:ep  spliced 1 of 6 parts (29.7 s)" in show.master(second, capsys)
    twice, change = edited(once, sr, 60.0, 1.1 * once[60 * sr : 64 * sr])
    out = show.master(show.mix(twice, sr, parent=(second.key, *change)), capsys)
    assert "master:ep  mastered in full: the mix's loudness moved 0.03 LU (a splice keeps within 0.02)" in out
    as_full_master(show, tmp_path, twice, capsys)
    # and a master made in full starts a new line of splices
    thrice, change = edited(twice, sr, 200.0, 1.1 * twice[200 * sr : 204 * sr])
    third = show.mix(thrice, sr, parent=(show.mix(twice, sr).key, *change))
    assert "master:ep  spliced 1 of 6 parts (29.7 s)" in show.master(third, capsys)


@pytest.mark.parametrize("name", ["ep.wav", "ep.mp3"])
def test_a_published_file_that_is_not_what_was_recorded_masters_in_full(
    first: tuple[Show, MixPlan, np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    show, plan, y = first
    path = show.root / "build" / name
    stat = path.stat()
    if name == "ep.mp3":
        sizes = show.parts(plan).mp3_sizes
        assert sizes is not None
        at = sum(int(s.sum()) for s in sizes[:3])  # where part 3's frames start
    else:
        at = stat.st_size - 3 * 16000 * 3  # a sample of the last part's, three seconds from the end
    with open(path, "r+b") as fh:  # damaged in place, its size and time kept: the record trusts it
        fh.seek(at)
        fh.write(b"\x55\x55")  # in place of a frame header, or of two bytes of a sample
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert published.read(show.context, plan).intact()  # type: ignore[union-attr]
    mix, change = edited(y, 16000, 130.0, y[50 * 16000 : 52 * 16000])
    out = show.master(show.mix(mix, 16000, parent=(plan.key, *change)), capsys)
    said = {
        "ep.mp3": "ep.mp3 has no MP3 frame where part 3 starts",
        "ep.wav": "ep.wav is not the WAV its master recorded (part 5)",
    }[name]
    assert f"master:ep  mastered in full: {said}" in out
    as_full_master(show, tmp_path, mix, capsys)
