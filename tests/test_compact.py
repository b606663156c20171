"""The cache's compact objects: mixes and section pre-mixes as 24-bit FLAC, float WAVs with holes.

A compact object must read back, through every reader, as whole 24-bit steps
of its scale (so a copy of part of it is exact), at every rate and channel
count a show may have and every length around the readers' block size; go
beyond its headroom only clipped and said; and a show with variants must
keep its mixes and pre-mixes compact by default, mastered to within the
quantization of what a float cache gives, in a fraction of the bytes.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown.actions.context import committed
from mixdown.actions.master import mastered
from mixdown.actions.streamed import STREAMED
from mixdown.codecs.flac24 import HEADROOM, steps24
from mixdown.dsp.signal import BLOCK
from mixdown.errors import AudioError
from mixdown.loader import load_show
from mixdown.renderers import Registry
from mixdown.store import cache as cache_module
from mixdown.store.cache import RECORD, Cache
from mixdown.store.files import sha256_of

from .test_build import doit, ran


def _programme(frames: int, channels: int, seed: int) -> np.ndarray:
    """Noise with a silent stretch and peaks past full scale, as a mix before mastering has."""
    rng = np.random.default_rng(seed)
    audio = (0.4 * rng.standard_normal((frames, channels))).astype(np.float32)
    audio[frames // 3 : frames // 2] = 0.0
    audio[:: max(1, frames // 7)] = np.float32(3.5)  # +11 dBFS: inside the headroom
    return audio


@pytest.fixture(params=["in memory", "in a file"])
def held(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where a cache object being written is held: in memory (a short one, every object these
    tests write) or in a temporary float WAV (a long one, as when none may be held in memory)."""
    if request.param == "in a file":
        monkeypatch.setattr(cache_module, "IN_MEMORY_BYTES", 0)
    return str(request.param)


def _whole_steps(audio: np.ndarray, scale: float) -> np.ndarray:
    """What a compact object of ``audio`` reads back as: its steps of ``scale / 2**23``."""
    return (steps24(audio, scale).astype(np.float32) * np.float32(scale / 2**23)).astype(np.float32)


@pytest.mark.parametrize(
    ("sr", "channels", "frames"),
    [
        (8000, 1, 1),
        (22050, 2, BLOCK - 1),
        (44100, 1, BLOCK),
        (48000, 2, BLOCK + 1),
        (96000, 6, 3 * 4096 + 5),
    ],
)
def test_a_compact_object_reads_back_as_whole_steps_through_every_reader(
    tmp_path: Path, sr: int, channels: int, frames: int, held: str
) -> None:
    cache = Cache(tmp_path)
    audio = _programme(frames, channels, seed=frames)
    key = "ab" + "1" * 62
    with cache.writer(key, sr, channels, frames=frames) as writer:
        writer.write_at(0, audio)
        path = writer.commit({"kind": "mix"}, digest=True, flac=True, scale=HEADROOM)
    assert writer.peak == pytest.approx(3.5)
    record = cache.meta(key)
    assert (record["codec"], record["scale"], record["sha256"]) == ("flac24", HEADROOM, sha256_of(path))
    assert sf.info(str(path)).format == "FLAC" and cache.info(key) == (frames, sr, channels)
    expected = _whole_steps(audio, HEADROOM)
    assert np.abs(expected - audio).max() <= HEADROOM * 2.0**-24  # half a step
    a, b = frames // 5, frames - frames // 7
    # the cache that wrote it reads what it kept in memory; another decodes the file: the same samples
    for reader in (cache, Cache(tmp_path)):
        np.testing.assert_array_equal(reader.get(key)[0], expected)
        np.testing.assert_array_equal(np.concatenate(list(reader.source(key).blocks(4096))), expected)
        mapped = reader.mapped(key)
        np.testing.assert_array_equal(mapped, expected)
        assert not mapped.flags.writeable
        np.testing.assert_array_equal(
            np.concatenate([*reader.source(key).between(a, b, 1000), expected[:0]]), expected[a:b]
        )
    # a copy of part of it, into a float object or a compact one, holds the same samples
    for flac in (False, True):
        other = ("cd" if flac else "ef") + "2" * 62
        with cache.writer(other, sr, channels, frames=frames) as writer:
            writer.copy_from(key, a, frames, at=0)  # a stretch, shifted
            writer.copy_from(key, 0, a, at=frames - a)
            writer.commit({"kind": "mix"}, flac=flac, scale=HEADROOM)
        np.testing.assert_array_equal(cache.get(other)[0], np.concatenate([expected[a:], expected[:a]]))


