"""``vidcom2`` against a slow reference written from the paper's equations, and the properties it states."""

from __future__ import annotations

import math

import pytest
import torch

import vidpool
from vidpool import BudgetError
from vidpool.compression.vidcom2 import frame_budgets


def _cos(a, b):
    na, nb = math.sqrt(sum(v * v for v in a)), math.sqrt(sum(v * v for v in b))
    return sum(p * q for p, q in zip(a, b)) / max(na * nb, 1e-12)


def _mean(vectors):
    return [sum(col) / len(vectors) for col in zip(*vectors)]


def _greedy_budgets(share, total, cap):
    """Largest remainders, one token at a time: floor clamped to [1, cap], then the frame furthest
    below (above) its share gets (gives back) a token, ties to the earlier frame."""
    k = [min(max(math.floor(q), 1), cap) for q in share]
    while sum(k) < total:
        t = max((t for t in range(len(k)) if k[t] < cap), key=lambda t: (share[t] - k[t], -t))
        k[t] += 1
    while sum(k) > total:
        t = max((t for t in range(len(k)) if k[t] > 1), key=lambda t: (k[t] - share[t], -t))
        k[t] -= 1
    return k


def reference(video, budget, temperature=0.01):
    """Kept flat positions of one video ``[T, H, W, C]`` and the per-frame budgets, by plain loops.

    f_t = mean of frame t's tokens, g = mean of the f_t; u_t = -cos(f_t, g); σ = softmax(u / τ);
    frame t's share N/T·(1 + σ_t − 1/T); token similarity cos(x, f_t) + cos(x, g), lowest kept.
    """
    t, h, w, _ = video.shape
    frames = [[video[i, r, c].tolist() for r in range(h) for c in range(w)] for i in range(t)]
    f = [_mean(tokens) for tokens in frames]
    g = _mean(f)
    u = [-_cos(fi, g) for fi in f]
    top = max(u)
    e = [math.exp((ui - top) / temperature) for ui in u]
    sigma = [ei / sum(e) for ei in e]
    share = [budget / t * (1 + s - 1 / t) for s in sigma]
    k = _greedy_budgets(share, budget, h * w)
    kept = []
    for i in range(t):
        sim = [_cos(x, f[i]) + _cos(x, g) for x in frames[i]]
        best = sorted(range(h * w), key=lambda j: (sim[j], j))[: k[i]]
        kept += sorted(i * h * w + j for j in best)
    return kept, k


def kept_positions(out, b=0):
    assign = out.assign[b].flatten()
    return (assign >= 0).nonzero().flatten().tolist()


@pytest.mark.parametrize(
    "shape,budget,seed",
    [
        ((4, 3, 3, 5), 9, 0),
        ((5, 2, 4, 3), 5, 1),  # one token a frame
        ((6, 3, 2, 4), 30, 2),  # near the whole video: frames fill up and hand tokens on
        ((3, 4, 4, 6), 20, 3),
        ((1, 3, 3, 4), 4, 4),
        ((7, 2, 3, 3), 11, 5),
    ],
)
def test_kept_set_matches_the_slow_reference(shape, budget, seed):
    torch.manual_seed(seed)
    # Frames drift apart so that their uniqueness differs by more than the temperature.
    x = torch.randn(*shape, dtype=torch.float64) + torch.linspace(0, 3, shape[0]).view(-1, 1, 1, 1)
    x[..., 0] += 2.0
    out = vidpool.compress(x[None], "vidcom2", budget=budget)
    kept, k = reference(x, budget)
    assert kept_positions(out) == kept
    per_frame = (out.assign[0] >= 0).flatten(1).sum(1).tolist()
    assert per_frame == k


@pytest.mark.parametrize("seed", range(20))
def test_frame_budgets_are_the_one_at_a_time_largest_remainders(seed):
    gen = torch.Generator().manual_seed(seed)
    t = int(torch.randint(1, 9, (1,), generator=gen))
    cap = int(torch.randint(1, 7, (1,), generator=gen))
    total = int(torch.randint(t, t * cap + 1, (1,), generator=gen))
    weights = torch.rand(3, t, generator=gen, dtype=torch.float64) ** 4  # uneven: some hit 1 or cap
    share = weights / weights.sum(1, keepdim=True) * total
    got = frame_budgets(share, total, cap)
    for b in range(3):
        assert got[b].tolist() == _greedy_budgets(share[b].tolist(), total, cap)
        assert int(got[b].sum()) == total and int(got[b].min()) >= 1 and int(got[b].max()) <= cap


