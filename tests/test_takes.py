"""Takes: `mixdown retake` renders one asset again and the new take reaches build/."""

from __future__ import annotations

import hashlib
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixdown import cli
from mixdown.errors import ConfigError
from mixdown.loader import load_show
from mixdown.plan import takes
from mixdown.renderers import Registry, RenderRequest, RenderResult

from .conftest import CountingVoice
from .test_build import doit, ran, voice_calls

LINE = "voice:news/extra/only/0"  # "Here is the news." by ben: only news/extra uses it


class TakingVoice(CountingVoice):
    """A fake generative voice: each take of the same text sounds different (a higher pitch)."""

    def render(self, request: RenderRequest) -> RenderResult:
        pitched = RenderRequest(
            request.kind, {**request.params, "pitch": 2.0 * request.take}, text=request.text
        )
        return super().render(pitched)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def plan_of(root: Path, fakes: dict[str, Any]) -> Any:
    return load_show(root, registry=Registry(root, extra=fakes)).plan


@pytest.fixture
def fakes(fakes: dict[str, Any]) -> dict[str, Any]:
    """conftest's fakes, with a voice whose takes differ (conftest's ``built`` builds the show with them)."""
    return {**fakes, "fake": TakingVoice()}


def retake(root: Path, fakes: dict[str, Any], *patterns: str, take: int | None = None) -> list[str]:
    return takes.retake(root, plan_of(root, fakes), list(patterns), take=take)


def test_a_retake_renders_that_asset_once_and_reaches_build(built: Path, fakes: dict[str, Any]) -> None:
    before = digest(built / "build" / "news" / "extra.wav")
    old_key = next(a.key for a in plan_of(built, fakes).assets.values() if a.task == LINE)
    [line] = retake(built, fakes, LINE)
    assert line.startswith(f"{LINE}  take 1 (was 0); used by mix:news/extra")

    code, out, _ = doit(built, fakes)
    assert code == 0
    assert voice_calls(fakes) == ["Here is the news."]  # that line, once, nothing else
    assert set(ran(out)) == {
        LINE,
        "section:news/extra/only",
        "mix:news/extra",
        "master:news/extra",
        "captions:news/extra",
        "otio:news/extra",
    }
    plan = plan_of(built, fakes)
    asset = next(a for a in plan.assets.values() if a.task == LINE)
    assert asset.key != old_key and asset.take == 1 and plan.first_take(asset.key) == old_key
    assert digest(built / "build" / "news" / "extra.wav") != before  # the new take is in the master

    # doit forget / doit -a: the take stays, and nothing is paid for again
    fakes["fake"].calls.clear()
    after = digest(built / "build" / "news" / "extra.wav")
    for args in (["forget", "master:news/extra"], [], ["-a", "master:news/extra"]):
        code, out, err = doit(built, fakes, *args)
        assert not code, out + err  # `doit forget` returns None
    assert voice_calls(fakes) == []
    assert digest(built / "build" / "news" / "extra.wav") == after


def test_going_back_to_a_cached_take_renders_nothing(built: Path, fakes: dict[str, Any]) -> None:
    first = digest(built / "build" / "news" / "extra.wav")
    retake(built, fakes, LINE)
    assert doit(built, fakes)[0] == 0 and len(voice_calls(fakes)) == 1
    fakes["fake"].calls.clear()
    [line] = retake(built, fakes, LINE, take=0)
    assert "take 0 (was 1)" in line
    code, out, _ = doit(built, fakes)
    assert code == 0 and voice_calls(fakes) == []
    assert digest(built / "build" / "news" / "extra.wav") == first


def test_a_take_survives_renaming_its_section(built: Path, fakes: dict[str, Any]) -> None:
    retake(built, fakes, LINE)
    assert doit(built, fakes)[0] == 0
    fakes["fake"].calls.clear()
    extra = built / "stanzas" / "extra.j2"
    extra.write_text(extra.read_text().replace("## only", "## renamed"))
    code, out, _ = doit(built, fakes)
    assert code == 0 and voice_calls(fakes) == []  # the take is keyed by content, not by name
    assert any(a.take == 1 for a in plan_of(built, fakes).assets.values())


