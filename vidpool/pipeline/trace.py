"""What one answer took: time per stage, the frames used and what compression kept.

``VideoChat.last_trace`` holds a :class:`Trace` for the latest question, so that a surface (the demo's
panel, a captioning log) can show what was done without reaching into the pipeline's private state.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from vidpool.compression import Compressed
    from vidpool.schedule import Plan

__all__ = ["STAGES", "StageClock", "Trace"]

#: the stages of a run, in the order they happen
STAGES = ("decode", "encode", "compress", "prefill", "generate")


class StageClock:
    """Wall-clock seconds per stage, summed over every :meth:`measure` of that stage.

    With a CUDA ``device`` each measurement synchronises first and last, so that work queued by one
    stage is not billed to the next.
    """

    def __init__(self, device: str | torch.device | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self._cuda = str(device or "cpu").startswith("cuda") and torch.cuda.is_available()

    def _sync(self) -> None:
        if self._cuda:
            torch.cuda.synchronize()

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.add(stage, time.perf_counter() - start)

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)


@dataclass
class Trace:
    """One answer of :meth:`VideoChat.ask`, for display and logs.

    Attributes:
        question: the question asked.
        plan: the plan the run followed.
        frames: ``[T]`` which frames were sampled (frame indices of the file, positions in memory).
        timestamps: ``[T]`` seconds of the sampled frames, or ``None`` for frames in memory given
            without times (then only ``frames`` says which they are).
        grid: ``(h, w)`` patch grid of one encoded frame.
        timings: seconds per stage (:data:`STAGES`); ``decode`` and ``encode`` are absent when the features
            came from the cache, ``prefill`` is the time to the first streamed piece (a whole answer
            without streaming counts as ``generate`` alone).
        cached: whether the video's features came from the feature cache.
        compressed: the compression result over the ``[T, h, w]`` patch grid (``assign``/``weight``), or
            ``None`` for a model that does not report it.
        scores: ``[T, h, w]`` prompt relevance when the method used it, else ``None``.
        visual_tokens: tokens that went into the prompt (after compression, with any suffix tokens).
        answer: the answer text, once complete.
        done: whether the answer is complete.
    """

    question: str
    plan: Plan
    frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    timestamps: np.ndarray | None = field(default_factory=lambda: np.zeros(0))
    grid: tuple[int, int] = (0, 0)
    timings: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    compressed: Compressed | None = None
    scores: torch.Tensor | None = None
    visual_tokens: int = 0
    answer: str = ""
    done: bool = False

    @property
    def num_frames(self) -> int:
        return len(self.frames)

    @property
    def patch_tokens(self) -> int:
        """Visual tokens before compression: every patch of every sampled frame (``T * h * w``), or of the grid
        compression saw when the model merges frames in time (Qwen-VL: two frames to a grid)."""
        if self.compressed is not None and self.compressed.input_shape[0]:
            t, h, w = self.compressed.input_shape
            return int(t * h * w)
        return self.num_frames * self.grid[0] * self.grid[1]

    def ordered_timings(self) -> list[tuple[str, float]]:
        """``(stage, seconds)`` in run order, known stages first."""
        known = [(s, self.timings[s]) for s in STAGES if s in self.timings]
        return known + [(s, v) for s, v in self.timings.items() if s not in STAGES]

    def to_dict(self) -> dict[str, Any]:
        """The scalar parts, JSON-ready (no tensors)."""
        return {
            "question": self.question,
            "frames": self.num_frames,
            "frame_indices": [int(i) for i in self.frames],
            "timestamps": None if self.timestamps is None else [float(t) for t in self.timestamps],
            "grid": list(self.grid),
            "patch_tokens": self.patch_tokens,
            "visual_tokens": self.visual_tokens,
            "method": self.plan.method,
            "timings": dict(self.ordered_timings()),
            "cached": self.cached,
            "done": self.done,
        }
