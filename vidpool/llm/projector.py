"""Projectors from vision features to the language model's embedding space (a name -> class factory)."""

from __future__ import annotations

import torch
from torch import nn

from vidpool.errors import InvalidArgumentError

__all__ = [
    "PROJECTORS",
    "LinearProjector",
    "MLP2xGELUProjector",
    "MLP2xGELUWhereProjector",
    "build_projector",
    "list_projectors",
    "position_features",
    "projector_param_count",
]

#: frequencies per axis of :func:`position_features` (sine and cosine of each)
POSITION_FREQUENCIES = 4


class LinearProjector(nn.Module):
    """One linear layer: ``[..., in_dim] -> [..., out_dim]`` (LLaVA-1.0)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class MLP2xGELUProjector(nn.Module):
    """Linear, GELU, linear: ``[..., in_dim] -> [..., out_dim]`` (LLaVA-1.5 ``mlp2x_gelu``)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def position_features(where: torch.Tensor, frequencies: int = POSITION_FREQUENCIES) -> torch.Tensor:
    """Fourier features of token positions: ``[..., 3]`` fractions ``(t, y, x)`` in ``[0, 1]`` ->
    ``[..., 6 * frequencies]``: ``sin(pi k p)`` and ``cos(pi k p)`` for ``k = 1 .. frequencies``, per axis."""
    k = torch.arange(1, frequencies + 1, dtype=where.dtype, device=where.device)
    angles = torch.pi * where.unsqueeze(-1) * k  # [..., 3, frequencies]
    return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)


class MLP2xGELUWhereProjector(MLP2xGELUProjector):
    """``mlp2x_gelu`` plus where and when each token comes from: ``x [..., in_dim]`` and ``where [..., 3]``
    (``Compressed.token_positions``: frame, row and column as fractions) -> ``[..., out_dim]``.

    The positions enter through Fourier features and one linear layer added to the MLP's output (the
    role of the temporal and spatial position embeddings that video LLMs add to visual tokens). That
    layer starts at zero, so it starts as the ``mlp2x_gelu`` projector it is initialised from; without
    ``where`` it is that projector.
    """

    reads_positions = True

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(in_dim, out_dim)
        self.where = nn.Linear(6 * POSITION_FREQUENCIES, out_dim)
        nn.init.zeros_(self.where.weight)
        nn.init.zeros_(self.where.bias)

    def forward(self, x: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        out = super().forward(x)
        if where is None:
            return out
        return out + self.where(position_features(where.to(device=x.device, dtype=x.dtype)))


PROJECTORS: dict[str, type[nn.Module]] = {
    "linear": LinearProjector,
    "mlp2x_gelu": MLP2xGELUProjector,
    "mlp2x_gelu_where": MLP2xGELUWhereProjector,
}


def list_projectors() -> list[str]:
    """Names accepted by :func:`build_projector`."""
    return sorted(PROJECTORS)


def build_projector(name: str, in_dim: int, out_dim: int) -> nn.Module:
    """Build the projector called ``name`` mapping ``in_dim`` channels to ``out_dim``."""
    cls = PROJECTORS.get(name)
    if cls is None:
        raise InvalidArgumentError(f"unknown projector {name!r}; choose one of {list_projectors()}")
    if in_dim < 1 or out_dim < 1:
        raise InvalidArgumentError(f"projector dims must be positive, got in_dim={in_dim}, out_dim={out_dim}")
    return cls(in_dim, out_dim)


def projector_param_count(name: str, in_dim: int, out_dim: int) -> int:
    """Parameters of the projector ``name`` mapping ``in_dim`` to ``out_dim`` (built on the meta device)."""
    with torch.device("meta"):
        module = build_projector(name, in_dim, out_dim)
    return sum(p.numel() for p in module.parameters())
