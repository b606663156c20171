from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mixdown.errors import AudioError
from mixdown.store.cache import Cache

KEY = "ab" + "0" * 62


def tone(n: int = 4800, channels: int = 1) -> np.ndarray:
    t = np.arange(n) / 48000
    return np.repeat((0.5 * np.sin(2 * np.pi * 440 * t))[:, None], channels, axis=1).astype(np.float32)


def test_put_get_roundtrip_is_exact(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    y = tone(channels=2)
    path = cache.put(KEY, y, 48000, {"renderer": "synth", "params": {"preset": "chime"}})
    assert path == tmp_path / "objects" / "ab" / f"{KEY}.wav"
    back, sr = cache.get(KEY)
    assert sr == 48000 and back.shape == (4800, 2)
    np.testing.assert_array_equal(back, y)  # float32 WAV keeps samples bit-exact
    assert KEY in cache and KEY in Cache(tmp_path).keys()


def test_info_reads_the_header_as_libsndfile_does(tmp_path: Path) -> None:
    import soundfile as sf

    cache = Cache(tmp_path)
    for channels, n, rate in ((1, 4801, 24000), (2, 4800, 48000)):
        key = f"{channels}{n}" + "0" * 59
        path = cache.put(key, tone(n, channels), rate, {"renderer": "synth"})
        info = sf.info(str(path))
        assert cache.info(key) == (info.frames, info.samplerate, info.channels) == (n, rate, channels)
    # anything else is read by libsndfile
    sf.write(str(path), tone(480, 2), 44100, subtype="PCM_16")
    assert cache.info(key) == (480, 44100, 2)


def test_an_object_cut_short_on_disk_is_removed_not_read(tmp_path: Path) -> None:
    import soundfile as sf

    cache = Cache(tmp_path)
    for read in (cache.info, cache.get, cache.source):
        path = cache.put(KEY, tone(4800, 2), 48000, {"renderer": "synth"})
        assert KEY in cache.keys()
        os.truncate(path, os.path.getsize(path) - 4 * 2 * 100 - 3)
        assert sf.info(str(path)).frames == 4800 - 101  # libsndfile reads what is left
        with pytest.raises(
            AudioError, match=r"cache object ab0000000000: the file holds 4,699 of the 4,800 frames .*removed"
        ):
            read(KEY)
        assert not path.exists() and not cache.meta_path(KEY).exists()
        assert KEY not in cache.keys() and KEY not in Cache(tmp_path).keys()


def test_metadata_record_has_facts_and_no_secrets(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    meta = {
        "renderer": "cloud",
        "params": {"voice": "x", "api_key": "sk-secret"},
        "Authorization": "Bearer z",
    }
    cache.put(KEY, tone(), 48000, meta)
    record = cache.meta(KEY)
    assert record["duration"] == pytest.approx(0.1)
    assert (record["sample_rate"], record["channels"], record["key"]) == (48000, 1, KEY)
    assert record["params"] == {"voice": "x"}
    text = cache.meta_path(KEY).read_text()
    assert "secret" not in text and "Bearer" not in text
    assert json.loads(text)["created"].endswith("Z")


def test_failed_write_leaves_no_object_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = Cache(tmp_path)

    def broken_write(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "pwrite", broken_write)  # the object's writer puts samples in place
    with pytest.raises(OSError):
        cache.put(KEY, tone(), 48000, {})
    assert KEY not in Cache(tmp_path)
    leftovers = [p.name for p in (tmp_path / "objects" / "ab").iterdir() if p.suffix != ".json"]
    assert leftovers == []


def test_refuses_bad_audio(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    with pytest.raises(AudioError, match="NaN"):
        cache.put(KEY, np.full((10, 1), np.nan, dtype=np.float32), 48000, {})
    with pytest.raises(AudioError, match="shape"):
        cache.put(KEY, np.zeros(10, dtype=np.float32), 48000, {})
    with pytest.raises(AudioError, match="empty"):
        cache.put(KEY, np.zeros((0, 1), dtype=np.float32), 48000, {})
    assert not (tmp_path / "objects" / "ab" / f"{KEY}.wav").exists()


def test_keys_sees_only_complete_objects(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    cache.put(KEY, tone(), 48000, {})
    shard = tmp_path / "objects" / "cd"
    shard.mkdir(parents=True)
    (shard / ".cd11.wav.x.tmp").write_bytes(b"half")
    (shard / ("cd" + "1" * 62 + ".json")).write_text("{}")  # record without audio: not an object
    assert Cache(tmp_path).keys() == {KEY}


def age(path: Path, seconds: float = 10.0) -> None:
    """Make a directory look last changed ``seconds`` ago (outside the racy window)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - int(seconds * 1e9)))


def test_index_reuses_unchanged_shards_and_sees_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "state" / "index.pickle"
    other = "cd" + "2" * 62
    Cache(tmp_path / "c").put(KEY, tone(), 48000, {})
    Cache(tmp_path / "c").put(other, tone(), 48000, {})
    for shard in ("ab", "cd"):
        age(tmp_path / "c" / "objects" / shard)
    assert Cache(tmp_path / "c", index=index).keys() == {KEY, other}

    listed: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(str(p)) or real_listdir(p))
    assert Cache(tmp_path / "c", index=index).keys() == {KEY, other}
    assert listed == [str(tmp_path / "c" / "objects")]  # no shard listed again

    (tmp_path / "c" / "objects" / "cd" / f"{other}.wav").unlink()  # a re-roll deletes an object
    assert Cache(tmp_path / "c", index=index).keys() == {KEY}
    third = "ab" + "3" * 62
    Cache(tmp_path / "c").put(third, tone(), 48000, {})
    assert Cache(tmp_path / "c", index=index).keys() == {KEY, third}


def test_index_retakes_a_listing_taken_right_after_a_change(tmp_path: Path) -> None:
    index = tmp_path / "index.pickle"
    cache = Cache(tmp_path / "c")
    cache.put(KEY, tone(), 48000, {})
    assert Cache(tmp_path / "c", index=index).keys() == {KEY}  # shard changed just now: racy
    # A file added in the same timestamp tick would leave the mtime unchanged:
    shard = tmp_path / "c" / "objects" / "ab"
    mtime = shard.stat().st_mtime_ns
    late = "ab" + "4" * 62
    Cache(tmp_path / "c").put(late, tone(), 48000, {})
    os.utime(shard, ns=(mtime, mtime))
    assert Cache(tmp_path / "c", index=index).keys() == {KEY, late}
