"""``fastvid``: FastVID's dynamic segmentation and density-based token merging (Shen et al., NeurIPS 2025).

FastVID ("Dynamic Density Pruning for Fast Video Large Language Models") has two stages; this module
follows the authors' released code (github.com/LunarShen/FastVID) for both:

* **DySeg.** Each frame's global feature ``g_t`` is compared with the next one by cosine similarity
  ``s_t = cos(g_t, g_{t+1})``. A segment ends after frame ``t`` when ``s_t < τ`` or when ``s_t`` is one of
  the ``c - 1`` lowest similarities, so there are at least ``min(c, T)`` segments of consecutive frames.
  The paper's ``g_t`` is the vision tower's [CLS] token; vidpool holds patch tokens only, so ``g_t`` is
  the mean of frame ``t``'s patch tokens.
* **STPrune / DTM (density-based token merging).** Inside a segment of ``L`` frames, the anchor frames
  are every ``p``-th frame counted back from its last frame (``(L - 1 - i) % p == 0``). Each frame's
  tokens get a DPC-kNN score from distances ``d_ij = ‖x_i − x_j‖ / √C`` within the frame: density
  ``ρ_i = exp(−mean of d_ij² over the k nearest tokens, i itself included)``, ``δ_i`` = the distance to
  the nearest denser token (the largest distance of the frame for the densest one), score ``ρ_i·δ_i``.
  An anchor frame's highest-scoring tokens are the segment's anchors; every token of the segment goes to
  the anchor it is most cosine-similar to (an anchor always to itself), and an anchor with ``n`` members
  becomes ``β·anchor + (1 − β)·mean(members)`` with ``β = max(0.6, 1/(n + 1))`` (the code's
  ``DTM_beta``; the anchor is one of its members). Output tokens are in time-major order of their anchors.

What differs from the paper, and why:

* **No attention-based selection (ATS).** The paper spends 60% of each frame's retention (``d = 0.4`` is
  the merged share) on the tokens the vision tower's [CLS] attends to most. vidpool has no attention
  maps, so the whole retention goes to density-based merging: every input token feeds exactly one
  output token (``assign`` is never -1).
* **Exact counts.** ``ratio`` (default 0.10, the authors' evaluation setting) keeps
  ``max(1, ⌊H·W·ratio⌋)`` tokens per frame, ``T`` times that in all; ``budget=N`` keeps exactly ``N``.
  Segments are only known at run time, so the count is split there: each segment first gets one anchor,
  the rest goes to segments in proportion to their frame counts (largest remainders, ties to earlier
  segments); inside a segment the anchor frames share it evenly (remainders to the later ones) and what
  an anchor frame cannot hold (``H·W``) spills evenly to the segment's other frames. Without a budget
  this is the paper's ``frames × per-frame retention`` per segment, split over its anchor frames (the
  paper floors that split and loses the remainder; here it is kept).
* Since a run may give every frame its own segment, a budget must be at least ``T`` (``BudgetError``
  with ``min_budget = T``); a budget of ``T·H·W`` or more keeps every token.
* Ties (equal densities, equal scores, equal similarities) go to the lower index instead of the
  paper's random jitter, so a batch gives exactly what a loop over its videos gives.
"""

from __future__ import annotations

import math
from itertools import pairwise

import torch

from vidpool.compression.budget import check_budget
from vidpool.compression.keep import keep_ratio
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["FastVID", "density_scores", "dyseg", "split_count"]

# The authors' released defaults (lmms-eval model arguments and scripts/eval.sh).
RATIO, C_SEGMENTS, TAU, P_ANCHOR, BETA, K_NEIGHBOURS = 0.10, 8, 0.9, 4, 0.6, 4


def dyseg(frames: torch.Tensor, c: int, tau: float) -> list[int]:
    """Segment lengths (in frame order, summing to ``T``) of one video's frame features ``frames [T, C]``.

    A cut follows frame ``t`` when ``cos(frames[t], frames[t+1]) < tau`` or when that similarity is among
    the ``c - 1`` lowest (lower index first on ties).
    """
    t = frames.shape[0]
    if t == 1:
        return [1]
    g = frames / torch.linalg.vector_norm(frames, dim=-1, keepdim=True).clamp_min(1e-12)
    sims = (g[:-1] * g[1:]).sum(-1)
    order = torch.sort(sims, stable=True).indices[: min(c - 1, t - 1)]
    cuts = set(order.tolist()) | set(torch.nonzero(sims < tau).flatten().tolist())
    bounds = [-1, *sorted(cuts), t - 1]
    return [b - a for a, b in pairwise(bounds)]


