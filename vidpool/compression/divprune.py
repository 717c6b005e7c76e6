"""``divprune``: keep the most diverse tokens (DivPrune, Alvar et al., CVPR 2025).

DivPrune casts pruning as the Max-Min Diversity Problem: keep ``k`` tokens whose smallest pairwise
cosine distance ``d(i, j) = 1 - cos(x_i, x_j)`` is as large as possible, solved greedily:

1. the first token is the one whose nearest other token is farthest, ``argmax_i min_{j≠i} d(i, j)``;
2. each next token is the one farthest from its nearest kept token, ``argmax_{i∉S} min_{s∈S} d(i, s)``.

Ties go to the lowest flat index (``torch.argmax`` returns the first maximum on CPU and CUDA), so a
selection is deterministic.
"""

from __future__ import annotations

import math

import torch

from vidpool.compression.budget import check_budget
from vidpool.compression.keep import keep_positions
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["DEFAULT_RATIO", "DivPrune", "max_min_diverse", "nearest_other_distance"]

#: Share of tokens kept without a budget: the official DivPrune code's retained ratio (0.098, ~10%).
DEFAULT_RATIO = 0.098
# Similarities computed at once in the first pick: 2**24 float32 values are 64 MiB.
_BLOCK_ELEMENTS = 1 << 24
_EPS = 1e-12


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` scaled to unit L2 norm (a zero row stays zero: cosine 0, distance 1, to all)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(_EPS)


def nearest_other_distance(u: torch.Tensor) -> torch.Tensor:
    """Cosine distance of each token to its nearest other token of its group.

    Args:
        u: ``[G, n, C]`` unit-norm rows (``G`` groups of ``n`` tokens compared within their group).

    Returns:
        ``[G, n]``, ``min_{j≠i} (1 - u_i·u_j)``; ``inf`` when a group has a single token.

    Similarities are computed for a block of rows at a time, ``max(1, 2**24 // (G·n))`` rows of every
    group, so besides the ``[G, n]`` result at most ``max(2**24, G·n)`` values are held at once: memory
    ``O(G·n)``, never ``O(G·n²)``.
    """
    g, n, _ = u.shape
    rows = max(1, _BLOCK_ELEMENTS // (g * n))
    out = torch.empty(g, n, dtype=u.dtype, device=u.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        sim = torch.matmul(u[:, start:stop], u.transpose(1, 2))  # [G, r, n]
        own = torch.arange(start, stop, device=u.device)
        sim[:, own - start, own] = -math.inf  # a token is not its own neighbour
        # 1 - max(sim) == min(1 - sim) exactly: rounding is monotone.
        out[:, start:stop] = 1 - sim.amax(-1)
    return out


def max_min_diverse(u: torch.Tensor, count: int) -> torch.Tensor:
    """Greedy Max-Min diversity picks within each group, in the order they are picked.

    Args:
        u: ``[G, n, C]`` unit-norm rows.
        count: picks per group, ``1 <= count <= n``.

    Returns:
        long ``[G, count]`` indices into ``n``; the first ``k`` picks are the ``k``-pick answer.

    After the first pick (:func:`nearest_other_distance`) one ``[G, n]`` vector holds each token's
    distance to its nearest kept token; every pick costs one matrix-vector product per group to update
    it (time ``O(G·n·C·count)``, memory ``O(G·n)``). Kept tokens are set to ``-inf`` so they are never
    picked again, even when they duplicate others.
    """
    g, n, _ = u.shape
    groups = torch.arange(g, device=u.device)
    picks = torch.empty(g, count, dtype=torch.long, device=u.device)
    pick = nearest_other_distance(u).argmax(-1)
    nearest = torch.full((g, n), math.inf, dtype=u.dtype, device=u.device)
    for step in range(count):
        picks[:, step] = pick
        if step + 1 == count:
            break
        sim = torch.bmm(u, u[groups, pick].unsqueeze(-1)).squeeze(-1)  # [G, n]
        torch.minimum(nearest, 1 - sim, out=nearest)
        nearest[groups, pick] = -math.inf
        pick = nearest.argmax(-1)
    return picks


def frame_counts(count: int, frames: int) -> list[int]:
    """``count`` split over ``frames`` as evenly as possible; the first ``count % frames`` get one more."""
    base, extra = divmod(count, frames)
    return [base + (f < extra) for f in range(frames)]


def _video_keep(video: torch.Tensor, count: int, per_frame: bool) -> torch.Tensor:
    """Kept flat positions of one ``[T, H, W, C]`` video, ascending: long ``[count]``."""
    t, h, w, c = video.shape
    total = t * h * w
    if count >= total:
        return torch.arange(total, device=video.device)
    dtype = torch.float32 if video.dtype in (torch.float16, torch.bfloat16) else video.dtype
    if not per_frame:
        u = _unit_rows(video.detach().reshape(1, total, c).to(dtype))
        return max_min_diverse(u, count)[0].sort().values
    counts = torch.tensor(frame_counts(count, t), device=video.device)
    u = _unit_rows(video.detach().reshape(t, h * w, c).to(dtype))
    picks = max_min_diverse(u, int(counts.max()))  # [T, k_max]
    picks = picks + (torch.arange(t, device=video.device) * (h * w)).unsqueeze(1)
    wanted = torch.arange(picks.shape[1], device=video.device).unsqueeze(0) < counts.unsqueeze(1)
    return picks[wanted].sort().values


@register
class DivPrune(Method):
    """Keep the ``k`` most diverse tokens of each video (DivPrune, Alvar et al., CVPR 2025).

    Greedy Max-Min diversity over cosine distance (see the module docstring) across all ``T·H·W``
    tokens of a video; the kept tokens are output in time-major order, each the input at its position.

    * ``budget=N``: exactly ``min(N, T·H·W)`` tokens.
    * no budget: ``ratio`` of the tokens (default :data:`DEFAULT_RATIO`, 0.098 as in the official
      code), rounded to the nearest count and at least 1 (at least ``T`` with ``per_frame``).
    * ``per_frame=True``: the selection runs within each frame; the count is split evenly over frames,
      the first ``count % T`` frames keeping one more, so the total is exact. A budget below ``T``
      raises :class:`~vidpool.errors.BudgetError` (``min_budget = T``).

    Cost per video: ``O(N·C·k)`` time and ``O(N·C)`` memory for the unit-norm copy of the tokens
    (``N = T·H·W``), plus at most ``max(2**24, N)`` similarities at once while the first token is picked;
    no ``N × N`` matrix is built. float16/bfloat16 tokens are compared in float32 (float64 in float64).
    Selection is discrete; gradients flow to the kept tokens through the gather.
    """

    name = "divprune"
    budget_replaces = ("ratio",)
    summary = "keep the most diverse tokens by greedy max-min cosine distance (DivPrune)"

    def resolve(self, shape, budget=None, *, ratio=None, per_frame=False):
        t, h, w = shape
        total = t * h * w
        if not isinstance(per_frame, bool):
            raise InvalidArgumentError(f"divprune per_frame must be True or False, got {per_frame!r}")
        if budget is not None:
            if ratio is not None:
                raise InvalidArgumentError("give divprune either ratio= or budget=, not both")
            if per_frame:
                check_budget(self.name, budget, t, shape)
            count = min(budget, total)
        else:
            ratio = DEFAULT_RATIO if ratio is None else ratio
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
                raise InvalidArgumentError(
                    f"divprune ratio is the share of tokens kept, in (0, 1], got {ratio!r}"
                )
            count = max(t if per_frame else 1, min(total, math.floor(ratio * total + 0.5)))
        return MethodPlan(count, {"count": count, "per_frame": per_frame, "ratio": ratio})

    def run(self, x: torch.Tensor, plan: MethodPlan, scores: torch.Tensor | None = None) -> Output:
        count, per_frame = plan.params["count"], plan.params["per_frame"]
        with torch.no_grad():
            keep = torch.stack([_video_keep(video, count, per_frame) for video in x])
        return keep_positions(x, keep)
