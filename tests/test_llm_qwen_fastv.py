"""FastV on the Qwen2.5-VL / Qwen3-VL kinds (tiny checkpoints) against references written here.

The reference keeps every token and runs transformers' own text model with eager attention at the kind's
M-RoPE ids (``PromptInputs.ids_at``) and, for Qwen3-VL, with its DeepStack rows
(``visual_pos_masks``/``deepstack_visual_embeds``, added by transformers itself); a pre-hook on each decoder
layer replaces its mask: causal below layer K, causal with the dropped video tokens' key columns at -inf
from layer K on. The visual tokens it drops are the ones the eager attention weights at layer K rank
lowest (last row, averaged over heads). Qwen3-VL's video tokens are split by per-frame timestamps, so they
are a set of positions, not one run.
"""

from __future__ import annotations

import copy

import pytest
import torch
from pipeline_support import checkpoint, kv_bytes_per_token_layer

from vidpool.llm import load_model
from vidpool.llm.fastv import decoder_stack, fastv_prefill
from vidpool.options import FastV

KINDS = {"qwen2_5_vl": "tiny-qwen2.5-vl", "qwen3_vl": "tiny-qwen3-vl"}
QUESTION = "What happens in the video?"
NUM_FRAMES = 6
STAMPS = [0.5 * i for i in range(NUM_FRAMES)]


@pytest.fixture(scope="module")
def models():
    loaded = {kind: load_model(checkpoint(name)) for kind, name in KINDS.items()}
    for model in loaded.values():  # random weights may pick the EOS id early; the comparisons want every step
        model.model.generation_config.eos_token_id = None
    # the tiny Qwen3-VL's mergers give rows of norm ~0.15 beside text embeddings of ~2: scaled up to the
    # text's size, video tokens and DeepStack rows change which tokens FastV keeps and what it answers
    visual = loaded["qwen3_vl"].model.model.visual
    with torch.no_grad():
        for merger in [visual.merger, *visual.deepstack_merger_list]:
            merger.linear_fc2.weight.mul_(15.0)
            merger.linear_fc2.bias.mul_(15.0)
    return loaded


def video_tokens(model) -> torch.Tensor:
    """48 video tokens (3 temporal patches of 4 x 4) of random frames."""
    frames = torch.randint(
        0, 256, (NUM_FRAMES, 112, 112, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3)
    )
    return model.visual_tokens(model.encode_patches(frames))


