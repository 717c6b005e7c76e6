"""How vidpool-synth answers videos drawn outside vidpool's generator, by the rules of docs/synth.md.

    python scripts/eval_drawn.py                      # 8 videos a family, vidpool-synth, every token
    python scripts/eval_drawn.py --count 16 --families count,direction --model DIR

Each video is drawn with Pillow (not with ``vidpool.bench.synth``): a plain black 128 x 128 frame at 8
fps, flat fills of the documented colours, the documented shapes, one question a video worded as the
families' table in docs/synth.md words it. Written as H.264 (``vidpool.video.write_video``) and asked through
:class:`vidpool.VideoChat` like any file, free-form, with every visual token; the reply counts as the
one option it names (the benchmark's rule). Prints accuracy per family with a 95% Wilson interval and,
with ``--json``, one JSON line.

What is drawn (each with its own random draw of ``--seed``):

- ``static``: one still shape, 40% of the side: "What colour is the shape?" / "What shape is it?";
- ``direction``: a shape 30% of the side crossing from 0.22 to 0.78 of the side over 16 frames;
- ``count``: a shape that appears 1-4 times for 2 frames each in 32 frames, at least 3 frames apart;
- ``change``: a still shape that takes another colour for 3 frames of 16 (never the first, last or
  middle frame) and turns back;
- ``needle_time``: a shape shown for 4 frames of 64, inside one quarter;
- ``order``: three shapes of different colours, 4 frames each, one after another in 32 frames;
- ``needle``: a shape shown all along and another shown for 4 frames of 64: "Which shape appears for
  only a moment?" (options: colour and shape).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

# the documented table of docs/synth.md, typed as a reader of it would
RGB = {
    "red": (220, 30, 30),
    "green": (30, 190, 50),
    "blue": (40, 70, 235),
    "yellow": (235, 215, 30),
    "purple": (150, 50, 200),
    "orange": (245, 130, 20),
    "cyan": (30, 210, 220),
    "white": (245, 245, 245),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
SIDE, FPS = 128, 8
QUARTERS = ("first quarter", "second quarter", "third quarter", "fourth quarter")
FAMILIES = ("static", "direction", "count", "change", "needle_time", "order", "needle")


def draw(shapes: list[tuple[str, str, float, float, float]]) -> np.ndarray:
    """One ``[SIDE, SIDE, 3]`` frame: ``(colour, shape, x, y, size)`` each, centre and extent as
    fractions of the side, on black."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (SIDE, SIDE), (0, 0, 0))
    pen = ImageDraw.Draw(image)
    for colour, shape, x, y, size in shapes:
        cx, cy, r = x * SIDE, y * SIDE, size * SIDE / 2
        fill = RGB[colour]
        if shape == "circle":
            pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif shape == "square":
            pen.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
        elif shape == "triangle":  # apex up, base as wide as it is tall
            pen.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)
        elif shape == "diamond":
            pen.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill)
        else:  # cross: a plus sign, arms a third of its extent wide
            arm = r / 3
            pen.rectangle([cx - r, cy - arm, cx + r, cy + arm], fill=fill)
            pen.rectangle([cx - arm, cy - r, cx + arm, cy + r], fill=fill)
    return np.asarray(image)


def _runs(rng: np.random.Generator, n: int, length: int, gap: int, total: int) -> list[int]:
    """Starts of ``n`` runs of ``length`` frames in ``total``, at least ``gap`` frames apart."""
    while True:
        starts = np.sort(rng.choice(total - length + 1, size=n, replace=False))
        if n == 1 or np.all(np.diff(starts) >= length + gap):
            return [int(s) for s in starts]


