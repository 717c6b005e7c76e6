"""The retrieval readout: joint embeddings compressed with a method's own provenance, each family's
rule on hand-made tokens, the text-only control at chance, and the controls' provenance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from trained_support import trained_kwargs

import vidpool
from vidpool.bench.synth import (
    CONTROLS,
    FAMILIES,
    Kept,
    control_compressed,
    control_kept,
    item_seed,
    kept_tokens,
    make_items,
    option_scores,
    shuffle_frames,
)
from vidpool.bench.synth.scenes import GREY
from vidpool.bench.synth.world import COLOURS, SHAPES
from vidpool.compression.registry import get_method
from vidpool.compression.result import Compressed
from vidpool.errors import BudgetError, InvalidArgumentError

VOCAB = [*COLOURS, *SHAPES, "background"]
FRAMES = {"needle": 32, "needle_time": 32}


def embed(prompts: list[str]) -> torch.Tensor:
    """A stand-in text tower: a prompt is the sum of the basis vectors of the world words it names."""
    out = torch.zeros(len(prompts), len(VOCAB) + 2)
    for i, prompt in enumerate(prompts):
        for word in prompt.split():
            if word in VOCAB:
                out[i, VOCAB.index(word)] = 1.0
    return out


def _vec(*words: str, noise: torch.Tensor | None = None) -> torch.Tensor:
    v = embed([" ".join(words)])[0]
    return v if noise is None else v + noise


def perfect_kept(item, seed: int = 0) -> Kept:
    """What an ideal encoder keeps of the item with every token: one token per object per frame, named
    by its colour and shape, plus noisy background tokens (what the scene record says, not the pixels)."""
    scene, gen = item.scene, torch.Generator().manual_seed(seed)
    joint, span, centre = [], [], []
    for t in range(scene.num_frames):
        for obj in scene.objects:
            if not scene.visible(obj, t):
                continue
            colour = scene.colour(obj, t)
            words = (obj.shape, "background") if colour == GREY else (colour, obj.shape)
            x, y = scene.position(obj, t)
            joint.append(_vec(*words))
            span.append((t, t))
            centre.append((8 * y, 8 * x))
        for _ in range(4):
            noise = torch.zeros(len(VOCAB) + 2)
            noise[-2:] = torch.randn(2, generator=gen)
            joint.append(_vec("background", noise=noise))
            span.append((t, t))
            centre.append(tuple((torch.rand(2, generator=gen) * 8).tolist()))
    return Kept(torch.stack(joint), torch.tensor(span), torch.tensor(centre), scene.num_frames)


@pytest.mark.parametrize("family", FAMILIES)
def test_rules_answer_every_family_from_ideal_tokens(family):
    for item in make_items(family, 16, seed=4, num_frames=FRAMES.get(family)):
        scores = option_scores(item, perfect_kept(item), embed)
        assert scores.shape == (4,)
        assert int(np.argmax(scores)) == item.answer, (item.id, item.options, scores)


def test_rules_read_provenance_on_hand_made_tokens():
    item = make_items("direction", 4, seed=0)[0]
    subject = item.scene.find("mover").first_colour
    bg = [_vec("background")] * 6
    moves = {"right": (0, 1), "left": (0, -1), "up": (-1, 0), "down": (1, 0)}
    for (direction, step), inverted in itertools.product(moves.items(), (False, True)):
        # the subject at (4, 4) moving one cell per frame over frames 0..3, among still background;
        # inverted: the frame's colour is on the background tokens and the object's own token lacks it
        obj, rest = (
            (_vec("square"), _vec(subject, "background")) if inverted else (_vec(subject, "square"), bg[0])
        )
        centres = [(4 + step[0] * t, 4 + step[1] * t) for t in range(4)] + [(1, 1), (6, 6), (1, 6)] * 2
        kept = Kept(
            torch.stack([obj] * 4 + [rest] * 6),
            torch.tensor([(t, t) for t in range(4)] + [(0, 3)] * 6),
            torch.tensor(centres, dtype=torch.float32),
            4,
        )
        scores = option_scores(item, kept, embed)
        assert item.options[int(np.argmax(scores))] == direction, (direction, inverted)
    # a subject token that spans the whole clip (temporal pooling) carries no motion: a tie, broken by item
    pooled = Kept(
        torch.stack([_vec(subject), *bg[:3]]), torch.tensor([(0, 3)] * 4), torch.full((4, 2), 4.0), 4
    )
    raw = option_scores(item, pooled, embed)
    assert np.sort(raw)[-2] == 0 and raw.max() < 1e-5


def test_count_merges_runs_and_ignores_the_still_frames():
    item = next(i for i in make_items("count", 8) if i.options[i.answer] == "3")
    colour = item.scene.find("flash").first_colour
    spans = [(2, 3), (8, 9), (20, 21)]
    kept = Kept(
        torch.stack([_vec(colour, "circle")] * 3 + [_vec("background")] * 6),
        torch.tensor(spans + [(t, t + 4) for t in range(0, 30, 5)]),
        torch.full((9, 2), 3.0),
        32,
    )
    assert item.options[int(np.argmax(option_scores(item, kept, embed)))] == "3"
    merged = Kept(
        kept.joint, torch.tensor([(2, 21)] * 3 + [(t, t + 4) for t in range(0, 30, 5)]), kept.centre, 32
    )
    assert item.options[int(np.argmax(option_scores(item, merged, embed)))] == "1"


def test_change_rules_out_the_colour_shown_all_along():
    item = make_items("change", 1, seed=2)[0]
    obj = item.scene.find("changer")
    before, after = obj.colours[0][1], obj.colours[1][1]
    joint = torch.stack([_vec(before, obj.shape)] * 3 + [_vec(after, obj.shape)])
    kept = Kept(joint, torch.tensor([(0, 4), (5, 8), (12, 15), (9, 11)]), torch.full((4, 2), 3.0), 16)
    assert item.options[int(np.argmax(option_scores(item, kept, embed)))] == after
    lost = Kept(joint[:3], kept.span[:3], kept.centre[:3], 16)  # the change was dropped
    assert item.options[int(np.argmax(option_scores(item, lost, embed)))] != before


def test_text_only_is_chance_and_never_reads_the_answer():
    hits, picks = 0, []
    for family in FAMILIES:
        items = make_items(family, 100, seed=6, num_frames=FRAMES.get(family))
        for item in items:
            scores = option_scores(item, None, embed)
            assert np.array_equal(scores, option_scores(item, None, embed))  # fixed per item
            assert (scores == scores.max()).sum() == 1
            picks.append(int(np.argmax(scores)))
            hits += picks[-1] == item.answer
    # 800 items: binomial(800, 0.25) lies in [0.2, 0.3] with probability > 0.999
    assert 0.2 <= hits / len(picks) <= 0.3
    assert np.bincount(picks, minlength=4).min() > 150


def test_kept_tokens_hand_computed():
    joint = torch.arange(2 * 2 * 2 * 3, dtype=torch.float32).view(2, 2, 2, 3)
    # token 0: frame 0's top row (weights 0.25, 0.75); token 1: frame 1's four patches averaged;
    # frame 0's bottom row dropped; token 2 fed by nobody (like spp's coarse levels)
    assign = torch.tensor([[[0, 0], [-1, -1]], [[1, 1], [1, 1]]])
    weight = torch.tensor([[[0.25, 0.75], [0.0, 0.0]], [[0.25, 0.25], [0.25, 0.25]]])
    compressed = Compressed(torch.zeros(3, 5), assign, weight, "hand", input_shape=(2, 2, 2))
    kept = kept_tokens(compressed, joint)
    expected0 = 0.25 * joint[0, 0, 0] + 0.75 * joint[0, 0, 1]
    torch.testing.assert_close(kept.joint, torch.stack([expected0, joint[1].mean((0, 1))]))
    assert kept.span.tolist() == [[0, 0], [1, 1]]
    torch.testing.assert_close(kept.centre, torch.tensor([[0.5, 1.25], [1.0, 1.0]]))
    assert kept.num_frames == 2


def test_kept_tokens_of_spatial_pooling_equal_torch_average_pooling():
    gen = torch.Generator().manual_seed(0)
    features, joint = torch.randn(4, 8, 8, 16, generator=gen), torch.randn(4, 8, 8, 6, generator=gen)
    compressed = vidpool.compress(features, "spatial", budget=64)
    assert compressed.grid == (4, 4, 4)
    kept = kept_tokens(compressed, joint)
    pooled = torch.nn.functional.avg_pool2d(joint.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1).reshape(64, 6)
    torch.testing.assert_close(kept.joint, pooled)
    frames = torch.arange(4).repeat_interleave(16)
    assert torch.equal(kept.span, torch.stack([frames, frames], 1))
    grid = torch.tensor([(2 * r + 1.0, 2 * c + 1.0) for r in range(4) for c in range(4)])
    torch.testing.assert_close(kept.centre, grid.repeat(4, 1))


@pytest.mark.parametrize("method", vidpool.list_methods())
def test_kept_tokens_of_every_method(method):
    gen = torch.Generator().manual_seed(1)
    features, joint = torch.randn(6, 8, 8, 16, generator=gen), torch.randn(6, 8, 8, 6, generator=gen)
    scores = (
        vidpool.prompt_scores(joint, torch.randn(6, generator=gen))
        if get_method(method).uses_scores
        else None
    )
    weights = trained_kwargs(method, 16)
    try:
        compressed = vidpool.compress(features, method, budget=48, scores=scores, **weights)
    except BudgetError:
        compressed = vidpool.compress(features, method, scores=scores, **weights)
    kept = kept_tokens(compressed, joint)
    recorded = compressed.assign[compressed.weight > 0].unique()
    assert kept.joint.shape == (len(recorded), 6) and len(recorded) <= compressed.num_tokens
    assert (kept.span[:, 0] <= kept.span[:, 1]).all() and kept.span.min() >= 0 and kept.span.max() <= 5
    assert (kept.centre >= 0.5).all() and (kept.centre <= 7.5).all()
    # every kept joint lies in the convex hull of its positions: inside their per-channel range
    assert torch.isfinite(kept.joint).all() and kept.joint.abs().max() <= joint.abs().max() + 1e-5
    if method == "spp":  # only the finest level is anyone's main token
        assert len(recorded) == 6 * 16 < compressed.num_tokens


def test_kept_tokens_refuses_mismatched_shapes():
    compressed = vidpool.compress(torch.randn(2, 4, 4, 8), "none")
    with pytest.raises(InvalidArgumentError, match="one video"):
        kept_tokens(compressed, torch.randn(3, 4, 4, 5))


def _check_single_positions(out: Compressed, features: torch.Tensor) -> None:
    """Every kept position is its own token, with weight 1 and its own features."""
    kept = out.assign >= 0
    assert torch.equal(out.weight, kept.float())
    assert sorted(out.assign[kept].tolist()) == list(range(out.num_tokens))
    torch.testing.assert_close(out.tokens[out.assign[kept]], features[kept])


def test_controls_keep_their_budget_with_valid_provenance():
    features = torch.randn(10, 4, 4, 8, generator=torch.Generator().manual_seed(2))
    assert control_compressed("text_only", features, None, 0) is None
    full = control_compressed("full", features, None, 0)
    assert full.num_tokens == 160 and full.grid == (10, 4, 4)
    middle = control_compressed("middle_frame", features, None, 0)
    assert (
        middle.num_tokens == 16
        and (middle.assign[5] >= 0).all()
        and (middle.assign[torch.arange(10) != 5] < 0).all()
    )
    for budget in (1, 7, 50, 500):
        drop = control_compressed("random_drop", features, budget, seed=3)
        assert drop.num_tokens == min(budget, 160) == int((drop.assign >= 0).sum())
        assert torch.equal(drop.assign, control_compressed("random_drop", features, budget, seed=3).assign)
        sub = control_compressed("frame_subsample", features, budget, seed=3)
        frames = (sub.assign >= 0).flatten(1).all(1).nonzero().squeeze(1).tolist()
        assert len(frames) == min(10, max(1, budget // 16)) and sub.num_tokens == 16 * len(frames)
        assert not (sub.assign >= 0).flatten(1).any(1)[[f for f in range(10) if f not in frames]].any()
        for out in (full, middle, drop, sub):
            _check_single_positions(out, features)
    assert control_compressed("frame_subsample", features, 48, 0).params["frames"] == [1, 5, 8]
    other = control_compressed("random_drop", features, 20, seed=4)
    assert not torch.equal(other.assign, control_compressed("random_drop", features, 20, seed=3).assign)
    with pytest.raises(InvalidArgumentError, match="budget"):
        control_compressed("random_drop", features, None, 0)
    with pytest.raises(InvalidArgumentError, match="controls are"):
        control_compressed("half", features, 4, 0)
    assert set(CONTROLS) == {
        "full",
        "middle_frame",
        "shuffled",
        "text_only",
        "random_drop",
        "frame_subsample",
    }


def test_shuffled_control_loses_time_order():
    features, joint = torch.randn(8, 2, 2, 4), torch.arange(8.0).view(8, 1, 1, 1).expand(8, 2, 2, 3).clone()
    shuffled, perm = shuffle_frames(joint, seed=5)
    assert sorted(perm.tolist()) == list(range(8)) and perm.tolist() != list(range(8))
    assert shuffled[:, 0, 0, 0].tolist() == [float(p) for p in perm]
    frames, perm_np = shuffle_frames(np.arange(8), seed=5)
    assert perm_np.tolist() == perm.tolist() and frames.tolist() == perm.tolist()
    kept = control_kept("shuffled", features, joint, seed=5)
    # shown frame t (the token's span) holds original frame perm[t] (the joint's value)
    assert torch.equal(kept.joint[:, 0], kept.span[:, 0].float().apply_(lambda t: float(perm[int(t)])))
    full = control_kept("full", features, joint)
    assert torch.equal(full.joint[:, 0], full.span[:, 0].float())
    assert control_kept("text_only", features, joint) is None


def test_item_seeds_shuffle_each_item_its_own_way():
    items = make_items("direction", 40, seed=0)
    perms = {tuple(shuffle_frames(np.arange(16), item_seed(i.id, 0))[1]) for i in items}
    assert len(perms) == 40
    # a per-item shuffle is as often correlated with time as against it: no shared sign survives
    signs = [np.sign(np.corrcoef(np.arange(16), p)[0, 1]) for p in perms]
    assert 10 <= sum(s > 0 for s in signs) <= 30
    assert item_seed("count-s0-0001", 1) != item_seed("count-s0-0001", 0)
