"""Sampling arithmetic: times, indices, keyframe snapping and output sizes (no decoding)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidpool.errors import InvalidArgumentError
from vidpool.video.sampling import decode_size, sample_times, snap_to_keyframes, times_to_indices


def test_uniform_times_are_segment_centres():
    times = sample_times(8.0, num_frames=4)
    np.testing.assert_allclose(times, [1.0, 3.0, 5.0, 7.0])


def test_uniform_times_respect_window():
    times = sample_times(10.0, num_frames=2, start=2.0, end=6.0)
    np.testing.assert_allclose(times, [3.0, 5.0])


def test_fps_times_are_spaced_and_centred():
    times = sample_times(2.5, fps=1.0)
    np.testing.assert_allclose(times, [0.75, 1.75])
    np.testing.assert_allclose(sample_times(0.2, fps=1.0), [0.1])


def test_fps_beyond_max_frames_becomes_uniform():
    times = sample_times(100.0, fps=2.0, max_frames=4)
    np.testing.assert_allclose(times, [12.5, 37.5, 62.5, 87.5])


def test_default_is_eight_uniform_frames():
    assert sample_times(3.0).shape == (8,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_frames": 4, "fps": 1.0},
        {"num_frames": 0},
        {"fps": -1.0},
        {"num_frames": 2, "start": 5.0},
        {"num_frames": 2, "start": 3.0, "end": 2.0},
        {"num_frames": 2, "max_frames": 0},
    ],
)
def test_bad_sampling_arguments_raise(kwargs):
    with pytest.raises(InvalidArgumentError):
        sample_times(4.0, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    duration=st.floats(0.05, 5000.0),
    n=st.integers(1, 300),
    start_frac=st.floats(0.0, 0.9),
)
def test_times_are_sorted_and_inside_window(duration, n, start_frac):
    start = duration * start_frac
    times = sample_times(duration, num_frames=n, start=start)
    assert times.shape == (n,)
    assert np.all(np.diff(times) >= 0)
    assert times[0] >= start and times[-1] < duration


def test_times_to_indices_takes_frame_on_screen():
    frame_times = np.array([0.0, 0.1, 0.5, 0.6])
    idx = times_to_indices(np.array([0.0, 0.09, 0.1, 0.49, 0.55, 9.0]), frame_times)
    assert idx.tolist() == [0, 0, 1, 1, 2, 3]


def test_snap_to_nearest_keyframe():
    frame_times = np.arange(100, dtype=np.float64) / 10.0
    keyframes = np.array([0, 30, 60, 90])
    snapped = snap_to_keyframes(np.array([0.1, 1.4, 1.6, 4.4, 9.9]), frame_times, keyframes)
    assert snapped.tolist() == [0, 0, 30, 30, 90]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((1280, 720, None, None), (720, 1280)),
        ((1280, 720, 360, None), (360, 640)),
        ((720, 1280, 360, None), (640, 360)),
        ((1280, 720, (224, 224), None), (224, 224)),
        ((8000, 4000, None, 4096), (2048, 4096)),
        ((1280, 720, 720, 640), (360, 640)),
    ],
)
def test_decode_size(args, expected):
    assert decode_size(*args) == expected


@pytest.mark.parametrize("resize", [0, (0, 5), "big", True])
def test_decode_size_rejects_bad_resize(resize):
    with pytest.raises(InvalidArgumentError):
        decode_size(100, 100, resize)
