"""VideoChat.last_trace: what one answer did, checked against compression run directly."""

from __future__ import annotations

import pytest
import torch
from pipeline_support import loaded, sample_video

import vidpool
from vidpool.pipeline import STAGES, VideoChat


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return sample_video(tmp_path_factory.mktemp("trace"), num_frames=24)


def test_the_trace_holds_what_compression_kept(video):
    model = loaded("tiny-native")
    chat = VideoChat(video, model, num_frames=4, method="spatial", max_new_tokens=4)
    answer = chat.ask("What happens?")
    trace = chat.last_trace
    assert trace.done and trace.answer == answer and trace.question == "What happens?"
    assert trace.num_frames == 4 and trace.grid == tuple(model.grid)
    features = chat._encoded()["features"]
    reference = vidpool.compress(features, "spatial", **chat.plan.params)  # what the model compresses
    torch.testing.assert_close(trace.compressed.assign, reference.assign)
    torch.testing.assert_close(trace.compressed.weight, reference.weight)
    assert trace.patch_tokens == features.shape[0] * features.shape[1] * features.shape[2]
    assert trace.visual_tokens == chat.plan.num_tokens == reference.num_tokens
    assert trace.scores is None  # spatial pooling uses no prompt scores
    assert {"decode", "encode", "compress", "generate"} <= set(trace.timings) <= set(STAGES)
    assert all(seconds >= 0 for seconds in trace.timings.values()) and not trace.cached


def test_streaming_splits_prefill_from_generation_and_a_follow_up_uses_the_cache(video):
    model = loaded("tiny-native")
    chat = VideoChat(video, model, num_frames=4, method="prompt_guided", max_new_tokens=6)
    text = "".join(chat.ask("Where is the red square?", stream=True))
    first = chat.last_trace
    assert first.done and first.answer == text and {"prefill", "generate"} <= set(first.timings)
    assert first.scores is not None and tuple(first.scores.shape) == (4, *model.grid)
    reference = vidpool.prompt_scores(
        chat._encoded()["joint"],
        model.text_embedding("Where is the red square?"),
        logit_scale=model.encoder.logit_scale,
    )
    torch.testing.assert_close(first.scores, reference)
    "".join(chat.ask("And the blue one?", stream=True))
    second = chat.last_trace
    assert second is not first and second.cached and "encode" not in second.timings
    assert chat.encode_calls == 1
    assert not torch.equal(second.scores, first.scores)  # re-pooled for the new question
