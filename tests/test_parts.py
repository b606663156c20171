"""Long programmes mastered in parallel parts: positional WAVs, parts that join, spliced MP3s."""

from __future__ import annotations

import hashlib
import io
import shutil
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown.codecs import mp3, parts
from mixdown.codecs import wav as audio
from mixdown.codecs.deliver import _measure_file
from mixdown.codecs.energies import Energies
from mixdown.codecs.lame import to_pcm16
from mixdown.codecs.wav import Source, WavWriter
from mixdown.dsp.loudness import Meter, PartMeter, joined, part_grid, part_loudness
from mixdown.dsp.signal import db_to_gain
from mixdown.errors import AudioError
from mixdown.loader import load_show
from mixdown.renderers import Registry

from .conftest import ABOUT_THE_BUILD, BASIC_TOML
from .test_build import doit

SR = 48000


def programme(seconds: float, seed: int = 1) -> np.ndarray:
    """Noise bursts of changing level with digital silence between them, peaks near full scale."""
    rng = np.random.default_rng(seed)
    n = round(seconds * SR)
    y = rng.standard_normal((n, 2)).astype(np.float32) * 0.1
    envelope = np.repeat(rng.uniform(0.05, 1.0, n // 4800 + 1), 4800)[:n].astype(np.float32)
    envelope[(np.arange(n) // 24000) % 5 == 4] = 0.0  # every fifth half second is silent
    y *= envelope[:, None]
    y[rng.integers(0, n, 20)] = 0.95  # isolated peaks, some near part boundaries by chance
    return y


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24", "PCM_16"])
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_writer_puts_blocks_in_place_in_any_order(tmp_path: Path, subtype: str, channels: int) -> None:
    y = programme(1.0)[:, :channels] * 1.2  # some samples past full scale: clipped in PCM
    path = tmp_path / "out.wav"
    writer = WavWriter(path, SR, channels, subtype, len(y))
    for start in (30001, 0, 12345):  # out of order, odd sizes
        stop = {0: 12345, 12345: 30001, 30001: len(y)}[start]
        writer.write_at(start, y[start:stop])
    writer.close()
    back, sr = sf.read(path, dtype="float32", always_2d=True)
    assert sr == SR and sf.info(str(path)).subtype == subtype
    np.testing.assert_array_equal(back, writer.quantized(y))
    if subtype == "FLOAT":
        np.testing.assert_array_equal(back, y)
        return
    step = 2.0 ** -(23 if subtype == "PCM_24" else 15)
    inside = np.abs(y) < 1.0 - step
    assert np.abs(back - y)[inside].max() <= step / 2 and np.abs(back).max() <= 1.0


def test_wav_writer_switches_to_rf64_past_the_riff_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audio, "_RIFF_BYTES", 1000)  # as if 4 GiB were 1000 bytes
    y = programme(0.5)
    writer = WavWriter(tmp_path / "big.wav", SR, 2, "FLOAT", len(y))
    writer.write_at(0, y)
    writer.close()
    assert sf.info(str(tmp_path / "big.wav")).format == "RF64"
    np.testing.assert_array_equal(sf.read(tmp_path / "big.wav", dtype="float32")[0], y)


def test_parts_measured_alone_join_into_the_whole(tmp_path: Path) -> None:
    y = programme(37.3)
    whole = Meter(SR, 2)
    whole.add(y)
    expected = whole.result()
    grid = part_grid(SR) * 3
    starts = list(range(0, len(y), grid * 17))
    measured = []
    for start in starts:
        stop = min(start + grid * 17, len(y))
        lead = min(start, 2 * part_grid(SR) * 5)
        measured.append(part_loudness(y[start - lead : stop + 100], SR, lead, stop - start))
    found = joined(SR, 2, len(y), measured)
    assert len(starts) > 3
    assert found.integrated == pytest.approx(expected.integrated, abs=1e-4)
    assert found.lra == pytest.approx(expected.lra, abs=1e-3)
    assert found.max_momentary == pytest.approx(expected.max_momentary, abs=1e-4)
    assert found.true_peak == pytest.approx(expected.true_peak, abs=1e-5)
    assert found.sample_peak == pytest.approx(expected.sample_peak, abs=1e-6)


def test_a_part_metered_in_blocks_of_any_size_reads_as_in_one(tmp_path: Path) -> None:
    y = programme(9.7, seed=3)
    lead, n = part_grid(SR) * 10, part_grid(SR) * 70  # 1 s of lead-in, 7 s of part, 1.7 s after
    z = y[: lead + n + 5000]
    hops, sample, true = part_loudness(z, SR, lead, n)
    rng = np.random.default_rng(4)
    for _ in range(3):
        meter = PartMeter(SR, 2, lead, n)
        cuts = np.sort(rng.integers(0, len(z), 40))
        for block in np.split(z, cuts):  # sizes from 0 up, across the lead-in's and the part's ends
            meter.add(block)
        found = meter.result()
        np.testing.assert_allclose(found[0], hops, rtol=1e-9)
        assert found[1:] == (sample, true)
    # at the stream's start (no lead-in) and its end (no context after: zeros)
    whole = Meter(SR, 2)
    whole.add(y)
    alone = joined(SR, 2, len(y), [part_loudness(y, SR, 0, len(y))]).true_peak
    assert alone == pytest.approx(whole.result().true_peak, abs=1e-6)


def test_mp3_encoder_fed_in_blocks_writes_the_frames_of_one_call() -> None:
    if not mp3.available():
        pytest.skip("no LAME API")
    y = programme(3.0, seed=5) * 0.5
    whole = mp3.encode(y, SR, bitrate=128, vbr=False, quality=7)
    encoder = mp3.Encoder(SR, 2, bitrate=128, vbr=False, quality=7)
    try:
        data = b"".join(encoder.encode(block) for block in np.array_split(y, [1, 1000, 70001, 70002]))
        data += encoder.finish()
    finally:
        encoder.close()
    assert data == whole and len(mp3.frame_index(data)[0]) > 100


@pytest.mark.parametrize(("sr", "bitrate", "channels"), [(48000, 128, 1), (24000, 48, 1), (48000, 192, 2)])
def test_mp3_encoder_keeps_the_level_and_takes_mono_as_mono(sr: int, bitrate: int, channels: int) -> None:
    """The decoded MP3 is at the level it was given (LAME's presets would scale it by 0.95-0.97),
    and a mono programme (an audiobook, Alexa's 24 kHz) is one channel to LAME, not every
    other sample."""
    if not mp3.available():
        pytest.skip("no LAME API")
    t = np.arange(3 * sr) / sr
    y = np.repeat((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[:, None], channels, axis=1)
    encoder = mp3.Encoder(sr, channels, bitrate=bitrate, vbr=False, quality=5)
    try:
        data = b"".join(encoder.encode(block) for block in np.array_split(y, [1, 1000, 70001]))
        data += encoder.finish()
    finally:
        encoder.close()
    assert data == mp3.encode(y, sr, bitrate=bitrate, vbr=False, quality=5)
    offsets, spf, rate, found = mp3.frame_index(data)
    assert (rate, found) == (sr, channels) and (len(offsets) - 1) * spf == pytest.approx(len(y), abs=3 * spf)
    decoded = mp3.decode(data, channels)[sr : 2 * sr]
    assert np.argmax(np.abs(np.fft.rfft(decoded[:, 0]))) == 440  # 1 Hz bins: the tone, at its pitch
    level = 20 * np.log10(np.sqrt(np.mean(decoded**2)) / (0.3 / np.sqrt(2)))
    assert abs(level) < 0.02  # dB


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_16"])
def test_blocks_between_read_any_range_of_a_file(tmp_path: Path, subtype: str) -> None:
    y = programme(2.0, seed=6)
    path = tmp_path / "x.wav"
    sf.write(path, y, SR, subtype=subtype)  # libsndfile's own header (a float WAV has a fact chunk)
    expected = sf.read(path, dtype="float32", always_2d=True)[0]
    assert (audio.float_samples_at(path) is not None) == (subtype == "FLOAT")
    blocks = list(audio.blocks_between(path, 1234, 90001, 10000))
    assert [len(b) for b in blocks] == [10000] * 8 + [8767]
    np.testing.assert_array_equal(np.concatenate(blocks), expected[1234:90001])
    if subtype == "FLOAT":
        with open(path, "r+b") as fh:  # a file cut short
            fh.truncate(fh.seek(0, 2) - 8)
        with pytest.raises(AudioError, match="ends before frame"):
            list(audio.blocks_between(path, 0, len(y), 1 << 16))


def test_a_float_wav_being_written_reads_back_what_was_written(tmp_path: Path) -> None:
    y = programme(1.0, seed=9)
    writer = WavWriter(tmp_path / "out.wav", SR, 2, "FLOAT", len(y))
    writer.write_at(0, y[:30000])
    back = list(writer.blocks(100, 30000, 7000))
    assert [len(b) for b in back] == [7000] * 4 + [1900]
    np.testing.assert_array_equal(np.concatenate(back), y[100:30000])
    writer.close()
    pcm = WavWriter(tmp_path / "pcm.wav", SR, 2, "PCM_24", len(y))
    with pytest.raises(ValueError, match="FLOAT"):
        list(pcm.blocks(0, 10))
    pcm.close()


def test_a_wav_range_written_in_blocks_has_the_crc_of_its_bytes(tmp_path: Path) -> None:
    y = programme(1.0, seed=7)
    writer = WavWriter(tmp_path / "out.wav", SR, 2, "PCM_24", len(y))
    crc = 0
    for start in range(1000, 40000, 7777):
        crc = writer.write_at(start, y[start : min(start + 7777, 40000)], crc)
    assert crc == writer.crc(1000, 39000) != writer.crc(1000, 38999)
    writer.close()


def one_pass(path: Path) -> Any:
    """The whole file decoded by libsndfile and metered in one stream."""
    info = sf.info(str(path))
    meter = Meter(info.samplerate, info.channels)
    for block in sf.blocks(str(path), blocksize=1 << 16, dtype="float32", always_2d=True):
        meter.add(block)
    return meter.result()


@pytest.mark.parametrize("reservoir", [False, True])
def test_an_mp3_measured_in_parts_reads_as_in_one_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reservoir: bool
) -> None:
    import lameenc

    y = programme(20.0)
    path = tmp_path / "one.mp3"
    if reservoir:  # what the streamed path's encoder writes: Alexa's 48 kbps mono at 24 kHz
        encoder = lameenc.Encoder()
        encoder.set_in_sample_rate(24000)
        encoder.set_channels(1)
        encoder.set_bit_rate(48)
        encoder.set_quality(5)
        mono = to_pcm16(y[::2, :1] * 0.8)
        path.write_bytes(encoder.encode(mono.tobytes()) + encoder.flush())
    else:
        path.write_bytes(mp3.encode(y * 0.8, SR, bitrate=192, vbr=False, quality=7))
    monkeypatch.setattr(mp3, "_PART_SECONDS", 1.2)
    parallel = mp3.measure(path)
    single = one_pass(path)
    assert parallel is not None and parallel == _measure_file(path)
    assert parallel.integrated == pytest.approx(single.integrated, abs=1e-4)
    assert parallel.true_peak == pytest.approx(single.true_peak, abs=1e-5)
    assert parallel.lra == pytest.approx(single.lra, abs=1e-3)


def test_frame_index_finds_every_frame_and_refuses_other_data() -> None:
    data = mp3.encode(programme(2.0), SR, bitrate=192, vbr=False, quality=7)
    offsets, spf, sr, channels = mp3.frame_index(data)
    assert (spf, sr, channels) == (1152, SR, 2)
    assert offsets[-1] == len(data) and np.all(np.diff(offsets) == 576)  # CBR 192 kbps at 48 kHz
    decoded = mp3.decode(data, 2)
    assert len(decoded) == (len(offsets) - 1) * spf
    with pytest.raises(Exception, match="no Layer III frame at byte 0"):
        mp3.frame_index(b"RIFF" + data)


def parted_pass(
    tmp_path: Path,
    y: np.ndarray,
    seconds: float,
    gain_db: float = 0.0,
    mix_hops: np.ndarray | None = None,
    trim: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Run one parted pass over ``y``: (the master, the decoded spliced MP3, the measurement)."""
    from mixdown.store.cache import Cache

    mix = tmp_path / "mix.wav"
    sf.write(mix, y, SR, subtype="FLOAT")
    cache = Cache(tmp_path / "cache")
    key = "ab" + "1" * 62
    wav = WavWriter(tmp_path / "master.wav", SR, 2, "PCM_24", len(y))
    passes = parts.ParallelPasses(
        Source.of_file(mix),
        SR,
        2,
        len(y),
        -1.3,
        wav=wav,
        mp3=(tmp_path / "master.mp3", 192, False, 7),
        seconds=seconds,
        mix_hops=mix_hops,
    )
    found, _, _ = passes(gain_db, 1.0, trim)
    wav.close()
    passes.check_wav_header()
    # hashed as its parts were done: the file's bytes
    assert passes.wav_sha256 == hashlib.sha256((tmp_path / "master.wav").read_bytes()).hexdigest()
    # The master's samples, made again from its recipe (as a later delivery has them made)
    assert passes.recipe is not None and parts.Recipe.from_record(passes.recipe.record()) == passes.recipe
    writer = cache.writer(key, SR, 2, frames=len(y))
    parts.write_master(passes.recipe, Source.of_file(mix), writer)
    writer.commit({"kind": "master"})
    master, _ = cache.get(key)
    np.testing.assert_array_equal(sf.read(tmp_path / "master.wav", dtype="float32")[0], wav.quantized(master))
    decoded = mp3.decode((tmp_path / "master.mp3").read_bytes(), 2)
    single = one_pass(tmp_path / "master.mp3")  # what the check measured as the parts were spliced
    assert passes.mp3_found.integrated == pytest.approx(single.integrated, abs=1e-4)
    assert passes.mp3_found.true_peak == pytest.approx(single.true_peak, abs=1e-5)
    return master, decoded, found


def test_a_mono_programme_masters_in_parts_with_a_mono_mp3(tmp_path: Path) -> None:
    from mixdown.store.cache import Cache

    if not mp3.available():
        pytest.skip("no LAME API")
    t = np.arange(14 * SR) / SR  # tones in bursts: in the band a 128 kbps MP3 keeps whole
    tones = sum(a * np.sin(2 * np.pi * f * t) for a, f in ((0.5, 220.0), (0.3, 1000.0), (0.2, 3100.0)))
    y = (tones * (0.6 + 0.3 * np.sin(2 * np.pi * 0.5 * t))).astype(np.float32)[:, None]  # over the gates
    sf.write(tmp_path / "mix.wav", y, SR, subtype="FLOAT")
    cache = Cache(tmp_path / "cache")
    passes = parts.ParallelPasses(
        Source.of_file(tmp_path / "mix.wav"), SR, 1, len(y), -1.3,
        mp3=(tmp_path / "master.mp3", 128, False, 7), seconds=4.0,
    )  # fmt: skip
    found, _, _ = passes(6.0, 1.0, 1.0)
    assert passes.recipe is not None
    writer = cache.writer("cd" + "2" * 62, SR, 1, frames=len(y))
    parts.write_master(passes.recipe, Source.of_file(tmp_path / "mix.wav"), writer)
    writer.commit({"kind": "master"})
    master, _ = cache.get("cd" + "2" * 62)
    data = (tmp_path / "master.mp3").read_bytes()
    assert mp3.frame_index(data)[3] == 1
    single = one_pass(tmp_path / "master.mp3")
    assert passes.mp3_found.integrated == pytest.approx(single.integrated, abs=1e-4)
    delay = 1105
    decoded = mp3.decode(data, 1)[delay : delay + len(master)]
    assert single.integrated == pytest.approx(found.integrated, abs=0.05)  # the master, at its level
    assert np.corrcoef(decoded[:, 0], master[: len(decoded), 0])[0, 1] > 0.99


@pytest.mark.parametrize(("sr", "seconds"), [(48000, 3578.4), (44100, 241.0), (48000, 240.0), (24000, 130.0)])
def test_parts_tile_the_programme_on_the_grid_and_end_in_quarters(sr: int, seconds: float) -> None:
    frames = round(seconds * sr)
    cuts = parts.bounds(frames, sr)
    step, full = (
        parts.grid(sr),
        round(parts.PART_SECONDS * sr / parts.grid(sr)) * parts.grid(sr),
    )
    assert cuts[0][0] == 0 and cuts[-1][1] == frames
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:], strict=False)) and all(
        s % step == 0 for s, _ in cuts
    )
    lengths = [stop - start for start, stop in cuts]
    whole = -(-frames // full)  # parts of the full length it would take
    if whole > 2:
        assert lengths[: whole - 2] == [full] * (whole - 2)
        assert max(lengths[whole - 2 :]) == full // 4 // step * step  # the rest in quarters
    else:
        assert len(cuts) == whole and parts.usable(frames, sr) == (whole == 2)


def test_a_parted_pass_limits_like_one_stream_and_splices_its_mp3(tmp_path: Path) -> None:
    from mixdown.dsp.dynamics import Limiter

    y = programme(30.0)
    master, decoded, found = parted_pass(tmp_path, y, seconds=4.0, gain_db=6.0)
    assert len(parts.bounds(len(y), SR, 4.0)) == 14  # six of 4.2 s, then eight of 0.6 s
    limiter = Limiter(SR, 2, ceiling_dbtp=-1.3)
    streamed = np.concatenate([limiter.process(y * np.float32(db_to_gain(6.0))), limiter.flush()])
    np.testing.assert_allclose(master, streamed, atol=2e-6)  # the lead-in settles each limiter
    whole = Meter(SR, 2)
    whole.add(streamed)
    assert found.integrated == pytest.approx(whole.result().integrated, abs=1e-4)
    assert found.true_peak == pytest.approx(whole.result().true_peak, abs=1e-4) and found.true_peak <= -1.3
    # The MP3: one stream to a decoder, its coding error no worse at the splices than elsewhere.
    delay = 1105  # LAME's encoder delay (576) and the decoder's (529)
    error = decoded[delay : delay + len(master)] - master
    window = 2400
    rms = np.sqrt(np.mean(error[: len(error) // window * window].reshape(-1, window * 2) ** 2, axis=1))
    level = np.sqrt(np.mean(master[: len(master) // window * window].reshape(-1, window * 2) ** 2, axis=1))
    loud = level > 0.02
    splices = {start // window for start, _ in parts.bounds(len(y), SR, 4.0)[1:]}
    near = np.array([i in splices or i - 1 in splices for i in range(len(rms))]) & loud
    assert near.sum() >= 4 and len(decoded) >= len(master) + delay
    assert rms[near].max() <= 2.0 * np.median(rms[loud])


@pytest.mark.parametrize("chunk", [parts._CHUNK, 3000])  # chunks that end anywhere in a hop
def test_the_master_takes_the_mix_s_energies_where_the_limiter_left_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(parts, "_CHUNK", chunk)
    y = programme(30.0, seed=8)
    mix = Meter(SR, 2, true_peak=False)
    mix.add(y)
    touched: list[float] = []
    result = Energies.result

    def spied(self: Any) -> np.ndarray:
        touched.append(float(self.dirty.mean()))
        return result(self)

    monkeypatch.setattr(Energies, "result", spied)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # trimmed, as the last-resort pass is: the mix's energies scale by the gain and the trim
    master, _, found = parted_pass(
        tmp_path / "a", y, seconds=4.0, gain_db=6.0, mix_hops=mix.hop_energies(), trim=0.9
    )
    assert len(touched) == 14 and 0.0 < np.mean(touched) < 1.0 and min(touched) < 0.5  # mix's and metered
    _, _, metered = parted_pass(tmp_path / "b", y, seconds=4.0, gain_db=6.0, trim=0.9)
    assert len(touched) == 14  # the second pass metered every hop
    whole = Meter(SR, 2)
    whole.add(master)
    expected = whole.result()
    for found_ in (found, metered):
        assert found_.integrated == pytest.approx(expected.integrated, abs=1e-6)
        assert found_.lra == pytest.approx(expected.lra, abs=1e-5)
        assert found_.max_momentary == pytest.approx(expected.max_momentary, abs=1e-5)
        assert found_.max_short_term == pytest.approx(expected.max_short_term, abs=1e-5)
    assert found.true_peak == metered.true_peak


def built_both_ways(
    root: Path, fakes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[Path, str]:
    """Build a copy of the show ``root`` as it is (programmes of a few seconds: one part, one
    part), then ``root`` itself with one-second parts (every master cut into parts, every
    mix into parts) and doit's ``args``; return the copy and the second build's output."""
    other = tmp_path.parent / f"{tmp_path.name}-whole"
    shutil.copytree(root, other)
    code, out, err = doit(other, fakes)
    assert code == 0, out + err
    monkeypatch.setattr(parts, "PART_SECONDS", 1.0)
    code, out, err = doit(root, fakes, *args)
    assert code == 0, out + err
    return other, out


def test_a_long_show_masters_in_parts_as_it_does_in_one_stream(
    show: Callable[..., Path], fakes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = show(project_dot_toml=BASIC_TOML.replace('formats = ["wav"]', 'formats = ["wav", "mp3"]'))
    other, out_parted = built_both_ways(root, fakes, tmp_path, monkeypatch)
    wavs = sorted((root / "build").rglob("*.wav"))
    assert wavs
    for wav in wavs:
        seg, sr = sf.read(wav, dtype="float32", always_2d=True)
        ref, _ = sf.read(other / wav.relative_to(root), dtype="float32", always_2d=True)
        assert len(parts.bounds(len(seg), sr)) >= 3
        assert seg.shape == ref.shape and np.abs(seg - ref).max() < 1e-4
        one, two = (
            _measure_file(wav.with_suffix(".mp3")),
            _measure_file(other / wav.relative_to(root).with_suffix(".mp3")),
        )
        assert one.integrated == pytest.approx(two.integrated, abs=0.1) and one.true_peak <= -1.0
    assert "LUFS" in out_parted and "mp3" in out_parted
    # the lock pins each file's bytes (the WAV's hashed as the master was made)
    locked = tomllib.loads((root / "mixdown.lock").read_text())
    pinned = {
        e["file"]: e["sha256"] for t in locked.values() if isinstance(t, dict) for e in t.get("files", [])
    }
    assert {name for name in pinned if name.endswith(".wav")} == {
        p.relative_to(root).as_posix() for p in wavs
    }
    for name, sha256 in pinned.items():
        assert hashlib.sha256((root / name).read_bytes()).hexdigest() == sha256, name
    # The cache keeps each master as its recipe; files lost from build/ are made again from it, the same.
    loaded = load_show(root, registry=Registry(root, extra=fakes))
    recipes = [loaded.context.cache.side_path(plan.master_key, "recipe.json") for plan in loaded.plan.mixes]
    assert all(plan.master_key not in loaded.context.cache for plan in loaded.plan.mixes)
    stored = [(path.stat().st_ino, path.stat().st_mtime_ns) for path in recipes]
    made = {
        path: path.read_bytes() for path in (root / "build").rglob("*.*") if path.name not in ABOUT_THE_BUILD
    }
    shutil.rmtree(root / "build")
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert {path: path.read_bytes() for path in made} == made
    assert [(path.stat().st_ino, path.stat().st_mtime_ns) for path in recipes] == stored  # not mastered again
    # A recipe that does not read (a disk error, a hand edit) is mastered again, to the same files.
    recipes[0].write_text("{not json")
    shutil.rmtree(root / "build")
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert {path: path.read_bytes() for path in made} == made and recipes[0].read_text().startswith("{\n")
    # So is one whose mix's analysis is damaged: the mix is measured again, in one stream.
    analysis = loaded.context.cache.side_path(loaded.plan.mixes[0].key, "analysis.npz")
    damaged = bytearray(analysis.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    analysis.write_bytes(damaged)
    recipes[0].unlink()
    shutil.rmtree(root / "build")
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    rebuilt = {path for path in (root / "build").rglob("*.*") if path.name not in ABOUT_THE_BUILD}
    assert recipes[0].is_file() and rebuilt == set(made)
    for path in made:
        if path.suffix == ".wav":
            again, _ = sf.read(path, dtype="float32", always_2d=True)
            before, _ = sf.read(io.BytesIO(made[path]), dtype="float32", always_2d=True)
            assert again.shape == before.shape and np.abs(again - before).max() < 1e-4


def test_a_delivery_reads_a_long_master_made_from_its_recipe(
    show: Callable[..., Path], fakes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliveries = """
        [deliveries.radio]
        preset = "ebu-r128"
        formats = ["wav"]

        [deliveries.loud]
        preset = "streaming"
        formats = ["flac"]
        """
    root = show(project_dot_toml=BASIC_TOML + deliveries)
    # two workers: both deliveries of a master may ask for it at once
    other, _ = built_both_ways(root, fakes, tmp_path, monkeypatch, "-n", "2")
    parted, whole = (load_show(r, registry=Registry(r, extra=fakes)) for r in (root, other))
    for plan, same in zip(parted.plan.mixes, whole.plan.mixes, strict=True):
        master, sr = parted.context.cache.get(plan.master_key)  # made from the recipe for the delivery
        assert len(parts.bounds(len(master), sr)) >= 3
        np.testing.assert_allclose(master, whole.context.cache.get(same.master_key)[0], atol=1e-4)
        # and the same as the master's own file, made in the pass
        wav = root / "build" / f"{plan.name}.wav"
        written, _ = sf.read(wav, dtype="float32", always_2d=True)
        assert np.abs(written - master).max() <= 2.0**-23
    radio = sorted((root / "build").rglob("*.radio.wav"))
    assert len(radio) == len(parted.plan.mixes)
    loud = sorted((root / "build").rglob("*.loud.flac"))
    assert len(loud) == len(parted.plan.mixes)
    for path, target in [*((p, -23.0) for p in radio), *((p, -14.0) for p in loud)]:
        one, two = _measure_file(path), _measure_file(other / path.relative_to(root))
        assert one.integrated == pytest.approx(target, abs=0.5) and one.integrated == pytest.approx(
            two.integrated, abs=0.05
        )


def test_a_wav_that_reads_back_wrong_fails_the_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mixdown.errors import RenderFailed

    real = WavWriter.crc

    def corrupt(self: WavWriter, start: int, frames: int) -> int:
        return real(self, start, frames) + (1 if start > 0 else 0)  # everything after the first part

    monkeypatch.setattr(WavWriter, "crc", corrupt)
    with pytest.raises(RenderFailed, match=r"master.wav: the file does not read back as written from 4\.2 s"):
        parted_pass(tmp_path, programme(12.0), seconds=4.0)


def test_a_long_show_mixed_in_parts_stores_the_mix_of_one_pass(
    show: Callable[..., Path], fakes: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixdown.actions.mix import mix_parts, mix_source
    from mixdown.dsp.mixer import ducking_hop
    from mixdown.loader import load_show
    from mixdown.renderers import Registry

    root = show(project_dot_toml=BASIC_TOML.replace('formats = ["wav"]', 'formats = ["wav"]\nstems = true'))
    other, _ = built_both_ways(root, fakes, tmp_path, monkeypatch)
    parted, whole = (load_show(r, registry=Registry(r, extra=fakes)) for r in (root, other))
    for plan, same in zip(parted.plan.mixes, whole.plan.mixes, strict=True):
        mixed, sr = parted.context.cache.get(plan.key)
        assert len(mix_parts(len(mixed), sr, ducking_hop(sr))) >= 2
        assert whole.context.cache.kept_as_record(same.key)  # one part: mixed again as it is read
        again = np.concatenate(list(mix_source(whole.context, same).blocks()))
        np.testing.assert_array_equal(mixed, again)  # bit for bit
        folder = root / "build" / f"{plan.name}.stems"
        buses = [sf.read(folder / f"{bus}.wav", always_2d=True)[0] for bus in ("voice", "sfx", "music")]
        np.testing.assert_allclose(sum(buses), mixed, atol=1e-5)
        # The master's analysis, measured in parts, reads the mix as one meter does.
        from mixdown.dsp.master import Analysis

        found = Analysis.load(parted.context.cache.side_path(plan.key, "analysis.npz"))
        one = Analysis.load(whole.context.cache.side_path(same.key, "analysis.npz"))
        assert found is not None and one is not None
        assert found.meter.result().integrated == pytest.approx(one.meter.result().integrated, abs=1e-3)


def padded_first(data: bytes) -> bytes:
    """``data`` from its first frame of the largest size on (libsndfile's estimate falls short)."""
    offsets, _, _, _ = mp3.frame_index(data)
    sizes = np.diff(offsets)
    return data[int(offsets[int(np.argmax(sizes))]) :]


@pytest.mark.parametrize(
    ("sr", "bitrate", "vbr"),
    [(44100, 192, False), (22050, 48, False), (44100, 128, True), (48000, 128, True), (48000, 192, False)],
)
def test_every_frame_decodes_whatever_the_first_frame_s_size(sr: int, bitrate: int, vbr: bool) -> None:
    """A stream that starts on a padded (or a large VBR) frame, as a part of a spliced MP3 may,
    decodes to all of its frames' samples, the same as a decode that starts earlier."""
    n = 30 * sr
    y = np.resize(programme(10.0), (n, 2)) * 0.8
    whole = mp3.encode(y, sr, bitrate=bitrate, vbr=vbr, quality=7)
    part = padded_first(whole)
    offsets, spf, _, _ = mp3.frame_index(part)
    decoded = mp3.decode(part, 2)
    assert len(decoded) == (len(offsets) - 1) * spf
    # the same samples as a decode of the whole stream, after the first frames (the decoder's priming)
    reference = mp3.decode(whole, 2)[-len(decoded) :]
    np.testing.assert_allclose(decoded[4 * spf :], reference[4 * spf :], rtol=0, atol=1e-6)


@pytest.mark.parametrize("sr", [44100, 22050])
def test_a_spliced_mp3_at_a_rate_with_padded_frames_is_checked_whole(tmp_path: Path, sr: int) -> None:
    """At 44.1 and 22.05 kHz a frame's length in bytes is not whole: frames are padded in turn,
    and the check of a part that starts on a padded frame once metered it short."""
    if not mp3.available():
        pytest.skip("no LAME API")
    seconds = parts.grid(sr) / sr  # the shortest part: many boundaries in a short programme
    y = np.resize(programme(10.0), (round(4.5 * seconds * sr), 2))
    sf.write(tmp_path / "mix.wav", y, sr, subtype="FLOAT")
    passes = parts.ParallelPasses(
        Source.of_file(tmp_path / "mix.wav"), sr, 2, len(y), -1.3,
        mp3=(tmp_path / "master.mp3", 192 if sr > 24000 else 64, False, 7), seconds=seconds,
    )  # fmt: skip
    passes(0.0, 1.0, 1.0)
    data = (tmp_path / "master.mp3").read_bytes()
    single = Meter(sr, 2)
    single.add(mp3.decode(data, 2))  # every frame (libsndfile alone stops where it estimates the end)
    single = single.result()
    assert passes.mp3_found.integrated == pytest.approx(single.integrated, abs=1e-4)
    assert passes.mp3_found.true_peak == pytest.approx(single.true_peak, abs=1e-5)
    offsets, spf, _, _ = mp3.frame_index(data)
    assert len(y) <= (len(offsets) - 1) * spf < len(y) + 3 * spf


@pytest.mark.parametrize("extra", [1, 15, 17])
def test_a_last_part_shorter_than_the_true_peak_s_context_masters(tmp_path: Path, extra: int) -> None:
    """A programme a few samples longer than its parts: the part before the last has
    fewer samples after it than the limiter looks ahead and the MP3 encodes past it."""
    if not mp3.available():
        pytest.skip("no LAME API")
    seconds = parts.grid(SR) / SR
    y = np.resize(programme(4.0), (3 * parts.grid(SR) + extra, 2))
    sf.write(tmp_path / "mix.wav", y, SR, subtype="FLOAT")
    wav = WavWriter(tmp_path / "master.wav", SR, 2, "PCM_24", len(y))
    passes = parts.ParallelPasses(
        Source.of_file(tmp_path / "mix.wav"), SR, 2, len(y), -1.3,
        wav=wav, mp3=(tmp_path / "master.mp3", 192, False, 7), seconds=seconds,
    )  # fmt: skip
    assert passes.bounds[-1][1] - passes.bounds[-1][0] == extra
    found, _, _ = passes(0.0, 1.0, 1.0)
    wav.close()
    passes.check_wav_header()
    whole = Meter(SR, 2)
    whole.add(sf.read(tmp_path / "master.wav", dtype="float32", always_2d=True)[0])
    assert found.integrated == pytest.approx(whole.result().integrated, abs=1e-3)
    offsets, spf, _, _ = mp3.frame_index((tmp_path / "master.mp3").read_bytes())
    assert len(y) <= (len(offsets) - 1) * spf < len(y) + 3 * spf


@pytest.mark.parametrize(("sr", "reservoir"), [(44100, False), (24000, True)])
def test_a_long_mp3_decodes_in_runs_as_in_one(
    monkeypatch: pytest.MonkeyPatch, sr: int, reservoir: bool
) -> None:
    """Decoded a run of frames at a time (memory stays small), every sample comes out, as one run
    decodes it."""
    y = np.resize(programme(10.0), (20 * sr, 2)) * 0.8
    encoder = mp3.Encoder(sr, 2, bitrate=64 if sr < 32000 else 192, vbr=False, quality=7, reservoir=reservoir)
    data = encoder.encode(y) + encoder.finish()
    encoder.close()
    whole = mp3.decode(data, 2)
    monkeypatch.setattr(mp3, "_RUN_FRAMES", 50)
    runs = mp3.decode(data, 2)
    offsets, spf, _, _ = mp3.frame_index(data)
    assert len(runs) == len(whole) == (len(offsets) - 1) * spf
    np.testing.assert_allclose(runs, whole, rtol=0, atol=1e-6)
