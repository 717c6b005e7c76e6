"""FeatureCache and video_identity: encode once per (video, sampling, encoder), LRU, disk round trip."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from encode_support import one_thread  # noqa: F401  (autouse fixture)

from vidpool.encode import CLIPEncoder, EncodedFrames, FeatureCache, video_identity
from vidpool.errors import InvalidArgumentError, VideoNotFoundError

pytest.importorskip("safetensors")


def _features(seed: int) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"patches": torch.randn(4, 2, 2, 8, generator=gen), "timestamps": torch.arange(4.0) + seed}


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    return path


def test_key_changes_with_each_part(video: Path) -> None:
    vid = video_identity(video)
    base = FeatureCache.key(vid, {"num_frames": 8}, "enc-a")
    assert base == FeatureCache.key(vid, {"num_frames": 8}, "enc-a")
    assert FeatureCache.key(vid, {"num_frames": 16}, "enc-a") != base
    assert FeatureCache.key(vid, {"num_frames": 8, "start": 1.0}, "enc-a") != base
    assert FeatureCache.key(vid, {"num_frames": 8}, "enc-b") != base
    assert FeatureCache.key("file:other", {"num_frames": 8}, "enc-a") != base
    # Parameter order does not matter.
    assert FeatureCache.key(vid, {"fps": 1, "max_frames": 8}, "e") == FeatureCache.key(
        vid, {"max_frames": 8, "fps": 1}, "e"
    )
    with pytest.raises(InvalidArgumentError):
        FeatureCache.key(vid, [8], "enc-a")  # type: ignore[arg-type]


def test_video_identity_tracks_the_file(video: Path, tmp_path: Path) -> None:
    first = video_identity(video)
    assert first == video_identity(str(video))
    stat = video.stat()
    os.utime(video, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = video_identity(video)
    assert touched != first
    video.write_bytes(video.read_bytes() + b"more")
    assert video_identity(video) not in (first, touched)

    copy = tmp_path / "copy.mp4"
    shutil.copyfile(video, copy)
    assert video_identity(copy) != video_identity(video)
    assert video_identity(copy, content_hash=True) == video_identity(video, content_hash=True)
    copy.write_bytes(b"different")
    assert video_identity(copy, content_hash=True) != video_identity(video, content_hash=True)
    with pytest.raises(VideoNotFoundError):
        video_identity(tmp_path / "missing.mp4")


def test_memory_lru_eviction() -> None:
    cache = FeatureCache(max_items=2)
    cache.put("a", _features(0))
    cache.put("b", _features(1))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", _features(2))
    assert len(cache) == 2
    assert cache.get("b") is None
    assert torch.equal(cache.get("a")["patches"], _features(0)["patches"])
    assert "c" in cache and "b" not in cache
    assert cache.hits == 2 and cache.misses == 1


def test_disk_round_trip(tmp_path: Path) -> None:
    features = _features(3)
    features["half"] = torch.ones(3, dtype=torch.float16)
    writer = FeatureCache(max_items=1, disk_dir=tmp_path / "cache")
    writer.put("k1", features)
    writer.put("k2", _features(4))  # evicts k1 from memory; it stays on disk
    assert writer.get("k1") is not None
    reader = FeatureCache(max_items=4, disk_dir=tmp_path / "cache")
    loaded = reader.get("k1")
    assert loaded is not None and set(loaded) == {"patches", "timestamps", "half"}
    for name, value in features.items():
        assert loaded[name].dtype == value.dtype and torch.equal(loaded[name], value)
    assert len(reader) == 1  # promoted into memory
    assert not list((tmp_path / "cache").glob("*.tmp"))
    reader.clear(disk=True)
    assert reader.get("k1") is None and FeatureCache(disk_dir=tmp_path / "cache").get("k2") is None


def test_views_sharing_storage_can_be_saved(tmp_path: Path) -> None:
    base = torch.arange(20.0)
    cache = FeatureCache(disk_dir=tmp_path)
    cache.put("views", {"a": base[:10], "b": base[10:]})
    loaded = FeatureCache(disk_dir=tmp_path).get("views")
    assert torch.equal(loaded["a"], base[:10]) and torch.equal(loaded["b"], base[10:])


def test_damaged_disk_entry_is_a_miss(tmp_path: Path) -> None:
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    cache = FeatureCache(disk_dir=tmp_path)
    assert cache.get("bad") is None
    cache.put("bad", _features(5))
    assert torch.equal(FeatureCache(disk_dir=tmp_path).get("bad")["patches"], _features(5)["patches"])


def test_bad_values_and_keys(tmp_path: Path) -> None:
    cache = FeatureCache(disk_dir=tmp_path)
    with pytest.raises(InvalidArgumentError):
        cache.put("k", {})
    with pytest.raises(InvalidArgumentError):
        cache.put("k", {"x": [1, 2]})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError):
        cache.get("../escape")
    with pytest.raises(InvalidArgumentError):
        FeatureCache(max_items=-1)


def test_a_chat_of_ten_questions_encodes_the_video_once(video: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc = CLIPEncoder("tiny-clip-32")
    frames = torch.randint(0, 256, (4, 24, 32, 3), dtype=torch.uint8)
    cache = FeatureCache(max_items=4, disk_dir=tmp_path / "features")
    calls = 0

    def encode() -> dict[str, torch.Tensor]:
        nonlocal calls
        calls += 1
        return enc.encode_frames(frames, joint=True).to_dict()

    sampling = {"num_frames": 4, "exact": False}
    key = cache.key(video_identity(video), sampling, enc.identity)
    answers = []
    for question in range(10):
        feats = EncodedFrames.from_dict(cache.get_or_compute(key, encode))
        text = enc.encode_text([f"question {question}"])[0]
        answers.append(torch.einsum("thwd,d->thw", feats.joint, text))
    assert calls == 1
    assert all(a.shape == (4, 4, 4) for a in answers)

    # A new session (fresh memory) finds the features on disk; another sampling encodes again.
    fresh = FeatureCache(disk_dir=tmp_path / "features")
    assert torch.equal(fresh.get_or_compute(key, encode)["patches"], encode()["patches"])
    assert calls == 2
    fresh.get_or_compute(cache.key(video_identity(video), {"num_frames": 8}, enc.identity), encode)
    assert calls == 3
