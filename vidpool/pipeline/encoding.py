"""Encoding a video for a run: decode the planned frames and encode them batch by batch, halving on OOM."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from vidpool.errors import InvalidArgumentError
from vidpool.llm.protocol import VideoModel
from vidpool.pipeline.trace import StageClock
from vidpool.progress import ProgressCallback, report
from vidpool.schedule import ChunkRunner, Plan
from vidpool.video import Frames, VideoReader, sample_frames, to_frames

__all__ = ["EncodedVideo", "encode_video"]


class EncodedVideo:
    """Vision features of the sampled frames: ``features [T, h, w, C]``, ``timestamps [T]`` seconds (or
    ``None`` for frames in memory given without times) and ``indices [T]``, which frames they are
    (frame indices in a file, positions in memory).

    ``joint [T, h, w, D]`` holds joint-space patch embeddings when they were asked for (prompt scores).
    """

    def __init__(
        self,
        features: torch.Tensor,
        timestamps: np.ndarray | None,
        tried: Sequence[int] = (),
        joint: torch.Tensor | None = None,
        indices: Sequence[int] | None = None,
    ):
        self.features = features
        self.timestamps = None if timestamps is None else np.asarray(timestamps, dtype=np.float64)
        count = int(features.shape[0])
        self.indices = np.arange(count, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        self.tried = list(tried)
        self.joint = joint

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])


def _frame_pieces(video: Any, plan_: Plan) -> Iterator[Frames]:
    """Decoded ``Frames`` pieces of ``plan_.num_frames`` sampled frames, one encoder batch each: from a
    file, or from frames in memory by the same rule (segment centres over the frames' timestamps)."""
    if isinstance(video, (str, os.PathLike)):
        with VideoReader(video) as reader:
            yield from reader.chunks(plan_.encoder_batch, **plan_.sample_kwargs())
        return
    picked = sample_frames(to_frames(video), num_frames=plan_.num_frames)
    for start in range(0, len(picked), plan_.encoder_batch):
        yield picked.select(np.arange(start, min(start + plan_.encoder_batch, len(picked))))


def _encode_batch(model: VideoModel, frames: Any, joint: bool) -> dict[str, torch.Tensor]:
    """``{"features": [n, h, w, C]}`` of ``frames`` (plus ``"joint": [n, h, w, D]`` when ``joint``)."""
    if not joint:
        return {"features": model.encode_patches(frames)}
    out = model.encode(frames, joint=True)
    return {"features": out.patches, "joint": out.joint}


def encode_video(
    model: VideoModel,
    video: Any,
    plan_: Plan,
    *,
    runner: ChunkRunner | None = None,
    keep_on: str | None = None,
    joint: bool = False,
    progress: ProgressCallback | None = None,
    clock: StageClock | None = None,
) -> EncodedVideo:
    """Encode the frames ``plan_`` samples, one encoder batch at a time, halving the batch on OOM.

    Features go into one preallocated ``[T, h, w, C]`` tensor on ``keep_on`` (default
    ``plan_.features_on``), so no more than one batch of activations and the kept features coexist.
    With ``joint`` the model's joint-space patch embeddings ``[T, h, w, D]`` from the same forward
    pass are kept too (``model.encode(frames, joint=True)``), for exact prompt scores.
    ``progress("encoding frames", done, total)`` follows each batch. A ``clock`` gets the seconds spent
    waiting for decoded frames (``decode``) and encoding them (``encode``).
    """
    runner = runner or ChunkRunner(plan_.encoder_batch, what="frames per encoder batch")
    keep_on = keep_on or plan_.features_on
    kept: dict[str, torch.Tensor] = {}
    stamps: list[np.ndarray | None] = []
    indices: list[int] = []
    filled = 0
    report(progress, "encoding frames", 0, plan_.num_frames)
    clock = clock or StageClock(keep_on)
    pieces = _frame_pieces(video, plan_)
    with torch.inference_mode():
        while True:
            # decoding and encoding alternate per batch: each wait is timed where it happens
            with clock.measure("decode"):
                piece = next(pieces, None)
            if piece is None:
                break
            with clock.measure("encode"):
                for out in runner.map(lambda f: _encode_batch(model, f, joint), piece.frames):
                    count = out["features"].shape[0]
                    for name, value in out.items():
                        if name not in kept:
                            shape = (plan_.num_frames, *value.shape[1:])
                            kept[name] = torch.empty(shape, dtype=value.dtype, device=keep_on)
                        kept[name][filled : filled + count].copy_(value)
                    filled += count
                    del out
                    report(progress, "encoding frames", filled, plan_.num_frames)
            stamps.append(
                None if piece.timestamps is None else np.asarray(piece.timestamps, dtype=np.float64)
            )
            indices += piece.indices
    if not kept or filled == 0:
        raise InvalidArgumentError("no frames were decoded from the video")
    joint_kept = kept["joint"][:filled] if "joint" in kept else None
    times = None if any(t is None for t in stamps) else np.concatenate(stamps)
    return EncodedVideo(kept["features"][:filled], times, runner.tried, joint_kept, indices)
