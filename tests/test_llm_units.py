"""vidpool.llm pieces that need no model: config, projector, prompt, splice, stop strings, loading rules."""

from __future__ import annotations

import json

import pytest
import torch

from vidpool.errors import CheckpointError, InvalidArgumentError
from vidpool.llm import ModelConfig, build_projector, describe_frames, detect_kind, list_projectors
from vidpool.llm.compat import dtype_kwargs, feature_tensor, token_id
from vidpool.llm.config import resolve_path
from vidpool.llm.generate import truncate_at_stop
from vidpool.llm.loading import check_weight_files, resolve_attn_implementation, resolve_dtype
from vidpool.llm.projector import position_features, projector_param_count
from vidpool.llm.prompt import VIDEO_MARKER, build_messages, splice_embeddings


def test_config_round_trips_through_json(tmp_path):
    config = ModelConfig(
        encoder={"model": "tiny-clip-32", "layer": -2},
        projector="linear",
        lm={"path": "lm", "gguf_file": None},
        compress={"method": "adaptive", "params": {"grid": [2, 2, 2]}, "position": "after"},
        num_frames=16,
        budget=64,
    )
    config.save(tmp_path)
    loaded = ModelConfig.load(tmp_path)
    assert loaded == config
    assert (loaded.method, loaded.position, loaded.method_params) == (
        "adaptive",
        "after",
        {"grid": [2, 2, 2]},
    )


def test_config_rejects_bad_position_and_unknown_keys(tmp_path):
    with pytest.raises(InvalidArgumentError, match="before"):
        ModelConfig(compress={"method": "none", "position": "middle"})
    (tmp_path / "vidpool.json").write_text(json.dumps({"kind": "native", "surprise": 1}))
    with pytest.raises(CheckpointError, match="surprise"):
        ModelConfig.load(tmp_path)
    with pytest.raises(CheckpointError, match=r"vidpool\.json"):
        ModelConfig.load(tmp_path / "missing")


def test_resolve_path_handles_relative_hub_and_package_names(tmp_path):
    (tmp_path / "lm").mkdir()
    assert resolve_path(tmp_path, "lm") == str(tmp_path / "lm")
    assert resolve_path(tmp_path, "org/model") == "org/model"
    assert resolve_path(tmp_path, "pkg:torch").endswith("torch")
    with pytest.raises(CheckpointError, match="not installed"):
        resolve_path(tmp_path, "pkg:no_such_package_xyz")


@pytest.mark.parametrize("name", ["linear", "mlp2x_gelu", "mlp2x_gelu_where"])
def test_projectors_map_width_to_hidden(name):
    projector = build_projector(name, 8, 12)
    assert projector(torch.randn(3, 5, 8)).shape == (3, 5, 12)
    assert name in list_projectors()
    assert projector_param_count(name, 8, 12) == sum(p.numel() for p in projector.parameters())


def test_the_position_projector_starts_as_the_mlp_it_extends():
    torch.manual_seed(0)
    where_projector = build_projector("mlp2x_gelu_where", 8, 12)
    mlp = build_projector("mlp2x_gelu", 8, 12)
    missing, unexpected = where_projector.load_state_dict(mlp.state_dict(), strict=False)
    assert sorted(missing) == ["where.bias", "where.weight"] and not unexpected
    x, where = torch.randn(5, 8), torch.rand(5, 3)
    assert torch.equal(where_projector(x, where), mlp(x))
    torch.nn.init.normal_(where_projector.where.weight)
    assert torch.equal(where_projector(x), mlp(x))
    moved = where_projector(x, where)
    assert not torch.allclose(moved, mlp(x))
    # the same token at another place or time gets another embedding
    assert not torch.allclose(moved[0], where_projector(x[:1], where[1:2])[0])


