"""The tiny checkpoints on CUDA: bfloat16 by default, flash-attention when installed, accelerate placement."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from pipeline_support import checkpoint

from vidpool.llm import load_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("name", ["tiny-native", "tiny-llava-onevision", "tiny-llava-next-video"])
def test_tiny_models_generate_on_cuda_in_bfloat16(name):
    model = load_model(checkpoint(name), device="cuda")
    expected_attn = "flash_attention_2" if importlib.util.find_spec("flash_attn") else "sdpa"
    lm = model.language_model
    assert lm.config._attn_implementation == expected_attn
    assert model.device.type == "cuda"
    frames = torch.randint(0, 256, (4, 40, 40, 3), dtype=torch.uint8)
    tokens = model.visual_tokens(model.encode_patches(frames))
    assert tokens.device.type == "cuda" and tokens.shape == (model.num_visual_tokens(4), 32)
    assert next(lm.parameters()).dtype in (torch.bfloat16, torch.float16)
    text = model.generate(tokens, "What happens?", max_new_tokens=8, temperature=0.7, seed=0)
    assert text == "".join(
        model.generate(tokens, "What happens?", max_new_tokens=8, temperature=0.7, seed=0, stream=True)
    )


def test_device_map_auto_places_the_native_model():
    model = load_model(checkpoint("tiny-native"), device_map="auto")
    frames = torch.randint(0, 256, (2, 40, 40, 3), dtype=torch.uint8)
    tokens = model.visual_tokens(model.encode_patches(frames))
    assert model.device.type == "cuda" and tokens.device == model.device
    assert isinstance(model.generate(tokens, "Hi?", max_new_tokens=4), str)
