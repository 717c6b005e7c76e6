"""Run options: their defaults and their checks, made before anything heavy runs (model loading,
decoding, encoding).

The ``vidpool`` command, ``vidpool bench``, ``VideoChat``, ``Captioner``, ``vidpool.pipeline.run``, the
demo and the lmms-eval model share these, so a bad value is refused the same way, with the same
message, wherever it comes from, and before the minutes of work it would otherwise waste; and an
option left out means the same default everywhere (:func:`default_device`,
:data:`DEFAULT_MAX_NEW_TOKENS`, :data:`DEFAULT_CAPTION_MAX_NEW_TOKENS`). Both command lines take their
argparse types from here (:func:`positive_int`, :func:`comma_list` ...).
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vidpool.errors import InvalidArgumentError, UnknownMethodError

__all__ = [
    "DEFAULT_CAPTION_MAX_NEW_TOKENS",
    "DEFAULT_MAX_NEW_TOKENS",
    "GENERATE_KEYS",
    "FastV",
    "check_caption_options",
    "check_device",
    "check_generation",
    "check_planning",
    "check_question",
    "check_video",
    "check_with_plan",
    "checked",
    "comma_list",
    "default_device",
    "device_available",
    "fastv_option",
    "generation_options",
    "method_name",
    "non_negative_int",
    "plan_changes",
    "positive_int",
    "renamed_budget",
    "run_device",
]

#: answer length when none is given (``vidpool chat``, ``VideoChat``, the demo, lmms-eval); the plan sizes
#: the KV cache for it
DEFAULT_MAX_NEW_TOKENS = 256
#: caption length when none is given (``vidpool caption``, ``Captioner``): a batch run pays for every
#: token of every video, and a detailed description fits in 128
DEFAULT_CAPTION_MAX_NEW_TOKENS = 128

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def default_device() -> str:
    """The device a run takes when none is given: ``"cuda"`` when torch sees a GPU, else ``"cpu"``.

    The one rule of the library and of every surface (as transformers pipelines decide it).
    """
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


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


def renamed_budget(budget: Any, budget_tokens: Any) -> Any:
    """The token budget given as ``budget=``, or as ``budget_tokens=``, its earlier name (accepted with a
    :class:`DeprecationWarning` until vidpool 1.0)."""
    if budget_tokens is None:
        return budget
    warnings.warn(
        "budget_tokens= is now budget= (the name vidpool.compress and every model use); "
        "budget_tokens= will be removed in vidpool 1.0",
        DeprecationWarning,
        stacklevel=3,
    )
    if budget is not None and budget != budget_tokens:
        raise InvalidArgumentError(
            f"pass the token budget once, as budget= (got {budget} and {budget_tokens})"
        )
    return budget_tokens


@dataclass(frozen=True)
class FastV:
    """FastV's in-LM pruning: after LM layer ``layer``, only ``budget`` visual tokens (or the share
    ``keep`` of them) go on, those the last prompt token attends to most at that layer.

    Give ``budget`` or ``keep``, not both; ``FastV()`` alone keeps half (FastV's default ratio, R=50%)
    from layer 2. The layer must exist in the model: :meth:`check_layers` is called by the planner.
    """

    layer: int = 2
    budget: int | None = None
    keep: float | None = None

    def __post_init__(self) -> None:
        if not _is_int(self.layer) or self.layer < 0:
            raise InvalidArgumentError(
                f"the FastV layer must be an integer >= 0 (0: prune before the first LM layer), got {self.layer!r}"
            )
        if self.budget is not None:
            if not _is_int(self.budget) or self.budget < 1:
                raise InvalidArgumentError(
                    f"the FastV budget must be a positive integer (visual tokens kept), got {self.budget!r}"
                )
            if self.keep is not None:
                raise InvalidArgumentError("give FastV either budget= or keep=, not both")
        elif self.keep is not None and (
            isinstance(self.keep, bool) or not isinstance(self.keep, numbers.Real) or not 0 < self.keep <= 1
        ):
            raise InvalidArgumentError(
                f"FastV's keep is the share of visual tokens kept, in (0, 1], got {self.keep!r}"
            )

    def kept(self, num_visual: int) -> int:
        """Visual tokens kept from :attr:`layer` on, of ``num_visual``: ``min(budget, num_visual)``, or
        ``keep`` of them rounded half up (at least 1); FastV's default is half."""
        if self.budget is not None:
            return min(int(self.budget), int(num_visual))
        share = 0.5 if self.keep is None else float(self.keep)
        return min(int(num_visual), max(1, math.floor(share * num_visual + 0.5)))

    def check_layers(self, num_layers: int) -> None:
        """Refuse a layer the LM does not have (its layers are numbered ``0 .. num_layers - 1``)."""
        if self.layer >= num_layers:
            raise InvalidArgumentError(
                f"FastV layer {self.layer} does not exist: the LM has {num_layers} layers (0 to "
                f"{num_layers - 1}); pass a layer below {num_layers} (--fastv {max(0, num_layers - 1)}:R)"
            )


def fastv_option(text: str) -> FastV:
    """An argparse type: ``LAYER:BUDGET`` (``2:64``: 64 visual tokens from layer 2 on) or
    ``LAYER:SHARE`` with a decimal point (``2:0.5``: half of them)."""
    layer, sep, size = text.partition(":")
    try:
        if not sep:
            raise ValueError
        kept = {"keep": float(size)} if "." in size else {"budget": int(size)}
        return FastV(int(layer), **kept)
    except ValueError as exc:
        if isinstance(exc, InvalidArgumentError):
            raise argparse.ArgumentTypeError(str(exc)) from None
        raise argparse.ArgumentTypeError(
            f"expected LAYER:BUDGET (2:64) or LAYER:SHARE (2:0.5), got {text!r}"
        ) from None


def check_planning(
    *,
    num_frames: Any = None,
    budget: Any = None,
    method: Any = None,
    method_params: Any = None,
    fastv: Any = None,
) -> None:
    """Refuse planning options that no plan can take (``None`` means the model's default)."""
    if fastv is not None and not isinstance(fastv, FastV):
        raise InvalidArgumentError(
            f"fastv must be a vidpool.options.FastV (e.g. FastV(layer=2, budget=64)), got {type(fastv).__name__}"
        )
    for name, value in (("num_frames", num_frames), ("budget", budget)):
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


GENERATE_KEYS = ("max_new_tokens", "temperature", "top_p", "seed", "stop")


def run_device(device: str | None, plan_: Any, plan_options: dict[str, Any]) -> str:
    """The device a run uses (``device``, else the plan's, else :func:`default_device`), once it and the
    planning options are known to be usable; options that a given ``plan_`` would ignore are refused."""
    if plan_ is None:
        keys = ("num_frames", "budget", "method", "method_params", "fastv")
        check_planning(**{k: plan_options.get(k) for k in keys})
        return check_device(device or default_device())
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
    device: str | None,
    prompt: Any,
    max_new_tokens: Any,
    temperature: Any,
    top_p: Any,
    seed: Any,
    **planning: Any,
) -> tuple[str, dict[str, Any]]:
    """Check a captioning run's options before its model loads: ``(device, generation defaults)``
    (``device=None``: :func:`default_device`).

    ``planning`` are :func:`check_planning`'s options and ``max_memory`` (checked by the planner).
    """
    check_planning(**{k: v for k, v in planning.items() if k != "max_memory"})
    check_generation(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    check_question(prompt)
    generation = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p, "seed": seed}
    return check_device(device or default_device()), generation


