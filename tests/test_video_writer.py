"""``write_video``, the one video writer: the test videos and the generated benchmark both write with it."""

from __future__ import annotations

import numpy as np
import pytest

from vidpool.errors import InvalidArgumentError
from vidpool.video import VideoReader, write_video

av = pytest.importorskip("av")


def _frames(count: int, height: int = 32, width: int = 48) -> np.ndarray:
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 256, size=(count, 1, 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.broadcast_to(flat, (count, height, width, 3)))


def test_written_frames_come_back(tmp_path):
    frames = _frames(6)
    path = write_video(tmp_path / "a.mp4", iter(frames), fps=6, crf=0, keyframe_interval=3)
    with VideoReader(path, backend="pyav") as reader:
        assert (reader.info.num_frames, reader.info.width, reader.info.height) == (6, 48, 32)
        assert reader.index.keyframes.tolist() == [0, 3]
        got = reader.sample(fps=1000.0).frames.numpy()
    assert np.abs(got.astype(int) - frames.astype(int)).max() <= 3  # flat colours through yuv420p


def test_the_benchmark_writes_with_it(tmp_path):
    from vidpool.bench.synth.scenes import write_frames_mp4

    frames = _frames(4, 32, 32)
    a = write_frames_mp4(frames, tmp_path / "a.mp4", fps=8, crf=12)
    b = write_video(tmp_path / "b.mp4", frames, fps=8, crf=12, threads=1)
    assert a.read_bytes() == b.read_bytes()


def test_bad_frames_are_refused_with_what_to_do(tmp_path):
    with pytest.raises(InvalidArgumentError, match="even frame size"):
        write_video(tmp_path / "odd.mp4", _frames(2, 31, 48))
    with pytest.raises(InvalidArgumentError, match="pass size="):
        write_video(tmp_path / "none.mp4", [])
    mixed = [_frames(1)[0], _frames(1, 16, 16)[0]]
    with pytest.raises(InvalidArgumentError, match="every frame must be uint8"):
        write_video(tmp_path / "mixed.mp4", mixed)
    with pytest.raises(InvalidArgumentError, match="codec must be one of"):
        write_video(tmp_path / "x.mp4", _frames(1), codec="vp9")
