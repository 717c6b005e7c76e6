"""FastV inside the LM against references written here, on tiny random decoders and the tiny checkpoints.

The reference keeps every token and runs transformers' own forward with eager attention; a pre-hook on
each decoder layer replaces its mask: causal below layer K, causal with the dropped visual tokens'
key columns at -inf from layer K on. Dropped tokens then still flow through the upper layers but no
query reads them, which is what pruning them means. The ranking reference is the eager attention
weights transformers returns (``output_attentions``) at layer K, last row, averaged over heads.
"""

from __future__ import annotations

import argparse
import contextlib
import copy

import pytest
import torch
from pipeline_support import checkpoint, kv_bytes_per_token_layer

from vidpool.errors import InvalidArgumentError
from vidpool.llm import load_model
from vidpool.llm.fastv import FastVGenerator, decoder_stack, fastv_prefill
from vidpool.options import FastV, fastv_option

VISUAL = (3, 43)  # 40 visual tokens between 3 text tokens and 7 more
LENGTH = 50
QUESTION = "What happens in the video?"


def random_lm(arch: str, dtype: torch.dtype, attn: str) -> torch.nn.Module:
    """A 4-layer GQA decoder (LLaMA, or Qwen3 with its q/k norms), random weights fixed by seed."""
    from transformers import AutoModelForCausalLM, LlamaConfig, Qwen3Config

    shape = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=97,
        max_position_embeddings=256,
        initializer_range=0.2,  # peaked attention: the ranking has no near-ties
    )
    config = LlamaConfig(**shape) if arch == "llama" else Qwen3Config(head_dim=16, **shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attn)
    return model.to(dtype).eval()


@pytest.fixture(scope="module", params=["llama", "qwen3"])
def pair(request):
    """The same random weights with SDPA (what FastV runs) and with eager attention (the reference)."""
    sdpa = random_lm(request.param, torch.float32, "sdpa")
    eager = random_lm(request.param, torch.float32, "eager")
    eager.load_state_dict(sdpa.state_dict())
    return sdpa, eager


def prompt(dim: int, dtype: torch.dtype = torch.float32, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, LENGTH, dim, generator=torch.Generator().manual_seed(seed)).to(dtype)


def eager_copy(lm: torch.nn.Module) -> torch.nn.Module:
    ref = copy.deepcopy(lm)
    ref.set_attn_implementation("eager")
    return ref


def reference_row(eager: torch.nn.Module, embeds: torch.Tensor, layer: int) -> torch.Tensor:
    """Layer ``layer``'s eager softmax(QK^T/sqrt(d)) for the last query, mean over heads: ``[L]``."""
    with torch.inference_mode():
        out = eager(inputs_embeds=embeds, output_attentions=True)
    return out.attentions[layer][0, :, -1].float().mean(dim=0)


def masked_logits(
    eager: torch.nn.Module, embeds: torch.Tensor, dropped: torch.Tensor, layer: int
) -> torch.Tensor:
    """Logits ``[L, V]`` of every position with the ``dropped`` positions' keys masked from ``layer`` on."""
    length = embeds.shape[1]
    neg = torch.finfo(embeds.dtype).min
    causal = torch.full((length, length), neg, dtype=embeds.dtype, device=embeds.device).triu(1)
    pruned = causal.clone()
    pruned[:, dropped] = neg
    hooks = []
    for index, block in enumerate(eager.get_decoder().layers):
        mask = (pruned if index >= layer else causal)[None, None]

        def swap(_module, args, kwargs, mask=mask):
            return args, {**kwargs, "attention_mask": mask}

        hooks.append(block.register_forward_pre_hook(swap, with_kwargs=True))
    try:
        with torch.inference_mode():
            return eager(inputs_embeds=embeds).logits[0].float()
    finally:
        for hook in hooks:
            hook.remove()


def masked_greedy(
    eager: torch.nn.Module, embeds: torch.Tensor, dropped: torch.Tensor, layer: int, steps: int
) -> list[int]:
    """Greedy tokens of the masked reference, recomputed from scratch each step (no cache)."""
    tokens: list[int] = []
    embed = eager.get_input_embeddings()
    for _ in range(steps):
        logits = masked_logits(eager, embeds, dropped, layer)
        tokens.append(int(logits[-1].argmax()))
        with torch.inference_mode():
            embeds = torch.cat([embeds, embed(torch.tensor([[tokens[-1]]], device=embeds.device))], dim=1)
        dropped = torch.cat([dropped, torch.zeros(1, dtype=torch.bool, device=dropped.device)])
    return tokens


