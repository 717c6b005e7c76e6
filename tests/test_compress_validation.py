"""Inputs no method can take are refused with one InvalidArgumentError, before any method runs."""

from __future__ import annotations

import pytest
import torch

import vidpool
from vidpool import InvalidArgumentError
from vidpool.compression.validate import all_finite

METHODS = vidpool.list_methods()
SHAPE = (2, 4, 6, 6, 8)


def _with_value(value: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.randn(SHAPE).to(dtype)
    x[1, 2, 3, 4, 5] = value
    return x


# Each builds (tokens, scores-or-None); scores None means "whatever the method needs".
BAD_TOKENS = {
    "nan": lambda: _with_value(float("nan")),
    "inf": lambda: _with_value(float("inf")),
    "-inf": lambda: _with_value(float("-inf")),
    "nan-bfloat16": lambda: _with_value(float("nan"), torch.bfloat16),
    "inf-float16": lambda: _with_value(float("inf"), torch.float16),
    "empty-batch": lambda: torch.randn(0, 4, 6, 6, 8),
    "no-frames": lambda: torch.randn(2, 0, 6, 6, 8),
    "no-rows": lambda: torch.randn(2, 4, 0, 6, 8),
    "no-columns": lambda: torch.randn(2, 4, 6, 0, 8),
    "no-channels": lambda: torch.randn(2, 4, 6, 6, 0),
    "no-channels-unbatched": lambda: torch.randn(4, 6, 6, 0),
    "rank-3": lambda: torch.randn(4, 36, 8),
    "rank-6": lambda: torch.randn(1, *SHAPE),
    "int": lambda: torch.zeros(SHAPE, dtype=torch.int64),
    "bool": lambda: torch.ones(SHAPE, dtype=torch.bool),
    "complex": lambda: torch.zeros(SHAPE, dtype=torch.complex64),
    "float8": lambda: torch.zeros(SHAPE).to(torch.float8_e4m3fn),
    "list": lambda: torch.zeros(SHAPE).tolist(),
}

BAD_SCORES = {
    "scores-wrong-shape": lambda: torch.rand(2, 4, 6),
    "scores-nan": lambda: torch.rand(2, 4, 6, 6).index_fill_(0, torch.tensor([1]), float("nan")),
    "scores-inf": lambda: torch.rand(2, 4, 6, 6).index_fill_(1, torch.tensor([0]), float("inf")),
    "scores-int": lambda: torch.ones(2, 4, 6, 6, dtype=torch.long),
    "scores-other-device": lambda: torch.rand(2, 4, 6, 6, device="meta"),
    "scores-list": lambda: torch.rand(2, 4, 6, 6).tolist(),
}

BAD_BUDGETS = [-1, 0, 2.5, True, "64", float("nan")]


@pytest.fixture
def never_run(monkeypatch):
    """Make every method's ``run`` fail loudly, so a refusal is proven to come before it."""

    def run(self, x, plan, scores=None):
        raise AssertionError(f"{self.name}.run was reached")

    for name in METHODS:
        monkeypatch.setattr(type(vidpool.get_method(name)), "run", run)


def _good_scores(name: str) -> torch.Tensor | None:
    return torch.rand(2, 4, 6, 6).div_(144) if vidpool.get_method(name).uses_scores else None


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
@pytest.mark.parametrize("name", METHODS)
def test_bad_tokens_are_refused_before_any_method_runs(never_run, name, case):
    tokens = BAD_TOKENS[case]()
    with pytest.raises(InvalidArgumentError) as info:
        vidpool.compress(tokens, name)
    message = str(info.value)
    if case.startswith(("nan", "inf", "-inf")):
        assert ("NaN" if "nan" in case else "Inf") in message and "check_finite=False" in message
        assert "(1, 2, 3, 4, 5)" in message  # where the first bad value is
    elif case.startswith(("no-", "empty")):
        assert "empty axis" in message
    with pytest.raises(InvalidArgumentError):
        vidpool.TokenCompressor(name)(tokens)


@pytest.mark.parametrize("case", sorted(BAD_SCORES))
@pytest.mark.parametrize("name", METHODS)
def test_bad_scores_are_refused_before_any_method_runs(never_run, name, case):
    with pytest.raises(InvalidArgumentError, match="scores"):
        vidpool.compress(torch.randn(SHAPE), name, scores=BAD_SCORES[case]())


@pytest.mark.parametrize("budget", BAD_BUDGETS, ids=repr)
@pytest.mark.parametrize("name", METHODS)
def test_a_budget_must_be_a_positive_integer(never_run, name, budget):
    x = torch.randn(SHAPE)
    calls = [
        lambda: vidpool.compress(x, name, budget=budget, scores=_good_scores(name)),
        lambda: vidpool.num_output_tokens(name, (4, 6, 6), budget=budget),
        lambda: vidpool.resolve(name, (4, 6, 6), budget=budget),
        lambda: vidpool.TokenCompressor(name, budget=budget),
    ]
    for call in calls:
        with pytest.raises(InvalidArgumentError, match="budget must be a positive integer") as info:
            call()
        assert "smallest possible" not in str(info.value)


@pytest.mark.parametrize(
    "shape", [(0, 6, 6), (4, 6), (4, 6, 6, 1), (4, -1, 6), (4.5, 6, 6), (True, 6, 6), 7, "4x6x6"]
)
@pytest.mark.parametrize("name", METHODS)
def test_shapes_must_be_three_positive_integers(name, shape):
    with pytest.raises(InvalidArgumentError, match=r"shape must be \(T, H, W\)"):
        vidpool.num_output_tokens(name, shape)
    with pytest.raises(InvalidArgumentError, match=r"shape must be \(T, H, W\)"):
        vidpool.resolve(name, shape)


@pytest.mark.parametrize("name", METHODS)
def test_integral_budgets_and_shapes_of_other_types_still_work(name):
    import numpy as np

    expected = vidpool.num_output_tokens(name, (4, 6, 6), budget=144)
    assert vidpool.num_output_tokens(name, (np.int64(4), 6.0, 6), budget=np.int64(144)) == expected
    assert vidpool.num_output_tokens(name, torch.Size([4, 6, 6]), budget=144.0) == expected


def test_the_first_bad_value_is_named_in_the_callers_indices():
    x = torch.randn(4, 6, 6, 8)
    x[2, 1, 0, 7] = float("inf")
    x[3, 0, 0, 0] = float("inf")
    with pytest.raises(InvalidArgumentError, match=r"Inf in 2 value\(s\), the first at index \(2, 1, 0, 7\)"):
        vidpool.compress(x, "spatial")
    scores = torch.rand(4, 6, 6)
    scores[0, 5, 5] = float("nan")
    with pytest.raises(
        InvalidArgumentError, match=r"scores contain NaN in 1 value\(s\), the first at index \(0, 5, 5\)"
    ):
        vidpool.compress(torch.randn(4, 6, 6, 8), "prompt_guided", scores=scores)


def test_check_finite_false_skips_the_scan():
    x = _with_value(float("nan"))
    out = vidpool.compress(x, "none", check_finite=False)
    assert torch.isnan(out.tokens).sum() == 1
    pool = vidpool.TokenCompressor("adaptive", check_finite=False)
    assert torch.isnan(pool(x)).any()
    assert "check_finite=False" in repr(pool)


def test_one_nan_no_longer_changes_the_temporal_merge_count():
    """Before: a NaN made its patch unlike every frame, so temporal_merge kept extra tokens."""
    still = torch.randn(1, 1, 4, 4, 8).expand(1, 6, 4, 4, 8).clone()
    assert vidpool.compress(still, "temporal_merge").num_tokens == 16
    still[0, 3, 1, 1, 0] = float("nan")
    with pytest.raises(InvalidArgumentError, match="NaN"):
        vidpool.compress(still, "temporal_merge")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_all_finite_agrees_with_torch_isfinite(dtype):
    big = torch.finfo(dtype).max / 4
    cases = [
        torch.randn(3, 5, 7, dtype=dtype),
        torch.full(
            (64, 64), big, dtype=dtype
        ),  # finite, but its sum overflows: must not be called non-finite
        torch.tensor([big, -big, big, big], dtype=dtype),
        torch.tensor([float("inf"), float("-inf")], dtype=dtype),  # cancels to NaN in a sum, still non-finite
        torch.tensor([1.0, float("nan")], dtype=dtype),
        torch.tensor([-float("inf")] + [1.0] * 9, dtype=dtype),
    ]
    for x in cases:
        assert all_finite(x) == bool(torch.isfinite(x).all()), x


def test_finite_inputs_that_need_gradients_still_train():
    x = torch.randn(SHAPE, requires_grad=True)
    vidpool.compress(x, "adaptive", budget=32).tokens.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
