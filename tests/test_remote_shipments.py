"""Masters and deliveries shared through the remote cache (``[cache] share = "all"``): a second
clone publishes the author's files in ``build/`` without mastering anything."""

# ruff: noqa: F811  # the fixtures imported from test_remote_build are the tests' parameters

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mixdown.actions import deliver, master
from mixdown.loader import load_show
from mixdown.plan.model import shipment_key

from .fakeserver import FakeSpeechServer
from .s3server import S3
from .test_build import doit, ran
from .test_remote_build import LINES, built_files, clones, git, mixdown, script, server  # noqa: F401

SHARED = """stems = true

[deliveries.loud]
target_lufs = -14
formats = ["flac"]

[cache]
share = "{share}"
"""


@pytest.fixture
def shows(clones: tuple[Path, Path]) -> tuple[Path, Path]:
    """The two clones, with stems, one delivery, and everything shared."""
    for root in clones:
        toml = root / "project.toml"
        toml.write_text(toml.read_text() + SHARED.format(share="all"))
    return clones


@pytest.fixture
def shared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A file:// remote cache in ``tmp_path/shared``, set for the builds (MIXDOWN_REMOTE)."""
    where = tmp_path / "shared"
    monkeypatch.setenv("MIXDOWN_REMOTE", where.as_uri())
    return where


