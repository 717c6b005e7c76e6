"""Token-budget solvers: choose output shapes that fit a budget and use it well.

Every solver returns shapes whose token count is ``<= budget``. Among the shapes within 5% of the
largest count that fits, it picks the one that pools all axes most evenly (the smallest largest
per-axis pooling factor), so a budget is spent on a near-isotropic grid rather than on one axis.
"""

from __future__ import annotations

import math
from functools import lru_cache

from vidpool.errors import BudgetError

__all__ = [
    "USE_FRACTION",
    "check_budget",
    "fixed_budget",
    "grid_for_budget",
    "plane_for_budget",
    "window_overlap",
]

# Candidates within this fraction of the best count that fits are considered equally full.
USE_FRACTION = 0.95


def check_budget(method: str, budget: int, smallest: int, shape: tuple[int, int, int]) -> None:
    """Raise :class:`BudgetError` naming ``smallest`` when ``budget`` is below it."""
    if budget < smallest:
        t, h, w = shape
        raise BudgetError(
            f"budget {budget} is too small for method {method!r} on a {t}x{h}x{w} input: "
            f"the smallest possible budget is {smallest} tokens",
            min_budget=smallest,
        )


def fixed_budget(method: str, budget: int | None, count: int, shape: tuple[int, int, int]) -> None:
    """For methods whose output size is fixed by design: refuse a budget below that size."""
    if budget is not None and budget < count:
        t, h, w = shape
        raise BudgetError(
            f"method {method!r} always gives {count} tokens for a {t}x{h}x{w} input and cannot fit "
            f"a budget of {budget}; raise the budget to at least {count} or pick a method that adapts "
            "to budgets (adaptive, spatial, prompt_guided, progressive, slowfast, temporal_merge)",
            min_budget=count,
        )


def _pick(cands: list[tuple[float, int, tuple[int, ...]]]) -> tuple[int, ...]:
    """``cands``: (cost, count, shape). Keep those near the best count, then the cheapest."""
    best = max(c[1] for c in cands)
    near = [c for c in cands if c[1] >= USE_FRACTION * best]
    return min(near, key=lambda c: (c[0], -c[1], tuple(-s for s in c[2])))[2]


@lru_cache(maxsize=8192)
def plane_for_budget(height: int, width: int, area: int) -> tuple[int, int] | None:
    """Per-frame grid ``(h, w)`` with ``h <= H``, ``w <= W``, ``h*w <= area``; ``None`` if ``area < 1``."""
    if area < 1:
        return None
    if area >= height * width:
        return height, width
    cands = []
    for h in range(1, height + 1):
        w = min(width, area // h)
        if w < 1:
            break
        cands.append((max(height / h, width / w), h * w, (h, w)))
    return _pick(cands)  # type: ignore[return-value]


def window_overlap(size: int, out: int) -> float:
    """How many windows cover an input index on average when ``out`` windows are laid over ``size``
    with ``stride = size // out`` and ``kernel = size - (out - 1) * stride`` (1.0: no overlap)."""
    stride = size // out
    return (size - (out - 1) * stride) / stride


@lru_cache(maxsize=8192)
def grid_for_budget(
    shape: tuple[int, int, int], budget: int, windows: bool = False
) -> tuple[int, int, int] | None:
    """Output grid ``(t, h, w)`` within ``shape`` with at most ``budget`` cells; ``None`` if ``budget < 1``.

    With ``windows=True`` the grid drives strided windows (``prompt_guided``: ``stride = I // O``,
    ``kernel = I - (O - 1)·stride``), whose cost grows with their overlap: among grids that use at least
    90% of the budget (or are within 5% of the fullest), the one with the smallest product of pooling
    unevenness and window overlap is taken, so a budget never turns into windows ten patches wide.
    """
    t_in, h_in, w_in = shape
    if budget < 1:
        return None
    if budget >= t_in * h_in * w_in:
        return shape
    cands = []
    for t in range(1, t_in + 1):
        for h in range(1, h_in + 1):
            w = min(w_in, budget // (t * h))
            if w < 1:
                break
            cands.append((max(t_in / t, h_in / h, w_in / w), t * h * w, (t, h, w)))
    if not windows:
        return _pick(cands)  # type: ignore[return-value]
    best = max(c[1] for c in cands)
    floor = min(0.9 * budget, USE_FRACTION * best)
    full = [c for c in cands if c[1] >= floor]

    def overlap(grid: tuple[int, ...]) -> float:
        return math.prod(window_overlap(i, o) for i, o in zip(shape, grid))

    return min(full, key=lambda c: (c[0] * overlap(c[2]), -c[1]))[2]  # type: ignore[return-value]
