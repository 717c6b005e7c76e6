"""The one registry of named compression methods.

A method is a class with two halves:

* ``resolve(shape, budget, **params)`` — pure Python; resolves a budget into shapes and returns a
  :class:`MethodPlan` whose ``num_tokens`` is the exact count ``run`` will produce. Callers (prompt
  placeholders, the memory planner) use it before any tensor exists (``vidpool.resolve`` calls it).
  A ``MethodPlan`` is one method's shapes; the memory and context plan of a run is
  :class:`vidpool.schedule.Plan`.
* ``run(x, plan, scores)`` — pure tensor code over ``[B, T, H, W, C]``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

import torch

from vidpool.compression.validate import check_budget_value, check_shape
from vidpool.errors import InvalidArgumentError, UnknownMethodError

__all__ = [
    "Method",
    "MethodPlan",
    "Output",
    "get_method",
    "list_methods",
    "register",
    "resolve_compression",
    "uses_joint",
    "with_budget",
]

_REGISTRY: dict[str, Method] = {}


@dataclass(frozen=True)
class MethodPlan:
    """Resolved parameters of one method for one input shape.

    ``num_tokens`` is exact, except for content-dependent methods where ``exact`` is False and it is
    an upper bound.
    """

    num_tokens: int
    params: dict[str, Any] = field(default_factory=dict)
    grid: tuple[int, int, int] | None = None
    exact: bool = True


@dataclass
class Output:
    """What ``Method.run`` returns: tokens ``[B, N, C]``, assign/weight ``[B, T, H, W]``, optional mask ``[B, N]``."""

    tokens: torch.Tensor
    assign: torch.Tensor
    weight: torch.Tensor
    mask: torch.Tensor | None = None


class Method:
    """Base class of a compression method. Subclasses set ``name`` and implement ``resolve`` and ``run``."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    uses_scores: ClassVar[bool] = False
    #: the encoder layers its input concatenates along channels (``CLIPEncoder.encode_frames(frames,
    #: layers=...)``) with its default weights; ``None``: the one layer a video LM reads
    input_layers: ClassVar[tuple[int, ...] | None] = None
    keeps_grid: ClassVar[bool] = False
    #: the shape parameters a budget resolves (``spatial``: stride and size); they exclude a budget
    budget_replaces: ClassVar[tuple[str, ...]] = ()

    def resolve(self, shape: tuple[int, int, int], budget: int | None = None, **params: Any) -> MethodPlan:
        raise NotImplementedError

    def run(self, x: torch.Tensor, plan: MethodPlan, scores: torch.Tensor | None = None) -> Output:
        raise NotImplementedError

    def parameters(self) -> list[str]:
        """Names of the keyword parameters ``resolve`` accepts (besides ``budget``)."""
        return list(_resolve_parameters(type(self)))

    def check_names(self, params: dict[str, Any]) -> None:
        """Raise :class:`InvalidArgumentError` for parameter names the method does not take."""
        unknown = sorted(set(params) - set(self.parameters()))
        if unknown:
            accepted = ", ".join(self.parameters()) or "no parameters besides budget"
            raise InvalidArgumentError(
                f"method {self.name!r} got unknown parameter(s) {', '.join(unknown)}; it accepts: {accepted}"
            )

    def checked_resolve(
        self, shape: tuple[int, int, int], budget: int | None, params: dict[str, Any]
    ) -> MethodPlan:
        """``resolve`` with argument checking that names what the method accepts."""
        self.check_names(params)
        return self.resolve(check_shape(shape), check_budget_value(budget), **params)

    def __repr__(self) -> str:
        return f"<vidpool method {self.name!r}: {self.summary}>"


@cache
def _resolve_parameters(cls: type[Method]) -> tuple[str, ...]:
    """Keyword parameters of ``cls.resolve``, read once per class (``compress`` checks them on every call)."""
    sig = inspect.signature(cls.resolve)
    return tuple(p for p in sig.parameters if p not in ("self", "shape", "budget"))


def register(cls: type[Method]) -> type[Method]:
    """Class decorator adding a method to the registry under ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"method name {cls.name!r} is empty or already registered")
    _REGISTRY[cls.name] = cls()
    return cls


def list_methods() -> list[str]:
    """Names of all registered compression methods, sorted."""
    return sorted(_REGISTRY)


def get_method(name: str) -> Method:
    """The registered method called ``name``; raises :class:`UnknownMethodError` listing the valid names."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise UnknownMethodError(
            f"unknown compression method {name!r}; available: {', '.join(list_methods())}"
        ) from None


def uses_joint(method: str, joint_space: bool) -> bool:
    """Whether a run of ``method`` encodes joint-space patch embeddings beside the features.

    The one answer to that question (models and the planner ask it here): only a method that takes
    prompt scores needs them, and only on a model with a joint image-text space (``joint_space``: a CLIP
    text tower) to score in; elsewhere such a method runs unguided.
    """
    return bool(joint_space) and bool(get_method(method).uses_scores)


def with_budget(
    method: str,
    default_params: dict[str, Any] | None,
    budget: int | None,
    params: dict[str, Any] | None = None,
    *,
    default_budget: int | None = None,
) -> tuple[dict[str, Any], int | None]:
    """``(params, budget)`` a call runs ``method`` with, given defaults (a checkpoint's) and its own choices.

    The defaults' shape parameters (``method.budget_replaces``, e.g. ``spatial``'s ``stride``/``size``)
    and ``default_budget`` size the output only when the call sizes nothing itself: a call's ``budget``
    or any shape parameter of its own replaces them all. Other defaults (``mode``, ``temperature``...)
    stay unless ``params`` overrides them. Giving a budget and a shape parameter in the same call is
    a contradiction: :class:`InvalidArgumentError` names both.
    """
    replaces = get_method(method).budget_replaces
    params = dict(params or {})
    own_shape = sorted(k for k in params if k in replaces)
    if budget is not None and own_shape:
        raise InvalidArgumentError(
            f"budget={budget} and {', '.join(f'{k}={params[k]!r}' for k in own_shape)} both size "
            f"{method!r}'s output; pass the budget or the shape parameter(s), not both"
        )
    merged = dict(default_params or {})
    if budget is not None or own_shape:
        merged = {k: v for k, v in merged.items() if k not in replaces}
    else:
        budget = default_budget
    merged.update(params)
    return merged, budget


def resolve_compression(
    default_method: str,
    default_params: dict[str, Any] | None,
    default_budget: int | None,
    method: str | None = None,
    budget: int | None = None,
    params: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any], int | None]:
    """``(method, params, budget)`` of a call over a checkpoint's defaults.

    ``method=None`` means the default method, which keeps its default parameters; another method starts
    from its own. A budget or a shape parameter in the call replaces the default's sizing (its
    ``stride``, ``size``, ... and the default budget): :func:`vidpool.compression.registry.with_budget`.
    The result is a fixed point: resolving it again gives it back, so a plan's choice passes through
    ``VideoLM.visual_tokens`` unchanged.
    """
    chosen = method or default_method
    defaults = default_params if chosen == default_method else None
    merged, budget = with_budget(chosen, defaults, budget, params, default_budget=default_budget)
    return chosen, merged, budget
