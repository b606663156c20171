"""The malformed-show corpus: one mutation of a working show per case, each refused in one line.

Every case writes a small working show from scratch into a temp dir (its own
renderer in ``renderers/``, a ``file`` effect in ``media/``, a variants file),
applies one mutation and expects ``mixdown check`` to exit 2 with exactly one
line, ``mixdown: FILE[:LINE]: …``, naming where the problem is and containing
the expected words, with no traceback and nothing written to ``cache/`` or
``build/``. A representative subset runs a real ``doit`` in a subprocess
(``ERROR: FILE[:LINE]: …``, exit 3); every case does in the slow sweep.

To add a case, add a row to :data:`CASES`: an id, a mutation (built from
:func:`sub`, :func:`put`, :func:`raw`, :func:`rm`, :func:`folder`, or
several in a tuple), where the error must point (``{root}`` stands for the
show's directory) and a substring of the message.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest
import soundfile as sf

from mixdown.cli import main

PROJECT = """\
[project]
name = "Corpus"
voice = "host"
vars = { show = "Corpus" }

[voices.host]
renderer = "tone"
pitch = 0.0

[sfx.ding]
renderer = "synth"
preset = "chime"
gain_db = -10.0

[music.bed]
renderer = "synth"
preset = "pulse"
gain_db = -20.0

[modules.daily]
music = "bed"

[scripts.news]
module = "daily"
template = "stanzas/news.j2"
variants = "data/people.csv"

[mix]
line_gap = 0.35

[master]
formats = ["wav"]

[sfx.door]
renderer = "file"
path = "media/door.wav"
"""

NEWS = """\
## intro music=intro
Hello {{ name }}, this is {{ show }}. [sfx:ding]

[sfx:door]

## story
The bridge opened today. [pause 0.3s] It is long.
"""

TONE = """\
import numpy as np

from mixdown.renderers import RendererBase, RenderResult


class Renderer(RendererBase):
    version = "1"
    kinds = frozenset({"voice"})
    params = {"pitch": (int, float)}

    def render(self, request):
        t = np.arange(8000) / 16000
        return RenderResult((0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None], 16000)
