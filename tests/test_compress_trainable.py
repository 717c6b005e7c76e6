"""The trainable poolings ``attsets`` and ``multilayer`` against their equations, budgets and weights."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

import vidpool
from vidpool import BudgetError, CheckpointError, InvalidArgumentError
from vidpool.compression.attsets import AttSetsPool
from vidpool.compression.multilayer import MultiLayerPool
from vidpool.compression.pool import adaptive_bins
from vidpool.compression.trained import default_weights, save_pooling

ROOT = Path(__file__).resolve().parent.parent


def random_attsets(width: int) -> AttSetsPool:
    torch.manual_seed(11)
    module = AttSetsPool(width, hidden=8)
    torch.nn.init.normal_(module.score[2].weight, std=0.5)  # not the zero start: scores that matter
    return module


def random_multilayer(width: int, layers=(-3, -2, -1), read: int = 1) -> MultiLayerPool:
    torch.manual_seed(12)
    module = MultiLayerPool(width, layers=layers, read=read, dim=8, queries=16)
    torch.nn.init.normal_(module.value.weight, std=0.1)
    return module


def attsets_reference(module: AttSetsPool, x: torch.Tensor, grid) -> torch.Tensor:
    """AttSets over each window written out: softmax of g(x) per channel over the window, weighted sum.

    ``x [T, H, W, C]`` -> ``[t*h*w, C]``.
    """
    g = module.score(x)
    out = []
    for ts, te in adaptive_bins(x.shape[0], grid[0]):
        for hs, he in adaptive_bins(x.shape[1], grid[1]):
            for ws, we in adaptive_bins(x.shape[2], grid[2]):
                xs = x[ts:te, hs:he, ws:we].reshape(-1, x.shape[-1])
                gs = g[ts:te, hs:he, ws:we].reshape(-1, x.shape[-1])
                e = torch.exp(gs - gs.max(dim=0).values)
                out.append((e / e.sum(dim=0) * xs).sum(dim=0))
    return torch.stack(out)


def multilayer_reference(module: MultiLayerPool, x: torch.Tensor, count: int):
    """Cross-attention of the first ``count`` queries over each frame's positions, written out.

    ``x [T, H, W, L*D]`` -> ``(tokens [T*count, D], attention [T, count, H*W])``.
    """
    d, r = module.config["width"], module.config["read"]
    tokens, attn = [], []
    for frame in x.flatten(1, 2):  # [P, L*D]
        keys = module.key(
            torch.nn.functional.layer_norm(frame, (frame.shape[-1],), module.norm.weight, module.norm.bias)
        )
        logits = module.queries[:count] @ keys.T / math.sqrt(keys.shape[-1])  # [q, P]
        a = torch.exp(logits - logits.max(dim=1, keepdim=True).values)
        a = a / a.sum(dim=1, keepdim=True)
        values = frame[:, r * d : (r + 1) * d] + frame @ module.value.weight.T + module.value.bias
        tokens.append(a @ values)
        attn.append(a)
    return torch.cat(tokens), torch.stack(attn)


@pytest.mark.parametrize("shape,grid", [((4, 6, 6, 5), (2, 3, 3)), ((5, 7, 6, 5), (2, 3, 4))])
def test_attsets_is_the_softmax_within_each_window(shape, grid):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    module = random_attsets(shape[-1])
    out = module(x, grid=grid)
    assert out.tokens.shape == (math.prod(grid), shape[-1]) and out.grid == grid
    assert torch.allclose(out.tokens, attsets_reference(module, x, grid), atol=1e-5)


def test_attsets_starts_as_the_window_average():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 8, 8, 5)
    out = vidpool.compress(x, "attsets", budget=40, weights=AttSetsPool(5))
    ref = vidpool.compress(x, "adaptive", budget=40)
    assert out.params["grid"] == ref.params["grid"]
    assert torch.allclose(out.tokens, ref.tokens, atol=1e-5)
    assert torch.equal(out.assign, ref.assign) and torch.allclose(out.weight, ref.weight)


def test_attsets_provenance_is_the_window_and_its_mean_attention():
    torch.manual_seed(1)
    x = torch.randn(4, 6, 6, 5)
    module = random_attsets(5)
    grid = (2, 3, 3)
    out = module(x, grid=grid)
    adaptive = vidpool.compress(x, "adaptive", grid=grid)
    assert torch.equal(out.assign, adaptive.assign)
    g = module.score(x)
    for t, h, w in [(0, 0, 0), (3, 5, 2), (1, 2, 4)]:
        ts, hs, ws = t // 2 * 2, h // 2 * 2, w // 2 * 2
        window = g[ts : ts + 2, hs : hs + 2, ws : ws + 2].reshape(-1, 5)
        share = torch.softmax(window, dim=0).reshape(2, 2, 2, 5)[t - ts, h - hs, w - ws]
        assert torch.allclose(out.weight[t, h, w], share.mean(), atol=1e-6)
    # per window, the channel-mean attention sums to one
    sums = torch.zeros(out.num_tokens).index_add_(0, out.assign.flatten(), out.weight.flatten())
    assert torch.allclose(sums, torch.ones(out.num_tokens), atol=1e-5)


@pytest.mark.parametrize("budget,count", [(None, 9), (40, 5), (7, 1), (1000, 16)])
def test_multilayer_is_cross_attention_over_each_frame(budget, count):
    torch.manual_seed(2)
    x = torch.randn(7, 6, 6, 3 * 4)
    module = random_multilayer(4)
    out = module(x, budget=budget)
    tokens, attn = multilayer_reference(module, x, count)
    assert (
        out.num_tokens
        == 7 * count
        == vidpool.num_output_tokens("multilayer", (7, 6, 6), budget=budget, weights=module)
    )
    assert out.tokens.shape == (7 * count, 4)
    assert torch.allclose(out.tokens, tokens, atol=1e-5)
    best, query = attn.max(dim=1)  # [T, P]
    assert torch.equal(out.assign.flatten(1), query + count * torch.arange(7)[:, None])
    assert torch.allclose(out.weight.flatten(1), best, atol=1e-6)


def test_multilayer_starts_from_the_read_layer():
    torch.manual_seed(3)
    x = torch.randn(3, 4, 4, 2 * 5)
    module = MultiLayerPool(5, layers=(-2, -1), read=0, dim=8, queries=4)
    out = module(x, queries=2)
    a = multilayer_reference(module, x, 2)[1]  # [T, q, P]
    assert torch.allclose(out.tokens, (a @ x[..., :5].flatten(1, 2)).flatten(0, 1), atol=1e-5)


@pytest.mark.parametrize("kind", ["attsets", "multilayer"])
def test_gradients_reach_parameters_and_input(kind):
    torch.manual_seed(4)
    module = random_attsets(6) if kind == "attsets" else random_multilayer(2)
    x = torch.randn(2, 4, 6, 6, 6, requires_grad=True)
    module(x, budget=30).tokens.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_budgets_resolve_exactly():
    shape = (16, 8, 8)
    for fraction in (0.25, 0.10, 0.05, 0.03):
        budget = round(fraction * math.prod(shape))
        plan = vidpool.resolve("attsets", shape, budget=budget, weights=AttSetsPool(4))
        assert plan.grid == vidpool.resolve("adaptive", shape, budget=budget).grid
        assert plan.num_tokens == math.prod(plan.grid) <= budget
        ml = vidpool.resolve("multilayer", shape, budget=budget, weights=MultiLayerPool(4, queries=64))
        assert ml.params["queries"] == budget // 16 and ml.num_tokens == 16 * (budget // 16)
    with pytest.raises(BudgetError, match="smallest possible budget is 16"):
        vidpool.resolve("multilayer", shape, budget=15, weights=MultiLayerPool(4))
    with pytest.raises(InvalidArgumentError, match=r"1\.\.64"):
        vidpool.resolve("multilayer", shape, queries=65, weights=MultiLayerPool(4, queries=80))
    with pytest.raises(InvalidArgumentError, match="not both"):
        vidpool.resolve("attsets", shape, budget=10, grid=(1, 2, 2))


def test_saved_weights_load_and_a_wrong_width_is_refused(tmp_path):
    torch.manual_seed(5)
    x = torch.randn(2, 4, 6, 6, 6)
    module = random_attsets(6)
    path = tmp_path / "a.safetensors"
    save_pooling(module, path)
    assert json.loads(path.with_suffix(".json").read_text()) == {"width": 6, "hidden": 8}
    loaded = vidpool.compress(x, "attsets", budget=30, weights=str(path))
    # float16 storage: the loaded weights are the module's rounded to half precision
    assert torch.allclose(loaded.tokens, module(x, budget=30).tokens, atol=2e-2)
    with pytest.raises(InvalidArgumentError, match=r"train_synth_pooling\.py"):
        vidpool.compress(x[..., :5], "attsets", weights=str(path))
    ml = random_multilayer(2)
    with pytest.raises(InvalidArgumentError, match=r"3 layers \[-3, -2, -1\] of 2.*has 4"):
        ml(x[..., :4])
    with pytest.raises(CheckpointError, match=r"train_synth_pooling\.py"):
        vidpool.compress(x, "attsets", weights=str(tmp_path / "none.safetensors"))
    pool = vidpool.TokenCompressor("attsets", budget=30, weights=str(path))
    assert pool(x).shape == (2, pool.num_output_tokens((4, 6, 6)), 6)


def world_width() -> int:
    cfg = json.loads((ROOT / "checkpoints" / "vidpool-synth" / "vidpool-synth-clip.json").read_text())
    return cfg["vision_cfg"]["width"]


@pytest.mark.parametrize("kind", ["attsets", "multilayer"])
def test_shipped_weights_load_for_the_worlds_width(kind):
    path = default_weights(kind)
    assert path.is_file() and path.stat().st_size < 20_000_000
    config = json.loads(path.with_suffix(".json").read_text())
    width = world_width()
    assert config["width"] == width
    channels = width * (len(config["layers"]) if kind == "multilayer" else 1)
    torch.manual_seed(6)
    x = torch.randn(16, 8, 8, channels)
    out = vidpool.compress(x, kind, budget=102)
    assert out.tokens.shape == (vidpool.num_output_tokens(kind, (16, 8, 8), budget=102), width)
    assert torch.isfinite(out.tokens).all()
    with pytest.raises(InvalidArgumentError, match=r"train_synth_pooling\.py"):
        vidpool.compress(x[..., : channels - 1], kind, budget=102)


def test_encoder_gives_several_layers_along_channels():
    from vidpool.bench.clip import load_clip

    encoder, _ = load_clip(None, None)
    torch.manual_seed(7)
    frames = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    stacked = encoder.encode_frames(frames, layers=(-3, -2, -1)).patches
    c = encoder.width
    assert stacked.shape == (3, *encoder.grid, 3 * c)
    assert torch.allclose(stacked[..., c : 2 * c], encoder.encode_frames(frames).patches)
    with pytest.raises(InvalidArgumentError, match="out of range"):
        encoder.encode_frames(frames, layers=(-9,))


def test_a_video_lm_refuses_a_multi_layer_method_with_what_to_do_instead():
    from pipeline_support import checkpoint

    import vidpool

    model = vidpool.load_model(checkpoint("tiny-native"))
    with pytest.raises(vidpool.InvalidArgumentError, match="encode_frames"):
        model.num_visual_tokens(8, method="multilayer", budget=16)
