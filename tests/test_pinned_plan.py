"""Every key of a show that uses every planning feature, pinned.

A content key re-bills every user when it changes, and the plan's other
keys (mix, master, stems, delivery stamps) make every build run again. The
show here uses the built-in local renderers (synth, file, silence), a
counting fake voice, variants, markers, ducking, pronunciations,
stems and deliveries; the digest below was taken before the package was
reorganised into subpackages and must never move without a deliberate
change of a ``*_VERSION`` (and a CHANGELOG line saying who re-renders).
"""

from __future__ import annotations

import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixdown.keys import content_key
from mixdown.loader import load_show
from mixdown.renderers import Registry

from .conftest import BASIC_TOML

PINNED = (28, "82fd3c96ad6d3135bf57cea4cb4d1b84090a4ab4466ab8e82f337f2c4fac7929")
#: the same show as it plans by default ([cache] compact: it has variants), pinned when compact
#: mixes came in (mixdown.codecs.flac24)
PINNED_COMPACT = (28, "624b3a2908d86c3066f5b28a6de8948d2751176e79d18d3dc2abd581964a8e6d")

TOML = (
    BASIC_TOML.replace('formats = ["wav"]', 'formats = ["wav", "mp3"]\nstems = true\ntarget_lufs = -18')
    + """
[sfx.door]
renderer = "synth"
preset = "door"

[sfx.clip]
renderer = "file"
path = "media/clip.wav"

[music.pad]
renderer = "synth"
preset = "pulse"

[mix]
duck_db = -14

[pronunciations]
"Kofi" = "Koh-fee"

[scripts.synthy]
module = "news"
template = "stanzas/synthy.j2"
music = "pad"

[deliveries.alexa]
preset = "alexa"

[deliveries.radio]
preset = "ebu-r128"
formats = ["flac"]
"""
)

SYNTHY = """\
## open at=0:02 duck_db=-20 duck_attack=50ms
Hi {{ show }}. [sfx:door]

[sfx:clip]

## rest music=none
Kofi [pause 400ms] says hello.
"""


def _wav(path: Path, frames: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(range(256)) * (frames * 2 // 256))


def plan_digest(root: Path, fakes: dict[str, Any]) -> tuple[int, str]:
    """How many keys the show plans, and one digest over all of them (with their task names)."""
    show = load_show(root, registry=Registry(root, extra=fakes))
    plan = show.plan
    keys: list[Any] = [[a.task, a.key, a.take] for a in plan.assets.values()]
    for mix in plan.mixes:
        keys.append(
            [
                mix.name,
                mix.key,
                mix.master_key,
                mix.stamp,
                [mix.stem_key(b) for b in ("voice", "sfx", "music")],
            ]
        )
        keys.append([[name, mix.delivery_stamp(name)] for name, _, _ in mix.deliveries])
    return len(keys), content_key(keys)


def test_every_key_of_a_full_show_is_pinned(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    root = show(project_dot_toml=TOML + "\n[cache]\ncompact = false\n", stanzas__synthy_dot_j2=SYNTHY)
    _wav(root / "media" / "clip.wav", 8000)
    assert plan_digest(root, fakes) == PINNED


def test_a_compact_cache_keys_its_mixes_apart_and_renders_nothing_again(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    """A show with variants keeps its mixes and pre-mixes compact by default: their samples are
    24-bit steps, so their keys (and their masters') differ from a float cache's; every
    rendered asset keeps its key, so nothing is paid for again."""
    root = show(project_dot_toml=TOML, stanzas__synthy_dot_j2=SYNTHY)
    _wav(root / "media" / "clip.wav", 8000)
    assert plan_digest(root, fakes) == PINNED_COMPACT
    compact = load_show(root, registry=Registry(root, extra=fakes)).plan
    (root / "project.toml").write_text(TOML + "\n[cache]\ncompact = false\n")
    floats = load_show(root, registry=Registry(root, extra=fakes)).plan
    assert compact.assets.keys() == floats.assets.keys()
    assert [m.name for m in compact.mixes] == [m.name for m in floats.mixes]
    for a, b in zip(compact.mixes, floats.mixes, strict=True):
        assert a.key != b.key and a.master_key != b.master_key
        assert not set(filter(None, a.section_keys)) & set(filter(None, b.section_keys))
