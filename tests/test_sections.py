"""``section:`` targets: each section's speech and SFX pre-mixed on its own, and its preview.

A pre-mix must add, sample for sample, to the mix's voice and SFX buses at
the section's place; an edit must leave the other sections' pre-mixes alone.
"""

from __future__ import annotations

import os
import stat
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown import cli
from mixdown.actions.mix import mix_source, program_of
from mixdown.loader import Show, load_show
from mixdown.plan.model import MixPlan, section_sfx_key
from mixdown.renderers import Registry, RenderRequest, RenderResult
from mixdown.store.cache import RECORD

from .conftest import CountingVoice
from .test_build import doit, ran, voice_calls


class WideVoice(CountingVoice):
    """A fake TTS that speaks in stereo at 22.05 kHz (the voice bus is then not mono)."""

    def render(self, request: RenderRequest) -> RenderResult:
        mono = super().render(request)
        y = np.repeat(mono.audio, 2, axis=1)
        y[:, 1] *= 0.5
        return RenderResult(y, 22050)


TOML = """
[project]
name = "Sections"
voice = "anna"
sample_rate = {sr}
channels = {channels}

[voices.anna]
renderer = "fake"

[voices.ben]
renderer = "fake"
speed = 1.2

[voices.wide]
renderer = "wide"

[sfx.ding]
renderer = "noise"
seconds = 0.3
seed = 1

[sfx.swoosh]
renderer = "noise"
seconds = 0.5
seed = 3
offset = -0.25
gain_db = -6

[music.bed]
renderer = "noise"
seconds = 2.0
seed = 2
gain_db = -24

[modules.news]
{music}

[scripts.daily]
module = "news"
template = "stanzas/daily.j2"

[master]
formats = ["wav"]
stems = true
"""

# story's first line starts with a cue 0.25 s early: its pre-mix begins before the section
DAILY = """\
## intro
Hello there, this is the show. [sfx:ding]

Here is the news. [pause 0.2s] More of it.

## story voice=ben
[sfx:swoosh]The bridge opened today. [pause 0.3s] It is long.

[sfx:ding]

## wide voice=wide
A wide voice speaks here. [sfx:swoosh]

## gap
[sfx:ding]

[pause 0.4s]

## close
Goodbye. [pause 0.5s]
"""


def _fakes() -> dict[str, Any]:
    from .conftest import CountingSound

    return {"fake": CountingVoice(), "wide": WideVoice(), "noise": CountingSound()}


def _show(root: Path, *, sr: int = 48000, channels: int = 2, bed: bool = False, daily: str = DAILY) -> Path:
    music = 'music = "bed"' if bed else ""
    (root / "stanzas").mkdir(parents=True, exist_ok=True)
    (root / "project.toml").write_text(textwrap.dedent(TOML.format(sr=sr, channels=channels, music=music)))
    (root / "stanzas" / "daily.j2").write_text(daily)
    return root


def _loaded(root: Path, fakes: dict[str, Any]) -> Show:
    return load_show(root, registry=Registry(root, extra=fakes))


def _starts(show: Show, mix: MixPlan) -> list[int]:
    """Where each section starts in the mix, from the pre-mixes' lengths (no markers in these shows)."""
    settings, sr = mix.timeline.settings, mix.timeline.sample_rate
    cursor = round(settings["lead_in"] * sr) if mix.timeline.bed is not None else 0
    starts, started = [], False
    for key, section in zip(mix.section_keys, mix.timeline.sections, strict=True):
        if section.items and started:
            cursor += round(settings["section_gap"] * sr)
        started = started or bool(section.items)
        starts.append(cursor)
        cursor += show.context.cache.meta(key)["length"] if key is not None else 0
    return starts


