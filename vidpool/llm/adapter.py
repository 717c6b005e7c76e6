"""LoRA adapters for the language model, in PEFT's saved format, merged into its weights at load.

A checkpoint's LM spec may name an ``adapter``: a folder as ``peft``'s ``save_pretrained`` writes it
(``adapter_config.json`` + ``adapter_model.safetensors``). Each adapted linear layer's weight becomes
``W + scale * B @ A`` once, when the model loads, so generation costs nothing more and ``peft`` is not
needed to run it. Only plain LoRA on ``nn.Linear`` layers is read; anything else is refused by name.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from vidpool.errors import CheckpointError, require

__all__ = ["check_adapter", "lora_delta", "merge_lora"]

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"
_PREFIX = "base_model.model."
# Settings of a PEFT LoRA config that change the arithmetic; merging is refused when any is set.
_UNSUPPORTED = ("use_dora", "rank_pattern", "alpha_pattern", "layer_replication", "fan_in_fan_out")


def lora_delta(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The weight update of one LoRA pair.

    Args:
        a: ``[r, in_features]`` (``lora_A``).
        b: ``[out_features, r]`` (``lora_B``).
        scale: ``lora_alpha / r`` (``lora_alpha / sqrt(r)`` with rsLoRA).

    Returns:
        ``[out_features, in_features]`` float32, ``scale * b @ a``.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[1]:
        raise ValueError(f"LoRA pair shapes do not fit: A {tuple(a.shape)}, B {tuple(b.shape)}")
    return scale * (b.float() @ a.float())


def _config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{folder} is not a LoRA adapter folder: {CONFIG_FILE} is missing "
            "(save one with peft's `model.save_pretrained(folder)`)"
        )
    config = json.loads(path.read_text())
    kind = str(config.get("peft_type", "LORA")).upper()
    if kind != "LORA":
        raise CheckpointError(f"{path}: only LoRA adapters can be merged, this one is {kind}")
    set_ = [k for k in _UNSUPPORTED if config.get(k)]
    if set_:
        raise CheckpointError(
            f"{path}: {', '.join(set_)} cannot be merged by vidpool; merge it with peft first"
        )
    if not isinstance(config.get("r"), int) or config["r"] < 1:
        raise CheckpointError(f"{path}: 'r' must be a positive integer, got {config.get('r')!r}")
    return config


def check_adapter(folder: str | Path) -> dict[str, Any]:
    """An adapter folder's config, once it is known to be a LoRA vidpool can merge and its weights file
    exists (checked before the LM loads)."""
    folder = Path(folder)
    config = _config(folder)
    if not (folder / WEIGHTS_FILE).is_file():
        raise CheckpointError(f"{folder}: {WEIGHTS_FILE} is missing")
    return config


def merge_lora(model: torch.nn.Module, folder: str | Path) -> int:
    """Add a saved LoRA adapter's updates to ``model``'s linear weights, in place.

    Args:
        model: the causal LM the adapter was trained on (the module ``peft`` wrapped).
        folder: the adapter folder (``adapter_config.json``, ``adapter_model.safetensors``).

    Returns:
        How many linear layers changed.
    """
    folder = Path(folder)
    config = check_adapter(folder)
    rank = int(config["r"])
    alpha = float(config.get("lora_alpha", rank))
    scale = alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)
    weights_path = folder / WEIGHTS_FILE
    state = require("safetensors.torch", "llm", "Loading a LoRA adapter").load_file(str(weights_path))
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in state.items():
        name = key.removeprefix(_PREFIX)
        for part in ("lora_A", "lora_B"):
            if f".{part}." in name:
                pairs.setdefault(name.split(f".{part}.")[0], {})[part] = tensor
                break
        else:
            raise CheckpointError(
                f"{weights_path}: {key} is not a LoRA weight; only lora_A/lora_B are merged"
            )
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, pair in sorted(pairs.items()):
            layer = modules.get(name)
            if not isinstance(layer, torch.nn.Linear):
                raise CheckpointError(
                    f"{weights_path}: the adapter changes {name!r}, which is not a linear layer of this "
                    "model; was it trained on another LM?"
                )
            if set(pair) != {"lora_A", "lora_B"}:
                raise CheckpointError(f"{weights_path}: {name} has only {sorted(pair)}")
            if layer.weight.is_meta:
                raise CheckpointError(
                    f"{name} is offloaded (device_map put it on disk); load with the LM on devices to merge an adapter"
                )
            delta = lora_delta(pair["lora_A"], pair["lora_B"], scale)
            if delta.shape != layer.weight.shape:
                raise CheckpointError(
                    f"{weights_path}: {name} update is {tuple(delta.shape)}, the layer {tuple(layer.weight.shape)}"
                )
            merged = layer.weight.float() + delta.to(layer.weight.device)
            layer.weight.copy_(merged.to(layer.weight.dtype))
    return len(pairs)