def density_scores(tokens: torch.Tensor, k: int = K_NEIGHBOURS) -> torch.Tensor:
    """DPC-kNN score ``ρ·δ`` of every token of each frame: ``tokens [F, N, C]`` → ``[F, N]``.

    ``d_ij = ‖x_i − x_j‖/√C``; ``ρ_i = exp(−mean of the k smallest d_ij²)`` (``j = i`` included);
    ``δ_i = min d_ij`` over denser tokens ``j`` (``ρ_j > ρ_i``, or equal with ``j < i``), and the frame's
    largest distance for its densest token.
    """
    n, c = tokens.shape[1], tokens.shape[2]
    dist = torch.cdist(tokens, tokens) / math.sqrt(c)
    near = dist.topk(min(k, n), dim=-1, largest=False).values
    rho = torch.exp(-(near**2).mean(-1))
    idx = torch.arange(n, device=tokens.device)
    denser = (rho[:, None, :] > rho[:, :, None]) | (
        (rho[:, None, :] == rho[:, :, None]) & (idx[None, :] < idx[:, None])
    )
    far = dist.flatten(1).max(-1).values[:, None, None]
    delta = torch.where(denser, dist, far).min(-1).values
    return rho * delta


def split_count(total: int, weights: list[int], caps: list[int]) -> list[int]:
    """Split ``total`` over slots in proportion to ``weights`` (largest remainders, earlier slots first on
    ties), no slot above its cap; what a full slot cannot take goes to the others the same way.
    ``total <= sum(caps)``."""
    out = [0] * len(weights)
    open_ = [i for i in range(len(weights)) if caps[i] > 0]
    left = total
    while left > 0:
        wsum = sum(weights[i] for i in open_)
        share = {i: left * weights[i] / wsum for i in open_}
        for i in open_:
            out[i] += min(int(share[i]), caps[i] - out[i])
        rest = total - sum(out)
        by_rem = sorted(open_, key=lambda i: (-(share[i] - int(share[i])), i))
        for i in by_rem:
            if rest == 0:
                break
            if out[i] < caps[i]:
                out[i] += 1
                rest -= 1
        open_ = [i for i in open_ if out[i] < caps[i]]
        left = rest
    return out


def _even(total: int, slots: int, cap: int) -> list[int]:
    """``total`` over ``slots`` slots as evenly as possible, remainders to the last ones."""
    return split_count(total, [1] * slots, [cap] * slots)[::-1]


