"""``attsets``: attention-weighted pooling in spatio-temporal windows (AttSets, Yang et al., IJCV 2019).

AttSets scores each element of a set with a learned function ``g`` that gives one score per channel,
normalises the scores over the set with a softmax *per channel*, and sums the elements weighted by
them. Here a set is one window of ``adaptive``'s ``(t, h, w)`` grid (the same bins, so a budget
resolves into exactly the same grid):

    s_p = g(x_p)                                     (g: Linear-GELU-Linear, C -> C)
    a_{p,c} = exp(s_{p,c}) / sum_{q in window} exp(s_{q,c})
    y_{window,c} = sum_{p in window} a_{p,c} x_{p,c}

Each output channel is a convex combination of the window's inputs in that channel, so the tokens stay
in the features' space (a model reading the features reads them). With ``g``'s last layer at zero the
pooling is ``adaptive``'s average; that is how training starts.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
from torch import nn

from vidpool.compression.adaptive import window_grid
from vidpool.compression.pool import adaptive_bins, axis_provenance, grid_provenance
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.compression.trained import check_width, pooling_module

__all__ = ["AttSets", "AttSetsPool", "window_index", "window_softmax_pool"]


@lru_cache(maxsize=1024)
def _window_index(size: int, out: int) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[bool, ...], ...]]:
    bins = adaptive_bins(size, out)
    k = max(e - s for s, e in bins)
    idx = tuple(tuple(min(s + j, e - 1) for j in range(k)) for s, e in bins)
    valid = tuple(tuple(s + j < e for j in range(k)) for s, e in bins)
    return idx, valid


def window_index(size: int, out: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The members of each adaptive bin: ``(index long [O, K], valid bool [O, K])``, ``K`` the longest bin.

    Short bins repeat their last index, marked invalid.
    """
    idx, valid = _window_index(size, out)
    return (
        torch.tensor(idx, dtype=torch.long, device=device),
        torch.tensor(valid, dtype=torch.bool, device=device),
    )


def window_softmax_pool(
    x: torch.Tensor, scores: torch.Tensor, grid: tuple[int, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax of ``scores`` within each window of the ``(t, h, w)`` grid, and the weighted sum of ``x``.

    Args:
        x: ``[B, T, H, W, C]``.
        scores: ``[B, T, H, W, C]`` (one score per channel) or ``[B, T, H, W, 1]`` (one per position).
        grid: ``(t, h, w)``; the windows are adaptive pooling's bins (they overlap where an axis does
            not divide evenly).

    Returns:
        ``(tokens [B, t*h*w, C] in x's dtype, attention float32 [B, t, h, w, Kt, Kh, Kw, C'])`` with
        ``C'`` the scores' channels; attention is 0 at a window's padding slots.
    """
    axes = [window_index(i, o, x.device) for i, o in zip(x.shape[1:4], grid)]
    (it, vt), (ih, vh), (iw, vw) = axes

    def gather(z: torch.Tensor) -> torch.Tensor:  # [B, T, H, W, C] -> [B, t, h, w, Kt, Kh, Kw, C]
        z = z[:, it][:, :, :, ih][:, :, :, :, :, iw]  # [B, t, Kt, h, Kh, w, Kw, C]
        return z.permute(0, 1, 3, 5, 2, 4, 6, 7)

    valid = (
        vt[:, None, None, :, None, None] & vh[None, :, None, None, :, None] & vw[None, None, :, None, None, :]
    )
    logits = gather(scores.float()).masked_fill(~valid[..., None], float("-inf"))
    attn = logits.flatten(4, 6).softmax(dim=4)  # [B, t, h, w, K, C']
    tokens = (attn * gather(x).flatten(4, 6).float()).sum(dim=4)  # [B, t, h, w, C]
    return tokens.flatten(1, 3).to(x.dtype), attn.unflatten(4, logits.shape[4:7])


class AttSetsPool(nn.Module):
    """AttSets' learned scores ``g: C -> C`` (one per channel) and the windowed pooling they drive.

    ``forward(tokens [B, T, H, W, C] or [T, H, W, C], budget=None, grid=None) -> vidpool.Compressed``
    runs the registered ``attsets`` method with this module as its weights, so gradients reach both
    the parameters and the tokens. ``config`` holds the constructor arguments (saved beside the weights).
    """

    def __init__(self, width: int, hidden: int = 64) -> None:
        super().__init__()
        self.config = {"width": int(width), "hidden": int(hidden)}
        self.score = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))
        nn.init.zeros_(self.score[2].weight)  # start as the plain window average
        nn.init.zeros_(self.score[2].bias)

    @property
    def width(self) -> int:
        return self.config["width"]

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel scores ``[..., C]`` (float32) of tokens ``[..., C]``."""
        return self.score(x.float())

    def forward(self, tokens: torch.Tensor, budget: int | None = None, grid=None):
        from vidpool.compression.api import compress

        return compress(tokens, "attsets", budget=budget, grid=grid, weights=self)


