"""``progressive``: spend a budget unevenly over frames — a few fine, the rest pooled harder."""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import torch

from vidpool.compression.budget import check_budget, plane_for_budget
from vidpool.compression.pool import axis_provenance, grid_arg, grid_provenance, pool_grid
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.compression.slowfast import uniform_indices
from vidpool.errors import InvalidArgumentError

__all__ = ["Progressive", "pyramid_levels"]


@lru_cache(maxsize=1024)
def pyramid_levels(height: int, width: int) -> tuple[tuple[int, int], ...]:
    """Per-frame grids for pooling strides 1, 2, 3, 4, 6, 8, 12, ... (``⌈H/s⌉ × ⌈W/s⌉``), finest first, down to 1×1."""
    strides = [1, 2, 3, 4]
    while strides[-1] < max(height, width):
        strides += [strides[-2] * 2, strides[-1] * 2]
    levels: list[tuple[int, int]] = []
    for s in strides:
        g = (-(-height // s), -(-width // s))
        if g not in levels:
            levels.append(g)
    if levels[-1] != (1, 1):
        levels.append((1, 1))
    return tuple(levels)


def _budget_layout(shape, budget: int):
    """(fine grid, coarse grid, number of fine frames, middle grid or None) filling ``budget``."""
    t, h, w = shape
    levels = pyramid_levels(h, w)
    if budget >= t * h * w:
        return levels[0], levels[0], t, None
    for fine, coarse in itertools.pairwise(levels):
        af, ac = math.prod(fine), math.prod(coarse)
        if t * ac <= budget:
            n_fine = min(t, (budget - t * ac) // (af - ac))
            rest = budget - t * ac - n_fine * (af - ac)
            middle = None
            if n_fine < t and rest > 0:
                middle = plane_for_budget(h, w, ac + rest)
                if math.prod(middle) <= ac:
                    middle = None
            return fine, coarse, n_fine, middle
    raise AssertionError("unreachable: the last level is 1x1 and budget >= T")


@register
class Progressive(Method):
    """Progressive pooling after "Visual Context Window Extension": some frames keep a finer grid, the
    others are pooled harder, every frame keeps at least one token.

    With ``budget=N``, the two adjacent pyramid levels (pooling strides 1, 2, 3, 4, 6, 8, ...) that
    bracket ``N / T`` tokens per frame are used; as many frames as fit get the fine level, and one more
    frame gets an in-between grid that uses the rest of the budget. Frames whose ``scores`` sum highest
    get the finer grids (ties: earlier frames); without scores the fine frames are spread uniformly.
    Without a budget: ``fine_grid`` (default ``H/2 × W/2``) for ``num_fine`` frames (default ``⌈T/4⌉``)
    and ``coarse_grid`` (default ``H/4 × W/4``) for the rest. All pooling is adaptive average pooling.
    Tokens are in time order, each frame's tokens row-major.
    """

    name = "progressive"
    budget_replaces = ("fine_grid", "coarse_grid", "num_fine")
    summary = "a few frames at a fine grid, the rest pooled harder, to fill a budget (Visual Context Window Extension)"
    uses_scores = True

    def resolve(self, shape, budget=None, *, fine_grid=None, coarse_grid=None, num_fine=None):
        t, h, w = shape
        middle = None
        if budget is not None:
            if fine_grid is not None or coarse_grid is not None or num_fine is not None:
                raise InvalidArgumentError("with budget=, progressive chooses its grids and num_fine itself")
            check_budget(self.name, budget, t, shape)
            fine, coarse, n_fine, middle = _budget_layout(shape, budget)
        else:
            fine = grid_arg(fine_grid or (max(1, h // 2), max(1, w // 2)), 2, "fine_grid")
            coarse = grid_arg(coarse_grid or (max(1, h // 4), max(1, w // 4)), 2, "coarse_grid")
            n_fine = -(-t // 4) if num_fine is None else num_fine
            if not isinstance(n_fine, int) or not 0 <= n_fine <= t:
                raise InvalidArgumentError(f"num_fine must be between 0 and T={t}, got {num_fine!r}")
            if max(fine[0], coarse[0]) > h or max(fine[1], coarse[1]) > w:
                raise InvalidArgumentError(
                    f"fine_grid {fine} / coarse_grid {coarse} larger than the {h}x{w} frame"
                )
        n_mid = 0 if middle is None else 1
        count = (
            n_fine * math.prod(fine)
            + n_mid * math.prod(middle or (0, 0))
            + (t - n_fine - n_mid) * math.prod(coarse)
        )
        params = {
            "fine_grid": tuple(fine),
            "coarse_grid": tuple(coarse),
            "num_fine": n_fine,
            "middle_grid": middle,
        }
        return MethodPlan(count, params)

    @staticmethod
    def frame_grids(
        plan: MethodPlan, num_frames: int, importance: list[float] | None = None
    ) -> list[tuple[int, int]]:
        """The grid of every frame: fine for the most important frames (or uniformly spread ones)."""
        p = plan.params
        n_fine, middle = p["num_fine"], p["middle_grid"]
        if importance is None:
            order = uniform_indices(num_frames, n_fine) if n_fine else []
            chosen = set(order)
            order += [i for i in range(num_frames) if i not in chosen]
        else:
            order = sorted(range(num_frames), key=lambda i: (-importance[i], i))
        grids = [p["coarse_grid"]] * num_frames
        for i in order[:n_fine]:
            grids[i] = p["fine_grid"]
        if middle is not None and n_fine < num_frames:
            grids[order[n_fine]] = middle
        return grids

    def run(self, x, plan, scores=None):
        if scores is None:
            return _pool_frames(x, self.frame_grids(plan, x.shape[1]))
        importance = scores.float().sum(dim=(2, 3))
        outs = [
            _pool_frames(x[i : i + 1], self.frame_grids(plan, x.shape[1], importance[i].tolist()))
            for i in range(x.shape[0])
        ]
        return Output(
            *(torch.cat(parts, dim=0) for parts in zip(*((o.tokens, o.assign, o.weight) for o in outs)))
        )


def _pool_frames(x: torch.Tensor, grids: list[tuple[int, int]]) -> Output:
    """Pool frame ``i`` of ``[B, T, H, W, C]`` to ``grids[i]``; tokens ``[B, Σ h_i·w_i, C]`` in time order."""
    b, t, h, w, _ = x.shape
    dev = x.device
    pieces = []
    start = 0
    # Runs of consecutive frames with the same grid are pooled as one view: no gathered copies.
    for end in range(1, t + 1):
        if end == t or grids[end] != grids[start]:
            pieces.append(pool_grid(x[:, start:end], grids[start]).flatten(1, 3))
            start = end
    tokens = torch.cat(pieces, dim=1)
    # Provenance once per distinct grid (at most three), written to its frames with index ops:
    # a per-frame loop costs a dozen kernel launches a frame on a GPU.
    offsets = [0]
    for grid in grids[:-1]:
        offsets.append(offsets[-1] + grid[0] * grid[1])
    assign = torch.empty(t, h, w, dtype=torch.long, device=dev)
    weight = torch.empty(t, h, w, device=dev)
    for grid in dict.fromkeys(grids):
        frames = [i for i, g in enumerate(grids) if g == grid]
        index = torch.tensor(frames, device=dev)
        start = torch.tensor([offsets[i] for i in frames], device=dev).view(-1, 1, 1)
        a, wt = grid_provenance([axis_provenance(h, grid[0], dev), axis_provenance(w, grid[1], dev)], grid)
        assign[index] = a + start
        weight[index] = wt
    return Output(tokens, assign.expand(b, t, h, w).clone(), weight.expand(b, t, h, w).clone())
