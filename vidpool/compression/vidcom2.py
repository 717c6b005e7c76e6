"""``vidcom2``: VidCom² (Liu et al., EMNLP 2025), frame-uniqueness budgets and per-frame token pruning.

"Video Compression Commander: Plug-and-Play Inference Acceleration for Video Large Language Models"
(arXiv 2505.14454). Two stages, from the embeddings alone (no attention maps, so SDPA and
FlashAttention paths are untouched):

1. *Frame compression adjustment.* Frame ``t``'s global feature is the mean of its patch tokens,
   ``f_t = mean_i x_{t,i}``; the video's is ``g = mean_t f_t``. A frame's uniqueness is
   ``u_t = -cos(f_t, g)``, turned into ``σ = softmax(u / τ)`` and a share of the budget
   ``N/T · (1 + σ_t − 1/T)``: frames less like the video get more tokens, the shares sum to ``N``.
2. *Adaptive token compression.* A token's similarity to its frame and its video is
   ``s_{t,i} = cos(x_{t,i}, f_t) + cos(x_{t,i}, g)``; each frame keeps its ``k_t`` tokens of lowest
   ``s`` (the most unique).
"""

from __future__ import annotations

import torch

from vidpool.compression.budget import check_budget
from vidpool.compression.keep import keep_positions, keep_ratio
from vidpool.compression.registry import Method, MethodPlan, register
from vidpool.errors import InvalidArgumentError

__all__ = ["VidCom2", "frame_budgets", "uniqueness"]

_CHUNK = 8  # frames scored at a time, so no temporary is as large as the input
_EPS = 1e-12


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity over the last axis (broadcasting); 0 where either vector is zero."""
    norms = torch.linalg.vector_norm(a, dim=-1) * torch.linalg.vector_norm(b, dim=-1)
    return torch.linalg.vecdot(a, b.expand_as(a), dim=-1) / norms.clamp_min(_EPS)


def uniqueness(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame uniqueness ``u`` ``[B, T]`` and token similarity ``s`` ``[B, T, H·W]`` of ``[B, T, H, W, C]``.

    ``u_t = -cos(f_t, g)`` and ``s_{t,i} = cos(x_{t,i}, f_t) + cos(x_{t,i}, g)`` (see the module), in
    float32 (float64 for float64 input), scored a few frames at a time.
    """
    dtype = torch.promote_types(x.dtype, torch.float32)
    frames = x.mean(dim=(2, 3), dtype=dtype)  # [B, T, C]
    video = frames.mean(1, keepdim=True)  # [B, 1, C]
    sims = []
    for s in range(0, x.shape[1], _CHUNK):
        tokens = x[:, s : s + _CHUNK].flatten(2, 3).to(dtype)  # [B, t, HW, C]
        f = frames[:, s : s + _CHUNK].unsqueeze(2)
        sims.append(_cos(tokens, f) + _cos(tokens, video.unsqueeze(2)))
    return -_cos(frames, video), torch.cat(sims, dim=1)


def frame_budgets(share: torch.Tensor, total: int, cap: int) -> torch.Tensor:
    """Whole per-frame budgets ``[B, T]`` from real shares ``[B, T]`` that sum to ``total``.

    Each frame starts from ``⌊share⌋`` clamped to ``[1, cap]``; the tokens still to give then go one
    at a time to the frame furthest below its share (``share − k`` largest, ties to the earlier
    frame) that is under ``cap``; when the floor of 1 overspent, tokens are taken back one at a time
    from the frame furthest above its share that has more than one. Without clamping this is the
    largest-remainder rule. Needs ``T <= total <= T·cap``.

    The one-at-a-time picks are done at once: the ``j``-th extra token of frame ``t`` is worth
    ``share_t − k_t − j`` when it is picked, so the picks are the ``|missing|`` best of those values.
    """
    k = share.floor().clamp(1, cap).long()
    missing = total - k.sum(1)  # [B]
    if not bool(missing.any()):
        return k
    steps = torch.arange(min(int(missing.abs().max()), cap), device=k.device)
    give = (missing > 0).unsqueeze(1)  # [B, 1]
    over = (k - share).unsqueeze(-1)
    value = torch.where(give.unsqueeze(-1), -over - steps, over - steps)
    room = torch.where(give, cap - k, k - 1).unsqueeze(-1)
    value = value.masked_fill(steps >= room, float("-inf")).flatten(1)  # [B, T·J], frame-major
    order = value.argsort(dim=1, descending=True, stable=True)  # stable: ties to the earlier frame
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1], device=k.device).expand_as(order)
    )
    picked = (rank < missing.abs().unsqueeze(1)).view(*k.shape, -1).sum(-1)
    return k + picked * missing.sign().unsqueeze(1)


@register
class VidCom2(Method):
    """VidCom²: a budget split over frames by their uniqueness, then each frame's most unique tokens.

    * ``budget=N`` keeps exactly ``N`` tokens (``min(N, T·H·W)``); ``N < T`` raises ``BudgetError``
      with ``min_budget = T``, as every frame keeps at least one token. Without a budget ``ratio``
      (default 0.25, the paper's headline setting) of the tokens are kept, at least one per frame.
    * ``temperature`` (default 0.01, the authors' code) sharpens the softmax over frame uniqueness; a
      large one gives every frame the same share.
    * Frame ``t`` gets ``N/T · (1 + σ_t − 1/T)`` tokens rounded by largest remainders to whole tokens in
      ``[1, H·W]`` that sum to ``N`` (:func:`frame_budgets`: what a full frame cannot take goes to the
      frames furthest below their share); within a frame ties keep the earlier position. Output
      tokens are time-major; a kept token is the input at its position.

    Choices of this port: uniqueness is cosine similarity on the full embeddings, as the paper writes
    it. The authors' released code instead scores with a sum of Gaussian kernels (widths 2^-3..2)
    on the unit-normalised half of the channels of lowest variance, and frame uniqueness from the
    mean token-to-video similarity; their per-frame counts are rounded ratios that need not sum to
    the budget, whereas here they sum to it exactly.
    """

    name = "vidcom2"
    budget_replaces = ("ratio",)
    summary = "VidCom²: per-frame budgets by frame uniqueness, keep each frame's most unique tokens (pruning)"

    def resolve(self, shape, budget=None, *, ratio=None, temperature=0.01):
        t, h, w = shape
        total = t * h * w
        temperature = float(temperature)
        if not temperature > 0:
            raise InvalidArgumentError(f"vidcom2 temperature must be positive, got {temperature}")
        ratio = keep_ratio(self.name, budget, ratio, 0.25)
        if budget is not None:
            check_budget(self.name, budget, t, shape)
        else:
            budget = max(t, round(ratio * total))
        n = min(budget, total)
        return MethodPlan(n, {"budget": n, "temperature": temperature})

    def run(self, x, plan, scores=None):
        b, t, h, w, _ = x.shape
        n, tau = plan.params["budget"], plan.params["temperature"]
        with torch.no_grad():
            frame_u, token_s = uniqueness(x.detach())
            sigma = torch.softmax(frame_u.double() / tau, dim=1)
            share = n / t * (1 + sigma - 1 / t)
            k = frame_budgets(share, n, h * w)  # [B, T]
            order = token_s.argsort(dim=-1, stable=True)  # most unique first
            rank = torch.empty_like(order).scatter_(
                -1, order, torch.arange(h * w, device=x.device).expand_as(order)
            )
            keep = (rank < k.unsqueeze(-1)).flatten(1)  # [B, T·H·W], exactly n per row
            positions = keep.nonzero()[:, 1].view(b, n)  # ascending: time-major
        return keep_positions(x, positions)