def _plan_video(x: torch.Tensor, count: int, c: int, tau: float, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One video ``x [T, H·W, C]`` (float32/float64): ``(assign [T·H·W], weight [T·H·W])`` of ``count`` tokens."""
    t, n, _ = x.shape
    lengths = dyseg(x.mean(1), c, tau)
    seg_counts = [1 + s for s in split_count(count - len(lengths), lengths, [ln * n - 1 for ln in lengths])]
    assign = torch.empty(t * n, dtype=torch.long, device=x.device)
    weight = torch.empty(t * n, dtype=torch.float32, device=x.device)
    anchors_all, start = [], 0
    for length, k_seg in zip(lengths, seg_counts):
        frames = list(range(start, start + length))
        is_anchor = [(length - 1 - i) % p == 0 for i in range(length)]
        anchor_frames = [f for f, a in zip(frames, is_anchor) if a]
        others = [f for f, a in zip(frames, is_anchor) if not a]
        quota = dict(zip(anchor_frames, _even(min(k_seg, len(anchor_frames) * n), len(anchor_frames), n)))
        spill = k_seg - sum(quota.values())
        if spill:
            quota.update(zip(others, _even(spill, len(others), n)))
        chosen = [f for f in frames if quota.get(f, 0) > 0]
        scores = torch.cat([density_scores(x[chosen[i : i + 8]]) for i in range(0, len(chosen), 8)])
        picks = []
        for row, f in enumerate(chosen):
            top = torch.sort(-scores[row], stable=True).indices[: quota[f]]
            picks.append(f * n + top.sort().values)
        anchors = torch.cat(picks)  # flat positions, ascending
        flat = x.reshape(t * n, -1)
        unit = flat[anchors] / torch.linalg.vector_norm(flat[anchors], dim=-1, keepdim=True).clamp_min(1e-12)
        for f in frames:  # one frame at a time: no [segment tokens × anchors] temporary
            tok = x[f] / torch.linalg.vector_norm(x[f], dim=-1, keepdim=True).clamp_min(1e-12)
            assign[f * n : (f + 1) * n] = (tok @ unit.T).argmax(-1)  # argmax: first index on ties
        local = torch.arange(len(anchors), device=x.device)
        assign[anchors] = local  # an anchor is always its own member
        seg = slice(start * n, (start + length) * n)
        members = torch.bincount(assign[seg], minlength=len(anchors)).float()
        beta = torch.clamp(1.0 / (members + 1.0), min=BETA)
        weight[seg] = ((1.0 - beta) / members)[assign[seg]]
        weight[anchors] += beta
        assign[seg] += sum(len(a) for a in anchors_all)
        anchors_all.append(anchors)
        start += length
    # Output order: time-major by anchor position (segments are in time order already).
    return assign, weight


@register
class FastVID(Method):
    """FastVID (Shen et al., NeurIPS 2025): dynamic temporal segments, density-peak anchors, merging.

    Parameters: ``ratio`` (retention per frame, default 0.10), ``c`` (at least this many segments,
    default 8), ``tau`` (similarity below which frames are cut apart, default 0.9), ``p`` (anchor frame
    interval, default 4). ``budget=N`` (at least ``T``) replaces ``ratio`` and gives exactly ``N``
    tokens. See the module docstring for what follows the paper and what could not.
    """

    name = "fastvid"
    budget_replaces = ("ratio",)
    summary = (
        "dynamic temporal segments, then density-peak anchor tokens with tokens merged into them (FastVID)"
    )

    def resolve(self, shape, budget=None, *, ratio=None, c=C_SEGMENTS, tau=TAU, p=P_ANCHOR):
        t, h, w = shape
        total = t * h * w
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise InvalidArgumentError(f"c is the least number of segments, a positive integer, got {c!r}")
        if isinstance(p, bool) or not isinstance(p, int) or p < 1:
            raise InvalidArgumentError(f"p is the anchor frame interval, a positive integer, got {p!r}")
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not -1.0 <= tau <= 1.0:
            raise InvalidArgumentError(f"tau is a cosine similarity in [-1, 1], got {tau!r}")
        ratio = keep_ratio(self.name, budget, ratio, RATIO)
        if budget is not None:
            check_budget(self.name, budget, t, shape)
            count = min(budget, total)
        else:
            count = t * max(1, int(h * w * ratio))
        return MethodPlan(count, {"count": count, "c": c, "tau": float(tau), "p": p})

    def run(self, x, plan, scores=None):
        b, t, h, w, ch = x.shape
        pr = plan.params
        work = torch.float64 if x.dtype == torch.float64 else torch.float32
        with torch.no_grad():
            found = [
                _plan_video(
                    x[i].detach().reshape(t, h * w, ch).to(work), pr["count"], pr["c"], pr["tau"], pr["p"]
                )
                for i in range(b)
            ]
        assign = torch.stack([a for a, _ in found])
        weight = torch.stack([wt for _, wt in found])
        tokens = x.new_zeros(b, pr["count"], ch, dtype=work)
        for f in range(t):  # a frame at a time: no temporary the size of the input
            rows = slice(f * h * w, (f + 1) * h * w)
            part = x[:, f].reshape(b, h * w, ch).to(work) * weight[:, rows, None].to(work)
            tokens = tokens.scatter_add(1, assign[:, rows, None].expand(-1, -1, ch), part)
        return Output(tokens.to(x.dtype), assign.view(b, t, h, w), weight.view(b, t, h, w))
