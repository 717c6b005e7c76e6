"""Invariants every compression method keeps: counts, provenance, batching, dtypes, gradients, errors."""

from __future__ import annotations

import pytest
import torch
from trained_support import TRAINED, trained_kwargs

import vidpool
from vidpool import BudgetError, InvalidArgumentError, UnknownMethodError, VidpoolError

METHODS = vidpool.list_methods()
# Methods where every input position feeds at most one output token, so tokens can be rebuilt from
# (assign, weight) alone.
SINGLE_FEED = {
    "none": {},
    "adaptive": {"grid": (4, 3, 5)},
    "spatial": {"stride": 2},
    "prompt_guided": {"kernel": (2, 3, 3)},
    "progressive": {"num_fine": 3, "fine_grid": (6, 5), "coarse_grid": (2, 5)},
    "temporal_merge": {"budget": 200},
    "fastvid": {"budget": 200},
    "random_drop": {"budget": 200, "seed": 5},
    "frame_subsample": {"num_frames": 3},
    "divprune": {"budget": 200},
    "vidcom2": {"budget": 200},
}


def params_for(name):
    """Random weights of the fixture's width for the trained methods (their shipped weights are for
    the world's CLIP; tests/test_compress_trainable.py checks those)."""
    return trained_kwargs(name, 6)


def kwargs_for(name, x):
    if name in TRAINED:
        return params_for(name)
    if vidpool.get_method(name).uses_scores:
        torch.manual_seed(7)
        return {"scores": vidpool.prompt_scores(torch.randn(*x.shape[:-1], 5), torch.randn(x.shape[0], 5))}
    return {}


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.randn(2, 8, 12, 10, 6)


def test_list_methods_names_the_registry():
    assert set(METHODS) == {
        "none",
        "adaptive",
        "spatial",
        "spatiotemporal",
        "prompt_guided",
        "slowfast",
        "spp",
        "progressive",
        "temporal_merge",
        "fastvid",
        "random_drop",
        "frame_subsample",
        "divprune",
        "vidcom2",
        "attsets",
        "multilayer",
    }
    for name in METHODS:
        assert vidpool.get_method(name).name == name


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("budget", [None, 120, 500])
def test_count_contract_and_shapes(x, name, budget):
    try:
        planned = vidpool.num_output_tokens(name, (8, 12, 10), budget=budget, **params_for(name))
    except BudgetError:
        assert name in ("none", "spatiotemporal", "spp") or budget == 120
        return
    plan = vidpool.resolve(name, (8, 12, 10), budget=budget, **params_for(name))
    out = vidpool.compress(x, name, budget=budget, **kwargs_for(name, x))
    assert plan.num_tokens == planned
    if not plan.exact:  # temporal_merge by threshold: an upper bound, the batch padded to its longest item
        assert out.num_tokens <= planned
        planned = out.num_tokens
    assert out.num_tokens == planned == out.tokens.shape[1]
    assert out.tokens.shape == (2, planned, 6)
    assert out.assign.shape == out.weight.shape == (2, 8, 12, 10)
    assert out.assign.dtype == torch.long and out.weight.dtype == torch.float32
    assert int(out.assign.max()) < planned and int(out.assign.min()) >= -1
    assert ((out.assign >= 0) == (out.weight > 0)).all()
    if budget is not None:
        assert out.num_tokens <= budget
    # Where every position feeds one token, every (real) token is some position's main token.
    if name in ("none", "adaptive", "spatial", "progressive", "temporal_merge"):
        for b in range(2):
            used = torch.zeros(planned, dtype=torch.bool)
            used[out.assign[b][out.assign[b] >= 0]] = True
            real = out.mask[b] if out.mask is not None else torch.ones_like(used)
            assert torch.equal(used, real)


