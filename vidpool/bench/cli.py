"""``vidpool bench``: ``fidelity`` (the command-line face of :func:`vidpool.bench.fidelity.run_fidelity`),
``ask`` (:mod:`vidpool.bench.ask`: the trained reader answers about any video);
``export-lmms`` is added by the lmms-eval integration (:mod:`vidpool.integrations.lmms_eval.cli`).

Every option is checked (exit 2) before the CLIP loads or a frame is rendered. Option types are
:mod:`vidpool.options`' (lists are comma-separated on every command).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from vidpool.options import check_device, checked, comma_list, default_device, method_name, positive_int

__all__ = ["add_bench_parser", "eval_seed", "family_name", "settings_from_args"]

_BENCH_EPILOG = """example:
  vidpool bench fidelity --quick
"""
_FIDELITY_EPILOG = """examples:
  vidpool bench fidelity --quick                        # about 40 questions a family, 3 budgets
  vidpool bench fidelity --out results/fidelity         # the full run: 300 questions a cell
  vidpool bench fidelity --clip ViT-B-16 --weights ~/ViT-B-16.safetensors --device cuda
  vidpool bench fidelity --families count,order --methods spatial,progressive --budgets 1,0.25,0.0625
  vidpool bench fidelity --model vidpool-synth --budgets 1,0.25,0.1,0.05 --items 60 --jobs 2

Writes results.json (every cell with its 95% Wilson interval and its units, fidelity with a cluster
bootstrap interval, the paired comparisons with Holm-adjusted p, memory at 256 frames), table.txt and
accuracy_<family>.png into --out, and prints the table. The default CLIP is the
synthetic world's (vidpool/models/synth/clip.safetensors, trained by scripts/train_synth_clip.py);
--weights random runs an untrained one, to try the benchmark itself.

--model also asks a video LM every question as multiple choice and reads the letter it generates
(greedy): its accuracy per cell, the same intervals and comparisons, next to the retrieval scorer's,
with the text-only control (the LM without the video). Its budgets are fractions of the model's own
frames x patches; --no-retrieval runs only the LM.

--jobs N answers in N processes (the retrieval scorer and the LM), each loading the CLIP, the
reader and the LM once; the results are those of one process.
"""


def _fraction(text: str) -> float:
    """``0.25`` or ``25%``: a share of the full tokens in (0, 1]."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction such as 0.25 or 25%, got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(
            f"a budget is a fraction of the full tokens in (0, 1] (0.25 or 25%), got {text!r}"
        )
    return value


def family_name(text: str) -> str:
    """``text`` if it names a question family of the synthetic benchmark (an argparse type)."""
    from vidpool.bench.synth.tasks import FAMILIES

    if text not in FAMILIES:
        raise argparse.ArgumentTypeError(f"unknown family {text!r}; choose from {', '.join(FAMILIES)}")
    return text


def eval_seed(text: str) -> int:
    """An item seed a benchmark may evaluate on (an argparse type): the development seed, the final
    one or another; a training seed is refused (:func:`vidpool.bench.synth.seeds.check_eval_seed`)."""
    from vidpool.bench.synth.seeds import check_eval_seed

    return checked(int, check_eval_seed)(text)


# The device must be present here: the run starts right after parsing.
_device = checked(str, check_device)


