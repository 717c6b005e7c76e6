"""Random weights for the trained poolings at any width (a plain module, imported by the tests that
run every registered method on features narrower than the world's CLIP)."""

from __future__ import annotations

import tempfile
from functools import cache
from pathlib import Path

import torch

__all__ = ["TRAINED", "trained_kwargs"]

#: registered methods that carry weights for one feature width
TRAINED = ("attsets", "multilayer")


@cache
def _weights(name: str, width: int) -> str:
    from vidpool.compression.attsets import AttSetsPool
    from vidpool.compression.multilayer import MultiLayerPool
    from vidpool.compression.trained import save_pooling

    torch.manual_seed(9)
    if name == "attsets":
        module = AttSetsPool(width, hidden=8)
        torch.nn.init.normal_(module.score[2].weight, std=0.3)  # scores that are not all equal
    else:
        module = MultiLayerPool(width, layers=(-2,), read=0, dim=8)
    path = Path(tempfile.mkdtemp(prefix="vidpool-trained-")) / f"{name}.safetensors"
    save_pooling(module, path)
    return str(path)


def trained_kwargs(name: str, width: int) -> dict[str, str]:
    """``{"weights": PATH}`` of random weights for ``width``-channel features when ``name`` is trained,
    else ``{}``."""
    return {"weights": _weights(name, width)} if name in TRAINED else {}
