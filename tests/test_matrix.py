"""The audio path over its whole domain: every rate, channel count, format and delivery preset,
at programme lengths on each side of every block, chunk, frame and segment boundary.

Each case builds a show through the real pipeline (doit, in process: render, mix, master,
deliver) with a speech-like voice, then reads every file back: the build succeeds, a WAV or
FLAC is exactly as long as the programme, every file decodes, and each lands on its target
within the preset's tolerance (at most 1 LU) under its true-peak ceiling. Hypothesis picks
the cases (derandomised: the same cases on every machine); the default run takes a sample,
``-m slow`` the long programmes and more of them.
"""

from __future__ import annotations

import io
import math
import textwrap
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from mixdown.codecs import mp3, parts
from mixdown.dsp.master import measure
from mixdown.renderers import RendererBase, RenderRequest, RenderResult
from mixdown.settings import PRESETS, PROGRAMME_RATES, rate_for

RATES = PROGRAMME_RATES
FORMATS = ("wav", "flac", "mp3", "ogg", "opus")
DELIVERY_PRESETS = tuple(sorted(set(PRESETS) - {"custom"}))
VOICE_RATE = 24000  # as TTS renders


def speech(seconds: float, sr: int, seed: int) -> np.ndarray:
    """A voice, mono float32 ``[shape=(n, 1)]``: a glottal pulse train at a wandering pitch through
    vowel formants, in syllables and words, with fricative noise between some of them.

    Its peak-to-loudness ratio (about 13.5 dB, as a TTS line's after the mix's compression)
    takes a few dB of limiting at -14 LUFS under -2 dBTP, and its narrow-band harmonics make a
    48 kbps MP3 decode 1-2 dB over its input's true peak, as the demo's piper voice does.
    """
    from scipy.signal import butter, lfilter, sosfilt

    rng = np.random.default_rng(seed)
    n = max(1, round(seconds * sr))
    t = np.arange(n) / sr
    f0 = 150 * 2 ** (0.25 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 6)) + 0.05 * rng.standard_normal())
    phase = np.cumsum(f0 / sr)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    glottal = lfilter([1.0], [1.0, -0.97], pulses)  # a -6 dB/octave source
    voiced = np.zeros(n)
    syllable = max(1, round(0.22 * sr))
    vowels = ((700, 1200, 2600), (300, 2300, 3000), (500, 900, 2400), (400, 1900, 2550))
    which = rng.integers(0, len(vowels), n // syllable + 1).repeat(syllable)[:n]
    for k, formants in enumerate(vowels):  # each vowel: its formants' band-passes in cascade
        y = glottal.copy()
        for f in formants:
            if f < sr / 2 - 200:
                y = sosfilt(butter(2, [f * 0.9, f * 1.1], btype="bandpass", fs=sr, output="sos"), y)
        voiced += np.where(which == k, y / (np.abs(y).max() + 1e-12), 0.0)
    hiss = sosfilt(
        butter(4, min(3000.0, sr / 2 - 500), btype="highpass", fs=sr, output="sos"), rng.standard_normal(n)
    )
    envelope = np.clip(np.sin(np.pi * (t * sr % syllable) / syllable), 0, None) ** 1.5
    spoken = rng.random(n // (3 * syllable) + 1) < 0.85
    spoken[0] = True  # never a programme of silence
    words = np.repeat(spoken, 3 * syllable)[:n]
    y = (voiced + 0.05 * hiss * (rng.random(n // syllable + 1) < 0.3).repeat(syllable)[:n]) * envelope * words
    return (0.5 * y / (np.abs(y).max() + 1e-12)).astype(np.float32)[:, None]


class Voice(RendererBase):
    """A show-local TTS: :func:`speech` of ``seconds``, at 24 kHz."""

    version = "1"
    kinds = frozenset({"voice"})
    params = {"seconds": (int, float), "seed": int}

    def render(self, request: RenderRequest) -> RenderResult:
        seconds = float(request.params["seconds"])
        return RenderResult(speech(seconds, VOICE_RATE, int(request.params.get("seed", 0))), VOICE_RATE)


def make_show(
    root: Path, sr: int, channels: int, frames: int, formats: tuple[str, ...], presets: tuple[str, ...]
) -> None:
    """A show whose one programme is ``frames`` samples long: a voice line a little shorter than it."""
    seconds = frames / sr
    voice = round(seconds * 0.9, 6)
    # the presets' own bitrates: an MP3 under 32 kHz (MPEG-2) takes the nearest it can carry
    deliveries = "".join(f'\n[deliveries.{name}]\npreset = "{name}"\n' for name in presets)
    toml = f"""
        [project]
        name = "Matrix"
        sample_rate = {sr}
        channels = {channels}
        voice = "host"

        [voices.host]
        renderer = "speech"
        seconds = {voice!r}
        seed = {frames % 1000}

        [scripts.show]
        template = "stanzas/show.j2"
        music = "none"

        [mix]
        lead_in = 0.0
        tail = 0.0
        length = {seconds!r}

        [master]
        formats = {list(formats)!r}
        """
    (root / "stanzas").mkdir(parents=True, exist_ok=True)
    (root / "stanzas" / "show.j2").write_text("Hello.\n")
    (root / "project.toml").write_text(textwrap.dedent(toml) + deliveries)


def build(root: Path) -> str:
    """Run doit on the show in ``root`` in process; return its output (the build must succeed)."""
    from doit.doit_cmd import DoitMain

    from mixdown.loader import MixdownLoader
    from mixdown.renderers import Registry

    out, err = io.StringIO(), io.StringIO()
    loader = MixdownLoader(root, registry=Registry(root, extra={"speech": Voice()}), config={"outfile": out})
    with redirect_stdout(out), redirect_stderr(err):
        code = DoitMain(loader, config_filenames=()).run([])
    assert code == 0, out.getvalue() + err.getvalue()
    return out.getvalue()


def decoded(path: Path) -> tuple[np.ndarray, int]:
    """Every sample of ``path`` (MP3: every frame's, see :func:`mixdown.codecs.mp3.decode`)."""
    if path.suffix == ".mp3":
        data = path.read_bytes()
        _, _, sr, channels = mp3.frame_index(data)
        return mp3.decode(data, channels), sr
    y, sr = sf.read(path, dtype="float32", always_2d=True)
    return y, sr


def check_file(
    path: Path, sr: int, channels: int, frames: int, target: float, ceiling: float, tolerance: float
) -> None:
    """``path`` decodes at the rate its format takes, is as long as the programme, and is on target."""
    y, found_sr = decoded(path)
    fmt = path.suffix[1:]
    assert found_sr == rate_for(fmt, sr), path.name
    assert y.shape[1] == channels, path.name
    expected = round(frames * found_sr / sr)
    if fmt in ("wav", "flac"):
        assert len(y) == expected, (path.name, len(y), expected)
    else:  # codecs pad to whole frames and add their decoders' delay
        assert expected - 1 <= len(y) <= expected + 4096 + found_sr // 10, (path.name, len(y), expected)
    if fmt not in ("wav", "flac") and frames < sr:
        return  # a lossy file's padding is a large part of a programme this short
    found = measure(y, found_sr)  # under one gating block: as if looped
    assert abs(found.integrated_lufs - target) <= tolerance, (path.name, found.integrated_lufs, target)
    assert found.true_peak_dbtp <= ceiling, (path.name, found.true_peak_dbtp, ceiling)


def segment_frames(sr: int) -> int:
    """The length of a segment at ``sr``: a programme longer than this is mastered in parts."""
    return parts.bounds(10**9, sr)[0][1]


def boundaries(sr: int, long: bool) -> list[int]:
    """Programme lengths where the audio path changes how it cuts its work, at ``sr``."""
    spf = mp3.samples_per_frame(sr)
    if long:
        length = segment_frames(sr)  # two segments from here, three (the last two in quarters) from 2x
        return [length, 2 * length]
    return [
        math.ceil(0.4 * sr),  # one gating block: shorter programmes are measured looped
        100 * spf,  # whole MP3 frames
        1 << 16,  # the true-peak meter's chunk, LAME's call, a check's block (1.4 s at 48 kHz)
        parts._CHUNK,  # a segment's chunk (2.7 s at 48 kHz)
        1 << 18,  # a streaming block (audio.BLOCK)
        parts.grid(sr),  # the segment grid: hops, limiter rows and MP3 frames together
    ]


def run_case(sr: int, channels: int, frames: int, formats: tuple[str, ...], presets: tuple[str, ...]) -> None:
    """Build a programme of ``frames`` samples into ``formats`` and ``presets``; check every file."""
    import tempfile

    with tempfile.TemporaryDirectory() as name:
        root = Path(name)
        make_show(root, sr, channels, frames, formats, presets)
        build(root)
        for fmt in formats:
            check_file(root / "build" / f"show.{fmt}", sr, channels, frames, -16.0, -1.0, 1.0)
        for preset in presets:
            delivery = PRESETS[preset]
            rate = delivery.sample_rate or sr
            for fmt in delivery.formats:
                path = root / "build" / f"show.{preset}.{fmt}"
                tolerance = min(delivery.tolerance_lu, 1.0)
                check_file(
                    path, rate, delivery.channels or channels, round(frames * rate / sr),
                    delivery.target_lufs, delivery.ceiling_dbtp, tolerance,
                )  # fmt: skip


CASE = settings(
    derandomize=True,  # the same cases on every machine and every run
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
    phases=[Phase.explicit, Phase.generate],  # a failing case is reported as it is, not shrunk
)


@settings(CASE, max_examples=36)
@given(
    sr=st.sampled_from(RATES),
    channels=st.sampled_from((1, 2)),
    which=st.integers(0, 5),
    offset=st.sampled_from((-1, 0, 1)),
)
@example(sr=48000, channels=2, which=0, offset=-1)  # under one gating block: measured looped
@example(sr=44100, channels=1, which=5, offset=1)  # a grid unit and a sample, with padded MP3 frames
def test_short_programmes_at_every_boundary_make_every_format(
    sr: int, channels: int, which: int, offset: int
) -> None:
    frames = boundaries(sr, long=False)[which] + offset
    run_case(sr, channels, frames, FORMATS, ())


@settings(CASE, max_examples=12)
@given(sr=st.sampled_from(RATES), channels=st.sampled_from((1, 2)), seconds=st.floats(6.0, 20.0))
def test_every_delivery_preset_lands_on_its_target(sr: int, channels: int, seconds: float) -> None:
    run_case(sr, channels, round(seconds * sr), ("wav", "mp3"), DELIVERY_PRESETS)


@pytest.mark.slow
@settings(CASE, max_examples=24)
@given(
    sr=st.sampled_from(RATES),
    channels=st.sampled_from((1, 2)),
    which=st.integers(0, 1),
    offset=st.sampled_from((-1, 0, 1)),
    preset=st.sampled_from(DELIVERY_PRESETS),
)
def test_long_programmes_at_every_segment_boundary(
    sr: int, channels: int, which: int, offset: int, preset: str
) -> None:
    frames = boundaries(sr, long=True)[which] + offset
    run_case(sr, channels, frames, FORMATS, (preset,))


@pytest.mark.slow
@settings(CASE, max_examples=60)
@given(
    sr=st.sampled_from(RATES),
    channels=st.sampled_from((1, 2)),
    which=st.integers(0, 5),
    offset=st.sampled_from((-1, 0, 1)),
    presets=st.sets(st.sampled_from(DELIVERY_PRESETS), min_size=1, max_size=2),
)
def test_short_programmes_every_format_and_preset(
    sr: int, channels: int, which: int, offset: int, presets: set[str]
) -> None:
    frames = boundaries(sr, long=False)[which] + offset
    run_case(sr, channels, frames, FORMATS, tuple(sorted(presets)))


@pytest.mark.slow
def test_a_long_programme_at_44_1_khz_masters_with_its_mp3() -> None:
    """Two and a half minutes at 44.1 kHz with an MP3: its check once metered a part short."""
    run_case(44100, 2, 150 * 44100, ("wav", "mp3"), ())


def test_the_boundaries_are_where_the_code_cuts() -> None:
    """The lengths above are the code's: a programme one sample over a segment is segmented."""
    for sr in RATES:
        length = segment_frames(sr)
        assert not parts.usable(length, sr) and parts.usable(length + 1, sr)
        assert len(parts.bounds(2 * length, sr)) == 2 < len(parts.bounds(2 * length + 1, sr))


def test_every_rate_is_accepted_and_a_wrong_one_lists_them(tmp_path: Path) -> None:
    from mixdown.errors import ConfigError
    from mixdown.loader import load_show
    from mixdown.renderers import Registry

    make_show(tmp_path, 96000, 2, 96000, ("wav",), ())
    text = (tmp_path / "project.toml").read_text()
    (tmp_path / "project.toml").write_text(text.replace("sample_rate = 96000", "sample_rate = 16000"))
    with pytest.raises(ConfigError, match=r"project.toml:4: sample_rate 16000 is not a delivery rate; "
                       r"use one of 22050, 24000, 32000, 44100, 48000, 88200, 96000"):  # fmt: skip
        load_show(tmp_path, registry=Registry(tmp_path, extra={"speech": Voice()}))


@pytest.mark.parametrize(("sr", "rate"), [(88200, 44100), (96000, 48000), (44100, 44100), (22050, 22050)])
def test_an_mp3_is_made_at_a_rate_it_can_carry(sr: int, rate: int) -> None:
    assert rate_for("mp3", sr) == rate
