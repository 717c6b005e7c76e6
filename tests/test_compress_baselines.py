"""The baselines ``random_drop`` and ``frame_subsample`` against references written here."""

from __future__ import annotations

from fractions import Fraction

import pytest
import torch

import vidpool
from vidpool import BudgetError, InvalidArgumentError
from vidpool.compression.baselines import segment_centres
from vidpool.compression.keep import keep_positions
from vidpool.video import Frames, sample_frames, sample_positions

SHAPES = [(1, 1, 1), (1, 3, 5), (4, 2, 3), (7, 5, 4), (16, 6, 6), (3, 1, 9)]


def kept_flat(out) -> torch.Tensor:
    """Flat positions (``t·H·W + h·W + w``) each output token came from, in output order: long ``[N]``."""
    assign = out.assign.flatten()
    where = (assign >= 0).nonzero().squeeze(1)
    return where[assign[where].argsort()]


def test_keep_positions_gathers_and_records_provenance():
    x = torch.randn(2, 3, 2, 2, 4, requires_grad=True)
    keep = torch.tensor([[0, 5, 11], [2, 3, 7]])
    out = keep_positions(x, keep)
    for b in range(2):
        for k, p in enumerate(keep[b].tolist()):
            t, rest = divmod(p, 4)
            assert torch.equal(out.tokens[b, k], x[b, t, rest // 2, rest % 2])
            assert out.assign[b].flatten()[p] == k and out.weight[b].flatten()[p] == 1
        assert int((out.assign[b] >= 0).sum()) == 3 and float(out.weight[b].sum()) == 3
    out.tokens.sum().backward()
    assert torch.equal(x.grad.flatten(1, 3).sum(-1) > 0, out.assign.flatten(1) >= 0)


@pytest.mark.parametrize("shape", SHAPES)
def test_random_drop_keeps_exactly_the_budget_as_the_input_in_time_order(shape):
    total = shape[0] * shape[1] * shape[2]
    x = torch.randn(*shape, 5)
    for budget in sorted({1, 2, 3, total // 2 or 1, total - 1 or 1, total, total + 7}):
        out = vidpool.compress(x, "random_drop", budget=budget, seed=budget)
        assert (
            out.num_tokens
            == min(budget, total)
            == vidpool.num_output_tokens("random_drop", shape, budget=budget)
        )
        pos = kept_flat(out)
        assert bool((pos[1:] > pos[:-1]).all())  # time-major: positions ascend
        assert torch.equal(out.tokens, x.reshape(total, 5)[pos])
        assert torch.equal(out.weight, (out.assign >= 0).float())
    default = vidpool.compress(x, "random_drop")
    assert default.num_tokens == max(1, total // 4)


def test_random_drop_seed_decides_the_positions():
    x = torch.randn(8, 6, 6, 3)
    a = vidpool.compress(x, "random_drop", budget=40, seed=3)
    assert torch.equal(a.assign, vidpool.compress(x, "random_drop", budget=40, seed=3).assign)
    assert torch.equal(a.assign, vidpool.compress(x * 2 + 1, "random_drop", budget=40, seed=3).assign)
    others = {
        tuple(kept_flat(vidpool.compress(x, "random_drop", budget=40, seed=s)).tolist()) for s in range(6)
    }
    assert len(others) == 6
    assert not torch.equal(vidpool.compress(x, "random_drop", budget=40).assign, a.assign)
    for bad in (-1, 1.5, "0", True, 2**64):
        with pytest.raises(InvalidArgumentError, match="seed"):
            vidpool.compress(x, "random_drop", budget=40, seed=bad)


def test_random_drop_is_uniform_over_positions():
    """Each of N positions is kept budget/N of the time over many seeds (chi-square, 23 degrees of freedom)."""
    shape, budget, draws = (2, 3, 4), 6, 2000
    total = 24
    counts = torch.zeros(total)
    pairs = torch.zeros(total, total)
    for seed in range(draws):
        kept = vidpool.compress(torch.zeros(*shape, 1), "random_drop", budget=budget, seed=seed).assign >= 0
        kept = kept.flatten().float()
        counts += kept
        pairs += kept[:, None] * kept[None, :]
    expected = draws * budget / total
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # Without replacement the spread is (N-k)/(N-1) of a multinomial's; 60 is p < 1e-4 for 23 dof.
    assert chi2 < 60, counts
    assert float(counts.min()) > 0.8 * expected
    # Pairs too: every two positions are kept together k(k-1)/(N(N-1)) of the time.
    together = pairs[~torch.eye(total, dtype=torch.bool)]
    pair_expected = draws * budget * (budget - 1) / (total * (total - 1))
    assert abs(float(together.mean()) - pair_expected) < 1e-6 * draws
    assert float(together.min()) > 0.4 * pair_expected and float(together.max()) < 1.7 * pair_expected


def test_segment_centres_are_the_formula_and_videos_rule():
    for total in range(1, 70):
        for count in range(1, total + 1):
            reference = [int(Fraction(2 * i + 1, 2 * count) * total) for i in range(count)]
            assert segment_centres(total, count) == reference
            assert sample_positions(total, num_frames=count).tolist() == reference


@pytest.mark.parametrize("shape", SHAPES)
def test_frame_subsample_keeps_whole_frames_as_many_as_the_budget_holds(shape):
    t, h, w = shape
    x = torch.randn(2, t, h, w, 3)
    for budget in range(h * w, (t + 2) * h * w + 1, max(1, h * w // 2)):
        k = min(t, budget // (h * w))
        out = vidpool.compress(x, "frame_subsample", budget=budget)
        assert (
            out.num_tokens == k * h * w == vidpool.num_output_tokens("frame_subsample", shape, budget=budget)
        )
        frames = [int(Fraction(2 * i + 1, 2 * k) * t) for i in range(k)]
        assert out.params == {"num_frames": k} and out.grid == (k, h, w)
        assert torch.equal(out.as_grid(), x[:, frames])
        kept = torch.zeros(t, dtype=torch.bool)
        kept[frames] = True
        assert bool((out.assign[:, kept] >= 0).all()) and bool((out.assign[:, ~kept] == -1).all())
    if h * w > 1:
        with pytest.raises(BudgetError) as info:
            vidpool.compress(x, "frame_subsample", budget=h * w - 1)
        assert info.value.min_budget == h * w


def test_frame_subsample_below_one_frame_and_its_parameters():
    x = torch.randn(8, 4, 5, 2)
    with pytest.raises(BudgetError, match="smallest possible budget is 20") as info:
        vidpool.compress(x, "frame_subsample", budget=19)
    assert info.value.min_budget == 20
    assert vidpool.compress(x, "frame_subsample").num_tokens == 2 * 20
    assert vidpool.compress(x, "frame_subsample", num_frames=8).num_tokens == 160
    for bad in (0, 9, 2.5):
        with pytest.raises(InvalidArgumentError, match="num_frames"):
            vidpool.compress(x, "frame_subsample", num_frames=bad)
    with pytest.raises(InvalidArgumentError, match="both"):
        vidpool.compress(x, "frame_subsample", budget=40, num_frames=2)


@pytest.mark.parametrize("count,keep", [(10, 3), (16, 4), (9, 9), (31, 7)])
def test_frame_subsample_picks_the_frames_video_sampling_picks_in_memory(count, keep):
    pixels = torch.arange(count, dtype=torch.uint8).view(count, 1, 1, 1).expand(count, 2, 2, 3).contiguous()
    tokens = pixels.float()  # frame i's tokens are all i
    out = vidpool.compress(tokens, "frame_subsample", budget=keep * 4)
    picked = out.as_grid()[:, 0, 0, 0].long().tolist()
    assert picked == sample_frames(Frames(pixels), num_frames=keep).indices
    assert picked == sample_frames(Frames.at_rate(pixels, 8.0), num_frames=keep).indices


@pytest.mark.parametrize(
    "name,params", [("random_drop", {"budget": 37, "seed": 9}), ("frame_subsample", {"budget": 90})]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_batch_equals_loop_in_every_dtype_and_gradients_reach_kept_positions(name, params, dtype):
    x = torch.randn(3, 6, 5, 4, 2).to(dtype).requires_grad_(True)
    out = vidpool.compress(x, name, **params)
    assert out.tokens.dtype == dtype
    for b in range(3):
        single = vidpool.compress(x[b], name, **params)
        assert torch.equal(single.tokens, out.tokens[b]) and torch.equal(single.assign, out.assign[b])
    out.tokens.float().sum().backward()
    assert torch.equal(x.grad.flatten(1, 3).float().abs().sum(-1) > 0, out.assign.flatten(1) >= 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
@pytest.mark.parametrize("name", ["random_drop", "frame_subsample"])
def test_cuda_keeps_the_positions_cpu_keeps(name):
    x = torch.randn(2, 8, 6, 6, 4)
    cpu = (
        vidpool.compress(x, name, budget=100, seed=4)
        if name == "random_drop"
        else vidpool.compress(x, name, budget=100)
    )
    params = {"seed": 4} if name == "random_drop" else {}
    gpu = vidpool.compress(x.cuda(), name, budget=100, **params)
    assert gpu.tokens.is_cuda and torch.equal(gpu.assign.cpu(), cpu.assign)
    assert torch.equal(gpu.tokens.cpu(), cpu.tokens)


def test_the_benchmark_controls_are_these_methods_and_run_once():
    from vidpool.bench.arms import arms_for
    from vidpool.bench.synth.controls import control_compressed

    features = torch.randn(10, 4, 4, 8)
    for budget, seed in ((7, 3), (50, 11), (500, 2**31)):
        control = control_compressed("random_drop", features, budget, seed)
        method = vidpool.compress(features, "random_drop", budget=budget, seed=seed)
        assert torch.equal(control.assign, method.assign) and torch.equal(control.tokens, method.tokens)
    control = control_compressed("frame_subsample", features, 48, 0)
    assert torch.equal(control.tokens, vidpool.compress(features, "frame_subsample", budget=48).tokens)
    assert control.params["frames"] == [1, 5, 8]
    keys = [a.key for a in arms_for(["spatial", "random_drop", "frame_subsample"], [0.25, 0.5])]
    assert len(keys) == len(set(keys))
    assert {k for k in keys if k.startswith(("random_drop", "frame_subsample"))} == {
        "random_drop@0.25",
        "random_drop@0.5",
        "frame_subsample@0.25",
        "frame_subsample@0.5",
    }


@pytest.mark.parametrize("name", ["random_drop", "frame_subsample"])
def test_compress_never_copies_the_input(name):
    """Peak memory grows by the kept tokens only (the contract test's script, for these methods)."""
    import subprocess
    import sys

    from test_compress_contract import _PEAK_SCRIPT

    res = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, name, "1"], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    extra, out_share = map(float, res.stdout.split())
    assert extra < out_share + 0.35
