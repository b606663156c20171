"""``file``: the user's own media (any format libsndfile reads).

The content key is the file's sha256, not its name: renaming or moving a
sound keeps its renders; editing it renders again. ``start``/``end`` trim it
(seconds).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...codecs.wav import read_audio
from ...errors import AudioError, RenderFailed
from ...keys import file_digest
from ..base import RendererBase, RenderRequest, RenderResult

__all__ = ["File", "resolve_media"]


def resolve_media(root: Path, relative: str) -> Path:
    """Resolve ``relative`` inside ``root``; raise ``ValueError`` if it escapes or is missing."""
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise ValueError(f"path {relative!r} points outside the project; keep media inside it")
    if not path.is_file():
        raise ValueError(f"media file {relative!r} does not exist; check the path")
    return path


#: what libsndfile says of a WAV or AIFF whose data chunk runs past the end of the file
_DATA_SIZE = re.compile(r"^(?:data|SSND) : (\d+) \(should be (\d+)\)", re.MULTILINE)
#: from here up, a data size is what a writer that could not seek back (to a pipe) left in
#: place of the real one (sox 0x7FFFF000, others 0xFFFFFFFF), as is 0
_UNKNOWN_SIZE = 0x7FFFF000


def _cut_short(extra_info: str) -> tuple[int, int] | None:
    """(bytes the header says, bytes there are) when libsndfile's ``extra_info`` of a file says
    its audio data ends before its header says it does; None otherwise. libsndfile reads such
    a file as a shorter sound without complaint; a size a streaming writer left unfilled is
    not a cut."""
    found = _DATA_SIZE.search(extra_info)
    if found is None:
        return None
    said, there = int(found.group(1)), int(found.group(2))
    return (said, there) if there < said and 0 < said < _UNKNOWN_SIZE else None


class File(RendererBase):
    """Read ``path`` (relative to the project), optionally trimmed to ``start``..``end``."""

    version = "1"
    kinds = frozenset({"voice", "sfx", "music"})
    params = {"path": str, "start": (int, float), "end": (int, float)}

    @classmethod
    def check(cls, params: Mapping[str, Any]) -> None:
        """Require ``path``; ``start`` before ``end`` when both are set."""
        if "path" not in params:
            raise ValueError("the 'file' renderer needs 'path' (a media file in the project)")
        start, end = params.get("start", 0.0), params.get("end")
        if start < 0 or (end is not None and end <= start):
            raise ValueError("'start' must be >= 0 and 'end' after 'start'")

    @classmethod
    def key_params(cls, params: Mapping[str, Any], root: Path) -> dict[str, Any]:
        """Swap the path for the file's content hash, after checking it decodes."""
        path = resolve_media(root, params["path"])
        import soundfile as sf

        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError) as err:
            raise ValueError(
                f"{params['path']!r} is not readable audio ({err}); use WAV, FLAC, OGG or MP3 "
                "(convert it, e.g. ffmpeg -i IN OUT.wav)"
            ) from None
        short = _cut_short(info.extra_info)
        if short is not None:
            raise ValueError(
                f"{params['path']!r} is cut short: its header says {short[0]:,} bytes of audio, "
                f"the file holds {short[1]:,} (a copy or download that stopped?); copy or export it again"
            )
        rest = {k: v for k, v in params.items() if k != "path"}
        return {**rest, "sha256": file_digest(path)}

    def render(self, request: RenderRequest) -> RenderResult:
        """Decode the file and trim it."""
        params = request.params
        try:
            path = resolve_media(request.root, params["path"])
            y, sr = read_audio(path)
        except (ValueError, AudioError) as err:
            raise RenderFailed(f"{request.target}: {err}") from None
        start = round(float(params.get("start", 0.0)) * sr)
        end = params.get("end")
        y = y[start : round(float(end) * sr) if end is not None else None]
        if len(y) == 0:
            raise RenderFailed(f"{request.target}: {params['path']!r} is empty after trimming")
        return RenderResult(y, sr, {"source": Path(params["path"]).name})
