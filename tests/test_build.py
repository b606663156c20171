"""End to end through doit: the incremental cases, counting renderer calls exactly."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf
from doit.doit_cmd import DoitMain

from mixdown.loader import MixdownLoader
from mixdown.renderers import Registry, RendererBase, RenderRequest, RenderResult

from .conftest import BASIC_TOML

VOICE_ASSETS = 8  # see test_graph: 12 assets, 4 of them sfx/music


def doit(root: Path, fakes: dict[str, Any], *args: str) -> tuple[int, str, str]:
    """Run doit in-process on the show in ``root``; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    loader = MixdownLoader(root, registry=Registry(root, extra=fakes), config={"outfile": out})
    with redirect_stdout(out), redirect_stderr(err):
        code = DoitMain(loader, config_filenames=()).run(list(args))
    return code, out.getvalue(), err.getvalue()


def ran(stdout: str) -> list[str]:
    return [line[3:] for line in stdout.splitlines() if line.startswith(".  ")]


def voice_calls(fakes: dict[str, Any]) -> list[str]:
    calls: list[str] = fakes["fake"].calls
    return calls


def test_first_build_renders_each_asset_once_and_masters(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    root = show()
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    assert len(voice_calls(fakes)) == VOICE_ASSETS
    assert len(set(voice_calls(fakes))) == VOICE_ASSETS - 1  # "Here is the news." by two voices
    assert sorted(fakes["noise"].calls) == [
        "music:bed/intro",
        "music:bed/main",
        "music:bed/outro",
        "sfx:ding",
    ]
    for name in ("news/briefing@anna", "news/briefing@kofi", "news/extra"):
        y, sr = sf.read(root / "build" / f"{name}.wav", always_2d=True)
        assert sr == 48000 and y.shape[1] == 2 and len(y) > sr
        assert pyloudnorm.Meter(sr).integrated_loudness(y) == pytest.approx(-16.0, abs=0.5)
        assert 20 * np.log10(np.abs(y).max()) <= -1.0
        assert f"master:{name}" in out and "LUFS" in out
    assert not list(root.glob("build/**/*.tmp"))


def test_each_rendition_is_mixed_and_mastered_together_after_every_render(
    show: Callable[..., Path], fakes: dict[str, Any]
) -> None:
    """A master reads the mix just made (kept in memory), not one made long before."""
    code, out, err = doit(show(), fakes)
    assert code == 0, out + err
    order = ran(out)
    kinds = [name.split(":", 1)[0] for name in order]
    assert kinds.index("section") > max(
        i for i, kind in enumerate(kinds) if kind in ("voice", "sfx", "music")
    )
    mixes = [name.split(":", 1)[1] for name in order if name.startswith("mix:")]
    assert mixes == ["news/briefing@anna", "news/briefing@kofi", "news/extra"]  # the plan's order
    for name in mixes:
        assert order[order.index(f"mix:{name}") + 1] == f"master:{name}"


def test_noop_renders_nothing_and_reports_up_to_date(built: Path, fakes: dict[str, Any]) -> None:
    code, out, _ = doit(built, fakes)
    assert code == 0
    assert voice_calls(fakes) == [] and fakes["noise"].calls == []
    assert ran(out) == []
    assert "-- voice:news/briefing/intro/0@anna" in out and "-- master:news/extra" in out


def test_one_edited_sentence_renders_one_line_then_remixes(built: Path, fakes: dict[str, Any]) -> None:
    extra = built / "stanzas" / "extra.j2"
    original = extra.read_text()
    extra.write_text(original.replace("The bridge opened today.", "The bridge opened at noon."))
    code, out, _ = doit(built, fakes)
    assert code == 0
    assert voice_calls(fakes) == ["The bridge opened at noon."]
    assert set(ran(out)) == {
        "voice:news/extra/only/1",
        "section:news/extra/only",
        "mix:news/extra",
        "master:news/extra",
        "captions:news/extra",  # the captions and the timeline follow the new text and mix
        "otio:news/extra",
    }
    assert "at noon." in (built / "build" / "news" / "extra.vtt").read_text()

    extra.write_text(original)  # revert: the old audio comes back from the cache
    code, out, _ = doit(built, fakes)
    assert code == 0 and voice_calls(fakes) == ["The bridge opened at noon."]
    # re-exported from the cached master, with its captions and timeline
    assert set(ran(out)) == {"master:news/extra", "captions:news/extra", "otio:news/extra"}


def test_rename_and_reorder_sections_render_nothing(built: Path, fakes: dict[str, Any]) -> None:
    briefing = built / "stanzas" / "briefing.j2"
    text = briefing.read_text()
    intro, story, close = text.split("\n## ")
    briefing.write_text("\n## ".join([intro.replace("## intro", "## hello"), close, story]) + "\n")
    code, out, _ = doit(built, fakes)
    assert code == 0 and voice_calls(fakes) == [] and fakes["noise"].calls == []
    assert "mix:news/briefing@anna" in ran(out)  # a new order is a new mix, from cached lines


def test_switching_git_branches_renders_nothing_again(built: Path, fakes: dict[str, Any]) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=built, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "show", "--allow-empty")
    git("add", "project.toml", "stanzas", "data")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "show")
    git("checkout", "-qb", "rewrite")
    (built / "stanzas" / "extra.j2").write_text("## only\nA different story entirely.\n")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "rewrite")
    assert doit(built, fakes)[0] == 0
    assert voice_calls(fakes) == ["A different story entirely."]
    for branch in ("main", "rewrite", "main"):
        git("checkout", "-q", branch)
        code, out, _ = doit(built, fakes)
        assert code == 0 and voice_calls(fakes) == ["A different story entirely."], branch
    y, _ = sf.read(built / "build" / "news" / "extra.wav")
    assert len(y) / 48000 > 2.5  # main's two lines, not the rewrite's one


