"""``temporal_merge``: merge a patch into the same patch of an earlier frame when they are alike."""

from __future__ import annotations

import torch

from vidpool.compression.budget import check_budget
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["TemporalMerge", "merge_runs"]

_CHUNK = 8  # frames handled at a time, so no temporary is as large as the input


def _norms(x: torch.Tensor) -> torch.Tensor:
    """L2 norm of every token: ``[B, T, H, W]`` float32, computed a few frames at a time."""
    return torch.cat(
        [
            torch.linalg.vector_norm(x[:, s : s + _CHUNK].float(), dim=-1)
            for s in range(0, x.shape[1], _CHUNK)
        ],
        dim=1,
    )


def _adjacent_similarity(x: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each patch to the same patch one frame earlier: ``[B, T-1, H, W]`` float32."""
    norms = _norms(x)
    last = x.shape[1] - 1
    dots = []
    for s in range(0, last, _CHUNK):
        e = min(s + _CHUNK, last)
        dots.append(torch.linalg.vecdot(x[:, s + 1 : e + 1].float(), x[:, s:e].float(), dim=-1))
    return torch.cat(dots, dim=1) / (norms[:, 1:] * norms[:, :-1]).clamp_min(1e-12)


def _anchored_keep(x: torch.Tensor, threshold: float) -> torch.Tensor:
    """Keep mask ``[B, T, H, W]``: a patch is merged when its cosine similarity to the same patch of the
    last kept frame (the anchor) is above ``threshold``."""
    norms = _norms(x)
    keep = torch.ones(x.shape[:4], dtype=torch.bool, device=x.device)
    anchor, anchor_norm = x[:, 0].float(), norms[:, 0]
    for t in range(1, x.shape[1]):
        frame = x[:, t].float()
        cos = torch.linalg.vecdot(frame, anchor, dim=-1) / (norms[:, t] * anchor_norm).clamp_min(1e-12)
        new = cos <= threshold
        keep[:, t] = new
        # lerp with a 0/1 weight is exact and stays on the vectorised path (where() with a mask
        # broadcast over channels does not).
        anchor = torch.lerp(anchor, frame, new.unsqueeze(-1).float())
        anchor_norm = torch.where(new, norms[:, t], anchor_norm)
    return keep


def merge_runs(x: torch.Tensor, keep: torch.Tensor) -> Output:
    """Average each kept patch with the merged patches after it at the same position.

    Args:
        x: ``[B, T, H, W, C]``.
        keep: bool ``[B, T, H, W]``, true at frame 0 and wherever a new token starts.

    Returns:
        ``Output`` with tokens ``[B, N, C]`` ordered by (start frame, row, column), ``N`` the largest
        count in the batch; shorter items are zero-padded and ``mask`` marks real tokens.

    Runs are summed frame by frame in a ``[B, H, W, C]`` accumulator; a run's sum is emitted when it
    ends, so nothing larger than one frame and the output is ever allocated.
    """
    b, t, h, w, c = x.shape
    counts = keep.flatten(1).sum(1)
    n = int(counts.max())
    ids = keep.flatten(1).long().cumsum(1).sub_(1).view(b, t, h, w)
    # Merged positions take the id of the latest kept position before them at the same patch.
    ids = torch.where(keep, ids, torch.full_like(ids, -1)).cummax(dim=1).values
    flat = ids + (torch.arange(b, device=x.device) * n).view(b, 1, 1, 1)
    acc_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    sizes = torch.bincount(flat.reshape(-1), minlength=b * n).clamp_min(1)
    total = torch.zeros(b * n, c, dtype=acc_dtype, device=x.device)
    acc = None
    for i in range(t):
        frame = x[:, i].to(acc_dtype)
        acc = frame if acc is None else torch.lerp(acc + frame, frame, keep[:, i].unsqueeze(-1).to(acc_dtype))
        ends = keep[:, i + 1] if i + 1 < t else torch.ones_like(keep[:, i])
        # In place is autograd-safe here: index_copy_'s backward needs only the indices.
        total.index_copy_(0, flat[:, i][ends], acc[ends])
    tokens = total.div_(sizes.unsqueeze(1).to(acc_dtype)).to(x.dtype).view(b, n, c)
    weight = (1.0 / sizes.float())[flat]
    mask = None
    if bool((counts != n).any()):
        mask = torch.arange(n, device=x.device).unsqueeze(0) < counts.unsqueeze(1)
    return Output(tokens, ids, weight, mask)


@register
class TemporalMerge(Method):
    """Training-free temporal merging in the spirit of DyCoke and FrameFusion.

    * ``threshold=τ`` (default 0.9): going forward in time, a patch whose cosine similarity to the same
      patch of the last kept frame is above ``τ`` is merged into that token (the token is the running
      mean of the patches merged into it), so static scenes cost almost nothing. The count depends on the
      content: :meth:`plan` (and so ``num_output_tokens``) returns the upper bound ``T·H·W`` with
      ``exact=False``; in a batch, items are zero-padded to the longest and ``Compressed.mask`` is set.
    * ``budget=N`` (at least ``H·W``: the first frame cannot merge): the patches most similar to the same
      patch of the frame before are merged first, until exactly ``N`` tokens remain.
    """

    name = "temporal_merge"
    budget_replaces = ("threshold",)
    summary = (
        "merge each patch into the same patch of the previous kept frame when similar (DyCoke, FrameFusion)"
    )

    def resolve(self, shape, budget=None, *, threshold=None):
        t, h, w = shape
        total = t * h * w
        if budget is not None:
            if threshold is not None:
                raise InvalidArgumentError("give temporal_merge either threshold= or budget=, not both")
            check_budget(self.name, budget, h * w, shape)
            return MethodPlan(min(budget, total), {"budget": min(budget, total), "threshold": None})
        threshold = 0.9 if threshold is None else float(threshold)
        if not -1.0 <= threshold <= 1.0:
            raise InvalidArgumentError(f"threshold is a cosine similarity in [-1, 1], got {threshold}")
        return MethodPlan(total, {"budget": None, "threshold": threshold}, exact=False)

    def run(self, x, plan, scores=None):
        b, t, h, w, _ = x.shape
        with torch.no_grad():
            if plan.params["budget"] is None:
                keep = _anchored_keep(x, plan.params["threshold"])
            else:
                keep = torch.ones(b, t, h, w, dtype=torch.bool, device=x.device)
                n_merge = t * h * w - plan.params["budget"]
                if n_merge > 0:
                    sim = _adjacent_similarity(x).flatten(1)
                    top = sim.topk(n_merge, dim=1).indices
                    merged = torch.zeros_like(sim, dtype=torch.bool).scatter_(1, top, True)
                    keep[:, 1:] = ~merged.view(b, t - 1, h, w)
        return merge_runs(x, keep)
