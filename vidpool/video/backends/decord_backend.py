"""decord decoding by frame index, guarded against its known failure modes.

* ``get_batch`` deadlocks when asked for frames a container over-reports: requests are clamped to the
  frame index built from the demuxed packets (and to decord's own count), and the reader bounds every
  batch with a timeout.
* Memory grows across seeks in a long-lived ``VideoReader``: the reader object is released and reopened
  every ``_REOPEN_FRAMES`` frames and on close.
* decord returns other frames than those it names in MPEG-TS (its seeks land frames away), in files
  whose stamps are decode times (AVI with B-frames) and in video with B-frames other than H.264, and
  fails on VP9 ("Error sending packet"). It counts frames as the decoder emits them after a keyframe,
  so it also misnames frames where the decoder emits them out of the order their stamps give (checked
  on the first frames of files whose frames are reordered). Those files are refused, so that
  ``"auto"`` decodes them with PyAV.
* decord applies the display rotation itself and resizes on decode to the upright ``(H, W)`` asked for,
  except that on rotated files it mis-sizes frames whose aspect ratio changes; those are decoded at full
  size and resized afterwards (``VideoReader(backend="auto")`` sends rotated files to PyAV instead).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from vidpool.errors import VideoDecodeError, require
from vidpool.video.info import FrameIndex, VideoInfo, open_container

__all__ = ["DecordBackend", "emits_in_stamp_order", "untrusted_reason"]

_BATCH = 8
# Codecs whose B-frames decord was seen to put in the right place (tests/test_video_containers.py), and
# codecs it fails on.
_REORDER_SAFE = frozenset({"h264"})
_UNSUPPORTED = frozenset({"vp9"})
_REOPEN_FRAMES = 1024
# Frames decoded to see whether the decoder emits them in the order of their stamps (H.264's decoded
# picture buffer holds 16: a decoder that puts frames in that order has done so by then).
_ORDER_CHECK = 16


class DecordBackend:
    """Decode frames of one video with decord; see :mod:`vidpool.video.backends`."""

    name = "decord"

    def __init__(self, path: Path, index: FrameIndex, info: VideoInfo, size: tuple[int, int] | None = None):
        self._decord = require("decord", "video", "Decoding video with decord")
        _check_trusted(path, index, info)
        self.path, self.index, self.info = path, index, info
        self._reader = None
        self._size: tuple[int, int] | None = None
        self._decoded = 0
        reader = self._open(size or (info.height, info.width))  # opening indexes the file: do it once
        self.frame_count = len(reader)

    def _open(self, size: tuple[int, int]):
        if self._reader is not None and self._size == size and self._decoded < _REOPEN_FRAMES:
            return self._reader
        self.close()
        h, w = (-1, -1) if self.info.rotation else size
        try:
            self._reader = self._decord.VideoReader(
                str(self.path), ctx=self._decord.cpu(0), width=w, height=h, num_threads=0
            )
        except Exception as exc:  # decord raises its own DECORDError or RuntimeError
            raise VideoDecodeError(f"decord cannot open {str(self.path)!r}: {exc}") from exc
        self._size, self._decoded = size, 0
        return self._reader

    def close(self) -> None:
        self._reader = None
        self._size = None

    def decode(
        self, indices: np.ndarray, size: tuple[int, int], keyframes_only: bool = False
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(requested, decoded, frame [H, W, 3] uint8)`` for sorted unique ``indices``."""
        limit = min(self.frame_count, self.index.num_frames)
        wanted = [int(i) for i in indices if 0 <= int(i) < limit]
        for start in range(0, len(wanted), _BATCH):
            batch = wanted[start : start + _BATCH]
            reader = self._open(size)
            try:
                arrays = reader.get_batch(batch).asnumpy()
            except Exception as exc:
                raise VideoDecodeError(
                    f"decord failed on frames {batch[0]}..{batch[-1]} of {str(self.path)!r}: {exc}"
                ) from exc
            self._decoded += len(batch)
            if arrays.shape[1:3] != tuple(size):
                arrays = _resize(arrays, size)
            for i, arr in zip(batch, arrays):
                yield i, i, arr


def untrusted_reason(index: FrameIndex, info: VideoInfo, path: Path | None = None) -> str | None:
    """What makes decord return other frames than those it names in this file, or fail on it; ``None``
    where it decodes the file right. With ``path``, a file whose frames are reordered has its first
    frames decoded (PyAV) to check that the decoder emits them in the order of their stamps."""
    if "mpegts" in info.container.split(","):
        return "MPEG-TS files"
    if index.output_order:
        return "files whose timestamps do not give the display order (such as AVI or MPEG-PS with B-frames)"
    if info.b_frames and info.codec not in _REORDER_SAFE:
        return f"{info.codec} video with B-frames"
    if info.codec in _UNSUPPORTED:
        return f"{info.codec} video"
    if index.reordered and path is not None and not emits_in_stamp_order(path):
        return "files whose decoder emits frames out of the order of their timestamps"
    return None


def emits_in_stamp_order(path: Path) -> bool:
    """Whether the first ``_ORDER_CHECK`` frames PyAV decodes from the start of ``path`` come out in the
    order of their stamps (``True`` where decoding fails: that is no evidence against decord)."""
    stat = Path(path).stat()
    return _emits_in_stamp_order(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _emits_in_stamp_order(path: str, size: int, mtime_ns: int) -> bool:
    av = require("av", "video", "Decoding video with PyAV")
    container, stream = open_container(Path(path))
    stream.thread_type = "NONE"
    last = None
    try:
        for count, frame in enumerate(container.decode(stream), start=1):
            if frame.pts is not None:
                if last is not None and frame.pts < last:
                    return False
                last = frame.pts
            if count >= _ORDER_CHECK:
                break
    except (av.error.FFmpegError, EOFError, OSError):
        pass
    finally:
        container.close()
    return True


def _check_trusted(path: Path, index: FrameIndex, info: VideoInfo) -> None:
    why = untrusted_reason(index, info, path)
    if why is not None:
        raise VideoDecodeError(
            f"decord cannot be trusted with {why} such as {str(path)!r}; "
            "use backend='pyav' (or 'auto', which does)"
        )


def _resize(arrays: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 ``[B, H, W, 3]`` to ``[B, *size, 3]`` (bilinear, antialiased)."""
    x = torch.from_numpy(arrays).permute(0, 3, 1, 2).float()
    x = torch.nn.functional.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
