"""The model a run uses: a loaded one, a checkpoint folder, or the default model."""

from __future__ import annotations

import os
from typing import Any

from vidpool.errors import InvalidArgumentError
from vidpool.llm.protocol import VideoModel
from vidpool.progress import ProgressCallback, report
from vidpool.schedule import Plan

__all__ = ["ModelOrPath", "load", "load_kwargs"]

#: a loaded model, or a checkpoint folder to load (``None``: the default model)
ModelOrPath = VideoModel | str | os.PathLike | None


def load(
    model: ModelOrPath, *, device: str = "cpu", progress: ProgressCallback | None = None, **kwargs: Any
) -> VideoModel:
    """A loaded ``VideoLM``: ``model`` itself, or ``vidpool.llm.load_model(model, device=...)`` for a path
    (``None``: the default model, :func:`vidpool.models.default_model`)."""
    model = _default_if_none(model)
    if isinstance(model, (str, os.PathLike)):
        from vidpool.llm import load_model

        report(progress, "loading model")
        return load_model(model, device=device, **kwargs)
    if not hasattr(model, "encode_patches") or not hasattr(model, "generate"):
        raise InvalidArgumentError(
            f"model must be a checkpoint folder or a loaded VideoLM, got {type(model).__name__}"
        )
    return model


def _default_if_none(model: ModelOrPath) -> VideoModel | str | os.PathLike:
    if model is None:
        from vidpool.models import default_model

        return default_model()
    return model


def load_kwargs(plan_: Plan) -> dict[str, Any]:
    """``load_model`` options that realise ``plan_.placement`` (an accelerate split for CPU offload)."""
    if plan_.placement != "gpu+cpu-offload":
        return {}
    from vidpool.schedule import device_memory

    index = int(plan_.device.split(":")[1]) if ":" in plan_.device else 0
    return {
        "device_map": "auto",
        "max_memory": {index: int(plan_.lm_bytes_on_device), "cpu": int(device_memory("cpu").free * 0.9)},
    }


def _model_device(model: VideoModel, default: str) -> str:
    device = getattr(model, "device", None)
    return str(device) if device is not None else default
