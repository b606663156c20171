"""build/manifest.json: every deliverable, measured as independent readers measure the files."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from mixdown.loader import load_show
from mixdown.publish import manifest as manifests
from mixdown.publish.manifest import AssetUse
from mixdown.renderers import Registry

from .conftest import BASIC_TOML, BRIEFING
from .test_build import doit, ran

WITH_RADIO = BASIC_TOML.replace(
    '[master]\nformats = ["wav"]',
    '[master]\nformats = ["wav", "flac"]\n\n[deliveries.radio]\npreset = "ebu-r128"\nformats = ["wav"]',
)
RENDITIONS = ("news/briefing@anna", "news/briefing@kofi", "news/extra")


@pytest.fixture
def radio(show: Callable[..., Path], fakes: dict[str, Any]) -> Path:
    root = show(project_dot_toml=WITH_RADIO)
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    return root


def read(root: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "build" / "manifest.json").read_text("utf-8"))
    return data


def test_every_deliverable_is_listed_with_what_the_files_measure(radio: Path) -> None:
    data = read(radio)
    targets = [d["target"] for d in data["deliverables"]]
    assert targets == sorted([f"master:{n}" for n in RENDITIONS] + [f"deliver:{n}/radio" for n in RENDITIONS])
    for item in data["deliverables"]:
        assert item["passed"] is True
        for entry in item["files"]:
            path = radio / entry["path"]
            y, sr = sf.read(path, always_2d=True)
            assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
            assert entry["seconds"] == pytest.approx(len(y) / sr, abs=1e-6)
            assert entry["lufs"] == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(y), abs=0.1)
            sample_peak = 20 * np.log10(np.abs(y).max())
            assert sample_peak - 1e-3 <= entry["true_peak"] <= sample_peak + 0.6  # true peak >= sample peak
            assert 0.0 <= entry["lra"] < 20.0 and entry["max_momentary"] >= entry["max_short_term"] - 0.01
            assert entry["passed"] is True and entry["format"] == path.suffix[1:]


def test_each_entry_has_its_preset_and_the_assets_it_used(radio: Path, fakes: dict[str, Any]) -> None:
    data = read(radio)
    plan = load_show(radio, registry=Registry(radio, extra=fakes)).plan
    by_target = {d["target"]: d for d in data["deliverables"]}
    master, delivery = by_target["master:news/briefing@anna"], by_target["deliver:news/briefing@anna/radio"]
    assert master["spec"] == {
        "preset": "podcast",
        "target_lufs": -16.0,
        "tolerance_lu": 1.0,
        "ceiling_dbtp": -1.0,
    }
    assert delivery["spec"] == {
        "preset": "ebu-r128",
        "target_lufs": -23.0,
        "tolerance_lu": 0.5,
        "ceiling_dbtp": -1.0,
    }
    for delivered in delivery["files"]:
        y, sr = sf.read(radio / delivered["path"], always_2d=True)
        assert abs(pyloudnorm.Meter(sr).integrated_loudness(y) + 23.0) <= 0.5
    mix = plan.mix_named("news/briefing@anna")
    expected = [plan.assets[key] for key in mix.assets]
    assert master["assets"] == [a.task for a in expected]
    described = [data["assets"][name] for name in master["assets"]]
    assert [a["key"] for a in described] == [a.key for a in expected]
    assert [a["characters"] for a in described] == [len(a.text) for a in expected]
    assert {a["renderer"] for a in described} == {"fake", "noise"}
    assert set(data["assets"]) == {a.task for a in plan.assets.values()}
    assert master["cost"]["renders"] == len(set(mix.assets)) and master["cost"]["usd"] == 0.0
    assert master["cost"]["characters"] == sum(len(a.text) for a in {a.key: a for a in expected}.values())


def test_the_build_and_total_count_renders_and_cache_hits(radio: Path, fakes: dict[str, Any]) -> None:
    first = read(radio)
    assert first["build"]["renders"] == 12 and first["build"]["cache_hits"] == 0
    assert first["total"]["renders"] == 12
    (radio / "stanzas" / "briefing.j2").write_text(BRIEFING.replace("Goodbye", "Farewell"))
    code, out, err = doit(radio, fakes)
    assert code == 0, out + err
    second = read(radio)
    assert second["build"]["renders"] == 2 and second["build"]["cache_hits"] == 10  # two people's goodbyes
    by_target = {d["target"]: d for d in second["deliverables"]}
    assert by_target["master:news/briefing@anna"]["cost_this_build"]["renders"] == 1
    assert by_target["master:news/extra"]["cost_this_build"]["renders"] == 0


def test_a_noop_build_leaves_both_files_alone(
    radio: Path, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixdown.actions import publishing

    stats = {name: (radio / "build" / name).stat().st_mtime_ns for name in ("manifest.json", "report.html")}

    def no_reading(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a no-op build read its records")

    monkeypatch.setattr(publishing, "make_manifest", no_reading)
    code, out, err = doit(radio, fakes)
    assert code == 0, out + err
    assert {name: (radio / "build" / name).stat().st_mtime_ns for name in stats} == stats


def test_the_file_is_canonical_and_made_again_byte_for_byte(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    from mixdown.actions import publishing

    root = show(project_dot_toml=WITH_RADIO)
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    loaded = load_show(root, registry=Registry(root, extra=fakes))
    text = (root / "build" / "manifest.json").read_text("utf-8")
    assert manifests.dumps(publishing.make_manifest(loaded.context, loaded.plan, ran(out))) == text
    assert text == json.dumps(json.loads(text), indent=1, sort_keys=True) + "\n"


@pytest.mark.parametrize("switch", ["manifest", "report"])
def test_publish_switches_turn_either_file_off(
    show: Callable[..., Path], fakes: dict[str, Any], switch: str
) -> None:
    root = show(project_dot_toml=BASIC_TOML + f"\n[publish]\n{switch} = false\n")
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    other = "report.html" if switch == "manifest" else "manifest.json"
    assert not (root / "build" / f"{switch}.{'json' if switch == 'manifest' else 'html'}").exists()
    assert (root / "build" / other).is_file()


def test_a_wrong_publish_setting_is_one_line(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    root = show(project_dot_toml=BASIC_TOML + "\n[publish]\nreprot = false\n")
    code, out, err = doit(root, fakes)
    assert code != 0
    message = [line for line in (out + err).splitlines() if "reprot" in line]
    assert len(message) == 1 and "project.toml" in message[0] and "manifest, report" in message[0]


def use(key: str, provider: str, characters: int, usd: float | None, billed: str | None = "x") -> AssetUse:
    return AssetUse(f"voice:{key}", "voice", key, provider, provider, "anna", characters, billed, usd, True)


def test_cost_counts_each_asset_once_by_provider() -> None:
    assets = [use("a", "eleven", 10, 0.003), use("a", "eleven", 10, 0.003), use("b", "eleven", 5, 0.0015)]
    assets += [use("c", "openai", 7, None), use("d", "piper", 4, 0.0, billed=None)]
    cost = manifests.cost_of(assets)
    assert (cost.renders, cost.paid_renders, cost.characters, cost.unpriced) == (4, 3, 26, 1)
    assert cost.usd == pytest.approx(0.0045)
    assert cost.providers["eleven"] == {"renders": 2, "characters": 15, "usd": pytest.approx(0.0045)}
    assert list(cost.providers) == ["eleven", "openai", "piper"]