def add_bench_parser(
    sub: Any, extensions: Sequence[Callable[[Any], argparse.ArgumentParser]] = ()
) -> list[argparse.ArgumentParser]:
    """Add ``bench`` with ``fidelity`` to the ``vidpool`` sub-parsers; each of ``extensions`` adds one
    more benchmark command to ``bench``'s sub-parsers (the lmms-eval integration adds ``export-lmms``).
    Returns the parsers made."""
    raw = argparse.RawDescriptionHelpFormatter
    bench_p = sub.add_parser(
        "bench", help="benchmarks of the compression methods", epilog=_BENCH_EPILOG, formatter_class=raw
    )
    bench_sub = bench_p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    p = bench_sub.add_parser(
        "fidelity",
        help="accuracy against visual tokens on generated videos with known answers",
        epilog=_FIDELITY_EPILOG,
        formatter_class=raw,
    )
    p.add_argument(
        "--clip",
        metavar="CONFIG_OR_NAME",
        help="an open_clip model name (ViT-B-16), a vidpool config or a JSON config (default: the world's CLIP)",
    )
    p.add_argument(
        "--weights",
        metavar="PATH",
        help="the CLIP's .safetensors weights (default: the world's trained CLIP); 'random' for an untrained one",
    )
    p.add_argument(
        "--families", type=comma_list(family_name), metavar="A,B", help="question families (default: all)"
    )
    p.add_argument(
        "--methods", type=comma_list(method_name), metavar="A,B", help="methods (default: all registered)"
    )
    p.add_argument(
        "--budgets",
        type=comma_list(_fraction),
        metavar="F,F",
        help="budget fractions of the full tokens (default 1,0.5,0.25,0.1,0.0625,0.05,0.03; --quick 1,0.25,0.0625)",
    )
    p.add_argument(
        "--items", type=positive_int, metavar="N", help="questions per family (default 300; --quick 40)"
    )
    p.add_argument(
        "--frames",
        type=positive_int,
        metavar="N",
        help="frames of every video (default: each family's own; --quick: at most 20)",
    )
    p.add_argument(
        "--seed",
        type=eval_seed,
        default=0,
        help="item seed of the questions, controls and intervals: 0, the development seed (default; every "
        "choice is made on it), or 2000003, the final seed (the published run only); training seeds "
        "(1..999999) are refused",
    )
    p.add_argument(
        "--quick", action="store_true", help="a few minutes on a CPU: fewer questions, budgets, frames"
    )
    p.add_argument(
        "--out", default="bench-fidelity", metavar="DIR", help="output folder (default ./bench-fidelity)"
    )
    p.add_argument(
        "--device", type=_device, help="cpu, cuda or cuda:N (default: cuda when torch sees a GPU, else cpu)"
    )
    p.add_argument("--resamples", type=positive_int, default=2000, metavar="N", help="bootstrap resamples")
    p.add_argument(
        "--model",
        metavar="PATH_OR_NAME",
        help="a video LM that also answers every question by generation: a checkpoint folder or a model "
        "name from 'vidpool models list' (e.g. vidpool-synth)",
    )
    p.add_argument(
        "--model-frames", type=positive_int, metavar="N", help="frames the LM sees (default: the model's)"
    )
    p.add_argument(
        "--model-prompt",
        choices=("letter", "free"),
        default="letter",
        help="letter: the lettered options, the letter read (default); free: the question alone, the "
        "option its reply names",
    )
    p.add_argument(
        "--scorer",
        choices=("reader", "rules"),
        default="reader",
        help="what answers from the kept tokens: the trained reader (default) or the hand-written "
        "retrieval rules",
    )
    p.add_argument("--no-retrieval", action="store_true", help="only the LM's answers (needs --model)")
    p.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        metavar="N",
        help="processes answering the questions, by the retrieval scorer and by the LM (default 1; the same "
        "results as one)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the memory table")
    p.add_argument(
        "--memory-model",
        metavar="PATH_OR_NAME",
        help="checkpoint whose memory is planned and measured (default: the default model)",
    )
    p.add_argument(
        "--memory-frames", type=positive_int, default=256, metavar="N", help="frames planned for (256)"
    )
    p.add_argument(
        "--memory-budget",
        type=_fraction,
        default=0.25,
        metavar="F",
        help="budget fraction whose memory is measured, not only planned (default 0.25; --quick plans only)",
    )
    p.set_defaults(handler=_cmd_fidelity, parser=p)
    from vidpool.bench.ask import add_ask_parser

    return [bench_p, p, add_ask_parser(bench_sub), *(add(bench_sub) for add in extensions)]


def settings_from_args(args: argparse.Namespace) -> Any:
    """The :class:`FidelitySettings` of parsed ``bench fidelity`` options, checked (exit 2 when not)."""
    from vidpool.bench.fidelity import FidelitySettings, check_settings
    from vidpool.errors import InvalidArgumentError

    given = {
        "clip": args.clip,
        "weights": args.weights,
        "families": args.families,
        "methods": args.methods,
        "budgets": args.budgets,
        "items": args.items,
        "frames": args.frames,
    }
    base = FidelitySettings().with_quick() if args.quick else FidelitySettings()
    settings = replace(
        base,
        **{k: v for k, v in given.items() if v is not None},
        seed=args.seed,
        out=args.out,
        device=args.device or default_device(),
        resamples=args.resamples,
        memory=not args.no_memory,
        memory_model=args.memory_model,
        memory_frames=args.memory_frames,
        memory_fraction=args.memory_budget,
        model=args.model,
        model_frames=args.model_frames,
        retrieval=not args.no_retrieval,
        scorer=args.scorer,
        jobs=args.jobs,
        model_prompt=args.model_prompt,
    )
    try:
        return check_settings(settings)
    except InvalidArgumentError as exc:
        args.parser.error(str(exc))


def _cmd_fidelity(args: argparse.Namespace) -> int:
    from vidpool.bench.fidelity import run_fidelity

    run_fidelity(settings_from_args(args))
    return 0