@pytest.mark.parametrize(
    ("sr", "channels", "bed"), [(44100, 1, False), (44100, 2, True), (48000, 1, True), (48000, 2, False)]
)
def test_pre_mixes_add_up_to_the_mixs_voice_and_sfx_buses(
    tmp_path: Path, sr: int, channels: int, bed: bool
) -> None:
    fakes = _fakes()
    root = _show(tmp_path, sr=sr, channels=channels, bed=bed)
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    show = _loaded(root, fakes)
    [mix] = show.plan.mixes
    cache = show.context.cache
    mixed = list(program_of(show.context, mix).blocks())  # the mix's own buses, as it mixes them
    buses = {bus: np.concatenate([getattr(stems, bus) for stems in mixed]) for bus in ("voice", "sfx")}
    expected = {bus: np.zeros_like(buses[bus]) for bus in buses}
    metas = [cache.meta(key) if key is not None else None for key in mix.section_keys]
    assert [m is None for m in metas] == [False] * 5
    assert metas[1]["pre"] == round(0.25 * sr) and metas[0]["pre"] == 0  # the early swoosh
    assert [m["sfx"] for m in metas] == [True, True, True, True, False]
    for key, start, meta in zip(mix.section_keys, _starts(show, mix), metas, strict=True):
        voice, rate = cache.get(key)
        assert rate == sr and meta["kind"] == "section"
        assert voice.shape[1] == (channels if meta["name"] == "section:news/daily/wide" else 1)
        at = start - meta["pre"]
        expected["voice"][at : at + len(voice)] += voice  # a mono bus goes to every channel
        if meta["sfx"]:
            sfx, _ = cache.get(section_sfx_key(key))
            assert sfx.shape == (len(voice), channels)
            expected["sfx"][at : at + len(sfx)] += sfx
    for bus in buses:
        assert np.abs(buses[bus]).max() > 0.01
        np.testing.assert_allclose(buses[bus], expected[bus], rtol=0, atol=1e-6)


def test_pre_mix_has_the_sections_own_length(tmp_path: Path) -> None:
    fakes = _fakes()
    root = _show(tmp_path)
    assert doit(root, fakes)[0] == 0
    show = _loaded(root, fakes)
    [mix] = show.plan.mixes
    cache, sr = show.context.cache, 48000
    gap = cache.meta(mix.section_keys[3])  # a sting, then 0.4 s: no speech, the voice bus silent
    audio, _ = cache.get(mix.section_keys[3])
    assert gap["length"] == len(audio) == round(0.3 * sr) + round(0.4 * sr) and not audio.any()
    assert audio.shape[1] == 1 and cache.get(section_sfx_key(mix.section_keys[3]))[0].any()
    close = cache.meta(mix.section_keys[4])  # a line then 0.5 s: the pause lengthens the section
    frames, _, _ = cache.info(mix.section_keys[4])
    assert close["length"] == frames and close["pre"] == 0
    line = cache.info(next(k for k in show.plan.sections[mix.section_keys[4]].assets))[0]
    assert frames == round(line * sr / 16000) + round(0.5 * sr)


def _objects(show: Show) -> dict[str, tuple[int, int]]:
    """Each section pre-mix object (voice and SFX) by key: its inode and modification time."""
    cache, found = show.context.cache, {}
    for key in show.plan.sections:
        for k in (key, section_sfx_key(key)):
            if k in cache:
                st = os.stat(cache.path(k))
                found[k] = (st.st_ino, st.st_mtime_ns)
    return found


def test_renaming_and_reordering_sections_renders_nothing(tmp_path: Path) -> None:
    fakes = _fakes()
    root = _show(tmp_path)
    assert doit(root, fakes)[0] == 0
    first = _loaded(root, fakes)
    keys, before = first.plan.mixes[0].section_keys, _objects(first)
    for fake in fakes.values():
        fake.calls.clear()
    intro, story, wide, gap, close = DAILY.split("\n## ")
    renamed = [
        intro.replace("## intro", "## opening"),
        close,
        wide,
        gap,
        story.replace("story voice", "bridge voice"),
    ]
    (root / "stanzas" / "daily.j2").write_text("\n## ".join(renamed) + "\n")
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert all(fake.calls == [] for fake in fakes.values())
    # no section work: the mix, its master, and captions and timeline for the new order
    others = [t for t in ran(out) if not t.startswith(("mix:", "master:"))]
    assert others == ["captions:news/daily", "otio:news/daily"]
    after = _loaded(root, fakes)
    assert after.plan.mixes[0].section_keys == [keys[0], keys[4], keys[2], keys[3], keys[1]]
    assert after.plan.sections[keys[1]].task == "section:news/daily/bridge"  # named by its use now
    assert _objects(after) == before  # the same files: same inodes, same times


