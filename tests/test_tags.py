# ruff: noqa: F811  # the fixtures imported from test_remote_shipments are a test's parameters
"""Tags in the published files ([metadata]): read back with mutagen and by parsing the RIFF chunks
here, and the audio under them unchanged to the sample (to the byte for WAV and MP3 frames)."""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from mutagen.flac import FLAC
from mutagen.id3 import ID3
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from mixdown.codecs import wav as wav_module
from mixdown.codecs.deliver import deliver
from mixdown.codecs.riff import append_chunks
from mixdown.codecs.tags import Chapter, Tags, id3_size, write_tags
from mixdown.codecs.wav import Source, WavWriter
from mixdown.dsp.loudness import measure
from mixdown.errors import ConfigError, TemplateError
from mixdown.loader import load_show
from mixdown.renderers import Registry
from mixdown.settings import PRESETS, Delivery

from .conftest import BASIC_TOML
from .test_build import doit, ran
from .test_deliver import SR, programme
from .test_remote_build import built_files, clones, server  # noqa: F401  # fixtures of the shipment test
from .test_remote_shipments import PUBLISHED, from_remote, masterings, shared, shows  # noqa: F401

# a 1x1 PNG: the smallest real image
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
TAGS = Tags("Morning news", "Kofi Mensah", "Test Show", "7", "2026-12-05", "Written by hand.\nTwo lines.")


def riff_chunks(path: Path) -> dict[bytes, bytes]:
    """Every top-level chunk of a RIFF/RF64 WAV, by id (the data chunk's size from ds64 in an RF64)."""
    data = path.read_bytes()
    assert data[8:12] == b"WAVE"
    rf64_data = struct.unpack_from("<Q", data, 28)[0] if data[:4] == b"RF64" else None
    riff_size = (
        struct.unpack_from("<Q", data, 20)[0]
        if rf64_data is not None
        else struct.unpack_from("<I", data, 4)[0]
    )
    assert riff_size == len(data) - 8
    found, pos = {}, 12
    while pos + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, pos)
        if kind == b"data" and rf64_data is not None:
            size = rf64_data
        found[kind] = data[pos + 8 : pos + 8 + size]
        pos += 8 + size + (size & 1)
    assert pos == len(data)
    return found


def info_fields(chunk: bytes) -> dict[str, str]:
    assert chunk[:4] == b"INFO"
    out, pos = {}, 4
    while pos < len(chunk):
        kind, size = struct.unpack_from("<4sI", chunk, pos)
        out[kind.decode()] = chunk[pos + 8 : pos + 8 + size].rstrip(b"\0").decode("utf-8")
        pos += 8 + size + (size & 1)
    return out


def bext_fields(chunk: bytes) -> dict[str, Any]:
    """The bext v2 fields, read by EBU Tech 3285 v2's offsets."""
    description, originator, reference, date, time = struct.unpack_from("<256s32s32s10s8s", chunk, 0)
    version = struct.unpack_from("<H", chunk, 346)[0]
    loudness = struct.unpack_from("<5h", chunk, 412)
    names = (
        "LoudnessValue",
        "LoudnessRange",
        "MaxTruePeakLevel",
        "MaxMomentaryLoudness",
        "MaxShortTermLoudness",
    )
    return {
        "Description": description.rstrip(b"\0").decode(),
        "Originator": originator.rstrip(b"\0").decode(),
        "OriginationDate": date.rstrip(b"\0").decode(),
        "Version": version,
        "Reserved": chunk[422:602],
        "CodingHistory": chunk[602:].decode(),
        **dict(zip(names, loudness, strict=True)),
    }


def delivered(tmp_path: Path, name: str, formats: tuple[str, ...], tags: Tags | None) -> dict[str, Path]:
    delivery = Delivery(**{**PRESETS["podcast"].__dict__, "formats": formats})
    made = deliver(
        Source.of_array(programme(), SR), tmp_path / name, delivery, target="master:show", tags=tags
    )
    return {path.suffix[1:]: path for path, _ in made}


