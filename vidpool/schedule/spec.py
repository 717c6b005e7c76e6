"""Turn whatever the user has (a loaded model, a checkpoint folder, a config) into a :class:`ModelSpec`.

Planning must not need weights: a checkpoint folder is read through its ``vidpool.json`` (native) or
``config.json`` (transformers LLaVA family) and the LM's ``config.json`` or GGUF header, and the sizes are
computed from the shapes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vidpool.errors import CheckpointError, InvalidArgumentError
from vidpool.schedule.estimate import (
    ModelSpec,
    llama_param_count,
    vit_activation_bytes_per_frame,
    vit_param_count,
)

__all__ = ["model_spec"]

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def model_spec(model: Any, *, dtype_bytes: int | None = None) -> ModelSpec:
    """A :class:`ModelSpec` for ``model``.

    ``model`` may be a ``ModelSpec``, a dict of its fields, a loaded ``vidpool.llm.VideoLM`` (anything with
    ``lm_spec`` and ``vision_spec``), a ``vidpool.llm.ModelConfig``, or a checkpoint folder path.
    ``dtype_bytes`` sets the compute precision for specs read from files (the weights' own dtype is not
    what runs: GGUF files are dequantized on load); loaded models report their own.
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return ModelSpec.from_dict(model)
    if hasattr(model, "lm_spec") and hasattr(model, "vision_spec"):
        return _from_loaded(model)
    if isinstance(model, (str, Path)):
        return _from_folder(Path(model), dtype_bytes or 4)
    if hasattr(model, "encoder") and hasattr(model, "lm") and hasattr(model, "compress"):
        return _from_native_config(model, None, dtype_bytes or 4)
    raise InvalidArgumentError(
        f"cannot plan for a {type(model).__name__}: pass a loaded VideoLM, a checkpoint folder, "
        "a ModelConfig, a ModelSpec or a dict of ModelSpec fields"
    )


def _compress_fields(config: Any) -> dict[str, Any]:
    compress = dict(getattr(config, "compress", None) or {})
    out: dict[str, Any] = {
        "method": compress.get("method", "none"),
        "method_params": dict(compress.get("params") or {}),
        "compress_position": compress.get("position", "after"),
    }
    if getattr(config, "num_frames", None):
        out["num_frames"] = int(config.num_frames)
    if getattr(config, "budget", None) is not None:
        out["budget"] = int(config.budget)
    return out


def _from_loaded(model: Any) -> ModelSpec:
    lm = dict(model.lm_spec)
    vision = dict(model.vision_spec)
    projector = getattr(model, "projector", None)
    projector_bytes = 0
    if projector is not None and hasattr(projector, "parameters"):
        projector_bytes = sum(p.numel() * p.element_size() for p in projector.parameters())
    return ModelSpec(
        num_layers=int(lm["num_layers"]),
        num_kv_heads=int(lm["num_kv_heads"]),
        head_dim=int(lm["head_dim"]),
        hidden_size=int(lm["hidden_size"]),
        vocab_size=int(lm["vocab_size"]),
        lm_param_bytes=int(lm["lm_param_bytes"]),
        dtype_bytes=int(lm["dtype_bytes"]),
        intermediate_size=int(lm.get("intermediate_size") or 0),
        num_heads=int(lm.get("num_heads") or lm.get("num_attention_heads") or 0),
        vision_param_bytes=int(vision["param_bytes"]),
        activation_bytes_per_frame=int(vision["activation_bytes_per_frame"]),
        grid=tuple(vision["grid"]),
        width=int(vision["width"]),
        image_size=_side(vision["image_size"]),
        projector_param_bytes=int(projector_bytes),
        name=str(getattr(model, "name", None) or getattr(model, "kind", "model")),
        model=model,
        **_compress_fields(getattr(model, "config", None)),
    )


def _side(value: Any) -> int:
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}; check the checkpoint folder") from exc


