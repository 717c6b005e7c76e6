"""Property-based checks over random shapes and budgets."""

from __future__ import annotations

import math

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trained_support import trained_kwargs

import vidpool
from vidpool import BudgetError

ADAPTIVE_TO_BUDGET = ["adaptive", "prompt_guided", "progressive", "slowfast", "temporal_merge", "vidcom2"]
FIXED = ["none", "spatiotemporal", "spp"]

shapes = st.tuples(st.integers(1, 12), st.integers(1, 9), st.integers(1, 9))
realistic = st.tuples(st.integers(8, 64), st.integers(12, 24), st.integers(12, 24))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, budget=st.integers(1, 800), name=st.sampled_from(vidpool.list_methods()), data=st.data())
def test_planned_count_is_the_produced_count(shape, budget, name, data):
    use_budget = data.draw(st.booleans())
    kwargs = {"budget": budget} if use_budget else {}
    if name == "spp":
        kwargs["levels"] = tuple(lv for lv in (1, 2, 4) if lv <= min(shape[1:])) if not use_budget else (1,)
    kwargs.update(trained_kwargs(name, 3))
    try:
        plan = vidpool.resolve(name, shape, **kwargs)
    except BudgetError as err:
        assert err.min_budget is not None and err.min_budget > budget
        return
    x = torch.randn(2, *shape, 3)
    kw = {"scores": torch.rand(2, *shape)} if vidpool.get_method(name).uses_scores else {}
    out = vidpool.compress(x, name, **kwargs, **kw)
    if plan.exact:
        assert out.num_tokens == plan.num_tokens
    else:
        assert out.num_tokens <= plan.num_tokens
    if use_budget:
        assert out.num_tokens <= budget
    assert out.assign.shape == (2, *shape)
    assert bool(((out.assign >= -1) & (out.assign < out.num_tokens)).all())
    assert bool((out.weight >= 0).all() and (out.weight <= 1 + 1e-6).all())


@settings(max_examples=300, deadline=None)
@given(shape=realistic, frac=st.floats(0.0005, 0.999), name=st.sampled_from(ADAPTIVE_TO_BUDGET))
def test_budget_is_used_at_least_90_percent_on_realistic_inputs(shape, frac, name):
    total = math.prod(shape)
    budget = max(1, int(frac * total))
    try:
        count = vidpool.num_output_tokens(name, shape, budget=budget)
    except BudgetError as err:
        assert err.min_budget > budget
        return
    assert 0.9 * budget <= count <= budget


@settings(max_examples=200, deadline=None)
@given(shape=realistic, frac=st.floats(0.0005, 0.999))
def test_spatial_budget_is_as_full_as_one_grid_per_frame_allows(shape, frac):
    t, h, w = shape
    budget = max(1, int(frac * t * h * w))
    try:
        count = vidpool.num_output_tokens("spatial", shape, budget=budget)
    except BudgetError as err:
        assert err.min_budget == t > budget
        return
    best_area = max(hh * min(w, (budget // t) // hh) for hh in range(1, h + 1))
    assert count <= budget
    assert count >= 0.9 * t * best_area
    if budget >= 10 * t:
        assert count >= 0.9 * budget * 0.95


@settings(max_examples=100, deadline=None)
@given(shape=realistic, budget=st.integers(1, 100000), name=st.sampled_from(FIXED))
def test_fixed_methods_refuse_budgets_they_cannot_meet(shape, budget, name):
    count = vidpool.num_output_tokens(name, shape)
    try:
        assert vidpool.num_output_tokens(name, shape, budget=budget) == count <= budget
    except BudgetError as err:
        assert budget < count == err.min_budget