@pytest.mark.parametrize(
    ("sr", "channels", "frames"),
    [(8000, 1, 1), (22050, 2, BLOCK - 1), (44100, 1, BLOCK), (48000, 2, BLOCK + 1), (96000, 8, 3 * 4096 + 5)],
)
def test_an_object_kept_as_a_record_reads_as_its_flac_would_where_its_samples_are_held(
    tmp_path: Path, sr: int, channels: int, frames: int, held: str
) -> None:
    cache = Cache(tmp_path)
    audio = _programme(frames, channels, seed=frames + 1)
    key, flac = "ab" + "5" * 62, "cd" + "5" * 62
    half = frames // 2
    with cache.record_writer(key, sr, channels, frames=frames) as writer:
        writer.write_at(half, audio[half:])  # parts in any order, as the mixer's threads write them
        writer.write_at(0, audio[:half])
        path = writer.commit({"kind": "mix", "params": {"api_key": "sk-1"}}, scale=HEADROOM)
    with cache.writer(flac, sr, channels, frames=frames) as other:
        other.write(audio)
        other.commit({"kind": "mix"}, flac=True, scale=HEADROOM)
    assert writer.peak == pytest.approx(3.5)
    record = cache.meta(key)
    assert (record["codec"], record["scale"], record["frames"]) == (RECORD, HEADROOM, frames)
    assert (record["sha256"], record["size"]) == (sha256_of(path), 0) and path.stat().st_size == 0
    assert "sk-1" not in cache.meta_path(key).read_text()
    assert cache.info(key) == (frames, sr, channels) and cache.kept_as_record(key)
    expected = Cache(tmp_path).get(flac)[0]  # decoded from the FLAC file
    np.testing.assert_array_equal(expected, _whole_steps(audio, HEADROOM))
    np.testing.assert_array_equal(cache.get(key)[0], expected)
    np.testing.assert_array_equal(np.concatenate(list(cache.source(key).blocks(4096))), expected)
    np.testing.assert_array_equal(cache.mapped(key), expected)
    with cache.writer("ef" + "5" * 62, sr, channels, frames=frames) as copy:  # a copy of part of it
        copy.copy_from(key, half, frames, at=0)
        copy.copy_from(key, 0, half, at=frames - half)
        copy.commit({"kind": "mix"})
    np.testing.assert_array_equal(cache.get("ef" + "5" * 62)[0], np.roll(expected, -half, axis=0))
    # another build's cache lists it and knows its shape, but only its build can make its samples
    elsewhere = Cache(tmp_path)
    assert key in elsewhere.keys() and elsewhere.info(key) == (frames, sr, channels)
    for read in (elsewhere.get, elsewhere.source, elsewhere.mapped):
        with pytest.raises(AudioError, match=f"cache object {key[:12]}: it is kept as a record") as err:
            read(key)
        assert "\n" not in str(err.value) and "doit" in str(err.value)


