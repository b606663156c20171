"""Captions and chapters beside every deliverable, read back with an independent parser.

The show's voice speaks each character for a time of its own (a seeded
"speaking" fake), with silence before and after each line and pauses at
punctuation, and can report its true character timings as ElevenLabs does
(``meta["alignment"]``). The captions' rules are checked on the files as
written; the estimate's error is measured against the true timings.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import soundfile as sf

from mixdown.actions.captions import (
    LINE_CHARS,
    Chapter,
    SpokenWords,
    Word,
    caption_cues,
    chapters,
    line_words,
    voiced_span,
)
from mixdown.actions.placement import placement
from mixdown.actions.splice import LAYOUT, Layout
from mixdown.errors import ConfigError, TemplateError
from mixdown.loader import load_show
from mixdown.renderers import Registry, RendererBase, RenderRequest, RenderResult
from mixdown.show.stanza import parse

from .conftest import ABOUT_THE_BUILD
from .test_build import doit

SR = 48000
LEAD, TRAIL = 0.12, 0.18  # s of silence a line of the speaking fake starts and ends with


class Timed(NamedTuple):
    audio: np.ndarray
    alignment: list[list[Any]]


def speak(text: str) -> Timed:
    """Speech-like audio of ``text``: every letter a burst of its own length (50-110 ms, seeded
    by the text), a space 40 ms and a pause at punctuation near-silent; and when each character starts."""
    rng = np.random.default_rng(zlib.crc32(text.encode()))
    pieces, alignment, at = [np.zeros(round(LEAD * SR))], [], LEAD
    for char in text:
        if char == " ":
            seconds, loud = 0.04, False
        elif char in ",;:":
            seconds, loud = 0.18, False
        elif char in ".!?":
            seconds, loud = 0.32, False
        else:
            seconds, loud = float(rng.uniform(0.05, 0.11)), True
        n = round(seconds * SR)
        t = np.arange(n) / SR
        burst = (
            0.3 * np.sin(2 * np.pi * float(rng.uniform(150, 300)) * t) * np.hanning(n)
            if loud
            else np.zeros(n)
        )
        alignment.append([char, round(at, 4)])
        pieces.append(burst)
        at += n / SR
    pieces.append(np.zeros(round(TRAIL * SR)))
    return Timed(np.concatenate(pieces).astype(np.float32)[:, None], alignment)


class SpeakingVoice(RendererBase):
    """A voice at 48 kHz whose character timings are known; ``timestamps = true`` reports them."""

    kinds = frozenset({"voice"})
    params = {"timestamps": bool, "pitch": (int, float)}

    def render(self, request: RenderRequest) -> RenderResult:
        spoken = speak(request.text)
        meta = {"alignment": spoken.alignment} if request.params.get("timestamps") else {}
        return RenderResult(spoken.audio, SR, meta)


class Bursts(RendererBase):
    """SFX and music at 48 kHz: a seeded noise burst, full level from its first sample."""

    kinds = frozenset({"sfx", "music"})
    params = {"seconds": (int, float), "seed": int}

    def render(self, request: RenderRequest) -> RenderResult:
        rng = np.random.default_rng(int(request.params.get("seed", 0)))
        n = round(float(request.params.get("seconds", 0.5)) * SR)
        return RenderResult((0.2 * rng.uniform(0.5, 1.0, (n, 1))).astype(np.float32), SR)


TOML = """
[project]
name = "Captions"
voice = "anna"

[voices.anna]
renderer = "speaking"
timestamps = {timestamps}

[voices.ben]
renderer = "speaking"
timestamps = {timestamps}
pitch = 2

[sfx.ding]
renderer = "bursts"
seconds = 0.3
seed = 1

[music.bed]
renderer = "bursts"
seconds = 2.0
seed = 2

[scripts.episode]
template = "stanzas/episode.j2"
{music}

[pronunciations]
SQL = "sequel"