@pytest.fixture
def pair(tmp_path: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """The same programme delivered untagged and tagged (with a cover)."""
    cover = tmp_path / "cover.png"
    cover.write_bytes(PNG)
    formats = ("wav", "flac", "mp3", "ogg", "opus")
    plain = delivered(tmp_path, "plain", formats, None)
    tagged = delivered(tmp_path, "tagged", formats, Tags(**{**TAGS.to_json(), "cover": str(cover)}))
    return plain, tagged


def test_tags_leave_the_audio_bit_exact_and_its_loudness_unchanged(pair: Any) -> None:
    plain, tagged = pair
    for fmt in ("wav", "flac", "ogg", "opus"):
        a, sr = sf.read(plain[fmt], dtype="float32", always_2d=True)
        b, sr_b = sf.read(tagged[fmt], dtype="float32", always_2d=True)
        assert sr == sr_b and a.shape == b.shape and np.array_equal(a, b), fmt
        meter = pyloudnorm.Meter(sr)
        assert meter.integrated_loudness(b.astype(np.float64)) == meter.integrated_loudness(
            a.astype(np.float64)
        )
    plain_wav, tagged_wav = plain["wav"].read_bytes(), tagged["wav"].read_bytes()
    assert tagged_wav[8 : len(plain_wav)] == plain_wav[8:]  # only the RIFF size and what follows differ
    plain_mp3, tagged_mp3 = plain["mp3"].read_bytes(), tagged["mp3"].read_bytes()
    head = id3_size(tagged_mp3[:10])
    assert head > 0 and id3_size(plain_mp3[:10]) == 0
    assert tagged_mp3[head:] == plain_mp3  # every MP3 frame identical


def test_mp3_carries_id3v24_frames(pair: Any) -> None:
    id3 = ID3(pair[1]["mp3"])
    assert id3.version == (2, 4, 0)
    assert str(id3["TIT2"]) == "Morning news" and str(id3["TPE1"]) == "Kofi Mensah"
    assert str(id3["TALB"]) == "Test Show" and str(id3["TRCK"]) == "7"
    assert str(id3["TDRC"]) == "2026-12-05"
    assert id3.getall("COMM")[0].text == ["Written by hand.\nTwo lines."]
    apic = id3.getall("APIC")[0]
    assert apic.data == PNG and apic.mime == "image/png" and apic.type == 3
    assert not id3.getall("CTOC")  # no chapters wired yet


@pytest.mark.parametrize("fmt", ["flac", "ogg", "opus"])
def test_flac_and_ogg_carry_vorbis_comments_and_the_cover(pair: Any, fmt: str) -> None:
    import base64

    from mutagen.flac import Picture

    opened = {"flac": FLAC, "ogg": OggVorbis, "opus": OggOpus}[fmt](pair[1][fmt])
    tags = opened.tags
    assert tags["TITLE"] == ["Morning news"] and tags["ARTIST"] == ["Kofi Mensah"]
    assert tags["ALBUM"] == ["Test Show"] and tags["TRACKNUMBER"] == ["7"] and tags["DATE"] == ["2026-12-05"]
    assert tags["COMMENT"] == ["Written by hand.\nTwo lines."]
    if fmt == "flac":
        picture = opened.pictures[0]
    else:
        picture = Picture(base64.b64decode(tags["METADATA_BLOCK_PICTURE"][0]))
    assert picture.data == PNG and picture.type == 3 and picture.mime == "image/png"


def test_wav_carries_riff_info_and_bext_v2_with_its_own_loudness(pair: Any) -> None:
    path = pair[1]["wav"]
    chunks = riff_chunks(path)
    assert info_fields(chunks[b"LIST"]) == {
        "INAM": "Morning news",
        "IART": "Kofi Mensah",
        "IPRD": "Test Show",
        "ICRD": "2026-12-05",
        "ICMT": "Written by hand.\nTwo lines.",
    }
    bext = bext_fields(chunks[b"bext"])
    assert bext["Version"] == 2 and bext["Reserved"] == bytes(180)
    assert (bext["Description"], bext["Originator"], bext["OriginationDate"]) == (
        "Morning news",
        "Kofi Mensah",
        "2026-12-05",
    )
    assert bext["CodingHistory"] == f"A=PCM,F={SR},W=24,M=stereo,T=mixdown\r\n"
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    found = measure(y, sr)
    reference = pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64))
    assert bext["LoudnessValue"] / 100 == pytest.approx(reference, abs=0.1)  # an independent meter
    assert bext["LoudnessValue"] == round(found.integrated * 100)
    assert bext["LoudnessRange"] == round(found.lra * 100)
    assert bext["MaxTruePeakLevel"] == round(found.true_peak * 100) and bext["MaxTruePeakLevel"] <= -100
    assert bext["MaxMomentaryLoudness"] == round(found.max_momentary * 100)
    assert bext["MaxShortTermLoudness"] == round(found.max_short_term * 100)
    assert bext["MaxMomentaryLoudness"] >= bext["MaxShortTermLoudness"] >= bext["LoudnessValue"] - 100


