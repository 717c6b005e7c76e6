"""``fastvid`` against FastVID's equations (Shen et al., NeurIPS 2025), written here as plain loops."""

from __future__ import annotations

import math
import random

import pytest
import torch

import vidpool
from vidpool import BudgetError

BETA = 0.6


def scene_video(lengths, h=3, w=4, c=8, noise=0.02, seed=0):
    """Frames of a few scenes: each scene one random token grid plus small noise, ``[1, T, h, w, c]``."""
    g = torch.Generator().manual_seed(seed)
    frames = []
    for n in lengths:
        base = torch.randn(h, w, c, generator=g, dtype=torch.float64)
        frames += [base + noise * torch.randn(h, w, c, generator=g, dtype=torch.float64) for _ in range(n)]
    return torch.stack(frames).unsqueeze(0)


def cosine(a, b):
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def reference_cuts(video, c, tau):
    """DySeg from the paper: cut after t where cos(f_t, f_t+1) < tau or among the c-1 lowest."""
    t = video.shape[0]
    feats = [video[i].reshape(-1, video.shape[-1]).mean(0).tolist() for i in range(t)]
    sims = [cosine(feats[i], feats[i + 1]) for i in range(t - 1)]
    lowest = sorted(range(t - 1), key=lambda i: (sims[i], i))[: c - 1]
    return sorted(set(lowest) | {i for i in range(t - 1) if sims[i] < tau})


def reference_scores(frame, k=4):
    """DPC-kNN density peaks as plain loops over one frame's tokens ``[N, C]``."""
    toks = frame.tolist()
    n, c = len(toks), len(toks[0])
    d = [[math.dist(toks[i], toks[j]) / math.sqrt(c) for j in range(n)] for i in range(n)]
    rho = [math.exp(-sum(v * v for v in sorted(d[i])[:k]) / min(k, n)) for i in range(n)]
    far = max(max(row) for row in d)
    scores = []
    for i in range(n):
        denser = [d[i][j] for j in range(n) if rho[j] > rho[i] or (rho[j] == rho[i] and j < i)]
        scores.append(rho[i] * (min(denser) if denser else far))
    return scores


def anchors_of(out, b=0):
    """Flat position of each output token's anchor: the input it weights most."""
    assign, weight = out.assign[b].flatten(), out.weight[b].flatten()
    found = []
    for j in range(out.num_tokens):
        members = (assign == j).nonzero().flatten()
        found.append(int(members[weight[members].argmax()]))
    return found


def segments_of(out, shape, b=0):
    """The frames each output token draws from."""
    t, h, w = shape
    frames = torch.arange(t).repeat_interleave(h * w)
    assign = out.assign[b].flatten()
    return [set(frames[assign == j].tolist()) for j in range(out.num_tokens)]


def test_segments_cut_where_similarity_drops_and_at_least_c():
    video = scene_video([5, 5, 4])
    # Only the scene cuts fall below tau: frames 0-4, 5-9, 10-13.
    assert reference_cuts(video[0], 1, 0.9) == [4, 9]
    out = vidpool.compress(video, "fastvid", budget=14, c=1, tau=0.9)
    groups = segments_of(out, (14, 3, 4))
    scene = [(f > 4) + (f > 9) for f in range(14)]
    assert all(len({scene[f] for f in g}) == 1 for g in groups)  # no token mixes frames across a cut
    assert {scene[f] for g in groups for f in g} == {0, 1, 2}
    # c = 6 forces 6 segments: the two cuts plus the three lowest within-scene transitions.
    cuts = reference_cuts(video[0], 6, 0.9)
    assert len(cuts) == 5 and {4, 9} <= set(cuts)
    bounds = [-1, *cuts, 13]
    seg = {f: s for s in range(6) for f in range(bounds[s] + 1, bounds[s + 1] + 1)}
    out = vidpool.compress(video, "fastvid", budget=14, c=6, tau=0.9)
    groups = segments_of(out, (14, 3, 4))
    assert all(len({seg[f] for f in g}) == 1 for g in groups)
    assert {seg[f] for g in groups for f in g} == set(range(6))  # every segment has an anchor


def test_tau_alone_splits_a_slowly_changing_video_only_at_big_drops():
    video = scene_video([3, 3, 3, 3], noise=0.05, seed=2)
    out = vidpool.compress(video, "fastvid", budget=12, c=1, tau=0.5)
    firsts = sorted(min(g) for g in segments_of(out, (12, 3, 4)))
    assert set(firsts) <= {0, 3, 6, 9} and {0, 3, 6, 9} <= set(firsts)


def test_anchors_are_the_density_peaks_of_a_slow_reference():
    torch.manual_seed(4)
    # One segment of 6 frames (c=1, tau=-1 cuts nothing): anchor frames 1 and 5 (every p=4 back from the last).
    x = torch.randn(1, 6, 3, 3, 5, dtype=torch.float64)
    out = vidpool.compress(x, "fastvid", budget=6, c=1, tau=-1.0, p=4)
    expected = []
    for f in (1, 5):
        scores = reference_scores(x[0, f].reshape(9, 5))
        top = sorted(range(9), key=lambda i: (-scores[i], i))[:3]
        expected += [f * 9 + i for i in sorted(top)]
    assert anchors_of(out) == expected


