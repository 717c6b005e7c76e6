"""Turn whatever the user has (a loaded model, a checkpoint folder, a config) into a :class:`ModelSpec`.

Planning must not need weights: a checkpoint folder is read through its ``vidpool.json`` (native) or
``config.json`` (transformers LLaVA family) and the LM's ``config.json`` or GGUF header, and the sizes are
computed from the shapes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidpool.encode.memory import DEFAULT_FRAME_HW, clip_activation_bytes_per_frame
from vidpool.errors import CheckpointError, InvalidArgumentError
from vidpool.llm.protocol import VideoModel
from vidpool.schedule.estimate import ModelSpec, llama_param_count, vit_param_count

__all__ = ["lm_fields", "model_spec", "native_folder_spec", "native_spec", "read_json"]

_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def model_spec(model: Any, *, dtype_bytes: int | None = None, device_type: str = "cpu") -> ModelSpec:
    """A :class:`ModelSpec` for ``model``.

    ``model`` may be a ``ModelSpec``, a dict of its fields, a loaded model (a
    :class:`vidpool.llm.protocol.VideoModel`), or a checkpoint folder path (read by its kind's
    ``read_spec``, :mod:`vidpool.llm.kinds`).
    ``dtype_bytes`` sets the compute precision for specs read from files (the weights' own dtype is not
    what runs: GGUF files are dequantized on load) and ``device_type`` where they will run (the encoder's
    memory per frame depends on it); loaded models report their own.
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return ModelSpec.from_dict(model)
    if isinstance(model, VideoModel):
        return _from_loaded(model)
    if isinstance(model, (str, Path)):
        return _from_folder(Path(model), dtype_bytes or 4, device_type)
    if hasattr(model, "encoder") and hasattr(model, "lm") and hasattr(model, "compress"):
        raise InvalidArgumentError("plan a ModelConfig through its checkpoint folder or a loaded model")
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


def _from_loaded(model: VideoModel) -> ModelSpec:
    lm = dict(model.lm_spec)
    vision = dict(model.vision_spec)

    def frame_activation(frame_hw: tuple[int, int], joint: bool = False) -> int:
        return int(model.activation_bytes_per_frame(tuple(frame_hw), joint=joint))

    def prompt_counter(num_frames: int, duration: float | None) -> int:
        return int(model.prompt_tokens(num_frames, duration))

    config = model.config
    return ModelSpec(
        frame_activation=frame_activation,
        prompt_counter=prompt_counter,
        num_layers=int(lm["num_layers"]),
        num_kv_heads=int(lm["num_kv_heads"]),
        head_dim=int(lm["head_dim"]),
        hidden_size=int(lm["hidden_size"]),
        vocab_size=int(lm["vocab_size"]),
        lm_param_bytes=int(lm["lm_param_bytes"]),
        dtype_bytes=int(lm["dtype_bytes"]),
        intermediate_size=int(lm.get("intermediate_size") or 0),
        num_heads=int(lm.get("num_heads") or 0),
        context_length=int(lm.get("context_length") or 0),
        vision_param_bytes=int(vision["param_bytes"]),
        activation_bytes_per_frame=int(vision["activation_bytes_per_frame"]),
        joint_dim=int(vision.get("joint_dim") or 0),
        grid=tuple(vision["grid"]),
        width=int(vision["width"]),
        image_size=_side(vision["image_size"]),
        # a VideoLM's vision_spec param_bytes covers the encoder and the projector
        projector_param_bytes=0,
        projector_layers=1 if config.projector == "linear" else 2,
        name=str(model.name or model.kind),
        model=model,
        **_compress_fields(config),
    )


def _side(value: Any) -> int:
    return int(value[0]) if isinstance(value, (list, tuple)) else int(value)


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}; check the checkpoint folder") from exc


def lm_fields(cfg: dict[str, Any], dtype_bytes: int) -> dict[str, Any]:
    """LM shape, size and context length from a transformers text config dict (LLaMA-style decoders)."""
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
        "context_length": int(cfg.get("max_position_embeddings") or 0),
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


_GGUF_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}


def _gguf_read_value(fh: Any, kind: int) -> Any:
    import struct

    if kind in _GGUF_SCALARS:
        fmt = _GGUF_SCALARS[kind]
        return struct.unpack(fmt, fh.read(struct.calcsize(fmt)))[0]
    if kind == 8:
        (length,) = struct.unpack("<Q", fh.read(8))
        return fh.read(length).decode("utf-8", "replace")
    if kind == 9:
        item, count = struct.unpack("<IQ", fh.read(12))
        if item in _GGUF_SCALARS:
            fh.seek(count * struct.calcsize(_GGUF_SCALARS[item]), 1)
        else:
            for _ in range(count):
                _gguf_read_value(fh, item)
        return count  # arrays are summarised by their length
    raise CheckpointError(f"unknown GGUF value type {kind}")