@pytest.mark.parametrize("name", sorted(SINGLE_FEED))
def test_tokens_rebuild_from_assign_and_weight(x, name):
    params = SINGLE_FEED[name]
    out = vidpool.compress(x, name, **params, **kwargs_for(name, x))
    flat = x.flatten(1, 3)
    rebuilt = torch.zeros_like(out.tokens)
    idx = out.assign.flatten(1).clamp_min(0)
    wts = out.weight.flatten(1).unsqueeze(-1)
    rebuilt.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, 6), flat * wts)
    assert torch.allclose(rebuilt, out.tokens, atol=1e-5)


@pytest.mark.parametrize("name", METHODS)
def test_batch_equals_loop_and_unbatched(x, name):
    kw = kwargs_for(name, x)
    budget = None if name in ("none", "spatiotemporal", "spp") else 300
    batched = vidpool.compress(x, name, budget=budget, **kw)
    for i in range(2):
        kw_i = {k: v[i] if k == "scores" else v for k, v in kw.items()}
        single = vidpool.compress(x[i], name, budget=budget, **kw_i)
        assert single.tokens.shape == batched.tokens.shape[1:]
        assert torch.allclose(single.tokens, batched.tokens[i], atol=1e-6)
        assert torch.equal(single.assign, batched.assign[i])


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision(x, name, dtype):
    kw = kwargs_for(name, x)
    ref = vidpool.compress(x, name, **kw)
    out = vidpool.compress(x.to(dtype), name, **kw)
    assert out.tokens.dtype == dtype
    # content-dependent decisions may flip at the threshold
    if name in ("temporal_merge", "divprune", "fastvid", "vidcom2"):
        return
    tol = 2e-2 if dtype == torch.bfloat16 else 3e-3
    assert torch.allclose(out.tokens.float(), ref.tokens, atol=tol * 4, rtol=tol)


@pytest.mark.parametrize("name", METHODS)
def test_gradients_flow(x, name):
    xg = x.clone().requires_grad_(True)
    budget = 300 if name == "temporal_merge" else None
    out = vidpool.compress(xg, name, budget=budget, **kwargs_for(name, x))
    out.tokens.square().sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["adaptive", "prompt_guided", "progressive", "slowfast", "spatial"])
def test_gradcheck(name):
    torch.manual_seed(1)
    xg = torch.randn(1, 4, 4, 3, 2, dtype=torch.float64, requires_grad=True)
    kw = (
        {"scores": torch.rand(1, 4, 4, 3, dtype=torch.float64)}
        if vidpool.get_method(name).uses_scores
        else {}
    )
    budget = 12
    assert torch.autograd.gradcheck(lambda t: vidpool.compress(t, name, budget=budget, **kw).tokens, (xg,))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", METHODS)
def test_cuda_matches_cpu(x, name):
    kw = kwargs_for(name, x)
    cpu = vidpool.compress(x, name, **kw)
    gpu = vidpool.compress(x.cuda(), name, **{k: v.cuda() if k == "scores" else v for k, v in kw.items()})
    assert gpu.tokens.is_cuda and gpu.assign.is_cuda
    assert torch.allclose(gpu.tokens.cpu(), cpu.tokens, atol=1e-4)


def test_grid_methods_compose(x):
    first = vidpool.compress(x, "adaptive", grid=(4, 6, 5))
    twice = vidpool.compress(first, "adaptive", grid=(2, 3, 5))
    direct = vidpool.compress(x, "adaptive", grid=(2, 3, 5))
    assert torch.allclose(twice.tokens, direct.tokens, atol=1e-6)
    assert torch.equal(twice.assign, direct.assign)
    assert torch.allclose(twice.weight, direct.weight)
    assert twice.input_shape == (8, 12, 10)
    spatial = vidpool.compress(vidpool.compress(x, "spatial", stride=2), "spatial", stride=3)
    assert spatial.grid == (8, 2, 1)
    with pytest.raises(InvalidArgumentError, match="regular grid"):
        vidpool.compress(vidpool.compress(x, "spp"), "adaptive")


def test_unknown_method_lists_the_known_ones(x):
    with pytest.raises(UnknownMethodError, match=r"adaptive.*temporal_merge"):
        vidpool.compress(x, "avgpool")
    with pytest.raises(VidpoolError):
        vidpool.num_output_tokens("nope", (1, 2, 2))