def test_an_object_short_of_its_frames_or_failing_to_commit_leaves_nothing(
    tmp_path: Path, held: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path)
    key = "ab" + "7" * 62
    with cache.writer(key, 16000, 2, frames=100) as writer:
        writer.write(np.ones((99, 2), np.float32))
        with pytest.raises(ValueError, match="outside"):
            writer.write_at(99, np.ones((2, 2), np.float32))
        with pytest.raises(AudioError, match="99 frames written of 100; not stored"):
            writer.commit({"kind": "mix"}, flac=True, scale=HEADROOM)
    assert key not in Cache(tmp_path) and not [p for p in tmp_path.rglob("*") if p.is_file()]

    def failing(*args: Any, **kwargs: Any) -> float:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mixdown.codecs.flac24.write_flac24", failing)
    for flac in (True, False):  # the FLAC fails to be written; the float WAV does not
        with cache.writer(key, 16000, 2, frames=100) as writer:
            writer.write(np.ones((100, 2), np.float32))
            if flac:
                with pytest.raises(OSError, match="No space"):
                    writer.commit({"kind": "mix"}, flac=True, scale=HEADROOM)
            else:
                writer.commit({"kind": "mix"})
        left = sorted(p.name for p in tmp_path.rglob("*") if p.is_file())
        assert left == ([] if flac else [f"{key}.json", f"{key}.wav"])
    np.testing.assert_array_equal(Cache(tmp_path).get(key)[0], np.ones((100, 2), np.float32))