def _gguf_config(path: Path) -> dict[str, Any]:
    """A transformers-style LLaMA config dict from a GGUF file's header (no tensor data is read)."""
    import struct

    try:
        with open(path, "rb") as fh:
            if fh.read(4) != b"GGUF":
                raise CheckpointError(f"{path} is not a GGUF file")
            _version, n_tensors, n_kv = struct.unpack("<IQQ", fh.read(20))
            meta: dict[str, Any] = {}
            for _ in range(n_kv):
                (length,) = struct.unpack("<Q", fh.read(8))
                key = fh.read(length).decode("utf-8", "replace")
                (kind,) = struct.unpack("<I", fh.read(4))
                meta[key] = _gguf_read_value(fh, kind)
            names = set()
            for _ in range(n_tensors):
                (length,) = struct.unpack("<Q", fh.read(8))
                names.add(fh.read(length).decode("utf-8", "replace"))
                (dims,) = struct.unpack("<I", fh.read(4))
                fh.seek(8 * dims + 4 + 8, 1)
    except (OSError, struct.error) as exc:
        raise CheckpointError(f"cannot read the GGUF header of {path}: {exc}") from exc
    arch = meta.get("general.architecture", "llama")
    heads = int(meta[f"{arch}.attention.head_count"])
    hidden = int(meta[f"{arch}.embedding_length"])
    return {
        "hidden_size": hidden,
        "num_hidden_layers": int(meta[f"{arch}.block_count"]),
        "num_attention_heads": heads,
        "num_key_value_heads": int(meta.get(f"{arch}.attention.head_count_kv", heads)),
        "intermediate_size": int(meta[f"{arch}.feed_forward_length"]),
        "vocab_size": int(meta.get(f"{arch}.vocab_size") or meta["tokenizer.ggml.tokens"]),
        "head_dim": int(meta.get(f"{arch}.attention.key_length") or hidden // heads),
        "max_position_embeddings": int(meta.get(f"{arch}.context_length") or 0),
        "tie_word_embeddings": "output.weight" not in names,
    }


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
    return read_json(config)


def _clip_frame_activation(
    clip: Any, dtype_bytes: int, device_type: str
) -> Callable[[tuple[int, int], bool], int]:
    """Encoder memory per frame of an open_clip ViT (``vidpool.encode`` geometry), by decoded size.

    The formula :meth:`vidpool.CLIPEncoder.activation_bytes_per_frame` uses, from the config alone,
    for the default layer (-2), with or without joint embeddings.
    """

    def per_frame(frame_hw: tuple[int, int], joint: bool = False) -> int:
        return clip_activation_bytes_per_frame(
            clip, dtype_bytes, frame_hw=tuple(frame_hw), joint=joint, device_type=device_type
        )

    return per_frame


def _clip_text_param_count(clip: Any) -> int:
    """Parameters of an open_clip text tower plus the two joint-space projections and logit scale."""
    w = clip.text_width
    block = 12 * w * w + 13 * w
    text = clip.vocab_size * w + clip.context_length * w + clip.text_layers * block + 2 * w
    return text + w * clip.embed_dim + clip.width * clip.embed_dim + 1


def native_folder_spec(config: Any, folder: Path, dtype_bytes: int, device_type: str) -> ModelSpec:
    """The ModelSpec of the native checkpoint in ``folder`` (its ``vidpool.json`` is ``config``)."""
    from vidpool.llm.config import resolve_path

    lm_config = _lm_config(folder, dict(config.lm or {}))
    encoder = dict(config.encoder or {})
    if isinstance(encoder.get("model"), str):
        # an encoder config file shipped in the folder is named relative to it, as loading reads it
        encoder["model"] = resolve_path(folder, encoder["model"])
        config = dataclasses.replace(config, encoder=encoder)
    return native_spec(config, lm_config, dtype_bytes, name=folder.name, device_type=device_type)


def native_spec(
    config: Any, lm_config: dict[str, Any], dtype_bytes: int, name: str = "model", device_type: str = "cpu"
) -> ModelSpec:
    """The ModelSpec of a native model from its ``ModelConfig`` and its LM's transformers config dict,
    without building either (open_clip encoder with its text tower, projector, LLaMA-style LM), for
    running on ``device_type``."""
    from vidpool.encode.config import encoder_spec as clip_spec
    from vidpool.encode.config import load_config

    encoder = dict(config.encoder or {})
    vision = clip_spec(load_config(encoder.get("model", "ViT-L-14-336")))
    lm = lm_fields(lm_config, dtype_bytes)
    side = vision.image_size[0]
    patch = vision.patch_size[0]
    frame_activation = _clip_frame_activation(vision, dtype_bytes, device_type)
    vit = vit_param_count(vision.width, vision.layers, patch, side, vision.mlp_ratio)
    hidden = lm["hidden_size"]
    width = int(getattr(config, "vision_width", None) or vision.width)
    projector = width * hidden + hidden + (hidden * hidden + hidden if config.projector != "linear" else 0)
    return ModelSpec(
        vision_param_bytes=(vit + _clip_text_param_count(vision)) * dtype_bytes,
        projector_param_bytes=projector * dtype_bytes,
        projector_layers=1 if config.projector == "linear" else 2,
        activation_bytes_per_frame=frame_activation(DEFAULT_FRAME_HW),
        frame_activation=frame_activation,
        joint_dim=int(vision.embed_dim),
        grid=vision.grid,
        width=vision.width,
        image_size=side,
        name=name,
        **lm,
        **_compress_fields(config),
    )


def _from_folder(folder: Path, dtype_bytes: int, device_type: str) -> ModelSpec:
    from vidpool.llm.kinds import get_kind
    from vidpool.llm.loading import detect_kind

    return get_kind(detect_kind(folder)).read_spec(folder, dtype_bytes, device_type)