def make_case(family: str, rng: np.random.Generator):
    """``(frames [T, SIDE, SIDE, 3], question, options, answer index)`` of one drawn video."""
    colour, shape = str(rng.choice(list(RGB))), str(rng.choice(SHAPES))
    where = (float(rng.uniform(0.3, 0.7)), float(rng.uniform(0.3, 0.7)))
    blank = [draw([])]
    if family == "static":
        frames = np.stack([draw([(colour, shape, *where, 0.4)])] * 8)
        if rng.random() < 0.5:
            return frames, "What colour is the shape?", list(RGB), list(RGB).index(colour)
        return frames, "What shape is it?", list(SHAPES), SHAPES.index(shape)
    if family == "direction":
        way = str(rng.choice(["left", "right", "up", "down"]))
        a, b = (0.22, 0.78) if way in ("right", "down") else (0.78, 0.22)
        across = float(rng.uniform(0.3, 0.7))
        frames = []
        for t in range(16):
            p = a + (b - a) * t / 15
            xy = (p, across) if way in ("left", "right") else (across, p)
            frames.append(draw([(colour, shape, *xy, 0.3)]))
        options = ["left", "right", "up", "down"]
        return np.stack(frames), f"Which way does the {colour} {shape} move?", options, options.index(way)
    if family == "count":
        n = int(rng.integers(1, 5))
        on = {s + k for s in _runs(rng, n, 2, 3, 32) for k in range(2)}
        frames = np.stack([draw([(colour, shape, *where, 0.25)]) if t in on else blank[0] for t in range(32)])
        options = ["1", "2", "3", "4"]
        return frames, f"How many times does the {colour} {shape} flash?", options, n - 1
    if family == "change":
        into = str(rng.choice([c for c in RGB if c != colour]))
        start = int(rng.choice([t for t in range(1, 13) if not t <= 8 < t + 3]))
        frames = np.stack(
            [draw([(into if start <= t < start + 3 else colour, shape, *where, 0.3)]) for t in range(16)]
        )
        options = [into, *rng.choice([c for c in RGB if c not in (into, colour)], 3, replace=False)]
        options = [str(o) for o in rng.permutation(options)]
        return frames, f"What colour does the {colour} {shape} turn into?", options, options.index(into)
    if family == "needle_time":
        quarter = int(rng.integers(4))
        start = quarter * 16 + int(rng.integers(0, 13))
        frames = np.stack(
            [draw([(colour, shape, *where, 0.25)]) if start <= t < start + 4 else blank[0] for t in range(64)]
        )
        return (
            frames,
            f"In which quarter of the video does the {colour} {shape} appear?",
            list(QUARTERS),
            quarter,
        )
    if family == "order":
        colours = [str(c) for c in rng.choice(list(RGB), 3, replace=False)]
        slots = rng.permutation([(0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)])[:3]
        starts = _runs(rng, 3, 4, 2, 32)
        kinds = [str(k) for k in rng.choice(SHAPES, 3)]
        frames = []
        for t in range(32):
            shown = [
                (c, kind, float(s[0]), float(s[1]), 0.22)
                for c, kind, s, a in zip(colours, kinds, slots, starts)
                if a <= t < a + 4
            ]
            frames.append(draw(shown))
        absent = str(rng.choice([c for c in RGB if c not in colours]))
        options = [str(o) for o in rng.permutation([*colours, absent])]
        question = "Three shapes appear one after another. What colour is the one that appears first?"
        return np.stack(frames), question, options, options.index(colours[0])
    if family == "needle":
        other = str(rng.choice([c for c in RGB if c != colour]))
        still = (other, str(rng.choice(SHAPES)), 0.3, 0.5, 0.3)
        start = int(rng.integers(4, 57))
        frames = np.stack(
            [
                draw([still, (colour, shape, 0.72, 0.5, 0.2)] if start <= t < start + 4 else [still])
                for t in range(64)
            ]
        )
        wrong = [c for c in RGB if c not in (colour, other)]
        options = [
            f"{colour} {shape}",
            *(f"{c} {rng.choice(SHAPES)}" for c in rng.choice(wrong, 3, replace=False)),
        ]
        options = [str(o) for o in rng.permutation(options)]
        return frames, "Which shape appears for only a moment?", options, options.index(f"{colour} {shape}")
    raise ValueError(family)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--count", type=int, default=8, help="videos a family")
    parser.add_argument("--seed", type=int, default=0, help="the drawing's random seed")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: vidpool-synth)")
    parser.add_argument("--frames", type=int, default=None, help="frames sampled (default: the model's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    families = args.families.split(",")
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")

    import torch

    from vidpool.bench.generative import parse_choice
    from vidpool.bench.stats import wilson
    from vidpool.llm import load_model
    from vidpool.models import build_model
    from vidpool.pipeline import VideoChat
    from vidpool.quiet import quiet_libraries
    from vidpool.video import write_video

    torch.manual_seed(0)
    folder = Path(args.model) if args.model else build_model("vidpool-synth")
    with quiet_libraries():
        model = load_model(folder, device="cpu")
    results = {}
    with tempfile.TemporaryDirectory(prefix="vidpool-drawn-") as tmp:
        for family in families:
            rng = np.random.default_rng([args.seed, FAMILIES.index(family)])
            right = []
            for i in range(args.count):
                frames, question, options, answer = make_case(family, rng)
                video = write_video(Path(tmp) / f"{family}-{i}.mp4", frames, fps=FPS, crf=12)
                chat = VideoChat(video, model, num_frames=args.frames, method="none", max_new_tokens=16)
                reply = chat.ask(question)
                right.append(parse_choice(str(reply), options, letters="") == answer)
            k, n = int(sum(right)), len(right)
            low, high = wilson(k, n)
            results[family] = {"right": k, "n": n, "accuracy": k / n, "interval": [low, high]}
            print(f"{family:12s} {k:3d} of {n:3d}  {k / n:.2f} [{low:.2f}, {high:.2f}]", flush=True)
    if args.json:
        print(
            json.dumps({"model": str(folder), "frames": args.frames, "seed": args.seed, "families": results})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
