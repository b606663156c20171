"""``mixdown.lock``: written by builds, read by git, held to by ``--frozen``, compared by ``mixdown diff``.

Builds run through doit with counting fakes (tests/conftest.py); the demo
show, voiced by piper, is built once in the slow test at the end.
"""

from __future__ import annotations

import dataclasses
import io
import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from mixdown import cli
from mixdown.actions import locking
from mixdown.errors import ConfigError
from mixdown.loader import load_show
from mixdown.plan import lock, takes
from mixdown.plan.lock import Entry, FileEntry, Lock
from mixdown.renderers import Registry, RenderRequest, RenderResult
from mixdown.store.files import sha256_of

from .conftest import CountingVoice
from .test_build import doit, ran, voice_calls

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@t",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@t",
}
BRIEFING_MASTERS = ["news/briefing@anna", "news/briefing@kofi"]


def git(root: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True, env={**os.environ, **GIT_ENV}
    )
    return done.stdout


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def in_git(root: Path) -> Path:
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("cache/\nbuild/\n.mixdown/\n")
    commit_all(root, "show")
    return root


def changed_tables(root: Path) -> set[str]:
    """The targets whose tables ``git diff mixdown.lock`` touches (each changed line read in its table)."""
    diff = git(root, "diff", "-U100000", "--", lock.FILENAME)
    tables: set[str] = set()
    current = None
    for line in diff.splitlines()[5:]:  # past the header and the one hunk's @@ line
        text = line[1:]
        if text.startswith('["'):
            current = next(iter(tomllib.loads(text)))
        if line[:1] in "+-":
            assert current is not None, line  # nothing above the first table changes
            tables.add(current)
    return tables


def read_lock(root: Path) -> Lock:
    return lock.read(root / lock.FILENAME)


def fingerprint_of(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), os.stat(path).st_mtime_ns


# -- the format ----------------------------------------------------------------------------


SAMPLE = Lock(
    {
        "master:a/b": Entry(
            "master:a/b",
            "m" * 64,
            mix="x" * 64,
            files=(FileEntry("build/a/b.wav", "f" * 64, 18.1, -16.0, -2.3),),
        ),
        "mix:a/b": Entry("mix:a/b", "x" * 64, seconds=18.1),
        "sfx:door": Entry(
            "sfx:door", "d" * 64, renderer="synth", renderer_version="2", sha256="e" * 64, seconds=0.5
        ),
        "voice:a/b/0": Entry(
            "voice:a/b/0",
            "k" * 64,
            renderer="cloud",
            renderer_version="1",
            sha256="s" * 64,
            seconds=2.3456,
            request_id='req "7"\\\n\x7f',
            billed="42 characters",
        ),
        "deliver:a/b/alexa": Entry("deliver:a/b/alexa", "m" * 64, mix="x" * 64, files=()),
        "music:bed/intro": Entry("music:bed/intro", "i" * 64, seconds=float("-inf")),
    }
)


def test_tables_in_a_fixed_order_and_layout() -> None:
    text = lock.dumps(SAMPLE)
    headers = [line for line in text.splitlines() if line.startswith("[")]
    assert headers == [
        '["voice:a/b/0"]',
        '["sfx:door"]',
        '["music:bed/intro"]',
        '["mix:a/b"]',
        '["master:a/b"]',
        '["deliver:a/b/alexa"]',
    ]
    assert text.startswith("# mixdown.lock") and "\nversion = 1\n\n[" in text
    voice = text.split('["voice:a/b/0"]\n', 1)[1].split("\n\n", 1)[0]
    assert voice.splitlines() == [
        f'key = "{"k" * 64}"',
        'renderer = "cloud"',
        'renderer_version = "1"',
        f'sha256 = "{"s" * 64}"',
        "seconds = 2.346",
        'request_id = "req \\"7\\"\\\\\\u000a\\u007f"',
        'billed = "42 characters"',
    ]
    master = text.split('["master:a/b"]\n', 1)[1].split("\n\n", 1)[0]
    assert master.splitlines() == [
        f'key = "{"m" * 64}"',
        f'mix = "{"x" * 64}"',
        "files = [",
        f'  {{ file = "build/a/b.wav", sha256 = "{"f" * 64}", seconds = 18.1, lufs = -16.0, true_peak = -2.3 }},',
        "]",
    ]
    assert lock.dumps(lock.loads(text)) == text  # read back as written
    again = lock.loads(text)
    assert again.get("voice:a/b/0").request_id == 'req "7"\\\n\x7f'  # type: ignore[union-attr]
    assert again.get("voice:a/b/0").seconds == 2.346  # type: ignore[union-attr]
    assert again.keys() == {"m" * 64, "x" * 64, "d" * 64, "k" * 64, "i" * 64}


