"""Planning Qwen2.5-VL / Qwen3-VL checkpoints: sizes from config files against the loaded models, the resize
rule against transformers', the predicted CPU peak against the measured one, and the CLI's budget."""

from __future__ import annotations

import json

import pytest
from pipeline_support import checkpoint, loaded, sample_video

from vidpool.integrations.transformers_qwen_spec import (
    qwen_folder_spec,
    qwen_vision_param_count,
    smart_resize,
)
from vidpool.pipeline import VideoChat
from vidpool.schedule import measure_peak, model_spec, plan

NAMES = {"qwen2_5_vl": "tiny-qwen2.5-vl", "qwen3_vl": "tiny-qwen3-vl"}


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    # 16:9, the aspect of the planner's reference frame, so the planned grid is the one encoded
    return sample_video(tmp_path_factory.mktemp("video"), num_frames=96, size=(320, 180))


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_spec_from_config_files_equals_the_loaded_model(kind):
    folder = checkpoint(NAMES[kind])
    model = loaded(NAMES[kind])
    from_files, real = qwen_folder_spec(folder, 4, "cpu"), model_spec(model)
    assert from_files.grid == real.grid == model.grid
    assert from_files.width == real.width == model.encode_width
    assert from_files.frames_per_step == real.frames_per_step == 2
    assert from_files.image_size == real.image_size
    tower = model.model.model.visual  # parameters, without the rotary table's few buffer entries
    assert from_files.vision_param_bytes == 4 * sum(p.numel() for p in tower.parameters())
    assert from_files.lm_param_bytes == pytest.approx(real.lm_param_bytes, rel=1e-3)
    assert (from_files.num_kv_heads, from_files.head_dim) == (real.num_kv_heads, real.head_dim) == (2, 8)
    assert from_files.activation_bytes_per_frame == real.activation_bytes_per_frame
    for frames in (2, 7, 16):
        assert from_files.num_visual_tokens(frames, "none", None, {}) == model.num_visual_tokens(frames)


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_vision_parameter_count_equals_transformers_tower(kind):
    from vidpool.models.builders_qwen import qwen_model

    wide = {"hidden_size": 48, "intermediate_size": 80, "depth": 3, "num_heads": 6, "out_hidden_size": 32}
    tower = qwen_model(kind, seed=0, vision=wide).model.visual
    config = tower.config.to_dict()
    assert qwen_vision_param_count(config) == sum(p.numel() for p in tower.parameters())


@pytest.mark.parametrize("hw", [(720, 1280), (272, 640), (1080, 1920), (96, 54), (30, 500)])
def test_resize_rule_is_transformers_smart_resize(hw):
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize as theirs

    for factor, low, high in ((28, 3136, 12544), (28, 128 * 28 * 28, 768 * 28 * 28), (32, 4096, 65536)):
        assert smart_resize(*hw, factor, low, high) == theirs(
            *hw, factor=factor, min_pixels=low, max_pixels=high
        )


@pytest.mark.parametrize("kind", sorted(NAMES))
@pytest.mark.parametrize(
    ("frames", "method", "budget"), [(16, None, None), (64, "none", None), (64, "divprune", 40)]
)
def test_predicted_peak_within_10_percent_of_the_measured_one(video, kind, frames, method, budget):
    model = loaded(NAMES[kind])
    extra = {} if budget is None else {"budget": budget}
    p = plan(video, model, "cpu", max_new_tokens=8, num_frames=frames, method=method, **extra)
    chat = VideoChat(video, model, plan=p)
    _, peak = measure_peak(lambda: chat.ask("What happens in the video?"))
    assert chat.last_trace.visual_tokens == p.num_tokens
    # transformers 5.25: 0.97-0.99 of the prediction (docs/benchmarks.md); 5.0's tower holds a little more
    assert peak + p.memory.weights == pytest.approx(p.memory.peak, rel=0.1)


@pytest.mark.parametrize("kind", sorted(NAMES))
def test_cli_plans_at_most_the_budget_with_progressive(video, kind, capsys):
    from vidpool.cli import main

    folder = str(checkpoint(NAMES[kind]))
    argv = ["plan", str(video), "--model", folder, "--method", "progressive", "--budget", "100"]
    assert main([*argv, "--frames", "64", "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["method"] == "progressive" and 0 < data["num_tokens"] <= 100


def test_seven_b_shaped_config_plans_gqa_kv_cache(tmp_path):
    """A Qwen2.5-VL-7B-shaped config.json alone (no weights) plans with its GQA head layout."""
    import importlib.util

    from pipeline_support import ROOT

    from vidpool.schedule.estimate import kv_cache_bytes

    spec_ = importlib.util.spec_from_file_location("bench_qwen", ROOT / "scripts" / "bench_qwen.py")
    script = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(script)
    (tmp_path / "config.json").write_text(json.dumps(script.QWEN2_5_VL_7B))
    spec = qwen_folder_spec(tmp_path, 2, "cuda")
    assert (spec.num_layers, spec.num_kv_heads, spec.head_dim) == (28, 4, 128)
    assert spec.context_length == 128000 and spec.width == 3584
    assert 7.0e9 < (spec.lm_param_bytes + spec.vision_param_bytes) / 2 < 8.9e9
    # 720p frames: 560x1008 pixels within 768 merged tokens, 20x36 tokens; 64 frames make 32 grids
    assert spec.grid == (20, 36) and spec.num_visual_tokens(64, "none", None, {}) == 32 * 720
    p = plan(None, str(tmp_path), "cuda", max_memory="80GB", num_frames=64, method="none")
    context = p.num_tokens + p.prompt_tokens + p.max_new_tokens
    assert p.memory.kv_cache == kv_cache_bytes(28, 4, 128, 2, context)
    # 512 frames of 720 tokens a grid overflow the LM's 128,000 positions unless compressed
    from vidpool.errors import ContextLengthError

    with pytest.raises(ContextLengthError, match="184320 visual"):
        plan(None, str(tmp_path), "cuda", max_memory="80GB", num_frames=512, method="none")
    p = plan(
        None, str(tmp_path), "cuda", max_memory="80GB", num_frames=512, method="progressive", budget=8192
    )
    assert p.num_tokens <= 8192
