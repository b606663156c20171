"""The shared remote cache (mixdown.store.remote): layout, read-through, write-through, faults."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mixdown.store.cache import Cache
from mixdown.store.remote import Remote, RemoteUnavailable, Wanted, redacted

from .s3server import S3, point_at

KEY = "ab" + "0" * 62


def tone(seconds: float = 0.25, f0: float = 220.0, sr: int = 16000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.25 * np.sin(2 * np.pi * f0 * t)).astype(np.float32)[:, None]


def key(n: int) -> str:
    return hashlib.sha256(f"key {n}".encode()).hexdigest()


def stored(cache: Cache, k: str, f0: float = 220.0) -> Path:
    return cache.put(k, tone(f0=f0), 16000, {"kind": "voice", "renderer": "fake", "params": {}})


def test_file_remote_round_trip_has_the_contract_layout(tmp_path: Path) -> None:
    a, b = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    keys = [key(n) for n in range(5)]
    for n, k in enumerate(keys):
        stored(a, k, 200.0 + 10 * n)
    url = (tmp_path / "remote").as_uri()
    up = Remote(url)
    for k in keys:
        up.upload(a, Wanted(k, f"voice:x/{k[:4]}"))
    done = up.drain()
    assert (done.objects, done.failed) == (5, ())
    assert done.size == sum(a.path(k).stat().st_size for k in keys)
    for k in keys:
        base = tmp_path / "remote" / "objects" / k[:2] / k
        assert base.with_suffix(".wav").read_bytes() == a.path(k).read_bytes()
        record = json.loads(base.with_suffix(".json").read_text())
        assert record == a.meta(k)
        assert record["sha256"] == hashlib.sha256(a.path(k).read_bytes()).hexdigest()
    assert Remote(url).keys() == set(keys)
    got = Remote(url).fetch(b, [Wanted(k, "voice:x") for k in keys] + [Wanted(key(99), "voice:y")])
    assert sorted(got.fetched) == sorted(keys)
    assert (got.wanted, got.found, got.corrupt) == (6, 5, ())
    for k in keys:
        assert b.path(k).read_bytes() == a.path(k).read_bytes()
        assert b.meta(k) == a.meta(k)
        assert k in b
    assert not [p for p in (tmp_path / "b").rglob("*") if ".tmp" in p.name]


def uploaded(cache: Cache, url: str, keys: list[str], **options: Any) -> Remote:
    remote = Remote(url, **options)
    for k in keys:
        remote.upload(cache, Wanted(k, f"voice:x/{k[:6]}"))
    done = remote.drain()
    assert done.failed == ()
    return remote


def upload_once(cache: Cache, url: str, k: str) -> Any:
    remote = Remote(url)
    remote.upload(cache, Wanted(k, "voice:x"))
    return remote.drain()


def test_s3_batch_fetch_verifies_and_publishes_every_object(tmp_path: Path, s3: S3) -> None:
    a, b = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    keys = [key(n) for n in range(40)]
    for n, k in enumerate(keys):
        stored(a, k, 100.0 + 5 * n)
    uploaded(a, s3.url, keys)
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="cache/objects/")["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(
        f"cache/objects/{k[:2]}/{k}.{ext}" for k in keys for ext in ("wav", "json")
    )
    got = Remote(s3.url).fetch(b, [Wanted(k, "voice:x") for k in keys])
    assert sorted(got.fetched) == sorted(keys) and got.corrupt == ()
    assert got.size == sum(a.path(k).stat().st_size for k in keys)
    for k in keys:
        assert b.path(k).read_bytes() == a.path(k).read_bytes()
        np.testing.assert_array_equal(b.get(k)[0], a.get(k)[0])


@pytest.mark.parametrize("damage", ["truncated", "flipped", "missing"])
def test_a_corrupt_remote_object_is_never_used_and_its_upload_replaces_it(
    tmp_path: Path, s3: S3, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    k = key(1)
    stored(a, k)
    uploaded(a, s3.url, [k])
    client, name = s3.client(), f"cache/objects/{k[:2]}/{k}.wav"
    body = a.path(k).read_bytes()
    if damage == "missing":
        client.delete_object(Bucket=s3.bucket, Key=name)
    else:
        bad = body[: len(body) // 2] if damage == "truncated" else body[:-1] + bytes([body[-1] ^ 1])
        client.put_object(Bucket=s3.bucket, Key=name, Body=bad)
    reader = Remote(s3.url)
    assert not reader.fetch_one(b, Wanted(k, "voice:news/main/3"))
    assert k not in b and not b.meta_path(k).exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith("voice:news/main/3: the remote copy of ") and "corrupt" in err[0]
    )
    # the machine that finds it corrupt renders it again (another take) and its upload replaces it
    stored(b, k, f0=330.0)
    reader.upload(b, Wanted(k, "voice:news/main/3"))
    assert reader.drain().objects == 1
    c = Cache(tmp_path / "c")
    assert Remote(s3.url).fetch_one(c, Wanted(k, "voice:news/main/3"))
    assert c.path(k).read_bytes() == b.path(k).read_bytes()
    assert c.meta(k)["sha256"] == b.meta(k)["sha256"]


def test_two_machines_uploading_one_key_at_once_leave_one_whole_object(tmp_path: Path, s3: S3) -> None:
    k = key(7)
    caches = [Cache(tmp_path / name) for name in ("a", "b")]
    for n, cache in enumerate(caches):
        stored(cache, k, f0=200.0 + 100 * n)  # two takes: different bytes under one key
    assert caches[0].meta(k)["sha256"] != caches[1].meta(k)["sha256"]
    start = threading.Barrier(2)
    results: list[Any] = [None, None]

    def machine(n: int) -> None:
        remote = Remote(s3.url)
        remote.filesystem()
        start.wait()
        remote.upload(caches[n], Wanted(k, "voice:x"))
        results[n] = remote.drain()

    threads = [threading.Thread(target=machine, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.failed == () for r in results)
    assert sorted(r.objects for r in results) == [0, 1]
    client = s3.client()
    record = json.loads(
        client.get_object(Bucket=s3.bucket, Key=f"cache/objects/{k[:2]}/{k}.json")["Body"].read()
    )
    body = client.get_object(Bucket=s3.bucket, Key=f"cache/objects/{k[:2]}/{k}.wav")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == record["sha256"] and len(body) == record["size"]
    winner = next(c for c in caches if c.meta(k)["sha256"] == record["sha256"])
    assert body == winner.path(k).read_bytes()
    c = Cache(tmp_path / "c")
    assert Remote(s3.url).fetch_one(c, Wanted(k, "voice:x"))


def dead_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    point_at(monkeypatch, f"http://127.0.0.1:{port}")  # nothing listens there


def test_an_unreachable_remote_warns_once_and_the_cache_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead_endpoint(monkeypatch)
    cache = Cache(tmp_path / "a")
    remote = Remote("s3://bucket/cache")
    for n in range(3):
        assert not remote.fetch_one(cache, Wanted(key(n), f"voice:x/{n}"))
        stored(cache, key(n))
        remote.upload(cache, Wanted(key(n), f"voice:x/{n}"))
    remote.drain()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("warning: remote cache s3://bucket/cache is unreachable (")
    assert err[0].endswith("; building locally")


def test_an_unreachable_required_remote_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dead_endpoint(monkeypatch)
    with pytest.raises(RemoteUnavailable, match=r"unreachable .*MIXDOWN_REMOTE_REQUIRED"):
        Remote("s3://bucket/cache", required=True).fetch_one(Cache(tmp_path), Wanted(key(1), "voice:x"))


def test_refused_credentials_name_the_backend_and_what_to_set(
    tmp_path: Path, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto import settings

    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto now checks the keys
    remote = Remote(s3.url, required=True)
    with pytest.raises(RemoteUnavailable) as caught:
        remote.fetch_one(Cache(tmp_path), Wanted(key(1), "voice:x"))
    line = str(caught.value)
    assert "\n" not in line and "testing" not in line
    assert line.startswith(f"remote cache {s3.url} refused the s3 credentials (")
    assert "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE" in line


def test_a_missing_backend_library_is_one_line_with_the_install_hint(tmp_path: Path) -> None:
    remote = Remote("gs://bucket/cache", required=True)
    with pytest.raises(RemoteUnavailable) as caught:
        remote.fetch_one(Cache(tmp_path), Wanted(key(1), "voice:x"))
    assert str(caught.value).startswith("remote cache gs://bucket/cache needs gcsfs, which is not installed")
    assert "pip install 'mixdown[gcs]'" in str(caught.value)


def test_messages_never_show_userinfo_or_query() -> None:
    assert redacted("s3://AKIAXXXX:s3cr3t@bucket/prefix?token=abc") == "s3://bucket/prefix"
    assert redacted("sftp://me:pw@host:2222/srv/cache") == "sftp://host:2222/srv/cache"
    remote = Remote("sftp://me:hunter22@127.0.0.1:1/srv")
    assert (
        "hunter22" not in repr(remote) and "me:" not in remote.trouble(OSError("me:hunter22 refused")).args[0]
    )


def test_an_interrupted_upload_leaves_no_record_and_is_taken_over_once_stale(
    tmp_path: Path, s3: S3, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixdown.store import remote as remote_module
    from mixdown.store import transfers

    k = key(3)
    a, b, c = (Cache(tmp_path / n) for n in "abc")
    stored(a, k, f0=250.0)
    stored(b, k, f0=350.0)  # another take of the same key
    real = transfers.put_new

    def dies_before_the_record(fs: Any, data: Any, rpath: str) -> None:
        if rpath.endswith(".json"):
            raise ConnectionResetError("the connection dropped")  # between object and record
        real(fs, data, rpath)

    monkeypatch.setattr(transfers, "put_new", dies_before_the_record)
    assert len(upload_once(a, s3.url, k).failed) == 1
    monkeypatch.setattr(transfers, "put_new", real)
    names = [o["Key"] for o in s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert names == [f"cache/objects/{k[:2]}/{k}.wav"]  # an object, but no record: invisible
    got = Remote(s3.url).fetch(c, [Wanted(k, "voice:x")])
    assert (got.found, got.fetched, got.corrupt) == (0, (), ()) and k not in c
    assert Remote(s3.url).keys() == set()

    # another machine's take, while the orphan is fresh: the first upload may still be going on
    assert upload_once(b, s3.url, k) == (0, 0, pytest.approx(0, abs=5), ())
    assert Remote(s3.url).keys() == set()
    # the same bytes as the orphan (its own machine pushing again): the record completes it
    assert upload_once(a, s3.url, k).objects == 1
    assert Remote(s3.url).fetch_one(c, Wanted(k, "voice:x"))
    assert c.path(k).read_bytes() == a.path(k).read_bytes()

    # an orphan older than ORPHAN_SECONDS is replaced by whoever uploads the key next
    s3.client().delete_object(Bucket=s3.bucket, Key=f"cache/objects/{k[:2]}/{k}.json")
    monkeypatch.setattr(remote_module, "ORPHAN_SECONDS", -1.0)
    assert upload_once(b, s3.url, k).objects == 1
    d = Cache(tmp_path / "d")
    assert Remote(s3.url).fetch_one(d, Wanted(k, "voice:x"))
    assert d.path(k).read_bytes() == b.path(k).read_bytes()


def test_a_remote_failing_mid_batch_keeps_what_arrived_whole_and_is_not_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mixdown.store import transfers

    a, b = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    keys = [key(n) for n in range(3)]
    for n, k in enumerate(keys):
        stored(a, k, 300.0 + n)
    url = (tmp_path / "remote").as_uri()
    uploaded(a, url, keys)
    real = transfers.each

    def drops_one(fs: Any, calls: list[Any]) -> list[Any]:
        answers = real(fs, calls)
        return [
            ConnectionResetError("reset by peer") if keys[1] in str(c[1]) and c[0] == "get_file" else x
            for c, x in zip(calls, answers, strict=True)
        ]

    monkeypatch.setattr(transfers, "each", drops_one)
    remote = Remote(url)
    with pytest.raises(RemoteUnavailable, match="is unreachable .*reset by peer"):
        remote.fetch(b, [Wanted(k, "voice:x") for k in keys])
    assert [k in b for k in keys] == [True, False, True]
    assert b.path(keys[0]).read_bytes() == a.path(keys[0]).read_bytes()
    assert not [p for p in (tmp_path / "b").rglob("*") if ".tmp" in p.name]
    assert remote.down is not None


def test_what_another_machine_uploads_after_a_listing_is_seen(tmp_path: Path, s3: S3) -> None:
    """A listing of the remote (push, status, a cluster build's start) must not hide what another
    machine uploads afterwards into a directory it listed: the remote is shared and always moving."""
    first = key(1)
    later = next(k for k in (key(n) for n in range(2, 5000)) if k[:2] == first[:2])  # same directory
    a, b = Cache(tmp_path / "a"), Cache(tmp_path / "b")
    stored(a, first)
    stored(b, later, f0=330.0)
    here = Remote(s3.url)
    here.upload(a, Wanted(first, "voice:first"))
    assert here.drain().failed == ()
    assert here.keys() == {first}  # a listing of the directory both keys live in
    there = Remote(s3.url)
    there.upload(b, Wanted(later, "voice:later"))
    assert there.drain().failed == ()
    assert here.keys() == {first, later}
    got = here.fetch(a, [Wanted(later, "voice:later")])
    assert got.fetched == (later,)
    assert a.path(later).read_bytes() == b.path(later).read_bytes()
    fs, _ = here.filesystem()
    assert json.loads(fs.cat_file(here.path(later, "json")))["sha256"] == b.meta(later)["sha256"]
