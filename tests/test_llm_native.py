"""The native path on a tiny random model: CLIP (tiny-clip-32) + mlp2x_gelu + 2-layer Llama (hidden 32)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest
import torch
from pipeline_support import checkpoint

import vidpool
from vidpool.errors import CheckpointError, InvalidArgumentError
from vidpool.llm import VideoLM, load_model
from vidpool.llm.native import NativeVideoLM
from vidpool.llm.prompt import VIDEO_MARKER, tokenize_around_marker

QUESTION = "What happens in the video?"
STAMPS = [0.0, 0.5, 1.0, 1.5]


@pytest.fixture(scope="module")
def folder() -> Path:
    return checkpoint("tiny-native")


@pytest.fixture(scope="module")
def model(folder) -> NativeVideoLM:
    return load_model(folder)


@pytest.fixture(scope="module")
def features(model) -> torch.Tensor:
    frames = torch.randint(
        0, 256, (4, 40, 56, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    return model.encode_patches(frames)


def test_loads_as_a_native_video_lm(model):
    assert isinstance(model, VideoLM)
    assert model.kind == "native" and model.name == "tiny-native"
    assert model.device == torch.device("cpu")
    assert model.config.method == "spatial" and model.config.position == "before"
    assert model.lm_spec == {
        "num_layers": 2,
        "num_kv_heads": 2,
        "head_dim": 8,
        "hidden_size": 32,
        "vocab_size": 262,
        "intermediate_size": 64,
        "num_heads": 4,
        "context_length": model.language_model.config.max_position_embeddings,
        "lm_param_bytes": model.lm_spec["lm_param_bytes"],
        "dtype_bytes": 4,
    }
    assert model.lm_spec["lm_param_bytes"] > 0
    spec = model.vision_spec
    assert (spec["grid"], spec["width"], spec["image_size"]) == ((4, 4), 32, 32)
    assert spec["param_bytes"] > 0 and spec["activation_bytes_per_frame"] > 0


def test_features_tokens_and_text_embedding_shapes(model, features):
    assert features.shape == (4, 4, 4, 32)
    tokens = model.visual_tokens(features)
    assert tokens.shape == (model.num_visual_tokens(4), 32) == (16, 32)
    assert model.text_embedding("a dog").shape == (model.encoder.embed_dim,)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("none", {}),
        ("spatial", {"stride": 2}),
        ("adaptive", {"grid": (2, 2, 2)}),
        ("spatiotemporal", {}),
        ("slowfast", {}),
        ("temporal_merge", {}),
        ("spatial", {"budget": 6}),
        ("prompt_guided", {"budget": 10}),
        ("progressive", {"budget": 12}),
    ],
)
def test_placeholder_count_is_num_output_tokens(model, features, method, params):
    """The spliced prompt holds exactly ``num_output_tokens`` visual positions, at the marker."""
    expected = vidpool.num_output_tokens(method, (4, 4, 4), **params)
    tokens = model.visual_tokens(features, method=method, prompt=QUESTION, **params)
    assert tokens.shape == (expected, 32)
    assert model.num_visual_tokens(4, method=method, **params) == expected
    embeds = model.build_inputs_embeds(tokens, QUESTION, timestamps=STAMPS)
    text = model.prompt_text(QUESTION, timestamps=STAMPS)
    before, after = tokenize_around_marker(model.tokenizer, text)
    assert embeds.shape == (1, len(before) + expected + len(after), 32)
    assert torch.equal(embeds[0, len(before) : len(before) + expected], tokens)


def _projecting_first(model: NativeVideoLM) -> NativeVideoLM:
    """``model`` with ``spatial`` run after the projector (PLLaVA's order)."""
    config = dataclasses.replace(
        model.config, compress={"method": "spatial", "params": {}, "position": "after"}
    )
    return NativeVideoLM(config, model.encoder, model.projector, model.lm, model.tokenizer)


def test_position_after_projects_then_compresses(model, features):
    after = _projecting_first(model)
    with torch.inference_mode():
        expected = vidpool.compress(model.projector(features), "spatial").tokens
        before = model.projector(vidpool.compress(features, "spatial").tokens)
    assert torch.allclose(after.visual_tokens(features), expected, atol=1e-6)
    assert torch.allclose(model.visual_tokens(features), before, atol=1e-6)


def test_prompt_follows_the_chat_template_with_timestamps_and_history(model):
    text = model.prompt_text(QUESTION, timestamps=STAMPS, history=[("Hi?", "Hello.")])
    before, after = tokenize_around_marker(model.tokenizer, text)
    assert model.tokenizer.decode(before) == "<|im_start|>user\n"
    tail = model.tokenizer.decode(after)
    assert tail.startswith("\nThe video has 4 frames sampled at 0.0s, 0.5s, 1.0s, 1.5s.\nHi?<|im_end|>")
    assert "<|im_start|>assistant\nHello.<|im_end|>" in tail
    assert tail.endswith(f"<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    assert VIDEO_MARKER not in tail


def test_streaming_yields_the_same_text_as_not_streaming(model, features):
    tokens = model.visual_tokens(features)
    for kwargs in ({}, {"temperature": 0.9, "top_p": 0.9, "seed": 7}):
        whole = model.generate(tokens, QUESTION, timestamps=STAMPS, max_new_tokens=16, **kwargs)
        pieces = list(
            model.generate(tokens, QUESTION, timestamps=STAMPS, max_new_tokens=16, stream=True, **kwargs)
        )
        assert isinstance(whole, str) and whole
        assert "".join(pieces) == whole


def test_a_seed_makes_sampling_deterministic(model, features):
    tokens = model.visual_tokens(features)
    runs = [
        model.generate(tokens, QUESTION, max_new_tokens=16, temperature=1.0, seed=seed) for seed in (1, 1, 2)
    ]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_stop_strings_cut_the_answer_streaming_or_not(model, features):
    tokens = model.visual_tokens(features)
    full = model.generate(tokens, QUESTION, max_new_tokens=16)
    stop = full[5:7]
    expected = full[: full.find(stop)]
    assert model.generate(tokens, QUESTION, max_new_tokens=16, stop=stop) == expected
    assert "".join(model.generate(tokens, QUESTION, max_new_tokens=16, stop=[stop], stream=True)) == expected


def test_history_and_timestamps_change_the_prompt(model, features):
    tokens = model.visual_tokens(features)
    plain = model.build_inputs_embeds(tokens, QUESTION)
    richer = model.build_inputs_embeds(tokens, QUESTION, timestamps=STAMPS, history=[("Hi?", "Hello.")])
    assert richer.shape[1] > plain.shape[1]


def test_bad_arguments_say_what_to_do(model, features):
    tokens = model.visual_tokens(features)
    # Without a prompt, score-using methods run unguided: prompt_guided is then plain average pooling.
    unguided = model.visual_tokens(features, method="prompt_guided", budget=4)
    assert unguided.shape[0] == model.num_visual_tokens(features.shape[0], method="prompt_guided", budget=4)
    with pytest.raises(InvalidArgumentError, match="max_new_tokens"):
        model.generate(tokens, QUESTION, max_new_tokens=0)
    with pytest.raises(InvalidArgumentError, match=r"\[T, h, w, C\]"):
        model.visual_tokens(features[0])


@pytest.fixture(scope="module")
def where_folder(folder, tmp_path_factory) -> Path:
    """tiny-native with an ``mlp2x_gelu_where`` projector: its MLP, and a random position layer."""
    import json

    from safetensors.torch import load_file, save_file

    copy = tmp_path_factory.mktemp("where") / "ckpt"
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".built"))
    state = load_file(copy / "projector.safetensors")
    hidden = state["fc2.weight"].shape[0]
    layer = torch.nn.Linear(24, hidden)
    save_file(
        {**state, "where.weight": layer.weight.detach(), "where.bias": layer.bias.detach()},
        copy / "projector.safetensors",
    )
    config = json.loads((copy / "vidpool.json").read_text())
    (copy / "vidpool.json").write_text(json.dumps({**config, "projector": "mlp2x_gelu_where"}))
    return copy


