"""Two training runs of scripts/train_synth_vlm.py on the same draws, compared sample by sample.

    python scripts/compare_runs.py RUN_A/log.jsonl RUN_B/log.jsonl
    python scripts/compare_runs.py A.jsonl B.jsonl --window 100 --style free --json

Two runs with the same ``--seed``, batch and options that decide the draws (families, methods,
budgets, prompt styles) see the same samples in the same order, whatever else differs (the projector,
a learning rate). Every sample is a new generated video, and its loss is logged before the step that
learns from it, so the loss is that of an unseen question: a paired comparison on it says which run
generalises better at each point of training (progressive validation). Only samples whose step,
place in the step, family, method and style agree in both logs are paired; the count of those that
do not is printed (a run with other draws pairs none).

For each window of ``--window`` steps and each family: both runs' mean loss, the mean of B minus A
with a 95% bootstrap interval over samples (each an independent item), and how many samples B has
the lower loss on.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def samples(path: Path) -> dict[tuple, float]:
    """``{(step, place, family, method, style): loss}`` from a training log's ``samples`` records."""
    out = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        for place, (family, method, style, loss) in enumerate(record.get("samples", [])):
            out[(record["step"], place, family, method, style)] = float(loss)
    return out


def compare(
    a: dict[tuple, float], b: dict[tuple, float], window: int, style: str | None, seed: int = 0
) -> list[dict]:
    """One row per (window of steps, family): ``means``, ``difference`` (B - A) with ``interval``,
    ``b_lower`` and ``n``; the rows of ``family == "all"`` pool the families."""
    from vidpool.bench.stats import bootstrap_indices

    keys = sorted(k for k in a.keys() & b.keys() if style is None or k[4] == style)
    rows = []
    if not keys:
        return rows
    last = max(k[0] for k in keys)
    for start in range(1, last + 1, window):
        inside = [k for k in keys if start <= k[0] < start + window]
        for family in [*sorted({k[2] for k in inside}), "all"]:
            chosen = [k for k in inside if family in ("all", k[2])]
            if not chosen:
                continue
            x = np.array([a[k] for k in chosen])
            y = np.array([b[k] for k in chosen])
            d = y - x
            draws = d[bootstrap_indices(d.size, seed=seed)].mean(axis=1)
            low, high = np.percentile(draws, [2.5, 97.5])
            rows.append(
                {
                    "steps": [start, min(start + window - 1, last)],
                    "family": family,
                    "n": int(d.size),
                    "means": [float(x.mean()), float(y.mean())],
                    "difference": float(d.mean()),
                    "interval": [float(low), float(high)],
                    "b_lower": int((d < 0).sum()),
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("a", type=Path, help="run A's log.jsonl")
    parser.add_argument("b", type=Path, help="run B's log.jsonl")
    parser.add_argument("--window", type=int, default=100, help="steps a row pools")
    parser.add_argument("--style", choices=("free", "letter", "all"), default="free")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.window < 1:
        parser.error("--window must be 1 or more")
    for path in (args.a, args.b):
        if not path.is_file():
            parser.error(f"{path} is not a file: pass the log.jsonl of each run's --work-dir")
    a, b = samples(args.a), samples(args.b)
    common = {k[:2] for k in a} & {k[:2] for k in b}
    unpaired = sum(1 for k in a.keys() ^ b.keys() if k[:2] in common)
    rows = compare(a, b, args.window, None if args.style == "all" else args.style)
    print(
        f"A: {args.a}\nB: {args.b}\nsamples paired: {len(a.keys() & b.keys())}, drawn differently: {unpaired // 2}"
    )
    print(f"{'steps':>9s}  {'family':12s} {'n':>4s}  {'A':>6s} {'B':>6s}  {'B - A [95%]':>24s}  B lower")
    for r in rows:
        low, high = r["interval"]
        print(
            f"{r['steps'][0]:>4d}-{r['steps'][1]:<4d}  {r['family']:12s} {r['n']:4d}  {r['means'][0]:6.3f} "
            f"{r['means'][1]:6.3f}  {r['difference']:+7.3f} [{low:+.3f}, {high:+.3f}]  {r['b_lower']:4d}"
        )
    if args.json:
        print(json.dumps({"a": str(args.a), "b": str(args.b), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
