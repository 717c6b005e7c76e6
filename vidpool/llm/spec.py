"""Sizes of a native checkpoint from its files alone, for the planner (no weights are read).

A native folder is read through its ``vidpool.json``, its encoder config and its LM's ``config.json``
or GGUF header; :mod:`vidpool.llm.kinds` registers :func:`native_folder_spec` as the native kind's spec
reader with the planner (:func:`vidpool.schedule.spec.register_spec`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vidpool.encode.memory import DEFAULT_FRAME_HW, clip_activation_bytes_per_frame
from vidpool.errors import CheckpointError
from vidpool.llm.config import resolve_path
from vidpool.llm.projector import projector_param_count
from vidpool.schedule.estimate import ModelSpec, vit_param_count
from vidpool.schedule.spec import compress_fields, lm_fields, read_json

__all__ = ["native_folder_spec", "native_spec"]


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
    import dataclasses

    lm_config = _lm_config(folder, dict(config.lm or {}))
    encoder = dict(config.encoder or {})
    if isinstance(encoder.get("model"), str):
        # an encoder config file shipped in the checkpoint is named relative to it, as load_model reads it
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
    projector = projector_param_count(config.projector, width, hidden)  # no weights are read
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
        **compress_fields(config),
    )