@pytest.mark.parametrize(("method", "budget"), [("divprune", 6), ("spatial", 8), ("none", None)])
def test_a_position_projector_reads_where_each_kept_token_comes_from(where_folder, features, method, budget):
    from vidpool.models.builders import projector_kind

    assert projector_kind(where_folder / "projector.safetensors") == "mlp2x_gelu_where"
    model = load_model(where_folder)
    assert model.projector.reads_positions
    result = vidpool.compress(features, method, budget=budget)
    with torch.inference_mode():
        expected = model.projector(result.tokens, result.token_positions())
        blind = model.projector(result.tokens)
    tokens = model.visual_tokens(features, method=method, budget=budget)
    assert torch.allclose(tokens, expected, atol=1e-6)
    assert not torch.allclose(tokens, blind)


def test_a_position_projector_before_compression_reads_the_grid(where_folder, features):
    model = load_model(where_folder)
    after = _projecting_first(model)
    grid = vidpool.compression.grid_positions(*features.shape[:3])
    with torch.inference_mode():
        expected = vidpool.compress(model.projector(features, grid), "spatial").tokens
    assert torch.allclose(after.visual_tokens(features), expected, atol=1e-6)


def test_pickled_projector_needs_allow_pickle(folder, tmp_path):
    copy = tmp_path / "ckpt"
    shutil.copytree(folder, copy)
    from safetensors.torch import load_file

    torch.save(load_file(copy / "projector.safetensors"), copy / "projector.bin")
    (copy / "projector.safetensors").unlink()
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        load_model(copy)
    assert load_model(copy, allow_pickle=True).kind == "native"