def test_voice_speed_renders_exactly_that_voices_lines(built: Path, fakes: dict[str, Any]) -> None:
    (built / "project.toml").write_text(BASIC_TOML.replace("speed = 1.2", "speed = 1.25"))
    assert doit(built, fakes)[0] == 0
    assert sorted(voice_calls(fakes)) == ["Here is the news.", "It is long.", "The bridge opened today."]


def test_variants_render_only_their_own_lines(built: Path, fakes: dict[str, Any]) -> None:
    people = built / "data" / "people.csv"
    people.write_text(people.read_text() + "mei,Mei\n")
    code, out, _ = doit(built, fakes)
    assert code == 0
    assert sorted(voice_calls(fakes)) == ["Goodbye Mei.", "Hello Mei, this is Test Show."]
    assert (built / "build" / "news" / "briefing@mei.wav").is_file()


def test_list_info_select_clean_forget(built: Path, fakes: dict[str, Any]) -> None:
    code, out, _ = doit(built, fakes, "list", "--all")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    for name in (
        "voice:news/briefing/intro/1",
        "sfx:ding",
        "music:bed/main",
        "mix:news/extra",
        "master:news/extra",
    ):
        assert name in names
    assert len([n for n in names if n.startswith("voice:")]) == VOICE_ASSETS

    code, out, _ = doit(built, fakes, "info", "voice:news/briefing/intro/1")
    assert code == 0 and "Here is the news." in out and "up-to-date" in out

    code, out, _ = doit(built, fakes, "voice:news/extra/only/0")
    assert code == 0 and out.strip() == "-- voice:news/extra/only/0"

    code, out, _ = doit(built, fakes, "clean", "master:news/extra")
    assert code in (0, None) and not (built / "build" / "news" / "extra.wav").exists()
    assert (built / "build" / "news" / "briefing@anna.wav").exists()

    code, out, _ = doit(built, fakes, "forget", "master:news/briefing@anna")
    assert code in (0, None)  # doit's clean and forget return None for success
    code, out, _ = doit(built, fakes)
    assert set(ran(out)) == {"master:news/extra", "master:news/briefing@anna"}
    assert voice_calls(fakes) == []


