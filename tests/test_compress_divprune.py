"""``divprune`` against the Max-Min Diversity greedy written from its definition, and the paper's claims."""

from __future__ import annotations

import math

import pytest
import torch

import vidpool
from vidpool import BudgetError, InvalidArgumentError
from vidpool.compression import divprune


def reference_greedy(tokens: torch.Tensor, k: int) -> list[int]:
    """Greedy Max-Min diversity from the definition, over a full cosine-distance matrix (tiny N only).

    First: argmax_i min_{j≠i} d(i, j); then argmax_{i∉S} min_{s∈S} d(i, s); ties to the lowest index.
    """
    u = tokens.double() / tokens.double().norm(dim=-1, keepdim=True)
    d = (1 - u @ u.T).tolist()
    n = len(d)
    best, first = -math.inf, None
    for i in range(n):
        nearest = min((d[i][j] for j in range(n) if j != i), default=math.inf)
        if nearest > best:
            best, first = nearest, i
    kept = [first]
    while len(kept) < k:
        best, pick = -math.inf, None
        for i in range(n):
            if i in kept:
                continue
            far = min(d[i][s] for s in kept)
            if far > best:
                best, pick = far, i
        kept.append(pick)
    return kept


def kept_positions(out) -> list[int]:
    return sorted(torch.nonzero(out.assign.flatten() >= 0).flatten().tolist())


def min_pairwise_distance(tokens: torch.Tensor) -> float:
    u = tokens.double() / tokens.double().norm(dim=-1, keepdim=True)
    d = 1 - u @ u.T
    d.fill_diagonal_(math.inf)
    return float(d.min())


def clustered(t, h, w, c, seed, clusters=6):
    """Tokens around a few centres, as real frames are: many near-duplicates, a few distinct ones."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, c, generator=g)
    which = torch.randint(clusters, (t * h * w,), generator=g)
    return (centres[which] + 0.3 * torch.randn(t * h * w, c, generator=g)).view(t, h, w, c)


@pytest.mark.parametrize("seed, budget", [(0, 1), (1, 7), (2, 30), (3, 60), (4, 119)])
def test_kept_set_is_the_reference_greedy(seed, budget):
    x = clustered(4, 6, 5, 8, seed).double()
    out = vidpool.compress(x, "divprune", budget=budget)
    assert out.num_tokens == budget
    assert kept_positions(out) == sorted(reference_greedy(x.reshape(-1, 8), budget))


def test_tokens_are_the_inputs_at_the_kept_positions_in_time_major_order():
    x = clustered(4, 6, 5, 8, 9)
    out = vidpool.compress(x, "divprune", budget=25)
    pos = kept_positions(out)
    assert torch.equal(out.tokens, x.reshape(-1, 8)[pos])
    assert out.assign.flatten()[pos].tolist() == list(range(25))
    assert torch.equal(out.weight, (out.assign >= 0).float())


def test_first_pick_has_the_farthest_nearest_neighbour():
    x = clustered(3, 5, 6, 8, 5).double()
    flat = x.reshape(-1, 8)
    u = flat / flat.norm(dim=-1, keepdim=True)
    d = 1 - u @ u.T
    d.fill_diagonal_(math.inf)
    out = vidpool.compress(x, "divprune", budget=1)
    assert kept_positions(out) == [int(d.min(1).values.argmax())]


def test_first_pick_breaks_ties_by_the_lowest_index():
    # Tokens 0/2 and 1/5 are duplicates (nearest distance 0); tokens 3 and 4 both have nearest
    # distance 1: the lowest index wins.
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
    out = vidpool.compress(base.view(1, 2, 3, 2), "divprune", budget=1)
    assert kept_positions(out) == [3]  # tokens 3 and 4 both have nearest distance 1; 3 is first
    # Then tokens 0 and 2 are both at distance 2 from token 3: 0 is kept.
    assert kept_positions(vidpool.compress(base.view(1, 2, 3, 2), "divprune", budget=2)) == [0, 3]


def test_duplicates_are_never_kept_twice():
    # Only two distinct directions but six tokens wanted: after those, distances are all 0 and the
    # remaining picks must still be new positions.
    x = torch.tensor([[1.0, 0.0]] * 5 + [[0.0, 1.0]] * 3).view(1, 2, 4, 2)
    out = vidpool.compress(x, "divprune", budget=6)
    assert len(set(kept_positions(out))) == 6
    assert kept_positions(out) == sorted(reference_greedy(x.reshape(-1, 2), 6))


def test_kept_set_is_more_diverse_than_random_subsets():
    """The paper's objective: the smallest pairwise distance of the kept set is maximised."""
    x = clustered(8, 6, 6, 16, 11)
    flat = x.reshape(-1, 16)
    k = 29
    kept = kept_positions(vidpool.compress(x, "divprune", budget=k))
    ours = min_pairwise_distance(flat[kept])
    g = torch.Generator().manual_seed(0)
    randoms = [min_pairwise_distance(flat[torch.randperm(len(flat), generator=g)[:k]]) for _ in range(50)]
    assert ours >= max(randoms)
    assert ours > 2 * sorted(randoms)[25]  # not a near tie: well above the median random subset


