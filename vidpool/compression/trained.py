"""Weights of the trainable poolings (``attsets``, ``multilayer``): where they live, how they load.

A trained pooling is two files side by side: ``<name>.safetensors`` (float16 weights) and
``<name>.json`` (the module's constructor arguments). The shipped ones sit in
``vidpool/models/synth`` (the world's CLIP width), read as files relative to this package, so that
compression stays importable with torch alone. A registered method takes ``weights=`` as a path to the
``.safetensors`` file or as a module instance (then gradients reach its parameters, which is how the
training script trains it through :func:`vidpool.compress`).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidpool.errors import CheckpointError, InvalidArgumentError

__all__ = [
    "SHIPPED_DIR",
    "TRAIN_HINT",
    "check_width",
    "default_weights",
    "load_pooling",
    "pooling_config",
    "pooling_module",
    "save_pooling",
]

#: the folder of the shipped weights (``checkpoints/vidpool-synth`` in a repository checkout)
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "models" / "synth"
TRAIN_HINT = "train weights for it with `python scripts/train_synth_pooling.py`"


def default_weights(name: str) -> Path:
    """The shipped weights file of pooling ``name``: ``vidpool/models/synth/<name>.safetensors``."""
    return SHIPPED_DIR / f"{name}.safetensors"


def _paths(weights: str | Path) -> tuple[Path, Path]:
    path = Path(weights)
    if path.suffix != ".safetensors":
        raise InvalidArgumentError(
            f"weights must be a .safetensors file (with its .json config beside it) or a module, got {weights!r}"
        )
    return path, path.with_suffix(".json")


def save_pooling(module: nn.Module, path: str | Path) -> None:
    """Write ``module``'s float16 weights to ``path`` (``.safetensors``) and its ``config`` beside it (``.json``)."""
    from safetensors.torch import save_file

    weights, config = _paths(path)
    weights.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(module.config, indent=2) + "\n")
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(weights), metadata={"format": "pt"})


@lru_cache(maxsize=32)
def _read_config(config: Path, stamp: float) -> dict[str, Any]:
    return json.loads(config.read_text())


def _stamp(path: Path, name: str) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        raise CheckpointError(
            f"no trained {name} pooling at {path}: {TRAIN_HINT}, or pass weights=PATH"
        ) from None


def pooling_config(weights: Any, name: str) -> dict[str, Any]:
    """The constructor arguments of the pooling that ``weights`` (path, module or ``None``) names."""
    if isinstance(weights, nn.Module):
        return dict(weights.config)
    weights_path, config = _paths(default_weights(name) if weights is None else weights)
    _stamp(weights_path, name)
    return dict(_read_config(config, _stamp(config, name)))


@lru_cache(maxsize=8)
def _load(cls: type, weights: Path, stamp: float, config_stamp: float, device: str) -> nn.Module:
    from safetensors.torch import load_file

    module = cls(**_read_config(weights.with_suffix(".json"), config_stamp))
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    result = module.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{weights} does not hold a {cls.__name__} of its config ({result}); {TRAIN_HINT}"
        )
    return module.eval().requires_grad_(False).to(device)


def load_pooling(cls: type, weights: str | Path, name: str, device: str | torch.device = "cpu") -> nn.Module:
    """The module of class ``cls`` saved at ``weights`` on ``device`` (cached until the files change),
    float32, frozen."""
    path, config = _paths(weights)
    return _load(cls, path.resolve(), _stamp(path, name), _stamp(config, name), str(torch.device(device)))


def pooling_module(cls: type, weights: Any, name: str, device: str | torch.device = "cpu") -> nn.Module:
    """``weights`` itself when it is a ``cls`` (left where it is); else the module loaded from it onto
    ``device`` (``None``: the shipped file)."""
    if isinstance(weights, cls):
        return weights
    if isinstance(weights, nn.Module):
        raise InvalidArgumentError(
            f"{name} takes a {cls.__name__} as weights, got a {type(weights).__name__}"
        )
    return load_pooling(cls, default_weights(name) if weights is None else weights, name, device)


def check_width(name: str, channels: int, expected: int, what: str = "feature width") -> None:
    """Refuse features whose channel count is not the one the weights were trained for."""
    if channels != expected:
        raise InvalidArgumentError(
            f"{name} weights expect a {what} of {expected} channels, the input has {channels}: pass "
            f"weights= trained for this encoder ({TRAIN_HINT}) or use a method without weights"
        )
