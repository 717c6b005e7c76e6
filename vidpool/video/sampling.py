"""Which frames to take: sampling times, their frame indices, keyframe snapping and output sizes.

One rule for files and frames in memory alike: the window is cut into equal segments and the frame on
screen at each segment's centre is taken (:func:`sample_indices`; :func:`sample_positions` for frames
in memory). Pure functions over numpy arrays; no decoding happens here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vidpool.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_NUM_FRAMES",
    "decode_size",
    "memory_frame_times",
    "sample_indices",
    "sample_positions",
    "sample_times",
    "snap_to_keyframes",
    "times_to_indices",
]

DEFAULT_NUM_FRAMES = 8


def _window(duration: float, start: float | None, end: float | None) -> tuple[float, float]:
    lo = 0.0 if start is None else float(start)
    hi = duration if end is None else min(float(end), duration)
    if lo < 0 or not math.isfinite(lo) or not math.isfinite(hi):
        raise InvalidArgumentError(f"start and end must be finite seconds >= 0, got start={start}, end={end}")
    if lo >= hi:
        raise InvalidArgumentError(
            f"empty time window [{lo:g}, {hi:g}) s for a {duration:g} s video; "
            "pass start < end and start below the video duration"
        )
    return lo, hi


def sample_times(
    duration: float,
    num_frames: int | None = None,
    fps: float | None = None,
    max_frames: int | None = None,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Sampling times in seconds, float64 ``[T]``, non-decreasing, within ``[start, end)``.

    ``num_frames=N``: the window is cut into N equal segments and each segment's centre is taken (the
    uniform sampling of video-LLM papers). ``fps=F``: times ``1/F`` apart, centred in the window; if that
    gives more than ``max_frames``, ``max_frames`` uniform segment centres instead. With neither,
    ``DEFAULT_NUM_FRAMES`` uniform frames.
    """
    if num_frames is not None and fps is not None:
        raise InvalidArgumentError("pass either num_frames= or fps=, not both")
    if max_frames is not None and max_frames < 1:
        raise InvalidArgumentError(f"max_frames must be >= 1, got {max_frames}")
    lo, hi = _window(duration, start, end)
    span = hi - lo
    if fps is not None:
        if not fps > 0:
            raise InvalidArgumentError(f"fps must be > 0, got {fps}")
        count = max(1, math.floor(span * fps + 1e-9))
        if max_frames is None or count <= max_frames:
            offset = (span - (count - 1) / fps) / 2.0
            return lo + offset + np.arange(count, dtype=np.float64) / fps
        num_frames = max_frames
    if num_frames is None:
        num_frames = DEFAULT_NUM_FRAMES if max_frames is None else min(DEFAULT_NUM_FRAMES, max_frames)
    if int(num_frames) != num_frames or num_frames < 1:
        raise InvalidArgumentError(f"num_frames must be a positive integer, got {num_frames}")
    if max_frames is not None:
        num_frames = min(num_frames, max_frames)
    return lo + (np.arange(int(num_frames), dtype=np.float64) + 0.5) * (span / int(num_frames))


def times_to_indices(times: np.ndarray, frame_times: np.ndarray) -> np.ndarray:
    """The frame on screen at each time: int64 ``[T]`` indices into ``frame_times`` (float64 ``[N]``, sorted)."""
    idx = np.searchsorted(frame_times, times + 1e-9, side="right") - 1
    return np.clip(idx, 0, frame_times.shape[0] - 1).astype(np.int64)


def sample_indices(frame_times: np.ndarray, duration: float, **spec: Any) -> np.ndarray:
    """The frames to take: int64 ``[T]`` indices into ``frame_times`` (float64 ``[N]`` seconds from the
    first frame, sorted) of a video ``duration`` seconds long, the frame on screen at each time
    :func:`sample_times` gives for ``spec`` (its ``num_frames``, ``fps``, ``max_frames``, ``start``,
    ``end``). With ``fps`` each frame is taken once (a rate above the video's own would only repeat
    frames); with ``num_frames`` there are always that many, repeating frames of short videos."""
    indices = times_to_indices(sample_times(duration, **spec), frame_times)
    return np.unique(indices) if spec.get("fps") is not None else indices