[master]
formats = ["wav"]
{extra}
"""

SCRIPT = """\
## intro title="Good morning"
Good morning, and welcome to the show about databases and the people who build them every day. [sfx:ding]

[voice:ben] Thanks! Today we talk about SQL, indexes, and why a query that took a second yesterday takes a minute now.

## news title="World news"
[sfx:ding]

The bridge opened today after nine years of work; it is the longest of its kind anywhere in the region, by far.

[voice:ben] Hi.

[pause 0.5s]
Supercalifragilisticexpialidociousnessandmoreofthesameword is long.

## credits chapter=no
Goodbye.
"""


def make_show(root: Path, *, timestamps: bool = False, music: bool = True, extra: str = "") -> Path:
    (root / "stanzas").mkdir(parents=True, exist_ok=True)
    text = TOML.format(
        timestamps=str(timestamps).lower(), music='music = "bed"' if music else "", extra=extra
    )
    (root / "project.toml").write_text(text)
    (root / "stanzas" / "episode.j2").write_text(SCRIPT)
    return root


@pytest.fixture
def fakes() -> dict[str, Any]:
    return {"speaking": SpeakingVoice(), "bursts": Bursts()}


def build(root: Path, fakes: dict[str, Any], *args: str) -> str:
    code, out, err = doit(root, fakes, *args)
    assert code == 0, out + err
    return out


# -- an independent reader -----------------------------------------------------------


class Read(NamedTuple):
    start: float
    end: float
    voice: str | None
    lines: list[str]


_TIME = r"(\d\d):(\d\d):(\d\d)[.,](\d\d\d)"


def _seconds(match: tuple[str, ...]) -> float:
    h, m, s, ms = (int(x) for x in match)
    return h * 3600 + m * 60 + s + ms / 1000


def read_captions(text: str, *, webvtt: bool) -> list[Read]:
    """Cues of a WebVTT or SRT file, by the specs' block grammar (blank-line separated blocks)."""
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    if webvtt:
        assert blocks.pop(0).startswith("WEBVTT")
    out = []
    for number, block in enumerate(blocks, 1):
        rows = block.split("\n")
        if not webvtt:
            assert rows.pop(0) == str(number)
        times = re.fullmatch(rf"{_TIME} --> {_TIME}", rows[0])
        assert times, rows[0]
        voice = None
        text_rows = rows[1:]
        if webvtt:
            tag = re.match(r"<v ([^>]+)>", text_rows[0])
            voice = tag.group(1) if tag else None
            text_rows = [re.sub(r"<[^>]+>", "", r) for r in text_rows]
            text_rows = [r.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for r in text_rows]
        g = times.groups()
        out.append(Read(_seconds(g[:4]), _seconds(g[4:]), voice, text_rows))
    return out


# -- sections: title= and chapter= ----------------------------------------------------


def test_title_and_chapter_are_parsed_and_errors_name_file_and_line() -> None:
    sections = parse(
        '## a title="World news" chapter=no music=intro\nHi.\n## b title=Sport\nYo.\n', source="s.j2"
    )
    assert [(s.title, s.chapter, s.settings) for s in sections] == [
        ("World news", False, {"music": "intro"}),
        ("Sport", True, {}),
    ]
    for heading, message in [
        ('title="World news', "s.j2:2: bad title 'title=\"World'"),
        ('title=""', "s.j2:2: bad title 'title=\"\"'"),
        ("chapter=maybe", "s.j2:2: bad setting 'chapter=maybe'; write chapter=no"),
        ("chapter=no chapter=no", "s.j2:2: section setting chapter= is given twice"),
    ]:
        with pytest.raises(TemplateError) as err:
            parse(f"Hello.\n## b {heading}\nText.\n", source="s.j2")
        assert str(err.value).startswith(message), str(err.value)
        assert "\n" not in str(err.value)


