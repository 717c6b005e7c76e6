"""VideoChat / Captioner on the tiny native checkpoint: encode once, stream, history, OOM back-off."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pipeline_support import OOMAbove, loaded, sample_video

import vidpool
from vidpool.errors import InvalidArgumentError, OutOfMemoryError
from vidpool.pipeline import Captioner, VideoChat, encode_video, run
from vidpool.schedule import plan


@pytest.fixture(scope="module")
def model():
    return loaded("tiny-native")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return sample_video(tmp_path_factory.mktemp("video"))


def test_ten_questions_encode_once(model, video):
    chat = VideoChat(video, model, num_frames=8, max_new_tokens=4)
    answers = [chat.ask(f"question {i}?") for i in range(10)]
    assert chat.encode_calls == 1
    assert all(isinstance(a, str) for a in answers)
    assert [q for q, _ in chat.history] == [f"question {i}?" for i in range(10)]
    assert chat.history[3][1] == answers[3]
    assert chat.timestamps.shape == (8,) and np.all(np.diff(chat.timestamps) > 0)
    chat.reset()
    assert chat.history == []


def test_stream_gives_the_same_answer_and_records_it(model, video):
    plain = VideoChat(video, model, num_frames=4, max_new_tokens=6).ask("What happens?")
    chat = VideoChat(video, model, num_frames=4, max_new_tokens=6)
    pieces = chat.ask("What happens?", stream=True)
    assert chat.history == []  # recorded once the answer is complete
    text = "".join(pieces)
    assert text == plain
    assert chat.history == [("What happens?", plain)]


def test_follows_the_plan(model, video):
    p = plan(
        video, model, "cpu", num_frames=6, method="spatial", method_params={"stride": 4}, max_new_tokens=4
    )
    chat = VideoChat(video, model, plan=p)
    tokens = chat.visual_tokens()
    assert tokens.shape[0] == p.num_tokens == 6  # 4x4 grid pooled by 4 -> 1 token per frame
    assert chat.timestamps.shape == (6,)


def test_shared_feature_cache_skips_encoding(model, video):
    from vidpool.encode import FeatureCache

    cache = FeatureCache(max_items=4)
    first = VideoChat(video, model, num_frames=4, max_new_tokens=2, cache=cache)
    first.ask("a?")
    second = VideoChat(video, model, num_frames=4, max_new_tokens=2, cache=cache)
    second.ask("b?")
    assert (first.encode_calls, second.encode_calls) == (1, 0)


def test_encoding_halves_the_batch_on_oom(model, video):
    p = plan(video, model, "cpu", num_frames=8, max_new_tokens=2)
    assert p.encoder_batch == 8
    reference = encode_video(model, video, p).features
    flaky = OOMAbove(model, limit=2)
    encoded = encode_video(flaky, video, p)
    assert flaky.batches[:3] == [8, 4, 2]
    assert encoded.tried == flaky.batches
    torch.testing.assert_close(encoded.features, reference)
    answer = VideoChat(video, OOMAbove(model, limit=3), plan=p).ask("still works?")
    assert isinstance(answer, str)


def test_gives_up_with_what_it_tried(model, video):
    p = plan(video, model, "cpu", num_frames=8, max_new_tokens=2)
    chat = VideoChat(video, OOMAbove(model, limit=0, error=MemoryError), plan=p)
    with pytest.raises(OutOfMemoryError, match=r"tried 8, 4, 2, 1"):
        chat.ask("anything?")


def test_frames_in_memory_and_run(model):
    frames = np.random.default_rng(0).integers(0, 255, size=(12, 48, 64, 3), dtype=np.uint8)
    chat = VideoChat(frames, model, num_frames=4, max_new_tokens=3)
    assert chat.plan.num_frames == 4
    assert isinstance(chat.ask("what?"), str)
    # frames without times: the centres of four equal segments, and no seconds made up for them
    assert chat.timestamps is None and chat.frame_indices.tolist() == [1, 4, 7, 10]
    assert chat.last_trace.timestamps is None and chat.last_trace.num_frames == 4
    assert isinstance(run(frames, model, "what?", num_frames=2, max_new_tokens=2), str)
    with pytest.raises(InvalidArgumentError):
        chat.ask("   ")


def test_captioner(model, video):
    captioner = Captioner(model, num_frames=4, max_new_tokens=5)
    captions = captioner.caption_many([video, video])
    assert len(captions) == 2 and all(c.ok and isinstance(c.text, str) for c in captions)
    assert captions[0].text == captions[1].text  # greedy decoding is deterministic
    assert captioner.last_plan is not None and captioner.last_plan.num_frames == 4


def test_progressive_on_a_model_without_text_tower(video):
    hf = loaded("tiny-llava-onevision")
    chat = VideoChat(video, hf, num_frames=8, method="progressive", budget=40, max_new_tokens=3)
    assert isinstance(chat.ask("what?"), str)
    # the budget is the method's; OneVision then ends the video with its image_newline token
    assert chat.visual_tokens("what?").shape[0] == chat.plan.num_tokens <= 40 + 1


def test_prompt_guided_chat_scores_with_the_joint_embeddings(model):
    frames = np.random.default_rng(2).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    question = "Where is the ball?"
    chat = VideoChat(frames, model, num_frames=4, method="prompt_guided", budget=8, max_new_tokens=4)
    tokens = chat.visual_tokens(question)
    encoded = chat._encoded()
    # a bare array of frames has no times
    assert chat.encode_calls == 1 and set(encoded) == {"features", "indices", "joint"}
    enc = model.encoder
    joint = enc.encode_frames(torch.from_numpy(frames), joint=True).joint
    expected = vidpool.prompt_scores(joint, enc.encode_text([question]), enc.logit_scale)
    torch.testing.assert_close(encoded["joint"], joint)
    p = chat.plan
    exact = model.visual_tokens(
        encoded["features"], method=p.method, budget=p.budget, scores=expected, **p.params
    )
    torch.testing.assert_close(tokens, exact)
    assert isinstance(chat.ask(question), str)


def test_methods_without_scores_keep_no_joint_embeddings(model):
    frames = np.random.default_rng(3).integers(0, 256, (4, 48, 64, 3), dtype=np.uint8)
    chat = VideoChat(frames, model, num_frames=4, method="spatial", max_new_tokens=4)
    chat.visual_tokens("What happens?")
    assert "joint" not in chat._encoded()


# -- options: checked before loading or encoding, and used where they matter -------------------


def _refuse_loading(monkeypatch):
    import vidpool.llm
    import vidpool.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(vidpool.pipeline, "load", refuse)
    monkeypatch.setattr(vidpool.llm, "load_model", refuse)


@pytest.mark.parametrize(
    ("options", "error", "says"),
    [
        ({"temperature": -1}, InvalidArgumentError, "temperature"),
        ({"temperature": float("inf")}, InvalidArgumentError, "temperature"),
        ({"top_p": 0}, InvalidArgumentError, "top_p"),
        ({"top_p": 1.5}, InvalidArgumentError, "top_p"),
        ({"max_new_tokens": 0}, InvalidArgumentError, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, InvalidArgumentError, "max_new_tokens"),
        ({"seed": "7"}, InvalidArgumentError, "seed"),
        ({"num_frames": 0}, InvalidArgumentError, "num_frames"),
        ({"budget": -1}, InvalidArgumentError, "budget"),
        ({"method": "squash"}, vidpool.UnknownMethodError, "squash"),
        ({"device": "tpu"}, InvalidArgumentError, "unsupported device"),
    ],
)
def test_videochat_checks_options_before_loading(options, error, says, video, monkeypatch):
    _refuse_loading(monkeypatch)
    with pytest.raises(error, match=says):
        VideoChat(video, "checkpoints/whatever", **options)


def test_videochat_refuses_a_missing_video_before_loading(tmp_path, monkeypatch):
    _refuse_loading(monkeypatch)
    with pytest.raises(vidpool.VideoNotFoundError):
        VideoChat(tmp_path / "gone.mp4", "checkpoints/whatever")
    with pytest.raises(vidpool.VideoNotFoundError):
        run(tmp_path / "gone.mp4", "checkpoints/whatever", "What?")
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        run(tmp_path / "gone.mp4", "checkpoints/whatever", "  ")
    for frames in (np.zeros((0, 8, 8, 3), np.uint8), np.zeros((4, 8, 8), np.uint8), [1, 2, 3]):
        with pytest.raises(InvalidArgumentError, match=r"\[T, H, W, 3\]"):
            VideoChat(frames, "checkpoints/whatever")


def test_videochat_and_captioner_check_the_budget_and_the_video_before_loading(video, tmp_path, monkeypatch):
    from pipeline_support import checkpoint

    tiny = checkpoint("tiny-native")
    _refuse_loading(monkeypatch)
    too_small = {"num_frames": 4, "method": "slowfast", "budget": 2}
    with pytest.raises(vidpool.BudgetError, match="smallest possible budget") as chat_error:
        VideoChat(video, tiny, device="cpu", **too_small)
    with pytest.raises(vidpool.BudgetError) as caption_error:
        Captioner(tiny, device="cpu", **too_small)
    # the method's own smallest budget on the planned grid: frames x the model's patch grid
    from vidpool.schedule import model_spec

    grid = (4, *model_spec(tiny).grid)
    with pytest.raises(vidpool.BudgetError) as method_error:
        vidpool.num_output_tokens("slowfast", grid, budget=2)
    assert chat_error.value.min_budget == caption_error.value.min_budget == method_error.value.min_budget
    fake = tmp_path / "cup.mp4"
    fake.write_text("not a video\n" * 100)
    with pytest.raises(vidpool.VideoDecodeError, match=r"cup\.mp4"):
        VideoChat(fake, tiny, device="cpu")


def test_videochat_refuses_options_a_given_plan_would_ignore(model, video):
    p = plan(video, model, "cpu", num_frames=4, max_new_tokens=8)
    with pytest.raises(InvalidArgumentError, match="num_frames"):
        VideoChat(video, model, plan=p, num_frames=16)
    with pytest.raises(InvalidArgumentError, match="max_new_tokens=9 is more than the plan's 8"):
        VideoChat(video, model, plan=p, max_new_tokens=9)


def test_ask_checks_its_options_before_encoding(model, video):
    chat = VideoChat(video, model, num_frames=4, max_new_tokens=4)
    for bad in ({"temperature": -0.5}, {"top_p": 0.0}, {"max_new_tokens": 0}, {"beams": 2}):
        with pytest.raises(InvalidArgumentError):
            chat.ask("What?", **bad)
    with pytest.raises(InvalidArgumentError, match="more than the plan's 4"):
        chat.ask("What?", max_new_tokens=5)
    with pytest.raises(InvalidArgumentError, match="non-empty"):
        chat.ask("")
    assert chat.encode_calls == 0 and chat.history == []


def test_max_new_tokens_sizes_the_plan_and_bounds_generation(model, video, monkeypatch):
    chat = VideoChat(video, model, num_frames=4, max_new_tokens=3)
    assert chat.plan.max_new_tokens == 3 and chat.generation["max_new_tokens"] == 3
    p = plan(video, model, "cpu", num_frames=4, max_new_tokens=5)
    from_plan = VideoChat(video, model, plan=p)
    assert from_plan.generation["max_new_tokens"] == 5  # not the 256 default: the plan's KV term
    assert VideoChat(video, model, plan=p).device == "cpu" == p.device


def test_progress_callback_follows_the_stages(model, video):
    events: list[tuple] = []
    chat = VideoChat(video, model, num_frames=6, max_new_tokens=2, progress=lambda *e: events.append(e))
    chat.ask("What?")
    stages = [e[0] for e in events]
    assert stages[0] == "planning" and stages[-2:] == ["compressing", "prefill"]
    encoded = [e[1:] for e in events if e[0] == "encoding frames"]
    assert encoded[0] == (0, 6) and encoded[-1] == (6, 6)
    assert [d for d, _ in encoded] == sorted(d for d, _ in encoded)


def test_captioner_checks_options_before_loading(monkeypatch):
    _refuse_loading(monkeypatch)
    for bad in ({"temperature": -1}, {"num_frames": 0}, {"method": "squash"}, {"prompt": " "}, {"frames": 8}):
        with pytest.raises((InvalidArgumentError, vidpool.UnknownMethodError)):
            Captioner("checkpoints/whatever", **bad)


def test_caption_many_keeps_every_good_caption(model, tmp_path):
    from vidpool.pipeline import Caption

    folder = tmp_path / "videos"
    folder.mkdir()
    good = [sample_video(folder, num_frames=n) for n in (24, 36)]
    fake = folder / "notes.mp4"
    fake.write_text("this is a text file, not a video\n")
    missing = folder / "missing.mp4"
    videos = [good[0], fake, missing, good[1]]
    captioner = Captioner(model, num_frames=4, max_new_tokens=5)
    results = captioner.caption_many(videos)
    assert len(results) == len(videos) and all(isinstance(r, Caption) for r in results)
    assert [r.video for r in results] == videos
    assert [r.ok for r in results] == [True, False, False, True]
    for r, video in zip(results, videos):
        if r.ok:
            assert r.text == captioner.caption(video) and r.plan.num_frames == 4 and r.error is None
        else:
            assert r.text is None and str(r) == ""
    assert isinstance(results[1].error, vidpool.VideoError)
    assert isinstance(results[2].error, vidpool.VideoNotFoundError)


def test_caption_many_refuses_options_that_would_fail_every_video(model, video):
    captioner = Captioner(model, num_frames=4, max_new_tokens=5)
    with pytest.raises(InvalidArgumentError):
        captioner.caption_many([video, video], temperature=-1)


def test_budget_tokens_is_the_deprecated_name_of_budget(model, video):
    import warnings

    from vidpool.options import renamed_budget

    with pytest.warns(DeprecationWarning, match="budget="):
        old = plan(video, model, "cpu", num_frames=4, method="progressive", budget_tokens=20)
    assert old.budget == plan(video, model, "cpu", num_frames=4, method="progressive", budget=20).budget == 20
    with pytest.warns(DeprecationWarning, match="budget="):
        chat = VideoChat(video, model, num_frames=4, method="progressive", budget_tokens=20, max_new_tokens=2)
    assert chat.plan.budget == 20
    with pytest.warns(DeprecationWarning, match="budget="):
        captioner = Captioner(model, num_frames=4, method="progressive", budget_tokens=20, max_new_tokens=2)
    assert captioner.plan_kwargs["budget"] == 20
    assert renamed_budget(64, None) == 64
    with pytest.warns(DeprecationWarning, match="budget="):
        assert renamed_budget(None, 64) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(InvalidArgumentError, match="once"):
            renamed_budget(32, 64)
