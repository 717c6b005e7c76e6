"""The value every compression method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Compressed", "grid_positions", "provenance_mean"]


def grid_positions(t: int, h: int, w: int, device: torch.device | str | None = None) -> torch.Tensor:
    """``[t, h, w, 3]`` float32: each cell's ``(t, y, x)`` as a fraction of its axis, at cell centres
    (``(i + 0.5) / size``)."""
    axes = [(torch.arange(size, dtype=torch.float32, device=device) + 0.5) / size for size in (t, h, w)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def provenance_mean(
    assign: torch.Tensor, weight: torch.Tensor, values: torch.Tensor, count: int, dtype: torch.dtype
) -> torch.Tensor:
    """``[count, D]`` (in ``dtype``): for each output token, the ``weight``-weighted mean of the rows of
    ``values`` ``[P, D]`` whose ``assign`` ``[P]`` names it (``-1``: dropped, left out). A token no
    position names gets NaN. For pruning it is a gather, for average pooling the same average."""
    kept = assign >= 0
    index, w = assign[kept], weight[kept].to(dtype)
    rows = values[kept].to(dtype)
    total = torch.zeros(count, dtype=dtype, device=values.device).index_add_(0, index, w)
    sums = torch.zeros(count, rows.shape[1], dtype=dtype, device=values.device)
    sums.index_add_(0, index, rows * w[:, None])
    return sums / total[:, None]


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

    def token_positions(self) -> torch.Tensor:
        """Where and when each output token comes from: float32 ``[B, N, 3]`` (or ``[N, 3]``).

        The weighted mean, over the input positions that ``assign`` gives a token, of the position's
        ``(t, y, x)`` in the input grid, each as a fraction of its axis (cell centres: ``(i + 0.5) / T``),
        so a token pooled over frames 0 to 3 of 8 sits at ``t = 0.25``. A token no position is assigned
        to (padding, or a window every position of which feeds another token more) sits at the centre,
        ``0.5``.
        """
        single = self.assign.dim() == 3
        assign = self.assign.unsqueeze(0) if single else self.assign
        weight = self.weight.unsqueeze(0) if single else self.weight
        b, t, h, w = assign.shape
        coords = grid_positions(t, h, w, assign.device).reshape(t * h * w, 3)
        rows = [
            provenance_mean(
                assign[i].reshape(-1), weight[i].reshape(-1), coords, self.num_tokens, torch.float32
            )
            for i in range(b)
        ]
        where = torch.nan_to_num(torch.stack(rows), nan=0.5)
        return where[0] if single else where
