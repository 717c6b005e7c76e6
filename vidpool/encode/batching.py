"""Batch sizes from a memory budget, and batched execution that backs off when memory runs out.

The estimate is deliberately simple and conservative: per frame it counts the uint8 source frame and
its float copy during the resize, the normalised pixels, the live activations of one transformer block
at its peak (residual, norms, qkv, the attention matrix as if materialised, the MLP hidden state), and
the per-frame outputs that stay on the device. The budget covers activations only; the weights are
counted separately (``CLIPEncoder.param_bytes``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

from vidpool.encode.config import ModelSpec
from vidpool.errors import InvalidArgumentError, OutOfMemoryError

__all__ = [
    "MAX_BATCH",
    "activation_bytes_per_frame",
    "batch_size_for",
    "default_memory_budget",
    "iter_batches",
]

MAX_BATCH = 1024
_SAFETY = 1.25
_CPU_DEFAULT_BUDGET = 1 << 30
_CUDA_FREE_FRACTION = 0.7


def activation_bytes_per_frame(
    spec: ModelSpec,
    dtype: torch.dtype,
    *,
    frame_hw: tuple[int, int] | None = None,
    joint: bool = True,
) -> int:
    """Estimated peak device memory one frame adds to a batch, in bytes.

    Args:
        spec: the model geometry.
        dtype: dtype of the activations.
        frame_hw: size of the decoded frames (defaults to 720p, a common decode size).
        joint: whether the last block's tokens and their joint projection are kept too.
    """
    item = torch.empty((), dtype=dtype).element_size()
    height, width = frame_hw or (720, 1280)
    size_h, size_w = spec.image_size
    scale = max(size_h / height, size_w / width)
    resized = 3 * max(round(height * scale), size_h) * max(round(width * scale), size_w)
    preprocess = 3 * height * width * (1 + 4) + resized * 4 + 3 * size_h * size_w * (4 + item)

    tokens, channels, hidden = spec.num_tokens, spec.width, int(spec.width * spec.mlp_ratio)
    attention = 2 * spec.heads * tokens * tokens
    mlp = 2 * tokens * hidden
    block_peak = (8 * tokens * channels + max(attention, mlp)) * item

    patches = spec.grid[0] * spec.grid[1]
    kept = (tokens * channels) * (2 if joint else 1) * item  # the chosen block's output (+ the last block's)
    outputs = (patches * channels + channels + (patches * spec.embed_dim if joint else 0)) * item
    return int(_SAFETY * (preprocess + block_peak + kept + outputs))


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


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def iter_batches(
    run: Callable[[int, int], torch.Tensor | tuple],
    total: int,
    batch_size: int,
) -> Iterator[tuple[int, int, object]]:
    """Call ``run(start, stop)`` over ``[0, total)`` in batches, halving the batch on out-of-memory.

    Yields ``(start, stop, result)`` in order. The smaller batch size is kept for the rest of the run.
    Raises :class:`vidpool.OutOfMemoryError` when even a single item does not fit.
    """
    start = 0
    while start < total:
        stop = min(total, start + batch_size)
        try:
            result = run(start, stop)
        except Exception as exc:
            if not _is_oom(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if stop - start == 1:
                raise OutOfMemoryError(
                    "out of memory encoding a single frame: use a smaller model, dtype=torch.float16, "
                    "or free memory on the device"
                ) from exc
            batch_size = max(1, (stop - start) // 2)
            continue
        yield start, stop, result
        start = stop