def test_parallel_threads_render_everything_once(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    root = show()
    code, out, err = doit(root, fakes, "-n", "4", "-P", "thread")
    assert code == 0, out + err
    assert len(voice_calls(fakes)) == VOICE_ASSETS
    assert len(list((root / "build").rglob("*.wav"))) == 3


def test_user_error_is_one_line_and_writes_nothing(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    root = show(stanzas__extra_dot_j2="## only\nHello {{ nobody }}.\n")
    code, out, err = doit(root, fakes)
    assert code == 3
    assert err == "ERROR: stanzas/extra.j2:2: 'nobody' is undefined; define it in vars or the variants file\n"
    assert "Traceback" not in out + err
    assert voice_calls(fakes) == []
    assert not (root / "cache").exists() and not (root / "build").exists()


class Refusing(RendererBase):
    """A voice renderer that refuses one text, like a provider rejecting a request."""

    kinds = frozenset({"voice"})
    params = {"speed": (int, float)}

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.refuse = "It is long."

    def render(self, request: RenderRequest) -> RenderResult:
        if request.text == self.refuse:
            from mixdown.errors import RenderFailed

            raise RenderFailed(f"{request.target}: provider refused the text")
        result: RenderResult = self.inner.render(request)
        return result


def test_failed_render_names_target_and_resumes(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    root = show()
    refusing = Refusing(fakes["fake"])
    code, out, err = doit(root, {**fakes, "fake": refusing}, "--continue")
    assert code == 2  # doit: a task failed and its dependents could not run
    assert "TaskFailed - taskid:voice:news/briefing/story/1" in out + err
    assert "voice:news/briefing/story/1: provider refused the text" in out + err
    assert "Traceback" not in out + err
    assert not (root / "build" / "news" / "briefing@anna.wav").exists()
    assert (root / "build" / "news" / "extra.wav").exists()  # unaffected targets still built
    fakes["fake"].calls.clear()
    refusing.refuse = ""
    code, out, _ = doit(root, {**fakes, "fake": refusing})
    assert code == 0 and voice_calls(fakes) == ["It is long."]


def test_cues_follow_a_renderers_character_timing(tmp_path: Path) -> None:
    from mixdown.actions.context import Context
    from mixdown.actions.timeline import aligned_anchor, mixer_item
    from mixdown.plan.model import CueItem, LineItem
    from mixdown.store.cache import Cache

    text = "Hello there, listener."
    # Spoken slowly at first: the 11th of 22 characters starts 1.6 s into a 2 s line.
    alignment = [[c, (1.6 * i / 11) if i < 11 else 1.6 + 0.4 * (i - 11) / 11] for i, c in enumerate(text)]
    cache = Cache(tmp_path)
    line_key, cue_key = "aa" + "1" * 62, "bb" + "2" * 62
    cache.put(line_key, np.full((32000, 1), 0.1, np.float32), 16000, {"alignment": alignment})
    cache.put(cue_key, np.full((800, 1), 0.2, np.float32), 16000, {})
    context = Context(project=None, cache=cache, registry=None)  # type: ignore[arg-type]
    line = mixer_item(context, LineItem(line_key, 0.0, (CueItem(cue_key, 0.5, 0.0, 0.0),)))
    assert line.cues[0].at == pytest.approx(0.8)  # 1.6 s of 2 s, not half-way
    assert aligned_anchor([], 0.5, 2.0) == 0.5  # no timing: keep the character estimate
    assert aligned_anchor(alignment, 1.0, 2.0) == 1.0


def test_voice_lines_are_levelled_before_mixing(tmp_path: Path) -> None:
    from mixdown.actions.context import Context
    from mixdown.actions.timeline import mixer_item
    from mixdown.dsp.loudness import measure
    from mixdown.dsp.mixer import MixSettings, Section, leveling_gain, mix
    from mixdown.plan.model import LineItem
    from mixdown.store.cache import Cache

    t = np.arange(32000) / 16000
    quiet = (0.02 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[:, None]
    loud = (0.5 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)[:, None]
    cache = Cache(tmp_path)
    context = Context(project=None, cache=cache, registry=None)  # type: ignore[arg-type]
    settings = MixSettings(sample_rate=16000, channels=1, line_lufs=-20.0, line_gap=1.0)
    lines = []
    for n, y in enumerate((quiet, loud)):
        key = f"{n:02d}" + "5" * 62
        cache.put(key, y, 16000, {})
        lines.append(mixer_item(context, LineItem(key, -1.0)))
    voice = mix([Section(tuple(lines))], settings=settings).voice
    levels = [measure(voice[:32000], 16000).integrated, measure(voice[48000:80000], 16000).integrated]
    assert levels == pytest.approx([-21.0, -21.0], abs=0.05)  # -20 LUFS, then the voice's own -1 dB
    assert leveling_gain(quiet[:3000], 16000, -20.0) == 0.0  # too short to measure: untouched
    assert leveling_gain(quiet, 16000, None) == 0.0


def test_stems_are_written_and_sum_to_the_mix(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    from mixdown.actions.mix import mix_source
    from mixdown.loader import load_show

    root = show(project_dot_toml=BASIC_TOML.replace('formats = ["wav"]', 'formats = ["wav"]\nstems = true'))
    code, out, err = doit(root, fakes)
    assert code == 0, out + err
    show_ = load_show(root, registry=Registry(root, extra=fakes))
    plan = next(m for m in show_.plan.mixes if m.name == "news/briefing@kofi")
    mixed = np.concatenate(list(mix_source(show_.context, plan).blocks()))  # a record: mixed again
    folder = root / "build" / "news" / "briefing@kofi.stems"
    buses = [sf.read(folder / f"{bus}.wav", always_2d=True)[0] for bus in ("voice", "sfx", "music")]
    assert all(len(b) == len(mixed) for b in buses) and all(np.abs(b).max() > 0.001 for b in buses)
    np.testing.assert_allclose(sum(buses), mixed, atol=1e-5)  # 24-bit WAVs of the buses, before mastering


def test_an_object_damaged_on_disk_fails_in_one_line_then_is_made_again(
    built: Path, fakes: dict[str, Any]
) -> None:
    import os

    from mixdown.loader import load_show

    loaded = load_show(built, registry=Registry(built, extra=fakes))
    cache = loaded.context.cache
    mix = next(m for m in loaded.plan.mixes if m.name == "news/extra")
    line = next(loaded.plan.assets[key] for key in mix.assets if loaded.plan.assets[key].kind == "voice")
    made = {p: p.read_bytes() for p in (built / "build" / "news").glob("extra.*")}
    section = next(s for s in loaded.plan.sections.values() if line.key in s.assets)
    # a mix kept as a record (a short one in a compact cache) has no samples to damage: its master
    # mixes it again from the pre-mixes, one of which is damaged instead
    assert cache.kept_as_record(mix.key)
    for damaged, remade in (
        (line.key, [line.task, section.task, f"mix:{mix.name}"]),
        (section.key, [section.task]),
    ):
        os.truncate(cache.path(damaged), os.path.getsize(cache.path(damaged)) // 2)  # cut short on disk
        # the objects read next: the section's pre-mix reads the line, the master the mix (mixed again
        # from the pre-mixes)
        after = [section.key, section.sfx_key, mix.key] if damaged == line.key else [mix.master_key]
        for key in after:
            if key in cache:
                cache.path(key).unlink()
                cache.meta_path(key).unlink()
        for path in made:
            path.unlink()  # so that the master runs and reads the mix
        code, out, err = doit(built, fakes)
        assert code != 0 and "Traceback" not in out + err
        assert f"cache object {damaged[:12]}: the file holds" in out + err
        assert "it was removed: run the build again" in out + err and not cache.path(damaged).exists()
        assert not any(path.exists() for path in made)  # nothing published from the damaged object
        fakes["fake"].calls.clear()
        code, out, err = doit(built, fakes)
        assert code == 0, out + err
        assert set(remade) <= set(ran(out)) and voice_calls(fakes) == (
            [line.text] if damaged == line.key else []
        )
        assert {path: path.read_bytes() for path in made} == made  # the same files as before


def objects(root: Path) -> dict[str, tuple[int, int]]:
    """Every cache object and record: name -> (inode, mtime), to see that none was written again."""
    found = {}
    for path in (root / "cache" / "objects").rglob("*"):
        if path.is_file() and path.suffix in (".wav", ".json"):
            st = path.stat()
            found[path.name] = (st.st_ino, st.st_mtime_ns)
    return found


def test_doit_a_renders_no_cached_asset_again_and_loses_nothing(built: Path, fakes: dict[str, Any]) -> None:
    before = objects(built)
    for args in (["master:news/briefing@anna"], ["voice:news/extra/only/0"], []):
        code, out, err = doit(built, fakes, "-a", *args)
        assert code == 0, out + err
        assert voice_calls(fakes) == [] and fakes["noise"].calls == [], args  # a cloud voice bills nothing
    assert objects(built) == before  # every object kept, none written again (the takes stay the ones heard)
    for name in ("news/briefing@anna", "news/briefing@kofi", "news/extra"):
        assert (built / "build" / f"{name}.wav").is_file()


class Blocking(RendererBase):
    """A voice renderer whose first call waits for ``release``; it counts every call."""

    kinds = frozenset({"voice"})
    params = {"speed": (int, float)}

    def __init__(self, inner: Any) -> None:
        import threading

        self.inner, self.calls = inner, 0
        self.started, self.release = threading.Event(), threading.Event()

    def render(self, request: RenderRequest) -> RenderResult:
        self.calls += 1
        self.started.set()
        assert self.release.wait(30)
        result: RenderResult = self.inner.render(request)
        return result


def test_a_second_build_waits_for_the_firsts_render_and_pays_nothing(
    show: Callable[..., Path],
    fakes: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading
    import time

    from mixdown.actions import mix as mixing_module
    from mixdown.actions.mix import build_mix
    from mixdown.actions.render import render_asset
    from mixdown.loader import load_show

    root = show()
    blocking = Blocking(fakes["fake"])
    registry = {**fakes, "fake": blocking}
    first, second = (load_show(root, registry=Registry(root, extra=registry)) for _ in range(2))
    asset = next(a for a in first.plan.assets.values() if a.kind == "voice")
    results: dict[str, Any] = {}
    one = threading.Thread(target=lambda: results.update(one=render_asset(first.context, asset)))
    two = threading.Thread(target=lambda: results.update(two=render_asset(second.context, asset)))
    one.start()
    assert blocking.started.wait(30)
    two.start()
    two.join(0.5)
    assert two.is_alive()  # waiting on the lock, not rendering
    blocking.release.set()
    one.join(30)
    two.join(30)
    assert results == {"one": None, "two": None}
    assert blocking.calls == 1
    said = capsys.readouterr().out
    assert said.count(f"{asset.task}  waiting for another build rendering it") == 1
    assert asset.key in second.context.cache
    assert not list((root / "cache").rglob("*.lock")) and not list((root / "cache").rglob(".*.tmp"))
    # mixes of one key take turns too: the second finds the first's mix and makes nothing
    for key in first.plan.mixes[0].assets:
        a = first.plan.assets[key]
        assert render_asset(first.context, a) is None
    mix = first.plan.mixes[0]
    mixed: list[str] = []
    mixing = mixing_module._mix

    def counted(context: Any, plan: Any) -> None:
        mixed.append(plan.name)
        time.sleep(0.3)  # long enough for the other build to find the lock taken
        mixing(context, plan)

    monkeypatch.setattr(mixing_module, "_mix", counted)
    results.clear()
    threads = [
        threading.Thread(target=lambda s=s: results.update({id(s): build_mix(s.context, mix)}))
        for s in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert list(results.values()) == [None, None] and mixed == [mix.name]
    assert f"mix:{mix.name}  waiting for another build mixing it" in capsys.readouterr().out
    assert not list((root / "cache").rglob("*.lock")) and not list((root / "cache").rglob(".*.tmp"))


def test_a_renderers_exception_never_shows_an_api_key(
    show: Callable[..., Path], fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A renderer's own exception may quote the request it made, key and all.
    monkeypatch.setenv("ACME_API_KEY", "sk-acme-0123456789")

    class Leaky(RendererBase):
        kinds = frozenset({"voice"})
        params = {"speed": (int, float)}

        def render(self, request: RenderRequest) -> RenderResult:
            raise RuntimeError("401 for POST /tts?key=sk-acme-0123456789")

    root = show()
    code, out, err = doit(root, {**fakes, "fake": Leaky()}, "voice:news/extra/only/0")
    assert code != 0 and "Traceback" not in out + err
    assert "sk-acme-0123456789" not in out + err
    assert "raised RuntimeError: 401 for POST /tts?key=***; nothing was cached" in out + err
