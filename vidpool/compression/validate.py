"""Argument checks shared by ``compress``, ``TokenCompressor``, ``num_output_tokens`` and ``resolve``.

Every input a method cannot take is refused here, before any method runs, with one
:class:`~vidpool.errors.InvalidArgumentError` that says what is wrong and what to do. Methods can then
assume a non-empty ``[B, T, H, W, C]`` floating-point tensor of finite values.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch

from vidpool.errors import InvalidArgumentError

__all__ = ["DTYPES", "all_finite", "check_budget_value", "check_finite_values", "check_shape", "check_tokens"]

# The dtypes every method is tested in; float8 and complex tensors are refused rather than half-handled.
DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def _positive_whole(value: Any) -> bool:
    """An ``int`` (numpy's too) or a float with no fraction, at least 1; never a ``bool``."""
    if isinstance(value, bool):
        return False
    whole = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
    return whole and value >= 1


def check_budget_value(budget: Any) -> int | None:
    """``budget`` as an ``int`` (or ``None``); raises unless it is a positive whole number of tokens."""
    if budget is None:
        return None
    if not _positive_whole(budget):
        raise InvalidArgumentError(
            f"budget must be a positive integer number of output tokens, got {budget!r}; "
            "pass budget=None to use the method's default shape"
        )
    return int(budget)


def check_shape(shape: Any) -> tuple[int, int, int]:
    """``shape`` as ``(T, H, W)`` ints; raises unless it is three positive whole numbers."""
    try:
        sizes = tuple(shape)
    except TypeError:
        sizes = None
    if sizes is None or len(sizes) != 3 or not all(_positive_whole(s) for s in sizes):
        raise InvalidArgumentError(
            f"shape must be (T, H, W), three positive integers (frames, patch rows, patch columns), got "
            f"{shape!r}; for a token tensor pass tokens.shape[-4:-1]"
        )
    return int(sizes[0]), int(sizes[1]), int(sizes[2])


def check_tokens(tokens: Any, scores: Any = None) -> None:
    """Refuse token (and score) tensors no method can take: wrong type, rank, dtype, device or an empty axis.

    ``tokens`` is ``[B, T, H, W, C]`` or ``[T, H, W, C]``; ``scores``, when given, has its shape without
    the channels. Values are not read here (see :func:`check_finite_values`).
    """
    if not isinstance(tokens, torch.Tensor):
        raise InvalidArgumentError(
            f"tokens must be a torch.Tensor or a Compressed result, got {type(tokens).__name__}"
        )
    shape = tuple(tokens.shape)
    if tokens.dim() not in (4, 5):
        raise InvalidArgumentError(
            f"tokens must be [B, T, H, W, C] (or [T, H, W, C] for one video), got shape {shape}; "
            "reshape a flat [B, N, C] sequence to its frame grid first"
        )
    if tokens.dtype not in DTYPES:
        raise InvalidArgumentError(
            f"tokens must be floating point (float32, float16, bfloat16 or float64), got {tokens.dtype}; "
            "convert them with tokens.float()"
        )
    if tokens.numel() == 0:
        names = "BTHWC" if tokens.dim() == 5 else "THWC"
        empty = ", ".join(f"{n} = 0" for n, s in zip(names, shape) if s == 0)
        raise InvalidArgumentError(
            f"tokens have an empty axis ({empty} in shape {shape}); compression needs at least one "
            "video, frame, patch row, patch column and channel"
        )
    if scores is None:
        return
    if not isinstance(scores, torch.Tensor):
        raise InvalidArgumentError(
            f"scores must be a torch.Tensor (see vidpool.prompt_scores), got {type(scores).__name__}"
        )
    if tuple(scores.shape) != shape[:-1]:
        raise InvalidArgumentError(
            f"scores must have the token shape without channels, {shape[:-1]}, got {tuple(scores.shape)}"
        )
    if scores.dtype not in DTYPES:
        raise InvalidArgumentError(f"scores must be floating point, got {scores.dtype}")
    if scores.device != tokens.device:
        raise InvalidArgumentError(
            f"scores are on {scores.device} and tokens on {tokens.device}; move them to the same device"
        )


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value of ``x`` is finite, reading ``x`` once in the usual case.

    A sum is not finite when any value is NaN or ±Inf, and otherwise only when it overflows (float16
    sums of large videos do); only then is the exact ``aminmax`` reduction run as well. Both are fused
    reductions with no temporary the size of ``x``; ``isfinite(x).all()`` allocates a bool copy of
    it and measured 20-45x slower than the sum on CPU (256 CLIP-L frames, float32, float16, bfloat16).
    """
    x = x.detach()
    if bool(x.sum().isfinite()):
        return True
    low, high = torch.aminmax(x)  # NaN propagates through min and max
    return bool(low.isfinite() & high.isfinite())


def _first_bad(x: torch.Tensor) -> str:
    """What the non-finite values are, how many, and where the first is (error path only).

    No index list is built: on a video that is all NaN it would be 40 bytes per value.
    """
    x = x.detach()
    bad = ~torch.isfinite(x)
    count = int(bad.sum())
    flat = int(bad.view(-1).to(torch.uint8).argmax())
    first = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), x.shape))
    kinds = [k for k, test in (("NaN", torch.isnan), ("Inf", torch.isinf)) if bool(test(x).any())]
    return f"{' and '.join(kinds)} in {count} value(s), the first at index {first}"


def check_finite_values(tokens: torch.Tensor, scores: torch.Tensor | None = None) -> None:
    """Refuse NaN or Inf in ``tokens`` or ``scores``: pooled with finite values they spread silently,
    and methods that compare tokens (``temporal_merge``) change their token count."""
    if not all_finite(tokens):
        raise InvalidArgumentError(
            f"tokens contain {_first_bad(tokens)}; a compressed token would mix them into its "
            "neighbours. Find where they come from (float16 overflow in the encoder is a common cause: "
            "encode in bfloat16 or float32), or pass check_finite=False to skip this check"
        )
    if scores is not None and not all_finite(scores):
        raise InvalidArgumentError(
            f"scores contain {_first_bad(scores)}; prompt scores are probabilities "
            "(see vidpool.prompt_scores), or pass check_finite=False to skip this check"
        )
