"""The Qwen kinds through every surface's common load path: vidpool chat, the captioner, the lmms-eval model,
the generation arms of bench fidelity and the demo's kept-token panel; a kind vidpool cannot run is named."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from pipeline_support import checkpoint, loaded, sample_video

from vidpool.errors import CheckpointError

NAMES = ("tiny-qwen2.5-vl", "tiny-qwen3-vl")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return str(sample_video(tmp_path_factory.mktemp("video"), num_frames=24, size=(160, 90)))


@pytest.mark.parametrize("name", NAMES)
def test_chat_command_keeps_the_budget(name, video, capsys):
    from vidpool.cli import main

    argv = ["chat", video, "What?", "--model", str(checkpoint(name)), "--device", "cpu", "--frames", "4"]
    argv += ["--method", "progressive", "--budget", "8", "--max-new-tokens", "2", "--show-plan"]
    assert main(argv) == 0, capsys.readouterr().err
    table = capsys.readouterr().err
    tokens = int(re.search(r"^visual token count\s+(\d+)$", table, re.M).group(1))
    assert 0 < tokens <= 8


@pytest.mark.parametrize("name", NAMES)
def test_captioner_answers_like_the_chat(name, video):
    from vidpool.pipeline import Captioner, VideoChat

    model = loaded(name)
    options = {"num_frames": 4, "method": "random_drop", "budget": 10}
    caption = Captioner(model=model, **options, max_new_tokens=3).caption(video)
    chat = VideoChat(video, model, **options)
    assert caption == chat.ask(Captioner(model=model).prompt, max_new_tokens=3).strip()


@pytest.mark.parametrize("name", NAMES)
def test_lmms_eval_model_answers_like_the_chat(name, video):
    pytest.importorskip("lmms_eval")
    from vidpool.integrations.lmms_eval.model import VidpoolLMM
    from vidpool.integrations.lmms_eval.requests import Turn
    from vidpool.pipeline import VideoChat

    lmm = VidpoolLMM(model=str(checkpoint(name)), device="cpu", frames=4)
    answer = lmm.answer(Turn(video, "What?"), {"max_new_tokens": 2})
    expected = VideoChat(video, lmm.model, num_frames=4).ask("What?", max_new_tokens=2)
    assert isinstance(answer, str) and answer == expected


@pytest.mark.parametrize("name", NAMES)
def test_bench_generation_arms_run_with_their_provenance(name):
    from vidpool.bench.generative import answer_generative, generative_arms
    from vidpool.bench.synth.tasks import make_items

    model = loaded(name)
    item = make_items("static", 2, seed=1)[1]
    replies = answer_generative(model, item, generative_arms(["random_drop"], (0.5,)), frames=4)
    assert replies["text_only"].answer.tokens == 0 and isinstance(replies["text_only"].text, str)
    full = replies["full"].answer.tokens
    assert full > 0 and replies["random_drop@0.5"].answer.tokens == round(0.5 * full)


@pytest.mark.parametrize("name", NAMES)
def test_demo_panel_draws_what_was_kept(name, video):
    from vidpool.demo.panel import trace_tiles
    from vidpool.pipeline import VideoChat

    chat = VideoChat(video, loaded(name), num_frames=4, method="random_drop", budget=6)
    chat.ask("What?", max_new_tokens=1)
    trace = chat.last_trace
    frames = np.zeros((24, 90, 160, 3), dtype=np.uint8)
    tiles = trace_tiles(trace, frames, np.arange(24) / 8.0)
    assert tiles is not None
    assert trace.patch_tokens == int(np.prod(trace.compressed.input_shape)) and trace.visual_tokens == 6


def test_a_kind_vidpool_cannot_run_is_named_with_those_it_can(tmp_path):
    from vidpool.llm import load_model

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2_vl"}))
    with pytest.raises(CheckpointError, match=r"'qwen2_vl'.*'qwen2_5_vl'.*'qwen3_vl'"):
        load_model(tmp_path)