def test_budget_too_small_names_the_smallest_budget(x):
    with pytest.raises(BudgetError, match="smallest possible budget is 8") as info:
        vidpool.compress(x, "spatial", budget=5)
    assert info.value.min_budget == 8
    with pytest.raises(BudgetError) as info:
        vidpool.num_output_tokens("temporal_merge", (8, 12, 10), budget=100)
    assert info.value.min_budget == 120
    with pytest.raises(BudgetError, match="at least 128") as info:
        vidpool.compress(x, "spatiotemporal", budget=100)
    assert info.value.min_budget == 128
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        vidpool.compress(x, "adaptive", budget=0)


def test_bad_arguments_say_what_to_do(x):
    with pytest.raises(InvalidArgumentError, match="accepts: grid, mode, p"):
        vidpool.compress(x, "adaptive", gird=(1, 1, 1))
    with pytest.raises(InvalidArgumentError, match=r"\[B, T, H, W, C\]"):
        vidpool.compress(x.flatten(1, 3), "adaptive")
    with pytest.raises(InvalidArgumentError, match="does not use scores"):
        vidpool.compress(x, "adaptive", scores=torch.rand(2, 8, 12, 10))
    with pytest.raises(InvalidArgumentError, match="scores must have"):
        vidpool.compress(x, "prompt_guided", scores=torch.rand(2, 8, 12))
    with pytest.raises(InvalidArgumentError, match="larger than the input"):
        vidpool.compress(x, "adaptive", grid=(9, 1, 1))
    with pytest.raises(InvalidArgumentError, match="mode"):
        vidpool.compress(x, "spatial", mode="nearest")
    with pytest.raises(InvalidArgumentError, match="floating point"):
        vidpool.compress(torch.zeros(1, 2, 2, 2, 2, dtype=torch.long), "none")


def test_temporal_merge_threshold_batch_is_padded_with_a_mask():
    torch.manual_seed(3)
    still = torch.randn(1, 1, 4, 4, 8).expand(1, 6, 4, 4, 8)
    moving = torch.randn(1, 6, 4, 4, 8)
    out = vidpool.compress(torch.cat([still, moving]), "temporal_merge", threshold=0.9)
    assert out.mask is not None
    assert out.mask.sum(1).tolist() == [16, out.num_tokens]
    assert (out.tokens[0, 16:] == 0).all()


_PEAK_SCRIPT = """
import resource, sys, torch, vidpool
torch.set_num_threads(1)
x = torch.randn(int(sys.argv[2]), 64 // int(sys.argv[2]), 24, 24, 1024)
vidpool.compress(x[:, :2], sys.argv[1])  # warm up kernels and caches on a small input
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = vidpool.compress(x, sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024 / (x.numel() * 4), out.tokens.numel() / x.numel())
"""


@pytest.mark.parametrize(
    "name,batch",
    [
        ("adaptive", 1),
        ("spatial", 1),
        ("prompt_guided", 1),
        ("slowfast", 2),
        ("spp", 1),
        ("progressive", 2),
        ("temporal_merge", 1),
        ("vidcom2", 2),
    ],
)
def test_compress_never_copies_the_input(name, batch):
    """Peak resident memory while compressing a 150 MB input grows by far less than the input."""
    import subprocess
    import sys

    res = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, name, str(batch)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    extra, out_share = map(float, res.stdout.split())
    assert extra < out_share + 0.35, (
        f"{name}: peak grew by {extra:.2f}x the input for an output of {out_share:.2f}x"
    )


def test_token_compressor_module_trains_through(x):
    pool = vidpool.TokenCompressor("adaptive", grid=(2, 3, 5))
    proj = torch.nn.Linear(6, 4)
    out = pool(proj(x))
    assert out.shape == (2, pool.num_output_tokens((8, 12, 10)), 4) == (2, 30, 4)
    out.sum().backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    assert "adaptive" in repr(pool)
    with pytest.raises(InvalidArgumentError, match="accepts"):
        vidpool.TokenCompressor("adaptive", size=3)
