"""Delivery presets: every written file passes its own spec check, or nothing is published."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown.codecs import deliver as delivering
from mixdown.codecs import mp3
from mixdown.codecs.deliver import deliver
from mixdown.codecs.wav import Source
from mixdown.dsp.loudness import Measurement, measure
from mixdown.errors import ConfigError, RenderFailed
from mixdown.settings import PRESETS, Delivery, delivery_from

from .conftest import speech_like

SR = 48000


def programme(seconds: float = 6.0, seed: int = 5) -> np.ndarray:
    """Speech-like: band-limited noise in syllable bursts, with pauses, in stereo."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    noise = np.convolve(rng.standard_normal(n), np.ones(12) / 12, mode="same")
    t = np.arange(n) / SR
    syllables = np.clip(np.sin(2 * np.pi * 3.3 * t), 0, None) ** 2
    phrases = (np.sin(2 * np.pi * 0.25 * t) > -0.6).astype(float)
    y = 0.3 * noise * syllables * phrases
    return np.stack([y, 0.9 * y], axis=1).astype(np.float32)


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"custom"}))
def test_every_preset_writes_files_that_pass_its_spec(tmp_path: Path, name: str) -> None:
    preset = PRESETS[name]
    formats = preset.formats if name == "alexa" else ("wav", "flac", "mp3")
    delivery = Delivery(**{**preset.__dict__, "formats": formats})
    written = deliver(
        Source.of_array(programme(), SR), tmp_path / "show", delivery, target=f"deliver:show/{name}"
    )
    assert [p.name for p, _ in written] == [f"show.{f}" for f in formats]
    for path, reported in written:
        y, sr = sf.read(path, always_2d=True)
        found = measure(y.astype(np.float32), sr)  # measured again here, independently of deliver()
        assert abs(found.integrated - preset.target_lufs) <= preset.tolerance_lu, path.name
        assert found.true_peak <= preset.ceiling_dbtp, path.name
        assert found.integrated == pytest.approx(reported.integrated, abs=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"show.{f}" for f in formats)


def test_ogg_vorbis_and_opus_pass_the_spec_too(tmp_path: Path) -> None:
    delivery = Delivery(**{**PRESETS["streaming"].__dict__, "formats": ("ogg", "opus"), "sample_rate": 44100})
    written = deliver(
        Source.of_array(programme(), SR), tmp_path / "show", delivery, target="deliver:show/web"
    )
    for path, found in written:
        info = sf.info(str(path))
        assert info.format == "OGG" and info.subtype == ("VORBIS" if path.suffix == ".ogg" else "OPUS")
        assert abs(found.integrated + 14.0) <= 1.0 and found.true_peak <= -1.0
    assert sf.info(str(tmp_path / "show.opus")).samplerate == 48000  # Opus has no 44.1 kHz


def test_alexa_is_48_kbps_mono_mp3_at_24_khz(tmp_path: Path) -> None:
    ((path, _),) = deliver(
        Source.of_array(programme(10.0), SR), tmp_path / "flash", PRESETS["alexa"], target="t"
    )
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, path.suffix) == (24000, 1, ".mp3")
    kbps = path.stat().st_size * 8 / info.duration / 1000
    assert kbps == pytest.approx(48, rel=0.05)


