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

    def __init__(
        self,
        path: Path,
        index: FrameIndex,
        info: VideoInfo,
        workers: int | None = None,
        opened: tuple | None = None,
    ):
        """``opened``: a ``(container, video_stream)`` of ``path`` for the first decoder to take over."""
        self.path, self.index, self.info = path, index, info
        self.workers = max(1, min(4, workers or os.cpu_count() or 1))
        if opened is None:
            first = PyAVBackend(path, index, info, thread_type="NONE")
        else:
            first = PyAVBackend.adopt(opened, path, index, info, thread_type="NONE")
        self._decoders: list[PyAVBackend | None] = [first]

    def close(self) -> None:
        for decoder in self._decoders:
            if decoder is not None:
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
        # Each further decoder opens the file in its own worker, while the first one already decodes.
        self._decoders += [None] * (workers - len(self._decoders))
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(targets)):
            todo.put(i)
        results: dict[int, np.ndarray | None] = {}
        ready = threading.Condition()
        state = {"next": 0, "stop": False}
        window = 2 * workers  # frames decoded ahead of the consumer, bounding memory

        def work(slot: int) -> None:
            decoder = self._decoders[slot]
            if decoder is None:
                try:
                    decoder = PyAVBackend(self.path, self.index, self.info, thread_type="NONE")
                except Exception:
                    return  # the other workers take its share
                self._decoders[slot] = decoder
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
            threading.Thread(target=work, args=(slot,), daemon=True, name="vidpool-keyframe")
            for slot in range(workers)
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
