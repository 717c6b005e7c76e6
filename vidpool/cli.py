"""The ``vidpool`` command: list methods, plan a run, chat about a video.

Exit status: 0 on success, 2 for usage errors (argparse), 1 for failures with a one-line reason on
stderr (the traceback only with ``--debug``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["DEFAULT_MODEL", "build_parser", "main"]

DEFAULT_MODEL = os.environ.get("VIDPOOL_MODEL", "checkpoints/smollm2-native")

_MAIN_EPILOG = """examples:
  vidpool methods
  vidpool plan clip.mp4 --model checkpoints/smollm2-native --gpu-memory 24GB
  vidpool chat clip.mp4 "What happens in this video?" --model checkpoints/smollm2-native
"""
_METHODS_EPILOG = "example:\n  vidpool methods\n"
_PLAN_EPILOG = """example:
  vidpool plan clip.mp4 --model checkpoints/smollm2-native --gpu-memory 24GB --frames 64

Prints frames to sample, encoder batch, compression and predicted peak memory by term. Nothing is
loaded or decoded beyond the video's header and the model's config files. --gpu-memory plans for a
GPU of that size even on a machine without one.
"""
_CHAT_EPILOG = """example:
  vidpool chat clip.mp4 "What happens in this video?" --model checkpoints/smollm2-native --frames 8

Streams one answer to the terminal. The plan is printed to stderr with --show-plan.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _method(text: str) -> str:
    import vidpool

    if text not in vidpool.list_methods():
        raise argparse.ArgumentTypeError(
            f"unknown method {text!r}; choose from {', '.join(vidpool.list_methods())}"
        )
    return text


def _memory(text: str) -> int:
    from vidpool.schedule.device import parse_bytes

    try:
        return parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_run_options(p: argparse.ArgumentParser, *, model_required: bool) -> None:
    p.add_argument("video", help="path of a video file")
    p.add_argument(
        "--model",
        required=model_required,
        default=None if model_required else DEFAULT_MODEL,
        help="checkpoint folder (native vidpool.json or a transformers LLaVA folder)"
        + ("" if model_required else f" (default: {DEFAULT_MODEL}, or $VIDPOOL_MODEL)"),
    )
    p.add_argument(
        "--device", default=None, help="cpu or cuda[:N] (default: cuda if --gpu-memory or available)"
    )
    p.add_argument(
        "--gpu-memory", type=_memory, metavar="SIZE", help="GPU memory to plan for, e.g. 24GB or 16GiB"
    )
    p.add_argument(
        "--memory", type=_memory, metavar="SIZE", help="memory to plan for on --device (e.g. 8GiB)"
    )
    p.add_argument(
        "--frames", type=_positive_int, metavar="N", help="frames to sample (default: the model's)"
    )
    p.add_argument(
        "--budget", type=_positive_int, metavar="N", help="visual-token budget (default: the model's)"
    )
    p.add_argument(
        "--method", type=_method, help="compression method (see 'vidpool methods'; default: the model's)"
    )
    p.add_argument(
        "--max-new-tokens", type=_positive_int, default=256, metavar="N", help="answer length (default 256)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vidpool`` command."""
    parser = argparse.ArgumentParser(
        prog="vidpool",
        description="Named, budgeted visual-token compression for video LLMs.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    raw = argparse.RawDescriptionHelpFormatter

    methods_p = sub.add_parser(
        "methods", help="list the compression methods", epilog=_METHODS_EPILOG, formatter_class=raw
    )

    plan_p = sub.add_parser(
        "plan", help="print the memory plan for a video and a model", epilog=_PLAN_EPILOG, formatter_class=raw
    )
    _add_run_options(plan_p, model_required=True)
    plan_p.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")

    chat_p = sub.add_parser(
        "chat", help="answer one question about a video, streaming", epilog=_CHAT_EPILOG, formatter_class=raw
    )
    _add_run_options(chat_p, model_required=False)
    chat_p.add_argument("question", help="the question, quoted")
    chat_p.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature (default 0: greedy)"
    )
    chat_p.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    chat_p.add_argument("--show-plan", action="store_true", help="print the plan table to stderr first")
    for p in (methods_p, plan_p, chat_p):
        p.add_argument(
            "--debug",
            action="store_true",
            default=argparse.SUPPRESS,
            help="show the full traceback on errors",
        )
    return parser


def _version() -> str:
    from vidpool._version import __version__

    return f"vidpool {__version__}"


def _device(args: argparse.Namespace) -> str:
    if args.device:
        return args.device
    if args.gpu_memory is not None:
        return "cuda"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _max_memory(args: argparse.Namespace, device: str) -> int | None:
    if device.startswith("cuda") and args.gpu_memory is not None:
        return args.gpu_memory
    return args.memory


def _cmd_methods(args: argparse.Namespace) -> int:
    import vidpool

    names = vidpool.list_methods()
    width = max(len(n) for n in names)
    for name in names:
        summary = getattr(vidpool.get_method(name), "summary", "")
        print(f"{name:<{width}}  {summary}".rstrip())
    return 0


def _plan(args: argparse.Namespace, model) -> object:
    from vidpool.schedule import plan

    device = _device(args)
    return plan(
        args.video,
        model,
        device,
        budget_tokens=args.budget,
        max_memory=_max_memory(args, device),
        num_frames=args.frames,
        method=args.method,
        max_new_tokens=args.max_new_tokens,
    )


def _cmd_plan(args: argparse.Namespace) -> int:
    import json

    result = _plan(args, args.model)
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else result.table())
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from vidpool.pipeline import VideoChat, load, load_kwargs

    device = _device(args)
    # plan from the config files first: the placement decides how the weights are loaded
    model = load(args.model, device=device, **load_kwargs(_plan(args, args.model)))
    chat = VideoChat(args.video, model, device=device, plan=_plan(args, model))
    if args.show_plan:
        print(chat.plan.table(), file=sys.stderr)
    for piece in chat.ask(args.question, stream=True, temperature=args.temperature, seed=args.seed):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


_COMMANDS = {"methods": _cmd_methods, "plan": _cmd_plan, "chat": _cmd_chat}


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _quiet_progress_bars() -> None:
    """Loading progress bars (GGUF de-quantisation, weight loading) would interleave with the answer."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # already imported: its own bars no longer read the environment
        sys.modules["transformers"].utils.logging.disable_progress_bar()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vidpool`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.debug:
        _quiet_progress_bars()
    try:
        return _COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print("vidpool: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from vidpool.errors import VidpoolError

        kind = "error" if isinstance(exc, VidpoolError) else f"error ({type(exc).__name__})"
        print(f"vidpool: {kind}: {_one_line(exc)} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
