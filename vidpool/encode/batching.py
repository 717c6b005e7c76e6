"""Batch sizes from a memory budget, and batched execution that backs off when memory runs out.

The per-frame estimate is :func:`vidpool.encode.memory.vit_activation_bytes_per_frame`, the formula the
planner uses too (measured against torch's allocator on CPU). The budget covers activations only; the
weights are counted separately (``CLIPEncoder.param_bytes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from vidpool.backoff import ChunkRunner
from vidpool.encode.config import EncoderSpec
from vidpool.encode.memory import DEFAULT_FRAME_HW, clip_activation_bytes_per_frame
from vidpool.errors import InvalidArgumentError

__all__ = [
    "MAX_BATCH",
    "activation_bytes_per_frame",
    "batch_size_for",
    "default_memory_budget",
    "iter_batches",
]

MAX_BATCH = 1024
_CPU_DEFAULT_BUDGET = 1 << 30
_CUDA_FREE_FRACTION = 0.7
_ADVICE = (
    "the encoder cannot fit a single frame: use a smaller model, dtype=torch.float16, or free device memory"
)


def activation_bytes_per_frame(
    spec: EncoderSpec,
    dtype: torch.dtype,
    *,
    frame_hw: tuple[int, int] | None = None,
    joint: bool = True,
    block: int | None = None,
    device_type: str = "cpu",
) -> int:
    """Peak device memory one frame adds to a batch, in bytes (:mod:`vidpool.encode.memory`'s formula).

    Args:
        spec: the model geometry.
        dtype: dtype of the activations.
        frame_hw: size of the decoded frames (default ``DEFAULT_FRAME_HW``, 720p).
        joint: whether the last block also runs and its joint projection is written.
        block: index of the block whose output is taken (``None``: the second-to-last).
        device_type: where the encoder runs (preprocessing and attention differ between CPU and GPU).
    """
    item = torch.empty((), dtype=dtype).element_size()
    return clip_activation_bytes_per_frame(
        spec,
        item,
        frame_hw=tuple(frame_hw or DEFAULT_FRAME_HW),
        joint=joint,
        block=block,
        device_type=device_type,
    )


def batch_size_for(memory_bytes: int, per_frame_bytes: int, *, max_batch: int = MAX_BATCH) -> int:
    """How many frames fit in ``memory_bytes`` of activation memory (at least 1, at most ``max_batch``)."""
    if memory_bytes <= 0:
        raise InvalidArgumentError(f"memory budget must be positive, got {memory_bytes} bytes")
    return int(max(1, min(max_batch, memory_bytes // max(1, per_frame_bytes))))


def default_memory_budget(device: torch.device) -> int:
    """Activation memory to use when none is given: 70% of free CUDA memory, or 1 GiB on CPU."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free * _CUDA_FREE_FRACTION)
    return _CPU_DEFAULT_BUDGET


def iter_batches(
    run: Callable[[int, int], torch.Tensor | tuple],
    total: int,
    batch_size: int,
) -> Iterator[tuple[int, int, object]]:
    """Call ``run(start, stop)`` over ``[0, total)`` in batches, halving the batch on out-of-memory.

    Yields ``(start, stop, result)`` in order. The smaller batch size is kept for the rest of the run.
    Back-off is :class:`vidpool.backoff.ChunkRunner`'s, the pipeline's own: the same errors count as
    out of memory. Raises :class:`vidpool.OutOfMemoryError`, listing the sizes tried, when even a
    single frame does not fit.
    """
    runner = ChunkRunner(batch_size, what="frames", advice=_ADVICE)
    return runner.call(lambda start, stop: (start, stop, run(start, stop)), 0, total)