def test_accelerate_device_map_and_eager_attention_give_the_same_answer(folder, model, features):
    placed = load_model(folder, device_map={"": "cpu"}, attn_implementation="eager", dtype="float32")
    assert placed.lm.config._attn_implementation == "eager"
    assert model.lm.config._attn_implementation == "sdpa"
    tokens = model.visual_tokens(features)
    assert placed.generate(tokens, QUESTION, max_new_tokens=8) == model.generate(
        tokens, QUESTION, max_new_tokens=8
    )
    with pytest.raises(InvalidArgumentError, match="device_map"):
        load_model(folder, max_memory={"cpu": "1GB"})
    with pytest.raises(InvalidArgumentError, match=r"unknown load option.*devise"):
        load_model(folder, devise="cpu")


def test_closing_a_stream_early_leaves_no_generation_thread(model, features):
    import threading

    tokens = model.visual_tokens(features)
    stream = model.generate(tokens, QUESTION, max_new_tokens=64, stream=True)
    first = next(stream)
    stream.close()
    assert first and model.generate(tokens, QUESTION, max_new_tokens=64).startswith(first)
    assert not any(t.name == "vidpool-generate" for t in threading.enumerate())


def test_configured_method_parameters_apply_unless_overridden(model, features):
    assert model.num_visual_tokens(4) == model.num_visual_tokens(4, method="spatial") == 16
    assert model.visual_tokens(features, method="spatial", stride=4).shape[0] == 4
    assert model.num_visual_tokens(4, method="spatial", stride=4) == 4
    budgeted = model.visual_tokens(features, budget=6)
    assert budgeted.shape[0] == model.num_visual_tokens(4, budget=6) <= 6


def _ppllava_scores(model, frames, question):
    enc = model.encoder
    joint = enc.encode_frames(frames, joint=True).joint
    return vidpool.prompt_scores(joint, enc.encode_text([question]), enc.logit_scale)


@pytest.mark.parametrize("method", ["prompt_guided", "progressive"])
def test_prompt_scores_are_exact_with_the_joint_embeddings(model, method):
    frames = torch.randint(
        0, 256, (4, 40, 56, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    expected = _ppllava_scores(model, frames, QUESTION)
    encoded = model.encode(frames, joint=True)
    assert model.uses_joint(method) and not model.uses_joint("spatial")
    assert torch.equal(encoded.patches, model.encode_patches(frames))
    assert encoded.joint.shape == (4, *model.grid, model.vision_spec["joint_dim"])
    used = model.prompt_scores(encoded.patches, QUESTION, joint=encoded.joint)
    torch.testing.assert_close(used, expected)
    # the chosen layer (-2) projected to the joint space is not what PPLLaVA scores
    assert model.encoder.layer != -1
    assert not torch.allclose(model.prompt_scores(encoded.patches, QUESTION), expected)
    guided = model.visual_tokens(
        encoded.patches, prompt=QUESTION, joint=encoded.joint, method=method, budget=8
    )
    torch.testing.assert_close(
        guided, model.visual_tokens(encoded.patches, scores=expected, method=method, budget=8)
    )
