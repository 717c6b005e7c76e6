"""The value every compression method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Compressed"]


@dataclass
class Compressed:
    """Compressed visual tokens and where they came from.

    Attributes:
        tokens: ``[B, N, C]`` (or ``[N, C]`` when the input was a single ``[T, H, W, C]`` video).
        assign: long ``[B, T, H, W]`` (or ``[T, H, W]``): the output token each input position feeds most,
            ``-1`` where the position was dropped.
        weight: float32, same shape as ``assign``: that position's weight in that output token
            (``0`` where dropped). For averaging methods the weights of one token sum to 1.
        method: the registered method name.
        params: the parameters the method ran with, after a budget was resolved into shapes.
        input_shape: ``(T, H, W)`` of the input.
        grid: ``(t, h, w)`` when the tokens form a regular time-major grid (``adaptive``, ``spatial``,
            ``prompt_guided``, ``none``); such results can be compressed again.
        mask: bool ``[B, N]`` marking real tokens when items of a batch produced different counts
            (only ``temporal_merge`` with a threshold); padded tokens are zero. ``None`` when all are real.
    """

    tokens: torch.Tensor
    assign: torch.Tensor
    weight: torch.Tensor
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    input_shape: tuple[int, int, int] = (0, 0, 0)
    grid: tuple[int, int, int] | None = None
    mask: torch.Tensor | None = None

    @property
    def num_tokens(self) -> int:
        """N, the number of output tokens (padded length when ``mask`` is set)."""
        return self.tokens.shape[-2]

    def as_grid(self) -> torch.Tensor:
        """Tokens reshaped to ``[B, t, h, w, C]`` (or ``[t, h, w, C]``); only for grid-shaped results."""
        if self.grid is None:
            from vidpool.errors import InvalidArgumentError

            raise InvalidArgumentError(
                f"method {self.method!r} does not produce a regular grid of tokens; "
                "only grid-keeping results (adaptive, spatial, prompt_guided, none) can be reshaped or re-compressed"
            )
        return self.tokens.unflatten(-2, self.grid)

    def kept_fraction(self) -> torch.Tensor:
        """Share of input positions that feed some output token, per batch item: float ``[B]`` (or scalar)."""
        kept = (self.assign >= 0).float()
        return kept.flatten(-3).mean(-1)