def test_silence_has_unknown_loudness_in_bext(tmp_path: Path) -> None:
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros((4800, 1), np.float32), SR, subtype="PCM_16")  # odd-sized data: a pad byte
    write_tags(path, "wav", Tags(title="Quiet"), measure(np.zeros((4800, 1), np.float32), SR))
    bext = bext_fields(riff_chunks(path)[b"bext"])
    assert [bext[k] for k in ("LoudnessValue", "MaxMomentaryLoudness", "MaxShortTermLoudness")] == [
        0x7FFF
    ] * 3
    assert np.array_equal(sf.read(path, dtype="int16")[0], np.zeros(4800, np.int16))


def test_rf64_files_take_chunks_after_their_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wav_module, "_RIFF_BYTES", 1000)  # a small file laid out as a large one is
    y = (0.1 * np.random.default_rng(3).standard_normal((3001, 2))).astype(np.float32)
    writer = WavWriter(tmp_path / "long.wav", SR, 2, "PCM_24", len(y))
    writer.write_at(0, y)
    writer.close()
    before = (tmp_path / "long.wav").read_bytes()
    assert before[:4] == b"RF64"
    append_chunks(tmp_path / "long.wav", b"ICMT" + struct.pack("<I", 3) + b"hi\0\0")
    chunks = riff_chunks(tmp_path / "long.wav")
    assert chunks[b"ICMT"] == b"hi\0"
    after = (tmp_path / "long.wav").read_bytes()
    assert after[28 : len(before)] == before[28:]  # the samples and the header's other fields as they were
    read, _ = sf.read(tmp_path / "long.wav", dtype="float32", always_2d=True)
    assert np.array_equal(read, writer.quantized(y))


def test_mp3_chapters_are_chap_frames_under_one_ctoc(tmp_path: Path) -> None:
    path = delivered(tmp_path, "show", ("mp3",), None)["mp3"]
    frames = path.read_bytes()
    chapters = [Chapter(0.0, 2.5, "Intro"), Chapter(2.5, 4.25, "World news"), Chapter(4.25, 6.0, "Close")]
    write_tags(path, "mp3", Tags(title="Show"), None, chapters)
    id3 = ID3(path)
    (toc,) = id3.getall("CTOC")
    assert toc.child_element_ids == ["chp0", "chp1", "chp2"]
    assert toc.flags & 1 and toc.flags & 2  # ordered, top level
    found = sorted(id3.getall("CHAP"), key=lambda chap: chap.start_time)
    assert [(c.element_id, c.start_time, c.end_time, str(c.sub_frames["TIT2"])) for c in found] == [
        ("chp0", 0, 2500, "Intro"),
        ("chp1", 2500, 4250, "World news"),
        ("chp2", 4250, 6000, "Close"),
    ]
    data = path.read_bytes()
    assert data[id3_size(data[:10]) :] == frames


METADATA = """
[metadata]
title = "{{ show }} for {{ name }}"
artist = "Newsroom"
episode = 12
date = "2026-12-05"
comment = "Made for {{ variant | default('everyone') }} by {{ script }}"
cover = "art/cover.png"

[scripts.extra.metadata]
title = "Extra edition"
"""


