"""Accuracy with bootstrap intervals, paired comparisons of two methods, and fidelity to the full tokens.

Every function takes per-question correctness (``[n]`` bools, one entry per question) and is pure numpy.
Intervals are 95% percentile bootstrap intervals over questions, from a seeded generator, so a rerun
gives the same numbers. Paired functions resample the *same* questions for both sides: the question's
difficulty cancels, which is what lets a 2-point difference stand out from noise at a few hundred
questions (an unpaired interval on each side would be about twice as wide).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "Estimate",
    "Paired",
    "accuracy",
    "bootstrap_indices",
    "fidelity",
    "holm",
    "mcnemar_exact",
    "paired",
]

#: resamples per interval; 2000 puts the Monte Carlo error of a 95% bound well below a point
DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval ``[low, high]`` over ``n`` questions."""

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Paired:
    """``a`` minus ``b`` on the same ``n`` questions.

    ``diff`` is the accuracy difference with its paired-bootstrap 95% interval ``[low, high]``;
    ``a_only``/``b_only`` count the questions only ``a``/only ``b`` answered right (McNemar's discordant
    pairs) and ``p_value`` is the exact two-sided McNemar test on them.
    """

    diff: float
    low: float
    high: float
    p_value: float
    a_only: int
    b_only: int
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _as_bool(correct: np.ndarray | list, name: str = "correct") -> np.ndarray:
    arr = np.asarray(correct)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of per-question results, got shape {arr.shape}"
        )
    return arr.astype(bool)


def bootstrap_indices(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """``[resamples, n]`` question indices drawn with replacement, from a seeded generator."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 and resamples >= 1, got n={n}, resamples={resamples}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2 * 100
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def accuracy(
    correct: np.ndarray | list,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Share of questions answered right, with a percentile bootstrap interval.

    Args:
        correct: ``[n]`` bools.

    Returns:
        :class:`Estimate`; all right gives ``1 [1, 1]``, all wrong ``0 [0, 0]``.
    """
    c = _as_bool(correct)
    idx = bootstrap_indices(c.size, resamples, seed)
    low, high = _interval(c[idx].mean(axis=1), level)
    return Estimate(float(c.mean()), low, high, int(c.size))


def fidelity(
    correct: np.ndarray | list,
    full_correct: np.ndarray | list,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Accuracy divided by the full-token accuracy on the same questions, as compression papers report.

    Both accuracies come from the same resampled questions, so the interval is that of the ratio, not of
    two independent numbers. Resamples where the full tokens got nothing right are left out; when the
    full tokens never answer right the fidelity is NaN.

    Args:
        correct, full_correct: ``[n]`` bools over the same questions, in the same order.
    """
    c, f = _as_bool(correct), _as_bool(full_correct, "full_correct")
    if c.shape != f.shape:
        raise ValueError(f"correct and full_correct must cover the same questions: {c.shape} vs {f.shape}")
    idx = bootstrap_indices(c.size, resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = c[idx].mean(axis=1) / f[idx].mean(axis=1)
        value = float(c.mean() / f.mean()) if f.any() else math.nan
    low, high = _interval(np.where(np.isfinite(ratios), ratios, np.nan), level)
    return Estimate(value, low, high, int(c.size))


def mcnemar_exact(a_only: int, b_only: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts.

    Under the null each discordant question is a fair coin, so ``min(a_only, b_only)`` is binomial with
    ``a_only + b_only`` trials and p = 1/2; the two-sided p-value doubles its lower tail (at most 1).
    """
    if a_only < 0 or b_only < 0:
        raise ValueError(f"discordant counts must be >= 0, got {a_only} and {b_only}")
    n = a_only + b_only
    if n == 0:
        return 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integer arithmetic, one rounding at the end


def paired(
    a: np.ndarray | list,
    b: np.ndarray | list,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Paired:
    """Compare two methods on the same questions: accuracy of ``a`` minus that of ``b``.

    Args:
        a, b: ``[n]`` bools, entry ``i`` of both being the same question.

    Returns:
        :class:`Paired` with the difference, its paired-bootstrap interval and McNemar's exact p-value.
    """
    x, y = _as_bool(a, "a"), _as_bool(b, "b")
    if x.shape != y.shape:
        raise ValueError(
            f"a paired comparison needs the same questions on both sides: {x.shape} vs {y.shape}"
        )
    d = x.astype(np.int8) - y.astype(np.int8)
    idx = bootstrap_indices(d.size, resamples, seed)
    low, high = _interval(d[idx].mean(axis=1), level)
    a_only, b_only = int((d > 0).sum()), int((d < 0).sum())
    return Paired(float(d.mean()), low, high, mcnemar_exact(a_only, b_only), a_only, b_only, int(d.size))


def holm(p_values: np.ndarray | list) -> np.ndarray:
    """Holm's step-down adjustment of ``m`` p-values for testing them all at once.

    A run makes dozens of paired comparisons; at p < 0.05 some would pass by chance alone. An adjusted
    p-value below 0.05 keeps the chance of *any* false difference in the run under 5%.

    Returns:
        ``[m]`` adjusted p-values in the input's order, each at least its raw value and at most 1.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
