"""Keyframe-only decoding spread over a few PyAV decoders.

A keyframe decodes on its own, so ``exact=False`` sampling decodes several at once, each thread with its
own container (FFmpeg decoders release the GIL). Frames still come out in request order.
"""

from __future__ import annotations

import os
import queue
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vidpool.video.backends.pyav_backend import PyAVBackend
from vidpool.video.info import FrameIndex, VideoInfo

__all__ = ["KeyframeDecoder"]


class KeyframeDecoder:
    """Decode keyframes with ``workers`` PyAV decoders in parallel; see :mod:`vidpool.video.backends`."""

    name = "pyav"

    def __init__(self, path: Path, index: FrameIndex, info: VideoInfo, workers: int | None = None):
        self.path, self.index, self.info = path, index, info
        self.workers = max(1, min(4, workers or os.cpu_count() or 1))
        self._first = PyAVBackend(path, index, info, thread_type="NONE")
        self._all = [self._first]
        self._idle: queue.Queue[PyAVBackend] = queue.Queue()
        self._idle.put(self._first)
        self._pool: ThreadPoolExecutor | None = None

    def _decoder(self) -> PyAVBackend:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            backend = PyAVBackend(self.path, self.index, self.info, thread_type="NONE")
            self._all.append(backend)
            return backend

    def _one(self, target: int, size: tuple[int, int]) -> np.ndarray | None:
        backend = self._decoder()
        try:
            return backend._keyframe(target, size)
        except Exception:
            return None
        finally:
            self._idle.put(backend)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for backend in self._all:
            backend.close()
        self._all = []

    def decode(
        self, indices: np.ndarray, size: tuple[int, int], keyframes_only: bool = True
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(requested, decoded, frame [H, W, 3] uint8)`` for sorted unique keyframe ``indices``."""
        targets = [int(t) for t in indices]
        if self.workers == 1 or len(targets) < 2:
            yield from self._first.decode(indices, size, keyframes_only=True)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="vidpool-keyframe")
        ahead: deque[tuple[int, Future]] = deque()
        position = 0
        done = 0
        try:
            while done < len(targets):
                while position < len(targets) and len(ahead) < 2 * self.workers:
                    target = targets[position]
                    ahead.append((target, self._pool.submit(self._one, target, size)))
                    position += 1
                target, future = ahead.popleft()
                arr = future.result()
                if arr is None:
                    break  # not a clean keyframe: the general path takes the rest, in order
                yield target, target, arr
                done += 1
        finally:
            for _, future in ahead:
                future.cancel()
        if done < len(targets):
            for _, future in ahead:
                if not future.cancel():
                    future.result()  # let the decoder go back to the pool before reusing it
            yield from self._first.decode(indices[done:], size, keyframes_only=False)
