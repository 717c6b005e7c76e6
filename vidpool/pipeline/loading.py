"""The model a run uses: a loaded one, a checkpoint folder, or the default model."""

from __future__ import annotations

import os
import sys
from typing import Any

from vidpool.errors import InvalidArgumentError
from vidpool.llm.protocol import VideoModel
from vidpool.options import default_device
from vidpool.progress import ProgressCallback, report
from vidpool.schedule import Plan

__all__ = ["ModelOrPath", "load", "load_kwargs", "model_or_default", "plan_before_loading"]

#: a loaded model, or a checkpoint folder to load (``None``: the default model)
ModelOrPath = VideoModel | str | os.PathLike | None


def load(
    model: ModelOrPath,
    *,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    **kwargs: Any,
) -> VideoModel:
    """A loaded ``VideoLM``: ``model`` itself, or ``vidpool.llm.load_model(model, device=...)`` for a path
    (``None``: the default model, :func:`vidpool.models.default_model`; ``device=None``:
    :func:`vidpool.options.default_device`)."""
    model = model_or_default(model)
    device = device or default_device()
    if isinstance(model, (str, os.PathLike)):
        from vidpool.llm import load_model

        report(progress, "loading model")
        return load_model(model, device=device, **kwargs)
    if not hasattr(model, "encode_patches") or not hasattr(model, "generate"):
        raise InvalidArgumentError(
            f"model must be a checkpoint folder or a loaded VideoLM, got {type(model).__name__}"
        )
    return model


def model_or_default(model: ModelOrPath) -> VideoModel | str | os.PathLike:
    """``model``, or for ``None`` the default model's checkpoint folder (:func:`vidpool.models.default_model`,
    built on first use)."""
    if model is None:
        from vidpool.models import default_model

        return default_model()
    return model


def plan_before_loading(
    video_info: Any, model: ModelOrPath, device: str, options: dict[str, Any]
) -> Plan | None:
    """The plan of a run of ``model`` made from its config files, before its weights load (``None`` for a
    model that is loaded already): a video path is probed, and the budget is checked against the
    method's smallest on the planned frames, so that an unreadable video or a budget too small
    (:class:`~vidpool.errors.BudgetError`, ``.min_budget``) fails in a second rather than after loading.

    ``video_info``: as :func:`vidpool.plan` takes it (``None``: a video at least as long as the frames
    asked for); ``options``: :func:`vidpool.plan`'s keyword arguments.
    """
    model = model_or_default(model)
    if not isinstance(model, (str, os.PathLike)):
        return None
    # looked up on vidpool.pipeline, as every run does, so that a wrapper set there sees this plan too
    return sys.modules["vidpool.pipeline"].plan(video_info, model, device, **options)


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