def test_single_frame_anchors_follow_the_reference_for_several_k():
    torch.manual_seed(5)
    x = torch.randn(1, 1, 4, 4, 3, dtype=torch.float64)
    scores = reference_scores(x[0, 0].reshape(16, 3))
    ranked = sorted(range(16), key=lambda i: (-scores[i], i))
    for k in (1, 3, 7):
        out = vidpool.compress(x, "fastvid", budget=k)
        assert anchors_of(out) == sorted(ranked[:k])


def test_each_token_is_the_dtm_weighted_mean_of_what_its_provenance_names():
    torch.manual_seed(6)
    x = torch.randn(1, 6, 3, 4, 5, dtype=torch.float64)
    out = vidpool.compress(x, "fastvid", budget=10, c=2, tau=-1.0, p=2)
    flat = x[0].reshape(-1, 5)
    anchors = anchors_of(out)
    groups = segments_of(out, (6, 3, 4))
    for j, a in enumerate(anchors):
        seg_frames = {f for g in groups if a // 12 in {f for f in g} for f in g}
        seg_anchors = [b for b in anchors if b // 12 in seg_frames]
        # Members: the segment's tokens whose most cosine-similar anchor is this one (an anchor is its own).
        members = [
            i
            for i in range(flat.shape[0])
            if i // 12 in seg_frames
            and (
                i == a
                or (
                    i not in seg_anchors
                    and max(seg_anchors, key=lambda b: (cosine(flat[i].tolist(), flat[b].tolist()), -b)) == a
                )
            )
        ]
        n = len(members)
        beta = max(BETA, 1 / (n + 1))
        want = beta * flat[a] + (1 - beta) * sum(flat[i] for i in members) / n
        assert torch.allclose(out.tokens[0, j], want, atol=1e-10)
        got = (out.assign[0].flatten() == j).nonzero().flatten().tolist()
        assert got == members
        w = out.weight[0].flatten()
        assert math.isclose(float(w[got].sum()), 1.0, abs_tol=1e-6)
        assert math.isclose(float(w[a]), beta + (1 - beta) / n, abs_tol=1e-6)
    # Tokens are time-major by their anchor's position, and every input feeds one token.
    assert anchors == sorted(anchors)
    assert (out.assign >= 0).all()


def test_count_is_exactly_the_budget_over_many_shapes():
    rng = random.Random(0)
    for _ in range(40):
        t, h, w = rng.randint(1, 12), rng.randint(1, 6), rng.randint(1, 6)
        budget = rng.randint(t, t * h * w + 5)
        x = torch.randn(2, t, h, w, 4)
        want = min(budget, t * h * w)
        assert vidpool.num_output_tokens("fastvid", (t, h, w), budget=budget) == want
        out = vidpool.compress(x, "fastvid", budget=budget, c=rng.randint(1, 9), p=rng.randint(1, 5))
        assert out.tokens.shape == (2, want, 4)
        for i in range(2):  # every output token is fed, by the inputs its weights sum to one over
            assert torch.equal(out.assign[i].flatten().unique(), torch.arange(want))
        assert torch.allclose(
            torch.zeros(2, want).scatter_add(1, out.assign.flatten(1), out.weight.flatten(1)),
            torch.ones(2, want),
        )


def test_default_keeps_a_tenth_of_each_frame():
    assert vidpool.num_output_tokens("fastvid", (32, 24, 24)) == 32 * 57
    assert vidpool.num_output_tokens("fastvid", (4, 2, 2)) == 4  # at least one per frame
    assert vidpool.num_output_tokens("fastvid", (4, 10, 10), ratio=0.25) == 100


def test_budget_below_the_frame_count_is_refused():
    with pytest.raises(BudgetError) as err:
        vidpool.num_output_tokens("fastvid", (8, 12, 10), budget=7)
    assert err.value.min_budget == 8
    with pytest.raises(vidpool.InvalidArgumentError):
        vidpool.num_output_tokens("fastvid", (8, 12, 10), budget=20, ratio=0.2)


def test_batch_equals_loop_on_videos_with_different_cuts():
    a, b = scene_video([4, 6], seed=1), scene_video([2, 3, 5], seed=3)
    x = torch.cat([a, b])
    batched = vidpool.compress(x, "fastvid", budget=17, c=2)
    for i in range(2):
        single = vidpool.compress(x[i], "fastvid", budget=17, c=2)
        assert torch.equal(single.assign, batched.assign[i])
        assert torch.allclose(single.tokens, batched.tokens[i])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_half_precision_keeps_decisions_on_clear_content(dtype):
    # Random tokens sit at near-ties that rounding flips; distinct scenes with far-apart tokens do not.
    x = scene_video([3, 4], h=2, w=2, c=4, noise=0.05, seed=8).float()
    ref = vidpool.compress(x, "fastvid", budget=10, c=1)
    out = vidpool.compress(x.to(dtype), "fastvid", budget=10, c=1)
    assert out.tokens.dtype == dtype
    assert torch.equal(out.assign, ref.assign)
    assert torch.allclose(out.tokens.float(), ref.tokens, atol=5e-2, rtol=2e-2)