def test_position_features_are_sines_and_cosines_of_each_axis():
    where = torch.tensor([[0.0, 0.5, 1.0]])
    features = position_features(where, frequencies=2)
    assert features.shape == (1, 12)
    angles = torch.pi * torch.tensor([[0.0, 0.0], [0.5, 1.0], [1.0, 2.0]])  # axis x k
    expected = torch.cat([angles.sin(), angles.cos()], dim=-1).flatten()
    assert torch.allclose(features[0], expected, atol=1e-6)


def test_unknown_projector_names_the_choices():
    with pytest.raises(InvalidArgumentError, match="mlp2x_gelu"):
        build_projector("qformer", 8, 8)


def test_frames_are_described_with_timestamps():
    assert describe_frames([0, 2.0, 4.25]) == "The video has 3 frames sampled at 0.0s, 2.0s, 4.2s."
    assert describe_frames(torch.tensor([1.5])) == "The video has 1 frame sampled at 1.5s."
    assert describe_frames(None, 4) == "The video has 4 frames."
    with pytest.raises(InvalidArgumentError, match="timestamps"):
        describe_frames([0.0, 1.0], 3)


def test_messages_put_the_video_in_the_first_user_turn_and_keep_history():
    messages = build_messages(
        "And then?",
        timestamps=[0.0, 1.0],
        history=[("What is it?", "A cat."), ("Color?", "Black.")],
        system_prompt="Be brief.",
    )
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"].startswith(VIDEO_MARKER + "\nThe video has 2 frames sampled at 0.0s, 1.0s.")
    assert messages[1]["content"].endswith("What is it?")
    assert messages[-1]["content"] == "And then?"
    assert sum(VIDEO_MARKER in m["content"] for m in messages) == 1


def test_splice_puts_visual_tokens_between_the_text_embeddings():
    embed = torch.nn.Embedding(10, 4)
    visual = torch.full((3, 4), 7.0)
    out = splice_embeddings(embed, [1, 2], visual, [3])
    assert out.shape == (1, 6, 4)
    assert torch.equal(out[0, 2:5], visual)
    assert torch.equal(out[0, :2], embed.weight[[1, 2]])
    assert torch.equal(out[0, 5], embed.weight[3])
    with pytest.raises(InvalidArgumentError, match="width"):
        splice_embeddings(embed, [1], torch.zeros(2, 5), [2])


def test_truncate_at_the_earliest_stop_string():
    assert truncate_at_stop("a cat. END then STOP", ["STOP", "END"]) == ("a cat. ", True)
    assert truncate_at_stop("no stops", ["X"]) == ("no stops", False)


def test_pickle_only_folders_are_refused_unless_allowed(tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        check_weight_files(tmp_path)
    check_weight_files(tmp_path, allow_pickle=True)
    (tmp_path / "model.safetensors").write_bytes(b"")
    check_weight_files(tmp_path)


def test_detect_kind_explains_what_it_loads(tmp_path):
    with pytest.raises(CheckpointError, match="make_tiny_checkpoint"):
        detect_kind(tmp_path / "missing")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(CheckpointError, match="llava_onevision"):
        detect_kind(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_next_video"}))
    assert detect_kind(tmp_path) == "llava_next_video"


def test_cpu_defaults_are_float32_and_sdpa():
    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16
    assert resolve_attn_implementation(None, "cpu") == "sdpa"
    assert resolve_attn_implementation("eager", "cpu") == "eager"
    with pytest.raises(InvalidArgumentError, match="dtype"):
        resolve_dtype("float8", "cpu")


def test_compat_spellings_for_transformers_5():
    assert dtype_kwargs(torch.float16) == {"dtype": torch.float16}
    assert dtype_kwargs(None) == {}

    class Out:
        pooler_output = torch.ones(2, 3)

    assert torch.equal(feature_tensor(Out()), torch.ones(2, 3))
    assert feature_tensor([torch.ones(1, 3), torch.zeros(2, 3)]).shape == (3, 3)

    class Config:
        video_token_id = None
        video_token_index = 5

    assert token_id(Config(), "video") == 5
