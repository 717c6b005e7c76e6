"""``spp``: spatial pyramid pooling of every frame."""

from __future__ import annotations

import torch

from vidpool.compression.budget import fixed_budget
from vidpool.compression.pool import axis_provenance, batch_provenance, grid_provenance, pool_grid
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["SpatialPyramid"]


def _pyramid(x: torch.Tensor, levels: tuple[int, ...]) -> list[torch.Tensor]:
    """Each level ``[B, T, L, L, C]``. When the frame divides into the finest level's bins and every
    level divides the finest, coarser levels are pooled from the finest (same bins, far less reading)."""
    h, w = x.shape[2:4]
    finest = max(levels)
    if h % finest or w % finest or any(finest % lv for lv in levels):
        return [pool_grid(x, (lv, lv)) for lv in levels]
    top = pool_grid(x, (finest, finest))
    return [pool_grid(top, (lv, lv)) for lv in levels]


@register
class SpatialPyramid(Method):
    """Per frame, adaptive average pooling at each pyramid level (default ``(1, 2, 4)``), concatenated.

    Token order: frame by frame; within a frame, level by level as given; within a level, row-major.
    ``T · Σ L²`` tokens (21 per frame by default). ``assign`` names the finest level's token.
    """

    name = "spp"
    summary = "per-frame spatial pyramid: adaptive avg pooling at levels (1, 2, 4), concatenated"

    def resolve(self, shape, budget=None, *, levels=(1, 2, 4)):
        t, h, w = shape
        levels = tuple(levels)
        if not levels or any(not isinstance(lv, int) or lv < 1 or lv > min(h, w) for lv in levels):
            raise InvalidArgumentError(
                f"spp levels must be ints between 1 and {min(h, w)} for a {h}x{w} frame, got {levels}"
            )
        count = t * sum(lv * lv for lv in levels)
        fixed_budget(self.name, budget, count, shape)
        return MethodPlan(count, {"levels": levels})

    def run(self, x, plan, scores=None):
        b, t, h, w, _ = x.shape
        levels = plan.params["levels"]
        per_frame = sum(lv * lv for lv in levels)
        parts = [level.flatten(2, 3) for level in _pyramid(x, levels)]
        tokens = torch.cat(parts, dim=2).flatten(1, 2)
        dev = x.device
        best_a = best_w = None
        offset = 0
        for lv in levels:
            a, wt = grid_provenance([axis_provenance(h, lv, dev), axis_provenance(w, lv, dev)], (lv, lv))
            a = a + offset
            if best_a is None:
                best_a, best_w = a, wt
            else:
                better = wt > best_w
                best_a, best_w = torch.where(better, a, best_a), torch.where(better, wt, best_w)
            offset += lv * lv
        frame_base = (torch.arange(t, device=dev) * per_frame).view(t, 1, 1)
        assign = frame_base + best_a.unsqueeze(0)
        weight = best_w.unsqueeze(0).expand(t, h, w)
        return Output(tokens, *batch_provenance(assign, weight, b))
