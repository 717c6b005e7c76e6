"""``spatial``: per-frame 2-D pooling (LLaVA-NeXT-Video's stride pooling, LLaVA-OneVision's bilinear)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vidpool.compression.budget import check_budget, plane_for_budget
from vidpool.compression.pool import (
    axis_provenance,
    batch_provenance,
    grid_arg,
    grid_provenance,
    max_share,
    pool_grid,
)
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["Spatial", "bilinear_resize", "stride_pool"]

MODES = ("avg", "max", "bilinear")


def bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, T, H, W, C]`` → ``[B, T, h, w, C]`` by ``F.interpolate(mode="bilinear", align_corners=False)``.

    The frames are handed to ``interpolate`` as a channels-last view, so the input is not copied.
    """
    b, t, h, w, c = x.shape
    frames = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)
    out = F.interpolate(frames, size=size, mode="bilinear", align_corners=False)
    return out.permute(0, 2, 3, 1).reshape(b, t, size[0], size[1], c)


def stride_pool(x: torch.Tensor, stride: tuple[int, int], mode: str) -> torch.Tensor:
    """``avg_pool2d`` / ``max_pool2d`` with ``kernel_size = stride`` on every frame of ``[B, T, H, W, C]``.

    Returns ``[B, T, ⌊H/s⌋, ⌊W/s⌋, C]``; the frames are passed as a channels-last view (no copy).
    """
    b, t, h, w, c = x.shape
    frames = x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)
    fn = F.avg_pool2d if mode == "avg" else F.max_pool2d
    out = fn(frames, kernel_size=stride, stride=stride)
    return out.permute(0, 2, 3, 1).reshape(b, t, *out.shape[-2:], c)


def _bilinear_axis(size: int, out: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input index, the output sample that weights it most (PyTorch's half-pixel rule), and that weight."""
    scale = size / out
    src = ((torch.arange(out, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_min(0)
    i0 = src.floor().long().clamp_max(size - 1)
    i1 = (i0 + 1).clamp_max(size - 1)
    l1 = src - i0
    mat = torch.zeros(out, size, dtype=torch.float64)
    rows = torch.arange(out)
    mat.index_put_((rows, i0), 1 - l1, accumulate=True)
    mat.index_put_((rows, i1), l1, accumulate=True)
    weight, index = mat.max(0)
    index = torch.where(weight > 0, index, torch.full_like(index, -1))
    return index.to(device), weight.float().to(device)


def _cropped_axis(size: int, out: int, stride: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Kernel = stride pooling without padding: indices past ``out * stride`` are dropped."""
    index = torch.full((size,), -1, dtype=torch.long)
    weight = torch.zeros(size)
    index[: out * stride] = torch.arange(out).repeat_interleave(stride)
    weight[: out * stride] = 1.0 / stride
    return index.to(device), weight.to(device)


@register
class Spatial(Method):
    """Pool each frame on its own; time is kept.

    * ``stride=s`` (default 2): ``mode="avg"``/``"max"`` equal ``avg_pool2d``/``max_pool2d`` with
      ``kernel_size=stride=s`` (``⌊H/s⌋ × ⌊W/s⌋`` per frame); ``mode="bilinear"`` equals
      ``F.interpolate(size=(⌈H/s⌉, ⌈W/s⌉), mode="bilinear", align_corners=False)``.
    * ``size=(h, w)`` or ``budget=N``: adaptive avg/max pooling, or bilinear resizing, to that per-frame
      size; a budget picks the most even size with ``T·h·w <= N``. Every frame gets the same grid, so
      a budget below ``10·T`` may be used less than 90% (e.g. ``N = 2T-1`` gives ``T`` tokens); use
      ``progressive`` when every token counts.
    """

    name = "spatial"
    budget_replaces = ("stride", "size")
    summary = (
        "per-frame 2-D avg/max/bilinear pooling by stride or to a size (LLaVA-NeXT-Video, LLaVA-OneVision)"
    )
    keeps_grid = True

    def resolve(self, shape, budget=None, *, stride=None, size=None, mode="avg"):
        t, h, w = shape
        if mode not in MODES:
            raise InvalidArgumentError(f"spatial mode must be one of {MODES}, got {mode!r}")
        if sum(v is not None for v in (stride, size, budget)) > 1:
            raise InvalidArgumentError("give spatial one of stride=, size= or budget=, not several")
        if budget is not None:
            check_budget(self.name, budget, t, shape)
            size, stride = plane_for_budget(h, w, budget // t), None
        elif size is not None:
            size = grid_arg(size, 2, "size")
            if size[0] > h or size[1] > w:
                raise InvalidArgumentError(f"size {size} is larger than the {h}x{w} frame")
        else:
            # The default stride is cut to frames smaller than it; a stride the user gave is not.
            stride = (min(2, h), min(2, w)) if stride is None else grid_arg(stride, 2, "stride")
            if mode == "bilinear":
                size = (-(-h // stride[0]), -(-w // stride[1]))
            else:
                size = (h // stride[0], w // stride[1])
                if min(size) < 1:
                    raise InvalidArgumentError(f"stride {stride} is larger than the {h}x{w} frame")
                stride = None if size == (h, w) else stride
        size = tuple(size)
        grid = (t, *size)
        return MethodPlan(math.prod(grid), {"mode": mode, "size": size, "stride": stride}, grid=grid)

    def run(self, x, plan, scores=None):
        mode, size, stride = plan.params["mode"], plan.params["size"], plan.params["stride"]
        b, t, h, w, _ = x.shape
        dev = x.device
        if mode == "bilinear":
            out = bilinear_resize(x, size) if size != (h, w) else x
            per_axis = [_bilinear_axis(n, o, dev) for n, o in zip((h, w), size)]
        elif stride is not None:
            out = stride_pool(x, stride, mode)
            per_axis = [_cropped_axis(n, o, s, dev) for n, o, s in zip((h, w), size, stride)]
        else:
            out = pool_grid(x, size, reduce="mean" if mode == "avg" else "amax")
            per_axis = [axis_provenance(n, o, dev) for n, o in zip((h, w), size)]
        time_axis = (torch.arange(t, device=dev), torch.ones(t, device=dev))
        assign, weight = grid_provenance([time_axis, *per_axis], (t, *size))
        assign, weight = batch_provenance(assign, weight, b)
        if mode == "max":
            weight = max_share(x, out, [time_axis[0], per_axis[0][0], per_axis[1][0]])
        return Output(out.flatten(1, 3), assign, weight)