class Reference:
    """The kind's eager text model over every prompt token, dropped tokens masked from layer K on."""

    def __init__(self, model, inputs):
        self.eager = copy.deepcopy(model.model)
        self.eager.set_attn_implementation("eager")
        self.inputs = inputs
        self.visual = inputs.visual_mask

    def _forward(self, embeds, masks=None, **extra):
        text = self.eager.model.language_model
        length = embeds.shape[1]
        visual = torch.zeros(length, dtype=torch.bool)
        visual[: self.visual.numel()] = self.visual
        kwargs = {"inputs_embeds": embeds, "position_ids": self.inputs.ids_at(0, length), **extra}
        if self.inputs.deepstack:
            kwargs["visual_pos_masks"] = visual[None]
            kwargs["deepstack_visual_embeds"] = self.inputs.deepstack
        hooks = []
        for index, block in enumerate(text.layers if masks else ()):

            def swap(_module, args, kw, mask=masks[index]):
                return args, {**kw, "attention_mask": mask[None, None, :length, :length]}

            hooks.append(block.register_forward_pre_hook(swap, with_kwargs=True))
        try:
            with torch.inference_mode():
                return text(**kwargs)
        finally:
            for hook in hooks:
                hook.remove()

    def kept(self, layer: int, budget: int) -> torch.Tensor:
        """Indices among the video tokens of the ``budget`` the eager attention at ``layer`` ranks highest
        (ascending); asserts the ranking has no near-tie at the cut."""
        out = self._forward(self.inputs.embeds, output_attentions=True)
        row = out.attentions[layer][0, :, -1].float().mean(dim=0)[self.visual]
        ordered = row.sort(descending=True).values
        assert ordered[budget - 1] - ordered[budget] > 1e-3 * ordered[budget - 1]  # float32 is far finer
        return row.topk(budget).indices.sort().values

    def logits(self, embeds, layer: int, kept: torch.Tensor) -> torch.Tensor:
        """Logits ``[V]`` of the last position with the video tokens not in ``kept`` masked from ``layer``."""
        length = embeds.shape[1]
        neg = torch.finfo(embeds.dtype).min
        causal = torch.full((length, length), neg, dtype=embeds.dtype).triu(1)
        dropped = torch.zeros(length, dtype=torch.bool)
        where = self.visual.nonzero()[:, 0]
        dropped[where] = True
        dropped[where[kept]] = False
        pruned = causal.clone()
        pruned[:, dropped] = neg
        masks = [pruned if i >= layer else causal for i in range(len(self.eager.model.language_model.layers))]
        hidden = self._forward(embeds, masks).last_hidden_state
        with torch.inference_mode():
            return self.eager.lm_head(hidden)[0, -1].float()

    def greedy(self, layer: int, kept: torch.Tensor, steps: int) -> list[int]:
        """Greedy tokens, recomputed from scratch each step (no cache); new tokens continue the M-RoPE ids."""
        embeds, tokens = self.inputs.embeds, []
        embed = self.eager.get_input_embeddings()
        for _ in range(steps):
            tokens.append(int(self.logits(embeds, layer, kept).argmax()))
            with torch.inference_mode():
                embeds = torch.cat([embeds, embed(torch.tensor([[tokens[-1]]]))], dim=1)
        return tokens


