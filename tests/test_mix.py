"""Numeric tests of the mix stage: layout to the sample, cues, bed, ducking."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate

from mixdown.dsp import rendering
from mixdown.dsp.mixer import (
    Bed,
    Cue,
    Lazy,
    Line,
    Mix,
    MixSettings,
    Pause,
    Section,
    Stems,
    Sting,
    mix,
)
from mixdown.dsp.rendering import _AHEAD
from mixdown.dsp.signal import as_channels, resample
from mixdown.errors import AudioError

SR = 48000
NO_DUCK = MixSettings(duck_db=0.0)


def dc(seconds: float, value: float, sr: int = SR, channels: int = 2) -> np.ndarray:
    """A constant signal: its placement can be read back exactly."""
    return np.full((round(seconds * sr), channels), value, dtype=np.float32)


def noise(seconds: float, seed: int, sr: int = SR, channels: int = 2, amp: float = 0.3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (amp * rng.standard_normal((round(seconds * sr), channels))).astype(np.float32)


def tone(seconds: float, freq: float, sr: int = SR, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    return np.repeat((amp * np.sin(2 * np.pi * freq * t))[:, None], 2, axis=1).astype(np.float32)


def onsets(bus: np.ndarray) -> list[int]:
    """Sample indices where a bus goes from silent to sounding."""
    sounding = np.concatenate([[False], np.abs(bus).max(axis=1) > 0])
    return np.flatnonzero(sounding[1:] & ~sounding[:-1]).tolist()


def dc_bed(gain_db: float = 0.0) -> Bed:
    """A constant bed: the music stem divided by it is the bed gain curve."""
    empty = np.zeros((0, 2), np.float32)
    return Bed(empty, dc(4.0, 0.5), empty, SR, gain_db=gain_db)


def duck_curve_db(sections: list[Section], settings: MixSettings) -> np.ndarray:
    """The ducking gain in dB, per sample: ducked music over unducked music."""
    bed = dc_bed()
    ducked = mix(sections, bed=bed, settings=settings).music[:, 0]
    plain = mix(sections, bed=bed, settings=replace(settings, duck_db=0.0)).music[:, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return 20 * np.log10(ducked / plain)


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """Noise 'words' of 0.2-0.4 s separated by 0.1-0.2 s gaps."""
    rng = np.random.default_rng(seed)
    y = noise(seconds, seed)
    t, n = 0, len(y)
    while t < n:
        word, gap = rng.integers(int(0.2 * SR), int(0.4 * SR)), rng.integers(int(0.1 * SR), int(0.2 * SR))
        y[t + word : t + word + gap] = 0
        t += word + gap
    y[-int(0.05 * SR) :] = 0.3  # end on sound, so the speech extent is known
    return y


# -- layout ---------------------------------------------------------------------


def test_timeline_positions_are_exact_to_the_sample() -> None:
    a, b, c, d = dc(1.0, 0.1), dc(0.5, 0.2), dc(0.25, 0.3), dc(0.3, 0.4)
    sections = [
        Section((Line(a, SR), Line(b, SR))),
        Section((Pause(0.25), Line(c, SR), Pause(0.5), Line(d, SR))),
    ]
    stems = mix(sections, bed=Bed(noise(2, 0), noise(2, 1), noise(2, 2), SR), settings=MixSettings())

    start_a = 72000  # lead_in 1.5 s
    start_b = start_a + 48000 + 16800  # + line_gap 0.35 s
    start_c = start_b + 24000 + 43200 + 12000  # + section_gap 0.9 s + leading pause 0.25 s
    start_d = start_c + 12000 + 16800 + 24000  # a pause adds its seconds to the one gap
    assert onsets(stems.voice) == [start_a, start_b, start_c, start_d]
    assert stems.voice[start_a + 47999, 0] == np.float32(0.1) and stems.voice[start_a + 48000, 0] == 0
    assert len(stems.voice) == start_d + 14400 + 96000  # + tail 2.0 s


def test_without_bed_starts_at_zero_with_a_short_tail_and_silent_music() -> None:
    stems = mix([Section((Line(dc(1.0, 0.1), SR), Sting(dc(0.5, 0.2), SR)))])
    assert onsets(stems.voice) == [0]
    assert onsets(stems.sfx) == [48000 + 16800]
    assert len(stems.voice) == 48000 + 16800 + 24000 + 14400  # tail 0.3 s
    assert not stems.music.any()


def test_cues_are_placed_at_their_anchor() -> None:
    click = dc(0.01, 0.5)
    line = Line(
        dc(1.0, 0.1),
        SR,
        cues=(Cue(click, SR, at=0.5), Cue(click, SR, at=0.25, offset=-0.1, gain_db=-6.0)),
    )
    stems = mix([Section((line,))])
    assert onsets(stems.sfx) == [12000 - 4800, 24000]
    np.testing.assert_allclose(stems.sfx[7200, 0], 0.5 * 10 ** (-6 / 20), rtol=1e-6)


def test_cue_before_start_is_clamped_and_cue_past_end_grows_the_program() -> None:
    line = Line(
        dc(1.0, 0.1),
        SR,
        cues=(Cue(dc(0.01, 0.5), SR, at=0.0, offset=-1.0), Cue(dc(1.0, 0.2), SR, at=1.0)),
    )
    stems = mix([Section((line,))])
    assert onsets(stems.sfx) == [0, 48000]
    assert len(stems.sfx) == 96000  # past end + 0.3 s tail


def test_stems_have_equal_length_and_sum_to_the_mixdown() -> None:
    line = Line(noise(1.0, 1), SR, cues=(Cue(noise(0.8, 2), SR, at=0.9),))
    bed = Bed(noise(1.0, 3), noise(2.0, 4), noise(1.5, 5), SR)
    stems = mix([Section((line, Sting(noise(0.3, 6), SR))), Section((line,))], bed=bed)
    assert isinstance(stems, Stems) and stems.sample_rate == SR
    shapes = {stems.voice.shape, stems.sfx.shape, stems.music.shape}
    assert len(shapes) == 1 and shapes.pop()[1] == 2
    out = stems.mixdown()
    assert out.dtype == np.float32 and all(
        s.dtype == np.float32 for s in (stems.voice, stems.sfx, stems.music)
    )
    np.testing.assert_allclose(out, stems.voice + stems.sfx + stems.music, atol=1e-7)


def test_mono_22050_input_is_resampled_and_spread_to_stereo() -> None:
    line = noise(1.0, 7, sr=22050, channels=1)
    stems = mix([Section((Line(line, 22050),))])
    assert stems.voice.shape == (48000 + 14400, 2)
    np.testing.assert_array_equal(stems.voice[:, 0], stems.voice[:, 1])
    expected = resample(line, 22050, SR)[:, 0]
    np.testing.assert_allclose(stems.voice[:48000, 0], expected, atol=1e-7)
    assert np.sqrt(np.mean(stems.voice[:48000] ** 2)) == pytest.approx(0.3, rel=0.05)


def test_empty_sections_are_rejected_and_an_empty_section_takes_no_time() -> None:
    with pytest.raises(ValueError, match="no sections"):
        mix([])
    line = Line(dc(1.0, 0.1), SR)
    alone = mix([Section((line,))])
    padded = mix([Section(()), Section((line,)), Section(())])
    np.testing.assert_array_equal(alone.voice, padded.voice)


def test_bad_input_shape_raises_audio_error() -> None:
    with pytest.raises(AudioError, match="section 0, item 0"):
        mix([Section((Line(np.zeros(100, np.float32), SR),))])
    with pytest.raises(AudioError, match="bed.main"):
        mix([Section(())], bed=Bed(dc(1, 0.1), np.zeros((5, 2, 1), np.float32), dc(1, 0.1), SR))


# -- music bed ------------------------------------------------------------------


def prepared(y: np.ndarray, sr: int, gain_db: float = -20.0) -> np.ndarray:
    return as_channels(resample(y, sr, SR), 2) * np.float32(10 ** (gain_db / 20))


@pytest.mark.parametrize("count", [1, 3])
def test_auto_music_opens_with_the_intro_and_ends_exactly_with_the_outro(count: int) -> None:
    bed_sr = 44100
    intro, main, outro = (
        noise(s, seed, sr=bed_sr, channels=1) for s, seed in ((1.0, 8), (2.0, 9), (1.5, 10))
    )
    sections = [Section((Line(dc(1.5, 0.1), SR),)) for _ in range(count)]
    music = mix(sections, bed=Bed(intro, main, outro, bed_sr), settings=NO_DUCK).music
    xf = round(0.5 * SR)
    head, tail = prepared(intro, bed_sr), prepared(outro, bed_sr)
    np.testing.assert_allclose(music[: len(head) - xf], head[:-xf], atol=1e-7)
    np.testing.assert_allclose(music[-(len(tail) - xf) :], tail[xf:], atol=1e-7)
    # the outro's last sample is the program's last sample: correlation peaks at lag 0
    corr = np.correlate(music[-len(tail) - 2000 :, 0], tail[-24000:, 0], mode="valid")
    assert int(np.argmax(corr)) == len(corr) - 1


def test_middle_sections_play_the_main_loop() -> None:
    intro, main, outro = noise(1.0, 11), noise(3.0, 12), noise(1.0, 13)
    sections = [Section((Line(dc(2.0, 0.1), SR),)) for _ in range(3)]
    stems = mix(sections, bed=Bed(intro, main, outro, SR, gain_db=0.0), settings=NO_DUCK)
    start = onsets(stems.voice)[1]  # second section's line
    seg = stems.music[start : start + SR, 0]
    for name, ref, expected in (("main", main, True), ("intro", intro, False), ("outro", outro, False)):
        corr = correlate(seg, ref[:, 0]) / (np.linalg.norm(seg) * np.linalg.norm(ref[:, 0]))
        assert (corr.max() > 0.3) == expected, name


def test_outro_longer_than_its_span_is_cut_at_its_head_with_a_fade() -> None:
    outro = noise(8.0, 14)
    stems = mix(
        [Section((Line(dc(0.5, 0.1), SR),))],
        bed=Bed(noise(1.0, 15), noise(2.0, 16), outro, SR, gain_db=0.0),
        settings=NO_DUCK,
    )
    n, xf = len(stems.music), 24000
    assert n == 48000 * 4  # 1.5 + 0.5 + 2.0 s: shorter than the outro
    np.testing.assert_allclose(stems.music[xf:], outro[-(n - xf) :], atol=1e-7)
    assert np.abs(stems.music[:100]).max() < 0.02  # faded in from silence


def test_music_none_section_is_silent() -> None:
    sections = [Section((Line(dc(2.0, 0.1), SR),), music=m) for m in ("auto", "none", "auto")]
    stems = mix(sections, bed=Bed(noise(1, 17), noise(2, 18), noise(1, 19), SR), settings=NO_DUCK)
    starts = onsets(stems.voice)
    assert np.abs(stems.music[starts[1] : starts[2]]).max() == 0.0  # section 2's whole span
    assert np.abs(stems.music[starts[1] - SR : starts[1] - 24000]).max() > 0.01
    assert np.abs(stems.music[starts[2] + 24000 : starts[2] + SR]).max() > 0.01


def test_main_loop_repeats_have_no_clicks() -> None:
    freq, amp = 440.0, 0.5
    main = tone(1.013, freq, amp=amp)  # 445.7 cycles: a hard splice would jump ~amp
    empty = np.zeros((0, 2), np.float32)
    stems = mix(
        [Section((Pause(6.0),), music="main")],
        bed=Bed(empty, main, empty, SR, gain_db=0.0),
        settings=NO_DUCK,
    )
    body = stems.music[SR // 2 : -SR // 2, 0]  # between the edge fades; several repeats
    sine_step = amp * 2 * np.pi * freq / SR
    assert np.abs(np.diff(body)).max() < 1.5 * sine_step
    assert np.sqrt(np.mean(body**2)) == pytest.approx(amp / np.sqrt(2), rel=0.15)


def test_seamless_main_loop_is_tiled_exactly() -> None:
    main = noise(1.25, 30)  # a bar-grid loop: repeats must keep their length
    empty = np.zeros((0, 2), np.float32)
    stems = mix(
        [Section((Pause(5.0),), music="main")],
        bed=Bed(empty, main, empty, SR, gain_db=0.0, seamless=True),
        settings=MixSettings(duck_db=0.0, lead_in=0.0, tail=0.0, crossfade=0.5),
    )
    xf = SR // 2  # the edge fades of the section
    tiled = np.tile(main, (5, 1))[: len(stems.music)]
    np.testing.assert_allclose(stems.music[xf:-xf], tiled[xf:-xf], atol=1e-6)


def test_consecutive_main_sections_continue_the_loop() -> None:
    lines = [Line(dc(1.0, 0.1), SR), Line(dc(1.3, 0.1), SR)]
    bed = Bed(noise(1, 20), noise(1.7, 21), noise(1, 22), SR)
    settings = MixSettings(duck_db=0.0, section_gap=0.35)  # same layout as one section
    split = mix([Section((lines[0],), "main"), Section((lines[1],), "main")], bed=bed, settings=settings)
    whole = mix([Section(tuple(lines), "main")], bed=bed, settings=settings)
    np.testing.assert_array_equal(split.music, whole.music)


# -- ducking --------------------------------------------------------------------


def test_ducking_depth_and_no_pumping_between_words() -> None:
    speech = speech_like(4.0, 23)
    settings = MixSettings(lead_in=3.0)
    gain = duck_curve_db([Section((Line(speech, SR),))], settings)
    start, end = 3 * SR, 7 * SR
    assert np.abs(gain[SR : 2 * SR]).max() < 0.01  # long speech-free stretch: undisturbed
    during = gain[start : end - SR // 10]
    assert np.median(during) == pytest.approx(-12.0, abs=1.5)
    assert during.max() - during.min() < 1.0  # held through the gaps between words


def test_ducking_attack_and_release_times() -> None:
    settings = MixSettings(lead_in=3.0, tail=4.0)
    gain = duck_curve_db([Section((Line(noise(2.0, 24), SR),))], settings)

    def crossing(level_db: float, after: int, falling: bool) -> int:
        seg = gain[after:]
        return after + int(np.argmax(seg < level_db if falling else seg > level_db))

    attack_start, attack_end = crossing(-1.2, SR, True), crossing(-10.8, SR, True)
    release_start = crossing(-10.8, attack_end + SR, False)
    release_end = crossing(-1.2, release_start, False)
    attack, release = (attack_end - attack_start) / SR, (release_end - release_start) / SR
    assert 0.08 / 2 <= attack <= 0.08 * 2
    assert 0.6 / 2 <= release <= 0.6 * 2
    assert attack_end <= 3 * SR  # ducked by the time the line starts
    assert 5 * SR + 0.3 * SR <= release_start  # held after the line ends


def test_ducking_is_smooth() -> None:
    settings = MixSettings(lead_in=2.0)
    bed = dc_bed()
    music = mix([Section((Line(speech_like(3.0, 25), SR),))], bed=bed, settings=settings).music[:, 0]
    step = np.abs(np.diff(music[SR // 2 : -SR])).max()
    mean_attack_slope = 0.5 * (1 - 10 ** (-12 / 20)) / (0.08 * SR)  # 0.5 bed down 12 dB in 80 ms
    assert step < 3 * mean_attack_slope  # a staircase at the 10 ms control rate steps ~100x more


def test_fixed_length_is_exact_to_the_sample_and_the_outro_lands_on_it() -> None:
    intro, main, outro = noise(1.0, 40), noise(2.0, 41), noise(1.5, 42)
    sections = [Section((Line(dc(2.0, 0.1), SR),)), Section((Line(dc(3.0, 0.1), SR),))]
    settings = MixSettings(duck_db=0.0, length=17.25)
    stems = mix(sections, bed=Bed(intro, main, outro, SR, gain_db=0.0), settings=settings)
    assert len(stems.music) == len(stems.voice) == round(17.25 * SR)
    tail = prepared(outro, SR, gain_db=0.0)
    xf = round(settings.crossfade * SR)
    np.testing.assert_allclose(
        stems.music[-(len(tail) - xf) :], tail[xf:], atol=1e-7
    )  # the outro ends the programme
    with pytest.raises(AudioError, match=r"needs 7\.\d+ s but length is 6 s"):
        mix(sections, bed=Bed(intro, main, outro, SR), settings=MixSettings(length=6.0))


# -- streaming, markers, per-section ducking, speech processing ---------------------


def busy_programme() -> tuple[list[Section], Bed]:
    """Lines at several rates (some lazy), cues, a sting, pauses and a segmented bed."""
    lazy = Lazy(len(noise(1.3, 52, sr=22050, channels=1)), lambda: noise(1.3, 52, sr=22050, channels=1))
    sections = [
        Section((Line(speech_like(2.0, 50), SR, cues=(Cue(noise(0.3, 51), SR, at=0.5),)), Pause(0.4))),
        Section((Line(lazy, 22050), Sting(noise(0.5, 53, sr=24000), 24000), Line(speech_like(1.5, 54), SR))),
        Section((Line(speech_like(2.5, 55), SR),), music="outro"),
    ]
    return sections, Bed(noise(1.0, 56), noise(2.0, 57), noise(1.5, 58), SR, gain_db=-6.0)


@pytest.mark.parametrize("size", [480, 4800 * 7, 1 << 17])
def test_blocks_of_any_size_join_into_the_whole_mix(size: int) -> None:
    sections, bed = busy_programme()
    whole = mix(sections, bed=bed)
    program = Mix(sections, bed=bed)
    parts = list(program.blocks(size))
    assert (
        all(len(p.voice) <= max(size, 480) for p in parts)
        and sum(len(p.voice) for p in parts) == program.frames
    )
    for bus in ("voice", "sfx", "music"):
        np.testing.assert_array_equal(np.concatenate([getattr(p, bus) for p in parts]), getattr(whole, bus))


def test_lazy_audio_is_read_only_while_it_sounds() -> None:
    reads: list[int] = []

    def loader(index: int) -> Lazy:
        def load() -> np.ndarray:
            reads.append(index)
            return dc(1.0, 0.1)

        return Lazy(SR, load)

    # Lines are made ahead of time (on the mixer's threads) only when they start within _AHEAD.
    items = [item for i in range(4) for item in (Line(loader(i), SR), Pause(_AHEAD + 1.0))]
    program = Mix([Section(tuple(items))], settings=NO_DUCK)
    blocks = program.blocks(SR // 2)
    first = next(blocks)  # the first half second: only the first line sounds, the next is far off
    assert sorted(reads) == [0] and first.voice.any()
    while next(blocks).voice.any():  # the rest of the first line
        pass
    while not next(blocks).voice.any():  # the pause, up to the block where the second line sounds
        pass
    assert sorted(reads) == [0, 1]
    blocks.close()


def test_a_marker_pins_its_section_to_the_sample() -> None:
    sections = [Section((Line(dc(1.0, 0.1), SR),)), Section((Line(dc(0.5, 0.2), SR),), at=4.25)]
    voice = mix(sections, settings=NO_DUCK).voice
    assert onsets(voice) == [0, round(4.25 * SR)]


def test_a_marker_the_content_overruns_fails_with_the_times() -> None:
    sections = [Section((Line(dc(3.0, 0.1), SR),)), Section((Line(dc(0.5, 0.2), SR),), at=2.0)]
    with pytest.raises(
        AudioError, match=r"section 2 is marked at 2 s but what comes before it runs to 3.00 s"
    ):
        mix(sections, settings=NO_DUCK)


def test_sections_duck_with_their_own_settings() -> None:
    speech = speech_like(3.0, 60)
    sections = [
        Section((Line(speech, SR),)),
        Section((Line(speech, SR),), duck={"duck_db": -24.0}),
        Section((Line(speech, SR),), duck={"duck_db": 0.0}),
    ]
    settings = MixSettings(lead_in=2.0, section_gap=3.0)
    bed = dc_bed()
    ducked = mix(sections, bed=bed, settings=settings).music[:, 0]
    flat = [replace(section, duck={"duck_db": 0.0}) for section in sections]
    gain = 20 * np.log10(ducked / mix(flat, bed=bed, settings=settings).music[:, 0])
    starts = [2 * SR, 8 * SR, 14 * SR]  # 3 s lines, 3 s gaps
    depths = [float(np.median(gain[s + SR // 2 : s + 5 * SR // 2])) for s in starts]
    assert depths[0] == pytest.approx(-12.0, abs=1.5)
    assert depths[1] == pytest.approx(-24.0, abs=2.0)
    assert depths[2] == pytest.approx(0.0, abs=0.01)


def test_the_ducking_slew_by_runs_is_the_frame_loop_to_the_bit() -> None:
    from mixdown.dsp.ducking import _slew, _slew_frames

    rng = np.random.default_rng(5)
    for trial in range(200):
        n = int(rng.integers(1, 3000))
        run = np.searchsorted(rng.integers(1, 200, size=60).cumsum(), np.arange(n), side="right")
        duck = -rng.choice([0.0, 6.0, 12.0, 30.0], size=61)
        target = np.where(rng.random(61) < 0.6, duck, 0.0)[run]
        # a section recovers from the one before it; every fifth trial has targets past the depth
        depth = np.maximum(-duck, np.r_[0.0, -duck[:-1]])[run]
        if trial % 5 == 0:
            depth = rng.choice([0.0, 3.0, 12.0], size=61)[run]
        attack, release = (
            rng.choice([1.0, 3.0, 17.5], size=61)[run],
            rng.choice([1.0, 7.0, 40.0], size=61)[run],
        )
        fast = _slew(target, depth=depth, attack=attack, release=release)
        slow = _slew_frames(target.tolist(), depth.tolist(), attack.tolist(), release.tolist(), 0.0)
        np.testing.assert_array_equal(fast, slow)
    assert len(_slew(np.zeros(0), depth=np.zeros(0), attack=np.ones(0), release=np.ones(0))) == 0


def test_speech_compression_lowers_the_peak_to_loudness_ratio_of_lines() -> None:
    from mixdown.dsp.loudness import measure
    from mixdown.dsp.speech import SpeechSettings

    rng = np.random.default_rng(61)
    line = speech_like(4.0, 61)[:, :1].copy()
    line[rng.integers(0, len(line), 40)] *= 4.0  # plosive-like spikes

    def plr(settings: MixSettings) -> float:
        voice = mix([Section((Line(line, SR),))], settings=settings).voice
        found = measure(voice, SR)
        return float(found.true_peak - found.integrated)

    plain = MixSettings(channels=1, duck_db=0.0, line_lufs=-20.0)
    processed = replace(plain, speech=SpeechSettings(compress=True))
    assert plr(processed) < plr(plain) - 2.0
    loudness = measure(mix([Section((Line(line, SR),))], settings=processed).voice, SR).integrated
    assert loudness == pytest.approx(
        -20.0, abs=0.3
    )  # levelled after processing (edges of silence read a little lower)


@pytest.mark.parametrize("duck_db", [-12.0, 0.0])
def test_a_programme_rendered_in_parts_on_threads_equals_one_pass(duck_db: float) -> None:
    from concurrent.futures import ThreadPoolExecutor

    sections, bed = busy_programme()
    settings = MixSettings(duck_db=duck_db)
    whole = mix(sections, bed=bed, settings=settings)
    program = Mix(sections, bed=bed, settings=settings)
    n, hop = program.frames, program.hop
    cuts = [0, 37 * hop, (n // 2) // hop * hop, n]  # inside lines and cues, on ducking frames
    parts = list(zip(cuts[:-1], cuts[1:], strict=True))
    voiced: list[int] = []
    with program.rendering(parts, progress=voiced.append) as rendering:
        with ThreadPoolExecutor(max_workers=3) as threads:
            done = list(threads.map(lambda part: list(rendering.blocks(part[0], part[1], 4800)), parts))
    assert sum(voiced) == (n if duck_db < 0 else 0)  # the voice pass runs only to duck a bed
    blocks = [block for part in done for block in part]
    assert [position for position, _ in blocks] == sorted({p for p, _ in blocks}) and blocks[0][0] == 0
    for bus in ("voice", "sfx", "music"):
        joined = np.concatenate([getattr(stems, bus) for _, stems in blocks])
        np.testing.assert_array_equal(joined, getattr(whole, bus))


def test_parts_that_do_not_tile_the_programme_are_refused() -> None:
    sections, bed = busy_programme()
    program = Mix(sections, bed=bed)
    n, hop = program.frames, program.hop
    for parts in ([(0, hop * 3)], [(0, hop + 1), (hop + 1, n)], [(hop * 2, n), (0, hop * 2)]):
        with pytest.raises(ValueError, match="must tile"):
            with program.rendering(parts):
                pass
    with program.rendering() as rendering, pytest.raises(ValueError, match="cannot render"):
        next(rendering.blocks(hop + 1, n))


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="reads Linux's /proc/meminfo")
def test_the_voice_scratch_is_kept_in_memory_only_when_it_fits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rendering, "_MEMORY", str(tmp_path))  # stands for /dev/shm
    assert rendering.scratch_dir(1 << 20) == str(tmp_path)
    assert rendering.scratch_dir(1 << 60) is None  # more than there is: the temporary directory
    monkeypatch.setattr(rendering, "_MEMORY", str(tmp_path / "absent"))
    assert rendering.scratch_dir(1 << 20) is None


def test_a_voice_bus_of_mono_lines_is_kept_mono_and_mixes_as_a_stereo_one() -> None:
    """Mono lines (as TTS makes them) make a mono voice bus, added to every channel: the mix is
    the one a stereo bus of the same lines duplicated to both channels makes."""
    words = [speech_like(2.0, 60)[:, :1], speech_like(1.5, 61)[:, :1], noise(1.2, 62, sr=22050, channels=1)]

    def programme(channels: int) -> list[Section]:
        first, second, third = (np.repeat(y, channels, axis=1) for y in words)
        return [
            Section((Line(first, SR, cues=(Cue(noise(0.3, 63), SR, at=0.5),)), Pause(0.3))),
            Section((Line(Lazy(len(third), lambda: third, channels), 22050), Line(second, SR))),
        ]

    bed = Bed(noise(1.0, 64), noise(2.0, 65), noise(1.5, 66), SR, gain_db=-6.0)
    found = {}
    for channels in (1, 2):
        sections = programme(channels)
        with Mix(sections, bed=bed).rendering() as rendering:
            assert rendering.voice_channels == channels
        found[channels] = mix(sections, bed=bed)
    assert found[1].voice.shape == found[2].voice.shape and found[1].voice.shape[1] == 2
    for bus in ("voice", "sfx", "music"):
        np.testing.assert_allclose(getattr(found[1], bus), getattr(found[2], bus), atol=1e-7)
    assert np.abs(found[1].music).max() > 0.01  # a bed that ducking moved