def memory_frame_times(count: int, timestamps: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Frame times float64 ``[count]`` from the first frame, and the duration, of ``count`` frames in
    memory, as a file's frame index has them: the duration runs to the end of the last frame, one median
    frame step after it starts. ``timestamps`` float64 ``[count]`` seconds, non-decreasing; ``None``:
    the frames stand one unit apart, so that times and duration count frames, not seconds."""
    if count < 1:
        raise InvalidArgumentError("no frames to sample from: pass at least one frame")
    if timestamps is None:
        return np.arange(count, dtype=np.float64), float(count)
    stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
    if stamps.shape[0] != count:
        raise InvalidArgumentError(f"got {stamps.shape[0]} timestamps for {count} frames; pass one per frame")
    if not np.all(np.isfinite(stamps)) or np.any(np.diff(stamps) < 0):
        raise InvalidArgumentError(
            "timestamps must be finite seconds in the order of the frames (non-decreasing)"
        )
    times = stamps - stamps[0]
    steps = np.diff(times)
    steps = steps[steps > 0]
    step = float(np.median(steps)) if steps.size else 1.0
    return times, float(times[-1] + step)


def sample_positions(count: int, timestamps: np.ndarray | None = None, **spec: Any) -> np.ndarray:
    """Which of ``count`` frames in memory to take: int64 ``[T]`` positions, by the rule files are
    sampled with (:func:`sample_indices` over :func:`memory_frame_times`), so that frames in memory
    with the timestamps of a file's frames give the frames sampled from the file.

    ``timestamps`` float64 ``[count]`` seconds, or ``None``: the frames then stand evenly spaced, which
    places ``num_frames`` the same way; ``fps``, ``start`` and ``end`` are seconds, and need timestamps.
    """
    if timestamps is None and any(spec.get(k) is not None for k in ("fps", "start", "end")):
        raise InvalidArgumentError(
            "fps=, start= and end= are seconds, and these frames have no timestamps: pass "
            "vidpool.video.Frames(frames, timestamps) or Frames.at_rate(frames, fps)"
        )
    frame_times, duration = memory_frame_times(count, timestamps)
    return sample_indices(frame_times, duration, **spec)


def snap_to_keyframes(times: np.ndarray, frame_times: np.ndarray, keyframes: np.ndarray) -> np.ndarray:
    """The keyframe nearest in time to each time: int64 ``[T]`` frame indices, non-decreasing.

    ``frame_times`` float64 ``[N]``; ``keyframes`` int64 ``[K]`` sorted frame indices.
    """
    key_times = frame_times[keyframes]
    right = np.clip(np.searchsorted(key_times, times, side="left"), 0, keyframes.shape[0] - 1)
    left = np.clip(right - 1, 0, keyframes.shape[0] - 1)
    pick_left = np.abs(times - key_times[left]) <= np.abs(key_times[right] - times)
    return np.where(pick_left, keyframes[left], keyframes[right]).astype(np.int64)


def decode_size(
    width: int,
    height: int,
    resize: int | tuple[int, int] | None = None,
    max_side: int | None = None,
) -> tuple[int, int]:
    """Output ``(height, width)`` for upright frames of ``width`` x ``height``.

    ``resize``: an int sets the short side (aspect kept), a pair is an exact ``(H, W)``. ``max_side``
    then caps the longer side, scaling both sides down together.
    """
    h, w = float(height), float(width)
    if resize is not None:
        if isinstance(resize, bool):
            raise InvalidArgumentError(f"resize must be an int or a (H, W) pair, got {resize!r}")
        if isinstance(resize, int | np.integer):
            if resize < 1:
                raise InvalidArgumentError(f"resize must be >= 1, got {resize}")
            scale = resize / min(h, w)
            h, w = h * scale, w * scale
        else:
            try:
                rh, rw = (int(v) for v in resize)
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"resize must be an int or a (H, W) pair, got {resize!r}"
                ) from None
            if rh < 1 or rw < 1:
                raise InvalidArgumentError(f"resize sizes must be >= 1, got {resize!r}")
            h, w = float(rh), float(rw)
    if max_side is not None:
        if max_side < 1:
            raise InvalidArgumentError(f"max_side must be >= 1, got {max_side}")
        if max(h, w) > max_side:
            scale = max_side / max(h, w)
            h, w = h * scale, w * scale
    return max(1, round(h)), max(1, round(w))
