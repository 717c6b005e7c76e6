"""One per-frame memory formula: measured against torch's allocator, shared by encoder and planner."""

from __future__ import annotations

import pytest
import torch
from encode_support import one_thread, random_frames  # noqa: F401  (autouse fixture)

from vidpool.encode import CLIPEncoder, encoder_spec, load_config
from vidpool.encode.batching import activation_bytes_per_frame
from vidpool.encode.memory import (
    clip_activation_bytes_per_frame,
    hf_vit_activation_bytes_per_frame,
    measured_bytes_per_frame,
    vit_activation_bytes_per_frame,
)
from vidpool.llm.spec import _clip_frame_activation

pytest.importorskip("open_clip")


@pytest.fixture(scope="module", params=["tiny-clip-32", "tiny-clip-48"])
def enc(request) -> CLIPEncoder:
    torch.manual_seed(0)
    return CLIPEncoder(request.param, memory_budget=1 << 40)


@pytest.mark.parametrize("joint", [False, True])
@pytest.mark.parametrize("hw", [(36, 52), (240, 320)])
def test_prediction_within_15_percent_of_measured_peak(enc: CLIPEncoder, hw, joint: bool) -> None:
    frames = random_frames(6, *hw)
    measured = measured_bytes_per_frame(enc, frames, joint=joint)
    predicted = enc.activation_bytes_per_frame(hw, joint=joint)
    assert predicted == pytest.approx(measured, rel=0.15)


@pytest.mark.parametrize("name", ["tiny-clip-32", "tiny-clip-48"])
def test_prediction_within_15_percent_in_bfloat16(name: str) -> None:
    torch.manual_seed(0)
    enc = CLIPEncoder(name, dtype=torch.bfloat16, memory_budget=1 << 40)
    frames = random_frames(4, 240, 320)
    measured = measured_bytes_per_frame(enc, frames, joint=True)
    assert enc.activation_bytes_per_frame((240, 320), joint=True) == pytest.approx(measured, rel=0.15)


def test_encoder_planner_and_batching_share_the_formula(enc: CLIPEncoder) -> None:
    spec = enc.spec
    hw = (480, 640)
    from_config = clip_activation_bytes_per_frame(spec, 4, frame_hw=hw)
    assert enc.activation_bytes_per_frame(hw, joint=False) == from_config
    assert _clip_frame_activation(spec, 4, "cpu")(hw) == from_config
    assert activation_bytes_per_frame(spec, torch.float32, frame_hw=hw, joint=False) == from_config
    assert enc.batch_size_for(7 * enc.activation_bytes_per_frame(hw) + 1, hw) == 7


def test_formula_terms() -> None:
    base = vit_activation_bytes_per_frame(768, 224, 16, 12, 4)
    # ViT-B-16, float32, CPU: measured 8,466,432 bytes per frame with measure_peak
    # (python scripts/bench_encode.py --estimate ViT-B-16, minus the uint8 frames)
    assert base == 8_466_432
    assert vit_activation_bytes_per_frame(768, 224, 16, 12, 4, frame_hw=(240, 320)) == base + 3 * 240 * 320
    assert vit_activation_bytes_per_frame(768, 224, 16, 12, 4, quick_gelu=True) > base
    assert vit_activation_bytes_per_frame(768, 224, 16, 12, 2) < base
    joint = vit_activation_bytes_per_frame(768, 224, 16, 12, 4, embed_dim=512)
    assert joint == base + 196 * 512 * 4
    # ViT-L-14-336 on the CPU: the materialised attention scores outweigh the MLP hidden state
    # (measured 39,432,256 bytes per 240x320 frame, frames included, with the same command)
    with_scores = vit_activation_bytes_per_frame(1024, 336, 14, 16, 4, frame_hw=(240, 320))
    assert with_scores == 39_432_256
    no_scores = vit_activation_bytes_per_frame(
        1024, 336, 14, 16, 4, frame_hw=(240, 320), attention_matrix=False
    )
    assert with_scores > no_scores


def test_cuda_terms_match_the_h100_measurement() -> None:
    # float16 on an H100 (torch.cuda.max_memory_allocated per frame, frames' device copy included;
    # python scripts/bench_encode.py --estimate ViT-B-16 ViT-L-14-336 --device cuda --dtype float16
    # --hw-estimate 720x1280): ViT-L-14-336 with joint embeddings measured 21,046,464 B, ViT-B-16
    # 17,682,560 B (its float32 resize buffers outweigh its blocks).
    vit_l = encoder_spec(load_config("ViT-L-14-336"))
    hd = (720, 1280)
    assert (
        clip_activation_bytes_per_frame(vit_l, 2, frame_hw=hd, joint=True, device_type="cuda") == 21_046_464
    )
    vit_b = vit_activation_bytes_per_frame(768, 224, 16, 12, 2, frame_hw=hd, device_type="cuda")
    assert vit_b == pytest.approx(17_682_560, rel=0.01)
    # CUDA's fused attention holds no scores; the CPU kernel does
    cpu = clip_activation_bytes_per_frame(vit_l, 2, frame_hw=(336, 597), device_type="cpu")
    cuda = clip_activation_bytes_per_frame(vit_l, 2, frame_hw=(336, 597), device_type="cuda")
    assert cuda < cpu


def test_hf_tower_terms_match_the_h200_measurement() -> None:
    # LLaVA-OneVision-7B's SigLIP tower (26 blocks run, 1152 wide, 729 patches, sdpa) in bfloat16 on an
    # H200 (python scripts/gpu_check.py --llava): 20,153,728 B per frame for 384x682 and 720p frames
    # alike; on a GPU the frames' device copy is gone before the blocks run, so the size drops out.
    for hw in ((384, 682), (720, 1280)):
        predicted = hf_vit_activation_bytes_per_frame(
            1152, 384, 14, 16, 4304, 2, class_token=False, frame_hw=hw, device_type="cuda", squash=True
        )
        assert predicted == pytest.approx(20_153_728, abs=64)
    # on the CPU the caller's frames stay for the whole call
    cpu = hf_vit_activation_bytes_per_frame(
        1152, 384, 14, 16, 4304, 2, class_token=False, frame_hw=(720, 1280), squash=True
    )
    assert cpu == predicted + 3 * 720 * 1280
