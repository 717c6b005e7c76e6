"""The benchmark's statistics against values written from the formulas and scipy's own tests."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidpool.bench.stats import (
    accuracy,
    bootstrap_indices,
    design_effect,
    fidelity,
    holm,
    paired,
    sign_flip_p,
    unit_codes,
    wilson,
)
from vidpool.bench.synth.tasks import make_items


def test_wilson_by_hand_at_all_right_and_all_wrong():
    # (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.959964:
    # 8 of 8: centre (1 + 0.24010) / 1.48019 = 0.83780, half 1.32412 · 0.12250 = 0.16221
    assert wilson(8, 8) == pytest.approx((0.67559, 1.0), abs=5e-5)
    assert wilson(0, 8) == pytest.approx((0.0, 0.32441), abs=5e-5)
    # 5 of 10: centre 0.5, half 1.95996 · sqrt(0.025 + 0.0096037) / 1.38415 = 0.26341
    assert wilson(5, 10) == pytest.approx((0.23659, 0.76341), abs=5e-5)


def test_accuracy_at_all_right_and_all_wrong_is_not_a_point():
    est = accuracy([True] * 8)
    assert est.as_dict() == pytest.approx(
        {"value": 1.0, "low": 0.67559, "high": 1.0, "n": 8, "n_units": 8}, abs=5e-5
    )
    est = accuracy(np.zeros(8, dtype=bool))
    assert (est.value, est.low) == (0.0, 0.0) and est.high == pytest.approx(0.32441, abs=5e-5)


def test_wilson_matches_scipys_binomial_confidence_interval():
    stats = pytest.importorskip("scipy.stats")
    for k, n in ((0, 8), (8, 8), (3, 17), (140, 300)):
        ci = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert wilson(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_interval_covers_the_true_accuracy_95_percent_of_the_time():
    # Simulated Bernoulli questions with a known accuracy; the 95% interval must cover it about 95% of
    # the time (400 trials: the binomial standard error of the coverage is about 1.1 points).
    rng = np.random.default_rng(0)
    truth, n, trials = 0.7, 200, 400
    covered = sum((est := accuracy(rng.random(n) < truth)).low <= truth <= est.high for _ in range(trials))
    assert 0.92 <= covered / trials <= 0.98


def _pairs(unit_right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each unit's result twice (two questions that always agree) and the units' labels."""
    return np.repeat(unit_right, 2), np.repeat(np.arange(unit_right.size), 2)


def test_perfectly_correlated_pairs_count_once():
    # 100 units of 2 questions that always agree carry the information of 100 questions, not 200:
    # the interval is Wilson's on the 100 units, and wider than the one that believes in 200.
    right = np.random.default_rng(3).random(100) < 0.6
    correct, units = _pairs(right)
    assert design_effect(correct, units) == pytest.approx(2.0)
    clustered, naive = accuracy(correct, units), accuracy(correct)
    assert (clustered.low, clustered.high) == pytest.approx(wilson(right.sum(), 100))
    assert clustered.high - clustered.low > naive.high - naive.low
    assert (clustered.n, clustered.n_units, naive.n_units) == (200, 100, 200)
    # at every question right there is no variance to estimate the design effect: the cautious end
    assert accuracy(np.ones(8, bool), np.repeat(np.arange(4), 2)).low == pytest.approx(wilson(4, 4)[0])


def test_independent_units_change_nothing():
    correct = np.random.default_rng(4).random(60) < 0.5
    assert design_effect(correct, np.arange(60)) == 1.0
    assert accuracy(correct, [f"u{i}" for i in range(60)]) == accuracy(correct)


def test_cluster_bootstrap_is_wider_than_the_question_bootstrap_for_correlated_pairs():
    rng = np.random.default_rng(7)
    a_units, b_units = rng.random(150) < 0.7, rng.random(150) < 0.5
    (a, units), (b, _) = _pairs(a_units), _pairs(b_units)
    clustered, naive = paired(a, b, units), paired(a, b)
    assert clustered.diff == naive.diff
    assert clustered.high - clustered.low > 1.25 * (naive.high - naive.low)  # about sqrt(2) wider
    assert clustered.p_value > naive.p_value
    full_units = a_units | (rng.random(150) < 0.5)
    full, _ = _pairs(full_units)
    f_clustered, f_naive = fidelity(a, full, units), fidelity(a, full)
    assert f_clustered.value == f_naive.value
    assert f_clustered.high - f_clustered.low > 1.25 * (f_naive.high - f_naive.low)


