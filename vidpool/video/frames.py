"""``Frames``: frames with the times they are shown, decoded from a file or handed over in memory, and
the sampling of frames in memory by the rule files are sampled with.

Frames in memory carry their timestamps only where the caller gives them (``Frames(frames, timestamps)``
or ``Frames.at_rate(frames, fps)``); without them ``timestamps`` is ``None``, never frame numbers
passed off as seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidpool.errors import InvalidArgumentError
from vidpool.video.sampling import sample_positions

__all__ = ["Frames", "sample_frames", "to_frames"]


@dataclass
class Frames:
    """Frames of one video.

    ``frames``: uint8 ``[T, H, W, 3]`` (RGB, upright; a torch tensor from a file, a tensor or numpy
    array in memory). ``timestamps``: float64 ``[T]`` seconds (from a file's first frame), or ``None``
    where nobody said when the frames are shown. ``indices``: which frames of the video they are (frame
    indices in a file, positions in memory; by default ``0 .. T-1``).
    """

    frames: Any
    timestamps: torch.Tensor | None = None
    indices: list[int] | None = None

    def __post_init__(self) -> None:
        shape = tuple(getattr(self.frames, "shape", ()))
        if len(shape) != 4 or shape[-1] != 3:
            raise InvalidArgumentError(f"frames must be uint8 [T, H, W, 3] (RGB), got shape {shape}")
        if self.timestamps is not None:
            stamps = torch.as_tensor(np.asarray(self.timestamps, dtype=np.float64)).reshape(-1)
            if stamps.shape[0] != shape[0]:
                raise InvalidArgumentError(
                    f"got {stamps.shape[0]} timestamps for {shape[0]} frames; pass one time in seconds per frame"
                )
            self.timestamps = stamps
        self.indices = list(range(shape[0])) if self.indices is None else [int(i) for i in self.indices]

    @classmethod
    def at_rate(cls, frames: Any, fps: float) -> Frames:
        """``frames`` ``[T, H, W, 3]`` shown ``fps`` per second from time 0: frame ``i`` at ``i / fps`` s."""
        if not fps > 0:
            raise InvalidArgumentError(f"fps must be > 0 frames per second, got {fps}")
        count = int(getattr(frames, "shape", (0,))[0])
        return cls(frames, torch.arange(count, dtype=torch.float64) / float(fps))

    def __len__(self) -> int:
        return len(self.indices)

    def select(self, positions: np.ndarray | list[int]) -> Frames:
        """The frames at ``positions`` (int ``[K]``), with their timestamps and indices."""
        where = np.asarray(positions, dtype=np.int64)
        stamps = None if self.timestamps is None else self.timestamps[torch.from_numpy(where)]
        pixels = self.frames[torch.from_numpy(where)] if torch.is_tensor(self.frames) else self.frames[where]
        return Frames(pixels, stamps, [self.indices[i] for i in where.tolist()])


def to_frames(video: Any) -> Frames:
    """``video`` as :class:`Frames`: a ``Frames``, an array or tensor ``[T, H, W, 3]`` (no timestamps),
    or any object with ``frames`` and optionally ``timestamps`` (seconds) attributes."""
    if isinstance(video, Frames):
        return video
    pixels = getattr(video, "frames", video)
    if not hasattr(pixels, "shape"):
        raise InvalidArgumentError(
            f"video must be a path or uint8 frames [T, H, W, 3], got {type(video).__name__}"
        )
    return Frames(pixels, getattr(video, "timestamps", None))


def sample_frames(frames: Frames, **spec: Any) -> Frames:
    """The frames that sampling a file with these frames would take (``num_frames``, ``fps``,
    ``max_frames``, ``start``, ``end``: see :meth:`vidpool.video.VideoReader.sample`); ``fps``, ``start``
    and ``end`` need timestamps."""
    stamps = None if frames.timestamps is None else frames.timestamps.numpy()
    return frames.select(sample_positions(len(frames), stamps, **spec))