def tagged_show(show: Callable[..., Path], extra: str = METADATA, formats: str = '["wav", "mp3"]') -> Path:
    root = show(project_dot_toml=BASIC_TOML.replace('formats = ["wav"]', f"formats = {formats}") + extra)
    (root / "art").mkdir(exist_ok=True)
    (root / "art" / "cover.png").write_bytes(PNG)
    return root


def test_metadata_renders_per_variant_with_defaults_and_overrides(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = tagged_show(show)
    plan = load_show(root, registry=Registry(root, extra=fakes)).plan
    tags = {mix.name: mix.tags for mix in plan.mixes}
    anna, kofi, extra = tags["news/briefing@anna"], tags["news/briefing@kofi"], tags["news/extra"]
    assert anna is not None and kofi is not None and extra is not None
    assert (anna.title, kofi.title, extra.title) == (
        "Test Show for Anna",
        "Test Show for Kofi",
        "Extra edition",
    )
    assert (
        anna.comment == "Made for anna by news/briefing" and kofi.comment == "Made for kofi by news/briefing"
    )
    assert extra.comment == "Made for everyone by news/extra"
    assert anna.album == "Test Show" and anna.episode == "12" and anna.artist == "Newsroom"
    assert anna.cover == str(root / "art" / "cover.png") and anna.cover_sha256 is not None


def test_keys_do_not_move_with_metadata_but_stamps_do(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = tagged_show(show, extra="", formats='["wav", "mp3"]')
    plain = load_show(root, registry=Registry(root, extra=fakes)).plan
    assert all(mix.tags is None for mix in plain.mixes)
    root = tagged_show(show, formats='["wav", "mp3"]')
    tagged = load_show(root, registry=Registry(root, extra=fakes)).plan
    for a, b in zip(plain.mixes, tagged.mixes, strict=True):
        assert (a.key, a.master_key) == (b.key, b.master_key)
        assert a.stamp != b.stamp


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '[metadata]\ntitel = "x"\n',
            "project.toml:{last}: unknown key 'titel' in [metadata]; allowed: album, artist",
        ),
        (
            '[metadata]\ndate = "{{ name }}"\n',
            "project.toml:{last}: [metadata] date is 'Anna' for news/briefing@anna; give a date",
        ),
        (
            '[metadata]\ncover = "art/missing.png"\n',
            "project.toml:{last}: cover 'art/missing.png' does not exist; check",
        ),
        (
            '[metadata]\ncover = "../x.png"\n',
            "project.toml:{last}: cover '../x.png' points outside the show; keep",
        ),
        (
            '[metadata]\ncover = "art/{{ name }}.gif"\n',
            "cover 'art/Anna.gif' is not a .jpg or .png (for news/briefing@anna)",
        ),
        ("[metadata]\ntitle = 3\n", "project.toml:{last}: 'title' must be a string"),
        (
            '[metadata]\nepisode = "{{ nope }}"\n',
            "project.toml:{last}: [metadata] episode: 'nope' is undefined",
        ),
        ('[scripts.extra.metadata]\nartist = ["x"]\n', "project.toml:{last}: 'artist' must be a string"),
    ],
)
def test_metadata_errors_are_one_line(
    show: Callable[..., Path], fakes: dict[str, Any], extra: str, message: str
) -> None:
    root = tagged_show(show, extra="\n" + extra)
    last = len((root / "project.toml").read_text().splitlines())  # the line of the key at fault
    with pytest.raises((ConfigError, TemplateError)) as err:
        load_show(root, registry=Registry(root, extra=fakes)).plan  # noqa: B018  # planning renders the tags
    assert message.format(last=last) in str(err.value) and "\n" not in str(err.value)


RADIO = """
[deliveries.radio]
preset = "ebu-r128"
formats = ["wav", "flac"]
"""


AUDIO = (".wav", ".mp3", ".flac", ".ogg", ".opus")


def snapshot(build: Path) -> dict[str, bytes]:
    """The published audio files (not the captions and timelines beside them)."""
    return {p.name: p.read_bytes() for p in sorted(build.glob("*.*")) if p.suffix in AUDIO}