def prefill(model, inputs, fastv):
    """``fastv_prefill`` over the kind's decoder with its M-RoPE ids and DeepStack rows: ``(result, cache)``."""
    from transformers import DynamicCache

    cache = DynamicCache()
    with torch.inference_mode():
        result = fastv_prefill(
            decoder_stack(model.model),
            inputs.embeds,
            inputs.position_ids[:, None],
            inputs.visual_mask,
            fastv,
            cache,
            inputs.deepstack,
        )
    return result, cache


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize(("layer", "budget"), [(0, 12), (1, 5)])
def test_ranking_logits_and_greedy_equal_the_masked_reference(models, kind, layer, budget):

    model = models[kind]
    tokens = video_tokens(model)
    inputs = model.prompt_inputs(tokens, QUESTION, timestamps=STAMPS)
    where = inputs.visual_mask.nonzero()[:, 0]
    assert where.numel() == tokens.shape[0] == 48
    runs = int((where.diff() > 1).sum()) + 1
    assert runs == (3 if kind == "qwen3_vl" else 1)  # Qwen3-VL: one run per temporal patch
    assert len(inputs.deepstack) == (2 if kind == "qwen3_vl" else 0)  # levels after layers 0 and 1
    reference = Reference(model, inputs)
    expected = reference.kept(layer, budget)
    fastv = FastV(layer=layer, budget=budget)
    result, cache = prefill(model, inputs, fastv)
    assert result.visual_kept.tolist() == expected.tolist()
    torch.testing.assert_close(
        result.logits[0], reference.logits(inputs.embeds, layer, expected), rtol=1e-4, atol=1e-4
    )
    length, pruned = inputs.embeds.shape[1], inputs.embeds.shape[1] - 48 + budget
    assert [cache.layers[i].keys.shape[-2] for i in range(2)] == [length] * layer + [pruned] * (2 - layer)

    ids = reference.greedy(layer, expected, 6)
    generator = model.fastv_model(
        fastv,
        inputs.visual_mask,
        inputs.embeds,
        position_ids=inputs.position_ids[:, None],
        deepstack=inputs.deepstack,
    )
    with torch.inference_mode():
        assert generator.generate(inputs_embeds=inputs.embeds, max_new_tokens=6)[0].tolist() == ids
    text = model.generate(tokens, QUESTION, timestamps=STAMPS, fastv=fastv, max_new_tokens=6)
    assert text == model.tokenizer.decode(ids, skip_special_tokens=True)
    streamed = model.generate(tokens, QUESTION, timestamps=STAMPS, fastv=fastv, max_new_tokens=6, stream=True)
    assert "".join(streamed) == text


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_video_token_kept_is_the_kinds_plain_generate(models, kind):

    model = models[kind]
    tokens = video_tokens(model)
    inputs = model.prompt_inputs(tokens, QUESTION, timestamps=STAMPS)
    plain = model.generate(tokens, QUESTION, timestamps=STAMPS, max_new_tokens=8)
    for fastv in (FastV(layer=0, keep=1.0), FastV(layer=1, budget=48)):
        assert model.generate(tokens, QUESTION, timestamps=STAMPS, fastv=fastv, max_new_tokens=8) == plain
    result, _ = prefill(model, inputs, FastV(layer=1, budget=48))
    assert result.row is None and result.visual_kept.tolist() == list(range(48))
    torch.testing.assert_close(result.logits[0], model.logits(inputs)[0, -1].float(), rtol=1e-5, atol=1e-5)
    sampled = [
        model.generate(
            tokens,
            QUESTION,
            timestamps=STAMPS,
            fastv=FastV(1, budget=8),
            max_new_tokens=6,
            temperature=1.0,
            seed=4,
        )
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


# -- the pipeline and the plan -------------------------------------------------------------------
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from pipeline_support import sample_video

    return sample_video(tmp_path_factory.mktemp("video"), num_frames=96, size=(320, 240))


@pytest.mark.parametrize("kind", list(KINDS))
def test_video_chat_runs_fastv_on_the_qwen_kinds(models, video, kind):
    from vidpool.pipeline import VideoChat

    model = models[kind]
    assert model.runs_fastv
    fastv = FastV(layer=1, budget=8)
    chat = VideoChat(video, model, device="cpu", num_frames=4, method="none", max_new_tokens=4, fastv=fastv)
    assert chat.plan.fastv == fastv and chat.plan.fastv_kept == 8
    answer = chat.ask(QUESTION)
    tokens = chat.visual_tokens(QUESTION)
    assert answer == model.generate(
        tokens, QUESTION, timestamps=chat.timestamps, max_new_tokens=4, fastv=fastv
    )


@pytest.mark.parametrize("kind", list(KINDS))
def test_plan_counts_fastv_for_the_qwen_kinds(models, video, kind, capsys):
    """The folder's spec (``vidpool plan`` reads only config files) and the loaded model's: the KV cache
    holds every token below layer K and the kept ones from K on."""
    from vidpool.cli import main
    from vidpool.schedule import plan

    model = models[kind]
    fastv = FastV(layer=1, budget=16)
    p = plan(video, model, "cpu", num_frames=8, method="none", max_new_tokens=8, fastv=fastv)
    plain = plan(video, model, "cpu", num_frames=8, method="none", max_new_tokens=8)
    per_token_layer = kv_bytes_per_token_layer(model.lm_spec)
    full = p.num_tokens + p.prompt_tokens + 8
    assert p.num_tokens > 16 and p.fastv_kept == 16
    assert p.memory.kv_cache == per_token_layer * (full + (16 + p.prompt_tokens + 8))
    assert plain.memory.kv_cache == per_token_layer * 2 * full

    argv = ["plan", str(video), "--model", str(checkpoint(KINDS[kind])), "--device", "cpu"]
    argv += ["--memory", "4GiB", "--frames", "8", "--method", "none"]
    assert main([*argv, "--fastv", "1:16"]) == 0
    out = capsys.readouterr().out
    assert f"FastV: 16 of {p.num_tokens} visual tokens from LM layer 1 on" in out
    assert main([*argv, "--fastv", "2:64"]) == 1  # the tiny checkpoints have 2 LM layers
    assert "FastV layer 2 does not exist: the LM has 2 layers" in capsys.readouterr().err
