"""Checks of run options, made before anything heavy runs (model loading, decoding, encoding).

The ``vidpool`` command, ``VideoChat``, ``Captioner`` and ``vidpool.pipeline.run`` share these, so a
bad value is refused the same way, with the same message, wherever it comes from, and before the
minutes of work it would otherwise waste.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from typing import Any

from vidpool.errors import InvalidArgumentError, UnknownMethodError

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "GENERATE_KEYS",
    "check_caption_options",
    "check_device",
    "check_generation",
    "check_planning",
    "check_question",
    "check_video",
    "check_with_plan",
    "device_available",
    "generation_options",
    "run_device",
]

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_device(device: str, *, need_present: bool = True) -> str:
    """``device`` if it is ``"cpu"`` or ``"cuda[:N]"`` (and, with ``need_present``, usable here)."""
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise InvalidArgumentError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    if need_present and not device_available(device):
        raise InvalidArgumentError(
            f"device {device!r} asked for but it is not available here (CUDA "
            f"{'has too few GPUs' if _cuda_count() else 'is not available'}); run on device 'cpu' "
            "(--device cpu --memory SIZE), or plan for a GPU you do not have with `vidpool plan "
            "--gpu-memory SIZE` / vidpool.plan(..., max_memory=...)"
        )
    return device


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def device_available(device: str) -> bool:
    """Whether ``device`` (``cpu`` or ``cuda[:N]``) exists on this machine."""
    if device == "cpu":
        return True
    index = int(device.split(":")[1]) if ":" in device else 0
    return index < _cuda_count()


def check_question(question: Any) -> str:
    """A question must be a string with something in it."""
    if not isinstance(question, str):
        raise InvalidArgumentError(f"the question must be a non-empty string, got {question!r}")
    if not question.strip():
        raise InvalidArgumentError(
            "the question is empty; it must be a non-empty string: ask something, e.g. 'What happens?'"
        )
    return question


def check_generation(
    *,
    max_new_tokens: Any = 1,
    temperature: Any = 0.0,
    top_p: Any = 1.0,
    seed: Any = None,
) -> None:
    """Refuse generation options ``generate`` would refuse only after the prompt is built and encoded."""
    if not _is_int(max_new_tokens) or max_new_tokens < 1:
        raise InvalidArgumentError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise InvalidArgumentError(
            f"temperature must be a finite number >= 0 (0 means greedy decoding), got {temperature!r}"
        )
    if isinstance(top_p, bool) or not isinstance(top_p, numbers.Real) or not 0 < top_p <= 1:
        raise InvalidArgumentError(f"top_p must be in (0, 1] (1 keeps every token), got {top_p!r}")
    if seed is not None and not _is_int(seed):
        raise InvalidArgumentError(f"seed must be an integer or None, got {seed!r}")


def check_planning(
    *,
    num_frames: Any = None,
    budget_tokens: Any = None,
    method: Any = None,
    method_params: Any = None,
) -> None:
    """Refuse planning options that no plan can take (``None`` means the model's default)."""
    for name, value in (("num_frames", num_frames), ("budget_tokens", budget_tokens)):
        if value is not None and (not _is_int(value) or value < 1):
            raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    if method is not None:
        from vidpool.compression import list_methods

        if method not in list_methods():
            raise UnknownMethodError(
                f"unknown compression method {method!r}; choose from {', '.join(list_methods())}"
            )
    if method_params is not None and not isinstance(method_params, dict):
        raise InvalidArgumentError(f"method_params must be a dict, got {type(method_params).__name__}")


def check_video(video: Any) -> Any:
    """A video path must name a non-empty file; frames in memory must be ``[T, H, W, 3]`` with ``T >= 1``."""
    if isinstance(video, (str, os.PathLike)):
        from vidpool.video.info import check_path

        check_path(video)
        return video
    shape = getattr(getattr(video, "frames", video), "shape", None)
    if shape is None or len(shape) != 4 or shape[-1] != 3 or shape[0] < 1:
        raise InvalidArgumentError(
            f"video must be a path or uint8 frames [T, H, W, 3], got {type(video).__name__}"
            + (f" of shape {tuple(shape)}" if shape is not None else "")
        )
    return video


DEFAULT_MAX_NEW_TOKENS = 256
GENERATE_KEYS = ("max_new_tokens", "temperature", "top_p", "seed", "stop")


def run_device(device: str | None, plan_: Any, plan_options: dict[str, Any]) -> str:
    """The device a run uses (``device``, else the plan's, else ``"cpu"``), once it and the planning
    options are known to be usable; options that a given ``plan_`` would ignore are refused."""
    if plan_ is None:
        check_planning(
            **{k: plan_options[k] for k in ("num_frames", "budget_tokens", "method", "method_params")}
        )
        return check_device(device or "cpu")
    given = sorted(k for k, v in plan_options.items() if v is not None)
    if given:
        raise InvalidArgumentError(
            f"pass either plan= or the options a plan is made from, not both: {', '.join(given)} would be "
            "ignored; make the plan with them (vidpool.plan(..., " + "=..., ".join(given) + "=...))"
        )
    device = device or plan_.device
    if device.split(":")[0] != str(plan_.device).split(":")[0]:
        raise InvalidArgumentError(f"device {device!r} differs from the plan's device {plan_.device!r}")
    return check_device(device)


def check_with_plan(plan_: Any, max_new_tokens: int) -> None:
    """A plan sized its KV cache for ``plan_.max_new_tokens``; a longer answer is refused."""
    if plan_ is not None and max_new_tokens > plan_.max_new_tokens:
        raise InvalidArgumentError(
            f"max_new_tokens={max_new_tokens} is more than the plan's {plan_.max_new_tokens}, which sized "
            f"its KV cache; plan with max_new_tokens={max_new_tokens}"
        )


def generation_options(defaults: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``defaults`` updated by ``overrides`` (``generate``'s keyword arguments), checked."""
    unknown = sorted(set(overrides) - set(GENERATE_KEYS))
    if unknown:
        raise InvalidArgumentError(f"unknown generation options {unknown}; use {', '.join(GENERATE_KEYS)}")
    options = {**defaults, **overrides}
    check_generation(**{k: options[k] for k in ("max_new_tokens", "temperature", "top_p", "seed")})
    return options


def check_caption_options(
    *,
    device: str,
    prompt: Any,
    max_new_tokens: Any,
    temperature: Any,
    top_p: Any,
    seed: Any,
    **planning: Any,
) -> tuple[str, dict[str, Any]]:
    """Check a captioning run's options before its model loads: ``(device, generation defaults)``.

    ``planning`` are :func:`check_planning`'s options and ``max_memory`` (checked by the planner).
    """
    check_planning(**{k: v for k, v in planning.items() if k != "max_memory"})
    check_generation(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    check_question(prompt)
    generation = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
    return check_device(device), generation
