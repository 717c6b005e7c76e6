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
from vidpool.compression.keep import keep_positions, keep_ratio
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["DEFAULT_RATIO", "DivPrune", "max_min_diverse", "nearest_other_distance"]

#: Share of tokens kept without a budget: the official DivPrune code's retained ratio (0.098, ~10%).
DEFAULT_RATIO = 0.098
# Similarities computed at once in the first pick: 2**23 float32 values are 32 MiB.
_BLOCK_ELEMENTS = 1 << 23
_EPS = 1e-12


def _inverse_norms(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``1 / ‖x_i‖`` of every row of ``[G, n, C]`` in ``dtype``, a block of rows at a time (no copy of ``x``).

    A zero row gets ``1 / eps``: its cosine to every token is 0, its distance 1.
    """
    g, n, c = x.shape
    rows = max(1, _BLOCK_ELEMENTS // (g * c))
    norms = [torch.linalg.vector_norm(x[:, s : s + rows].to(dtype), dim=-1) for s in range(0, n, rows)]
    return torch.cat(norms, 1).clamp_min(_EPS).reciprocal()


def _cosines(x: torch.Tensor, inv: torch.Tensor, rows: torch.Tensor, rows_inv: torch.Tensor) -> torch.Tensor:
    """Cosines of ``rows`` (``[G, r, C]``, ``1/norm`` ``rows_inv`` ``[G, r]``) to every token: ``[G, r, n]``.

    ``x`` (``[G, n, C]``) is read in place when it is already in the compute dtype; half-precision
    tokens are converted a block of columns at a time, so no float32 copy of the video exists. Dot
    products are scaled by ``inv_i·inv_j`` in one product, so ``cos(i, j)`` and ``cos(j, i)`` round
    alike: the first pick is usually one of a mutual-nearest pair, a tie the lowest index must win.
    """
    g, n, c = x.shape
    dtype = rows_inv.dtype
    if x.dtype == dtype:
        dots = torch.matmul(rows.to(dtype), x.transpose(1, 2))
    else:
        cols = max(1, _BLOCK_ELEMENTS // (g * c))
        x_rows = rows.to(dtype)
        dots = torch.cat(
            [torch.matmul(x_rows, x[:, s : s + cols].to(dtype).transpose(1, 2)) for s in range(0, n, cols)],
            -1,
        )
    return dots.mul_(rows_inv.unsqueeze(-1) * inv.unsqueeze(1))


def nearest_other_distance(x: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Cosine distance of each token to its nearest other token of its group.

    Args:
        x: ``[G, n, C]`` tokens (``G`` groups of ``n`` tokens compared within their group).
        inv: ``[G, n]`` their inverse norms in the compute dtype (:func:`_inverse_norms`).

    Returns:
        ``[G, n]``, ``min_{j≠i} (1 - cos(x_i, x_j))``; ``inf`` when a group has a single token.

    Similarities are computed for a block of rows at a time, ``max(1, 2**23 // (G·n))`` rows of every
    group, so besides the ``[G, n]`` result at most two blocks of ``max(2**23, G·n)`` values exist: memory
    ``O(G·n)``, never ``O(G·n²)``.
    """
    g, n, _ = x.shape
    rows = max(1, _BLOCK_ELEMENTS // (g * n))
    out = torch.empty(g, n, dtype=inv.dtype, device=x.device)
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        sim = _cosines(x, inv, x[:, start:stop], inv[:, start:stop])  # [G, r, n]
        own = torch.arange(start, stop, device=x.device)
        sim[:, own - start, own] = -math.inf  # a token is not its own neighbour
        # 1 - max(sim) == min(1 - sim) exactly: rounding is monotone.
        out[:, start:stop] = 1 - sim.amax(-1)
    return out


def max_min_diverse(x: torch.Tensor, count: int, dtype: torch.dtype) -> torch.Tensor:
    """Greedy Max-Min diversity picks within each group, in the order they are picked.

    Args:
        x: ``[G, n, C]`` tokens, read in place.
        count: picks per group, ``1 <= count <= n``.
        dtype: the dtype distances are computed in.

    Returns:
        long ``[G, count]`` indices into ``n``; the first ``k`` picks are the ``k``-pick answer.

    After the first pick (:func:`nearest_other_distance`) one ``[G, n]`` vector holds each token's
    distance to its nearest kept token; every pick costs one matrix-vector product per group to update
    it (time ``O(G·n·C·count)``, memory ``O(G·n)``). Kept tokens are set to ``-inf`` so they are never
    picked again, even when they duplicate others.
    """
    g, n, _ = x.shape
    groups = torch.arange(g, device=x.device)
    inv = _inverse_norms(x, dtype)
    picks = torch.empty(g, count, dtype=torch.long, device=x.device)
    pick = nearest_other_distance(x, inv).argmax(-1)
    nearest = torch.full((g, n), math.inf, dtype=dtype, device=x.device)
    for step in range(count):
        picks[:, step] = pick
        if step + 1 == count:
            break
        chosen = (x[groups, pick].unsqueeze(1), inv[groups, pick].unsqueeze(1))
        sim = _cosines(x, inv, *chosen).squeeze(1)  # [G, n]
        torch.minimum(nearest, 1 - sim, out=nearest)
        nearest[groups, pick] = -math.inf
        pick = nearest.argmax(-1)
    return picks


def frame_counts(count: int, frames: int) -> list[int]:
    """``count`` split over ``frames`` as evenly as possible; the first ``count % frames`` get one more."""
    base, extra = divmod(count, frames)
    return [base + (f < extra) for f in range(frames)]


# The greedy order of the last video seen: a budget sweep over one video (a benchmark, a plot of
# accuracy against tokens) takes prefixes of one order instead of recomputing it. Keyed by the
# video's shape, dtype, device and a float64 fingerprint of its values, so a different video (even one
# at the same address) never matches.
_LAST_ORDER: dict[tuple, torch.Tensor] = {}


def _fingerprint(video: torch.Tensor, per_frame: bool) -> tuple:
    """Shape, dtype, device and three float64 sums of the values (plain, squared, position-weighted),
    a block of rows at a time, so no copy of the video exists."""
    rows = video.detach().reshape(-1, video.shape[-1])
    step = max(1, _BLOCK_ELEMENTS // (8 * rows.shape[1]))
    sums = torch.zeros(3, dtype=torch.float64, device=video.device)
    for start in range(0, rows.shape[0], step):
        block = rows[start : start + step].double()
        ramp = torch.arange(start + 1, start + 1 + block.shape[0], dtype=torch.float64, device=video.device)
        sums += torch.stack([block.sum(), block.square().sum(), (block.sum(-1) * ramp).sum()])
    return (tuple(video.shape), video.dtype, str(video.device), per_frame, *sums.tolist())


def _greedy_order(groups: torch.Tensor, count: int, dtype: torch.dtype, per_frame: bool) -> torch.Tensor:
    """:func:`max_min_diverse` of ``groups`` ``[G, n, C]``, reusing the last video's order when it is
    this one and holds at least ``count`` picks (the first ``k`` picks are the ``k``-pick answer)."""
    key = _fingerprint(groups, per_frame)
    cached = _LAST_ORDER.get(key)
    if cached is not None and cached.shape[1] >= count:
        return cached[:, :count]
    picks = max_min_diverse(groups, count, dtype)
    _LAST_ORDER.clear()
    _LAST_ORDER[key] = picks
    return picks


def _video_keep(video: torch.Tensor, count: int, per_frame: bool) -> torch.Tensor:
    """Kept flat positions of one ``[T, H, W, C]`` video, ascending: long ``[count]``."""
    t, h, w, c = video.shape
    total = t * h * w
    if count >= total:
        return torch.arange(total, device=video.device)
    dtype = torch.float32 if video.dtype in (torch.float16, torch.bfloat16) else video.dtype
    if not per_frame:
        return _greedy_order(video.detach().reshape(1, total, c), count, dtype, False)[0].sort().values
    counts = torch.tensor(frame_counts(count, t), device=video.device)
    picks = _greedy_order(video.detach().reshape(t, h * w, c), int(counts.max()), dtype, True)  # [T, k_max]
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

    Cost per video (``N = T·H·W``): time ``O(N²·C)`` for the first pick and ``O(N·C)`` per later one;
    memory ``O(N)`` besides the output: the tokens are read in place (never copied), and at most
    two blocks of ``max(2**23, N)`` similarities exist while the first token is picked; no ``N × N``
    matrix. float16/bfloat16 tokens are compared in float32 (float64 in float64).
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
        ratio = keep_ratio(self.name, budget, ratio, DEFAULT_RATIO)
        if budget is not None:
            if per_frame:
                check_budget(self.name, budget, t, shape)
            count = min(budget, total)
        else:
            count = max(t if per_frame else 1, min(total, math.floor(ratio * total + 0.5)))
        return MethodPlan(count, {"count": count, "per_frame": per_frame, "ratio": ratio})

    def run(self, x: torch.Tensor, plan: MethodPlan, scores: torch.Tensor | None = None) -> Output:
        count, per_frame = plan.params["count"], plan.params["per_frame"]
        with torch.no_grad():
            keep = torch.stack([_video_keep(video, count, per_frame) for video in x])
        return keep_positions(x, keep)
