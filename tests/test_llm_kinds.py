"""Model kinds are a registry, models are read through the typed VideoModel protocol, and a budget
replaces a checkpoint's default shape parameters in one rule."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_support import checkpoint, loaded

from vidpool.errors import CheckpointError, InvalidArgumentError
from vidpool.llm import detect_kind
from vidpool.llm.config import ModelConfig, resolve_compression
from vidpool.llm.kinds import PROVIDERS, ModelKind, get_kind, list_kinds, register_kind
from vidpool.llm.prompt import VIDEO_MARKER, build_messages
from vidpool.llm.protocol import VideoModel

ROOT = Path(__file__).resolve().parent.parent
KINDS = {
    "native": "tiny-native",
    "llava_onevision": "tiny-llava-onevision",
    "llava_next_video": "tiny-llava-next-video",
    "qwen2_5_vl": "tiny-qwen2.5-vl",
    "qwen3_vl": "tiny-qwen3-vl",
}


def test_kinds_are_registered_once_and_listed():
    assert list_kinds() == ["llava_next_video", "llava_onevision", "native", "qwen2_5_vl", "qwen3_vl"]
    for name in list_kinds():
        kind = get_kind(name)
        assert kind.name == name and callable(kind.load) and callable(kind.read_spec)
    with pytest.raises(ValueError, match="already registered"):
        register_kind(ModelKind("native", print, print))
    with pytest.raises(CheckpointError, match="unknown model kind 'nope'"):
        get_kind("nope")


def test_core_llm_imports_no_integration():
    code = (
        "import sys, vidpool.llm, vidpool.schedule; "
        "from vidpool.llm.kinds import list_kinds; list_kinds(); "
        "print(any(m.startswith('vidpool.integrations') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_module_level_import_of_integrations_in_core_llm():
    for path in (ROOT / "vidpool" / "llm").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = (
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                )
                assert not any(n.startswith("vidpool.integrations") for n in names), path


def test_kind_names_are_written_in_one_map():
    # besides the integrations that implement them, only the provider map names their kinds in code;
    # the test-checkpoint builders name them as transformers' model_type of the configs they write
    for path in (ROOT / "vidpool").rglob("*.py"):
        integration = path.name == "transformers_llava.py" or path.name.startswith("transformers_qwen")
        builder = path.parts[-2:] in (("models", "builders.py"), ("models", "builders_qwen.py"))
        if path.name == "kinds.py" or integration or builder:
            continue
        strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)}
        assert not strings & set(PROVIDERS), f"{path} names a kind of an integration"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_folders_load_through_their_kind(kind):
    folder = checkpoint(KINDS[kind])
    assert detect_kind(folder) == kind
    model = loaded(KINDS[kind])
    assert model.kind == kind
    assert isinstance(model, VideoModel)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_protocol_members_are_public_and_consistent(kind):
    model = loaded(KINDS[kind])
    assert model.language_model.get_input_embeddings().weight.device == model.device
    assert model.text_config.max_position_embeddings == model.lm_spec["context_length"] > 0
    assert model.weight_modules and all(hasattr(m, "parameters") for m in model.weight_modules)
    assert model.activation_bytes_per_frame((48, 64)) > 0
    text = model.render(build_messages("hello", timestamps=[0.0, 1.0]))
    assert "hello" in text and text.count(VIDEO_MARKER) == 1
    if kind == "qwen2_5_vl":  # time reaches it through M-RoPE ids only: no frame text grows with the frames
        assert model.prompt_tokens(8) == model.prompt_tokens(1)
    else:
        assert model.prompt_tokens(8) > model.prompt_tokens(1)


def _protocol_members() -> set[str]:
    """The members VideoModel names: its own and those of the planner's SizedModel it extends."""
    from vidpool.schedule.spec import SizedModel

    names: set[str] = set()
    for cls in (SizedModel, VideoModel):
        names |= {n for n in vars(cls) if not n.startswith("_")} | set(vars(cls).get("__annotations__", {}))
    return names


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_has_every_protocol_member(kind):
    model = loaded(KINDS[kind])
    members = _protocol_members()
    # what the pipeline, the benchmark and the training script call on a model
    assert members >= {
        "compress_visual",
        "uses_joint",
        "input_embeddings",
        "prompt_scores",
        "resolve_compression",
    }
    assert isinstance(model, VideoModel)
    assert not [name for name in sorted(members) if not hasattr(model, name)]
    method, _, budget = model.resolve_compression(None, 8)
    assert method == model.config.method and budget == 8
    assert model.uses_joint("prompt_guided") == (kind == "native")
    assert model.input_embeddings.weight.device == model.device


def test_schedule_reads_no_private_model_attributes():
    for path in (ROOT / "vidpool" / "schedule").glob("*.py"):
        text = path.read_text()
        for private in ("_render", "_generator", "_parts", "_embedding", "_preprocess"):
            assert f".{private}" not in text and f'"{private}"' not in text, f"{path} reaches into {private}"


def _pipeline_source() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "vidpool" / "pipeline").glob("*.py")))


def test_pipeline_types_its_model_with_the_protocol():
    text = _pipeline_source()
    assert "model: Any" not in text and "model: VideoModel" in text


# -- the rule a budget follows ----------------------------------------------------------------
def test_a_budget_replaces_default_shape_parameters_only():
    params = {"stride": 2, "mode": "bilinear"}
    assert resolve_compression("spatial", params, None, budget=16) == ("spatial", {"mode": "bilinear"}, 16)
    assert resolve_compression("spatial", params, None) == ("spatial", params, None)
    # a shape parameter of the call replaces the default's, and the default budget
    assert resolve_compression("spatial", params, 64, params={"size": (2, 2)}) == (
        "spatial",
        {"mode": "bilinear", "size": (2, 2)},
        None,
    )
    # another method starts from its own defaults
    assert resolve_compression("spatial", params, None, "progressive", 100) == ("progressive", {}, 100)


def test_resolution_is_a_fixed_point():
    for call in [
        {},
        {"budget": 16},
        {"params": {"size": (1, 1)}},
        {"method": "slowfast", "budget": 50},
        {"params": {"mode": "max"}},
    ]:
        once = resolve_compression("spatial", {"stride": 2, "mode": "avg"}, None, **call)
        method, params, budget = once
        assert (
            resolve_compression("spatial", {"stride": 2, "mode": "avg"}, None, method, budget, params) == once
        )


def test_budget_and_shape_in_one_call_conflict():
    with pytest.raises(InvalidArgumentError, match="budget=16 and stride=2 both size 'spatial'"):
        ModelConfig().resolve_compression(budget=16, params={"stride": 2})


def test_feature_cache_keys_come_from_the_protocol():
    """A native model's features are keyed by its CLIP encoder's identity, so two loads of one checkpoint
    share cached features; the pipeline reads that through the protocol, not through model internals."""
    from vidpool.llm import load_model

    folder = checkpoint("tiny-native")
    first, second = load_model(folder), load_model(folder)
    assert first.encoder_identity == second.encoder_identity == str(first.encoder.identity)
    llava = loaded("tiny-llava-next-video")
    assert llava.encoder_identity == llava.encoder_identity and str(id(llava)) in llava.encoder_identity
    text = _pipeline_source()
    assert ".encoder_identity" in text and '"encoder"' not in text