"""

FILES = {
    "project.toml": PROJECT,
    "stanzas/news.j2": NEWS,
    "data/people.csv": "id,name\nanna,Anna\nkofi,Kofi\n",
    "renderers/tone.py": TONE,
    "pyproject.toml": (
        '[tool.doit]\nloader = "mixdown"\n\n[tool.doit.plugins.loader]\nmixdown = "mixdown.loader:MixdownLoader"\n'
    ),
}

Mutation = Callable[[Path], None]


def sub(name: str, old: str, new: str) -> Mutation:
    """Replace the one occurrence of ``old`` in file ``name`` with ``new``."""

    def mutate(root: Path) -> None:
        path = root / name
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {name}"
        path.write_text(text.replace(old, new))

    return mutate


def put(name: str, text: str) -> Mutation:
    """Write file ``name`` with ``text``."""

    def mutate(root: Path) -> None:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)

    return mutate


def raw(name: str, data: bytes) -> Mutation:
    """Write file ``name`` with bytes ``data``."""

    def mutate(root: Path) -> None:
        (root / name).write_bytes(data)

    return mutate


def cut(name: str) -> Mutation:
    """Keep the first half of file ``name`` (a copy that stopped halfway)."""

    def mutate(root: Path) -> None:
        data = (root / name).read_bytes()
        (root / name).write_bytes(data[: len(data) // 2])

    return mutate


def rm(name: str) -> Mutation:
    """Remove file ``name``."""
    return lambda root: (root / name).unlink()


def folder(name: str) -> Mutation:
    """Make ``name`` a directory (removing the file there)."""

    def mutate(root: Path) -> None:
        (root / name).unlink(missing_ok=True)
        (root / name).mkdir()
        (root / name / "x.txt").write_text("x")

    return mutate


def toml(old: str, new: str) -> Mutation:
    return sub("project.toml", old, new)


def news(text: str) -> Mutation:
    return put("stanzas/news.j2", text)


def people(text: str) -> Mutation:
    return put("data/people.csv", text)


def tone(text: str) -> Mutation:
    return put("renderers/tone.py", text)


def append(text: str) -> Mutation:
    """Add ``text`` at the end of project.toml (its first line is line 38)."""
    return lambda root: (root / "project.toml").write_text(PROJECT + "\n" + text)


HOST = '[voices.host]\nrenderer = "tone"\npitch = 0.0'
LATIN1 = "Hello caf\xe9\n".encode("latin-1")


class Case(NamedTuple):
    id: str
    mutation: Mutation | tuple[Mutation, ...]
    where: str  # FILE or FILE:LINE the one error line starts with ({root}: the show's directory)
    expect: str  # a substring of the message


CASES = [
    # -- TOML syntax and encoding
    Case("toml-unclosed-header", toml("[mix]", "[mix"), "project.toml:28", "TOML syntax error"),
    Case(
        "toml-unquoted-string", toml('name = "Corpus"', "name = Corpus"), "project.toml:2", "check the quotes"
    ),
    Case(
        "toml-duplicate-key", toml("pitch = 0.0", "pitch = 0.0\npitch = 1.0"), "project.toml:9", "TOML syntax"
    ),
    Case("toml-table-twice", append("[mix]\ntail = 1"), "project.toml:38", "TOML syntax error"),
    Case(
        "toml-not-utf8", raw("project.toml", b'[project]\nname = "caf\xe9"\n'), "project.toml:2", "not UTF-8"
    ),
    Case("toml-missing", rm("project.toml"), "{root}/project.toml", "not found"),
    # -- unknown keys, at their own line in every TOML form
    Case("unknown-top-level", toml("[project]", "colour = 1\n[project]"), "project.toml:1", "the top level"),
    Case(
        "unknown-project-key",
        toml('name = "Corpus"', 'name = "Corpus"\nnmae = "x"'),
        "project.toml:3",
        "'nmae'",
    ),
    Case(
        "unknown-renderer-setting", toml("pitch = 0.0", "pitch = 0.0\nsped = 1"), "project.toml:9", "'sped'"
    ),
    Case(
        "unknown-mix-key",
        toml("line_gap = 0.35", "line_gap = 0.35\nline_gapp = 1"),
        "project.toml:30",
        "[mix]",
    ),
    Case(
        "unknown-master-key",
        toml('formats = ["wav"]', 'formats = ["wav"]\nloud = 1'),
        "project.toml:33",
        "'loud'",
    ),
    Case(
        "unknown-script-key",
        toml('module = "daily"', 'module = "daily"\nvoices = "x"'),
        "project.toml:25",
        "'voices'",
    ),
    Case(
        "unknown-module-key", toml('music = "bed"', 'music = "bed"\ntempo = 1'), "project.toml:22", "'tempo'"
    ),
    Case("unknown-delivery-key", append("[deliveries.x]\nloud = 1"), "project.toml:39", "unknown key 'loud'"),
    Case("doit-setting-here", append('[tool.doit]\nloader = "mixdown"'), "project.toml:38", "pyproject.toml"),
    Case("unknown-provider-key", append("[providers.openai]\nspeed = 1"), "project.toml:39", "'speed'"),
    Case(
        "dotted-key",
        toml(HOST, '[voices]\nhost.renderer = "tone"\nhost.sped = 1'),
        "project.toml:8",
        "'sped'",
    ),
    Case(
        "dotted-header-key",
        toml(HOST, '[voices]\n"host".renderer = "tone"\n"host".pitch = "x"'),
        "project.toml:8",
        "'pitch' must be",
    ),
    Case(
        "inline-table",
        toml(HOST, '[voices]\nhost = { renderer = "tone", sped = 1 }'),
        "project.toml:7",
        "'sped'",
    ),
    Case(
        "quoted-header",
        toml(HOST, '[voices."host"]\n"renderer" = "tone"\n"sped" = 1'),
        "project.toml:8",
        "'sped'",
    ),
    # -- wrong types
    Case("type-name", toml('name = "Corpus"', "name = 3"), "project.toml:2", "'name' must be a string"),
    Case("type-source-not-table", toml(HOST, '[voices]\nhost = "tone"'), "project.toml:7", "must be a table"),
    Case("type-renderer-setting", toml("pitch = 0.0", 'pitch = "high"'), "project.toml:8", "'pitch' must be"),
    Case(
        "type-formats",
        toml('formats = ["wav"]', 'formats = "wav"'),
        "project.toml:32",
        "'formats' must be a list",
    ),
    Case("type-switch", toml("line_gap = 0.35", 'speech_eq = "yes"'), "project.toml:29", "true or false"),
    Case(
        "type-vars",
        toml('vars = { show = "Corpus" }', "vars = 3"),
        "project.toml:4",
        "'vars' must be a table",
    ),
    Case(
        "type-gain",
        toml("gain_db = -10.0", 'gain_db = "loud"'),
        "project.toml:13",
        "must be an integer or a number",
    ),
    Case(
        "type-mix-table",
        (toml("[mix]\nline_gap = 0.35", ""), toml("[project]", "mix = 3\n[project]")),
        "project.toml:1",
        "'mix' must be a table",
    ),
    Case(
        "type-channels",
        toml('name = "Corpus"', 'name = "Corpus"\nchannels = "2"'),
        "project.toml:3",
        "'channels'",
    ),
    # -- values out of range (one table of ranges)
    Case(
        "gain-nan",
        toml("gain_db = -10.0", "gain_db = nan"),
        "project.toml:13",
        "'gain_db' = nan is not allowed",
    ),
    Case("gain-loud", toml("gain_db = -10.0", "gain_db = 200"), "project.toml:13", "from -60 to 24 dB"),
    Case("gain-inf", toml("gain_db = -20.0", "gain_db = -inf"), "project.toml:18", "'gain_db' = -inf"),
    Case("offset-far", toml("gain_db = -10.0", "offset = 30"), "project.toml:13", "'offset' = 30"),
    Case(
        "line-gap-negative",
        toml("line_gap = 0.35", "line_gap = -1"),
        "project.toml:29",
        "from 0 to 60 seconds",
    ),
    Case("duck-db-positive", toml("line_gap = 0.35", "duck_db = 3"), "project.toml:29", "from -60 to 0 dB"),
    Case(
        "duck-attack-negative",
        toml("line_gap = 0.35", "duck_attack = -0.1"),
        "project.toml:29",
        "'duck_attack'",
    ),
    Case(
        "crossfade-long", toml("line_gap = 0.35", "crossfade = 100"), "project.toml:29", "'crossfade' = 100"
    ),
    Case("line-lufs-loud", toml("line_gap = 0.35", "line_lufs = 0"), "project.toml:29", "-40 to -5 LUFS"),
    Case("length-huge", toml("line_gap = 0.35", "length = 1e9"), "project.toml:29", "'length'"),
    Case(
        "target-positive", toml('formats = ["wav"]', "target_lufs = 10"), "project.toml:32", "-40 to -5 LUFS"
    ),
    Case(
        "ceiling-positive",
        toml('formats = ["wav"]', 'formats = ["wav"]\nceiling_dbtp = 2'),
        "project.toml:33",
        "dBTP",
    ),
    Case(
        "master-preset",
        toml('formats = ["wav"]', 'preset = "loud"'),
        "project.toml:32",
        "unknown preset 'loud'",
    ),
    Case(
        "master-format", toml('formats = ["wav"]', 'formats = ["aiff"]'), "project.toml:32", "formats must be"
    ),
    Case(
        "bitrate-7", append("[deliveries.x]\nbitrate = 7"), "project.toml:39", "'bitrate' = 7 is not allowed"
    ),
    Case(
        "bitrate-for-rate",
        append('[deliveries.x]\npreset = "alexa"\nbitrate = 320'),
        "project.toml:40",
        "24000 Hz",
    ),
    Case(
        "delivery-target",
        append('[deliveries.x]\npreset = "alexa"\ntarget_lufs = 10'),
        "project.toml:40",
        "LUFS",
    ),
    Case("delivery-channels", append("[deliveries.x]\nchannels = 3"), "project.toml:39", "use one of 1, 2"),
    Case("delivery-bit-depth", append("[deliveries.x]\nbit_depth = 20"), "project.toml:39", "16, 24, 32"),
    Case(
        "delivery-rate",
        append("[deliveries.x]\nsample_rate = 1234"),
        "project.toml:39",
        "'sample_rate' = 1234",
    ),
    Case("delivery-preset", append('[deliveries.x]\npreset = "radio"'), "project.toml:39", "unknown preset"),
    Case("provider-concurrency", append("[providers.openai]\nconcurrency = 0"), "project.toml:39", "1 to 64"),
    Case("provider-timeout", append("[providers.openai]\ntimeout = -1"), "project.toml:39", "'timeout' = -1"),
    Case("renderer-setting-nan", toml("pitch = 0.0", "pitch = nan"), "project.toml:8", "give a finite value"),
    Case(
        "renderer-range",
        toml('preset = "pulse"', 'preset = "pulse"\ntempo = 1000'),
        "project.toml:18",
        "tempo must be between 40 and 200",
    ),
    Case(
        "project-rate",
        toml('name = "Corpus"', 'name = "Corpus"\nsample_rate = 12345'),
        "project.toml:3",
        "sample_rate",
    ),
    Case(
        "project-channels",
        toml('name = "Corpus"', 'name = "Corpus"\nchannels = 3'),
        "project.toml:3",
        "1 or 2",
    ),
    # -- missing tables and names that point nowhere
    Case("no-voices", toml(HOST, ""), "project.toml:1", "declare at least one [voices.NAME]"),
    Case(
        "no-scripts",
        toml(
            '[scripts.news]\nmodule = "daily"\ntemplate = "stanzas/news.j2"\nvariants = "data/people.csv"', ""
        ),
        "project.toml:1",
        "declare at least one [scripts.NAME]",
    ),
    Case(
        "script-no-template", toml('template = "stanzas/news.j2"\n', ""), "project.toml:23", "needs template"
    ),
    Case("source-no-renderer", toml('renderer = "tone"\n', ""), "project.toml:6", 'needs renderer = "'),
    Case(
        "unknown-renderer",
        toml('renderer = "tone"', 'renderer = "nope"'),
        "project.toml:7",
        "unknown renderer 'nope'",
    ),
    Case(
        "renderer-wrong-kind",
        toml('renderer = "tone"\npitch = 0.0', 'renderer = "synth"'),
        "project.toml:7",
        "cannot render voice",
    ),
    Case("renderer-needs-setting", toml('preset = "chime"\n', ""), "project.toml:10", "synth needs a preset"),
    Case(
        "unknown-project-voice",
        toml('voice = "host"', 'voice = "nope"'),
        "project.toml:3",
        "unknown voice 'nope'",
    ),
    Case(
        "unknown-module", toml('module = "daily"', 'module = "weekly"'), "project.toml:24", "unknown module"
    ),
    Case(
        "unknown-music",
        toml('music = "bed"', 'music = "jazz"'),
        "project.toml:21",
        "unknown music bed 'jazz'",
    ),
    Case("bad-name", toml("[scripts.news]", '[scripts."a/b"]'), "project.toml:23", "may use only letters"),
    # -- stanzas: every kind of stanza error
    Case("stanza-empty-script", news("{# nothing #}\n"), "stanzas/news.j2", "the script is empty"),
    Case("stanza-empty-section", news("## a\n\n## b\nText.\n"), "stanzas/news.j2:1", "section 'a' is empty"),
    Case("stanza-heading-no-name", news("##\nText.\n"), "stanzas/news.j2:1", "needs a name"),
    Case(
        "stanza-heading-bad-char",
        news("## fore/cast\nText.\n"),
        "stanzas/news.j2:1",
        "a character that is not allowed",
    ),
    Case("stanza-section-twice", news("## a\nA.\n## a\nB.\n"), "stanzas/news.j2:3", "appears twice"),
    Case(
        "stanza-bad-setting", news("## a tempo=3\nA.\n"), "stanzas/news.j2:1", "bad section setting 'tempo=3'"
    ),
    Case("stanza-setting-twice", news("## a at=1 at=2\nA.\n"), "stanzas/news.j2:1", "given twice"),
    Case("stanza-bad-music", news("## a music=loud\nA.\n"), "stanzas/news.j2:1", "use one of auto"),
    Case(
        "stanza-at-order",
        news("## a at=10\nA.\n\n## b at=5\nB.\n"),
        "stanzas/news.j2:4",
        "markers must increase",
    ),
    Case("stanza-at-negative", news("## a at=-5\nA.\n"), "stanzas/news.j2:1", "before the programme starts"),
    Case("stanza-at-bad-time", news("## a at=soon\nA.\n"), "stanzas/news.j2:1", "bad time 'at=soon'"),
    Case("stanza-at-minutes", news("## a at=1:75\nA.\n"), "stanzas/news.j2:1", "go up to 59"),
    Case("stanza-at-too-late", news("## a at=13:00:00\nA.\n"), "stanzas/news.j2:1", "'at' = 46800.0"),
    Case("stanza-duck-time", news("## a duck_attack=-1\nA.\n"), "stanzas/news.j2:1", "cannot be negative"),
    Case(
        "stanza-duck-time-long", news("## a duck_hold=20s\nA.\n"), "stanzas/news.j2:1", "'duck_hold' = 20.0"
    ),
    Case("stanza-duck-db-word", news("## a duck_db=nan\nA.\n"), "stanzas/news.j2:1", "not a number of dB"),
    Case("stanza-duck-db-raise", news("## a duck_db=3\nA.\n"), "stanzas/news.j2:1", "would raise the bed"),
    Case("stanza-duck-db-deep", news("## a duck_db=-90\nA.\n"), "stanzas/news.j2:1", "from -60 to 0 dB"),
    Case(
        "stanza-unknown-directive",
        news("## a\nOne line,\nand [sxf:door].\n"),
        "stanzas/news.j2:3",
        "[sxf:door]",
    ),
    Case(
        "stanza-voice-late",
        news("## a\nHi [voice:host] there.\n"),
        "stanzas/news.j2:2",
        "must open the paragraph",
    ),
    Case("stanza-sfx-no-name", news("## a\nHi [sfx:] there.\n"), "stanzas/news.j2:2", "needs a name"),
    Case("stanza-bad-pause", news("## a\nHi.\nThere [pause soon].\n"), "stanzas/news.j2:3", "bad pause"),
    Case("stanza-pause-long", news("## a\nHi [pause 90s] there.\n"), "stanzas/news.j2:2", "'pause' = 90.0"),
    Case("stanza-unknown-voice", news("## a voice=carl\nA.\n"), "stanzas/news.j2:1", "unknown voice 'carl'"),
    Case("stanza-unknown-sfx", news("## a\nA.\n\n[sfx:bang]\n"), "stanzas/news.j2:4", "unknown sfx 'bang'"),
    Case(
        "stanza-unknown-cue",
        news("## a\nA line\nwith a [sfx:bang].\n"),
        "stanzas/news.j2:3",
        "unknown sfx 'bang'",
    ),
    Case(
        "stanza-unknown-line-voice",
        news("## a\n\n[voice:carl] A.\n"),
        "stanzas/news.j2:3",
        "unknown voice 'carl'",
    ),
    # -- templates
    Case(
        "template-undefined", news("## a\nHi {{ nobody }}.\n"), "stanzas/news.j2:2", "'nobody' is undefined"
    ),
    Case("template-syntax", news("## a\nHi.\n{% endif %}\n"), "stanzas/news.j2:3", "endif"),
    Case(
        "template-missing-include",
        news("## a\nHi.\n{% include 'stanzas/x.j2' %}\n"),
        "stanzas/news.j2:3",
        "not found",
    ),
    Case(
        "template-recursive-include",
        news("## a\nHi.\n\n{% include 'stanzas/news.j2' %}\n"),
        "stanzas/news.j2:4",
        "includes itself",
    ),
    Case("template-not-utf8", raw("stanzas/news.j2", b"## a\n" + LATIN1), "stanzas/news.j2:2", "not UTF-8"),
    Case("template-binary", raw("stanzas/news.j2", bytes(range(256))), "stanzas/news.j2:2", "not UTF-8"),
    Case("template-directory", folder("stanzas/news.j2"), "project.toml:25", "is a directory"),
    Case("template-missing", rm("stanzas/news.j2"), "project.toml:25", "does not exist"),
    Case("template-expression", news("## a\n\nHi {{ 1 // 0 }}.\n"), "stanzas/news.j2:3", "ZeroDivisionError"),
    Case(
        "template-loop-lines",
        news(
            "{#- lines -#}\n{%- for n in [1, 2] %}\n## s{{ n }}\nHello.{{ ' [sxf:x]' if n == 2 else '' }}\n{%- endfor %}\n"
        ),
        "stanzas/news.j2:4",
        "[sxf:x]",
    ),
    Case(
        "template-include-lines",
        (
            news("## a\nHi.\n\n{% include 'stanzas/part.j2' %}\n"),
            put("stanzas/part.j2", "\n\nBad [pause x].\n"),
        ),
        "stanzas/part.j2:3",
        "bad pause",
    ),
    Case(
        "template-include-not-utf8",
        (news("## a\nHi.\n{% include 'stanzas/part.j2' %}\n"), raw("stanzas/part.j2", LATIN1)),
        "stanzas/part.j2:1",
        "not UTF-8",
    ),
    # -- variants files
    Case("csv-no-rows", people("id,name\n"), "data/people.csv", "no rows"),
    Case("csv-empty", people(""), "data/people.csv", "no rows"),
    Case(
        "csv-ragged",
        people("id,name\nanna,Anna\nkofi,Kofi,x\n"),
        "data/people.csv:3",
        "wrong number of fields",
    ),
    Case(
        "csv-duplicate-id",
        people("id,name\nanna,Anna\nanna,Kofi\n"),
        "data/people.csv:3",
        "repeats an earlier id",
    ),
    Case("csv-bad-id", people("id,name\na/b,Anna\n"), "data/people.csv:2", "not a usable name"),
    Case("csv-blank-id", people("id,name\n ,Anna\n"), "data/people.csv:2", "not a usable name"),
    Case(
        "csv-unicode-name",
        people("name,city\nZo\u00eb,Krak\u00f3w\n"),
        "data/people.csv:2",
        "add an 'id' column",
    ),
    Case(
        "csv-not-utf8", raw("data/people.csv", b"id,name\nanna,Ann\xe9\n"), "data/people.csv:2", "not UTF-8"
    ),
    Case(
        "csv-missing",
        toml('variants = "data/people.csv"', 'variants = "data/nope.csv"'),
        "project.toml:26",
        "does not exist",
    ),
    Case(
        "csv-directory",
        toml('variants = "data/people.csv"', 'variants = "data"'),
        "project.toml:26",
        "is a directory",
    ),
    Case("csv-missing-column", people("id,nom\nanna,Anna\n"), "stanzas/news.j2:2", "'name' is undefined"),
    # -- media and paths
    Case("media-missing", rm("media/door.wav"), "project.toml:34", "does not exist"),
    Case(
        "media-not-audio", raw("media/door.wav", b"RIFF not really"), "project.toml:34", "not readable audio"
    ),
    Case("media-truncated", cut("media/door.wav"), "project.toml:34", "cut short: its header says"),
    Case("media-directory", folder("media/door.wav"), "project.toml:34", "does not exist"),
    Case(
        "media-outside",
        toml('path = "media/door.wav"', 'path = "../door.wav"'),
        "project.toml:34",
        "outside the project",
    ),
    Case(
        "media-absolute",
        toml('path = "media/door.wav"', 'path = "/etc/hostname"'),
        "project.toml:34",
        "outside the project",
    ),
    Case(
        "template-outside",
        toml('template = "stanzas/news.j2"', 'template = "../news.j2"'),
        "project.toml:25",
        "outside",
    ),
    Case(
        "template-absolute",
        toml('template = "stanzas/news.j2"', 'template = "/etc/hostname"'),
        "project.toml:25",
        "outside",
    ),
    Case(
        "build-outside",
        toml('name = "Corpus"', 'name = "Corpus"\nbuild = "/tmp"'),
        "project.toml:3",
        "outside",
    ),
    # -- the show's own renderers, at load time
    Case("renderer-syntax-error", tone("import numpy\n\ndef (:\n"), "renderers/tone.py:3", "SyntaxError"),
    Case("renderer-no-class", tone("X = 1\n"), "renderers/tone.py", "defines no 'Renderer'"),
    Case(
        "renderer-import-error",
        tone("import not_a_module_here\n"),
        "renderers/tone.py:1",
        "ModuleNotFoundError",
    ),
    Case(
        "renderer-raises",
        tone("\n\nraise RuntimeError('boom')\n"),
        "renderers/tone.py:3",
        "RuntimeError: boom",
    ),
    Case(
        "renderer-check-crashes",
        sub(
            "renderers/tone.py",
            "    def render(",
            "    @classmethod\n    def check(cls, params):\n        return params['x']\n\n    def render(",
        ),
        "project.toml:7",
        "KeyError",
    ),
    Case(
        "renderer-check-multiline",
        sub(
            "renderers/tone.py",
            "    def render(",
            "    @classmethod\n    def check(cls, params):\n        raise ValueError('pitch is off:\\n  use 0')\n\n    def render(",
        ),
        "project.toml:8",
        "pitch is off:; use 0",
    ),
    Case(
        "renderer-bad-params",
        sub("renderers/tone.py", 'params = {"pitch": (int, float)}', "params = 3"),
        "project.toml:7",
        "fix the renderer",
    ),
]

#: A spread of the kinds above, run through a real ``doit`` in the fast suite.
DOIT_SUBSET = {
    "toml-unclosed-header",
    "dotted-key",
    "gain-nan",
    "bitrate-7",
    "stanza-heading-bad-char",
    "template-loop-lines",
    "template-include-lines",
    "template-recursive-include",
    "csv-not-utf8",
    "media-not-audio",
    "renderer-syntax-error",
    "renderer-no-class",
    "renderer-check-multiline",
}


def make_show(root: Path, case: Case | None = None) -> Path:
    """Write the working show into ``root`` and apply ``case``'s mutation."""
    for name, text in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "media").mkdir()
    t = np.arange(4000) / 16000
    sf.write(root / "media" / "door.wav", (0.3 * np.sin(2 * np.pi * 440 * t))[:, None], 16000)
    if case is not None:
        mutations = case.mutation if isinstance(case.mutation, tuple) else (case.mutation,)
        for mutate in mutations:
            mutate(root)
    return root


