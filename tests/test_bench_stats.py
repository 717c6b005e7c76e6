"""The benchmark's statistics against known answers and scipy's own tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidpool.bench.stats import accuracy, bootstrap_indices, fidelity, holm, mcnemar_exact, paired


def test_all_right_and_all_wrong_have_degenerate_intervals():
    assert accuracy([True] * 50).as_dict() == {"value": 1.0, "low": 1.0, "high": 1.0, "n": 50}
    est = accuracy(np.zeros(30, dtype=bool))
    assert (est.value, est.low, est.high) == (0.0, 0.0, 0.0)


def test_interval_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(1)
    correct = rng.random(300) < 0.7
    first, again = accuracy(correct, seed=3), accuracy(correct, seed=3)
    assert first == again
    assert first.low < first.value < first.high
    # the normal approximation's half width, sqrt(p(1-p)/n) * 1.96, is what a percentile bootstrap gives
    half = 1.96 * math.sqrt(first.value * (1 - first.value) / 300)
    assert (first.high - first.low) / 2 == pytest.approx(half, rel=0.12)


def test_interval_covers_the_true_accuracy_95_percent_of_the_time():
    # Simulated Bernoulli questions with a known accuracy; the 95% interval must cover it about 95% of
    # the time (400 trials: the binomial standard error of the coverage is about 1.1 points).
    rng = np.random.default_rng(0)
    truth, n, trials = 0.7, 200, 400
    covered = 0
    for t in range(trials):
        est = accuracy(rng.random(n) < truth, seed=t, resamples=2000)
        covered += est.low <= truth <= est.high
    assert 0.91 <= covered / trials <= 0.98


def test_mcnemar_textbook_example():
    # by hand: 1 vs 9 discordant pairs, P(X <= 1) for X ~ Bin(10, 1/2) is (1 + 10) / 2^10, doubled
    assert mcnemar_exact(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_exact(9, 1) == mcnemar_exact(1, 9)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0


@pytest.mark.parametrize(("b", "c"), [(3, 12), (40, 61), (150, 190), (700, 650)])
def test_mcnemar_matches_scipys_exact_binomial_test(b, c):
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9)


def test_paired_difference_counts_discordant_questions():
    a = np.array([1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    b = np.array([1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    out = paired(a, b)
    assert out.diff == pytest.approx((5 - 3) / 8)
    assert (out.a_only, out.b_only, out.n) == (3, 1, 8)
    assert out.p_value == pytest.approx(mcnemar_exact(3, 1))
    assert out.low <= out.diff <= out.high


def test_pairing_tells_a_small_difference_from_noise():
    # Two methods that agree on most questions and differ on 3% of them, always in a's favour: the
    # paired interval excludes 0 while the two unpaired intervals overlap.
    rng = np.random.default_rng(5)
    n = 600
    b = rng.random(n) < 0.6
    a = b.copy()
    flip = np.flatnonzero(~b)[:18]
    a[flip] = True
    out = paired(a, b)
    assert out.low > 0 and out.p_value < 0.001
    ea, eb = accuracy(a), accuracy(b)
    assert ea.low < eb.high


def test_paired_needs_the_same_questions():
    with pytest.raises(ValueError, match="same questions"):
        paired([True, False], [True])


def test_fidelity_is_the_ratio_with_an_interval_from_the_same_resamples():
    rng = np.random.default_rng(2)
    full = rng.random(400) < 0.8
    method = full & (rng.random(400) < 0.9)
    est = fidelity(method, full)
    assert est.value == pytest.approx(method.mean() / full.mean())
    assert est.low < est.value < est.high < 1.0  # the method is right only where the full tokens are
    same = fidelity(full, full)
    assert (same.value, same.low, same.high) == (1.0, 1.0, 1.0)


def test_fidelity_without_a_right_full_answer_is_nan():
    est = fidelity([True, False], [False, False])
    assert math.isnan(est.value) and math.isnan(est.low)


def test_bootstrap_indices_are_seeded():
    assert np.array_equal(bootstrap_indices(10, 5, seed=1), bootstrap_indices(10, 5, seed=1))
    assert bootstrap_indices(10, 2000).shape == (2000, 10)


def test_holm_adjustment_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 scaled by 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert np.allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert holm([]).size == 0
