"""Turn whatever the user has (a loaded model, a checkpoint folder, a config) into a :class:`ModelSpec`.

Planning must not need weights: a checkpoint folder is sized from its config files by the spec reader
its model kind registered here (:func:`register_spec`). The planner knows no model kind itself:
importing :mod:`vidpool.llm` registers the native kind and the function that names a folder's kind
(:func:`register_kind_detector`), and each integration registers its own kinds when imported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from vidpool.errors import CheckpointError, InvalidArgumentError
from vidpool.schedule.estimate import ModelSpec, llama_param_count

__all__ = [
    "SizedModel",
    "SpecReader",
    "compress_fields",
    "lm_fields",
    "model_spec",
    "read_json",
    "register_kind_detector",
    "register_spec",
    "registered_specs",
]

#: ``read(folder, dtype_bytes, device_type) -> ModelSpec`` from a checkpoint folder's config files
SpecReader = Callable[[Path, int, str], ModelSpec]

_READERS: dict[str, SpecReader] = {}
_DETECTOR: list[Callable[[Path], str]] = []  # the one registered, if any


@runtime_checkable
class SizedModel(Protocol):
    """A loaded model as the planner sizes it (:class:`vidpool.llm.VideoModel` extends this).

    Attributes:
        kind: the model kind's name.
        name: a display name.
        config: its compression defaults (``compress``, ``num_frames``, ``budget``) and ``projector``.
    """

    kind: str
    name: str
    config: Any

    @property
    def lm_spec(self) -> dict[str, int]:
        """LM shape and size (see :class:`vidpool.llm.VideoModel`)."""
        ...

    @property
    def vision_spec(self) -> dict[str, Any]:
        """Vision tower sizes (see :class:`vidpool.llm.VideoModel`)."""
        ...

    def activation_bytes_per_frame(
        self, frame_hw: tuple[int, int] | None = None, *, joint: bool = False
    ) -> int: ...

    def prompt_tokens(self, num_frames: int, duration: float | None = None) -> int: ...

    def num_visual_tokens(
        self, num_frames: int, *, budget: int | None = None, method: str | None = None, **params: Any
    ) -> int: ...


def register_spec(kind: str, read: SpecReader) -> None:
    """Let the planner size unloaded checkpoints of model kind ``kind`` with ``read``."""
    _READERS[kind] = read


def register_kind_detector(detect: Callable[[Path], str]) -> None:
    """Name the function that tells a checkpoint folder's model kind (``vidpool.llm`` registers
    ``detect_kind``); a later registration replaces an earlier one."""
    _DETECTOR[:] = [detect]


def registered_specs() -> list[str]:
    """The model kinds whose checkpoint folders the planner can size now, sorted."""
    return sorted(_READERS)


def _from_folder(folder: Path, dtype_bytes: int, device_type: str) -> ModelSpec:
    if not _DETECTOR:
        raise CheckpointError(
            f"cannot plan for the checkpoint folder {folder}: no model kind is registered with the "
            "planner; import vidpool.llm first (vidpool.plan, vidpool.pipeline and the vidpool command do)"
        )
    kind = _DETECTOR[0](folder)
    read = _READERS.get(kind)
    if read is None:
        raise CheckpointError(
            f"{folder} is a {kind!r} checkpoint, which the planner cannot size: the registered kinds are "
            f"{registered_specs()}; import the module that provides {kind!r} first"
        )
    return read(folder, dtype_bytes, device_type)


def model_spec(model: Any, *, dtype_bytes: int | None = None, device_type: str = "cpu") -> ModelSpec:
    """A :class:`ModelSpec` for ``model``.

    ``model`` may be a ``ModelSpec``, a dict of its fields, a loaded model (a :class:`SizedModel`, such
    as any :class:`vidpool.llm.VideoModel`), or a checkpoint folder path (read by the spec reader its
    kind registered, :func:`register_spec`).
    ``dtype_bytes`` sets the compute precision for specs read from files (the weights' own dtype is not
    what runs: GGUF files are dequantized on load) and ``device_type`` where they will run (the encoder's
    memory per frame depends on it); loaded models report their own.
    """
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return ModelSpec.from_dict(model)
    if isinstance(model, SizedModel):
        return _from_loaded(model)
    if isinstance(model, (str, Path)):
        return _from_folder(Path(model), dtype_bytes or 4, device_type)
    if hasattr(model, "encoder") and hasattr(model, "lm") and hasattr(model, "compress"):
        raise InvalidArgumentError("plan a ModelConfig through its checkpoint folder or a loaded model")
    raise InvalidArgumentError(
        f"cannot plan for a {type(model).__name__}: pass a loaded VideoLM, a checkpoint folder, "
        "a ModelConfig, a ModelSpec or a dict of ModelSpec fields"
    )


def compress_fields(config: Any) -> dict[str, Any]:
    """ModelSpec fields of a model config's compression defaults: method, parameters, position, frames, budget."""
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


def _from_loaded(model: SizedModel) -> ModelSpec:
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
        frames_per_step=int(vision.get("frames_per_step") or 1),
        name=str(model.name or model.kind),
        model=model,
        **compress_fields(config),
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