def assert_one_line(output: str, prefix: str, case: Case, root: Path) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    where = case.where.format(root=root)
    assert lines[0].startswith(f"{prefix}{where}: "), lines[0]
    assert case.expect in lines[0], lines[0]
    assert not (root / "cache").exists() and not (root / "build").exists()


def test_the_unmutated_show_is_fine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_show(tmp_path)
    assert main(["check", "-d", str(root)]) == 0, capsys.readouterr().err
    assert capsys.readouterr().out.startswith("ok: Corpus: ")


def test_the_corpus_is_large_and_its_ids_unique() -> None:
    assert len(CASES) >= 80
    assert len({case.id for case in CASES}) == len(CASES)
    assert DOIT_SUBSET <= {case.id for case in CASES}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_mixdown_check_refuses_in_one_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_show(tmp_path, case)
    assert main(["check", "-d", str(root)]) == 2
    captured = capsys.readouterr()
    assert_one_line(captured.out + captured.err, "mixdown: ", case, root)


def run_doit(root: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "MIXDOWN_CACHE"}
    doit = Path(sys.executable).with_name("doit")
    return subprocess.run([str(doit)], cwd=root, env=env, capture_output=True, text=True, timeout=120)


def check_doit(case: Case, root: Path) -> None:
    done = run_doit(make_show(root, case))
    assert done.returncode != 0
    assert_one_line(done.stdout + done.stderr, "ERROR: ", case, root)


@pytest.mark.parametrize("case", [c for c in CASES if c.id in DOIT_SUBSET], ids=lambda case: case.id)
def test_doit_refuses_in_one_line(case: Case, tmp_path: Path) -> None:
    check_doit(case, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("case", [c for c in CASES if c.id not in DOIT_SUBSET], ids=lambda case: case.id)
def test_doit_refuses_every_case_in_one_line(case: Case, tmp_path: Path) -> None:
    check_doit(case, tmp_path)
