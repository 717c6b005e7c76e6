"""The lmms-eval model's ``fastv`` model_arg: read as the ``vidpool`` command reads ``--fastv``, passed to
each request's VideoChat, refused where it would be ignored."""

from __future__ import annotations

import argparse

import pytest
from pipeline_support import checkpoint, sample_video

pytest.importorskip("lmms_eval")

from lmms_eval.utils import simple_parse_args_string

from vidpool.errors import InvalidArgumentError
from vidpool.integrations.lmms_eval.model import VidpoolLMM, parse_model_args
from vidpool.integrations.lmms_eval.requests import Turn
from vidpool.options import FastV, fastv_option

QUESTION = "What happens in the video?"


@pytest.mark.parametrize("text", ["2:64", "0:0.25"])
def test_fastv_reads_as_the_cli_option(text):
    # lmms-eval splits --model_args itself; the value reaches vidpool as text
    kwargs = simple_parse_args_string(f"model=/m,fastv={text},budget=16")
    assert parse_model_args(**kwargs).fastv == fastv_option(text)
    assert parse_model_args(model="/m").fastv is None


@pytest.mark.parametrize("text", ["2", "a:3", "2:0", "1:1.5"])
def test_a_bad_fastv_is_refused_before_the_model_loads_with_the_cli_message(text, tmp_path):
    with pytest.raises(argparse.ArgumentTypeError) as cli:
        fastv_option(text)
    with pytest.raises(InvalidArgumentError) as info:
        VidpoolLMM(model=str(tmp_path / "missing"), fastv=text)
    assert str(info.value) == f"fastv: {cli.value}"


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return sample_video(tmp_path_factory.mktemp("video"), num_frames=48, size=(160, 120))


def test_each_request_generates_with_fastv_as_video_chat_does(video):
    from vidpool.pipeline import VideoChat

    lmm = VidpoolLMM(model=str(checkpoint("tiny-native")), method="none", frames=4, device="cpu", fastv="1:8")
    assert lmm.args.fastv == FastV(1, budget=8)
    answer = lmm.answer(Turn(str(video), QUESTION), {"max_new_tokens": 6})
    chat = VideoChat(str(video), lmm.model, num_frames=4, method="none", fastv=FastV(1, budget=8))
    assert chat.plan.fastv_kept == 8 and chat.plan.num_tokens > 8
    assert answer == chat.ask(QUESTION, max_new_tokens=6)
    assert lmm.chat(str(video)).plan.fastv == FastV(1, budget=8)
    with pytest.raises(InvalidArgumentError, match="run these tasks without fastv"):
        lmm.loglikelihood([])
