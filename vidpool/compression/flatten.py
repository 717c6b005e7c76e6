"""``none``: keep every token, flattened time-major."""

from __future__ import annotations

import math

import torch

from vidpool.compression.budget import fixed_budget
from vidpool.compression.pool import batch_provenance
from vidpool.compression.registry import Method, MethodPlan, Output, register

__all__ = ["Flatten"]


@register
class Flatten(Method):
    """No compression: ``[B, T, H, W, C]`` → ``[B, T·H·W, C]``."""

    name = "none"
    summary = "no compression; all T*H*W tokens, flattened"
    keeps_grid = True

    def resolve(self, shape, budget=None):
        count = math.prod(shape)
        fixed_budget(self.name, budget, count, shape)
        return MethodPlan(count, {}, grid=shape)

    def run(self, x, plan, scores=None):
        b, t, h, w, c = x.shape
        assign = torch.arange(t * h * w, device=x.device).view(t, h, w)
        weight = torch.ones(t, h, w, device=x.device)
        return Output(x.reshape(b, t * h * w, c), *batch_provenance(assign, weight, b))
