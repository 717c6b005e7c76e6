"""Separable pooling primitives over channels-last token grids.

Adaptive pooling over (T, H, W) is separable: pooling each axis in turn gives exactly what
``adaptive_avg_pool3d`` / ``adaptive_max_pool3d`` give, and reducing an axis of a ``[..., C]``
tensor in place needs no permute. Bins follow PyTorch's rule: bin ``o`` of an axis of length ``I``
split into ``O`` bins covers ``[floor(o*I/O), ceil((o+1)*I/O))``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

__all__ = [
    "adaptive_bins",
    "axis_provenance",
    "batch_provenance",
    "grid_arg",
    "grid_provenance",
    "max_share",
    "pool_axis",
    "pool_grid",
    "pool_plane",
    "signed_pow",
]


@lru_cache(maxsize=4096)
def adaptive_bins(size: int, out: int) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` of each of ``out`` adaptive bins over an axis of length ``size``."""
    return tuple(((o * size) // out, -((-(o + 1) * size) // out)) for o in range(out))


def pool_axis(x: torch.Tensor, dim: int, out: int, reduce: str = "mean") -> torch.Tensor:
    """Adaptive pooling of one axis.

    Args:
        x: any tensor; ``dim`` is the axis to pool (length ``I``).
        out: ``O``, the number of bins.
        reduce: ``"mean"`` or ``"amax"``.

    Returns:
        ``x`` with axis ``dim`` of length ``O``. When ``O`` divides ``I`` this is one reduction over a
        view (no copy); otherwise one reduction per bin.
    """
    size = x.shape[dim]
    if size == out:
        return x
    dim = dim % x.dim()
    fn = torch.mean if reduce == "mean" else torch.amax
    if size % out == 0:
        return fn(x.unflatten(dim, (out, size // out)), dim=dim + 1)
    parts = [fn(x.narrow(dim, s, e - s), dim=dim, keepdim=True) for s, e in adaptive_bins(size, out)]
    return torch.cat(parts, dim=dim)


def pool_plane(x: torch.Tensor, size: tuple[int, int], reduce: str = "mean") -> torch.Tensor:
    """Adaptive pooling of every frame: ``[..., H, W, C]`` → ``[..., h, w, C]``.

    The frames go to ``adaptive_avg_pool2d`` / ``adaptive_max_pool2d`` as a channels-last view, whose
    kernels reduce along contiguous channels: no permuted copy of the input is made.
    """
    *lead, height, width, channels = x.shape
    if (height, width) == tuple(size):
        return x
    try:
        frames = x.view(-1, height, width, channels).permute(0, 3, 1, 2)
    except RuntimeError:
        # A strided slice (frames of several videos): pool each leading item rather than copy them all.
        return torch.stack([pool_plane(item, size, reduce) for item in x.unbind(0)])
    fn = F.adaptive_avg_pool2d if reduce == "mean" else F.adaptive_max_pool2d
    out = fn(frames, tuple(size))
    return out.permute(0, 2, 3, 1).reshape(*lead, size[0], size[1], channels)


def pool_grid(x: torch.Tensor, grid: tuple[int, ...], reduce: str = "mean") -> torch.Tensor:
    """Adaptive pooling of the axes just before the channels.

    ``grid=(h, w)``: ``[..., H, W, C]`` → ``[..., h, w, C]``; ``grid=(t, h, w)``: ``[..., T, H, W, C]`` →
    ``[..., t, h, w, C]``. Frames are pooled first (the channels-last 2-D kernels read the input once),
    then time, on data already shrunk.
    """
    out = pool_plane(x, grid[-2:], reduce)
    if len(grid) == 3:
        out = pool_axis(out, -4, grid[0], reduce)
    return out


def signed_pow(x: torch.Tensor, p: float) -> torch.Tensor:
    """``sign(x) * |x| ** p``: a power that keeps the sign, so negative activations are not lost."""
    if float(p).is_integer() and int(p) % 2 == 1:
        return x.pow(int(p))
    return x.abs().pow(p).copysign(x)


@lru_cache(maxsize=4096)
def _axis_provenance(size: int, out: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    best_o = [-1] * size
    best_w = [0.0] * size
    for o, (s, e) in enumerate(adaptive_bins(size, out)):
        w = 1.0 / (e - s)
        for i in range(s, e):
            if w > best_w[i]:
                best_o[i], best_w[i] = o, w
    return tuple(best_o), tuple(best_w)


def axis_provenance(size: int, out: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """For adaptive average pooling of one axis: the bin each input index feeds most and its weight.

    Returns:
        ``(index long [I], weight float32 [I])``; an index in several bins goes to the smallest one.
    """
    o, w = _axis_provenance(size, out)
    return (
        torch.tensor(o, dtype=torch.long, device=device),
        torch.tensor(w, dtype=torch.float32, device=device),
    )


def grid_provenance(
    per_axis: list[tuple[torch.Tensor, torch.Tensor]], grid: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine per-axis provenance of a separable pooling into a grid.

    Args:
        per_axis: for each axis ``k``, ``(index long [I_k], weight [I_k])`` with ``-1`` for dropped indices.
        grid: output sizes per axis.

    Returns:
        ``(assign long [I_0, I_1, ...], weight float32 [I_0, I_1, ...])`` with row-major output indices.
    """
    assign = None
    weight = None
    dropped = None
    n = len(per_axis)
    for k, (idx, w) in enumerate(per_axis):
        shape = [1] * n
        shape[k] = -1
        idx_k = idx.view(shape)
        w_k = w.view(shape)
        d_k = idx_k < 0
        stride = math.prod(grid[k + 1 :])
        term = idx_k.clamp_min(0) * stride
        assign = term if assign is None else assign + term
        weight = w_k if weight is None else weight * w_k
        dropped = d_k if dropped is None else dropped | d_k
    assign = torch.where(dropped, torch.full_like(assign, -1), assign)
    weight = torch.where(dropped, torch.zeros_like(weight), weight)
    return assign, weight


def max_share(
    x: torch.Tensor, pooled: torch.Tensor, index: list[torch.Tensor], chunk: int = 8
) -> torch.Tensor:
    """Provenance weight of max pooling: the share of channels in which a position is its bin's maximum.

    Args:
        x: input ``[B, T, H, W, C]``.
        pooled: max-pooled output ``[B, t, h, w, C]``.
        index: per axis, long ``[T]``, ``[H]``, ``[W]``: the output bin each input index belongs to
            (``-1`` where dropped; such positions get weight 0).
        chunk: frames compared at a time, so the comparison never holds a copy of the whole input.

    Returns:
        float32 ``[B, T, H, W]``.
    """
    it, ih, iw = index
    ih_c, iw_c = ih.clamp_min(0), iw.clamp_min(0)
    out = torch.empty(x.shape[:4], dtype=torch.float32, device=x.device)
    with torch.no_grad():
        for s in range(0, x.shape[1], chunk):
            sel = it[s : s + chunk].clamp_min(0)
            ref = pooled[:, sel][:, :, ih_c][:, :, :, iw_c]
            out[:, s : s + chunk] = (x[:, s : s + chunk] == ref).float().mean(-1)
    dropped = (it.view(-1, 1, 1) < 0) | (ih.view(1, -1, 1) < 0) | (iw.view(1, 1, -1) < 0)
    return out.masked_fill_(dropped, 0.0)


def batch_provenance(
    assign: torch.Tensor, weight: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat shape-only provenance ``[T, H, W]`` over a batch: ``[B, T, H, W]`` each."""
    return (
        assign.unsqueeze(0).expand(batch, *assign.shape).clone(),
        weight.to(torch.float32).unsqueeze(0).expand(batch, *weight.shape).clone(),
    )


def grid_arg(value, n: int, name: str) -> tuple[int, ...]:
    """An int or a length-``n`` sequence of positive ints, as a tuple (for kernel, stride, grid)."""
    from vidpool.errors import InvalidArgumentError

    vals = (value,) * n if isinstance(value, int) else tuple(value)
    if len(vals) != n or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in vals):
        raise InvalidArgumentError(f"{name} must be a positive int or {n} positive ints, got {value!r}")
    return vals
