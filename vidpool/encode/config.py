"""Model configs: resolve a name, a JSON path or a dict into an open_clip config, and read its geometry.

A config is data in open_clip's own format (``embed_dim``, ``vision_cfg``, ``text_cfg``, optional
``quick_gelu``), or the ``open_clip_config.json`` layout (``{"model_cfg": ..., "preprocess_cfg": ...}``).
:func:`encoder_spec` reads the geometry (grid, widths, layer counts) from a config without building the
model, so that memory planning and tests can use ViT-L-14-336's numbers without its weights.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidpool.encode.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from vidpool.errors import EncoderError, InvalidArgumentError, require

__all__ = [
    "DEFAULT_MODEL",
    "EncoderSpec",
    "ResolvedConfig",
    "encoder_spec",
    "list_configs",
    "load_config",
]

DEFAULT_MODEL = "ViT-L-14-336"
_CONFIG_DIR = Path(__file__).parent / "configs"

# open_clip's PreprocessCfg defaults are OpenAI CLIP's statistics, bicubic, shortest-side resize.
_PREPROCESS_KEYS = ("size", "mean", "std", "interpolation", "resize_mode", "fill_color")


def list_configs() -> list[str]:
    """Names of the configs shipped with vidpool (tiny random-weight models for tests and demos)."""
    return sorted(p.stem for p in _CONFIG_DIR.glob("*.json"))


@dataclass(frozen=True)
class ResolvedConfig:
    """An open_clip model config plus where it came from.

    ``name`` is a human-readable label; ``model_cfg`` the open_clip config dict; ``preprocess_cfg`` the
    overrides of open_clip's default preprocessing that came with it (possibly empty).
    """

    name: str
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any] = field(default_factory=dict)


def _split_open_clip_json(name: str, data: dict[str, Any]) -> ResolvedConfig:
    if "model_cfg" in data:
        return ResolvedConfig(name, copy.deepcopy(data["model_cfg"]), dict(data.get("preprocess_cfg") or {}))
    return ResolvedConfig(name, copy.deepcopy(data))


def load_config(model: str | Path | dict[str, Any]) -> ResolvedConfig:
    """Resolve ``model`` into an open_clip config.

    ``model`` may be a dict config, a path to a JSON config, the name of a config shipped with
    vidpool (:func:`list_configs`) or any open_clip model name (``open_clip.list_models()``).
    """
    if isinstance(model, dict):
        resolved = _split_open_clip_json("custom", model)
    elif isinstance(model, Path) or (isinstance(model, str) and model.endswith(".json")):
        path = Path(model)
        if not path.is_file():
            raise EncoderError(f"model config file not found: {path}; pass an existing JSON config path")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot read model config {path}: {exc}; check it is valid JSON") from exc
        resolved = _split_open_clip_json(path.stem, data)
    elif isinstance(model, str):
        shipped = _CONFIG_DIR / f"{model}.json"
        if shipped.is_file():
            resolved = _split_open_clip_json(model, json.loads(shipped.read_text()))
        else:
            open_clip = require("open_clip", "clip", "the CLIP encoder")
            cfg = open_clip.get_model_config(model.replace("/", "-"))
            if cfg is None:
                raise EncoderError(
                    f"unknown CLIP model {model!r}: use a name from open_clip.list_models() "
                    f"or vidpool's {list_configs()}, a path to a JSON config, or a dict config"
                )
            resolved = ResolvedConfig(model, copy.deepcopy(cfg))
    else:
        raise InvalidArgumentError(f"model must be a name, a JSON path or a dict, got {type(model).__name__}")
    for key in ("embed_dim", "vision_cfg", "text_cfg"):
        if key not in resolved.model_cfg:
            raise EncoderError(
                f"model config {resolved.name!r} lacks {key!r}; it must be an open_clip config"
            )
    return resolved


def _pair(value: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, (list, tuple)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


@dataclass(frozen=True)
class EncoderSpec:
    """The geometry of a ViT CLIP config, read without building the model.

    ``grid`` is the patch grid ``(h, w)`` of one frame, ``width`` the vision width C of the patch
    tokens, ``embed_dim`` the joint-space size D, ``num_tokens`` the vision sequence length (grid
    plus the class token), ``quick_gelu`` whether the MLPs use QuickGELU.
    """

    image_size: tuple[int, int]
    patch_size: tuple[int, int]
    width: int
    layers: int
    heads: int
    mlp_ratio: float
    embed_dim: int
    text_width: int
    text_layers: int
    context_length: int
    vocab_size: int
    quick_gelu: bool = False

    @property
    def grid(self) -> tuple[int, int]:
        return self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1]

    @property
    def num_tokens(self) -> int:
        return self.grid[0] * self.grid[1] + 1

    def preprocess(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The preprocessing open_clip applies for this model (its ``PreprocessCfg`` defaults plus overrides)."""
        cfg: dict[str, Any] = {
            "size": self.image_size,
            "mean": OPENAI_CLIP_MEAN,
            "std": OPENAI_CLIP_STD,
            "interpolation": "bicubic",
            "resize_mode": "shortest",
            "fill_color": 0,
        }
        for key, value in (overrides or {}).items():
            if key in _PREPROCESS_KEYS and value is not None and key != "size":
                cfg[key] = value
        return cfg


def encoder_spec(cfg: ResolvedConfig | dict[str, Any]) -> EncoderSpec:
    """Read a :class:`EncoderSpec` from an open_clip config; only plain ViT vision towers are supported."""
    model_cfg = cfg.model_cfg if isinstance(cfg, ResolvedConfig) else cfg
    vision = model_cfg["vision_cfg"]
    text = model_cfg["text_cfg"]
    if vision.get("timm_model_name") or not isinstance(vision.get("layers", 12), int):
        raise EncoderError(
            "vidpool needs a ViT vision tower (open_clip VisionTransformer) to return patch tokens; "
            "timm and ResNet towers are not supported: pick a ViT-* model"
        )
    width = int(vision.get("width", 768))
    return EncoderSpec(
        image_size=_pair(vision.get("image_size", 224)),
        patch_size=_pair(vision.get("patch_size", 16)),
        width=width,
        layers=int(vision.get("layers", 12)),
        heads=max(1, width // int(vision.get("head_width", 64))),
        mlp_ratio=float(vision.get("mlp_ratio", 4.0)),
        embed_dim=int(model_cfg["embed_dim"]),
        text_width=int(text.get("width", 512)),
        text_layers=int(text.get("layers", 12)),
        context_length=int(text.get("context_length", 77)),
        vocab_size=int(text.get("vocab_size", 49408)),
        quick_gelu=bool(model_cfg.get("quick_gelu", False)),
    )
