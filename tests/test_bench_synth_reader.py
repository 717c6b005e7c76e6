"""The trained reader's plumbing: its input from a method's provenance, padding and order invariance,
saving, the crowded stills and patch coverage it and the world's CLIP train on, and ``vidpool bench ask``'s
refusals before any model loads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vidpool
from vidpool.bench.synth.reader import (
    Reader,
    ReaderConfig,
    collate,
    full_input,
    load_reader,
    reader_input,
    save_reader,
    words,
)
from vidpool.bench.synth.stills import crowded_still, patch_coverage, random_stills
from vidpool.bench.synth.world import COLOURS, Sprite, render
from vidpool.errors import CheckpointError

VOCAB = ("red", "blue", "circle", "what", "colour", "first", "quarter", "1", "2")


def tiny_reader(dim: int = 8) -> Reader:
    torch.manual_seed(0)
    return Reader(ReaderConfig(feature_dim=dim, vocabulary=VOCAB, width=16, heads=2, bins=8, layers=1)).eval()


def test_words_and_collate_pad_and_drop_unknown_words():
    assert words("What colour is the RED circle?") == ["what", "colour", "is", "the", "red", "circle"]
    a = full_input(torch.randn(2, 2, 2, 8))
    b = full_input(torch.randn(4, 2, 2, 8))
    batch = collate([a, b], ["what colour", "unknown words only"], [["red", "blue"], ["1", "2"]], VOCAB)
    assert batch["tokens"].shape == (2, 16, 8) and batch["mask"].sum(1).tolist() == [8, 16]
    assert batch["question"][0].tolist() == [VOCAB.index("what") + 1, VOCAB.index("colour") + 1]
    assert batch["question"][1].tolist() == [0, 0]  # nothing known: an empty bag
    assert batch["options"].shape == (2, 2, 1)


def test_full_input_places_every_patch_in_time_and_space():
    x = full_input(torch.randn(4, 2, 3, 5))
    assert x.tokens.shape == (24, 5)
    # token of frame 2, row 1, column 2: frames [2/4, 3/4), centre (1.5/2, 2.5/3)
    torch.testing.assert_close(x.place[2 * 6 + 1 * 3 + 2], torch.tensor([0.5, 0.75, 0.75, 2.5 / 3]))


def test_reader_input_of_every_token_is_the_full_input():
    features = torch.randn(3, 2, 2, 6)
    full = full_input(features)
    kept = reader_input(vidpool.compress(features, "none"), features)
    torch.testing.assert_close(kept.tokens, full.tokens)
    torch.testing.assert_close(kept.place, full.place)


def test_reader_input_keeps_a_pruned_token_where_it_was_and_a_pooled_one_at_its_centre():
    features = torch.randn(4, 4, 4, 6)
    pruned = vidpool.compress(features, "random_drop", budget=5, seed=3)
    x = reader_input(pruned, features)
    assert len(x.tokens) == 5
    for token, place in zip(x.tokens, x.place):
        t, y, xx = (int(v) for v in torch.nonzero((features == token).all(-1))[0])
        torch.testing.assert_close(place, torch.tensor([t / 4, (t + 1) / 4, (y + 0.5) / 4, (xx + 0.5) / 4]))
    pooled = vidpool.compress(features, "spatiotemporal")  # a frame-mean token per frame, then per patch
    y = reader_input(pooled, features)
    assert len(y.tokens) <= pooled.num_tokens
    assert torch.all(y.place[:, 1] > y.place[:, 0])


def test_reader_ignores_padding_and_token_order():
    reader = tiny_reader()
    a, b = full_input(torch.randn(2, 2, 2, 8)), full_input(torch.randn(4, 2, 2, 8))
    q, opts = ["what colour"], [["red", "blue"]]
    alone = reader.answer([a], q, opts)
    padded = reader.answer([a, b], q * 2, opts * 2)[:1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)
    perm = torch.randperm(len(a.tokens))
    shuffled = type(a)(a.tokens[perm], a.place[perm])
    torch.testing.assert_close(reader.answer([shuffled], q, opts), alone, atol=1e-5, rtol=1e-5)


def test_reader_answers_with_no_tokens_at_all():
    reader = tiny_reader()
    empty = reader_input(None, torch.zeros(2, 2, 2, 8))
    scores = reader.answer([empty], ["what colour"], [["red", "blue", "1"]])
    assert scores.shape == (1, 3) and torch.isfinite(scores).all()


def test_save_and_load_round_trip(tmp_path):
    reader = tiny_reader()
    save_reader(reader, tmp_path)
    back = load_reader(tmp_path)
    assert back.config == reader.config
    x = full_input(torch.randn(2, 2, 2, 8))
    torch.testing.assert_close(
        back.answer([x], ["what colour"], [["red", "blue"]]),
        reader.half().float().answer([x], ["what colour"], [["red", "blue"]]),
        atol=1e-3,
        rtol=1e-3,
    )
    with pytest.raises(CheckpointError, match="train_synth_reader"):
        load_reader(tmp_path / "missing")


def test_patch_coverage_counts_visible_pixels_per_colour():
    red = Sprite("square", COLOURS["red"], 0.5, 0.5, 1.0)  # 0.9 of the side: fills the middle
    blue = Sprite("square", COLOURS["blue"], 1 / 16, 1 / 16, 1 / 8 / 0.9)  # exactly patch (0, 0)
    cover = patch_coverage([red, blue], grid=8)
    names = list(COLOURS)
    assert cover.shape == (8, 8, len(COLOURS))
    assert cover[0, 0, names.index("blue")] == pytest.approx(1.0)
    assert cover[0, 0, names.index("red")] == 0.0  # hidden beneath the blue one
    assert cover[4, 4, names.index("red")] == pytest.approx(1.0)
    assert np.all(cover.sum(-1) <= 1.0 + 1e-6)
    # it agrees with the pixels that render draws
    frame = render("plain", [red, blue], 64, seed=1)
    is_red = (frame == COLOURS["red"]).all(-1).reshape(8, 8, 8, 8).mean(axis=(1, 3))
    np.testing.assert_allclose(cover[..., names.index("red")], is_red)


def test_crowded_stills_hold_distinct_colours_and_stills_know_their_object():
    rng = np.random.default_rng(5)
    for _ in range(20):
        frame, sprites = crowded_still(rng)
        coloured = [s.rgb for s in sprites if s.rgb in COLOURS.values()]
        assert 1 <= len(coloured) <= 3 and len(set(coloured)) == len(coloured)
        assert frame.shape == (64, 64, 3)
    frames, stills = random_stills(7, 10)
    for frame, still in zip(frames, stills):
        y, x = int(still.sprite.y * 64), int(still.sprite.x * 64)
        assert tuple(frame[y, x]) == COLOURS[still.colour]  # the object's centre pixel is its fill


class _Spy:
    """A stand-in reader: right when it sees any token, wrong otherwise; records what it was given."""

    def __init__(self):
        self.calls = []

    def answer(self, inputs, questions, options):
        self.calls.append([len(x.tokens) for x in inputs])
        rows = torch.zeros(len(inputs), len(options[0]))
        for i, x in enumerate(inputs):
            rows[i, self.right if len(x.tokens) else (self.right + 1) % len(options[0])] = 1.0
        return rows


def test_answer_item_scores_every_arm_with_the_reader_in_batches():
    from vidpool.bench.arms import answer_item, arms_for
    from vidpool.bench.synth.tasks import make_items

    item = make_items("static", 1, seed=0)[0]
    features, joint = torch.randn(8, 2, 2, 6), torch.randn(8, 2, 2, 5)
    spy = _Spy()
    spy.right = item.answer
    arms = arms_for(["spatial", "random_drop"], [1.0, 0.25])
    answers = answer_item(
        item,
        0,
        features,
        joint,
        arms,
        lambda t: torch.randn(len(t), 5),
        shuffled=(features.flip(0), joint.flip(0)),
        reader=spy,
    )
    assert list(answers) == [a.key for a in arms]
    assert answers["text_only"].correct is False and answers["full"].correct is True
    assert answers["random_drop@0.25"].tokens == 8 and answers["random_drop@0.25"].correct is True
    seen = [n for call in spy.calls for n in call]
    # the arms that keep every token in place are read once (spatial@1, random_drop@1,
    # frame_subsample@1, full); the shuffled frames are another input of as many tokens
    assert seen.count(32) == 2 and set(seen) >= {0, 4, 8}
    assert answers["middle_frame"].tokens == 4 and answers["spatial@1"].correct is True


def test_bench_ask_refuses_bad_input_before_any_model_loads(tmp_path, monkeypatch, capsys):
    import vidpool.bench.synth.reader as reader_module
    from vidpool.cli import main

    def boom(*a, **k):
        raise AssertionError("a model loaded")

    monkeypatch.setattr(reader_module, "load_reader", boom)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not checked beyond being a non-empty file")
    cases = [
        ([str(tmp_path / "missing.mp4"), "--question", "q", "--options", "a,b"], "not found"),
        ([str(video), "--question", "q", "--options", "a"], "at least two options"),
        (
            [str(video), "--question", "q", "--options", "a,b", "--method", "nope"],
            "unknown compression method",
        ),
        ([str(video), "--question", "q", "--options", "a,b", "--budget", "4"], "needs --method"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(["bench", "ask", *argv])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def _drawn(path, frames: int, at):
    """A video drawn by the world's rules without its generator: a red circle on plain black, 128 px at
    8 fps, its centre at ``at(t)`` (fractions of the side) in frame ``t``."""
    from PIL import Image, ImageDraw

    from vidpool.video import write_video

    images = []
    for t in range(frames):
        image = Image.new("RGB", (128, 128), (0, 0, 0))
        x, y = at(t)
        r = 0.18 * 128
        ImageDraw.Draw(image).ellipse(
            [x * 128 - r, y * 128 - r, x * 128 + r, y * 128 + r], fill=(220, 30, 30)
        )
        images.append(np.asarray(image))
    write_video(path, images, fps=8)
    return path


@pytest.mark.parametrize(
    "question,options,at,truth",
    [
        ("What colour is the large shape?", ("green", "red", "blue", "yellow"), lambda t: (0.5, 0.5), "red"),
        (
            "Which way does the red circle move?",
            ("left", "right", "up", "down"),
            lambda t: (0.22 + 0.56 * t / 15, 0.5),
            "right",
        ),
        (
            "Which way does the red circle move?",
            ("left", "right", "up", "down"),
            lambda t: (0.5, 0.78 - 0.56 * t / 15),
            "up",
        ),
    ],
)
def test_bench_ask_answers_about_a_video_drawn_outside_the_generator(
    tmp_path, capsys, question, options, at, truth
):
    pytest.importorskip("open_clip")
    import json

    from vidpool.cli import main

    video = _drawn(tmp_path / "drawn.mp4", 16, at)
    assert (
        main(["bench", "ask", str(video), "--question", question, "--options", ",".join(options), "--json"])
        == 0
    )
    reply = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert reply["answer"] == truth and reply["tokens"] == 16 * 64
    assert set(reply["scores"]) == set(options)
    assert (
        main(
            [
                "bench",
                "ask",
                str(video),
                "--question",
                question,
                "--options",
                ",".join(options),
                "--method",
                "random_drop",
                "--budget",
                "64",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip().splitlines()[-1] in options


def test_answer_item_feeds_a_multi_layer_method_the_layers_it_reads():
    from vidpool.bench.arms import Arm, answer_item
    from vidpool.bench.synth.tasks import make_items
    from vidpool.compression.registry import get_method

    item = make_items("static", 1, seed=0)[0]
    features = torch.randn(8, 8, 8, 128)
    asked = []

    def layered(which):
        asked.append(which)
        return torch.cat([features] * len(which), dim=-1)

    spy = _Spy()
    spy.right = item.answer
    arm = Arm("multilayer", 0.25)
    answers = answer_item(
        item, 0, features, features, [arm], lambda t: torch.randn(len(t), 128), reader=spy, layered=layered
    )
    assert asked == [get_method("multilayer").input_layers] and answers[arm.key].tokens == 8 * 16
    with pytest.raises(ValueError, match="layered"):
        answer_item(item, 0, features, features, [arm], lambda t: torch.randn(len(t), 128), reader=spy)
