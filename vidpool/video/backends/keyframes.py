"""Keyframe-only decoding spread over a few PyAV decoders.

A keyframe decodes on its own, so ``exact=False`` sampling decodes several at once, each thread with its
own container (FFmpeg decoders release the GIL). Frames still come out in request order.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
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
        self._decoders = [PyAVBackend(path, index, info, thread_type="NONE")]

    def close(self) -> None:
        for decoder in self._decoders:
            decoder.close()
        self._decoders = []

    def decode(
        self, indices: np.ndarray, size: tuple[int, int], keyframes_only: bool = True
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(requested, decoded, frame [H, W, 3] uint8)`` for sorted unique keyframe ``indices``."""
        targets = [int(t) for t in indices]
        workers = min(self.workers, len(targets))
        if workers <= 1:
            yield from self._decoders[0].decode(indices, size, keyframes_only=True)
            return
        while len(self._decoders) < workers:
            self._decoders.append(PyAVBackend(self.path, self.index, self.info, thread_type="NONE"))
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(targets)):
            todo.put(i)
        results: dict[int, np.ndarray | None] = {}
        ready = threading.Condition()
        state = {"next": 0, "stop": False}
        window = 2 * workers  # frames decoded ahead of the consumer, bounding memory

        def work(decoder: PyAVBackend) -> None:
            while True:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                with ready:
                    while not state["stop"] and i >= state["next"] + window:
                        ready.wait()
                    if state["stop"]:
                        return
                try:
                    arr = decoder._keyframe(targets[i], size)
                except Exception:
                    arr = None
                with ready:
                    results[i] = arr
                    ready.notify_all()

        # Daemon threads: a decoder stuck in native code must not keep the interpreter from exiting.
        threads = [
            threading.Thread(target=work, args=(d,), daemon=True, name="vidpool-keyframe")
            for d in self._decoders[:workers]
        ]
        for thread in threads:
            thread.start()
        done = 0
        try:
            for i in range(len(targets)):
                with ready:
                    while i not in results:
                        ready.wait()
                    arr = results.pop(i)
                    state["next"] = i + 1
                    ready.notify_all()
                if arr is None:
                    break  # not a clean keyframe: the general path takes the rest, in order
                yield targets[i], targets[i], arr
                done += 1
        finally:
            with ready:
                state["stop"] = True
                ready.notify_all()
            for thread in threads:
                thread.join()
        if done < len(targets):
            yield from self._decoders[0].decode(indices[done:], size, keyframes_only=False)