def test_out_of_spec_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "show.wav").write_bytes(b"yesterday's good file")
    quiet = Measurement(-30.0, -20.0, -20.0, 3.0, -28.0, -29.0)
    monkeypatch.setattr(delivering, "_measure_file", lambda path: quiet)
    with pytest.raises(
        RenderFailed, match=r"deliver:show/podcast: show.wav is out of spec for 'podcast' \(-30.0 LUFS"
    ):
        deliver(
            Source.of_array(programme(), SR),
            tmp_path / "show",
            PRESETS["podcast"],
            target="deliver:show/podcast",
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["show.wav"]  # untouched, no temporaries
    assert (tmp_path / "show.wav").read_bytes() == b"yesterday's good file"


def test_custom_deliveries_from_project_tables() -> None:
    custom = delivery_from({"preset": "custom", "target_lufs": -18, "ceiling_dbtp": -1.5, "formats": ["flac"],
                            "sample_rate": 44100, "bit_depth": 16}, "project.toml:9")  # fmt: skip
    assert (custom.target_lufs, custom.ceiling_dbtp, custom.formats, custom.sample_rate) == (
        -18,
        -1.5,
        ("flac",),
        44100,
    )
    assert delivery_from({}, "x") == PRESETS["podcast"]
    with pytest.raises(ConfigError, match="project.toml:9: unknown preset 'radio'; use one of podcast"):
        delivery_from({"preset": "radio"}, "project.toml:9")
    with pytest.raises(ConfigError, match="project.toml:9: unknown key 'loudness'"):
        delivery_from({"loudness": -16}, "project.toml:9")
    with pytest.raises(ConfigError, match="formats must be a non-empty list of wav, flac, mp3, ogg, opus"):
        delivery_from({"formats": ["aiff"]}, "project.toml:9")
    assert math.isfinite(PRESETS["atsc-a85"].target_lufs) and PRESETS["atsc-a85"].ceiling_dbtp == -2.0


def test_files_encoded_while_mastering_are_published_or_made_again(tmp_path: Path) -> None:
    from mixdown.dsp.master import master

    y, loud = master(programme(), SR)
    delivery = Delivery("master", -16.0, -1.0, 1.0, ("wav", "mp3"))
    good, bad = tmp_path / ".show.a.tmp.wav", tmp_path / ".show.b.tmp.mp3"
    sf.write(good, y, SR, subtype="PCM_24")
    bad.write_bytes(mp3.encode(y * np.float32(1.5), SR, bitrate=192, vbr=False, quality=7))  # decodes over
    fine = measure(sf.read(good, dtype="float32", always_2d=True)[0], SR)
    over = Measurement(-16.0, -0.5, -0.6, 3.0, -14.0, -15.0)
    written = [("wav", good, fine), ("mp3", bad, over)]
    files = deliver(
        Source.of_array(y, SR), tmp_path / "show", delivery, target="t", loudness=loud, written=written
    )
    assert [(p.name, f.integrated == fine.integrated) for p, f in files] == [
        ("show.wav", True),
        ("show.mp3", False),
    ]
    assert files[1][1].true_peak <= -1.0  # made again from the master, under the ceiling
    assert sorted(p.name for p in tmp_path.iterdir()) == ["show.mp3", "show.wav"]  # no temporaries left


@pytest.mark.parametrize("own", [True, False])
def test_a_masters_own_files_hold_its_audio_where_it_landed_off_its_target(tmp_path: Path, own: bool) -> None:
    # A master whose target was out of reach (it landed 0.3 LU under): its WAV was written as it
    # was made, its FLAC is written afterwards. Mastered again, the FLAC would be louder than the
    # WAV of the same master; as the master's own file it holds the same samples.
    from mixdown.dsp.master import Loudness, master

    y, _ = master(programme(), SR)
    y = (np.round(y * np.float32(10 ** (-0.3 / 20)) * 2**23) / 2**23).astype(np.float32)  # on 24-bit steps
    loud = Loudness(measure(y, SR).integrated, measure(y, SR).true_peak)
    delivery = Delivery("master", -16.0, -1.0, 1.0, ("wav", "flac"))
    wav = tmp_path / ".show.a.tmp.wav"
    sf.write(wav, y, SR, subtype="PCM_24")
    written = [("wav", wav, measure(sf.read(wav, dtype="float32", always_2d=True)[0], SR))]
    deliver(
        Source.of_array(y, SR),
        tmp_path / "show",
        delivery,
        target="t",
        loudness=loud,
        written=written,
        own=own,
    )
    as_wav = sf.read(tmp_path / "show.wav", dtype="float32")[0]
    as_flac = sf.read(tmp_path / "show.flac", dtype="float32")[0]
    if own:
        np.testing.assert_array_equal(as_flac, as_wav)
    else:  # a delivery at the same target is mastered to it: 0.3 LU louder
        assert measure(as_flac, SR).integrated - measure(as_wav, SR).integrated == pytest.approx(0.3, abs=0.1)


def _profiles_written(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The ceiling profile of each pass a delivery writes (None: the flat ceiling), as it writes them."""
    profiles: list[Any] = []
    write_group = delivering._write_group

    def spied(group: Any, profile: Any = None) -> Any:
        profiles.append(profile)
        return write_group(group, profile)

    monkeypatch.setattr(delivering, "_write_group", spied)
    return profiles


def _delivered_overshooting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, peaks: list[float], places: list[float]
) -> tuple[Path, Measurement, list[Any], list[Path], list[Path]]:
    """A 12 s programme delivered to 'alexa' with the encoder's overshoot injected (no LAME build
    decides it): the n-th file written decodes at true peak ``peaks[n]`` (the last one for the
    rest), its one overshoot at ``places[n]`` s. Returns the published path and measurement, the
    ceiling profile of each pass, the files measured and those whose row peaks were read."""
    sr, ceiling = 24000, PRESETS["alexa"].ceiling_dbtp
    measured: list[Path] = []
    looked: list[Path] = []
    real_measure = delivering._measure_file

    def overshooting(path: Path) -> Measurement:
        measured.append(path)
        found = real_measure(path)
        peak = peaks[min(len(measured), len(peaks)) - 1]
        return Measurement(found.integrated, peak, found.sample_peak, found.lra, -10.0, -11.0)

    def row_peaks(path: Path) -> np.ndarray:
        looked.append(path)
        n = measured.index(path)
        rows = np.full(12 * sr // 32, 10 ** ((ceiling - 3.0) / 20))
        rows[int(places[n] * sr / 32)] = 10 ** (peaks[min(n, len(peaks) - 1)] / 20)
        return rows

    profiles = _profiles_written(monkeypatch)
    monkeypatch.setattr(delivering, "_measure_file", overshooting)
    monkeypatch.setattr(delivering, "_row_peaks", row_peaks)
    ((path, found),) = deliver(
        Source.of_array(programme(12.0), SR), tmp_path / "flash", PRESETS["alexa"], target="t"
    )
    return path, found, profiles, measured, looked


def test_a_file_over_its_ceiling_is_made_again_lower_where_it_overshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract: a file that decodes over its ceiling is made again once, its ceiling lowered
    by its excess and the retry margin where it overshot (and the spread either side), and
    nowhere else."""
    sr, excess, at = 24000, 0.7, 5.0  # s: where the injected overshoot is
    ceiling = PRESETS["alexa"].ceiling_dbtp
    # the first file decodes 0.7 dB over its ceiling, the next ones 0.5 dB under it
    path, found, profiles, measured, looked = _delivered_overshooting(
        tmp_path, monkeypatch, [ceiling + excess, ceiling - 0.5], [at]
    )
    assert looked == [measured[0]]  # the file that overshot is the one looked at
    assert len(profiles) == 2 and profiles[0] is None  # made again once
    lowered = -20 * np.log10(profiles[1])
    where = np.arange(len(lowered)) * 32 / sr  # each row's start, in seconds
    spread, region = delivering._SPREAD, delivering._REGION
    near = np.abs(where - at) <= spread
    np.testing.assert_allclose(lowered[near], excess + delivering._RETRY_MARGIN_DB, atol=1e-9)
    assert np.all(lowered[np.abs(where - at) > spread + 2 * region] == 0.0)  # the rest keeps its ceiling
    assert path == tmp_path / "flash.mp3" and len(measured) == 2  # the second file is published
    assert found.true_peak == ceiling - 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flash.mp3"]


def test_a_file_that_stays_over_its_ceiling_fails_after_the_last_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    over = Measurement(-14.0, -1.5, -1.6, 3.0, -10.0, -11.0)
    calls: list[int] = []
    monkeypatch.setattr(delivering, "_measure_file", lambda path: calls.append(1) or over)
    monkeypatch.setattr(delivering, "_row_peaks", lambda path: np.full(1000, 10 ** (-1.5 / 20)))
    with pytest.raises(
        RenderFailed, match=r"t: flash.mp3 is out of spec for 'alexa' \(-14.0 LUFS, -1.5 dBTP"
    ):
        deliver(Source.of_array(programme(), SR), tmp_path / "flash", PRESETS["alexa"], target="t")
    assert len(calls) == delivering._ATTEMPTS
    assert list(tmp_path.iterdir()) == []


def test_the_last_attempt_lowers_the_ceiling_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file whose codec overshoots somewhere new at each attempt: the regional lowering has not
    converged by the last attempt, which lowers the whole file by the excess and the margin."""
    ceiling = PRESETS["alexa"].ceiling_dbtp
    over = [ceiling + 0.3] * (delivering._ATTEMPTS - 1)  # 0.3 dB over, somewhere new each time
    path, found, profiles, _, _ = _delivered_overshooting(
        tmp_path, monkeypatch, [*over, ceiling - 0.4], [2.0, 5.0, 8.0, 11.0]
    )
    assert len(profiles) == delivering._ATTEMPTS and found.true_peak == ceiling - 0.4
    margin = 0.3 + delivering._RETRY_MARGIN_DB
    before_last = -20 * np.log10(profiles[-2])
    assert before_last.min() == 0.0  # until the last, lowered only where it overshot
    last = -20 * np.log10(profiles[-1])
    assert last.min() >= margin - 1e-9  # the last: everywhere
    assert np.all(last[: len(before_last)] >= before_last - 1e-9)  # and no less than before anywhere
    assert path == tmp_path / "flash.mp3"


@pytest.mark.parametrize(
    ("rate", "kbps"), [(48000, 192), (44100, 192), (32000, 192), (24000, 160), (22050, 160), (11025, 64)]
)
def test_a_presets_bitrate_fits_the_rate_its_mp3_is_written_at(tmp_path: Path, rate: int, kbps: int) -> None:
    # MPEG-2 (16-24 kHz) stops at 160 kbps and MPEG-2.5 at 64: a preset's 192 is the nearest it can
    # carry, while a bitrate the user asks for is refused at its line when the rate cannot carry it.
    delivery = delivery_from({"preset": "podcast"}, "project.toml:9", master_rate=rate)
    assert delivery.bitrate == kbps
    assert delivery_from({"sample_rate": rate}, "x").bitrate == kbps
    if kbps < 192:
        with pytest.raises(ConfigError, match=f"project.toml:9: MP3 at {rate} Hz takes .* not 192"):
            delivery_from({"bitrate": 192}, "project.toml:9", master_rate=rate)
    source = Source.of_array(speech_like(3, 1, rate), rate)
    written = [p for p, _ in deliver(source, tmp_path / "ep", delivery, target="t") if p.suffix == ".mp3"]
    assert sf.info(str(written[0])).samplerate == rate
    assert written[0].stat().st_size * 8 / 3.0 / 1000 <= kbps * 1.05  # CBR at the fitted bitrate


@pytest.mark.parametrize(
    ("integrated", "true_peak", "hinted"),
    [
        (-22.5, -2.3, True),
        (-22.5, -1.9, True),
        (-30.0, -20.0, False),
        (-16.0, -0.5, False),
        (-9.0, -2.3, False),
    ],
)
def test_a_master_too_quiet_at_its_ceiling_says_what_to_change(
    integrated: float, true_peak: float, hinted: bool
) -> None:
    # A show mostly quiet (long pauses over a low bed) with a few loud, peaky moments: limiting
    # harder lets more of the quiet into the gated loudness, so no gain reaches the target.
    found = Measurement(integrated, true_peak, true_peak, 14.0, -10.0, -11.0)
    with pytest.raises(RenderFailed) as failed:
        delivering._check(found, PRESETS["podcast"], "master:x", Path("x.wav"))
    said = str(failed.value)
    assert said.startswith("master:x: x.wav is out of spec for 'podcast'") and "\n" not in said
    assert ("set a lower target_lufs" in said) is hinted
