"""``spatiotemporal``: Video-ChatGPT / Valley pooling — T frame means, then H·W time means."""

from __future__ import annotations

import torch

from vidpool.compression.budget import fixed_budget
from vidpool.compression.registry import Method, MethodPlan, Output, register

__all__ = ["SpatioTemporal"]


@register
class SpatioTemporal(Method):
    """``[B, T, H, W, C]`` → ``[B, T + H·W, C]``: first the spatial mean of each frame (T tokens, in time
    order), then the temporal mean of each patch position (H·W tokens, row-major).

    Each position feeds one temporal token (weight ``1/(H·W)``) and one spatial token (weight ``1/T``);
    ``assign`` names the one with the larger weight (the spatial token on ties).
    """

    name = "spatiotemporal"
    summary = "T per-frame spatial means + H*W temporal means (Video-ChatGPT, Valley)"

    def resolve(self, shape, budget=None):
        t, h, w = shape
        fixed_budget(self.name, budget, t + h * w, shape)
        return MethodPlan(t + h * w, {})

    def run(self, x, plan, scores=None):
        b, t, h, w, _ = x.shape
        frame_means = x.mean(dim=(2, 3))
        patch_means = x.mean(dim=1).flatten(1, 2)
        tokens = torch.cat([frame_means, patch_means], dim=1)
        dev = x.device
        if t <= h * w:
            assign = (t + torch.arange(h * w, device=dev)).view(1, 1, h, w).expand(b, t, h, w)
            weight = torch.full((b, t, h, w), 1.0 / t, device=dev)
        else:
            assign = torch.arange(t, device=dev).view(1, t, 1, 1).expand(b, t, h, w)
            weight = torch.full((b, t, h, w), 1.0 / (h * w), device=dev)
        return Output(tokens, assign.clone(), weight)