def test_a_broken_lock_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / lock.FILENAME
    path.write_text(lock.dumps(SAMPLE).replace("version = 1", "<<<<<<< HEAD\nversion = 1"))
    with pytest.raises(ConfigError, match=r"^mixdown\.lock: .*line 3.*merge conflict") as err:
        lock.read(path)
    assert "\n" not in str(err.value)
    path.write_text("version = 2\n")
    with pytest.raises(ConfigError, match="version 2 is not one this mixdown reads"):
        lock.read(path)
    assert lock.read(tmp_path / "none.lock") == Lock()


# -- what a build writes -------------------------------------------------------------------


def test_a_build_records_every_target(built: Path, fakes: dict[str, Any]) -> None:
    show = load_show(built, registry=Registry(built, extra=fakes))
    found = read_lock(built)
    assert set(found.entries) == set(lock.wanted(show.plan, built))
    cache = show.context.cache
    for asset in show.plan.assets.values():
        entry = found.get(asset.task)
        assert entry is not None and entry.key == asset.key
        assert entry.sha256 == sha256_of(cache.path(asset.key))
        y, sr = sf.read(cache.path(asset.key))
        assert entry.seconds == round(len(y) / sr, 3)
        assert entry.renderer == asset.renderer and entry.renderer_version == "1"
        assert (entry.request_id or "").startswith("fake-") == (asset.kind == "voice")
    for mix in show.plan.mixes:
        assert found.get(f"mix:{mix.name}") == Entry(
            f"mix:{mix.name}", mix.key, seconds=round(cache.info(mix.key)[0] / cache.info(mix.key)[1], 3)
        )
        master = found.get(f"master:{mix.name}")
        assert master is not None and (master.key, master.mix) == (mix.master_key, mix.key)
        (item,) = master.files
        wav = built / item.file
        assert item.file == f"build/{mix.name}.wav" and item.sha256 == sha256_of(wav)
        y, sr = sf.read(wav, always_2d=True)
        assert item.seconds == round(len(y) / sr, 3)
        assert item.lufs == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(y), abs=0.1)
        assert item.lufs == pytest.approx(-16.0, abs=0.5) and -10.0 < item.true_peak <= -1.0
    assert found.keys() == {a.key for a in show.plan.assets.values()} | {
        k for m in show.plan.mixes for k in (m.key, m.master_key)
    }


def test_deliveries_are_recorded_like_masters(show: Callable[..., Path], fakes: dict[str, Any]) -> None:
    from .conftest import BASIC_TOML

    root = show(
        project_dot_toml=BASIC_TOML + '\n[deliveries.radio]\npreset = "ebu-r128"\nformats = ["flac"]\n'
    )
    assert doit(root, fakes)[0] == 0
    entry = read_lock(root).get("deliver:news/extra/radio")
    assert entry is not None and entry.mix is not None
    (item,) = entry.files
    y, sr = sf.read(root / "build/news/extra.radio.flac", always_2d=True)
    assert item.file == "build/news/extra.radio.flac" and item.sha256 == sha256_of(root / item.file)
    assert item.lufs == pytest.approx(pyloudnorm.Meter(sr).integrated_loudness(y), abs=0.1)
    assert item.lufs == pytest.approx(-23.0, abs=0.5)


def test_one_sentence_edit_changes_exactly_its_line_mixes_and_masters(
    built: Path, fakes: dict[str, Any]
) -> None:
    in_git(built)
    story = built / "stanzas" / "briefing.j2"
    story.write_text(story.read_text().replace("It is long.", "It is very long."))
    code, out, _ = doit(built, fakes)
    assert code == 0 and voice_calls(fakes) == ["It is very long."]
    expected = {"voice:news/briefing/story/1"}
    expected |= {f"{kind}:{name}" for kind in ("mix", "master") for name in BRIEFING_MASTERS}
    assert changed_tables(built) == expected
    assert f"{lock.FILENAME}  written: 5 entries changed" in out


