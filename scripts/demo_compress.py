"""Compress synthetic CLIP-L/14-336-sized tokens with every method and print what each gives.

    python scripts/demo_compress.py [--frames 32] [--budget 2304]

Prints, per method: output tokens at its defaults and at the budget, the share of the input kept,
and the time taken (one run after a warm-up).
"""

from __future__ import annotations

import argparse
import time

import torch

import vidpool


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--budget", type=int, default=2304, help="token budget for the budgeted column")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    shape = (args.frames, 24, 24)
    x = torch.randn(1, *shape, 1024)
    scores = vidpool.prompt_scores(torch.randn(1, *shape, 768), torch.randn(1, 768))
    total = x.shape[1] * 24 * 24
    print(f"input: {args.frames} frames x 24x24 patches x 1024 channels = {total} tokens")
    print(
        f"{'method':<16}{'default':>9}{'budget ' + str(args.budget):>14}{'kept':>8}{'ms':>9}  parameters chosen for the budget"
    )
    for name in vidpool.list_methods():
        kw = {"scores": scores} if vidpool.get_method(name).uses_scores else {}
        default = vidpool.num_output_tokens(name, shape)
        try:
            vidpool.compress(x, name, budget=args.budget, **kw)
            start = time.perf_counter()
            out = vidpool.compress(x, name, budget=args.budget, **kw)
            ms = (time.perf_counter() - start) * 1e3
            kept = float(out.kept_fraction())
            params = {k: v for k, v in out.params.items() if v is not None}
            print(f"{name:<16}{default:>9}{out.num_tokens:>14}{kept:>8.0%}{ms:>9.1f}  {params}")
        except vidpool.BudgetError as err:
            print(
                f"{name:<16}{default:>9}{'-':>14}{'':>8}{'':>9}  fixed size: needs a budget of {err.min_budget}"
            )


if __name__ == "__main__":
    main()