def _position_weight(attn: torch.Tensor, per_axis, shape: tuple[int, int, int], grid) -> torch.Tensor:
    """Each position's attention (mean over channels) in the window that provenance assigns it to:
    float32 ``[B, T, H, W]``."""
    mean = attn.mean(dim=-1)  # [B, t, h, w, Kt, Kh, Kw]
    index = []
    for (bin_of, _), size, out in zip(per_axis, shape, grid):
        starts = torch.tensor([s for s, _ in adaptive_bins(size, out)], device=bin_of.device)
        index.append((bin_of, torch.arange(size, device=bin_of.device) - starts[bin_of]))
    (ot, kt), (oh, kh), (ow, kw) = index
    t, h, w = (slice(None), None, None), (None, slice(None), None), (None, None, slice(None))
    weight = mean[:, ot[t], oh[h], ow[w], kt[t], kh[h], kw[w]]
    # a softmax weight is positive; keep it so where float32 underflows
    return weight.clamp_min(torch.finfo(torch.float32).tiny)


@register
class AttSets(Method):
    """AttSets pooling (see the module notes) to ``adaptive``'s ``(t, h, w)`` grid of windows.

    * ``budget=N`` or ``grid=(t, h, w)`` as ``adaptive`` (default: all frames, half the height and width).
    * ``weights``: the ``.safetensors`` file of an :class:`AttSetsPool` (its ``.json`` beside it) or the
      module itself; default the shipped weights for the world's CLIP (``vidpool/models/synth/attsets``).
      Features of another width are refused.

    Provenance: ``assign`` is the position's window (``adaptive``'s), ``weight`` its attention there
    averaged over channels.
    """

    name = "attsets"
    budget_replaces = ("grid",)
    summary = "learned per-channel attention pooling within (t, h, w) windows (AttSets); trained weights"
    keeps_grid = True

    def resolve(self, shape, budget=None, *, grid=None, weights=None):
        grid = window_grid(self.name, shape, budget, grid)
        return MethodPlan(math.prod(grid), {"grid": grid, "weights": weights}, grid=grid)

    def run(self, x, plan, scores=None):
        module = pooling_module(AttSetsPool, plan.params["weights"], self.name, x.device)
        check_width(self.name, x.shape[-1], module.width)
        grid = plan.params["grid"]
        tokens, attn = window_softmax_pool(x, module.scores(x), grid)
        per_axis = [axis_provenance(i, o, x.device) for i, o in zip(x.shape[1:4], grid)]
        assign, _ = grid_provenance(per_axis, grid)
        assign = assign.unsqueeze(0).expand(x.shape[0], *assign.shape).clone()
        weight = _position_weight(attn.detach(), per_axis, tuple(x.shape[1:4]), grid)
        return Output(tokens, assign, weight)