def test_cluster_bootstrap_on_pairs_equals_the_bootstrap_of_the_units():
    # a unit of two agreeing questions is one question counted twice: resampling units of the pairs
    # gives exactly the item-level bootstrap of the units' own results (same seed, same draws)
    rng = np.random.default_rng(8)
    a_units, b_units = rng.random(40) < 0.6, rng.random(40) < 0.4
    (a, units), (b, _) = _pairs(a_units), _pairs(b_units)
    got, expected = paired(a, b, units, seed=5), paired(a_units, b_units, seed=5)
    assert (got.low, got.high) == pytest.approx((expected.low, expected.high))
    assert fidelity(a, a | b, units, seed=5).low == pytest.approx(
        fidelity(a_units, a_units | b_units, seed=5).low
    )


def test_direction_pairs_share_a_unit_and_nothing_else_does():
    items = make_items("direction", 6, seed=0, num_frames=4)
    assert [i.unit for i in items[::2]] == [i.unit for i in items[1::2]]
    assert len({i.unit for i in items}) == 3
    assert items[0].scene.reverse() == items[1].scene  # the reason: one clip, played both ways
    static = make_items("static", 4, seed=0)
    assert [i.unit for i in static] == [i.id for i in static]
    assert not {i.unit for i in items} & {
        i.unit for i in make_items("direction", 6, seed=2_000_003, num_frames=4)
    }


def test_unit_codes():
    codes, u = unit_codes(["b", "a", "b", "c"], 4)
    assert u == 3 and codes[0] == codes[2] and len(set(codes.tolist())) == 3
    assert unit_codes(None, 3)[1] == 3
    with pytest.raises(ValueError, match="one label per question"):
        unit_codes(["a"], 2)


@pytest.mark.parametrize(("b", "c"), [(1, 9), (3, 12), (40, 61), (150, 190), (700, 650)])
def test_sign_flip_on_single_questions_is_mcnemars_exact_test(b, c):
    # one question a unit: the units' differences are +1 (only a right) or -1 (only b right), and the
    # sign-flip test is the exact binomial test on the discordant questions
    stats = pytest.importorskip("scipy.stats")
    expected = stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert sign_flip_p([1] * b + [-1] * c + [0] * 5) == pytest.approx(expected, rel=1e-9)
    assert sign_flip_p([1] * 5 + [-1] * 5) == 1.0 and sign_flip_p([0, 0]) == 1.0


def test_sign_flip_by_enumeration_with_units_of_several_questions():
    # d = (2, 1, 2, -1, 2): all 32 sign patterns, count those with |sum| >= |5|
    d = np.array([2, 1, 2, -1, 2])
    signs = np.array(np.meshgrid(*[[-1, 1]] * 5)).reshape(5, -1).T
    expected = (np.abs(signs @ np.abs(d)) >= abs(d.sum())).mean()
    assert sign_flip_p(d) == pytest.approx(expected)


def test_paired_difference_counts_discordant_questions():
    a = np.array([1, 1, 1, 0, 0, 1, 1, 0], dtype=bool)
    b = np.array([1, 0, 0, 0, 1, 1, 0, 0], dtype=bool)
    out = paired(a, b)
    assert out.diff == pytest.approx((5 - 3) / 8)
    assert (out.a_only, out.b_only, out.n, out.n_units, out.test) == (3, 1, 8, 8, "sign-flip")
    assert out.p_value == pytest.approx(2 * 5 / 16)  # P(X <= 1), X ~ Bin(4, 1/2), doubled
    assert out.low <= out.diff <= out.high


def test_pairing_tells_a_small_difference_from_noise():
    # Two methods that agree on most questions and differ on 3% of them, always in a's favour: the
    # paired interval excludes 0 while the two unpaired intervals overlap.
    rng = np.random.default_rng(5)
    n = 600
    b = rng.random(n) < 0.6
    a = b.copy()
    a[np.flatnonzero(~b)[:18]] = True
    out = paired(a, b)
    assert out.low > 0 and out.p_value < 0.001
    assert accuracy(a).low < accuracy(b).high


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
    a, b = np.arange(10) % 3 == 0, np.arange(10) % 2 == 0
    assert paired(a, b, seed=4) == paired(a, b, seed=4)


def test_holm_adjustment_by_hand():
    # sorted 0.005, 0.01, 0.03, 0.04 scaled by 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    assert np.allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])
    assert holm([]).size == 0
