"""Projectors from vision features to the language model's embedding space (a name -> class factory)."""

from __future__ import annotations

import torch
from torch import nn

from vidpool.errors import InvalidArgumentError

__all__ = ["PROJECTORS", "LinearProjector", "MLP2xGELUProjector", "build_projector", "list_projectors"]


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


PROJECTORS: dict[str, type[nn.Module]] = {
    "linear": LinearProjector,
    "mlp2x_gelu": MLP2xGELUProjector,
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
