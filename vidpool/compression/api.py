"""The public face of the compression library: ``compress``, ``num_output_tokens``, ``resolve``."""

from __future__ import annotations

from typing import Any

import torch

from vidpool.compression.registry import MethodPlan, get_method
from vidpool.compression.result import Compressed
from vidpool.compression.validate import check_finite_values, check_tokens
from vidpool.errors import InvalidArgumentError

__all__ = ["compress", "num_output_tokens", "resolve"]


def resolve(
    method: str, shape: tuple[int, int, int], *, budget: int | None = None, **params: Any
) -> MethodPlan:
    """The parameters ``method`` will run with on a ``(T, H, W)`` input, and its exact token count.

    A budget is turned into shapes here; nothing is computed on tensors. A shape that is not three
    positive integers, or a budget that is not a positive integer, raises :class:`InvalidArgumentError`.
    """
    return get_method(method).checked_resolve(shape, budget, params)


def num_output_tokens(
    method: str, shape: tuple[int, int, int], *, budget: int | None = None, **params: Any
) -> int:
    """Tokens ``compress`` will return for a ``(T, H, W)`` input, without running it.

    Always equal to ``Compressed.num_tokens``, except ``temporal_merge`` driven by a threshold, whose
    count depends on the content: there it is the upper bound ``T·H·W``.
    """
    return resolve(method, shape, budget=budget, **params).num_tokens


def compress(
    tokens: torch.Tensor | Compressed,
    method: str,
    *,
    budget: int | None = None,
    scores: torch.Tensor | None = None,
    check_finite: bool = True,
    **params: Any,
) -> Compressed:
    """Compress visual tokens with a named method.

    Args:
        tokens: ``[B, T, H, W, C]``, or ``[T, H, W, C]`` for one video (then the result is unbatched),
            or a grid-keeping :class:`Compressed` result to compress further.
        method: a name from :func:`list_methods`.
        budget: the most output tokens wanted; the method picks its own shape parameters to fit it.
        scores: ``[B, T, H, W]`` prompt relevance (see :func:`prompt_scores`) for methods that use it
            (``prompt_guided``, ``progressive``).
        check_finite: refuse ``tokens`` or ``scores`` holding NaN or Inf. The check is one sum over
            the input, a read of it with no temporary (about a fifth of a second for 256 CLIP-L frames
            in float32 on two CPU cores), and on a GPU one device sync; pass ``False`` on hot paths
            whose inputs are known to be finite, and inside ``torch.compile`` or CUDA graphs.
        **params: the method's own parameters (see ``get_method(name).parameters()``).

    Returns:
        :class:`Compressed` with ``tokens`` ``[B, N, C]`` (or ``[N, C]``), ``N == num_output_tokens(...)``.

    Raises:
        InvalidArgumentError: for inputs no method can take (wrong type, rank or dtype, an empty axis,
            NaN or Inf, scores of the wrong shape, a budget that is not a positive integer), before
            any method runs.
    """
    previous = tokens if isinstance(tokens, Compressed) else None
    if previous is not None:
        tokens = previous.as_grid()
    check_tokens(tokens, scores)
    impl = get_method(method)
    if scores is not None and not impl.uses_scores:
        users = ", ".join(n for n in _methods_using_scores())
        raise InvalidArgumentError(f"method {method!r} does not use scores; methods that do: {users}")
    shape = tuple(tokens.shape[-4:-1])
    plan = impl.checked_resolve(shape, budget, params)
    if check_finite:
        check_finite_values(tokens, scores)  # before batching, so errors name the caller's indices
    single = tokens.dim() == 4
    x = tokens.unsqueeze(0) if single else tokens
    if scores is not None and single:
        scores = scores.unsqueeze(0)
    out = impl.run(x, plan, scores)
    if plan.exact and out.tokens.shape[1] != plan.num_tokens:  # pragma: no cover - a bug in a method
        raise AssertionError(f"{method} produced {out.tokens.shape[1]} tokens, planned {plan.num_tokens}")
    result = Compressed(
        tokens=out.tokens[0] if single else out.tokens,
        assign=out.assign[0] if single else out.assign,
        weight=out.weight[0] if single else out.weight,
        method=method,
        params=dict(plan.params),
        input_shape=shape,
        grid=plan.grid if impl.keeps_grid else None,
        mask=None if out.mask is None else (out.mask[0] if single else out.mask),
    )
    return result if previous is None else _compose(previous, result)


def _compose(first: Compressed, second: Compressed) -> Compressed:
    """Provenance of ``second`` (run on ``first``'s grid) traced back to ``first``'s input positions."""
    a1, w1 = first.assign, first.weight
    a2, w2 = second.assign.flatten(-3), second.weight.flatten(-3)
    idx = a1.clamp_min(0).flatten(-3)
    assign = torch.gather(a2, -1, idx).view_as(a1)
    weight = torch.gather(w2, -1, idx).view_as(w1) * w1
    dropped = (a1 < 0) | (assign < 0)
    second.assign = assign.masked_fill(dropped, -1)
    second.weight = weight.masked_fill(dropped, 0.0)
    second.input_shape = first.input_shape
    second.params = {**second.params, "after": {"method": first.method, **first.params}}
    return second


def _methods_using_scores() -> list[str]:
    from vidpool.compression.registry import list_methods

    return [n for n in list_methods() if get_method(n).uses_scores]