def dropped_mask(length: int, visual: tuple[int, int], visual_kept: torch.Tensor) -> torch.Tensor:
    dropped = torch.zeros(length, dtype=torch.bool, device=visual_kept.device)
    dropped[visual[0] : visual[1]] = True
    dropped[visual_kept + visual[0]] = False
    return dropped


def prefill(lm, embeds, fastv, visual=VISUAL):
    from transformers import DynamicCache

    cache = DynamicCache()
    with torch.inference_mode():
        result = fastv_prefill(
            decoder_stack(lm),
            embeds,
            torch.arange(embeds.shape[1], device=embeds.device)[None],
            visual,
            fastv,
            cache,
        )
    return result, cache


def no_eos(lm) -> None:
    """Random weights may pick the EOS id early; the comparisons want every step."""
    lm.generation_config.eos_token_id = None


# -- the ranking -------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [0, 1, 3])
def test_kept_tokens_are_the_top_of_the_eager_attention_row(pair, layer):
    sdpa, eager = pair
    embeds = prompt(64)
    row = reference_row(eager, embeds, layer)
    visual = row[VISUAL[0] : VISUAL[1]]
    ordered = visual.sort(descending=True).values
    assert ordered[11] - ordered[12] > 1e-5  # no near-tie at the cut: the top 12 are well defined
    result, _ = prefill(sdpa, embeds, FastV(layer=layer, budget=12))
    assert result.visual_kept.tolist() == sorted(visual.topk(12).indices.tolist())
    torch.testing.assert_close(result.row, row, rtol=1e-4, atol=1e-6)
    assert sdpa.config._attn_implementation == "sdpa"


def test_a_share_keeps_that_many_rounded_half_up():
    assert FastV(layer=1, keep=0.5).kept(41) == 21
    assert FastV(layer=1, keep=0.01).kept(10) == 1
    assert FastV().kept(40) == 20 and FastV(budget=64).kept(40) == 40


# -- logits and generation against the masked reference ---------------------------------------------------
@pytest.mark.parametrize(("layer", "budget"), [(0, 8), (1, 12), (2, 1), (3, 39)])
def test_logits_equal_the_masked_reference(pair, layer, budget):
    sdpa, eager = pair
    embeds = prompt(64, seed=layer)
    result, cache = prefill(sdpa, embeds, FastV(layer=layer, budget=budget))
    assert result.visual_kept.shape == (budget,)
    dropped = dropped_mask(LENGTH, VISUAL, result.visual_kept)
    expected = masked_logits(eager, embeds, dropped, layer)[-1]
    torch.testing.assert_close(result.logits[0], expected, rtol=1e-4, atol=1e-4)
    # the cache: every prompt position below layer K, only the kept ones from K on
    kept = LENGTH - 40 + budget
    lengths = [cache.layers[i].keys.shape[-2] for i in range(4)]
    assert lengths == [LENGTH] * layer + [kept] * (4 - layer)
    assert result.kept.tolist() == (~dropped).nonzero()[:, 0].tolist()


@pytest.mark.parametrize("layer", [0, 2])
def test_greedy_generation_equals_the_masked_reference(pair, layer):
    sdpa, eager = pair
    no_eos(sdpa)
    embeds = prompt(64, seed=5)
    generator = FastVGenerator(sdpa, FastV(layer=layer, budget=10), VISUAL)
    with torch.inference_mode():
        out = generator.generate(inputs_embeds=embeds, max_new_tokens=8)
    dropped = dropped_mask(LENGTH, VISUAL, generator.last_prefill.visual_kept)
    assert out[0].tolist() == masked_greedy(eager, embeds, dropped, layer, 8)


