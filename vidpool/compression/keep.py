"""Kept positions → an :class:`Output`: the shared tail of every pruning method.

A pruner decides which input positions survive; this module turns that decision into tokens and
provenance the same way for all of them: a kept token is the input at its position (weight 1), a
dropped position has ``assign = -1`` and weight 0.
"""

from __future__ import annotations

import torch

from vidpool.compression.registry import Output
from vidpool.errors import InvalidArgumentError

__all__ = ["keep_positions", "keep_ratio"]


def keep_ratio(method: str, budget: int | None, ratio: object, default: float) -> float | None:
    """The share of tokens a pruner keeps when no budget is given: ``ratio``, else ``default``, checked
    to lie in ``(0, 1]``; ``None`` when a budget is given (then ``ratio`` must not be: one or the other).
    """
    if budget is not None:
        if ratio is not None:
            raise InvalidArgumentError(f"give {method} either ratio= or budget=, not both")
        return None
    ratio = default if ratio is None else ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
        raise InvalidArgumentError(f"{method} ratio is the share of tokens kept, in (0, 1], got {ratio!r}")
    return float(ratio)


def keep_positions(x: torch.Tensor, keep: torch.Tensor) -> Output:
    """Gather the tokens at ``keep`` and record where each came from.

    Args:
        x: ``[B, T, H, W, C]``.
        keep: long ``[B, K]``, flat indices into ``T·H·W`` (``t·H·W + h·W + w``), distinct within a row.
            Their order is the output order: sort them ascending for time-major tokens.

    Returns:
        ``Output`` with tokens ``[B, K, C]`` (``tokens[b, k] == x.flatten(1, 3)[b, keep[b, k]]``),
        assign long ``[B, T, H, W]`` (``k`` at ``keep[b, k]``, ``-1`` elsewhere) and weight float32
        ``[B, T, H, W]`` (1 where kept, 0 elsewhere).

    The tokens are a gather from a view of ``x``: the input is neither copied nor changed, and
    gradients flow to the kept positions.
    """
    b, t, h, w, c = x.shape
    keep = keep.to(device=x.device, dtype=torch.long)
    flat = x.reshape(b, t * h * w, c)
    tokens = torch.gather(flat, 1, keep.unsqueeze(-1).expand(-1, -1, c))
    order = torch.arange(keep.shape[1], device=x.device).expand_as(keep)
    assign = torch.full((b, t * h * w), -1, dtype=torch.long, device=x.device).scatter(1, keep, order)
    weight = torch.zeros(b, t * h * w, device=x.device).scatter(1, keep, 1.0)
    return Output(tokens, assign.view(b, t, h, w), weight.view(b, t, h, w))
