"""The plan and its doit task dicts, checked as plain data (no doit run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mixdown.actions.master import build_master
from mixdown.actions.mix import build_mix
from mixdown.actions.render import render_asset
from mixdown.actions.tasks import task_dicts
from mixdown.plan.model import COMPACT, LineItem, PauseItem, Plan, StingItem, Timeline
from mixdown.plan.planner import plan
from mixdown.renderers import Registry
from mixdown.show.project import load
from mixdown.show.templates import render_scripts


def planned(root: Path, fakes: dict[str, Any]) -> Plan:
    registry = Registry(root, extra=fakes)
    project = load(root, registry=registry)
    return plan(project, render_scripts(project), registry)


def tasks(p: Plan) -> list[str]:
    return [a.task for a in p.assets.values()]


def test_identical_lines_are_one_asset_named_by_first_use(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    p = planned(show(), fakes)
    assert tasks(p) == [
        "voice:news/briefing/intro/0@anna",
        "voice:news/briefing/intro/1",
        "voice:news/briefing/story/0",
        "voice:news/briefing/story/1",
        "voice:news/briefing/close/0@anna",
        "sfx:ding",
        "music:bed/intro",
        "music:bed/main",
        "music:bed/outro",
        "voice:news/briefing/intro/0@kofi",
        "voice:news/briefing/close/0@kofi",
        "voice:news/extra/only/0",  # "Here is the news." by ben: anna spoke it in the briefing
    ]
    texts = {a.task: a.text for a in p.assets.values()}
    assert texts["voice:news/briefing/intro/0@kofi"] == "Hello Kofi, this is Test Show."
    # "The bridge opened today." by ben in the extra script is the briefing's story line: one asset.
    assert sum(a.text == "The bridge opened today." for a in p.assets.values()) == 1


def test_section_names_and_order_do_not_change_keys(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    before = set(planned(show(), fakes).assets)
    renamed = "## opening\nHere is the news.\n\n## only\nThe bridge opened today.\n"
    after = planned(show(stanzas__extra_dot_j2=renamed), fakes)
    assert set(after.assets) == before
    assert "voice:news/briefing/intro/1" in tasks(after)


def test_voice_speed_changes_exactly_that_voices_keys(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    from .conftest import BASIC_TOML

    base = planned(show(), fakes)
    faster = planned(show(project_dot_toml=BASIC_TOML.replace("speed = 1.2", "speed = 1.3")), fakes)
    changed = {base.assets[k].task for k in set(base.assets) - set(faster.assets)}
    assert changed == {
        "voice:news/briefing/story/0",
        "voice:news/briefing/story/1",
        "voice:news/extra/only/0",
    }


def test_mix_timeline_is_keys_and_settings_only(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    p = planned(show(), fakes)
    anna = p.mixes[0]
    assert anna.name == "news/briefing@anna"
    intro = anna.timeline.sections[0]
    assert intro.music == "auto"
    first = intro.items[0]
    assert isinstance(first, LineItem)
    assert p.assets[first.key].task == "voice:news/briefing/intro/0@anna"
    ding = first.cues[0]
    assert p.assets[ding.key].task == "sfx:ding"
    assert ding.at == round(len("Hello Anna, this is Test Show.") / len("Hello Anna, this is Test Show."), 6)
    story = anna.timeline.sections[1].items
    assert [type(it) for it in story] == [LineItem, PauseItem, LineItem, StingItem]
    assert [it.to_json()[0] for it in story] == ["line", "pause", "line", "sting"]
    assert "story" not in anna.timeline_json and "anna" not in anna.timeline_json
    assert "story" not in str(anna.timeline) and "anna" not in str(anna.timeline)
    assert [m.key for m in p.mixes] == [m.key for m in planned(show(), fakes).mixes]
    assert len({m.key for m in p.mixes}) == 3


def test_task_dicts(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    p = planned(show(), fakes)
    context = object()
    some = next(iter(p.assets))
    dicts = task_dicts(p, context, cached={some})
    assert list(dicts) == ["voice", "sfx", "music", "section", "mix", "master", "deliver"]
    assert dicts["deliver"] == []  # the test show declares no [deliveries]
    first = dicts["voice"][0]
    assert first["name"] == "news/briefing/intro/0@anna"
    assert first["actions"] == [(render_asset, [context, p.assets[some]])]
    assert first["uptodate"] == [True]
    assert all(d["uptodate"] == [False] for d in dicts["voice"][1:])
    mix = dicts["mix"][0]
    assert mix["actions"][0][0] is build_mix and mix["uptodate"] == [False]
    # the mix depends on its sections and its bed; each section on its own assets
    assert mix["task_dep"] == [
        "section:news/briefing/intro@anna",
        "section:news/briefing/story",
        "section:news/briefing/close@anna",
        "music:bed/intro",
        "music:bed/main",
        "music:bed/outro",
    ]
    intro = dicts["section"][0]
    assert intro["name"] == "news/briefing/intro@anna" and intro["uptodate"] == [False]
    assert intro["task_dep"] == [
        "voice:news/briefing/intro/0@anna",
        "sfx:ding",
        "voice:news/briefing/intro/1",
    ]
    master = dicts["master"][0]
    assert master["actions"][0][0] is build_master and master["task_dep"] == ["mix:news/briefing@anna"]
    assert master["targets"] == [str(p.mixes[0].outputs[0])] and master["targets"][0].endswith(
        "build/news/briefing@anna.wav"
    )
    assert master["clean"] is True


def test_only_missing_leaves_cached_assets_out(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    p = planned(show(), fakes)
    cached = set(list(p.assets)[:5])
    dicts = task_dicts(p, None, cached=cached, only_missing=True)
    names = {f"{kind}:{d['name']}" for kind in ("voice", "sfx", "music") for d in dicts[kind]}
    assert names == {p.assets[k].task for k in set(p.assets) - cached}
    names |= {f"section:{d['name']}" for d in dicts["section"]}
    for mix in dicts["mix"]:
        assert set(mix["task_dep"]) <= names


def test_each_delivery_is_its_own_target(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    from mixdown.actions.deliver import build_delivery

    from .conftest import BASIC_TOML

    p = planned(show(project_dot_toml=BASIC_TOML + '\n[deliveries.alexa]\npreset = "alexa"\n'), fakes)
    dicts = task_dicts(p, None, cached=set())
    names = [d["name"] for d in dicts["deliver"]]
    assert names == ["news/briefing@anna/alexa", "news/briefing@kofi/alexa", "news/extra/alexa"]
    first = dicts["deliver"][0]
    assert first["actions"] == [(build_delivery, [None, (p.mixes[0], "alexa")])]
    assert first["task_dep"] == ["master:news/briefing@anna"]
    assert [Path(t).name for t in first["targets"]] == ["briefing@anna.alexa.mp3"]


MARKED = """\
## only at=1:30 duck_db=-18 duck_attack=100ms
Here is the news.

