"""``vidpool bench ask``: the benchmark's trained reader answers a question about any video file.

The video is read at the world's frame rate (8 fps, at most :data:`MAX_FRAMES` frames, spread evenly
over a longer video), encoded by the world's CLIP, optionally compressed by a method at a budget, and
the reader (:mod:`vidpool.bench.synth.reader`) scores the options. It knows the synthetic world only:
a video drawn by the world's rules (``docs/synth.md``: dark plain background, the documented RGB fills
and shapes, square frames) and a question worded as in the families' table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpool.options import comma_list, method_name, positive_int

__all__ = ["FPS", "MAX_FRAMES", "AskResult", "add_ask_parser", "ask"]

#: the world's frame rate: videos are read at it
FPS = 8.0
#: the most frames read (the benchmark's longest family has 128)
MAX_FRAMES = 128

_EPILOG = """examples:
  vidpool bench ask clip.mp4 --question "How many times does the red circle flash?" --options 1,2,3,4
  vidpool bench ask clip.mp4 --question "Which way does the red circle move?" \\
      --options left,right,up,down --method random_drop --budget 64 --json

Prints the chosen option; --json prints one line {"answer": ..., "scores": {option: score}, "tokens": N}.
"""


@dataclass(frozen=True)
class AskResult:
    """The reader's answer: the chosen option, every option's score (logit) and the tokens it read."""

    answer: str
    scores: dict[str, float]
    tokens: int
    frames: int

    def to_json(self) -> str:
        return json.dumps({"answer": self.answer, "scores": self.scores, "tokens": self.tokens})


def ask(
    video: str | Path,
    question: str,
    options: Sequence[str],
    *,
    method: str | None = None,
    budget: int | None = None,
    reader: Any = None,
    encoder: Any = None,
) -> AskResult:
    """Answer ``question`` about ``video`` by picking one of ``options``.

    ``method`` and ``budget`` compress the encoded tokens first (``vidpool.compress``); without a method
    the reader sees every token. ``reader`` and ``encoder`` default to the shipped reader and the
    world's CLIP (pass them to answer many questions without reloading).
    """
    import vidpool
    from vidpool.bench.synth.reader import check_options, full_input, load_reader, reader_input
    from vidpool.errors import InvalidArgumentError
    from vidpool.video import VideoReader

    check_options(options)
    if budget is not None and method is None:
        raise InvalidArgumentError("--budget needs --method: the budget of which compression method?")
    if method is not None:
        vidpool.get_method(method)
    reader = reader or load_reader()
    if encoder is None:
        from vidpool.bench.clip import load_clip

        encoder, _ = load_clip(None, None)
    with VideoReader(video) as source:
        frames = source.sample(fps=FPS, max_frames=MAX_FRAMES, resize=encoder.image_size).frames
    import torch

    frames = torch.as_tensor(frames)
    features = encoder.encode_frames(frames).patches.float()
    if method is None:
        tokens = full_input(features)
    else:
        extra: dict[str, Any] = {}
        if vidpool.get_method(method).uses_scores:
            joint = encoder.encode_frames(frames, joint=True).joint.float()
            question_emb = encoder.encode_text([question])[0].float()
            extra["scores"] = vidpool.prompt_scores(joint, question_emb, logit_scale=encoder.logit_scale)
        tokens = reader_input(vidpool.compress(features, method, budget=budget, **extra), features)
    scores = reader.answer([tokens], [question], [list(options)])[0]
    best = int(scores.argmax())
    return AskResult(
        answer=options[best],
        scores={o: round(float(s), 4) for o, s in zip(options, scores)},
        tokens=len(tokens.tokens),
        frames=len(frames),
    )


def add_ask_parser(bench_sub: Any) -> argparse.ArgumentParser:
    """Add ``ask`` to ``vidpool bench``'s sub-parsers."""
    p = bench_sub.add_parser(
        "ask",
        help="the benchmark's trained reader answers a multiple-choice question about a video",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("video", help="a video file drawn by the world's rules (docs/synth.md)")
    p.add_argument("--question", required=True, help="the question, worded as in docs/synth.md's families")
    p.add_argument(
        "--options", required=True, type=comma_list(str), metavar="A,B,C,D", help="2 or more options"
    )
    p.add_argument("--method", type=method_name, help="compress the tokens with this method first")
    p.add_argument("--budget", type=positive_int, metavar="N", help="the method's token budget")
    p.add_argument("--json", action="store_true", help="print one JSON line instead of the answer")
    p.set_defaults(handler=_cmd_ask, parser=p)
    return p


def _cmd_ask(args: argparse.Namespace) -> int:
    from vidpool.errors import VidpoolError
    from vidpool.video.info import check_path

    try:  # bad input is refused before any model loads
        check_path(args.video)
    except VidpoolError as exc:
        args.parser.error(str(exc))
    if len(args.options) < 2:
        args.parser.error(f"--options needs at least two options separated by commas, got {args.options}")
    if args.budget is not None and args.method is None:
        args.parser.error("--budget needs --method: the budget of which compression method?")
    result = ask(args.video, args.question, args.options, method=args.method, budget=args.budget)
    print(result.to_json() if args.json else result.answer)
    return 0
