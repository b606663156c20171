from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mixdown.errors import ConfigError, ProjectError, TemplateError
from mixdown.renderers import Registry
from mixdown.show.project import load
from mixdown.show.stanza import Play, Say
from mixdown.show.templates import render_scripts

from .conftest import BASIC_TOML


def load_with(root: Path, fakes: dict[str, Any]) -> Any:
    return load(root, registry=Registry(root, extra=fakes))


def test_loads_sources_scripts_and_defaults(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    project = load_with(show(), fakes)
    assert project.name == "Test Show" and (project.sample_rate, project.channels) == (48000, 2)
    assert project.voices["ben"].params == {"speed": 1.2}
    assert project.music["bed"].mix == {"gain_db": -24.0} and "gain_db" not in project.music["bed"].params
    briefing = project.scripts["news/briefing"]
    assert (briefing.voice, briefing.music, briefing.variants) == ("anna", "bed", "data/people.csv")
    assert project.scripts["news/extra"].voice == "ben"
    assert project.master == {"target_lufs": -16.0, "ceiling_dbtp": -1.0, "formats": ["wav"], "stems": False}
    assert project.cache_dir == project.root / "cache" and project.build_dir == project.root / "build"


def test_cache_location_from_environment(
    show: Callable[..., Path], fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIXDOWN_CACHE", str(tmp_path / "shared"))
    assert load_with(show(), fakes).cache_dir == tmp_path / "shared"


def test_renders_one_rendition_per_variant_row(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    renditions = render_scripts(load_with(show(), fakes))
    assert [r.name for r in renditions] == ["news/briefing@anna", "news/briefing@kofi", "news/extra"]
    intro = renditions[1].sections[0]
    assert isinstance(intro.items[0], Say) and intro.items[0].text == "Hello Kofi, this is Test Show."
    assert isinstance(renditions[0].sections[1].items[-1], Play)


def toml_with(old: str, new: str) -> str:
    assert old in BASIC_TOML
    return BASIC_TOML.replace(old, new)


@pytest.mark.parametrize(
    ("files", "error", "message"),
    [
        (
            {"project_dot_toml": "[project]\nname = 1\n[voices\n"},
            ConfigError,
            "project.toml:3: TOML syntax error at column 8: ",
        ),
        (
            {"project_dot_toml": toml_with("speed = 1.2", 'speed = 1.2\ncolour = "red"')},
            ConfigError,
            "project.toml:14: unknown key 'colour' in [voices.ben]; allowed: gain_db, pitch, renderer, speed",
        ),
        (
            {"project_dot_toml": toml_with('name = "Test Show"', 'name = "Test Show"\ncolor = 1')},
            ConfigError,
            "project.toml:4: unknown key 'color' in [project]",
        ),
        (
            {"project_dot_toml": toml_with("speed = 1.2", 'speed = "fast"')},
            ConfigError,
            "project.toml:13: 'speed' must be an integer or a number",
        ),
        (
            {"project_dot_toml": toml_with('renderer = "fake"\nspeed = 1.2', 'renderer = "nope"')},
            ConfigError,
            "project.toml:12: unknown renderer 'nope'; known renderers: audiostack, elevenlabs, fake, file, noise, openai, piper, silence, stability, suno, synth",
        ),
        (
            {"project_dot_toml": toml_with('voice = "ben"', 'voice = "carl"')},
            ConfigError,
            "project.toml:37: unknown voice 'carl'; declared voices: anna, ben",
        ),
        (
            {"project_dot_toml": toml_with('music = "bed"', 'music = "jazz"')},
            ConfigError,
            "project.toml:27: unknown music bed 'jazz'",
        ),
        (
            {"project_dot_toml": toml_with("stanzas/extra.j2", "stanzas/missing.j2")},
            ConfigError,
            "project.toml:36: 'stanzas/missing.j2' does not exist",
        ),
        (
            {"project_dot_toml": toml_with("stanzas/extra.j2", "../outside.j2")},
            ConfigError,
            "project.toml:36: '../outside.j2' points outside the project",
        ),
        (
            {"project_dot_toml": toml_with("[scripts.extra]", '[scripts."../../etc"]')},
            ConfigError,
            "project.toml:34: name '../../etc' may use only letters",
        ),
        (
            {"project_dot_toml": toml_with("[master]", "[project.extra]\n[master]")},
            ConfigError,
            "project.toml",
        ),
        (
            {"stanzas__extra_dot_j2": "## only\nHi {{ nobody }}.\n"},
            TemplateError,
            "stanzas/extra.j2:2: 'nobody' is undefined; define it in vars or the variants file",
        ),
        ({"stanzas__extra_dot_j2": "## only\nHi {% if %}.\n"}, TemplateError, "stanzas/extra.j2:2:"),
        (
            {"stanzas__extra_dot_j2": "## only\n\n## two\nText.\n"},
            TemplateError,
            "stanzas/extra.j2:1: section 'only' is empty",
        ),
        (
            {"stanzas__extra_dot_j2": "## only\nHi [sfx:bang].\n"},
            TemplateError,
            "stanzas/extra.j2:2: unknown sfx 'bang'; declared: ding",
        ),
        (
            {"stanzas__extra_dot_j2": "## only voice=carl\nHi.\n"},
            TemplateError,
            "stanzas/extra.j2:1: unknown voice 'carl'",
        ),
        (
            {"stanzas__extra_dot_j2": "## only at=1:30\nHi.\n## two at=1:00\nBye.\n"},
            TemplateError,
            "stanzas/extra.j2:3: section 'two' at=1:00 is not after section 'only' (line 1) at 1:30;",
        ),
        (
            {"stanzas__extra_dot_j2": "## only duck_db=+6\nHi.\n"},
            TemplateError,
            "stanzas/extra.j2:1: 'duck_db=+6' would raise the bed; use 0 or less",
        ),
        (
            {"data__people_dot_csv": "id,name\nanna,Anna\nanna,Other\n"},
            ConfigError,
            "data/people.csv:3: variant id 'anna' in column 'id' repeats an earlier id",
        ),
        (
            {"data__people_dot_csv": "id,name\nanna,Anna,extra\n"},
            ConfigError,
            "data/people.csv:2: wrong number of fields",
        ),
        ({"data__people_dot_csv": "id,name\n"}, ConfigError, "data/people.csv: no rows"),
        (
            {"project_dot_toml": toml_with("[master]", '[mix]\nspeech_compress = "yes"\n\n[master]')},
            ConfigError,
            "project.toml:40: 'speech_compress' must be true or false",
        ),
        (
            {"project_dot_toml": toml_with('renderer = "fake"\nspeed = 1.2', 'renderer = "elevenlabs"')},
            ConfigError,
            "project.toml:11: [voices.ben] the 'elevenlabs' renderer needs 'voice_id' for voice",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_and_problem(
    show: Callable[..., Path], fakes: dict[str, Any], files: dict[str, str], error: type, message: str
) -> None:
    root = show(**files)
    with pytest.raises(error) as err:
        render_scripts(load_with(root, fakes))
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)
    assert isinstance(err.value, ProjectError)


def test_media_errors_name_the_source(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    from mixdown.plan.planner import plan

    def planned(root: Path) -> Any:
        registry = Registry(root, extra=fakes)
        project = load(root, registry=registry)
        return plan(project, render_scripts(project), registry)

    missing = toml_with(
        'renderer = "noise"\nseconds = 0.3\nseed = 1', 'renderer = "file"\npath = "media/ding.wav"'
    )
    root = show(project_dot_toml=missing)
    with pytest.raises(ConfigError, match=r"project.toml:15: media file 'media/ding.wav' does not exist"):
        planned(root)
    (root / "media").mkdir()
    (root / "media" / "ding.wav").write_bytes(b"not audio at all")
    with pytest.raises(ConfigError, match=r"project.toml:15: 'media/ding.wav' is not readable audio"):
        planned(root)
    sf.write(root / "media" / "ding.wav", np.zeros((100, 1)), 8000)
    assert any(a.task == "sfx:ding" for a in planned(root).assets.values())


# Stanza errors name the template's own line, whatever Jinja2 moved: whitespace control, loops, includes.
@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"stanzas__extra_dot_j2": "{#- a comment -#}\n{%- set x = 1 -%}\n## only\n\nHi [sxf:door].\n"},
            "stanzas/extra.j2:5: unknown directive '[sxf:door]'",
        ),
        (
            {
                "stanzas__extra_dot_j2": (
                    "## only\n\n{%- for n in [100, 200, -1] %}\n\nLine {{ n }}.\n"
                    "[pause {{ n }}ms]\n{%- endfor %}\n"
                )
            },
            "stanzas/extra.j2:6: bad pause '[pause -1ms]'",
        ),
        (
            {
                "stanzas__extra_dot_j2": "## only\nHello.\n\n{% include 'stanzas/part.j2' %}\n",
                "stanzas__part_dot_j2": "{# a part #}\n\nMore.\n\nAnd [sfx:bang] here.\n",
            },
            "stanzas/part.j2:5: unknown sfx 'bang'",
        ),
        (
            {
                "stanzas__extra_dot_j2": (
                    "{% set hi %}Hello{% endset %}\n{% macro bye(n) %}Bye {{ n }}.{% endmacro %}\n"
                    "## only\n{% if hi == 'Hello' and bye(1) == 'Bye 1.' %}{{ hi }}.{% endif %}\n\n"
                    "{{ bye(2) }}\n## only\nAgain.\n"
                )
            },
            "stanzas/extra.j2:7: section 'only' appears twice (first at line 3)",
        ),
        (
            {"stanzas__extra_dot_j2": "{%- if true -%}\n## only\n{%- endif %}\n\n## two\nText.\n"},
            "stanzas/extra.j2:2: section 'only' is empty",
        ),
        (
            {"stanzas__extra_dot_j2": "{{- '' -}}\n\n\n## only voice=carl\nHi.\n"},
            "stanzas/extra.j2:4: unknown voice 'carl'",
        ),
    ],
)
def test_stanza_errors_name_the_template_source_line(
    show: Callable[..., Path], fakes: dict[str, Any], files: dict[str, str], message: str
) -> None:
    with pytest.raises(TemplateError) as err:
        render_scripts(load_with(show(**files), fakes))
    assert str(err.value).startswith(message), str(err.value)


def test_line_marks_leave_the_rendered_text_as_it_was(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    template = (
        "{#- c -#}\n{%- set hi %}Hello{% endset -%}\n{% macro bye(n) -%}\n  Bye {{ n }}.\n{%- endmacro %}\n"
        "## only\n{% for n in [1, 2] %}{{ hi|upper|trim }} {{ n }}.\n{{ bye(n) }}\n\n{% endfor -%}\n"
        "{% filter upper %}quiet{% endfilter %} {% raw %}[pause]{% endraw %}\n"
    )
    root = show(stanzas__extra_dot_j2=template)
    (only,) = [r for r in render_scripts(load_with(root, fakes)) if r.name == "news/extra"][0].sections
    assert [(i.text, i.line) for i in only.items if isinstance(i, Say)] == [
        ("HELLO 1. Bye 1.", 7),
        ("HELLO 2. Bye 2.", 7),
        ("QUIET", 11),
    ]
    assert [(type(i).__name__, i.line) for i in only.items][-1] == ("Rest", 11)


ANNA = '[voices.anna]\nrenderer = "fake"\nspeed = 1.0'


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            'voice = "anna"',
            'voice = "nope"',
            "project.toml:4: unknown voice 'nope'; declared voices: anna, ben",
        ),
        (ANNA, '[voices]\nanna.renderer = "fake"\nanna.sped = 1.0', "project.toml:9: unknown key 'sped'"),
        (ANNA, '[voices]\nanna = { renderer = "fake", speed = "x" }', "project.toml:8: 'speed' must be"),
        (ANNA, '[voices."anna"]\n"renderer" = "fake"\n"sped" = 1', "project.toml:9: unknown key 'sped'"),
        (ANNA, 'voices.anna.renderer = "fake"\n[voices.anna]', "project.toml:7: unknown key 'voices'"),
        ("[master]", "[mix.x]\n[master]", "project.toml:39: unknown key 'x' in [mix]"),
        (
            "[master]",
            '[mix]\n"line_gap" = 0.1\nline_gap2 = 1\n[master]',
            "project.toml:41: unknown key 'line_gap2' in [mix]",
        ),
        (
            'vars = { show = "Test Show" }',
            'vars = { show = "Test Show" }\nkey = """\n[voices.anna]\nsped = 1\n"""',
            "project.toml:6: unknown key 'key' in [project]",
        ),
    ],
)
def test_toml_errors_name_the_line_of_every_key_form(
    show: Callable[..., Path], fakes: dict[str, Any], old: str, new: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_with(show(project_dot_toml=toml_with(old, new)), fakes)
    assert str(err.value).startswith(message), str(err.value)


def test_a_toml_syntax_error_says_what_to_do(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    root = show(project_dot_toml=toml_with('name = "Test Show"', "name = Test Show"))
    with pytest.raises(ConfigError) as err:
        load_with(root, fakes)
    assert str(err.value).startswith("project.toml:3: TOML syntax error at column 8: ")
    assert str(err.value).endswith(
        "; check the quotes, brackets and '=' on that line (strings need quotes, tables [name])"
    )


@pytest.mark.parametrize(
    "name", ["project.toml", "data/people.csv", "stanzas/extra.j2", "stanzas/briefing.j2"]
)
def test_files_that_are_not_utf8_text_are_one_line(
    show: Callable[..., Path], fakes: dict[str, Any], name: str
) -> None:
    root = show()
    path = root / name
    path.write_bytes(path.read_bytes().replace(b"\n", b"\n\xff\xfe caf\xe9\n", 1))
    with pytest.raises(ProjectError) as err:
        render_scripts(load_with(root, fakes))
    assert str(err.value).startswith(f"{name}:2: not UTF-8 text (byte 0xff); save the file as UTF-8")


def test_a_template_that_is_a_directory_or_includes_itself_is_one_line(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = show(stanzas__extra_dot_j2="## only\nHi.\n\n{% include 'stanzas/extra.j2' %}\n")
    with pytest.raises(TemplateError) as err:
        render_scripts(load_with(root, fakes))
    assert str(err.value).startswith("stanzas/extra.j2:4: the template includes itself"), str(err.value)
    (root / "stanzas" / "extra.j2").unlink()
    (root / "stanzas" / "extra.j2").mkdir()
    with pytest.raises(ConfigError) as err:
        render_scripts(load_with(root, fakes))
    assert str(err.value).startswith("project.toml:36: 'stanzas/extra.j2' is a directory"), str(err.value)


# Every number a show sets is refused when the show loads if it is outside its range (one line at its line).
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "gain_db = -24",
            "gain_db = nan",
            "project.toml:24: 'gain_db' = nan is not allowed; use a number from -60 to 24 dB",
        ),
        ("gain_db = -24", "gain_db = 200", "project.toml:24: 'gain_db' = 200 is not allowed"),
        ("gain_db = -24", "gain_db = -inf", "project.toml:24: 'gain_db' = -inf is not allowed"),
        ("gain_db = -24", 'gain_db = "loud"', "project.toml:24: 'gain_db' must be an integer or a number"),
        (
            "seed = 1",
            "seed = 1\noffset = 30",
            "project.toml:19: 'offset' = 30 is not allowed; use a number from -10 to 10 seconds",
        ),
        ("speed = 1.2", "speed = nan", "project.toml:13: 'speed' = nan is not a number; give a finite value"),
        (
            "[master]",
            "[mix]\nline_gap = -0.5\n[master]",
            "project.toml:40: 'line_gap' = -0.5 is not allowed; use a number from 0 to 60 seconds",
        ),
        (
            "[master]",
            "[mix]\nduck_db = 3\n[master]",
            "project.toml:40: 'duck_db' = 3 is not allowed; use a number from -60 to 0 dB",
        ),
        (
            "[master]",
            "[mix]\nlength = 1e9\n[master]",
            "project.toml:40: 'length' = 1000000000.0 is not allowed",
        ),
        (
            "[master]",
            "[mix]\nline_lufs = 0\n[master]",
            "project.toml:40: 'line_lufs' = 0 is not allowed; use a number from -40 to -5 LUFS",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\ntarget_lufs = 10',
            "project.toml:41: 'target_lufs' = 10 is not allowed; use a number from -40 to -5 LUFS",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\nceiling_dbtp = 3',
            "project.toml:41: 'ceiling_dbtp' = 3 is not allowed; use a number from -12 to 0 dBTP",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[deliveries.x]\nbitrate = 7',
            "project.toml:42: 'bitrate' = 7 is not allowed; use one of 8, 16, 24,",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[deliveries.x]\nbitrate = 320\nsample_rate = 24000',
            "project.toml:42: MP3 at 24000 Hz takes 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160 kbps, not 320",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[deliveries.x]\npreset = "alexa"\ntarget_lufs = 10',
            "project.toml:43: 'target_lufs' = 10 is not allowed",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[deliveries.x]\nchannels = 6',
            "project.toml:42: 'channels' = 6 is not allowed; use one of 1, 2",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[deliveries.x]\nsample_rate = 1234',
            "project.toml:42: 'sample_rate' = 1234 is not allowed",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[deliveries.x]\nvbr = "yes"',
            "project.toml:42: 'vbr' must be true or false",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[providers.openai]\nconcurrency = 0',
            "project.toml:42: 'concurrency' = 0 is not allowed; use a number from 1 to 64 requests",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[providers.openai]\ntimeout = nan',
            "project.toml:42: 'timeout' = nan is not allowed",
        ),
        (
            'formats = ["wav"]',
            'formats = ["wav"]\n[providers.openai]\nmax_retries = 1.5',
            "project.toml:42: 'max_retries' must be an integer",
        ),
    ],
)
def test_numbers_out_of_range_are_refused_at_load(
    show: Callable[..., Path], fakes: dict[str, Any], old: str, new: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_with(show(project_dot_toml=toml_with(old, new)), fakes)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    ("heading", "message"),
    [
        (
            "## only at=13:00:00",
            "stanzas/extra.j2:1: 'at' = 46800.0 is not allowed; use a number from 0 to 43200 seconds",
        ),
        (
            "## only duck_db=-90",
            "stanzas/extra.j2:1: 'duck_db' = -90.0 is not allowed; use a number from -60 to 0 dB",
        ),
        ("## only duck_attack=20s", "stanzas/extra.j2:1: 'duck_attack' = 20.0 is not allowed"),
        (
            "## only\n\nA pause. [pause 90s]",
            "stanzas/extra.j2:3: 'pause' = 90.0 is not allowed; use a number more than 0 to 60 seconds",
        ),
        ("## only\n\nA pause. [pause 0ms]", "stanzas/extra.j2:3: 'pause' = 0.0 is not allowed"),
    ],
)
def test_section_numbers_out_of_range_are_refused_at_load(
    show: Callable[..., Path], fakes: dict[str, Any], heading: str, message: str
) -> None:
    with pytest.raises(TemplateError) as err:
        render_scripts(load_with(show(stanzas__extra_dot_j2=heading + "\nHi.\n"), fakes))
    assert str(err.value).startswith(message), str(err.value)