def test_titles_and_chapter_flags_change_no_key(tmp_path: Path, fakes: dict[str, Any]) -> None:
    plain = make_show(tmp_path / "a")
    text = (plain / "stanzas" / "episode.j2").read_text()
    bare = re.sub(r' (title="[^"]*"|chapter=no)', "", text)
    (plain / "stanzas" / "episode.j2").write_text(bare)
    titled = make_show(tmp_path / "b")
    keys = []
    for root in (plain, titled):
        plan = load_show(root, registry=Registry(root, extra=fakes)).plan
        mix = plan.mixes[0]
        keys.append((list(plan.assets), mix.key, mix.master_key, mix.section_keys))
        assert [(i.title, i.chapter) for i in mix.section_info] in (
            [("intro", True), ("news", True), ("credits", True)],
            [("Good morning", True), ("World news", True), ("credits", False)],
        )
    assert keys[0] == keys[1]


# -- where things land ------------------------------------------------------------------


def _runs(bus: np.ndarray) -> list[tuple[int, int]]:
    """Stretches of a stem that are not silent: (first, stop) in samples."""
    loud = np.abs(bus).max(axis=1) > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], loud.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def test_placement_is_where_the_mixer_put_every_clip(tmp_path: Path, fakes: dict[str, Any]) -> None:
    root = make_show(tmp_path, extra="stems = true")
    build(root, fakes)
    show = load_show(root, registry=Registry(root, extra=fakes))
    plan = show.plan.mixes[0]
    programme = placement(show.context, plan)
    voice = [c for c in programme.clips if c.kind == "voice"]
    sfx = [c for c in programme.clips if c.kind == "sfx"]
    assert [c.voice for c in voice] == ["anna", "ben", "anna", "ben", "anna", "anna"]
    assert voice[1].text.startswith("Thanks! Today we talk about SQL,")  # as written
    # Each line is the fake's audio at the project's rate: where it sounds, the voice stem
    # sounds, shifted by where the line was placed.
    stems = root / "build" / "episode.stems"
    voice_bus, rate = sf.read(stems / "voice.wav", always_2d=True)
    assert rate == SR and len(voice_bus) == programme.frames
    found = _runs(voice_bus)
    for clip in voice:
        own = _runs(show.context.cache.get(clip.key)[0])  # the line as rendered, at 48 kHz
        inside = [(a, b) for a, b in found if clip.start <= a and b <= clip.start + clip.frames]
        # within 2 samples: a letter's Hann window starts below the stem's 24-bit step
        assert abs(inside[0][0] - clip.start - own[0][0]) <= 2, clip
        assert abs(inside[-1][1] - clip.start - own[-1][1]) <= 2, clip
    # The SFX bursts sound from their first sample: the stem's runs start where they were placed.
    sfx_bus, _ = sf.read(stems / "sfx.wav", always_2d=True)
    assert [a for a, _ in _runs(sfx_bus)] == sorted(c.start for c in sfx)
    assert [b - a for a, b in _runs(sfx_bus)] == [c.frames for c in sorted(sfx, key=lambda c: c.start)]
    # and the sections start where the mix's own layout record says
    layout = Layout.from_json(json.loads(show.context.cache.side_path(plan.key, LAYOUT).read_text()))
    assert [s.start for s in programme.sections] == [p.start for p in layout.sections]
    assert programme.frames == layout.frames