def test_a_record_short_of_its_frames_is_not_kept(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with cache.record_writer("ab" + "6" * 62, 16000, 2, frames=100) as writer:
        writer.write(np.ones((99, 2), np.float32))
        with pytest.raises(AudioError, match="99 frames written of 100; not stored"):
            writer.commit({"kind": "mix"}, scale=HEADROOM)
        with pytest.raises(AudioError, match="past its end"):
            writer.write_at(99, np.ones((2, 2), np.float32))
    assert "ab" + "6" * 62 not in Cache(tmp_path) and not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize(
    "values", [[0.0, -0.0, 1e-9, -1e-9], [3.9999999, -4.0, 4.0, 9.0, -9.0], [0.5, -0.25]]
)
def test_quantizing_in_place_gives_what_quantized_gives(values: list[float]) -> None:
    from mixdown.codecs.flac24 import quantize, quantized

    rng = np.random.default_rng(len(values))
    block = np.concatenate([np.array(values, np.float32), rng.standard_normal(4097).astype(np.float32)])
    half_step = np.float32(HEADROOM / 2**24)  # values on a rounding tie
    block = np.concatenate([block, np.arange(-5, 5, dtype=np.float32) * half_step]).reshape(-1, 1)
    want = quantized(block, HEADROOM)
    got = block.copy()
    assert quantize(got, HEADROOM) == pytest.approx(float(np.abs(block).max()))
    np.testing.assert_array_equal(got, want)


def test_beyond_the_headroom_is_clipped_and_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held: str
) -> None:
    cache = Cache(tmp_path)
    audio = _programme(20_000, 2, seed=1)
    audio[5_000] = [-9.0, 6.0]  # +19.1 dBFS
    context = SimpleNamespace(project=SimpleNamespace(compact=True))
    with cache.writer("ab" + "3" * 62, 16000, 2, frames=len(audio)) as writer:
        writer.write(audio)
        committed(context, writer, {"kind": "mix"}, "mix:show/loud")  # type: ignore[arg-type]
    stored = cache.get("ab" + "3" * 62)[0]
    assert stored[5_000, 0] == -HEADROOM and stored[5_000, 1] == pytest.approx(HEADROOM, abs=1e-6)
    np.testing.assert_array_equal(
        np.delete(stored, 5_000, 0), _whole_steps(np.delete(audio, 5_000, 0), HEADROOM)
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "mix:show/loud" in err and "+19.1 dBFS" in err and "compact = false" in err


def test_more_channels_than_flac_takes_stay_a_float_object(tmp_path: Path, held: str) -> None:
    cache = Cache(tmp_path)
    audio = _programme(5_000, 10, seed=2)
    with cache.writer("ab" + "4" * 62, 48000, 10, frames=len(audio)) as writer:
        writer.write(audio)
        writer.commit({"kind": "mix"}, flac=True, scale=HEADROOM)
    assert "codec" not in cache.meta("ab" + "4" * 62)
    assert cache.get("ab" + "4" * 62)[0].tobytes() == audio.tobytes()


def test_a_show_with_variants_is_cached_compactly_and_masters_as_a_float_cache_does(
    show: Any, fakes: dict[str, Any], tmp_path: Path
) -> None:
    root = show()
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    compact = load_show(root, registry=Registry(root, extra=fakes))
    cache = compact.context.cache
    objects = {key: cache.meta(key) for key in cache.keys()}
    kinds = {(m.get("kind"), m.get("codec"), m.get("scale")) for m in objects.values()}
    # a short mix is kept as a record, its master having read it from memory; pre-mixes as FLAC
    assert ("mix", RECORD, HEADROOM) in kinds and ("section", "flac24", HEADROOM) in kinds
    assert not {k for k in kinds if k[0] == "mix" and k[1:] != (RECORD, HEADROOM)}
    assert not {k for k in kinds if k[0] == "section" and k[1:] != ("flac24", HEADROOM)}
    assert all(cache.path(m.key).stat().st_size == 0 for m in compact.plan.mixes)
    # a short master is kept as a record, not as samples: its files were written as it was made
    assert not [m for m in objects.values() if m.get("kind") == "master"]
    for plan in compact.plan.mixes:
        record = json.loads(cache.side_path(plan.master_key, STREAMED).read_text())
        assert record["master"] == plan.master and record["frames"] == cache.info(plan.key)[0]
        assert abs(record["measured"][0] - plan.master["target_lufs"]) <= 0.1
    assert {
        m.get("codec") for m in objects.values() if m.get("kind") not in ("mix", "section", "master")
    } == {None}  # rendered assets stay as they were rendered
    built = {p.relative_to(root): sf.read(p, dtype="float64")[0] for p in (root / "build").rglob("*.wav")}
    compact_bytes = _bytes(cache, compact.plan)

    (root / "project.toml").write_text((root / "project.toml").read_text() + "\n[cache]\ncompact = false\n")
    before = sum(len(f.calls) for f in fakes.values())
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert sum(len(f.calls) for f in fakes.values()) == before  # the same assets: nothing rendered again
    floats = load_show(root, registry=Registry(root, extra=fakes))
    assert {m.get("codec") for m in map(cache.meta, _mixes_and_sections(floats.plan))} == {None}
    assert _bytes(cache, floats.plan) > 2 * compact_bytes
    for name, y in built.items():
        z = sf.read(root / name, dtype="float64")[0]
        assert z.shape == y.shape and np.abs(z - y).max() < 1e-5, name  # 24-bit steps: 6e-8
        assert np.abs(y).max() > 0.1


def test_a_short_mix_kept_as_a_record_is_mixed_again_to_the_samples_its_flac_held(
    show: Any, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixdown.actions import mix

    root = show()
    with monkeypatch.context() as patch:  # the mixes stored as 24-bit FLAC, as before records
        patch.setattr(mix, "mixed_as_record", lambda context, program: False)
        code, out, err = doit(root, fakes)
    assert code == 0, out + err
    stored = load_show(root, registry=Registry(root, extra=fakes))
    cache = stored.context.cache
    assert {cache.meta(m.key)["codec"] for m in stored.plan.mixes} == {"flac24"}
    flacs = {m.name: cache.get(m.key)[0] for m in stored.plan.mixes}
    for m in stored.plan.mixes:
        cache.remove(m.key)
    code, out, err = doit(root, fakes)  # mixed again, kept as records
    assert code == 0, out + err
    assert sorted(ran(out)) == sorted(f"mix:{m.name}" for m in stored.plan.mixes)

    compact = load_show(root, registry=Registry(root, extra=fakes))
    assert {compact.context.cache.meta(m.key)["codec"] for m in compact.plan.mixes} == {RECORD}
    mixed: list[str] = []
    parts = mix._mixed_in_parts
    monkeypatch.setattr(mix, "_mixed_in_parts", lambda p, w, t, *a: mixed.append(t) or parts(p, w, t, *a))
    for m in compact.plan.mixes:
        again = np.concatenate(list(mix.mix_source(compact.context, m).blocks()))
        np.testing.assert_array_equal(again, flacs[m.name])
        assert np.abs(again).max() > 0.1
    assert sorted(mixed) == sorted(f"mix:{m.name}" for m in compact.plan.mixes)  # each mixed again once
    for m in compact.plan.mixes:
        mix.mix_source(compact.context, m)
    assert len(mixed) == len(compact.plan.mixes)  # then held


def _mixes_and_sections(plan: Any) -> list[str]:
    return [m.key for m in plan.mixes] + [s for m in plan.mixes for s in m.section_keys if s is not None]


def _bytes(cache: Cache, plan: Any) -> int:
    return sum(cache.path(key).stat().st_size for key in set(_mixes_and_sections(plan)))


def test_a_flac_object_is_copied_from_at_any_frame(tmp_path: Path, held: str) -> None:
    cache = Cache(tmp_path)
    rng = np.random.default_rng(3)
    audio = np.clip(0.3 * rng.standard_normal((50_000, 2)), -0.99, 0.99).astype(np.float32)
    audio[10_000:30_000] = 0.0
    with cache.writer("ab" + "1" * 62, 16000, 2, frames=len(audio)) as writer:
        writer.write(audio)
        path = writer.commit({"kind": "stem"}, digest=True, flac=True)
    record = cache.meta("ab" + "1" * 62)
    assert record["codec"] == "flac24" and record["sha256"] == sha256_of(path)
    assert record["size"] == path.stat().st_size < len(audio) * 2 * 3 * 0.8  # silence costs little
    assert sf.info(str(path)).format == "FLAC" and cache.info("ab" + "1" * 62) == (50_000, 16000, 2)
    stored = cache.get("ab" + "1" * 62)[0]
    np.testing.assert_array_equal(steps24(stored), steps24(audio))
    assert np.abs(stored - audio).max() <= 2.0**-24
    with cache.writer("cd" + "2" * 62, 16000, 2, frames=40_000) as writer:
        writer.copy_from("ab" + "1" * 62, 5_000, 25_000, at=20_000)  # a stretch, shifted
        writer.copy_from("ab" + "1" * 62, 0, 20_000)
        writer.commit({"kind": "stem"})
    copied = cache.get("cd" + "2" * 62)[0]
    np.testing.assert_array_equal(copied[:20_000], stored[:20_000])
    np.testing.assert_array_equal(copied[20_000:], stored[5_000:25_000])


def test_silence_in_a_float_object_takes_no_disk(tmp_path: Path, held: str) -> None:
    from mixdown.codecs.wav import sounding_runs

    cache = Cache(tmp_path)
    sr, frames = 48000, 48000 * 20
    audio = np.zeros((frames, 2), np.float32)
    rng = np.random.default_rng(5)
    for at in (0, 7 * sr, 19 * sr):  # three half-second stings in twenty seconds of silence
        audio[at : at + sr // 2] = (0.2 * rng.standard_normal((sr // 2, 2))).astype(np.float32)
    audio[12 * sr, 1] = -0.0  # not silence, bit for bit: it is written
    key = "ef" + "3" * 62
    with cache.writer(key, sr, 2, frames=frames) as writer:
        for start in range(0, frames, 65536):
            writer.write_at(start, audio[start : start + 65536])
        path = writer.commit({"kind": "section", "bus": "sfx"}, digest=True)
    stored = cache.get(key)[0]
    assert stored.tobytes() == audio.tobytes()
    assert (
        cache.meta(key)["size"] == path.stat().st_size == 58 + frames * 8
    )  # a float WAV header and every frame
    on_disk = path.stat().st_blocks * 512
    assert on_disk < 0.1 * path.stat().st_size  # 1.5 s of 20 sound; a hole wherever the rest is
    assert sounding_runs(audio[12 * sr - 10 : 12 * sr + 10]) == [(10, 11)]
    assert sounding_runs(audio[: sr // 2 + 100], min_silence=101) == [(0, sr // 2)]
    assert sounding_runs(audio[: sr // 2 + 4000]) == [(0, sr // 2)]


def test_files_made_again_from_a_compact_master_are_those_first_made(
    show: Any, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixdown.dsp import master

    from .conftest import BASIC_TOML

    passes: list[int] = []
    stream = master.master_stream
    monkeypatch.setattr(master, "master_stream", lambda *a, **k: passes.append(1) or stream(*a, **k))

    root = show(project_dot_toml=BASIC_TOML.replace('formats = ["wav"]', 'formats = ["wav", "mp3"]'))
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    made = {p: p.read_bytes() for p in (root / "build").rglob("*") if p.suffix in (".wav", ".mp3")}
    assert len(made) == 6 and len(passes) == 3  # three renditions, two formats
    for path in made:
        path.unlink()
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert len(passes) == 6  # kept as records: mastered again, to the same bytes
    assert {p: p.read_bytes() for p in made} == made
    # What reads a master later (a delivery) has it made into the cache: the samples its files hold
    loaded = load_show(root, registry=Registry(root, extra=fakes))
    cache = loaded.context.cache
    for plan in loaded.plan.mixes:
        assert plan.master_key not in cache
        source, loudness, written = mastered(loaded.context, plan)
        target = plan.master["target_lufs"]
        assert written == [] and loudness.integrated_lufs == pytest.approx(target, abs=0.1)
        samples = np.concatenate(list(source.blocks()))
        wav = next(p for p in plan.outputs if p.suffix == ".wav")
        np.testing.assert_array_equal(steps24(samples), steps24(sf.read(wav, dtype="float32")[0]))
        assert plan.master_key in cache and cache.meta(plan.master_key)["codec"] == "flac24"
    assert len(passes) == 9  # each once, then read from the cache
    for plan in loaded.plan.mixes:
        mastered(loaded.context, plan)[0].blocks()
    assert len(passes) == 9


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_sounding_runs_are_the_frames_with_a_bit_set_whatever_the_channels(channels: int) -> None:
    """Runs of frames with any sample not +0.0, joined across silences under ``min_silence``."""
    from mixdown.codecs.wav import sounding_runs

    rng = np.random.default_rng(channels)
    frames = 40_000
    audio = (0.1 * rng.standard_normal((frames, channels))).astype(np.float32)
    for at, length in ((0, 3000), (5000, 2047), (9000, 2048), (20_000, 4), (30_000, 10_000)):
        audio[at : at + length] = 0.0
    audio[21_000:23_000, channels - 1] = 0.0  # one channel silent: the frames still sound
    audio[32_000, channels // 2] = -0.0  # not +0.0, bit for bit: it sounds
    audio[36_000] = 1e-45  # the smallest subnormal sounds too
    loud = [bool(np.any(audio[i].view(np.uint32))) for i in range(frames)]
    edges = [i for i in range(frames + 1) if (i < frames and loud[i]) != (i > 0 and loud[i - 1])]
    runs = list(zip(edges[0::2], edges[1::2], strict=True))
    for min_silence in (1, 5, 2048, 4000):
        expected = [runs[0]]
        for a, b in runs[1:]:
            if a - expected[-1][1] >= min_silence:
                expected.append((a, b))
            else:
                expected[-1] = (expected[-1][0], b)
        assert sounding_runs(audio, min_silence=min_silence) == expected
        if min_silence == 2048:  # 2,047 silent frames are written with their neighbours, 2,048 are not
            assert expected == [(3000, 9000), (11_048, 32_001), (36_000, 36_001)]
    assert sounding_runs(np.zeros((100, channels), np.float32)) == []
    assert sounding_runs(audio[3000:5000]) == [(0, 2000)]
