"""PyAV (FFmpeg) decoding by frame index.

For each requested frame the decoder either keeps going from where it is or seeks to the keyframe
before the request, whichever decodes fewer frames: dense requests decode sequentially at the full
decode rate, sparse ones seek. Frames are converted to RGB and resized in one swscale pass.

A decoded frame is named by its own presentation time, looked up in the frame index, never by counting
what came out: decoders may emit frames out of presentation order (frames that come out before an
earlier request are kept), and a seek may land elsewhere than asked. A seek counts only when the
keyframe it asked for comes out first; otherwise decoding starts from an earlier keyframe, and at last
from the start of the file. Only where the stamps cannot name frames (``FrameIndex.output_order``) are
frames counted, from a keyframe identified by its stamp.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vidpool.errors import VideoDecodeError, require
from vidpool.video.info import FrameIndex, VideoInfo, open_container

__all__ = ["PyAVBackend"]

# Seeking restarts the decoder; below this many skipped frames decoding straight on is cheaper.
_SEEK_GAP = 12
# A frame comes out at most this many frames after a later one (H.264's decoded picture buffer holds 16):
# a frame not seen by then is missing from the stream.
_REORDER = 16
# Keyframes tried before the one a request needs when seeks land after it, before decoding from the start.
_BACK_OFF = (1, 4)


class PyAVBackend:
    """Decode frames of one video with PyAV; see :mod:`vidpool.video.backends`."""

    name = "pyav"

    def __init__(self, path: Path, index: FrameIndex, info: VideoInfo, thread_type: str = "AUTO"):
        self._setup(path, index, info, open_container(path))
        # Frame threading speeds up runs of frames but delays the first frame after each seek.
        self._thread_type = thread_type
        self._stream.thread_type = thread_type

    @classmethod
    def adopt(
        cls, opened: tuple, path: Path, index: FrameIndex, info: VideoInfo, thread_type: str
    ) -> PyAVBackend:
        """Decode with ``opened``, a ``(container, video_stream)`` of ``path`` already open, instead of
        opening the file again (a decoder opened already keeps its threading)."""
        backend = cls.__new__(cls)
        backend._setup(path, index, info, opened)
        backend._thread_type = thread_type
        if not backend._stream.codec_context.is_open:
            backend._stream.thread_type = thread_type
        return backend

    def _setup(self, path: Path, index: FrameIndex, info: VideoInfo, opened: tuple) -> None:
        self._av = require("av", "video", "Decoding video with PyAV")
        self.path, self.index, self.info = path, index, info
        self._container, self._stream = opened
        self._interp = self._av.video.reformatter.Interpolation.BILINEAR
        # Set once seeking has failed on this file: later requests decode on instead of seeking, so that a
        # request costs at most one pass over the file.
        self._linear = False

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None

    def _reopen(self) -> None:
        """Open the file afresh: its decoder starts at the first packet, where no seek can go wrong."""
        self._container.close()
        self._container, self._stream = open_container(self.path)
        self._stream.thread_type = self._thread_type

    def _to_array(self, frame, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        k = self.info.rotation // 90
        coded_h, coded_w = (w, h) if k % 2 else (h, w)
        arr = frame.to_ndarray(format="rgb24", width=coded_w, height=coded_h, interpolation=self._interp)
        return np.ascontiguousarray(np.rot90(arr, k)) if k else arr

    def _frame_index(self, frame) -> int:
        """The index entry nearest the frame's presentation time (-1 for a frame without one)."""
        stamp = frame.pts if frame.pts is not None else frame.dts
        if stamp is None:
            return -1
        pts = self.index.pts
        i = int(np.searchsorted(pts, stamp))
        if i >= pts.shape[0] or (i > 0 and stamp - pts[i - 1] < pts[i] - stamp):
            i -= 1
        return i

    def _key_before(self, target: int, back: int = 0) -> int:
        """The keyframe ``back`` keyframes before the last one at or before frame ``target``."""
        keyframes = self.index.keyframes
        k = max(0, int(np.searchsorted(keyframes, target, side="right")) - 1 - back)
        return int(keyframes[k])

    def _frames_from(self, key: int) -> Iterator[tuple[int, object]]:
        """``(index, frame)`` decoded after a seek to keyframe ``key`` (``key < 0``: from the start)."""
        container, stream = self._container, self._stream
        if key >= 0:
            container.seek(int(self.index.pts[key]), stream=stream, backward=True, any_frame=False)
        if not self.index.output_order:
            for frame in container.decode(stream):
                i = self._frame_index(frame)
                if i >= 0:
                    yield i, frame
            return
        # Stamps say nothing of display order: frames count on from the keyframe, which comes out first.
        pos = max(key, 0)
        want = int(self.index.pts[pos])
        for n, frame in enumerate(container.decode(stream)):
            if n == 0 and key >= 0 and frame.pts != want:
                yield len(self.index.pts), frame  # not the keyframe: the caller seeks further back
                return
            yield pos + n, frame

    def _start(self, target: int) -> tuple[Iterator[tuple[int, object]], tuple[int, object] | None]:
        """A decode positioned at or before frame ``target``, and its first ``(index, frame)`` (``None``
        at the end of the stream).

        A seek to the keyframe before ``target`` counts when that keyframe comes out first. Otherwise the
        seek landed late, or the first frames after it carry their neighbours' stamps (FFmpeg's MPEG-4
        decoder after a seek in an MPEG program or transport stream): decoding then starts at an earlier
        keyframe, whose interval settles the stamps before ``target``'s, or at the file's start.
        """
        own = self._key_before(target)
        keys = [own]
        for back in _BACK_OFF:
            key = self._key_before(target, back)
            if key not in keys:
                keys.append(key)
        for key in keys:
            frames = self._frames_from(key)
            first = next(frames, None)
            if first is not None and (first[0] == key if key == own else first[0] <= key):
                return frames, first
            if key == 0:
                break
        self._reopen()
        self._linear = True
        frames = self._frames_from(-1)
        return frames, next(frames, None)

    def _keyframe(self, target: int, size: tuple[int, int]) -> np.ndarray | None:
        """Decode keyframe ``target`` alone: its packet, then a drain, so that the decoder does not go
        on to the frames after it to fill its reordering delay. ``None`` where it cannot be decoded so."""
        want = int(self.index.pts[target])
        for back in (0, *_BACK_OFF):
            seek_to = self._key_before(target, back) if back else target
            found, passed = self._keyframe_after(int(self.index.pts[seek_to]), want, size)
            if found is not None or not passed:
                return found
            if seek_to == 0:
                break
        return None

    def _keyframe_after(
        self, seek_pts: int, want: int, size: tuple[int, int]
    ) -> tuple[np.ndarray | None, bool]:
        """Seek to ``seek_pts`` and decode the packet stamped ``want`` alone. Returns the frame (or
        ``None``) and whether the seek landed after that packet."""
        container, stream = self._container, self._stream
        container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
        codec = stream.codec_context
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp != want:
                # Packets come in decode order, and a frame is decoded no later than it is shown:
                # one decoded after the keyframe was shown means the keyframe lies behind.
                late = packet.dts is not None and packet.dts > want
                if late or (stamp is not None and stamp > want and packet.is_keyframe):
                    return None, True
                continue
            frames = codec.decode(packet) + codec.decode(None)
            if len(frames) == 1:
                # the keyframe's packet alone made it, whatever stamp the decoder gave it
                return self._to_array(frames[0], size), False
            return None, False
        return None, True

    def decode(
        self, indices: np.ndarray, size: tuple[int, int], keyframes_only: bool = False
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(requested, decoded, frame [H, W, 3] uint8)`` for sorted unique ``indices``."""
        if self._container is None:
            raise VideoDecodeError(f"the PyAV decoder of {self.path} is closed")
        av = self._av
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
        yield from self._decode_exact(indices, size)

    def _decode_exact(
        self, indices: np.ndarray, size: tuple[int, int]
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        av = self._av
        wanted = {int(t) for t in indices}
        frames: Iterator[tuple[int, object]] | None = None
        pos = -1  # the latest frame the current decode has shown
        held: dict[int, object] = {}  # requested frames that came out before an earlier request
        for target in (int(t) for t in indices):
            for i in [i for i in held if i < target]:
                del held[i]
            if target in held:
                yield target, target, self._to_array(held.pop(target), size)
                continue
            key = self._key_before(target)
            pending: list[tuple[int, object]] = []
            try:
                far = key - pos > _SEEK_GAP and not self._linear
                if frames is None or far or target + _REORDER < pos:
                    frames, first = self._start(target)
                    pos = -1
                    if first is not None:
                        pending.append(first)
                found, stand_in = None, None
                for i, frame in itertools.chain(pending, frames):  # leaves ``frames`` open
                    pos = max(pos, i)
                    if i == target:
                        found = frame
                        break
                    if i > target:
                        if i in wanted:
                            held[i] = frame
                        if stand_in is None or i < stand_in[0]:
                            stand_in = (i, frame)
                        if i > target + _REORDER:
                            break  # the frame is missing from the stream
            except (av.error.FFmpegError, EOFError):
                frames = None  # a damaged stretch: seek afresh for the next request
                continue
            if found is not None:
                yield target, target, self._to_array(found, size)
            elif stand_in is not None:
                yield target, stand_in[0], self._to_array(stand_in[1], size)
            else:
                return  # the stream ended before this frame