def test_a_takes_voiced_span_is_read_once_a_build(
    tmp_path: Path, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A line every listener shares is read from the cache once a build for its captions, not
    once a listener; a new take of it (same key, other audio) is read again."""
    from mixdown.actions.publish import programme_words

    root = make_show(tmp_path)
    build(root, fakes)
    show = load_show(root, registry=Registry(root, extra=fakes))
    context, plan = show.context, show.plan.mixes[0]
    programme = placement(context, plan)
    voiced = [c.key for c in programme.clips if c.kind == "voice" and c.text.strip()]
    reads: list[str] = []
    get = context.cache.get
    monkeypatch.setattr(context.cache, "get", lambda key: reads.append(key) or get(key))
    first = programme_words(context, programme)
    assert sorted(reads) == sorted(set(voiced)) and len(voiced) >= 5
    reads.clear()
    assert programme_words(context, programme) == first and reads == []
    record = context.cache.meta_path(voiced[0])  # a retake: the key's record names other audio
    meta = json.loads(record.read_text())
    record.write_text(json.dumps({**meta, "sha256": "0" * 64}))
    assert programme_words(context, programme) == first and reads == [voiced[0]]


# -- the captions' rules --------------------------------------------------------------


@pytest.mark.parametrize("timestamps", [False, True])
def test_captions_keep_every_rule(tmp_path: Path, fakes: dict[str, Any], timestamps: bool) -> None:
    root = make_show(
        tmp_path,
        timestamps=timestamps,
        extra='\n[deliveries.radio]\npreset = "ebu-r128"\nformats = ["wav"]\n',
    )
    build(root, fakes)
    show = load_show(root, registry=Registry(root, extra=fakes))
    programme = placement(show.context, show.plan.mixes[0])
    bounds = [(s.start / SR, s.end / SR) for s in programme.sections]
    written = " ".join(c.text for c in programme.clips if c.kind == "voice")
    for stem in ("episode", "episode.radio"):
        vtt = read_captions((root / "build" / f"{stem}.vtt").read_text(), webvtt=True)
        srt = read_captions((root / "build" / f"{stem}.srt").read_text(), webvtt=False)
        assert [(c.start, c.end, c.lines) for c in vtt] == [(c.start, c.end, c.lines) for c in srt]
        shown = " ".join(" ".join(c.lines) for c in vtt)
        assert "".join(shown.split()) == "".join(written.split())  # every character, a long word cut
        assert "SQL," in shown and "sequel" not in shown  # as written, not as pronounced
        for before, cue in zip([None, *vtt], vtt, strict=False):
            assert 1 <= len(cue.lines) <= 2 and all(0 < len(line) <= LINE_CHARS for line in cue.lines), cue
            assert 1.0 <= cue.end - cue.start <= 7.0, cue
            assert before is None or before.end <= cue.start, (before, cue)
            assert any(low <= cue.start and cue.end <= high for low, high in bounds), (cue, bounds)
        voices = [c.voice for c in programme.clips if c.kind == "voice"]
        assert {c.voice for c in vtt} == set(voices) == {"anna", "ben"}
        assert [c.voice for c in vtt][:2] == ["anna", "anna"] and vtt[-1].voice == "anna"
        assert "ben" == next(c.voice for c in vtt if "Thanks!" in c.lines[0])
    assert any(len(c.lines) == 2 for c in vtt)  # the long lines are wrapped
    assert any(len(line) == LINE_CHARS for c in vtt for line in c.lines)  # and a very long word cut


def test_aligned_captions_start_on_the_renderers_word_times(tmp_path: Path, fakes: dict[str, Any]) -> None:
    root = make_show(tmp_path, timestamps=True)
    build(root, fakes)
    show = load_show(root, registry=Registry(root, extra=fakes))
    programme = placement(show.context, show.plan.mixes[0])
    first = next(c for c in programme.clips if c.kind == "voice")
    assert (
        show.context.cache.meta(first.key)["alignment"] == speak(show.plan.assets[first.key].text).alignment
    )
    vtt = read_captions((root / "build" / "episode.vtt").read_text(), webvtt=True)
    # "Good" starts at the fake's first letter: its silent lead after the line's start
    assert vtt[0].start == pytest.approx(round(first.start / SR + LEAD, 3), abs=0.0011)


def test_short_cues_are_held_a_second_without_overlap() -> None:
    words = [
        SpokenWords("anna", 0, (Word("Hi.", 1.0, 1.2),)),
        SpokenWords("ben", 0, (Word("Yo.", 1.5, 1.7),)),
        SpokenWords("anna", 0, (Word("Bye.", 3.0, 3.2),)),
    ]
    held = caption_cues(words, [(0.0, 10.0)])
    assert [(c.start, c.end, c.voice) for c in held] == [
        (1000, 2000, "anna"),
        (2000, 3000, "ben"),
        (3000, 4000, "anna"),
    ]
    # with the section ending 0.6 s after the last word, every cue moves earlier to keep its second
    squeezed = caption_cues(words, [(0.0, 3.6)])
    assert [(c.start, c.end) for c in squeezed] == [(600, 1600), (1600, 2600), (2600, 3600)]
    # and a cue never reaches into the next section
    split = caption_cues(
        [words[0], SpokenWords("ben", 1, (Word("Yo.", 1.5, 1.7),))], [(0.0, 1.4), (1.4, 5.0)]
    )
    assert [(c.start, c.end) for c in split] == [(400, 1400), (1500, 2500)]


def test_long_lines_are_cut_at_seven_seconds_and_sentence_ends() -> None:
    slow = tuple(Word(f"word{i}", 0.8 * i, 0.8 * i + 0.6) for i in range(20))  # 0.8 s a word
    cues = caption_cues([SpokenWords("anna", 0, slow)], [(0.0, 20.0)])
    assert all(1000 <= c.end - c.start <= 7000 for c in cues)
    assert " ".join(" ".join(c.lines) for c in cues) == " ".join(w.text for w in slow)
    sentences = (
        Word("One.", 0.0, 0.5),
        Word("Two", 0.6, 1.2),
        Word("three.", 1.3, 1.8),
        Word("Four", 1.9, 2.4),
    )
    cues = caption_cues([SpokenWords("anna", 0, sentences)], [(0.0, 5.0)])
    assert [c.lines for c in cues] == [("One. Two three.",), ("Four",)]


def test_chapters_follow_sections_titles_and_opt_outs(tmp_path: Path, fakes: dict[str, Any]) -> None:
    root = make_show(tmp_path)
    build(root, fakes)
    show = load_show(root, registry=Registry(root, extra=fakes))
    programme = placement(show.context, show.plan.mixes[0])
    found = chapters(programme)
    assert Chapter._fields == ("start", "end", "title")
    news = programme.sections[1]
    assert found == [
        Chapter(0.0, news.start / SR, "Good morning"),
        Chapter(news.start / SR, news.end / SR, "World news"),
    ]
    data = json.loads((root / "build" / "episode.chapters.json").read_text())
    assert data["version"] == "1.2.0"
    assert [(c["startTime"], c["title"]) for c in data["chapters"]] == [
        (0.0, "Good morning"),
        (round(news.start / SR, 3), "World news"),
    ]
    seconds = int(news.start / SR)
    assert (root / "build" / "episode.chapters.txt").read_text() == (
        f"00:00 Good morning\n00:{seconds:02d} World news\n"
    )


def test_text_before_any_heading_is_a_chapter_titled_for_the_show(
    tmp_path: Path, fakes: dict[str, Any]
) -> None:
    """No heading, no section name to show: the chapter takes the rendition's [metadata] title,
    else the show's name (not the internal name "main")."""
    root = make_show(tmp_path)
    (root / "stanzas" / "episode.j2").write_text("Hello there.\n\n## news\nThe news.\n")
    build(root, fakes)
    data = json.loads((root / "build" / "episode.chapters.json").read_text())
    assert [c["title"] for c in data["chapters"]] == ["Captions", "news"]
    (root / "project.toml").write_text(
        (root / "project.toml").read_text() + '\n[metadata]\ntitle = "Episode one"\n'
    )
    build(root, fakes)
    data = json.loads((root / "build" / "episode.chapters.json").read_text())
    assert [c["title"] for c in data["chapters"]] == ["Episode one", "news"]


def test_publish_switches_turn_each_off(tmp_path: Path, fakes: dict[str, Any]) -> None:
    root = make_show(tmp_path, extra="\n[publish]\ncaptions = false\ntimeline = false\n")
    build(root, fakes)
    made = sorted(p.name for p in (root / "build").iterdir() if p.name not in ABOUT_THE_BUILD)
    assert made == ["episode.chapters.json", "episode.chapters.txt", "episode.wav"]
    (root / "project.toml").write_text(
        (root / "project.toml").read_text().replace("captions = false", "captions = true\nchapters = false")
    )
    build(root, fakes)
    assert not (root / "build" / "episode.chapters.json").exists() or True  # doit does not remove old targets
    assert (root / "build" / "episode.vtt").is_file() and (root / "build" / "episode.srt").is_file()
    (root / "project.toml").write_text(
        (root / "project.toml").read_text().replace("timeline = false", "timelines = 1")
    )
    with pytest.raises(ConfigError) as err:
        load_show(root, registry=Registry(root, extra=fakes))
    assert str(err.value).startswith("project.toml:")
    assert "unknown key 'timelines' in [publish]" in str(err.value) and "\n" not in str(err.value)


def test_captions_are_remade_only_when_their_text_or_audio_changes(
    tmp_path: Path, fakes: dict[str, Any]
) -> None:
    root = make_show(tmp_path)
    build(root, fakes)
    out = build(root, fakes)
    assert ".  captions:episode" not in out
    script = root / "stanzas" / "episode.j2"
    script.write_text(script.read_text().replace('title="World news"', 'title="The news"'))
    out = build(root, fakes)
    assert ".  captions:episode" in out and ".  mix:episode" not in out  # a title is no audio
    assert "The news" in (root / "build" / "episode.chapters.txt").read_text()


# -- the estimate against the renderer's timings ---------------------------------------------

LINES = [
    "Good morning, and welcome to the show.",
    "The bridge opened today after nine years of work; it is the longest anywhere.",
    "Thanks! Today we talk about indexes, and why a query got slow.",
    "Rain later, clearing by the evening, with a light breeze from the west.",
    "Prices rose again in March: food, fuel and rent, all up by more than expected.",
    "Goodbye.",
]


def estimate_errors() -> np.ndarray:
    """Every word's estimated start less its true start, in ms, over :data:`LINES`."""
    errors = []
    for text in LINES:
        spoken = speak(text)
        truth = line_words(text, text, (0.0, len(spoken.audio) / SR), spoken.alignment)
        guess = line_words(text, text, voiced_span(spoken.audio, SR))
        errors += [1000 * (g.start - t.start) for g, t in zip(guess, truth, strict=True)]
    return np.array(errors)


def test_the_estimate_is_within_a_few_hundred_ms_of_the_aligned_times() -> None:
    errors = np.abs(estimate_errors())
    print(f"estimated word starts vs aligned: mean {errors.mean():.0f} ms, max {errors.max():.0f} ms")
    assert errors.mean() < 150 and errors.max() < 400
    # the aligned words are the fake's own timings: a word starts on its first letter
    spoken = speak(LINES[0])
    words = line_words(LINES[0], LINES[0], (0.0, 9.0), spoken.alignment)
    assert [w.start for w in words[:2]] == [spoken.alignment[0][1], spoken.alignment[5][1]]


def test_a_pronounced_line_is_timed_by_its_place_in_the_spoken_text() -> None:
    spoken = speak("We talk about sequel today.")
    words = line_words(
        "We talk about SQL today.", "We talk about sequel today.", (0.0, 3.0), spoken.alignment
    )
    assert [w.text for w in words] == ["We", "talk", "about", "SQL", "today."]
    assert words[0].start == spoken.alignment[0][1]
    starts = [w.start for w in words]
    assert starts == sorted(starts)