def test_per_frame_keeps_the_split_count_in_each_frame():
    x = clustered(8, 4, 5, 6, 3).double()
    out = vidpool.compress(x, "divprune", budget=50, per_frame=True)
    per_frame = (out.assign >= 0).flatten(1).sum(1).tolist()
    assert per_frame == [7, 7, 6, 6, 6, 6, 6, 6]  # 50 = 8·6 + 2: the first two frames keep one more
    for f, k in enumerate(per_frame):
        in_frame = torch.nonzero(out.assign[f].flatten() >= 0).flatten().tolist()
        assert in_frame == sorted(reference_greedy(x[f].reshape(-1, 6), k))
    assert out.num_tokens == vidpool.num_output_tokens("divprune", (8, 4, 5), budget=50, per_frame=True)


def test_per_frame_refuses_a_budget_below_one_token_per_frame():
    with pytest.raises(BudgetError) as info:
        vidpool.num_output_tokens("divprune", (8, 4, 5), budget=7, per_frame=True)
    assert info.value.min_budget == 8
    assert vidpool.num_output_tokens("divprune", (8, 4, 5), budget=7) == 7


def test_default_count_and_parameters():
    assert vidpool.num_output_tokens("divprune", (8, 12, 10)) == round(0.098 * 960) == 94
    assert vidpool.num_output_tokens("divprune", (8, 12, 10), ratio=0.5) == 480
    assert vidpool.num_output_tokens("divprune", (8, 2, 2), per_frame=True) == 8  # at least one a frame
    assert vidpool.num_output_tokens("divprune", (2, 3, 3), budget=100) == 18
    with pytest.raises(InvalidArgumentError, match="not both"):
        vidpool.num_output_tokens("divprune", (8, 12, 10), budget=10, ratio=0.5)
    for bad in (0, 1.5, "0.1", True):
        with pytest.raises(InvalidArgumentError, match="ratio"):
            vidpool.num_output_tokens("divprune", (8, 12, 10), ratio=bad)
    with pytest.raises(InvalidArgumentError, match="per_frame"):
        vidpool.num_output_tokens("divprune", (8, 12, 10), per_frame="yes")


@pytest.mark.parametrize("per_frame", [False, True])
def test_batch_equals_loop(per_frame):
    x = torch.stack([clustered(4, 5, 6, 8, s) for s in range(3)])
    batched = vidpool.compress(x, "divprune", budget=33, per_frame=per_frame)
    for i in range(3):
        single = vidpool.compress(x[i], "divprune", budget=33, per_frame=per_frame)
        assert torch.equal(single.assign, batched.assign[i])
        assert torch.equal(single.tokens, batched.tokens[i])