def test_every_visual_token_kept_is_the_plain_model(pair):
    sdpa, _ = pair
    no_eos(sdpa)
    embeds = prompt(64, seed=7)
    generator = FastVGenerator(sdpa, FastV(layer=1, budget=40), VISUAL)
    with torch.inference_mode():
        out = generator.generate(inputs_embeds=embeds, max_new_tokens=6)
        plain = sdpa.generate(
            inputs_embeds=embeds,
            attention_mask=torch.ones(1, LENGTH, dtype=torch.long),
            max_new_tokens=6,
            do_sample=False,
        )
        logits = sdpa(inputs_embeds=embeds).logits[0, -1]
    assert out.tolist() == plain.tolist()
    assert generator.last_prefill.row is None and generator.last_prefill.visual_kept.tolist() == list(
        range(40)
    )
    result, _ = prefill(sdpa, embeds, FastV(layer=1, keep=1.0))
    torch.testing.assert_close(result.logits[0], logits.float(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ["llama", "qwen3"])
def test_bfloat16_logits_and_greedy_equal_the_masked_reference(arch):
    sdpa = random_lm(arch, torch.bfloat16, "sdpa")
    eager = random_lm(arch, torch.bfloat16, "eager")
    eager.load_state_dict(sdpa.state_dict())
    no_eos(sdpa)
    embeds = prompt(64, torch.bfloat16, seed=3)
    result, _ = prefill(sdpa, embeds, FastV(layer=2, budget=16))
    dropped = dropped_mask(LENGTH, VISUAL, result.visual_kept)
    expected = masked_logits(eager, embeds, dropped, 2)[-1]
    # bfloat16 SDPA and eager attention round differently even without pruning (about 0.07 at logits
    # of 5 here): FastV may differ from its reference by no more than twice that
    with torch.inference_mode():
        plain = sdpa(inputs_embeds=embeds).logits[0, -1].float()
    kernels = (plain - masked_logits(eager, embeds, torch.zeros_like(dropped), 2)[-1]).abs().max()
    assert (result.logits[0] - expected).abs().max() <= 2 * kernels
    generator = FastVGenerator(sdpa, FastV(layer=2, budget=16), VISUAL)
    with torch.inference_mode():
        out = generator.generate(inputs_embeds=embeds, max_new_tokens=5)
    assert generator.last_prefill.visual_kept.tolist() == result.visual_kept.tolist()
    assert out[0].tolist() == masked_greedy(eager, embeds, dropped, 2, 5)


# -- the model kinds -------------------------------------------------------------------------------
KINDS = ["tiny-native", "tiny-llava-onevision", "tiny-llava-next-video"]


@pytest.fixture(scope="module")
def models():
    return {name: load_model(checkpoint(name)) for name in KINDS}


def video_tokens(model) -> torch.Tensor:
    frames = torch.randint(
        0, 256, (4, 36, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2)
    )
    return model.visual_tokens(model.encode_patches(frames))


@pytest.mark.parametrize("name", KINDS)
def test_model_generate_with_fastv_equals_the_masked_reference(models, name):
    model = models[name]
    lm = model.language_model
    eos = lm.generation_config.eos_token_id
    no_eos(lm)
    try:
        tokens = video_tokens(model)
        fastv = FastV(layer=1, budget=max(1, tokens.shape[0] // 4))
        embeds, visual = model.prompt_embeds(tokens, QUESTION)
        generator = model.fastv_model(fastv, visual, embeds)
        with torch.inference_mode():
            ids = generator.generate(inputs_embeds=embeds, max_new_tokens=6)[0].tolist()
        dropped = dropped_mask(embeds.shape[1], visual, generator.last_prefill.visual_kept)
        assert int(dropped.sum()) == tokens.shape[0] - fastv.budget
        assert ids == masked_greedy(eager_copy(lm), embeds, dropped, 1, 6)
        text = model.generate(tokens, QUESTION, fastv=fastv, max_new_tokens=6)
        assert text == model.tokenizer.decode(ids, skip_special_tokens=True)
        streamed = "".join(model.generate(tokens, QUESTION, fastv=fastv, max_new_tokens=6, stream=True))
        assert streamed == text
        sampled = [
            model.generate(tokens, QUESTION, fastv=fastv, max_new_tokens=6, temperature=1.0, seed=4)
            for _ in range(2)
        ]
        assert sampled[0] == sampled[1]
        assert lm.config.get_text_config()._attn_implementation == "sdpa"
    finally:
        lm.generation_config.eos_token_id = eos


def test_mrope_position_ids_are_taken_as_given(models):
    """Qwen2.5-VL's text model with its M-RoPE ids ``[3, 1, L]`` (the kind's own prompt): the pruned
    logits equal its eager forward at those ids with the dropped keys masked from layer K on."""
    from transformers import DynamicCache

    model = load_model(checkpoint("tiny-qwen2.5-vl"))
    frames = torch.randint(
        0, 256, (4, 56, 56, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    inputs = model.prompt_inputs(model.visual_tokens(model.encode_patches(frames)), QUESTION)
    where = inputs.visual_mask.nonzero()[:, 0]
    visual = (int(where[0]), int(where[-1]) + 1)
    ids = inputs.position_ids[:, None]
    assert ids.shape[0] == 3 and not torch.equal(ids[0], ids[1])  # real M-RoPE: the axes differ
    with torch.inference_mode():
        result = fastv_prefill(
            decoder_stack(model.model), inputs.embeds, ids, visual, FastV(layer=1, budget=3), DynamicCache()
        )
    eager = eager_copy(model.model)
    text = eager.get_decoder()
    length = inputs.embeds.shape[1]
    dropped = dropped_mask(length, visual, result.visual_kept)
    neg = torch.finfo(inputs.embeds.dtype).min
    causal = torch.full((length, length), neg).triu(1)
    pruned = causal.clone()
    pruned[:, dropped] = neg
    hooks = [
        block.register_forward_pre_hook(
            lambda _m, args, kwargs, mask=(pruned if i >= 1 else causal)[None, None]: (
                args,
                {**kwargs, "attention_mask": mask},
            ),
            with_kwargs=True,
        )
        for i, block in enumerate(text.layers)
    ]
    try:
        with torch.inference_mode():
            hidden = text(inputs_embeds=inputs.embeds, position_ids=ids).last_hidden_state
            expected = eager.lm_head(hidden)[0, -1].float()
    finally:
        for hook in hooks:
            hook.remove()
    torch.testing.assert_close(result.logits[0], expected, rtol=1e-4, atol=1e-4)


# -- options -------------------------------------------------------------------------------------
def test_options_are_checked_with_what_to_do():
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        FastV(layer=2, budget=0)
    with pytest.raises(InvalidArgumentError, match="either budget= or keep="):
        FastV(budget=4, keep=0.5)
    with pytest.raises(InvalidArgumentError, match=r"in \(0, 1\]"):
        FastV(keep=1.5)
    with pytest.raises(InvalidArgumentError, match=">= 0"):
        FastV(layer=-1)
    with pytest.raises(InvalidArgumentError, match="pass a layer below 2"):
        FastV(layer=2).check_layers(2)
    assert fastv_option("2:64") == FastV(2, budget=64)
    assert fastv_option("0:0.25") == FastV(0, keep=0.25)
    for bad in ("2", "a:3", "2:0"):
        with pytest.raises(argparse.ArgumentTypeError):
            fastv_option(bad)


def test_visual_positions_a_prompt_cannot_prune_are_refused(pair):
    sdpa, _ = pair
    embeds = prompt(64)
    ends_visual = torch.zeros(LENGTH, dtype=torch.bool)
    ends_visual[-5:] = True
    for visual, message in (
        (ends_visual, "followed by at least one text token"),
        (torch.zeros(LENGTH, dtype=torch.bool), "got 0 visual positions"),
        (torch.ones(LENGTH - 1, dtype=torch.bool), r"bool \[50\]"),
        ((40, 50), "followed by at least one text token"),
    ):
        with pytest.raises(InvalidArgumentError, match=message):
            prefill(sdpa, embeds, FastV(layer=1, budget=4), visual)


def test_a_layer_the_model_lacks_is_refused_before_generating(models):
    model = models["tiny-native"]
    with pytest.raises(InvalidArgumentError, match="the LM has 2 layers"):
        model.generate(video_tokens(model), QUESTION, fastv=FastV(layer=2, budget=4), max_new_tokens=2)


# -- the plan ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def video(tmp_path_factory):
    from pipeline_support import sample_video

    return sample_video(tmp_path_factory.mktemp("video"), num_frames=96, size=(320, 240))


def test_plan_caches_every_token_below_the_layer_and_the_kept_ones_above(models, video):
    from vidpool.schedule import plan

    model = models["tiny-native"]
    fastv = FastV(layer=1, budget=64)
    p = plan(video, model, "cpu", num_frames=64, method="none", max_new_tokens=8, fastv=fastv)
    plain = plan(video, model, "cpu", num_frames=64, method="none", max_new_tokens=8)
    per_token_layer = kv_bytes_per_token_layer(model.lm_spec)
    full = p.num_tokens + p.prompt_tokens + 8
    assert p.num_tokens == 1024 and p.fastv == fastv and p.fastv_kept == 64
    assert p.memory.kv_cache == per_token_layer * (1 * full + 1 * (64 + p.prompt_tokens + 8))
    assert plain.memory.kv_cache == per_token_layer * 2 * full
    assert p.positions == plain.positions  # kept tokens keep their positions: no context is saved
    assert "FastV: 64 of 1024 visual tokens from LM layer 1 on" in p.table()
    assert p.to_dict()["fastv"] == {"layer": 1, "budget": 64, "keep": None, "kept": 64}
    with pytest.raises(InvalidArgumentError, match="pass a layer below 2"):
        plan(video, model, "cpu", num_frames=8, fastv=FastV(layer=2, budget=4))


def test_vidpool_plan_shows_fastv_and_refuses_what_no_run_can_take(video, capsys):
    from vidpool.cli import main

    argv = ["plan", str(video), "--model", str(checkpoint("tiny-native")), "--device", "cpu"]
    argv += ["--memory", "4GiB", "--frames", "8", "--method", "none"]
    assert main([*argv, "--fastv", "1:16"]) == 0
    assert "in-LM pruning        FastV: 16 of 128 visual tokens from LM layer 1 on" in capsys.readouterr().out
    assert main([*argv, "--fastv", "2:16"]) == 1  # the checkpoint's config says it has 2 layers
    assert "FastV layer 2 does not exist: the LM has 2 layers" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main([*argv, "--fastv", "1:0"])
    assert usage.value.code == 2 and "FastV budget must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("layer", [0, 1])
def test_plan_predicts_the_measured_fastv_generation_peak(models, video, layer):
    """As tests/test_pipeline_memory.py checks the plain run: the generation phase alone (KV cache,
    prefill), measured by torch's CPU allocator events, within 15% of the plan."""
    from vidpool.pipeline import encode_video
    from vidpool.schedule import measure_peak, plan

    model = models["tiny-native"]
    p = plan(
        video, model, "cpu", num_frames=64, method="none", max_new_tokens=8, fastv=FastV(layer, budget=64)
    )
    encoded = encode_video(model, video, p)
    tokens = model.visual_tokens(encoded.features, method=p.method, budget=p.budget, **p.params)
    _, generation = measure_peak(
        lambda: model.generate(
            tokens, QUESTION, timestamps=encoded.timestamps, max_new_tokens=8, **p.generate_kwargs()
        )
    )
    predicted = p.memory.kv_cache + p.memory.lm_activations - tokens.numel() * tokens.element_size()
    assert generation == pytest.approx(predicted, rel=0.15)


@contextlib.contextmanager
def generate_calls(model):
    """The keyword arguments of every ``model.generate`` call made inside the block (it still generates)."""
    calls: list[dict] = []
    model.generate = lambda *args, **kwargs: (
        calls.append(kwargs) or type(model).generate(model, *args, **kwargs)
    )
    try:
        yield calls
    finally:
        del model.generate


def test_video_chat_passes_its_plans_fastv_to_generation(models, video):
    from vidpool.pipeline import VideoChat

    model = models["tiny-native"]
    fastv = FastV(layer=1, budget=8)
    chat = VideoChat(video, model, device="cpu", num_frames=4, method="none", max_new_tokens=6, fastv=fastv)
    assert chat.plan.fastv == fastv
    with generate_calls(model) as calls:
        answer = chat.ask(QUESTION)
    assert calls[0]["fastv"] == fastv
    tokens = chat.visual_tokens(QUESTION)
    assert answer == model.generate(
        tokens, QUESTION, timestamps=chat.timestamps, max_new_tokens=6, fastv=fastv
    )
    with pytest.raises(InvalidArgumentError, match="either plan= or"):
        VideoChat(video, model, plan=chat.plan, fastv=fastv)
    with pytest.raises(InvalidArgumentError, match="fastv must be"):
        VideoChat(video, model, device="cpu", fastv=(2, 8))


def test_the_captioner_plans_fastv_and_generates_with_it(models, video):
    from vidpool.pipeline import Captioner

    model = models["tiny-native"]
    fastv = FastV(layer=1, keep=0.25)
    captioner = Captioner(model, device="cpu", num_frames=4, method="none", max_new_tokens=4, fastv=fastv)
    with generate_calls(model) as calls:
        text = captioner.caption(video)
    assert isinstance(text, str)
    assert captioner.last_plan.fastv == fastv and captioner.last_plan.fastv_kept == 16  # a quarter of 4x16
    assert calls[0]["fastv"] == fastv


def test_a_kind_with_its_own_generate_refuses_fastv_before_encoding(models, video):
    from vidpool.llm.generate import generate_text
    from vidpool.pipeline import VideoChat

    class OwnGenerate(type(models["tiny-native"])):
        def generate(self, visual_tokens, prompt, **options):
            return generate_text(
                self.language_model,
                self.tokenizer,
                self.build_inputs_embeds(visual_tokens, prompt),
                **options,
            )

    model = copy.copy(models["tiny-native"])
    model.__class__ = OwnGenerate
    assert models["tiny-native"].runs_fastv and not model.runs_fastv
    with pytest.raises(InvalidArgumentError, match="do not run FastV"):
        VideoChat(video, model, device="cpu", num_frames=4, fastv=FastV(layer=1, budget=4))
    tokens = video_tokens(models["tiny-native"])
    with pytest.raises(InvalidArgumentError, match="does not run FastV"):
        model.generate(tokens, QUESTION, fastv=FastV(layer=1, budget=4), max_new_tokens=2)


# -- CUDA ----------------------------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_on_cuda_ranking_logits_and_greedy_equal_the_references(dtype):
    sdpa = random_lm("llama", dtype, "sdpa").cuda()
    eager = random_lm("llama", dtype, "eager").cuda()
    eager.load_state_dict(sdpa.state_dict())
    no_eos(sdpa)
    embeds = prompt(64, dtype, seed=3).cuda()
    fastv = FastV(layer=2, budget=16)
    result, cache = prefill(sdpa, embeds, fastv)
    assert cache.layers[3].keys.shape[-2] == LENGTH - 40 + 16 and cache.layers[1].keys.shape[-2] == LENGTH
    if dtype == torch.float32:
        row = reference_row(eager, embeds, 2)[VISUAL[0] : VISUAL[1]]
        assert result.visual_kept.tolist() == sorted(row.topk(16).indices.tolist())
    dropped = dropped_mask(LENGTH, VISUAL, result.visual_kept)
    expected = masked_logits(eager, embeds, dropped, 2)[-1]
    with torch.inference_mode():
        plain = sdpa(inputs_embeds=embeds).logits[0, -1].float()
    kernels = (plain - masked_logits(eager, embeds, torch.zeros_like(dropped), 2)[-1]).abs().max()
    assert (result.logits[0] - expected).abs().max() <= max(2 * float(kernels), 1e-4)
    generator = FastVGenerator(sdpa, fastv, VISUAL)
    with torch.inference_mode():
        out = generator.generate(inputs_embeds=embeds, max_new_tokens=5)
    assert out[0].tolist() == masked_greedy(eager, embeds, dropped, 2, 5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda_a_checkpoint_generates_with_fastv_as_it_streams():
    model = load_model(checkpoint("tiny-llava-onevision"), device="cuda")
    tokens = video_tokens(model)
    fastv = FastV(layer=1, budget=8)
    text = model.generate(tokens, QUESTION, fastv=fastv, max_new_tokens=8, temperature=0.7, seed=0)
    assert text == "".join(
        model.generate(tokens, QUESTION, fastv=fastv, max_new_tokens=8, temperature=0.7, seed=0, stream=True)
    )