@pytest.fixture
def masterings(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The renditions a build mastered (each call of ``mastered``, by the master or a delivery)."""
    calls: list[str] = []
    real = master.mastered

    def counted(context: Any, plan: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(plan.name)
        return real(context, plan, *args, **kwargs)

    monkeypatch.setattr(master, "mastered", counted)
    monkeypatch.setattr(deliver, "mastered", counted)
    yield calls


def keys(root: Path) -> tuple[str, str]:
    """The shipment keys of the rendition ``news``: its [master] files, its delivery ``loud``."""
    plan = load_show(root).plan.mix_named("news")
    return shipment_key(plan), shipment_key(plan, "loud")


def from_remote(out: str) -> list[str]:
    return [line.split("  ")[-2] for line in out.splitlines() if line.endswith("(from the remote cache)")]


PUBLISHED = ["build/news.wav", "build/news.loud.flac"] + [
    f"build/news.stems/{b}.wav" for b in ("music", "sfx", "voice")
]
#: made on each machine from the cache and the timeline (mixdown.actions.publish), never shipped
SIDECARS = [
    f"build/news{d}.{s}" for d in ("", ".loud") for s in ("vtt", "srt", "chapters.json", "chapters.txt")
] + ["build/news.otio"]


def test_a_second_clone_publishes_the_authors_masters_without_mastering(
    shows: tuple[Path, Path],
    server: FakeSpeechServer,
    s3: S3,
    masterings: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = shows
    monkeypatch.setenv("MIXDOWN_REMOTE", s3.url)
    code, out, err = doit(a, {})
    assert code == 0, out + err
    assert masterings == ["news", "news"]  # the master, and the delivery reading it
    assert sorted(built_files(a)) == sorted(PUBLISHED + SIDECARS)
    client = s3.client()
    listed = {o["Key"].rsplit("/", 1)[-1] for o in client.list_objects_v2(Bucket=s3.bucket)["Contents"]}
    for key in keys(a):
        assert f"{key}.json" in listed

    masterings.clear()
    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert sum(server.attempts.values()) == len(LINES)  # not one provider request more
    assert masterings == []  # nothing mastered: no limiter pass, no encode
    assert sorted(from_remote(out)) == sorted(PUBLISHED)
    assert built_files(b) == built_files(a)
    assert (b / "mixdown.lock").read_bytes() == (a / "mixdown.lock").read_bytes()
    assert "uploaded" not in out  # nothing new to share

    # build/ as published from the remote is trusted as made here: a no-op build does nothing
    code, out, err = doit(b, {})
    assert code == 0 and not [t for t in ran(out) if t.startswith(("master:", "deliver:"))], out


def remote_files(shared: Path, key: str) -> list[Path]:
    return sorted((shared / "objects" / key[:2]).glob(f"{key}.*"))


def test_a_corrupt_remote_master_file_is_reported_and_mastered_again(
    shows: tuple[Path, Path], server: FakeSpeechServer, masterings: list[str], shared: Path
) -> None:
    a, b = shows
    assert doit(a, {})[0] == 0
    key, _ = keys(a)
    wav = next(p for p in remote_files(shared, key) if p.read_bytes() == (a / "build/news.wav").read_bytes())
    good = wav.read_bytes()
    wav.write_bytes(good[: len(good) // 2])  # truncated on the remote
    masterings.clear()
    code, out, err = doit(b, {})
    assert code == 0, out + err
    lines = [line for line in (out + err).splitlines() if "the remote copy" in line]
    assert len(lines) == 1 and lines[0].startswith(f"master:news: the remote copy of {key[:12]} in "), lines
    assert f"build/news.wav: {len(good) // 2:,} of {len(good):,} bytes" in lines[0]
    assert masterings[0] == "news"  # mastered here
    assert not list((b / "build").rglob(".*"))  # no temporary file left
    assert built_files(b) == built_files(a)
    assert (b / "mixdown.lock").read_bytes() == (a / "mixdown.lock").read_bytes()
    assert wav.read_bytes() == good  # B's upload replaced it


def test_an_interrupted_upload_is_never_used(
    shows: tuple[Path, Path], server: FakeSpeechServer, masterings: list[str], shared: Path
) -> None:
    a, b = shows
    assert doit(a, {})[0] == 0
    key, loud = keys(a)
    record = shared / "objects" / key[:2] / f"{key}.json"
    record.unlink()  # the files went up, the record did not
    for path in remote_files(shared, key):
        path.write_bytes(b"")  # and they are not whole either: never read without a record
    masterings.clear()
    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert "the remote copy" not in out + err
    assert masterings == ["news"]  # the master made here; the delivery's files came from the remote
    assert from_remote(out) == ["build/news.loud.flac"]
    assert built_files(b) == built_files(a)
    assert record.is_file()  # B's upload finished what A's left


def test_share_assets_uploads_no_master(
    clones: tuple[Path, Path], server: FakeSpeechServer, shared: Path
) -> None:
    a, _ = clones
    toml = a / "project.toml"
    toml.write_text(toml.read_text() + SHARED.format(share="assets"))
    code, out, err = doit(a, {})
    assert code == 0, out + err
    assert f"remote cache: uploaded {len(LINES)} objects" in out
    for key in keys(a):
        assert remote_files(shared, key) == []
    assert len(list(shared.rglob("*.json"))) == len(LINES)


def test_push_status_and_gc_know_shared_masters(
    shows: tuple[Path, Path],
    server: FakeSpeechServer,
    masterings: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = shows
    assert doit(a, {})[0] == 0  # built with no remote
    shared = tmp_path / "shared"
    monkeypatch.setenv("MIXDOWN_REMOTE", shared.as_uri())
    code, out, _ = mixdown(a, "status")
    # 3 lines, the section's pre-mix, the mix, the master's files and the delivery's
    assert out.splitlines()[:3] == [
        f'7 objects shared ([cache] share = "all") with {shared.as_uri()}',
        "missing locally: 0",
        "missing remotely: 7",
    ]
    assert out.splitlines()[-3:-1] == ["  master:news", "  deliver:news/loud"]
    code, out, _ = mixdown(a, "push")
    # 3 lines, the section's pre-mix, the mix, and build/'s 2 (the master's files, the delivery's)
    assert code == 0 and out.startswith("pushed 7 objects"), out
    assert "missing remotely: 0" in mixdown(a, "status")[1]
    masterings.clear()
    code, out, err = doit(b, {})
    assert code == 0 and masterings == [] and built_files(b) == built_files(a), out + err

    # an edit, built and shared: the old master's files are garbage on the remote once no
    # committed lock references that master
    git(a, "add", "mixdown.lock")
    git(a, "commit", "-qm", "lock")
    old = keys(a)
    (a / "stanzas" / "news.j2").write_text(script([LINES[0], "Sun is coming later today.", LINES[2]]))
    assert doit(a, {})[0] == 0
    new = keys(a)

    def listed() -> set[str]:
        code, out, _ = mixdown(a, "gc", "--remote", "--dry-run")
        assert code == 0
        return {line.split()[0] for line in out.splitlines() if line.startswith("  ")}

    assert listed() and not (set(old) | set(new)) & listed()  # HEAD's lock has the old master
    git(a, "commit", "-qam", "edit")
    assert set(old) <= listed() and not set(new) & listed()
    assert all(remote_files(shared, key) for key in old)  # a dry run
    code, out, _ = mixdown(a, "gc", "--remote")
    assert all(remote_files(shared, key) == [] for key in old)
    assert all(remote_files(shared, key) for key in new)


def test_a_frozen_build_holds_shared_masters_to_the_lock(
    shows: tuple[Path, Path],
    server: FakeSpeechServer,
    masterings: list[str],
    shared: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = shows
    assert doit(a, {})[0] == 0
    git(a, "add", "mixdown.lock")
    git(a, "commit", "-qm", "lock")
    git(b, "pull", "-q")
    monkeypatch.setenv("MIXDOWN_FROZEN", "1")
    lock = (b / "mixdown.lock").read_text()
    sha = next(line for line in lock.splitlines() if '"build/news.wav"' in line).split('sha256 = "')[1][:64]
    (b / "mixdown.lock").write_text(lock.replace(sha, "0" * 64))  # pins audio the remote does not have
    masterings.clear()
    code, out, err = doit(b, {})
    assert code != 0
    failed = [line for line in (out + err).splitlines() if "--frozen, but build/news.wav" in line]
    assert len(failed) == 1 and failed[0].startswith("master:news: "), out + err
    assert masterings == []

    (b / "mixdown.lock").write_text(lock)  # as A committed it
    code, out, err = doit(b, {})
    assert code == 0, out + err
    assert masterings == [] and built_files(b) == built_files(a)
    assert (b / "mixdown.lock").read_text() == lock


def test_a_shipment_key_follows_the_files_it_names(shows: tuple[Path, Path]) -> None:
    a, _ = shows
    toml = a / "project.toml"
    first = keys(a)
    assert len(set(first)) == 2 and keys(a) == first
    toml.write_text(toml.read_text().replace("target_lufs = -14", "target_lufs = -15"))
    assert keys(a)[0] == first[0] and keys(a)[1] != first[1]  # the delivery's settings
    toml.write_text(toml.read_text().replace('formats = ["wav"]', 'formats = ["wav", "flac"]'))
    assert keys(a)[0] != first[0]  # the [master] formats: not in the master's key, in its files


def test_a_record_reads_back_and_ignores_fields_it_does_not_know() -> None:
    from mixdown.actions.shipments import Record, ShippedFile

    made = ShippedFile(
        "build/x.wav", "0123456789abcdef.wav", "ab" * 32, 1234, 6.1, -16.0, -1.25, "-16.0 LUFS"
    )
    record = Record(
        "master", "k" * 64, "master:x", "m" * 64, "n" * 64, (made,), (made._replace(seconds=None),)
    )
    assert Record.from_json(record.to_json()) == record
    import json

    data = json.loads(record.to_json())
    data["files"][0]["added_later"] = 1
    assert Record.from_json(json.dumps(data).encode()) == record
    del data["master"]
    with pytest.raises(ValueError, match="not a shipment's record"):
        Record.from_json(json.dumps(data).encode())
