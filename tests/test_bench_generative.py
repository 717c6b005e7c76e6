"""The generative scorer: a video LM answers the benchmark's questions by writing a letter."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch
from bench_support import small_settings
from pipeline_support import checkpoint

import vidpool
from vidpool.bench.arms import item_seed
from vidpool.bench.fidelity import run_fidelity
from vidpool.bench.generative import (
    MAX_NEW_TOKENS,
    answer_generative,
    generative_arms,
    parse_choice,
    sample_clip,
)
from vidpool.bench.stats import holm
from vidpool.bench.synth.tasks import make_items, multiple_choice_prompt, render_item, write_item_mp4
from vidpool.cli import main

pytest.importorskip("open_clip")
pytest.importorskip("matplotlib")

OPTIONS = ("red", "green", "blue", "yellow")


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("B", 1),
        ("B.", 1),
        (" (C)", 2),
        ("D. yellow", 3),
        ("A\n", 0),
        ("blue", 2),
        ("It is green.", 1),
        ("red or blue", None),
        ("purple", None),
        ("", None),
        ("E", None),  # not one of the four letters
    ],
)
def test_parse_choice_reads_the_letter_else_the_one_option_named(text, choice):
    assert parse_choice(text, OPTIONS) == choice


def test_sample_clip_takes_the_frames_the_reader_decodes(tmp_path):
    """The frames a file of the item would give: checked against VideoReader on the written MP4."""
    item = make_items("direction", 1, seed=3)[0]
    frames = render_item(item, 64)
    path = write_item_mp4(item, tmp_path / "clip.mp4", side=64, fps=8)
    clip, stamps = sample_clip(frames, 5, fps=8.0)
    with vidpool.VideoReader(path) as reader:
        decoded = reader.sample(num_frames=5)
    np.testing.assert_allclose(stamps, np.asarray(decoded.timestamps), atol=1e-3)
    # H.264 is lossy: the decoded frames are close to the drawn ones, and closest to the same index
    got = np.asarray(decoded.frames).astype(np.float32)
    err = np.abs(got - clip.astype(np.float32)).mean(axis=(1, 2, 3))
    assert (err < 12).all(), err


@pytest.fixture(scope="module")
def tiny():
    return vidpool.load_model(checkpoint("tiny-native"))


def test_every_arm_answers_and_full_is_the_models_own_generation(tiny):
    item = make_items("static", 2, seed=1)[1]
    arms = generative_arms(["spatial", "none"], (1.0, 0.25))
    replies = answer_generative(tiny, item, arms)
    assert set(replies) == {a.key for a in arms}
    t, (h, w) = tiny.config.num_frames, tiny.grid
    assert replies["full"].answer.tokens == t * h * w
    assert replies["spatial@0.25"].answer.requested == round(0.25 * t * h * w)
    assert replies["none@0.25"].answer.correct is None and "Budget" in replies["none@0.25"].answer.error
    assert replies["text_only"].answer.tokens == 0
    # the full arm is exactly VideoLM.generate on every token of the sampled frames
    clip, stamps = sample_clip(render_item(item), t)
    features = tiny.encode(torch.from_numpy(np.ascontiguousarray(clip))).patches
    tokens = tiny.visual_tokens(features, method="none")
    expected = tiny.generate(tokens, multiple_choice_prompt(item), timestamps=stamps, max_new_tokens=4)
    assert replies["full"].text == expected
    assert replies["full"].choice == parse_choice(expected, item.options)
    assert replies["full"].answer.correct == (replies["full"].choice == item.answer)


def test_text_only_sees_no_video(tiny):
    """The text-only control answers the same for two videos with the same question and options."""
    a, b = make_items("static", 4, seed=2)[0], make_items("static", 4, seed=9)[0]
    b = type(b)(**{**b.__dict__, "question": a.question, "options": a.options, "answer": a.answer})
    arms = generative_arms([], ())
    ra, rb = answer_generative(tiny, a, arms), answer_generative(tiny, b, arms)
    assert ra["text_only"].text == rb["text_only"].text


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("generative")
    settings = small_settings(
        out, families=("static", "direction"), items=4, model=str(checkpoint("tiny-native"))
    )
    lines: list[str] = []
    return run_fidelity(settings, log=lines.append), out, "\n".join(lines)


def test_generative_section_beside_the_retrieval_cells(run):
    results, out, log = run
    assert "static (generation): 4/4 questions" in log
    section = results["generative"]
    keys = {c["key"] for c in section["cells"] if c["family"] == "static"}
    methods_and_baselines = ("spatial", "prompt_guided", "random_drop", "frame_subsample")
    assert keys == {f"{m}@{b:g}" for m in methods_and_baselines for b in (1, 0.25)} | {"full", "text_only"}
    rules = {r["rule"] for r in section["comparisons"]}
    assert {"spatial vs random_drop", "spatial vs frame_subsample"} <= rules
    # one Holm family: the retrieval scorer's comparisons and the generated ones together
    tested = [r for r in results["comparisons"] + section["comparisons"] if "p_value" in r]
    assert [r["p_holm"] for r in tested] == pytest.approx(list(holm([r["p_value"] for r in tested])))
    assert {c["family"] for c in section["cells"]} == {"static", "direction", "all"}
    for cell in section["cells"]:
        acc = cell["accuracy"]
        assert acc["low"] <= acc["value"] <= acc["high"] and cell["n"] == (
            8 if cell["family"] == "all" else 4
        )
    generated = results["items"]["static"]["generated"]
    full = next(c for c in section["cells"] if c["family"] == "static" and c["key"] == "full")
    assert full["accuracy"]["value"] == pytest.approx(np.mean(generated["full"]))
    assert len(section["replies"]["static"]["full"]) == 4
    assert all(r["choice"] in (None, 0, 1, 2, 3) for r in section["replies"]["static"]["full"])
    assert section["unparsed"]["static"]["full"] == sum(
        r["choice"] is None for r in section["replies"]["static"]["full"]
    )
    assert results["cells"], "the retrieval scorer ran too"
    table = (out / "table.txt").read_text()
    assert "answered by generation" in table and "text_only" in table
    assert json.loads((out / "results.json").read_text())["generative"]["frames"] == 4
    for family in ("static", "direction", "all"):
        assert (out / f"generated_{family}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "generated_all.png" in results["plots"] and "accuracy_all.png" in results["plots"]


def test_two_processes_answer_as_one(run, tmp_path):
    results, _, _ = run
    settings = small_settings(
        tmp_path,
        families=("static",),
        items=4,
        model=str(checkpoint("tiny-native")),
        retrieval=False,
        jobs=2,
    )
    again = run_fidelity(settings, log=lambda _: None)
    assert again["cells"] == [] and again["clip"] is None
    assert again["generative"]["replies"]["static"] == results["generative"]["replies"]["static"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--no-retrieval"], "needs --model"),
        (["--model", "no-such-model"], "neither a checkpoint folder nor a model name"),
        (["--model", "tiny-native", "--jobs", "0"], "positive integer"),
        (["--model", "tiny-native", "--model-frames", "0"], "positive integer"),
        (["--model", "tiny-native", "--model-prompt", "essay"], "invalid choice"),
    ],
)
def test_bad_model_options_exit_2_before_loading(argv, message, monkeypatch, capsys):
    def no_loading(*args, **kwargs):
        raise AssertionError("loaded something before checking the options")

    monkeypatch.setattr("vidpool.bench.clip.load_clip", no_loading)
    monkeypatch.setattr("vidpool.load_model", no_loading)
    with pytest.raises(SystemExit) as info:
        main(["bench", "fidelity", "--weights", "random", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_free_answers_are_read_for_the_option_they_name(tiny):
    """``style="free"``: the question alone is asked, and a reply is read for words, never a letter."""
    assert parse_choice("A red circle.", OPTIONS, letters="") == 0
    assert parse_choice("B", OPTIONS, letters="") is None
    item = make_items("static", 1, seed=4)[0]
    replies = answer_generative(tiny, item, generative_arms([], ()), style="free")
    clip, stamps = sample_clip(render_item(item), tiny.config.num_frames)
    features = tiny.encode(torch.from_numpy(np.ascontiguousarray(clip))).patches
    tokens = tiny.visual_tokens(features, method="none")
    expected = tiny.generate(tokens, item.question, timestamps=stamps, max_new_tokens=MAX_NEW_TOKENS["free"])
    assert replies["full"].text == expected
    assert replies["full"].choice == parse_choice(expected, item.options, letters="")
    with pytest.raises(vidpool.InvalidArgumentError, match="style"):
        answer_generative(tiny, item, generative_arms([], ()), style="essay")


class StubLM:
    """A video LM that records every generate call and always writes ``reply``; compression is real."""

    def __init__(self, reply: str) -> None:
        self.reply, self.calls = reply, []
        self.config = types.SimpleNamespace(num_frames=4)
        self.input_embeddings = torch.nn.Embedding(10, 6)
        self.kept: dict[str, vidpool.Compressed] = {}

    def uses_joint(self, method: str) -> bool:
        return False

    def encode(self, frames: torch.Tensor, joint: bool = False):
        t = frames.shape[0]
        patches = torch.arange(t * 2 * 2 * 6, dtype=torch.float32).reshape(t, 2, 2, 6)
        return types.SimpleNamespace(patches=patches, joint=None)

    def compress_visual(self, features, *, method, budget, prompt, joint, **params):
        result = vidpool.compress(features, method, budget=budget, **params)
        self.kept[method] = result
        return types.SimpleNamespace(tokens=result.tokens, compressed=result)

    def generate(self, tokens, prompt, *, timestamps, max_new_tokens):
        self.calls.append(
            {
                "tokens": tokens.shape[0],
                "prompt": prompt,
                "timestamps": timestamps,
                "max_new_tokens": max_new_tokens,
            }
        )
        return self.reply


@pytest.mark.parametrize(("style", "reply"), [("letter", "B."), ("free", "It is a yellow shape, I think")])
def test_text_only_takes_the_video_arms_path(style, reply):
    """The text-only control is asked the same prompt with the same new-token limit and read by the same
    rule as every video arm; only the visual tokens and the frame times are gone."""
    item = make_items("static", 3, seed=0)[2]
    lm = StubLM(reply)
    arms = generative_arms(["spatial"], (0.5,))
    replies = answer_generative(lm, item, arms, style=style, seed=11)
    calls = {arm.key: call for arm, call in zip(arms, lm.calls, strict=True)}
    prompt = multiple_choice_prompt(item) if style == "letter" else item.question
    for key, call in calls.items():
        assert (call["prompt"], call["max_new_tokens"]) == (prompt, MAX_NEW_TOKENS[style])
        assert replies[key].text == reply
        assert replies[key].choice == parse_choice(reply, item.options, "ABCD" if style == "letter" else "")
        assert replies[key].answer.correct == (replies[key].choice == item.answer)
    assert calls["text_only"]["tokens"] == 0 and calls["text_only"]["timestamps"] is None
    assert calls["full"]["tokens"] == 4 * 2 * 2 and len(calls["full"]["timestamps"]) == 4
    assert MAX_NEW_TOKENS["free"] >= 16  # 8 cut "The orange object is a shape called a" before the option


def test_the_baselines_answer_by_generation_with_the_items_seed():
    item = make_items("static", 1, seed=0)[0]
    lm = StubLM("A")
    arms = generative_arms(["spatial", "random_drop"], (0.5,))
    assert [a.key for a in arms] == [
        "spatial@0.5",
        "random_drop@0.5",
        "frame_subsample@0.5",
        "full",
        "text_only",
    ]
    replies = answer_generative(lm, item, arms, seed=item_seed(0, 0))
    assert replies["random_drop@0.5"].answer.tokens == replies["frame_subsample@0.5"].answer.tokens == 8
    features = lm.encode(torch.zeros(4, 1, 1, 3)).patches
    expected = vidpool.compress(features, "random_drop", budget=8, seed=item_seed(0, 0))
    assert torch.equal(lm.kept["random_drop"].assign, expected.assign)
    assert torch.equal(
        lm.kept["frame_subsample"].assign, vidpool.compress(features, "frame_subsample", budget=8).assign
    )
