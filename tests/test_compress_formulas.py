"""Each compression method against the formula its source gives."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import vidpool
from vidpool.compression.slowfast import uniform_indices


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def to_tokens(pooled_cf: torch.Tensor) -> torch.Tensor:
    """[B, C, t, h, w] -> [B, t*h*w, C]."""
    return pooled_cf.permute(0, 2, 3, 4, 1).flatten(1, 3)


@pytest.fixture
def x():
    torch.manual_seed(0)
    return torch.randn(2, 8, 12, 10, 16)


def test_none_flattens(x):
    out = vidpool.compress(x, "none")
    assert torch.equal(out.tokens, x.reshape(2, -1, 16))
    assert out.grid == (8, 12, 10)


@pytest.mark.parametrize("grid", [(4, 6, 5), (8, 12, 10), (3, 5, 7), (1, 1, 1), (5, 7, 3)])
def test_adaptive_avg_matches_adaptive_avg_pool3d(x, grid):
    out = vidpool.compress(x, "adaptive", grid=grid)
    ref = to_tokens(F.adaptive_avg_pool3d(x.permute(0, 4, 1, 2, 3), grid))
    assert out.tokens.shape == ref.shape
    assert rel_err(out.tokens, ref) < 1e-6


@pytest.mark.parametrize("grid", [(4, 6, 5), (3, 5, 7)])
def test_adaptive_max_matches_adaptive_max_pool3d(x, grid):
    out = vidpool.compress(x, "adaptive", grid=grid, mode="max")
    ref = to_tokens(F.adaptive_max_pool3d(x.permute(0, 4, 1, 2, 3), grid))
    assert torch.equal(out.tokens, ref)


def _gem_reference(x, grid, p):
    """Per-bin loop: sign(m)|m|^(1/p), m = mean(sign(x)|x|^p)."""
    b, t, h, w, c = x.shape
    out = torch.empty(b, *grid, c, dtype=torch.float64)
    xd = x.double()
    for i, j, k in itertools.product(*(range(g) for g in grid)):
        ts = slice((i * t) // grid[0], -(-((i + 1) * t) // grid[0]))
        hs = slice((j * h) // grid[1], -(-((j + 1) * h) // grid[1]))
        ws = slice((k * w) // grid[2], -(-((k + 1) * w) // grid[2]))
        m = (xd[:, ts, hs, ws].abs() ** p * xd[:, ts, hs, ws].sign()).mean(dim=(1, 2, 3))
        out[:, i, j, k] = m.abs() ** (1 / p) * m.sign()
    return out.flatten(1, 3)


@pytest.mark.parametrize("p", [3.0, 2.5, 1.0])
def test_adaptive_gem_matches_signed_power_mean(x, p):
    grid = (3, 5, 4)
    out = vidpool.compress(x.double(), "adaptive", grid=grid, mode="gem", p=p)
    assert rel_err(out.tokens, _gem_reference(x, grid, p)) < 1e-9


def test_gem_with_p1_is_average_and_keeps_negative_activations(x):
    gem = vidpool.compress(x, "adaptive", grid=(2, 3, 5), mode="gem", p=1.0)
    avg = vidpool.compress(x, "adaptive", grid=(2, 3, 5))
    assert rel_err(gem.tokens, avg.tokens) < 1e-5
    neg = -x.abs()
    assert (vidpool.compress(neg, "adaptive", mode="gem").tokens < 0).all()


def test_group_gem_uses_one_exponent_per_channel_group(x):
    grouped = vidpool.compress(x, "adaptive", grid=(2, 3, 5), mode="gem", p=(1.0, 3.0))
    first = vidpool.compress(x[..., :8], "adaptive", grid=(2, 3, 5), mode="gem", p=1.0)
    second = vidpool.compress(x[..., 8:], "adaptive", grid=(2, 3, 5), mode="gem", p=3.0)
    assert rel_err(grouped.tokens, torch.cat([first.tokens, second.tokens], -1)) < 1e-5


def frames_cf(x):
    b, t, h, w, c = x.shape
    return x.reshape(b * t, h, w, c).permute(0, 3, 1, 2)


def frames_tokens(y, b):
    return y.permute(0, 2, 3, 1).reshape(b, -1, y.shape[1])


@pytest.mark.parametrize("stride", [2, 3, (2, 3), 4])
@pytest.mark.parametrize("mode", ["avg", "max"])
def test_spatial_stride_matches_pool2d(x, stride, mode):
    out = vidpool.compress(x, "spatial", stride=stride, mode=mode)
    fn = F.avg_pool2d if mode == "avg" else F.max_pool2d
    ref = frames_tokens(fn(frames_cf(x), kernel_size=stride, stride=stride), 2)
    assert out.tokens.shape == ref.shape
    assert rel_err(out.tokens, ref) < 1e-6


@pytest.mark.parametrize("stride", [2, 3, 4])
def test_spatial_bilinear_matches_interpolate(x, stride):
    out = vidpool.compress(x, "spatial", stride=stride, mode="bilinear")
    size = (math.ceil(12 / stride), math.ceil(10 / stride))
    ref = frames_tokens(
        F.interpolate(frames_cf(x).contiguous(), size=size, mode="bilinear", align_corners=False), 2
    )
    assert out.params["size"] == size
    assert rel_err(out.tokens, ref) < 1e-6


def test_spatial_size_is_adaptive_pooling(x):
    out = vidpool.compress(x, "spatial", size=(5, 7))
    ref = frames_tokens(F.adaptive_avg_pool2d(frames_cf(x), (5, 7)), 2)
    assert rel_err(out.tokens, ref) < 1e-6


def test_spatiotemporal_is_frame_means_then_patch_means(x):
    out = vidpool.compress(x, "spatiotemporal")
    ref = torch.cat([x.mean(dim=(2, 3)), x.mean(dim=1).flatten(1, 2)], dim=1)
    assert out.num_tokens == 8 + 12 * 10
    assert rel_err(out.tokens, ref) < 1e-6


def _prompt_guided_reference(x, scores, kernel, stride, temperature):
    """Explicit loop over windows, as the PPLLaVA formula reads."""
    b, t, h, w, c = x.shape
    outs = [(i - k) // s + 1 for i, k, s in zip((t, h, w), kernel, stride)]
    res = torch.empty(b, *outs, c, dtype=torch.float64)
    for i, j, k in itertools.product(*(range(o) for o in outs)):
        sl = tuple(slice(o * s, o * s + kk) for o, s, kk in zip((i, j, k), stride, kernel))
        win = x[:, sl[0], sl[1], sl[2]].reshape(b, -1, c).double()
        wts = (scores[:, sl[0], sl[1], sl[2]].reshape(b, -1).double() / temperature).softmax(-1)
        res[:, i, j, k] = (wts.unsqueeze(-1) * win).sum(1)
    return res.flatten(1, 3)


@pytest.mark.parametrize(
    "kernel,stride",
    [((2, 3, 3), (2, 3, 3)), ((3, 4, 3), (2, 2, 3)), ((1, 2, 2), (1, 1, 1)), ((2, 3, 3), None)],
)
def test_prompt_guided_matches_window_softmax(x, kernel, stride):
    torch.manual_seed(1)
    scores = vidpool.prompt_scores(torch.randn(2, 8, 12, 10, 6), torch.randn(2, 6))
    out = vidpool.compress(x, "prompt_guided", scores=scores, kernel=kernel, stride=stride, temperature=0.001)
    ref = _prompt_guided_reference(x, scores, kernel, stride or kernel, 0.001)
    assert rel_err(out.tokens.double(), ref) < 1e-5


def test_prompt_guided_grid_sets_stride_and_kernel(x):
    out = vidpool.compress(x, "prompt_guided", grid=(3, 5, 4))
    stride = (8 // 3, 12 // 5, 10 // 4)
    kernel = (8 - 2 * stride[0], 12 - 4 * stride[1], 10 - 3 * stride[2])
    assert out.params["stride"] == stride and out.params["kernel"] == kernel
    assert out.grid == (3, 5, 4)


def test_prompt_guided_without_scores_is_average_pooling(x):
    out = vidpool.compress(x, "prompt_guided", kernel=(2, 3, 3), stride=(2, 2, 3))
    ref = to_tokens(F.avg_pool3d(x.permute(0, 4, 1, 2, 3), kernel_size=(2, 3, 3), stride=(2, 2, 3)))
    assert rel_err(out.tokens, ref) < 1e-6


def test_prompt_scores_formula():
    torch.manual_seed(2)
    joint, text = torch.randn(2, 3, 4, 5, 8), torch.randn(2, 8)
    scores = vidpool.prompt_scores(joint, text, logit_scale=50.0)
    cos = F.cosine_similarity(joint, text.view(2, 1, 1, 1, 8), dim=-1)
    ref = (50.0 * cos).flatten(1).softmax(-1).view(2, 3, 4, 5)
    assert torch.allclose(scores, ref, atol=1e-6)
    assert torch.allclose(scores.sum(dim=(1, 2, 3)), torch.ones(2))
    single = vidpool.prompt_scores(joint[0], text[0], logit_scale=50.0)
    assert torch.allclose(single, ref[0], atol=1e-6)


def test_high_scores_dominate_prompt_guided_windows():
    x = torch.zeros(1, 2, 3, 3, 4)
    x[0, 1, 2, 2] = 1.0
    scores = torch.full((1, 2, 3, 3), 1e-4)
    scores[0, 1, 2, 2] = 0.5
    out = vidpool.compress(x, "prompt_guided", scores=scores)
    assert out.num_tokens == 1
    assert out.tokens[0, 0].min() > 0.99
    assert out.assign[0, 1, 2, 2] == 0 and out.weight[0, 1, 2, 2] > 0.99


def test_slowfast_paths(x):
    out = vidpool.compress(x, "slowfast", slow_frames=3, slow_grid=(6, 10), fast_grid=(4, 4))
    idx = uniform_indices(8, 3)
    assert idx == [1, 4, 6]
    slow = frames_tokens(F.adaptive_avg_pool2d(frames_cf(x[:, idx]), (6, 10)), 2)
    fast = frames_tokens(F.adaptive_avg_pool2d(frames_cf(x), (4, 4)), 2)
    assert out.num_tokens == 3 * 60 + 8 * 16
    assert rel_err(out.tokens, torch.cat([slow, fast], 1)) < 1e-6


def test_slowfast_defaults_follow_the_paper():
    # 50 frames of 24x24: 10 slow frames at 12x24 and 50 fast frames at 4x4.
    plan = vidpool.resolve("slowfast", (50, 24, 24))
    assert plan.params == {"slow_frames": 10, "slow_grid": (12, 24), "fast_grid": (4, 4)}
    assert plan.num_tokens == 10 * 288 + 50 * 16


def test_spp_levels(x):
    out = vidpool.compress(x, "spp")
    parts = [
        frames_tokens(F.adaptive_avg_pool2d(frames_cf(x), lv), 2).view(2, 8, lv * lv, 16) for lv in (1, 2, 4)
    ]
    ref = torch.cat(parts, dim=2).flatten(1, 2)
    assert out.num_tokens == 8 * 21
    assert rel_err(out.tokens, ref) < 1e-6
    nested = torch.randn(1, 2, 8, 8, 4)  # divisible: coarse levels come from the finest
    ref2 = torch.cat(
        [
            frames_tokens(F.adaptive_avg_pool2d(frames_cf(nested), lv), 1).view(1, 2, -1, 4)
            for lv in (1, 2, 4)
        ],
        2,
    )
    assert rel_err(vidpool.compress(nested, "spp").tokens, ref2.flatten(1, 2)) < 1e-6


def test_progressive_gives_fine_grids_to_high_scoring_frames():
    torch.manual_seed(3)
    x = torch.randn(1, 8, 12, 12, 4)
    scores = torch.full((1, 8, 12, 12), 1e-3)
    scores[0, [2, 5]] = 1.0
    out = vidpool.compress(x, "progressive", scores=scores, num_fine=2, fine_grid=(6, 6), coarse_grid=(2, 2))
    assert out.num_tokens == 2 * 36 + 6 * 4
    sizes = [int(out.assign[0, t].max() - out.assign[0, t].min() + 1) for t in range(8)]
    assert sizes == [4, 4, 36, 4, 4, 36, 4, 4]
    frame2 = F.adaptive_avg_pool2d(x[0, 2].permute(2, 0, 1), (6, 6)).permute(1, 2, 0).reshape(-1, 4)
    assert rel_err(out.tokens[0, 8:44], frame2) < 1e-6


def test_progressive_budget_fills_and_every_frame_keeps_a_token():
    x = torch.randn(2, 16, 24, 24, 4)
    for budget in (16, 100, 700, 2000, 5000, 9216):
        out = vidpool.compress(x, "progressive", budget=budget)
        assert 0.9 * budget <= out.num_tokens <= budget
        per_frame = [(out.assign[0, t] >= 0).any() for t in range(16)]
        assert all(per_frame)


def _anchor_reference(x, threshold):
    """Python loop over one video [T, H, W, C]: list of (start frame, h, w, mean vector) in output order."""
    t, h, w, _ = x.shape
    tokens = {}
    for i, j in itertools.product(range(h), range(w)):
        anchor, members, start = x[0, i, j], [x[0, i, j]], 0
        for f in range(1, t):
            if F.cosine_similarity(x[f, i, j], anchor, dim=0) > threshold:
                members.append(x[f, i, j])
            else:
                tokens[(start, i, j)] = torch.stack(members).mean(0)
                anchor, members, start = x[f, i, j], [x[f, i, j]], f
        tokens[(start, i, j)] = torch.stack(members).mean(0)
    return [tokens[k] for k in sorted(tokens)]


def test_temporal_merge_threshold_matches_reference():
    torch.manual_seed(4)
    base = torch.randn(1, 1, 3, 4, 6)
    x = base + 0.4 * torch.randn(1, 6, 3, 4, 6)
    out = vidpool.compress(x, "temporal_merge", threshold=0.85)
    ref = _anchor_reference(x[0], 0.85)
    assert out.num_tokens == len(ref)
    assert rel_err(out.tokens[0], torch.stack(ref)) < 1e-5
    assert vidpool.num_output_tokens("temporal_merge", (6, 3, 4), threshold=0.85) == 6 * 12  # upper bound


def test_temporal_merge_static_video_costs_one_frame():
    frame = torch.randn(1, 1, 6, 6, 8)
    x = frame.expand(1, 10, 6, 6, 8) + 1e-4 * torch.randn(1, 10, 6, 6, 8)
    out = vidpool.compress(x, "temporal_merge")
    assert out.num_tokens == 36
    assert rel_err(out.tokens, x.mean(1).flatten(1, 2)) < 1e-5


def test_temporal_merge_budget_merges_most_similar_first():
    torch.manual_seed(5)
    x = torch.randn(1, 4, 2, 2, 8)
    x[0, 2, 1, 1] = x[0, 1, 1, 1] * 1.01  # the most similar adjacent pair
    out = vidpool.compress(x, "temporal_merge", budget=15)
    assert out.num_tokens == 15
    assert out.assign[0, 2, 1, 1] == out.assign[0, 1, 1, 1]
    assert rel_err(out.tokens[0, out.assign[0, 1, 1, 1]], (x[0, 1, 1, 1] + x[0, 2, 1, 1]) / 2) < 1e-6