def plan_changes(plan_: Any, request: dict[str, Any] | None = None) -> list[str]:
    """What ``plan_`` changed from the request, one line each, for a surface to say (``vidpool chat`` and
    ``caption`` print them on stderr, the demo shows them).

    The lines are the plan's notes (fewer frames than the video or the request, another method or a
    smaller budget to fit the context or the memory, layers offloaded), then a line for any option of
    ``request`` (:func:`vidpool.plan`'s ``num_frames``, ``budget``, ``method``; ``None``: the
    model's default) whose planned value differs and that no note names.
    """
    lines = [str(note) for note in plan_.notes]
    asked = request or {}
    for key, field, what in (
        ("num_frames", "num_frames", "frames"),
        ("method", "method", "method"),
        ("budget", "budget", "budget"),
    ):
        want, got = asked.get(key), getattr(plan_, field)
        if want is not None and want != got and not any(str(got) in line for line in lines):
            lines.append(f"{what} {got!r} planned instead of the {want!r} asked for")
    return lines


# -- argparse types: both command lines (``vidpool``, ``vidpool bench``) take these ----------------
def checked(convert: Callable[[str], Any], check: Callable[[Any], Any]) -> Callable[[str], Any]:
    """An argparse type: ``convert`` the text, then apply one of this module's checks, so that a command
    and the library refuse the same values with the same words (a usage error, exit 2)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        try:
            check(value)
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    return parse


def _int_at_least(text: str, low: int, words: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"expected {words}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0, "an integer >= 0")


def method_name(text: str) -> str:
    """An argparse type: a registered compression method."""
    try:
        check_planning(method=text)
    except UnknownMethodError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def comma_list(convert: Callable[[str], Any]) -> Callable[[str], tuple]:
    """An argparse type: a comma-separated list (``static,count``), each item through ``convert``.

    Every list option of every command takes this one form, so a list is written the same way
    everywhere.
    """

    def parse(text: str) -> tuple:
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list such as a,b, got {text!r}")
        return tuple(convert(p) for p in parts)

    return parse
