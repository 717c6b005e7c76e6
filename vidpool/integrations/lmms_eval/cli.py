"""``vidpool bench export-lmms``: the synthetic benchmark written as an offline lmms-eval task.

The ``vidpool`` command adds it to ``vidpool bench`` (:func:`add_export_parser`); it lives here, with
the export it runs, so that the benchmark itself never imports this integration.
"""

from __future__ import annotations

import argparse
from typing import Any

from vidpool.bench.cli import eval_seed, family_name
from vidpool.options import comma_list, method_name, positive_int

__all__ = ["add_export_parser"]

_EXPORT_LMMS_EPILOG = """example:
  vidpool bench export-lmms --out bench/lmms --items 50 --families static,small,count

Writes the synthetic benchmark's questions as a local lmms-eval task (YAML, utils.py, JSONL, MP4s)
and prints the lmms-eval command that runs it with the vidpool model, offline. The task
<name>_choice scores each option's letter by likelihood instead (lmms-eval --force_simple).
"""


def add_export_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``vidpool bench export-lmms``: the synthetic benchmark as an lmms-eval task folder."""
    p = subparsers.add_parser(
        "export-lmms",
        help="write the synthetic benchmark as an offline lmms-eval task",
        epilog=_EXPORT_LMMS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the task into")
    p.add_argument("--items", type=positive_int, default=20, metavar="N", help="questions per family (20)")
    p.add_argument(
        "--families", type=comma_list(family_name), metavar="A,B", help="question families (default: all)"
    )
    p.add_argument(
        "--seed",
        type=eval_seed,
        default=0,
        help="item seed: 0, the development seed (default), or 2000003, the final seed; training seeds are refused",
    )
    p.add_argument(
        "--num-frames", type=positive_int, metavar="N", help="frames of each video (default: the family's)"
    )
    p.add_argument("--side", type=positive_int, default=128, metavar="PX", help="video side in pixels (128)")
    p.add_argument("--fps", type=positive_int, default=8, help="video frame rate (8)")
    p.add_argument("--name", default="vidpool_synth", help="lmms-eval task name (vidpool_synth)")
    p.add_argument("--model", help="checkpoint folder or model name for the printed command")
    p.add_argument("--method", type=method_name, help="compression method for the printed command")
    p.add_argument("--budget", type=positive_int, metavar="N", help="token budget for the printed command")
    p.set_defaults(handler=_cmd_bench_export_lmms, parser=p)
    return p


def _cmd_bench_export_lmms(args: argparse.Namespace) -> int:
    import shlex

    from vidpool.bench.synth import tasks
    from vidpool.integrations.lmms_eval.export import export_task, lmms_eval_command

    families = args.families or list(tasks.FAMILIES)
    items = [
        item
        for family in dict.fromkeys(families)
        for item in tasks.make_items(family, args.items, seed=args.seed, num_frames=args.num_frames)
    ]
    folder = export_task(items, args.out, name=args.name, side=args.side, fps=args.fps)
    print(f"wrote {len(items)} questions ({', '.join(dict.fromkeys(families))}) to {folder}")
    run = {"name": args.name, "model": args.model, "method": args.method, "budget": args.budget}
    print("run it (answers parsed from generated text):")
    print("  " + shlex.join(lmms_eval_command(folder, **run)))
    print("or score each option's letter by likelihood:")
    print("  " + shlex.join(lmms_eval_command(folder, choice=True, **run)))
    return 0
