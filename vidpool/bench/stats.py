"""Accuracy with Wilson intervals, paired comparisons of two methods, and fidelity to the full tokens.

Every function takes per-question correctness (``[n]`` bools, one entry per question) and, optionally,
each question's *unit* (``[n]`` labels): the unit of independence. Questions that share a clip (the
benchmark's ``direction`` items ``2k`` and ``2k + 1`` are one clip forwards and backwards) share a
unit; without ``units`` every question is its own. Pure numpy.

- A single accuracy gets a 95% **Wilson score interval** (honest at 0 and 1 right, where a percentile
  bootstrap collapses to a point), on an effective sample size ``n / deff``: ``deff`` is the design
  effect of the units (the ratio estimator's between-unit variance over the binomial variance),
  kept between 1 (independent questions) and ``n / units`` (the questions of a unit always agree);
  with every question right or every one wrong there is no variance to estimate it from, and the
  interval takes the cautious end, ``n / units``.
- Differences and fidelity ratios get a **cluster bootstrap**: units are drawn with replacement
  (seeded, so a rerun gives the same numbers) and carry all their questions with them.
- Paired tests are **sign-flip tests on unit-level differences**: under "no difference" the two
  methods' labels are exchangeable within a unit, so each unit's summed difference is equally likely
  to have either sign; the exact two-sided p-value comes from that distribution. With one question a
  unit it is McNemar's exact test.
- :func:`holm` adjusts the p-values of every comparison of a run together.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "DEFAULT_RESAMPLES",
    "Estimate",
    "Paired",
    "accuracy",
    "bootstrap_indices",
    "design_effect",
    "fidelity",
    "holm",
    "paired",
    "sign_flip_p",
    "unit_codes",
    "wilson",
]

#: resamples per interval; 2000 puts the Monte Carlo error of a 95% bound well below a point
DEFAULT_RESAMPLES = 2000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval ``[low, high]`` over ``n`` questions in ``n_units`` units."""

    value: float
    low: float
    high: float
    n: int
    n_units: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True)
class Paired:
    """``a`` minus ``b`` on the same ``n`` questions (``n_units`` units).

    ``diff`` is the accuracy difference with its cluster-bootstrap 95% interval ``[low, high]``;
    ``a_only``/``b_only`` count the questions only ``a``/only ``b`` answered right, and ``p_value`` is
    the exact two-sided sign-flip test on the units' summed differences (``test``).
    """

    diff: float
    low: float
    high: float
    p_value: float
    a_only: int
    b_only: int
    n: int
    n_units: int
    test: str = "sign-flip"

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def _as_bool(correct: np.ndarray | list, name: str = "correct") -> np.ndarray:
    arr = np.asarray(correct)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of per-question results, got shape {arr.shape}"
        )
    return arr.astype(bool)


