"""PyAV (FFmpeg) decoding by frame index.

For each requested frame the decoder either keeps going from where it is or seeks to the keyframe
before the request, whichever decodes fewer frames: dense requests decode sequentially at the full
decode rate, sparse ones seek. Frames are converted to RGB and resized in one swscale pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidpool.errors import VideoDecodeError, require
from vidpool.video.info import FrameIndex, VideoInfo, open_container

__all__ = ["PyAVBackend"]

# Seeking restarts the decoder; below this many skipped frames decoding straight on is cheaper.
_SEEK_GAP = 12


class PyAVBackend:
    """Decode frames of one video with PyAV; see :mod:`vidpool.video.backends`."""

    name = "pyav"

    def __init__(self, path: Path, index: FrameIndex, info: VideoInfo, thread_type: str = "AUTO"):
        self._setup(path, index, info, open_container(path))
        # Frame threading speeds up runs of frames but delays the first frame after each seek.
        self._stream.thread_type = thread_type

    @classmethod
    def adopt(
        cls, opened: tuple, path: Path, index: FrameIndex, info: VideoInfo, thread_type: str
    ) -> PyAVBackend:
        """Decode with ``opened``, a ``(container, video_stream)`` of ``path`` already open, instead of
        opening the file again (a decoder opened already keeps its threading)."""
        backend = cls.__new__(cls)
        backend._setup(path, index, info, opened)
        if not backend._stream.codec_context.is_open:
            backend._stream.thread_type = thread_type
        return backend

    def _setup(self, path: Path, index: FrameIndex, info: VideoInfo, opened: tuple) -> None:
        self._av = require("av", "video", "Decoding video with PyAV")
        self.path, self.index, self.info = path, index, info
        self._container, self._stream = opened
        self._interp = self._av.video.reformatter.Interpolation.BILINEAR

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _to_array(self, frame, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        k = self.info.rotation // 90
        coded_h, coded_w = (w, h) if k % 2 else (h, w)
        arr = frame.to_ndarray(format="rgb24", width=coded_w, height=coded_h, interpolation=self._interp)
        return np.ascontiguousarray(np.rot90(arr, k)) if k else arr

    def _frame_index(self, frame) -> int:
        stamp = frame.pts if frame.pts is not None else frame.dts
        if stamp is None:
            return -1
        pts = self.index.pts
        i = int(np.searchsorted(pts, stamp))
        if i >= pts.shape[0] or (i > 0 and stamp - pts[i - 1] < pts[i] - stamp):
            i -= 1
        return i

    def _keyframe(self, target: int, size: tuple[int, int]) -> np.ndarray | None:
        """Decode keyframe ``target`` alone: its packet, then a drain, so that the decoder does not go
        on to the frames after it to fill its reordering delay."""
        container, stream = self._container, self._stream
        want = int(self.index.pts[target])
        container.seek(want, stream=stream, backward=True, any_frame=False)
        codec = stream.codec_context
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            frames = codec.decode(packet)
            if stamp == want:
                frames += codec.decode(None)
            for frame in frames:
                if frame.pts == want:
                    return self._to_array(frame, size)
            if stamp is not None and stamp >= want:
                return None
        return None

    def decode(
        self, indices: np.ndarray, size: tuple[int, int], keyframes_only: bool = False
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(requested, decoded, frame [H, W, 3] uint8)`` for sorted unique ``indices``."""
        if self._container is None:
            raise VideoDecodeError(f"the PyAV decoder of {self.path} is closed")
        av, stream, container = self._av, self._stream, self._container
        if keyframes_only:
            done = 0
            for target in (int(t) for t in indices):
                try:
                    arr = self._keyframe(target, size)
                except (av.error.FFmpegError, EOFError):
                    arr = None
                if arr is None:
                    break  # not a clean keyframe after all: the general path below takes over
                yield target, target, arr
                done += 1
            indices = indices[done:]
        keyframes = self.index.keyframes
        frames = None
        pos = -1
        last: tuple[int, np.ndarray] | None = None
        for target in (int(t) for t in indices):
            if last is not None and last[0] >= target:
                yield target, last[0], last[1]
                continue
            key = int(keyframes[max(0, np.searchsorted(keyframes, target, side="right") - 1)])
            if frames is None or key - pos > _SEEK_GAP or target <= pos:
                container.seek(int(self.index.pts[key]), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
                pos = -1
            found = failed = False
            try:
                for frame in frames:
                    i = self._frame_index(frame)
                    if i < 0:
                        continue
                    pos = i
                    if i < target:
                        continue
                    arr = self._to_array(frame, size)
                    last = (i, arr)
                    yield target, i, arr
                    found = True
                    break
            except (av.error.FFmpegError, EOFError):
                failed = True  # a damaged stretch: seek afresh for the next request
            if not found:
                frames = None
                if not failed:
                    return  # the stream ended before this frame
