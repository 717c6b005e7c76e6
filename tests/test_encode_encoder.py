"""CLIPEncoder on tiny random open_clip models: shapes, layers, joint space, batching, weights, text."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from encode_support import one_thread  # noqa: F401  (autouse fixture)

from vidpool.encode import CLIPEncoder, EncodedFrames, encoder_spec, list_configs, load_config
from vidpool.encode.batching import activation_bytes_per_frame, batch_size_for, iter_batches
from vidpool.encode.preprocess import preprocess_frames
from vidpool.errors import CheckpointError, EncoderError, InvalidArgumentError, OutOfMemoryError

pytest.importorskip("open_clip")
safetensors_torch = pytest.importorskip("safetensors.torch")


@pytest.fixture(scope="module")
def enc() -> CLIPEncoder:
    torch.manual_seed(0)
    return CLIPEncoder("tiny-clip-32")


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (6, 36, 52, 3), generator=gen, dtype=torch.uint8)


def _hidden_states(enc: CLIPEncoder, frames: torch.Tensor) -> list[torch.Tensor]:
    """HF-style hidden states computed block by block: [embedding, block 0 out, block 1 out, ...]."""
    visual = enc.model.visual
    with torch.no_grad():
        x = visual._embeds(preprocess_frames(frames, enc.preprocess_cfg))
        states = [x]
        for block in visual.transformer.resblocks:
            x = block(x)
            states.append(x)
    return states


def test_default_model_geometry_from_config_alone() -> None:
    spec = encoder_spec(load_config("ViT-L-14-336"))
    assert spec.grid == (24, 24)
    assert spec.width == 1024
    assert spec.embed_dim == 768
    assert spec.layers == 24
    assert spec.num_tokens == 577
    assert spec.preprocess()["interpolation"] == "bicubic"


def test_shipped_tiny_configs_are_tiny() -> None:
    assert {"tiny-clip-32", "tiny-clip-48"} <= set(list_configs())
    for name in list_configs():
        spec = encoder_spec(load_config(name))
        assert spec.width <= 64 and 1 <= spec.layers <= 2 and spec.image_size[0] <= 48


def test_metadata(enc: CLIPEncoder) -> None:
    assert enc.grid == (4, 4)
    assert (enc.width, enc.embed_dim, enc.image_size) == (32, 16, 32)
    assert enc.device == torch.device("cpu") and enc.dtype == torch.float32
    assert enc.logit_scale == pytest.approx(1 / 0.07, rel=1e-5)
    n_params = sum(p.numel() for p in enc.model.parameters())
    assert enc.param_bytes >= 4 * n_params


def test_encode_shapes(enc: CLIPEncoder, frames: torch.Tensor) -> None:
    out = enc.encode_frames(frames, joint=True, cls=True)
    assert isinstance(out, EncodedFrames) and len(out) == 6
    assert out.patches.shape == (6, 4, 4, 32)
    assert out.joint.shape == (6, 4, 4, 16)
    assert out.cls.shape == (6, 32)
    assert out.patches.dtype == torch.float32 and torch.isfinite(out.patches).all()
    plain = enc.encode_frames(frames)
    assert plain.joint is None and plain.cls is None
    assert torch.allclose(plain.patches, out.patches, atol=1e-5)


def test_empty_batch(enc: CLIPEncoder) -> None:
    out = enc.encode_frames(torch.zeros(0, 20, 20, 3, dtype=torch.uint8), joint=True)
    assert out.patches.shape == (0, 4, 4, 32) and out.joint.shape == (0, 4, 4, 16)


@pytest.mark.parametrize(("layer", "state"), [(-2, 1), (-1, 2), (1, 1), (2, 2)])
def test_layer_indexing_matches_hf_hidden_states(frames: torch.Tensor, layer: int, state: int) -> None:
    torch.manual_seed(0)
    enc = CLIPEncoder("tiny-clip-32", layer=layer)
    states = _hidden_states(enc, frames)
    out = enc.encode_frames(frames, cls=True)
    expected = states[state]
    assert torch.allclose(out.patches.reshape(6, 16, 32), expected[:, 1:], atol=1e-5)
    assert torch.allclose(out.cls, expected[:, 0], atol=1e-5)


def test_default_layer_is_the_input_of_the_last_block(enc: CLIPEncoder, frames: torch.Tensor) -> None:
    states = _hidden_states(enc, frames)
    patches = enc.encode_frames(frames).patches.reshape(6, 16, 32)
    assert torch.allclose(patches, states[-2][:, 1:], atol=1e-5)
    assert not torch.allclose(patches, states[-1][:, 1:], atol=1e-3)


@pytest.mark.parametrize("layer", [0, -3, 3])
def test_bad_layer(layer: int) -> None:
    with pytest.raises(InvalidArgumentError):
        CLIPEncoder("tiny-clip-32", layer=layer)


def test_joint_is_last_block_through_ln_post_and_proj(enc: CLIPEncoder, frames: torch.Tensor) -> None:
    visual = enc.model.visual
    last = _hidden_states(enc, frames)[-1]
    with torch.no_grad():
        expected = visual.ln_post(last[:, 1:]) @ visual.proj
        image_embedding = enc.model.encode_image(preprocess_frames(frames, enc.preprocess_cfg))
        cls_projected = visual.ln_post(last[:, 0]) @ visual.proj
    out = enc.encode_frames(frames, joint=True)
    assert torch.allclose(out.joint.reshape(6, 16, 16), expected, atol=1e-5)
    # The same projection on the class token is CLIP's own image embedding.
    assert torch.allclose(cls_projected, image_embedding, atol=1e-5)


def test_batches_come_from_the_memory_budget(frames: torch.Tensor) -> None:
    torch.manual_seed(0)
    big = CLIPEncoder("tiny-clip-32", memory_budget=1 << 34)
    whole = big.encode_frames(frames, joint=True, cls=True)
    assert big.last_batch_size == 6
    per_frame = big.activation_bytes_per_frame(tuple(frames.shape[1:3]), joint=True)
    torch.manual_seed(0)
    small = CLIPEncoder("tiny-clip-32", memory_budget=2 * per_frame + 1)
    parts = small.encode_frames(frames, joint=True, cls=True)
    assert small.last_batch_size == 2
    for a, b in zip(whole.to_dict().values(), parts.to_dict().values()):
        assert torch.allclose(a, b, atol=1e-5)


def test_batch_size_scales_with_memory(enc: CLIPEncoder) -> None:
    per_frame = enc.activation_bytes_per_frame((480, 640))
    assert per_frame > 0
    assert enc.batch_size_for(10 * per_frame, (480, 640)) == 10
    assert enc.batch_size_for(1, (480, 640)) == 1
    assert enc.batch_size_for(1 << 20) <= enc.batch_size_for(1 << 30)
    with pytest.raises(InvalidArgumentError):
        enc.batch_size_for(0)


def test_activation_estimate_grows_with_model_and_frame_size() -> None:
    vitl = encoder_spec(load_config("ViT-L-14-336"))
    tiny = encoder_spec(load_config("tiny-clip-32"))
    assert activation_bytes_per_frame(vitl, torch.float16) > activation_bytes_per_frame(tiny, torch.float16)
    assert activation_bytes_per_frame(vitl, torch.float32) > activation_bytes_per_frame(vitl, torch.float16)
    small = activation_bytes_per_frame(vitl, torch.float16, frame_hw=(360, 640))
    assert activation_bytes_per_frame(vitl, torch.float16, frame_hw=(2160, 3840)) > small
    assert batch_size_for(16 << 30, activation_bytes_per_frame(vitl, torch.float16)) >= 8


def test_out_of_memory_halves_the_batch() -> None:
    calls: list[int] = []

    def run(start: int, stop: int) -> torch.Tensor:
        calls.append(stop - start)
        if stop - start > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return torch.arange(start, stop)

    results = list(iter_batches(run, 10, 16))
    assert calls[:3] == [10, 5, 2]
    assert torch.equal(torch.cat([r for _, _, r in results]), torch.arange(10))
    assert all(stop - start <= 2 for start, stop, _ in results)


def test_out_of_memory_on_one_item_raises_vidpool_error() -> None:
    def run(start: int, stop: int) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(OutOfMemoryError, match="single frame"):
        list(iter_batches(run, 3, 4))


def test_other_errors_are_not_swallowed() -> None:
    def run(start: int, stop: int) -> torch.Tensor:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        list(iter_batches(run, 3, 4))


def test_text_embeddings(enc: CLIPEncoder) -> None:
    text = enc.encode_text(["a dog", "a red car driving fast", "a dog"])
    assert text.shape == (3, 16) and text.dtype == torch.float32
    assert torch.allclose(text[0], text[2])
    assert not torch.allclose(text[0], text[1])
    assert torch.allclose(enc.encode_text(["a dog"])[0], text[0], atol=1e-5)
    long_prompt = enc.encode_text([" ".join(["word"] * 200)])
    assert long_prompt.shape == (1, 16)
    with pytest.raises(InvalidArgumentError):
        enc.encode_text([])


def test_safetensors_weights_round_trip(enc: CLIPEncoder, frames: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "tiny.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, str(path))
    torch.manual_seed(123)
    loaded = CLIPEncoder("tiny-clip-32", weights=path)
    assert torch.allclose(loaded.encode_frames(frames).patches, enc.encode_frames(frames).patches, atol=1e-6)
    assert torch.allclose(loaded.encode_text(["a dog"]), enc.encode_text(["a dog"]), atol=1e-6)
    assert loaded.identity != enc.identity
    assert CLIPEncoder("tiny-clip-32", weights=path).identity == loaded.identity


def test_pickle_weights_need_allow_pickle(enc: CLIPEncoder, frames: torch.Tensor, tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.save(enc.model.state_dict(), path)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        CLIPEncoder("tiny-clip-32", weights=path)
    loaded = CLIPEncoder("tiny-clip-32", weights=path, allow_pickle=True)
    assert torch.allclose(loaded.encode_frames(frames).patches, enc.encode_frames(frames).patches, atol=1e-6)


def test_mismatched_or_missing_weights(enc: CLIPEncoder, tmp_path: Path) -> None:
    path = tmp_path / "tiny32.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in enc.model.state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match="matches the model config"):
        CLIPEncoder("tiny-clip-48", weights=path)
    with pytest.raises(CheckpointError, match="not found"):
        CLIPEncoder("tiny-clip-32", weights=tmp_path / "missing.safetensors")


def test_identity_is_stable_and_tracks_layer_dtype_and_weights() -> None:
    torch.manual_seed(0)
    a = CLIPEncoder("tiny-clip-32")
    torch.manual_seed(0)
    b = CLIPEncoder("tiny-clip-32")
    torch.manual_seed(1)
    c = CLIPEncoder("tiny-clip-32")
    torch.manual_seed(0)
    d = CLIPEncoder("tiny-clip-32", layer=-1)
    torch.manual_seed(0)
    e = CLIPEncoder("tiny-clip-32", dtype=torch.bfloat16)
    assert a.identity == b.identity
    assert len({a.identity, c.identity, d.identity, e.identity}) == 4


def test_config_as_dict_and_json_path(frames: torch.Tensor, tmp_path: Path) -> None:
    cfg = load_config("tiny-clip-48").model_cfg
    path = tmp_path / "my-clip.json"
    path.write_text(json.dumps(cfg))
    from_dict = CLIPEncoder.from_config(cfg)
    from_path = CLIPEncoder.from_config(path, layer=-1)
    assert from_dict.grid == from_path.grid == (6, 6)
    assert from_path.encode_frames(frames[:2], joint=True).joint.shape == (2, 6, 6, 32)
    wrapped = CLIPEncoder.from_config({"model_cfg": cfg, "preprocess_cfg": {"interpolation": "bilinear"}})
    assert wrapped.preprocess_cfg["interpolation"] == "bilinear"


def test_bad_models() -> None:
    with pytest.raises(EncoderError, match="unknown CLIP model"):
        CLIPEncoder("no-such-model")
    with pytest.raises(EncoderError, match="not found"):
        CLIPEncoder("/nonexistent/clip.json")
    with pytest.raises(EncoderError, match="lacks"):
        CLIPEncoder({"vision_cfg": {}})
    with pytest.raises(EncoderError, match="ViT"):
        CLIPEncoder("RN50")


def test_unknown_pretrained_tag_is_an_encoder_error() -> None:
    with pytest.raises(EncoderError, match="open_clip weights"):
        CLIPEncoder("ViT-B-32", weights="no_such_tag")


def test_accepts_frames_objects(enc: CLIPEncoder, frames: torch.Tensor) -> None:
    class Decoded:
        def __init__(self, frames: torch.Tensor) -> None:
            self.frames = frames

    assert torch.equal(enc.encode_frames(Decoded(frames)).patches, enc.encode_frames(frames).patches)


BENCH = Path(__file__).resolve().parents[1] / "scripts" / "bench_encode.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_encode", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_helpers_run() -> None:
    bench = _bench_module()
    speed = bench.encode_speed("tiny-clip-32", 3, (24, 40), budget=None)
    assert speed["frames"] == 3 and speed["batch"] == 3 and speed["fps"] > 0
    prep = bench.preprocess_speed(2, (40, 60), size=32)
    assert prep["tensor_fps"] > 0 and prep["pil_fps"] > 0


def test_bench_script_runs_and_has_no_hidden_flags() -> None:
    env = {**os.environ, "PYTHONPATH": str(BENCH.parents[1])}
    helped = subprocess.run([sys.executable, str(BENCH), "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "--estimate" in helped.stdout and "_rss" not in helped.stdout
    assert "vidpool.encode.bench" not in BENCH.read_text()


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS is read from Linux /proc")
def test_bench_peak_rss_runs_in_a_fresh_process() -> None:
    (row,) = _bench_module().memory("tiny-clip-32", [2], (24, 40))
    assert row["batch"] == 2 and row["peak_delta"] >= 0 and row["estimate_per_frame"] > 0


def test_bfloat16_on_cpu(frames: torch.Tensor) -> None:
    torch.manual_seed(0)
    enc = CLIPEncoder("tiny-clip-32", dtype=torch.bfloat16)
    out = enc.encode_frames(frames[:2], joint=True)
    assert out.patches.dtype == out.joint.dtype == torch.bfloat16
    assert enc.encode_text(["x"]).dtype == torch.bfloat16


def test_prompt_scores_end_to_end(enc: CLIPEncoder, frames: torch.Tensor) -> None:
    vidpool = pytest.importorskip("vidpool")
    joint = enc.encode_frames(frames, joint=True).joint
    text = enc.encode_text(["a dog"])[0]
    scores = vidpool.prompt_scores(joint, text, enc.logit_scale)
    assert scores.shape == (6, 4, 4)
    assert torch.isfinite(scores).all()
    out = vidpool.compress(enc.encode_frames(frames).patches, "prompt_guided", budget=24, scores=scores)
    assert out.num_tokens <= 24 and out.tokens.shape[-1] == enc.width


@pytest.mark.gpu
def test_cuda_fp16_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    # frames at the model's size: no resize, so both devices see the same pixels and only precision differs
    frames = torch.randint(
        0, 256, (6, 48, 48, 3), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    torch.manual_seed(0)
    cpu = CLIPEncoder("tiny-clip-48")
    torch.manual_seed(0)
    gpu = CLIPEncoder("tiny-clip-48", device="cuda")
    assert gpu.dtype == torch.float16
    a = cpu.encode_frames(frames, joint=True)
    b = gpu.encode_frames(frames, joint=True, out_device="cpu")
    assert b.patches.device.type == "cpu"
    for ref, half in ((a.patches, b.patches), (a.joint, b.joint)):
        ref, half = ref.flatten(0, -2), half.float().flatten(0, -2)
        assert ((half - ref).norm() / ref.norm()).item() < 1e-2  # float16 rounding
        assert torch.nn.functional.cosine_similarity(half, ref, dim=-1).min().item() > 0.999