def test_half_precision_is_compared_in_float32():
    x = clustered(4, 6, 5, 8, 7).half()
    for dtype in (torch.float16, torch.bfloat16):
        low = x.to(dtype)
        out = vidpool.compress(low, "divprune", budget=30)
        assert out.tokens.dtype == dtype
        assert torch.equal(out.assign, vidpool.compress(low.float(), "divprune", budget=30).assign)


def test_gradients_reach_exactly_the_kept_tokens():
    x = clustered(4, 6, 5, 8, 2).requires_grad_(True)
    out = vidpool.compress(x, "divprune", budget=20)
    out.tokens.sum().backward()
    kept = (out.assign >= 0).unsqueeze(-1).expand_as(x)
    assert torch.equal(x.grad, kept.float())


def test_blocked_first_pick_equals_one_block(monkeypatch):
    x = clustered(6, 7, 8, 8, 4).double()
    whole = vidpool.compress(x, "divprune", budget=40)
    monkeypatch.setattr(divprune, "_BLOCK_ELEMENTS", 5)  # one row of 336 at a time
    blocked = vidpool.compress(x, "divprune", budget=40)
    assert torch.equal(whole.assign, blocked.assign)


def test_no_n_by_n_matrix_is_allocated():
    from vidpool.encode.measure import measure_peak

    n, c = 20_000, 64
    x = torch.randn(1, 100, 200, c)
    out, peak = measure_peak(lambda: vidpool.compress(x, "divprune", budget=100, check_finite=False))
    assert out.num_tokens == 100
    assert peak < n * n * 4 / 10, f"peak {peak / 2**20:.0f} MiB"


@pytest.mark.parametrize("per_frame", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_input_is_never_copied(monkeypatch, dtype, per_frame):
    from vidpool.encode.measure import measure_peak

    monkeypatch.setattr(divprune, "_BLOCK_ELEMENTS", 1 << 14)  # small blocks: what is left is copies
    x = torch.randn(1, 8, 24, 24, 256).to(dtype)
    _, peak = measure_peak(lambda: vidpool.compress(x, "divprune", budget=64, per_frame=per_frame))
    assert peak < 0.25 * x.numel() * x.element_size(), f"peak {peak} bytes of {x.numel() * x.element_size()}"


def test_more_than_all_tokens_keeps_everything_in_order():
    x = torch.randn(2, 2, 3, 4)
    for per_frame in (False, True):
        out = vidpool.compress(x, "divprune", budget=100, per_frame=per_frame)
        assert torch.equal(out.tokens, x.reshape(-1, 4))


def test_reference_loop_is_itself_correct_on_a_worked_example():
    # Three points on a circle at 0°, 10° and 180°: the lone 180° point's nearest neighbour is
    # farthest, so it is first; then 0°, farther from it than 10°.
    pts = torch.tensor([[math.cos(a), math.sin(a)] for a in map(math.radians, (0, 10, 180))])
    assert reference_greedy(pts, 2) == [2, 0]
    assert reference_greedy(pts, 3) == [2, 0, 1]


def test_a_budget_sweep_reuses_one_greedy_order_and_matches_fresh_runs(monkeypatch):
    """Budgets over one video take prefixes of its greedy order; a different video never reuses it."""
    import vidpool.compression.divprune as dp

    torch.manual_seed(3)
    video = torch.randn(6, 4, 4, 8)
    fresh = {k: vidpool.compress(video.clone(), "divprune", budget=k).tokens for k in (40, 20, 5)}
    dp._LAST_ORDER.clear()
    calls = []
    real = dp.max_min_diverse
    monkeypatch.setattr(dp, "max_min_diverse", lambda *a: calls.append(a[1]) or real(*a))
    swept = {k: vidpool.compress(video, "divprune", budget=k).tokens for k in (40, 20, 5)}
    assert calls == [40]
    for k in fresh:
        torch.testing.assert_close(swept[k], fresh[k], rtol=0, atol=0)
    other = video.clone()
    other[0, 0, 0, 0] += 1.0
    vidpool.compress(other, "divprune", budget=5)
    assert calls == [40, 5]
