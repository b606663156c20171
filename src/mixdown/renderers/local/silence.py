"""``silence``: digital silence of a given length.

A placeholder while a real asset is being made, and a renderer every test
can use. Pauses in scripts need no renderer; they are gaps in the timeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..base import RendererBase, RenderRequest, RenderResult

__all__ = ["Silence"]


class Silence(RendererBase):
    """Silence of ``duration`` seconds (default 1.0) at ``sample_rate`` (48000)."""

    version = "1"
    params = {"duration": (int, float), "sample_rate": int}

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Require a positive duration and a sample rate from 8 kHz to 192 kHz."""
        if not 0 < params.get("duration", 1.0) <= 3600:
            raise ValueError("'duration' must be between 0 and 3600 seconds")
        if not 8000 <= params.get("sample_rate", 48000) <= 192000:
            raise ValueError("'sample_rate' must be between 8000 and 192000")

    def render(self, request: RenderRequest) -> RenderResult:
        """Return zeros of ``(n, 1)`` for the requested duration."""
        sr = int(request.params.get("sample_rate", 48000))
        n = max(1, round(float(request.params.get("duration", 1.0)) * sr))
        return RenderResult(np.zeros((n, 1), dtype=np.float32), sr)