@pytest.mark.parametrize(
    "share,total,cap,expected",
    [
        ([2.5, 2.5, 2.5, 2.5], 10, 5, [3, 3, 2, 2]),  # equal remainders: the earlier frames first
        ([0.5, 0.5, 3.0, 3.0], 7, 5, [1, 1, 2, 3]),  # the floor of 1 overspent: taken back, earlier first
        ([0.2, 0.3, 9.5], 10, 4, [3, 3, 4]),  # a full frame's excess goes to the others
    ],
)
def test_frame_budget_ties_and_clamps(share, total, cap, expected):
    assert _greedy_budgets(share, total, cap) == expected
    got = frame_budgets(torch.tensor([share], dtype=torch.float64), total, cap)
    assert got.tolist() == [expected]


def test_the_unique_frame_gets_the_largest_share_and_shares_sum_to_the_budget():
    torch.manual_seed(0)
    t, h, w, c = 8, 6, 6, 16
    scene = torch.randn(1, h, w, c)
    x = scene + 0.1 * torch.randn(t, h, w, c)
    x[5] = torch.randn(h, w, c)  # a cut to another scene of the same statistics
    for budget in (8, 40, 96, 200):
        out = vidpool.compress(x, "vidcom2", budget=budget)
        per_frame = (out.assign >= 0).flatten(1).sum(1)
        assert int(per_frame.sum()) == out.num_tokens == budget
        others = torch.cat([per_frame[:5], per_frame[6:]])
        if budget > t:
            assert int(per_frame[5]) > int(others.max())
        # The paper's share: about twice the even split for the one unique frame (σ ≈ 1), at most H·W.
        assert abs(int(per_frame[5]) - min(h * w, budget / t * (2 - 1 / t))) <= 1


def test_a_high_temperature_splits_the_budget_evenly():
    torch.manual_seed(1)
    x = torch.randn(4, 5, 5, 8)
    x[2] += 3.0
    out = vidpool.compress(x, "vidcom2", budget=40, temperature=1e6)
    assert (out.assign >= 0).flatten(1).sum(1).tolist() == [10, 10, 10, 10]


def test_exact_count_across_shapes():
    gen = torch.Generator().manual_seed(2)
    for _ in range(60):
        t, h, w = (int(v) for v in torch.randint(1, 8, (3,), generator=gen))
        budget = int(torch.randint(1, t * h * w + 20, (1,), generator=gen))
        if budget < t:
            with pytest.raises(BudgetError) as err:
                vidpool.resolve("vidcom2", (t, h, w), budget=budget)
            assert err.value.min_budget == t
            continue
        plan = vidpool.resolve("vidcom2", (t, h, w), budget=budget)
        out = vidpool.compress(torch.randn(2, t, h, w, 3, generator=gen), "vidcom2", budget=budget)
        assert plan.exact and plan.num_tokens == out.num_tokens == min(budget, t * h * w)
        assert ((out.assign >= 0).flatten(1).sum(1) == out.num_tokens).all()
        assert ((out.assign >= 0).flatten(2).sum(2) >= 1).all()  # every frame keeps a token


def test_default_keeps_a_quarter():
    assert vidpool.num_output_tokens("vidcom2", (8, 12, 10)) == 240
    assert vidpool.num_output_tokens("vidcom2", (8, 12, 10), ratio=0.5) == 480
    assert vidpool.num_output_tokens("vidcom2", (8, 1, 2)) == 8  # at least one a frame


def test_kept_tokens_are_the_inputs_at_their_positions_in_time_major_order():
    torch.manual_seed(3)
    x = torch.randn(2, 6, 4, 5, 7)
    out = vidpool.compress(x, "vidcom2", budget=37)
    flat = x.flatten(1, 3)
    for b in range(2):
        where = (out.assign[b].flatten() >= 0).nonzero().flatten()
        assert torch.equal(out.assign[b].flatten()[where], torch.arange(37))  # time-major
        assert torch.equal(out.tokens[b], flat[b, where])
        assert (out.weight[b].flatten()[where] == 1).all()
        assert (out.weight[b].flatten()[out.assign[b].flatten() < 0] == 0).all()


def test_batch_equals_loop_on_different_videos():
    torch.manual_seed(4)
    x = torch.randn(3, 5, 4, 4, 6)
    x[1, 2] += 4.0
    x[2] *= 0.01
    batched = vidpool.compress(x, "vidcom2", budget=23)
    for b in range(3):
        single = vidpool.compress(x[b], "vidcom2", budget=23)
        assert torch.equal(single.assign, batched.assign[b])
        assert torch.equal(single.tokens, batched.tokens[b])


def test_bad_parameters_are_refused():
    with pytest.raises(vidpool.InvalidArgumentError, match="ratio"):
        vidpool.resolve("vidcom2", (4, 3, 3), ratio=1.5)
    with pytest.raises(vidpool.InvalidArgumentError, match="temperature"):
        vidpool.resolve("vidcom2", (4, 3, 3), temperature=0)
    with pytest.raises(vidpool.InvalidArgumentError, match="not both"):
        vidpool.resolve("vidcom2", (4, 3, 3), budget=10, ratio=0.5)
