"""``slowfast``: SlowFast-LLaVA's training-free two-pathway pooling."""

from __future__ import annotations

import math

import torch

from vidpool.compression.budget import USE_FRACTION, check_budget, plane_for_budget
from vidpool.compression.pool import axis_provenance, batch_provenance, grid_arg, grid_provenance, pool_grid
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["SlowFast", "uniform_indices"]


def uniform_indices(total: int, count: int) -> list[int]:
    """``count`` segment-centred indices spread uniformly over ``range(total)``."""
    return [int((i + 0.5) * total / count) for i in range(count)]


def _slow_for_budget(shape, remaining: int, target: int) -> tuple[int, tuple[int, int]]:
    """Number of slow frames and their grid that best fill ``remaining`` tokens, near ``target`` frames."""
    t, h, w = shape
    cands = []
    for n in range(1, t + 1):
        plane = plane_for_budget(h, w, remaining // n)
        if plane is None:
            break
        cands.append((n * plane[0] * plane[1], n, plane))
    best = max(c[0] for c in cands)
    near = [c for c in cands if c[0] >= USE_FRACTION * best]
    _, n, plane = min(near, key=lambda c: (abs(c[1] - target), -c[0]))
    return n, plane


@register
class SlowFast(Method):
    """Slow path: ``slow_frames`` uniformly chosen frames pooled to ``slow_grid``; fast path: every frame
    pooled to ``fast_grid``; slow tokens first, then fast, each time-major.

    Defaults follow the paper's 50-frame setting (10 slow frames at 12×24, 50 fast frames at 4×4 from a
    24×24 grid): ``slow_frames = round(T/5)`` (at least 1), ``slow_grid = (H/2, W)``,
    ``fast_grid = (4, 4)``. All pooling is adaptive average pooling. With ``budget=N`` the fast path
    keeps ``4×4`` (smaller only if ``N`` forces it) and the slow path gets the rest, with the number of
    slow frames kept near the default and the grid chosen to fill the budget.
    """

    name = "slowfast"
    budget_replaces = ("slow_frames", "slow_grid")
    summary = "slow path (few frames, fine) + fast path (all frames, 4x4) (SlowFast-LLaVA)"

    def resolve(self, shape, budget=None, *, slow_frames=None, slow_grid=None, fast_grid=(4, 4)):
        t, h, w = shape
        target = max(1, round(t / 5))
        fast = grid_arg(fast_grid, 2, "fast_grid")
        fast = (min(fast[0], h), min(fast[1], w))
        if budget is not None:
            if slow_frames is not None or slow_grid is not None:
                raise InvalidArgumentError("with budget=, slowfast chooses slow_frames and slow_grid itself")
            check_budget(self.name, budget, t + 1, shape)
            if budget - t * fast[0] * fast[1] < 1:
                fast = plane_for_budget(h, w, (budget - 1) // t)
            n_slow, slow = _slow_for_budget(shape, budget - t * fast[0] * fast[1], target)
        else:
            n_slow = target if slow_frames is None else slow_frames
            if not isinstance(n_slow, int) or not 1 <= n_slow <= t:
                raise InvalidArgumentError(f"slow_frames must be between 1 and T={t}, got {n_slow!r}")
            slow = grid_arg(slow_grid or (max(1, h // 2), w), 2, "slow_grid")
            if slow[0] > h or slow[1] > w:
                raise InvalidArgumentError(f"slow_grid {slow} is larger than the {h}x{w} frame")
        count = n_slow * slow[0] * slow[1] + t * fast[0] * fast[1]
        params = {"slow_frames": n_slow, "slow_grid": tuple(slow), "fast_grid": tuple(fast)}
        return MethodPlan(count, params)

    def run(self, x, plan, scores=None):
        b, t, h, w, _ = x.shape
        slow_grid, fast_grid = plan.params["slow_grid"], plan.params["fast_grid"]
        idx = uniform_indices(t, plan.params["slow_frames"])
        # Pool the slow frames one view at a time rather than gathering them into a copy.
        slow = torch.stack([pool_grid(x[:, f], slow_grid) for f in idx], dim=1).flatten(1, 3)
        fast = pool_grid(x, fast_grid).flatten(1, 3)
        dev = x.device

        def plane(grid):
            return grid_provenance([axis_provenance(h, grid[0], dev), axis_provenance(w, grid[1], dev)], grid)

        fa, fw = plane(fast_grid)
        sa, sw = plane(slow_grid)
        n_slow_tokens = len(idx) * math.prod(slow_grid)
        frames = torch.arange(t, device=dev).view(t, 1, 1)
        assign = (n_slow_tokens + frames * math.prod(fast_grid) + fa).clone()
        weight = fw.expand(t, h, w).clone()
        for slot, f in enumerate(idx):
            better = sw > weight[f]
            assign[f] = torch.where(better, slot * math.prod(slow_grid) + sa, assign[f])
            weight[f] = torch.where(better, sw, weight[f])
        return Output(torch.cat([slow, fast], dim=1), *batch_provenance(assign, weight, b))
