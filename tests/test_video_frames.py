"""One sampling rule for files and frames in memory: the same video, as a file and as frames with its
frame rate, gives the same frames at the same times; frames in memory without times say so."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from vidpool.errors import InvalidArgumentError
from vidpool.video import Frames, VideoReader, make_test_video, sample_frames, sample_positions, to_frames

pytest.importorskip("av")

FPS, COUNT = 12, 37


def _pixels_model() -> SimpleNamespace:
    """An encoder whose features are the frames' pixels, every 8th in each direction."""

    def encode(frames):
        return torch.as_tensor(np.asarray(frames)).float()[:, ::8, ::8]

    return SimpleNamespace(encode_patches=encode, encode_frames=encode)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """``(path, every frame decoded from the start [N, H, W, 3])`` of a constant-rate test video."""
    import av

    path = make_test_video(
        tmp_path_factory.mktemp("frames") / "v.mp4", num_frames=COUNT, fps=FPS, size=(64, 48)
    )
    with av.open(str(path)) as container:
        decoded = sorted((f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0))
    return path, np.stack([a for _, a in decoded])


@pytest.mark.parametrize(
    "spec",
    [{"num_frames": 3}, {"num_frames": 8}, {"num_frames": 50}, {"fps": 2.5}, {"num_frames": 4, "start": 1.0}],
)
def test_frames_in_memory_and_the_file_give_the_same_frames(video, spec):
    path, decoded = video
    with VideoReader(path, backend="pyav") as reader:
        from_file = reader.sample(**spec)
    in_memory = sample_frames(Frames.at_rate(decoded, FPS), **spec)
    assert in_memory.indices == from_file.indices
    np.testing.assert_allclose(in_memory.timestamps.numpy(), from_file.timestamps.numpy(), atol=1e-9)
    assert np.array_equal(np.asarray(in_memory.frames), from_file.frames.numpy())


def test_segment_centres_not_both_ends(video):
    """Three frames of a 37-frame video are those shown at the centres of three equal segments."""
    _path, decoded = video
    picked = sample_frames(Frames.at_rate(decoded, FPS), num_frames=3)
    duration = COUNT / FPS
    centres = (np.arange(3) + 0.5) * duration / 3
    assert picked.indices == np.floor(centres * FPS + 1e-9).astype(int).tolist() == [6, 18, 30]
    assert picked.indices[0] != 0 and picked.indices[-1] != COUNT - 1


def test_the_pipeline_samples_frames_in_memory_as_it_samples_the_file(video):
    from vidpool.pipeline.encoding import encode_video

    path, decoded = video
    model = _pixels_model()
    plan = SimpleNamespace(
        encoder_batch=3, num_frames=5, features_on="cpu", sample_kwargs=lambda: {"num_frames": 5}
    )
    from_file = encode_video(model, path, plan)
    in_memory = encode_video(model, Frames.at_rate(decoded, FPS), plan)
    as_object = encode_video(model, SimpleNamespace(frames=decoded, timestamps=np.arange(COUNT) / FPS), plan)
    for got in (in_memory, as_object):
        assert got.indices.tolist() == from_file.indices.tolist()
        np.testing.assert_allclose(got.timestamps, from_file.timestamps, atol=1e-9)
        assert torch.equal(got.features, from_file.features)


def test_frames_without_times_have_no_timestamps(video):
    from vidpool.pipeline.encoding import encode_video

    _path, decoded = video
    picked = sample_frames(to_frames(decoded), num_frames=3)
    assert picked.timestamps is None
    assert picked.indices == [6, 18, 30]  # evenly spaced frames: the same positions as with times
    model = _pixels_model()
    plan = SimpleNamespace(
        encoder_batch=2, num_frames=3, features_on="cpu", sample_kwargs=lambda: {"num_frames": 3}
    )
    encoded = encode_video(model, decoded, plan)
    assert encoded.timestamps is None and encoded.indices.tolist() == [6, 18, 30]
    with pytest.raises(InvalidArgumentError, match="at_rate"):
        sample_frames(to_frames(decoded), fps=2.0)


def test_frames_check_their_timestamps(video):
    _path, decoded = video
    with pytest.raises(InvalidArgumentError, match="timestamps for"):
        Frames(decoded, np.arange(3.0))
    with pytest.raises(InvalidArgumentError, match="non-decreasing"):
        sample_positions(3, np.array([0.0, 2.0, 1.0]), num_frames=2)
    with pytest.raises(InvalidArgumentError, match="fps must be > 0"):
        Frames.at_rate(decoded, 0)
    with pytest.raises(InvalidArgumentError, match=r"\[T, H, W, 3\]"):
        to_frames(decoded[0])


def test_variable_rate_frames_in_memory_are_sampled_by_time():
    """Frames in memory with uneven times: the frame on screen at each segment centre, as for a file."""
    stamps = np.array([0.0, 0.1, 0.2, 1.5, 1.6, 3.0])  # a still stretch between 0.2 and 1.5 s
    # duration 3.0 + the median step 0.1 = 3.1 s: centres at 0.52, 1.55, 2.58 s
    assert sample_positions(6, stamps, num_frames=3).tolist() == [2, 3, 4]
