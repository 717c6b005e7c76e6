"""``adaptive``: 3-D adaptive pooling over (T, H, W), as in PLLaVA."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from vidpool.compression.budget import check_budget, grid_for_budget
from vidpool.compression.pool import (
    axis_provenance,
    batch_provenance,
    grid_arg,
    grid_provenance,
    max_share,
    pool_grid,
    signed_pow,
)
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["Adaptive", "adaptive_pool", "window_grid"]

MODES = ("avg", "max", "gem")


def _exponent(p: float | Sequence[float], channels: int, x: torch.Tensor) -> float | torch.Tensor:
    """GeM exponent: one float, or one per channel group (Group GeM) broadcast to ``[C]``."""
    if isinstance(p, (int, float)):
        return float(p)
    groups = len(p)
    if channels % groups:
        raise InvalidArgumentError(
            f"Group GeM needs C={channels} divisible by the {groups} group exponents in p"
        )
    return torch.tensor(p, dtype=x.dtype, device=x.device).repeat_interleave(channels // groups)


def adaptive_pool(
    x: torch.Tensor, grid: tuple[int, int, int], mode: str = "avg", p: float | Sequence[float] = 3.0
) -> torch.Tensor:
    """Adaptive pooling of ``[B, T, H, W, C]`` to ``[B, t, h, w, C]`` without permuting the input.

    ``mode="avg"`` equals ``adaptive_avg_pool3d`` and ``"max"`` equals ``adaptive_max_pool3d`` over
    (T, H, W). ``"gem"`` is the generalised mean ``(mean |x|^p · sign x)^(1/p)`` with the sign kept
    (see :class:`Adaptive`); ``p`` may be a sequence giving one exponent per channel group.
    """
    if mode == "avg":
        return pool_grid(x, grid)
    if mode == "max":
        return pool_grid(x, grid, reduce="amax")
    exp = _exponent(p, x.shape[-1], x)
    if isinstance(exp, float):
        return signed_pow(pool_grid(signed_pow(x, exp), grid), 1.0 / exp)
    pooled = pool_grid(x.abs().pow(exp).copysign(x), grid)
    return pooled.abs().pow(1.0 / exp).copysign(pooled)


def check_grid(grid, shape: tuple[int, int, int], name: str = "grid") -> tuple[int, int, int]:
    grid = grid_arg(grid, 3, name)
    if any(o > i for o, i in zip(grid, shape)):
        raise InvalidArgumentError(
            f"{name} {grid} is larger than the input {shape} on some axis; pooling only shrinks"
        )
    return grid  # type: ignore[return-value]


def window_grid(
    name: str, shape: tuple[int, int, int], budget: int | None, grid: Any
) -> tuple[int, int, int]:
    """The ``(t, h, w)`` window grid of a window-pooling method over ``shape``: from ``budget`` (the
    largest grid within it), from ``grid`` as given, or by default every frame with its sides halved."""
    if grid is not None and budget is not None:
        raise InvalidArgumentError(f"give {name} either grid=(t, h, w) or budget=N, not both")
    if budget is not None:
        check_budget(name, budget, 1, shape)
        grid = grid_for_budget(shape, budget)
    elif grid is None:
        grid = (shape[0], max(1, shape[1] // 2), max(1, shape[2] // 2))
    return check_grid(grid, shape)


@register
class Adaptive(Method):
    """PLLaVA's adaptive pooling to a ``(t, h, w)`` grid (default: all frames, half the height and width).

    With ``mode="gem"`` the generalised mean of exponent ``p`` (default 3; one per channel group gives
    Group GeM) is taken over signed powers, ``sign(m)|m|^(1/p)`` with ``m = mean(sign(x)|x|^p)``, so the
    negative activations of CLIP features count with their sign instead of being clamped to zero as in
    image-retrieval GeM. ``p=1`` is the average; large ``p`` tends to the value of largest magnitude.
    """

    name = "adaptive"
    budget_replaces = ("grid",)
    summary = "3-D adaptive avg/max/GeM pooling to a (t, h, w) grid (PLLaVA)"
    keeps_grid = True

    def resolve(self, shape, budget=None, *, grid=None, mode="avg", p=3.0):
        if mode not in MODES:
            raise InvalidArgumentError(f"adaptive mode must be one of {MODES}, got {mode!r}")
        ps = [p] if isinstance(p, (int, float)) else list(p)
        if not ps or any(not isinstance(v, (int, float)) or v <= 0 for v in ps):
            raise InvalidArgumentError(f"GeM exponent p must be positive, got {p!r}")
        grid = window_grid(self.name, shape, budget, grid)
        return MethodPlan(math.prod(grid), {"grid": grid, "mode": mode, "p": p}, grid=grid)

    def run(self, x, plan, scores=None):
        grid, mode = plan.params["grid"], plan.params["mode"]
        pooled = adaptive_pool(x, grid, mode, plan.params["p"])
        per_axis = [axis_provenance(i, o, x.device) for i, o in zip(x.shape[1:4], grid)]
        assign, weight = grid_provenance(per_axis, grid)
        assign, weight = batch_provenance(assign, weight, x.shape[0])
        if mode == "max":
            weight = max_share(x, pooled, [a for a, _ in per_axis])
        return Output(pooled.flatten(1, 3), assign, weight)