def test_a_noop_build_does_not_touch_or_even_read_the_lock(
    built: Path, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = built / lock.FILENAME
    before = fingerprint_of(path)

    def refuse(*args: Any) -> Lock:
        raise AssertionError("a no-op build read mixdown.lock")

    monkeypatch.setattr(lock, "read", refuse)
    code, out, err = doit(built, fakes)
    assert code == 0 and ran(out) == [] and lock.FILENAME not in out, out + err
    assert fingerprint_of(path) == before
    monkeypatch.undo()
    # a lock changed behind the build's back (a checkout of an old one) is written again
    text = path.read_text()
    path.write_text(text.replace('["mix:news/extra"]\n', '["mix:news/extra"]\n# hand edit\n'))
    code, out, _ = doit(built, fakes)
    assert code == 0 and ran(out) == [] and path.read_text() == text
    # a target that did not run keeps its entry while its key holds, even if its object is gone
    show = load_show(built, registry=Registry(built, extra=fakes))
    gone = next(a for a in show.plan.assets.values() if a.task == "voice:news/extra/only/0")
    os.unlink(show.context.cache.path(gone.key))
    os.unlink(built / "build/news/briefing@anna.wav")
    code, out, _ = doit(built, fakes, "master:news/briefing@anna")
    assert code == 0 and ran(out) == ["master:news/briefing@anna"] and voice_calls(fakes) == []
    assert path.read_text() == text


def test_a_lock_left_in_conflict_is_written_again(built: Path, fakes: dict[str, Any]) -> None:
    path = built / lock.FILENAME
    text = path.read_text()
    path.write_text("<<<<<<< HEAD\n" + text + "=======\n>>>>>>> other\n")
    code, out, _ = doit(built, fakes)
    assert code == 0 and path.read_text() == text
    assert "warning: mixdown.lock: " in out and "writing it again from this build" in out


# -- --frozen ------------------------------------------------------------------------------


def test_frozen_passes_when_nothing_would_change(built: Path, fakes: dict[str, Any]) -> None:
    path = built / lock.FILENAME
    before = fingerprint_of(path)
    code, out, err = doit(built, fakes, "--frozen")
    assert (code, err) == (0, "") and ran(out) == []
    # a fresh cache: everything renders again, and matches the lock (the fakes are deterministic)
    shutil.rmtree(built / "cache")
    shutil.rmtree(built / "build")
    code, out, err = doit(built, fakes, "--frozen")
    assert (code, err) == (0, ""), out + err
    assert len(voice_calls(fakes)) == 8 and fingerprint_of(path) == before


def test_frozen_refuses_a_build_that_would_change_the_lock(
    built: Path, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = built / lock.FILENAME
    before = fingerprint_of(path)
    story = built / "stanzas" / "briefing.j2"
    story.write_text(story.read_text().replace("It is long.", "It is very long."))
    code, out, err = doit(built, fakes, "--frozen")
    assert code != 0 and ran(out) == [] and voice_calls(fakes) == []
    assert err == (
        "ERROR: mixdown.lock: --frozen, but this build would change 5 entries (voice:news/briefing/story/1, "
        "mix:news/briefing@anna, mix:news/briefing@kofi, master:news/briefing@anna, master:news/briefing@kofi); "
        "nothing was rendered: build without --frozen and commit mixdown.lock\n"
    )
    monkeypatch.setenv("MIXDOWN_FROZEN", "1")
    code, out, err = doit(built, fakes)
    assert code != 0 and err.startswith("ERROR: mixdown.lock: --frozen") and voice_calls(fakes) == []
    assert fingerprint_of(path) == before
    monkeypatch.setenv("MIXDOWN_FROZEN", "0")
    code, out, err = doit(built, fakes)
    assert code == 0 and voice_calls(fakes) == ["It is very long."]
    assert changed_entries(before[0].decode(), path.read_text()) == 5


def test_frozen_counts_a_new_format_as_a_change(built: Path, fakes: dict[str, Any]) -> None:
    toml = built / "project.toml"
    toml.write_text(toml.read_text().replace('formats = ["wav"]', 'formats = ["wav", "flac"]'))
    show = load_show(built, registry=Registry(built, extra=fakes))
    before = read_lock(built)
    assert all(before.get(f"master:{m.name}").key == m.master_key for m in show.plan.mixes)  # type: ignore[union-attr]
    code, out, err = doit(built, fakes, "--frozen")
    assert code != 0 and ran(out) == []
    assert (
        "would change 3 entries (master:news/briefing@anna, master:news/briefing@kofi, master:news/extra)"
        in err
    )
    assert doit(built, fakes)[0] == 0
    files = [f.file for f in read_lock(built).get("master:news/extra").files]  # type: ignore[union-attr]
    assert files == ["build/news/extra.wav", "build/news/extra.flac"]


def changed_entries(old: str, new: str) -> int:
    return len(lock.compare(lock.loads(old), lock.loads(new)))


class OtherTake(CountingVoice):
    """The same voice giving other audio for the same request: a renderer whose takes differ."""

    def render(self, request: RenderRequest) -> RenderResult:
        result = super().render(request)
        return RenderResult(result.audio * np.float32(0.9), result.sample_rate, result.meta)


def test_frozen_fails_a_render_whose_audio_differs(built: Path, fakes: dict[str, Any]) -> None:
    show = load_show(built, registry=Registry(built, extra=fakes))
    asset = next(a for a in show.plan.assets.values() if a.task == "voice:news/extra/only/0")
    os.unlink(show.context.cache.path(asset.key))  # as on another machine: this line renders again
    before = fingerprint_of(built / lock.FILENAME)
    code, out, err = doit(built, {**fakes, "fake": OtherTake()}, "--frozen")
    pinned = read_lock(built).get(asset.task)
    assert code != 0 and pinned is not None and pinned.sha256 is not None
    now = sha256_of(show.context.cache.path(asset.key))
    assert now != pinned.sha256
    assert (
        f"{asset.task}: --frozen, but its audio came out with sha256 {now[:12]}… where mixdown.lock pins "
        f"{pinned.sha256[:12]}… (a renderer whose takes differ between machines?): share the pinned takes "
        "through the remote cache ([cache] remote), or build without --frozen and commit mixdown.lock\n"
    ) in out + err
    assert "master:news/extra" not in ran(out) and fingerprint_of(built / lock.FILENAME) == before


def test_frozen_fails_a_master_whose_files_differ(built: Path, fakes: dict[str, Any]) -> None:
    path = built / lock.FILENAME
    wav = built / "build/news/extra.wav"
    real = sha256_of(wav)
    path.write_text(path.read_text().replace(real, "0" * 64))  # as if pinned by another machine's build
    before = fingerprint_of(path)
    os.unlink(wav)
    code, out, err = doit(built, fakes, "--frozen")
    assert code != 0 and ran(out) == ["master:news/extra"] and sha256_of(wav) == real
    assert (
        f"master:news/extra: --frozen, but build/news/extra.wav came out with sha256 {real[:12]}… where "
        f"mixdown.lock pins {'0' * 12}…"
    ) in out + err
    assert fingerprint_of(path) == before


# -- merges, takes and review --------------------------------------------------------------


def test_edits_on_two_branches_merge_without_a_conflict(built: Path, fakes: dict[str, Any]) -> None:
    in_git(built)
    edits = {
        "briefing": ("stanzas/briefing.j2", "Goodbye {{ name }}.", "Bye for now, {{ name }}."),
        "extra": ("stanzas/extra.j2", "Here is the news.", "Here is the late news."),
    }
    for branch, (name, old, new) in edits.items():
        git(built, "checkout", "-qb", branch, "main")
        path = built / name
        path.write_text(path.read_text().replace(old, new))
        assert doit(built, fakes)[0] == 0
        commit_all(built, branch)
    git(built, "checkout", "-q", "briefing")
    git(built, "merge", "-q", "--no-edit", "extra")  # check=True: a conflict fails here
    merged = (built / lock.FILENAME).read_bytes()
    code, out, _ = doit(built, fakes)
    assert code == 0 and (built / lock.FILENAME).read_bytes() == merged  # the merge is the lock of the merge


def test_a_retake_changes_its_asset_mixes_and_masters(built: Path, fakes: dict[str, Any]) -> None:
    in_git(built)
    show = load_show(built, registry=Registry(built, extra=fakes))
    takes.retake(built, show.plan, ["sfx:ding"])  # what `mixdown retake sfx:ding` does
    assert doit(built, fakes)[0] == 0 and fakes["noise"].calls == ["sfx:ding"]
    expected = {"sfx:ding", *(f"{kind}:{name}" for kind in ("mix", "master") for name in BRIEFING_MASTERS)}
    assert changed_tables(built) == expected


def mixdown(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_diff_shows_what_changed_with_deltas(built: Path, fakes: dict[str, Any]) -> None:
    in_git(built)
    code, out, err = mixdown("diff", "-d", str(built))
    assert (code, out, err) == (0, "mixdown.lock: HEAD -> working tree: no changes\n", "")
    old = read_lock(built)
    story = built / "stanzas" / "briefing.j2"
    story.write_text(story.read_text().replace("It is long.", "It is very, very long."))
    assert doit(built, fakes)[0] == 0
    new = read_lock(built)
    code, out, err = mixdown("diff", "HEAD", "-d", str(built))
    line = "voice:news/briefing/story/1"
    was, now = old.get(line), new.get(line)
    assert was is not None and now is not None and was.seconds is not None and now.seconds is not None
    head = [
        "mixdown.lock: HEAD -> working tree: 1 line, 2 deliverables changed",
        "lines (1):",
        f"  ~ {line}  {was.seconds:.2f} -> {now.seconds:.2f} s ({round(now.seconds, 2) - round(was.seconds, 2):+.2f} s)",
        "deliverables (2):",
    ]
    assert code == 0 and err == "" and out.splitlines()[:4] == head
    for name in BRIEFING_MASTERS:
        a, b = old.get(f"master:{name}").files[0], new.get(f"master:{name}").files[0]  # type: ignore[union-attr]
        assert b.seconds > a.seconds
        assert f"  ~ master:{name}" in out
        assert (
            f"      build/{name}.wav  {a.seconds:.2f} -> {b.seconds:.2f} s ({round(b.seconds, 2) - round(a.seconds, 2):+.2f} s)"
            in out
        )
    assert out.splitlines()[-1] == "mixes: 2 changed"
    assert mixdown("diff", "nope", "-d", str(built))[2] == (
        f"mixdown: diff nope: no such git revision in {built} (or it is not in a git repository); "
        "give a commit, branch or tag, e.g. HEAD or main\n"
    )


def test_describe_shows_a_lines_text_and_new_renders() -> None:
    was = Entry("voice:a/0", "1" * 64, sha256="a" * 64, seconds=1.0)
    texts = {"1" * 64: "It opens to walkers.", "2" * 64: "It opens to runners."}
    changes = lock.compare(
        Lock({"voice:a/0": was, "sfx:door": Entry("sfx:door", "3" * 64, sha256="b" * 64, seconds=0.5)}),
        Lock(
            {
                "voice:a/0": Entry("voice:a/0", "2" * 64, sha256="c" * 64, seconds=1.25),
                "sfx:door": Entry("sfx:door", "3" * 64, sha256="d" * 64, seconds=0.5),
                "music:bed/main": Entry("music:bed/main", "4" * 64, sha256="e" * 64, seconds=8.0),
            }
        ),
    )
    assert lock.describe(changes, text_of=texts.get) == [
        "lines (1):",
        "  ~ voice:a/0  1.00 -> 1.25 s (+0.25 s)",
        '      was "It opens to walkers."',
        '      now "It opens to runners."',
        "sfx (1):",
        "  ~ sfx:door  0.50 s  (same inputs, different audio: a new render)",
        "beds (1):",
        "  + music:bed/main  8.00 s",
    ]


def test_describe_gives_deliverables_file_by_file() -> None:
    def flash(lufs: float, peak: float, seconds: float) -> FileEntry:
        return FileEntry("build/a.alexa.mp3", "f" * 64, seconds, lufs, peak)

    old = Entry("deliver:a/alexa", "1" * 64, mix="2" * 64, files=(flash(-14.65, -2.04, 46.97),))
    new = Entry("deliver:a/alexa", "3" * 64, mix="4" * 64, files=(flash(-14.64, -2.21, 46.82),))
    gone = Entry(
        "master:b", "5" * 64, mix="6" * 64, files=(FileEntry("build/b.wav", "0" * 64, 3.0, -16.0, -1.5),)
    )
    changes = lock.compare(Lock({"deliver:a/alexa": old, "master:b": gone}), Lock({"deliver:a/alexa": new}))
    assert lock.describe(changes) == [
        "deliverables (2):",
        "  - master:b",
        "      build/b.wav  3.00 s, -16.0 LUFS, -1.5 dBTP",
        "  ~ deliver:a/alexa",
        # each delta is the difference of the figures shown: -14.65 shows as -14.7
        "      build/a.alexa.mp3  46.97 -> 46.82 s (-0.15 s), -14.7 -> -14.6 LUFS (+0.1 LU), -2.0 -> -2.2 dBTP (-0.2 dB)",
    ]


def test_at_revision(built: Path, tmp_path: Path) -> None:
    assert lock.at_revision(built, "HEAD") is None  # not a repository
    in_git(built)
    assert lock.at_revision(built, "HEAD") == read_lock(built)
    assert lock.at_revision(built, "no-such-branch") is None
    git(built, "rm", "-q", lock.FILENAME)
    commit_all(built, "no lock")
    assert lock.at_revision(built, "HEAD") is None and lock.at_revision(built, "HEAD~1") is not None


def test_update_skips_the_work_only_when_nothing_ran(built: Path, fakes: dict[str, Any]) -> None:
    show = load_show(built, registry=Registry(built, extra=fakes))
    path = built / lock.FILENAME
    text = path.read_text()
    assert locking.update(show.context, show.plan, []) is False
    assert locking.update(show.context, show.plan, ["mix:news/extra"]) is False  # done, and no change
    path.write_text(text.replace("seconds = ", "seconds = 1", 1))  # changed behind the build's back
    assert locking.update(show.context, show.plan, []) is True and path.read_text() == text
    assert locking.update(show.context, show.plan, []) is False


def test_the_plan_carries_the_fingerprint_of_its_lock(
    built: Path, fakes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # made once when the show is planned (and kept by the plan memo): a no-op build compares it
    # without listing every target the lock wants
    show = load_show(built, registry=Registry(built, extra=fakes))
    plan = show.plan
    assert plan.lock_fingerprint == lock.digest(lock.wanted(plan, built), plan)
    assert lock.fingerprint(dataclasses.replace(plan, lock_fingerprint=""), built) == plan.lock_fingerprint
    monkeypatch.setattr(lock, "wanted", lambda *args: pytest.fail("a no-op listed what the lock wants"))
    assert locking.update(show.context, plan, []) is False
    monkeypatch.undo()
    edited = (built / "stanzas/extra.j2").read_text().replace("Here is", "Here was")
    (built / "stanzas/extra.j2").write_text(edited)
    assert (
        load_show(built, registry=Registry(built, extra=fakes)).plan.lock_fingerprint != plan.lock_fingerprint
    )


# -- the demo show, voiced by piper --------------------------------------------------------


@pytest.mark.slow
def test_demo_one_sentence_edit_diff_is_that_line_its_mixes_masters_and_deliveries(
    tmp_path: Path,
) -> None:
    pytest.importorskip("piper")
    from .test_demo import REPO, build, counting_piper

    root = tmp_path / "demo"
    root.mkdir()
    shutil.copy(REPO / "project.toml", root)
    for folder in ("stanzas", "data", "renderers"):
        shutil.copytree(REPO / folder, root / folder)
    piper = counting_piper()
    code, out, err = build(root, piper)
    assert code == 0, out + err
    in_git(root)
    briefing = root / "stanzas" / "briefing.j2"
    briefing.write_text(briefing.read_text().replace("It opens to walkers", "It opens to runners"))
    piper.calls.clear()
    code, out, err = build(root, piper)
    assert code == 0 and len(piper.calls) == 1, out + err
    show = load_show(root, registry=Registry(root, extra={"piper": piper}))
    (line,) = [a.task for a in show.plan.assets.values() if "runners" in a.text]
    names = [m.name for m in show.plan.mixes if m.name.startswith("daily/briefing@")]
    assert len(names) == 3
    expected = {line} | {f"{kind}:{n}" for kind in ("mix", "master") for n in names}
    expected |= {f"deliver:{n}/alexa" for n in names}
    assert changed_tables(root) == expected
    code, out, err = build(root, piper)  # a no-op: the lock stays as it is
    assert code == 0 and piper.calls[1:] == [] and changed_tables(root) == expected
    commit_all(root, "edit")
    code, out, err = doit(root, {"piper": piper}, "--frozen")
    assert (code, err) == (0, "") and ran(out) == []