def _lm_fields(cfg: dict[str, Any], dtype_bytes: int) -> dict[str, Any]:
    """LM shape and size from a transformers text config dict (LLaMA-style decoders)."""
    hidden = int(cfg["hidden_size"])
    heads = int(cfg["num_attention_heads"])
    kv_heads = int(cfg.get("num_key_value_heads") or heads)
    head_dim = int(cfg.get("head_dim") or hidden // heads)
    layers = int(cfg["num_hidden_layers"])
    inter = int(cfg.get("intermediate_size") or 4 * hidden)
    vocab = int(cfg["vocab_size"])
    params = llama_param_count(
        hidden, layers, heads, kv_heads, inter, vocab, tie_embeddings=bool(cfg.get("tie_word_embeddings"))
    )
    return {
        "num_layers": layers,
        "num_kv_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_size": hidden,
        "vocab_size": vocab,
        "intermediate_size": inter,
        "num_heads": heads,
        "lm_param_bytes": params * dtype_bytes,
        "dtype_bytes": dtype_bytes,
    }


def _gguf_config(path: Path) -> dict[str, Any]:
    """A transformers-style config dict from a GGUF file's header (no tensors are read)."""
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    except Exception as exc:
        raise CheckpointError(f"cannot read the GGUF header of {path}: {exc}") from exc
    return cfg.to_dict()


def _lm_config(folder: Path, lm: dict[str, Any]) -> dict[str, Any]:
    from vidpool.llm.config import resolve_path

    where = resolve_path(folder, lm.get("path"))
    if where is None:
        raise CheckpointError(f"{folder}/vidpool.json has no lm.path; cannot size the language model")
    where_path = Path(where)
    if lm.get("gguf_file"):
        gguf = Path(resolve_path(where_path, lm["gguf_file"]) or lm["gguf_file"])
        return _gguf_config(gguf if gguf.is_absolute() or gguf.exists() else where_path / gguf)
    config = where_path / "config.json"
    if not config.is_file():
        raise CheckpointError(
            f"no config.json in {where_path}: planning reads the LM's shape from it; "
            "download the LM folder or pass a loaded model"
        )
    return _read_json(config)


def _from_native_config(config: Any, folder: Path | None, dtype_bytes: int) -> ModelSpec:
    from vidpool.encode.config import load_config
    from vidpool.encode.config import model_spec as clip_spec

    encoder = dict(config.encoder or {})
    vision = clip_spec(load_config(encoder.get("model", "ViT-L-14-336")))
    if folder is None:
        raise InvalidArgumentError("plan a ModelConfig through its checkpoint folder or a loaded model")
    lm = _lm_fields(_lm_config(folder, dict(config.lm or {})), dtype_bytes)
    side = vision.image_size[0]
    patch = vision.patch_size[0]
    return ModelSpec(
        vision_param_bytes=vit_param_count(vision.width, vision.layers, patch, side, vision.mlp_ratio)
        * dtype_bytes,
        activation_bytes_per_frame=vit_activation_bytes_per_frame(
            vision.width, side, patch, vision.heads, dtype_bytes, mlp_ratio=vision.mlp_ratio
        ),
        grid=vision.grid,
        width=vision.width,
        image_size=side,
        name=folder.name,
        **lm,
        **_compress_fields(config),
    )


def _from_folder(folder: Path, dtype_bytes: int) -> ModelSpec:
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder not found: {folder}")
    if (folder / "vidpool.json").is_file():
        from vidpool.llm.config import ModelConfig

        return _from_native_config(ModelConfig.load(folder), folder, dtype_bytes)
    if (folder / "config.json").is_file():
        cfg = _read_json(folder / "config.json")
        if "text_config" not in cfg or "vision_config" not in cfg:
            raise CheckpointError(
                f"{folder}/config.json is not a LLaVA-family config (no text_config/vision_config)"
            )
        text, vis = cfg["text_config"], cfg["vision_config"]
        side = int(vis.get("image_size", 384))
        patch = int(vis.get("patch_size", 14))
        width = int(vis.get("hidden_size", 1024))
        layers = int(vis.get("num_hidden_layers", 24))
        mlp_ratio = int(vis.get("intermediate_size", 4 * width)) / width
        heads = int(vis.get("num_attention_heads", 16))
        grid = side // patch
        return ModelSpec(
            vision_param_bytes=vit_param_count(width, layers, patch, side, mlp_ratio) * dtype_bytes,
            activation_bytes_per_frame=vit_activation_bytes_per_frame(
                width, side, patch, heads, dtype_bytes, mlp_ratio=mlp_ratio
            ),
            grid=(grid, grid),
            width=width,
            image_size=side,
            method="spatial",
            method_params={"stride": 2},
            compress_position="after",
            name=folder.name,
            **_lm_fields(text, dtype_bytes),
        )
    raise CheckpointError(
        f"{folder} is not a checkpoint: it needs a vidpool.json (native) or a LLaVA config.json"
    )