def test_a_tag_edit_tags_the_files_again_and_masters_nothing(
    show: Callable[..., Path], fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tagged_show(show, extra=RADIO)
    build, toml = root / "build" / "news", root / "project.toml"
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    untagged = snapshot(build)
    assert "briefing@anna.radio.flac" in untagged and not any(id3_size(d[:10]) for d in untagged.values())
    cached = sorted(p.name for p in (root / "cache").rglob("*") if p.is_file())

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("mastered again for a tag edit")

    monkeypatch.setattr("mixdown.actions.master.mastered", refuse)
    monkeypatch.setattr("mixdown.actions.deliver.mastered", refuse)
    fakes["fake"].calls.clear()
    fakes["noise"].calls.clear()
    toml.write_text(toml.read_text() + METADATA)  # tags added
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert fakes["fake"].calls == [] and fakes["noise"].calls == []
    assert sorted(t.split(":")[0] for t in ran(out)) == ["deliver"] * 3 + ["master"] * 3
    assert str(ID3(build / "briefing@anna.mp3")["TIT2"]) == "Test Show for Anna"
    assert FLAC(build / "briefing@kofi.radio.flac")["TITLE"] == ["Test Show for Kofi"]
    tagged = snapshot(build)

    toml.write_text(toml.read_text().replace('artist = "Newsroom"', 'artist = "The Desk"'))  # a tag edit
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert str(ID3(build / "extra.mp3")["TPE1"]) == "The Desk"
    assert info_fields(riff_chunks(build / "extra.radio.wav")[b"LIST"])["IART"] == "The Desk"
    assert bext_fields(riff_chunks(build / "extra.wav")[b"bext"])["Originator"] == "The Desk"
    for name, data in tagged.items():
        a, b = sf.read(build / name, dtype="float32")[0], sf.read(io.BytesIO(data), dtype="float32")[0]
        assert np.array_equal(a, b), name
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert ran(out) == []  # a second build is a no-op

    toml.write_text(toml.read_text().split("\n[metadata]")[0])  # tags removed: the files as they were
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    now = snapshot(build)
    assert {k: v for k, v in now.items() if not k.endswith(".flac")} == {
        k: v for k, v in untagged.items() if not k.endswith(".flac")
    }
    for name in ("briefing@anna.radio.flac", "extra.radio.flac"):
        assert not FLAC(build / name).tags and FLAC(build / name).pictures == []
    assert sorted(p.name for p in (root / "cache").rglob("*") if p.is_file()) == cached


def test_files_tagged_again_are_the_files_a_fresh_build_makes(
    show: Callable[..., Path], fakes: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tagged_show(show)
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    toml = root / "project.toml"
    toml.write_text(toml.read_text().replace("Newsroom", "The Desk"))
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    fresh = tmp_path_factory.mktemp("fresh")
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if path.is_file() and relative.parts[0] not in ("build", "cache", ".mixdown"):
            (fresh / relative).parent.mkdir(parents=True, exist_ok=True)
            (fresh / relative).write_bytes(path.read_bytes())
    code, out, err = doit(fresh, fakes)
    assert code == 0, out + err
    assert snapshot(root / "build" / "news") == snapshot(fresh / "build" / "news")


def test_tagged_files_of_a_long_master_still_splice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from .test_splice import Show, edited, parts
    from .test_splice import programme as long_programme

    monkeypatch.setattr(parts, "PART_SECONDS", 120.0)
    y = long_programme(2 * parts.PART_SECONDS + 15.0, 16000, 1)
    mix, change = edited(y, 16000, 130.0, 1.1 * y[130 * 16000 : 134 * 16000])
    found = {}
    for tags in (TAGS, None):  # the same splice, with tags and without
        show = Show.at(tmp_path / str(tags is None))
        plan = replace(show.mix(y, 16000), tags=tags)
        show.master(plan, capsys)
        out = show.master(replace(show.mix(mix, 16000, parent=(plan.key, *change)), tags=tags), capsys)
        assert "master:ep  spliced 1 of 6 parts" in out
        found[tags is None] = show.files()
    tagged, plain = found[False], found[True]
    assert str(ID3(io.BytesIO(tagged["ep.mp3"]))["TIT2"]) == "Morning news"
    assert tagged["ep.mp3"][id3_size(tagged["ep.mp3"][:10]) :] == plain["ep.mp3"]
    assert tagged["ep.wav"][8 : len(plain["ep.wav"])] == plain["ep.wav"][8:]


def test_shipments_from_the_remote_carry_the_tags(
    shows: tuple[Path, Path], shared: Path, masterings: list[str]
) -> None:
    a, b = shows
    for root in shows:  # both clones have the same [metadata]
        toml = root / "project.toml"
        toml.write_text(toml.read_text() + '\n[metadata]\ntitle = "The {{ rendition }}"\nartist = "Desk"\n')
    code, out, err = doit(a, {})
    assert code == 0, out + err
    assert FLAC(a / "build" / "news.loud.flac")["TITLE"] == ["The news"]
    masterings.clear()
    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert masterings == [] and sorted(from_remote(out)) == sorted(PUBLISHED), out + err
    assert built_files(b) == built_files(a)
    assert info_fields(riff_chunks(b / "build" / "news.wav")[b"LIST"])["IART"] == "Desk"

    for root in shows:  # a tag edit: tagged again by the author, fetched by the other
        toml = root / "project.toml"
        toml.write_text(toml.read_text().replace('artist = "Desk"', 'artist = "Newsroom"'))
    code, out, err = doit(a, {})
    assert code == 0, out + err
    assert masterings == [] and not from_remote(out)
    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert masterings == [] and sorted(from_remote(out)) == sorted(PUBLISHED)
    assert built_files(b) == built_files(a)
    assert FLAC(b / "build" / "news.loud.flac")["ARTIST"] == ["Newsroom"]


def test_mp3_chapters_follow_the_sections_and_a_new_title_tags_again(
    show: Callable[..., Path], fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tagged MP3 carries the rendition's chapters (those of chapters.json, to the ms); a new
    section title tags the files again, nothing mastered."""
    import json

    from .conftest import BRIEFING

    root = tagged_show(show)
    titled = BRIEFING.replace("## story voice=ben", '## story voice=ben title="The story"')
    (root / "stanzas" / "briefing.j2").write_text(titled.replace("## close", "## close chapter=no"))
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    build = root / "build" / "news"

    def chap_frames(path: Path) -> list[tuple[int, int, str]]:
        tags = ID3(path)
        ctoc = tags.getall("CTOC")
        assert len(ctoc) == 1
        frames = {f.element_id: f for f in tags.getall("CHAP")}
        assert list(ctoc[0].child_element_ids) == sorted(frames, key=lambda i: frames[i].start_time)
        return [
            (f.start_time, f.end_time, str(f.sub_frames["TIT2"]))
            for f in sorted(frames.values(), key=lambda f: f.start_time)
        ]

    for name in ("briefing@anna", "briefing@kofi"):
        listed = json.loads((build / f"{name}.chapters.json").read_text())["chapters"]
        assert [c["title"] for c in listed] == ["intro", "The story"]  # close opted out
        found = chap_frames(build / f"{name}.mp3")
        assert [t for _, _, t in found] == ["intro", "The story"]
        for (start, end, _), entry in zip(found, listed, strict=True):
            assert abs(start - 1000 * entry["startTime"]) <= 1 and abs(end - 1000 * entry["endTime"]) <= 1
        assert found[-1][1] <= 1000 * sf.info(build / f"{name}.wav").duration + 1

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("mastered again for a chapter title")

    monkeypatch.setattr("mixdown.actions.master.mastered", refuse)
    wav = (build / "briefing@anna.wav").read_bytes()
    (root / "stanzas" / "briefing.j2").write_text(titled.replace("The story", "Top story"))
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert not [t for t in ran(out) if t.startswith(("mix:", "section:", "voice:", "sfx:"))]
    assert [t for _, _, t in chap_frames(build / "briefing@anna.mp3")] == ["intro", "Top story", "close"]
    assert sf.read(io.BytesIO(wav))[0].tolist() == sf.read(build / "briefing@anna.wav")[0].tolist()
