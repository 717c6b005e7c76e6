"""``TokenCompressor``: the module form of :func:`vidpool.compress`, for use inside a model."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vidpool.compression.api import compress, num_output_tokens
from vidpool.compression.registry import get_method
from vidpool.compression.validate import check_budget_value

__all__ = ["TokenCompressor"]


class TokenCompressor(nn.Module):
    """A named, budgeted compression method as an ``nn.Module`` (no parameters of its own).

    ``forward(tokens [B, T, H, W, C], scores=None) -> [B, N, C]``; gradients flow to ``tokens``, so a
    projector before it can be trained through it. The method and its parameters are checked when the
    module is built (names and the budget here, values on the first call). ``check_finite=False``
    skips the NaN/Inf scan of every input (one reduction over it and a device sync, which also breaks
    a ``torch.compile`` graph; see :func:`vidpool.compress`).

    Example::

        pool = TokenCompressor("adaptive", grid=(16, 12, 12))
        visual = pool(features)            # [B, 2304, C]
        pool.num_output_tokens((16, 24, 24))
    """

    def __init__(self, method: str, *, budget: int | None = None, check_finite: bool = True, **params: Any):
        super().__init__()
        get_method(method).check_names(params)
        self.method = method
        self.budget = check_budget_value(budget)
        self.check_finite = bool(check_finite)
        self.params = params

    def forward(self, tokens: torch.Tensor, scores: torch.Tensor | None = None) -> torch.Tensor:
        return compress(
            tokens,
            self.method,
            budget=self.budget,
            scores=scores,
            check_finite=self.check_finite,
            **self.params,
        ).tokens

    def num_output_tokens(self, shape: tuple[int, int, int]) -> int:
        return num_output_tokens(self.method, shape, budget=self.budget, **self.params)

    def extra_repr(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        budget = f", budget={self.budget}" if self.budget is not None else ""
        unchecked = "" if self.check_finite else ", check_finite=False"
        return f"{self.method!r}{budget}{extra}{unchecked}"