def test_the_record_names_every_target_that_uses_the_take(built: Path, fakes: dict[str, Any]) -> None:
    # "Here is the news." in the briefing is the same line for both listeners: one asset, two mixes
    shared = "voice:news/briefing/intro/1"
    [line] = retake(built, fakes, shared)
    assert "used by mix:news/briefing@anna, mix:news/briefing@kofi" in line
    [entry] = takes.read(built).values()
    assert entry == {
        "take": 1,
        "target": shared,
        "text": "Here is the news.",
        "used_by": ["mix:news/briefing@anna", "mix:news/briefing@kofi"],
    }
    assert doit(built, fakes)[0] == 0 and voice_calls(fakes) == ["Here is the news."]


def test_patterns_and_whole_music_beds(built: Path, fakes: dict[str, Any]) -> None:
    lines = retake(built, fakes, "music:bed/main")
    assert sorted(line.split()[0] for line in lines) == [
        "music:bed/intro",
        "music:bed/main",
        "music:bed/outro",
    ]
    lines = retake(built, fakes, "voice:news/briefing/close/*")
    assert [line.split()[0] for line in lines] == [
        "voice:news/briefing/close/0@anna",
        "voice:news/briefing/close/0@kofi",
    ]
    assert doit(built, fakes)[0] == 0
    assert sorted(fakes["noise"].calls) == ["music:bed/intro", "music:bed/main", "music:bed/outro"]
    assert sorted(voice_calls(fakes)) == ["Goodbye Anna.", "Goodbye Kofi."]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("voice:news/extra/only/7", "no voice, sfx or music target of this show has that name; did you mean"),
        ("master:news/extra", "retake renders assets again, not mixes or masters"),
        ("nothing*", "see `doit list --all`"),
    ],
)
def test_a_name_that_is_no_asset_is_refused(
    built: Path, fakes: dict[str, Any], pattern: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("`", "`")):
        retake(built, fakes, pattern)
    assert not (built / takes.FILENAME).exists()


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('["abc"]\ntake = 1\n', 1),
        (f'# note\n["{"0" * 64}"]\ntake = -1\n', 2),
        (f'["{"0" * 64}"]\ntake = "two"\n', 1),
        ("[broken\n", None),
    ],
)
def test_a_damaged_takes_file_is_one_line(
    built: Path, fakes: dict[str, Any], text: str, line: int | None
) -> None:
    (built / takes.FILENAME).write_text(text)
    code, out, err = doit(built, fakes)
    assert code != 0 and "Traceback" not in out + err
    expected = f"{takes.FILENAME}:{line}:" if line else f"{takes.FILENAME}: "
    assert expected in out + err and voice_calls(fakes) == []


def test_mixdown_retake_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A show of built-in renderers: the synth's seeded effect sounds different at its next take.
    (tmp_path / "stanzas").mkdir()
    (tmp_path / "project.toml").write_text(
        textwrap.dedent(
            """
            [voices.host]
            renderer = "silence"
            duration = 0.5
            [sfx.ding]
            renderer = "synth"
            preset = "chime"
            seed = 4
            [scripts.talk]
            template = "stanzas/talk.j2"
            [master]
            formats = ["wav"]
            """
        )
    )
    (tmp_path / "stanzas" / "talk.j2").write_text("[sfx:ding]\n")
    assert cli.main(["retake", "-d", str(tmp_path), "sfx:ding"]) == 0
    out = capsys.readouterr().out
    assert "sfx:ding  take 1 (was 0); used by mix:talk" in out and "commit it" in out
    assert (tmp_path / takes.FILENAME).stat().st_mode & 0o777 == 0o666 & ~_umask()
    # the synth draws another seed for take 1: a different sound, the same length
    from mixdown.plan.model import request_for
    from mixdown.renderers.local.synth import Synth

    show = load_show(tmp_path)
    [asset] = [a for a in show.plan.assets.values() if a.kind == "sfx"]
    first = Synth().render(request_for(asset._replace(take=0), show.context.project)).audio
    second = Synth().render(request_for(asset, show.context.project)).audio
    assert first.shape == second.shape and not np.allclose(first, second)
    assert cli.main(["retake", "-d", str(tmp_path), "--take", "-1", "sfx:ding"]) == 2
    assert "takes count from 0" in capsys.readouterr().err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