The bridge opened today.
"""


#: in the key of every mix of the test show: it has variants, so it keeps its mixes compact
STORED = {"stored": COMPACT}


def _key_without_new_settings(timeline: Timeline) -> str:
    """The mix key as it was computed before sections could carry ``at``/``duck``."""
    from mixdown.keys import content_key
    from mixdown.plan.model import MIX_VERSION

    data = timeline.to_json()
    sections = [{"music": s["music"], "items": s["items"]} for s in data["sections"]]
    return content_key({"mix": MIX_VERSION, **data, "sections": sections, **STORED})


def test_sections_carry_at_and_duck_only_when_set(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    base = planned(show(), fakes)
    for mix in base.mixes:
        assert all(set(s) == {"music", "items"} for s in mix.timeline.to_json()["sections"])
        assert mix.key == _key_without_new_settings(mix.timeline)  # shows without them keep their keys
    marked = planned(show(stanzas__extra_dot_j2=MARKED), fakes)
    (only,) = marked.mixes[2].timeline.to_json()["sections"]
    assert only["at"] == 90.0 and isinstance(only["at"], float)
    assert only["duck"] == {"duck_db": -18.0, "duck_attack": 0.1}
    assert set(only) == {"music", "items", "at", "duck"}
    duck_only = planned(show(stanzas__extra_dot_j2="## only duck_hold=0.4s\nHere is the news.\n"), fakes)
    assert duck_only.mixes[2].timeline.to_json()["sections"][0].keys() == {"music", "items", "duck"}
    at_only = planned(show(stanzas__extra_dot_j2="## only at=0\nHere is the news.\n"), fakes)
    assert at_only.mixes[2].timeline.to_json()["sections"][0] == {
        "music": "auto",
        "items": base.mixes[2].timeline.to_json()["sections"][0]["items"][:1],
        "at": 0.0,
    }


def test_the_typed_timeline_gives_back_its_json_exactly(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    import json

    from mixdown.keys import content_key
    from mixdown.plan.model import MIX_VERSION

    for shown in (show(), show(stanzas__extra_dot_j2=MARKED)):
        for mix in planned(shown, fakes).mixes:
            assert json.dumps(mix.timeline.to_json()) == mix.timeline_json  # the stored text, byte for byte
            assert Timeline.from_json(json.loads(mix.timeline_json)) == mix.timeline
            assert mix.key == content_key({"mix": MIX_VERSION, **mix.timeline.to_json(), **STORED})


def test_markers_and_ducking_change_only_that_mixs_key(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    base = planned(show(), fakes)
    marked = planned(show(stanzas__extra_dot_j2=MARKED), fakes)
    assert set(marked.assets) == set(base.assets)  # mix settings: nothing renders again
    assert [m.key for m in marked.mixes[:2]] == [m.key for m in base.mixes[:2]]
    assert marked.mixes[2].key != base.mixes[2].key
    assert marked.mixes[2].master_key != base.mixes[2].master_key
    same = MARKED.replace("at=1:30", "at=90s").replace("duck_attack=100ms", "duck_attack=0.1")
    assert planned(show(stanzas__extra_dot_j2=same), fakes).mixes[2].key == marked.mixes[2].key
    other = MARKED.replace("at=1:30", "at=1:31")
    assert planned(show(stanzas__extra_dot_j2=other), fakes).mixes[2].key != marked.mixes[2].key