def unit_codes(units: Sequence | np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """``([n] unit index per question, number of units)``; ``None``: every question its own unit."""
    if units is None:
        return np.arange(n), n
    labels = np.asarray(units)
    if labels.shape != (n,):
        raise ValueError(f"units must give one label per question: {labels.shape} for {n} questions")
    _, codes = np.unique(labels, return_inverse=True)
    codes = codes.reshape(-1)
    return codes, int(codes.max()) + 1


def bootstrap_indices(n: int, resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> np.ndarray:
    """``[resamples, n]`` indices (of units) drawn with replacement, from a seeded generator."""
    if n < 1 or resamples < 1:
        raise ValueError(f"need n >= 1 and resamples >= 1, got n={n}, resamples={resamples}")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _draw_counts(units: int, resamples: int, seed: int) -> np.ndarray:
    """``[resamples, units]`` how often each unit is drawn in each cluster-bootstrap resample."""
    idx = bootstrap_indices(units, resamples, seed)
    flat = idx + units * np.arange(resamples)[:, None]
    return np.bincount(flat.reshape(-1), minlength=resamples * units).reshape(resamples, units)


def _unit_sums(values: np.ndarray, codes: np.ndarray, units: int) -> np.ndarray:
    return np.bincount(codes, weights=values.astype(np.float64), minlength=units)


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2 * 100
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(hits: float, n: float, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``hits / n`` (``n`` may be an effective, fractional size).

    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``, clipped to ``[0, 1]``; 8 of 8 gives
    ``[0.676, 1]`` at 95%.
    """
    if n <= 0:
        return 0.0, 1.0
    z = _z(level)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(max(p * (1 - p), 0.0) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # at p = 0 (1) the lower (upper) bound is exactly 0 (1); the formula leaves a rounding residue
    low = 0.0 if p <= 0 else max(0.0, centre - half)
    high = 1.0 if p >= 1 else min(1.0, centre + half)
    return low, high


def design_effect(correct: np.ndarray | list, units: Sequence | np.ndarray | None = None) -> float:
    """How many questions count as one independent question: in ``[1, n / units]``.

    The between-unit variance of the mean (ratio estimator, ``U / (U - 1) · Σ_u (S_u - p·m_u)² / n²``
    with ``S_u`` right answers of the ``m_u`` questions of unit ``u``) over the binomial ``p(1-p)/n``;
    ``n / units`` (the cautious end) when every answer is the same or there is one unit.
    """
    c = _as_bool(correct)
    codes, u = unit_codes(units, c.size)
    n, most = c.size, c.size / u
    if u == n:
        return 1.0
    p = float(c.mean())
    if p in (0.0, 1.0) or u == 1:
        return most
    sums, sizes = _unit_sums(c, codes, u), np.bincount(codes, minlength=u)
    between = u / (u - 1) * float(((sums - p * sizes) ** 2).sum()) / n**2
    return float(np.clip(between / (p * (1 - p) / n), 1.0, most))


def accuracy(
    correct: np.ndarray | list, units: Sequence | np.ndarray | None = None, *, level: float = 0.95
) -> Estimate:
    """Share of questions answered right, with a Wilson interval on the design-effect sample size.

    Args:
        correct: ``[n]`` bools.
        units: ``[n]`` unit labels (default: every question its own unit).

    Returns:
        :class:`Estimate`; 8 of 8 independent questions give ``1 [0.676, 1]``.
    """
    c = _as_bool(correct)
    _, u = unit_codes(units, c.size)
    effective = c.size / design_effect(c, units)
    low, high = wilson(float(c.mean()) * effective, effective, level)
    return Estimate(float(c.mean()), low, high, int(c.size), u)


def fidelity(
    correct: np.ndarray | list,
    full_correct: np.ndarray | list,
    units: Sequence | np.ndarray | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Estimate:
    """Accuracy divided by the full-token accuracy on the same questions, as compression papers report.

    Both accuracies come from the same resampled units (cluster bootstrap), so the interval is that of
    the ratio, not of two independent numbers. Resamples where the full tokens got nothing right are
    left out; when the full tokens never answer right the fidelity is NaN.

    Args:
        correct, full_correct: ``[n]`` bools over the same questions, in the same order.
        units: ``[n]`` unit labels (default: every question its own unit).
    """
    c, f = _as_bool(correct), _as_bool(full_correct, "full_correct")
    if c.shape != f.shape:
        raise ValueError(f"correct and full_correct must cover the same questions: {c.shape} vs {f.shape}")
    codes, u = unit_codes(units, c.size)
    draws = _draw_counts(u, resamples, seed)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = (draws @ _unit_sums(c, codes, u)) / (draws @ _unit_sums(f, codes, u))
        value = float(c.mean() / f.mean()) if f.any() else math.nan
    low, high = _interval(np.where(np.isfinite(ratios), ratios, np.nan), level)
    return Estimate(value, low, high, int(c.size), u)


def sign_flip_p(differences: np.ndarray | list) -> float:
    """Exact two-sided p-value of the sign-flip test: ``P(|Σ_u s_u·d_u| >= |Σ_u d_u|)`` with each sign
    ``s_u`` ±1 at even odds.

    Args:
        differences: ``[U]`` integers, each unit's right answers of one method minus the other's.

    The null distribution is a convolution of one binomial per distinct ``|d|`` (units with the same
    magnitude only differ in how many are positive), exact up to float rounding.
    """
    d = np.abs(np.asarray(differences, dtype=np.int64))
    observed = abs(int(np.asarray(differences, dtype=np.int64).sum()))
    d = d[d > 0]
    if d.size == 0 or observed == 0:
        return 1.0
    dist = np.ones(1)  # P(T = t) at index t + offset
    for magnitude, count in zip(*np.unique(d, return_counts=True)):
        k, c = int(magnitude), int(count)
        j = np.arange(c + 1)
        log_pmf = [math.lgamma(c + 1) - math.lgamma(i + 1) - math.lgamma(c - i + 1) for i in j]
        pmf = np.exp(np.asarray(log_pmf) - c * math.log(2))
        step = np.zeros(2 * k * c + 1)
        step[2 * k * j] = pmf  # value k·(2j - c) at index k·(2j - c) + k·c
        dist = np.convolve(dist, step)
    offset = (dist.size - 1) // 2
    t = np.arange(dist.size) - offset
    return float(min(1.0, dist[np.abs(t) >= observed].sum()))


def paired(
    a: np.ndarray | list,
    b: np.ndarray | list,
    units: Sequence | np.ndarray | None = None,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> Paired:
    """Compare two methods on the same questions: accuracy of ``a`` minus that of ``b``.

    Args:
        a, b: ``[n]`` bools, entry ``i`` of both being the same question.
        units: ``[n]`` unit labels (default: every question its own unit).

    Returns:
        :class:`Paired` with the difference, its cluster-bootstrap interval and the sign-flip p-value.
    """
    x, y = _as_bool(a, "a"), _as_bool(b, "b")
    if x.shape != y.shape:
        raise ValueError(
            f"a paired comparison needs the same questions on both sides: {x.shape} vs {y.shape}"
        )
    d = x.astype(np.int64) - y.astype(np.int64)
    codes, u = unit_codes(units, d.size)
    per_unit = _unit_sums(d, codes, u)
    draws = _draw_counts(u, resamples, seed)
    sizes = np.bincount(codes, minlength=u).astype(np.float64)
    low, high = _interval((draws @ per_unit) / (draws @ sizes), level)
    a_only, b_only = int((d > 0).sum()), int((d < 0).sum())
    p = sign_flip_p(np.rint(per_unit).astype(np.int64))
    return Paired(float(d.mean()), low, high, p, a_only, b_only, int(d.size), u)


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