def test_an_edit_in_one_section_leaves_the_others_pre_mixes_alone(tmp_path: Path) -> None:
    fakes = _fakes()
    root = _show(tmp_path)
    assert doit(root, fakes)[0] == 0
    show = _loaded(root, fakes)
    keys, before = list(show.plan.mixes[0].section_keys), _objects(show)
    (root / "stanzas" / "daily.j2").write_text(DAILY.replace("It is long.", "It is very long."))
    code, out, _ = doit(root, fakes)
    assert code == 0
    assert voice_calls(fakes)[-1:] == ["It is very long."]
    assert {t for t in ran(out) if t.startswith("section:")} == {"section:news/daily/story"}
    edited = _loaded(root, fakes)
    now = edited.plan.mixes[0].section_keys
    assert now[1] != keys[1] and [k for i, k in enumerate(now) if i != 1] == [
        k for i, k in enumerate(keys) if i != 1
    ]
    after = _objects(edited)
    for index in (0, 2, 3, 4):
        for k in (keys[index], section_sfx_key(keys[index])):
            assert after.get(k) == before.get(k)  # same file: same inode, same mtime
    assert now[1] in after and section_sfx_key(now[1]) in after


def test_identical_sections_across_variants_are_one_target(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = show()
    code, out, _ = doit(root, fakes)
    assert code == 0
    plan = _loaded(root, fakes).plan
    anna, kofi = plan.mixes[0], plan.mixes[1]
    assert anna.section_keys[1] == kofi.section_keys[1]  # "story" is the same for both listeners
    assert anna.section_keys[0] != kofi.section_keys[0]
    assert [s.task for s in plan.sections.values()] == [
        "section:news/briefing/intro@anna",
        "section:news/briefing/story",
        "section:news/briefing/close@anna",
        "section:news/briefing/intro@kofi",
        "section:news/briefing/close@kofi",
        "section:news/extra/only",
    ]
    assert kofi.section_tasks[1] == "section:news/briefing/story"
    assert sorted(t for t in ran(out) if t.startswith("section:")) == sorted(
        s.task for s in plan.sections.values()
    )  # each made once


# a section long enough (4.6 s) that its MP3's padding does not move its loudness
LONG = """\
## only
The bridge opened today after many years of work by the city. [sfx:ding]

Crowds gathered on both banks to watch the first cars cross it slowly.

[pause 0.5s]

The mayor said it was a good day for everyone who lives along the river.
"""


def _loudness(path: Path) -> tuple[float, float]:
    from mixdown.codecs.mp3 import decode, frame_index
    from mixdown.dsp.master import measure

    if path.suffix == ".mp3":
        data = path.read_bytes()
        _, _, sr, channels = frame_index(data)
        y = decode(data, channels)
    else:
        y, sr = sf.read(path, dtype="float32", always_2d=True)
    found = measure(y, sr)
    return found.integrated_lufs, found.true_peak_dbtp


def test_previews_are_written_only_for_named_sections(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = show(stanzas__extra_dot_j2=LONG)
    assert doit(root, fakes)[0] == 0
    fakes["fake"].calls.clear()
    preview = root / "build" / "preview"
    assert not preview.exists()  # a plain build pre-mixes but previews nothing
    code, out, err = doit(root, fakes, "section:news/extra/only")
    assert code == 0, out + err
    assert sorted(p.relative_to(preview).as_posix() for p in preview.rglob("*.*")) == [
        "news/extra/only.mp3",
        "news/extra/only.wav",
    ]
    for path in preview.rglob("*.*"):
        lufs, peak = _loudness(path)
        assert lufs == pytest.approx(-16.0, abs=0.5) and peak <= -1.0
    wav = preview / "news" / "extra" / "only.wav"
    first = os.stat(wav).st_mtime_ns
    code, out, _ = doit(root, fakes, "section:news/extra/only")  # named again: written again
    assert code == 0 and ran(out) == ["section:news/extra/only"] and os.stat(wav).st_mtime_ns != first
    assert voice_calls(fakes) == []  # from the cached pre-mix
    code, out, _ = doit(root, fakes, "clean", "section:news/extra/only")
    assert code in (0, None) and not wav.exists()


def test_a_preview_over_the_bed_has_music_where_there_is_no_speech(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = show(stanzas__extra_dot_j2=LONG)
    assert doit(root, fakes, "section:news/extra/only")[0] == 0
    wav = root / "build" / "preview" / "news" / "extra" / "only.wav"
    dry, sr = sf.read(wav, dtype="float32", always_2d=True)
    code, out, err = doit(root, fakes, "section:news/extra/only", "--bed")
    assert code == 0, out + err
    wet, _ = sf.read(wav, dtype="float32", always_2d=True)
    lead_in, tail = round(1.5 * sr), round(2.0 * sr)
    assert len(wet) == len(dry) + lead_in + tail  # the section as a one-section programme
    rms = float(np.sqrt(np.mean(wet[: lead_in - sr // 10] ** 2)))
    assert rms > 10 ** (-50 / 20)  # the bed's intro before the first word
    lufs, peak = _loudness(wav)
    assert lufs == pytest.approx(-16.0, abs=0.5) and peak <= -1.0


# -- mixdown play ------------------------------------------------------------

RENDERERS = {
    "fake.py": """
import numpy as np
from mixdown.renderers import RendererBase, RenderResult

class Renderer(RendererBase):
    version = "1"
    kinds = frozenset({"voice"})
    params = {"speed": (int, float)}

    def render(self, request):
        t = np.arange(max(int(0.02 * len(request.text) * 16000), 800)) / 16000
        return RenderResult((0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)[:, None], 16000)
""",
    "noise.py": """
import numpy as np
from mixdown.renderers import RendererBase, RenderResult

class Renderer(RendererBase):
    version = "1"
    kinds = frozenset({"sfx", "music"})
    params = {"seconds": (int, float), "seed": int}

    def render(self, request):
        rng = np.random.default_rng(int(request.params.get("seed", 0)))
        n = int(float(request.params.get("seconds", 0.5)) * 24000)
        return RenderResult((0.2 * rng.standard_normal((n, 2))).astype(np.float32), 24000)
""",
}


@pytest.fixture
def playable(show: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test show with its renderers in its own renderers/ (as the command line loads them),
    and an empty PATH of players."""
    root = show()
    for name, source in RENDERERS.items():
        (root / "renderers").mkdir(exist_ok=True)
        (root / "renderers" / name).write_text(textwrap.dedent(source))
    players = tmp_path / "players"
    players.mkdir()
    monkeypatch.setenv("PATH", str(players))
    return root


def test_play_hands_the_preview_to_a_player(playable: Path, capsys: pytest.CaptureFixture[str]) -> None:
    players, said = Path(os.environ["PATH"]), playable / "played.txt"
    player = players / "mpv"
    player.write_text(f'#!/bin/sh\necho "$@" > "{said}"\n')
    player.chmod(player.stat().st_mode | stat.S_IXUSR)
    assert cli.main(["play", "section:news/extra/only", "-d", str(playable)]) == 0
    wav = playable / "build" / "preview" / "news" / "extra" / "only.wav"
    assert said.read_text().split() == [str(wav)] and wav.is_file()


def test_play_without_a_player_prints_the_path(playable: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["play", "section:news/briefing/story", "-d", str(playable)]) == 0
    out, err = capsys.readouterr()
    wav = playable / "build" / "preview" / "news" / "briefing" / "story.wav"
    assert out.splitlines()[-1] == str(wav) and wav.is_file()
    assert err.count("\n") == 1 and "no audio player on PATH" in err
    assert cli.main(["play", "section:news/nowhere", "-d", str(playable)]) == 2
    assert "section:news/nowhere: no such target" in capsys.readouterr().err


def test_list_info_and_forget_know_section_targets(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    root = show()
    assert doit(root, fakes)[0] == 0
    fakes["fake"].calls.clear()
    code, out, _ = doit(root, fakes, "list")
    assert code == 0 and any(line.split()[0] == "section" for line in out.splitlines())
    code, out, _ = doit(root, fakes, "list", "--all")
    names = [line.split()[0] for line in out.splitlines()]
    assert "section:news/briefing/story" in names and "section:news/extra/only" in names
    code, out, _ = doit(root, fakes, "info", "section:news/briefing/story")
    assert code == 0 and "up-to-date" in out and "voice:news/briefing/story/0" in out
    code, out, _ = doit(root, fakes, "forget", "section:news/briefing/story")
    assert code in (0, None)
    code, out, _ = doit(root, fakes)
    assert code == 0 and ran(out) == [] and voice_calls(fakes) == []  # still cached: nothing runs


def test_a_named_section_always_runs_and_waits_for_the_bed_with_bed(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    from mixdown.actions.section import build_section
    from mixdown.actions.tasks import task_dicts

    plan = _loaded(show(), fakes).plan
    everything = set(plan.assets) | set(plan.sections)
    named = "section:news/extra/only"
    dicts = task_dicts(plan, None, cached=everything, only_missing=True, previews={named}, bed=True)
    [task] = dicts["section"]  # the cached ones are left out, the named one is not
    assert task["name"] == "news/extra/only" and task["uptodate"] == [False]
    [(action, [context, job])] = task["actions"]
    assert action is build_section and context is None and job.preview and job.index == 0
    assert task["task_dep"] == []  # its assets and the bed are cached: not handed to doit
    dicts = task_dicts(plan, None, cached=set(), previews={named}, bed=True)
    tasks = {f"section:{t['name']}": t for t in dicts["section"]}
    assert tasks[named]["task_dep"][-3:] == ["music:bed/intro", "music:bed/main", "music:bed/outro"]
    assert [t["name"] for t in dicts["section"] if t["actions"][0][1][1].preview] == ["news/extra/only"]
    assert all(t["uptodate"] == [False] for t in tasks.values())
    assert tasks["section:news/briefing/story"]["task_dep"] == [
        "voice:news/briefing/story/0",
        "voice:news/briefing/story/1",
        "sfx:ding",
    ]


def test_play_a_compact_mix_hands_over_a_float_wav_of_it(
    playable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["play", "mix:news/briefing@kofi", "-d", str(playable)]) == 0
    path = Path(capsys.readouterr().out.splitlines()[-1])
    assert path == playable / "build" / "preview" / "mix-news" / "briefing@kofi.wav"
    show = _loaded(playable, _fakes())
    mix = next(m for m in show.plan.mixes if m.name == "news/briefing@kofi")
    # a show with variants keeps a short mix as a record: play mixed it again from its pre-mixes
    assert show.context.cache.meta(mix.key)["codec"] == RECORD
    played, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sf.info(str(path)).subtype == "FLOAT" and sr == show.plan.mixes[0].timeline.sample_rate
    np.testing.assert_array_equal(played, np.concatenate(list(mix_source(show.context, mix).blocks())))
    assert np.abs(played).max() > 0.1  # at the mix's level, not its stored steps'


@pytest.mark.parametrize("cores", [2, 3, 4])
def test_a_pre_mix_summed_in_stretches_on_every_core_is_the_one_summed_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int
) -> None:
    """A section is summed in a stretch per core: its objects hold the bytes one thread writes."""
    import mixdown.actions.section as section
    import mixdown.dsp.signal as signal

    fakes = _fakes()
    root = _show(tmp_path)
    monkeypatch.setattr(section.os, "cpu_count", lambda: 1)
    code, out, err = doit(root, fakes, "section")
    assert code == 0, out + err
    show = _loaded(root, fakes)
    [mix] = show.plan.mixes
    cache = show.context.cache
    keys = [k for key in mix.section_keys if key for k in (key, section_sfx_key(key)) if k in cache]
    whole = {key: cache.path(key).read_bytes() for key in keys}
    frames = {key: cache.info(key)[0] for key in keys}
    for key in keys:
        cache.path(key).unlink()
        cache.meta_path(key).unlink()
    # stretches of 1,000 frames: every section is cut, clips across the cuts made by both sides
    monkeypatch.setattr(signal, "BLOCK", 1000)
    monkeypatch.setattr(section.os, "cpu_count", lambda: cores)
    code, out, err = doit(root, fakes, "section")
    assert code == 0, out + err
    assert max(frames.values()) > cores * 1000  # cut into a stretch per core
    for key in keys:
        assert cache.path(key).read_bytes() == whole[key], cache.meta(key)["name"]
