"""Retrieval-scorer accuracy on the synthetic benchmark with every token and with the controls.

    python scripts/synth_readout.py                          # the shipped CLIP (random weights without it)
    python scripts/synth_readout.py --items 100 --fraction 0.125 --controls full text_only random_drop
    python scripts/synth_readout.py --state .cache/train_synth_clip/state.pt   # a training checkpoint

A check of the world, its questions and the readout before any method is compared: with all tokens
the scorer should be far above chance (0.25) on every family a trained CLIP can see, and the
text-only control at chance. Prints one row per family (accuracy and a 95% Wilson interval).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vidpool.bench.cli import eval_seed, family_name
from vidpool.bench.stats import wilson
from vidpool.bench.synth import (
    CONTROLS,
    FAMILIES,
    control_kept,
    item_seed,
    make_items,
    option_scores,
    render_item,
    text_embedder,
)
from vidpool.encode import CLIPEncoder
from vidpool.options import comma_list

ROOT = Path(__file__).resolve().parent.parent

CONFIG = ROOT / "checkpoints" / "vidpool-synth" / "vidpool-synth-clip.json"
WEIGHTS = ROOT / "checkpoints" / "vidpool-synth" / "clip.safetensors"


def _control(text: str) -> str:
    if text not in CONTROLS:
        raise argparse.ArgumentTypeError(f"unknown control {text!r}; choose from {', '.join(CONTROLS)}")
    return text


def encoder(args) -> tuple[CLIPEncoder, str]:
    weights = args.weights or (WEIGHTS if WEIGHTS.is_file() and not args.state else None)
    enc = CLIPEncoder(CONFIG, weights=weights)
    if args.state:
        enc.model.load_state_dict(torch.load(args.state, weights_only=True)["model"])
        return enc, f"state {args.state}"
    return enc, str(weights) if weights else "random weights"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40, help="items per family")
    parser.add_argument("--seed", type=eval_seed, default=0, help="item seed (0: development)")
    parser.add_argument("--families", type=comma_list(family_name), default=FAMILIES, metavar="A,B")
    parser.add_argument("--controls", type=comma_list(_control), default=("full", "text_only"), metavar="A,B")
    parser.add_argument("--fraction", type=float, default=0.125, help="budget of the budgeted controls")
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--state", type=Path, default=None, help="a training state.pt (its 'model')")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    enc, source = encoder(args)
    embed = text_embedder(enc)
    print(f"CLIP: {source}; {args.items} items per family, seed {args.seed}")
    print(f"{'family':12} {'frames':>6} " + " ".join(f"{c:>22}" for c in args.controls))
    table = {}
    for family in args.families:
        start, hits = time.time(), dict.fromkeys(args.controls, 0)
        items = make_items(family, args.items, seed=args.seed)
        for item in items:
            encoded = enc.encode_frames(torch.from_numpy(render_item(item)), joint=True)
            budget = max(1, round(args.fraction * encoded.patches.shape[:3].numel()))
            for name in args.controls:
                seed = item_seed(item.id, args.seed)
                kept = control_kept(name, encoded.patches, encoded.joint, budget=budget, seed=seed)
                hits[name] += int(option_scores(item, kept, embed).argmax() == item.answer)
        n = len(items)
        table[family] = {c: {"accuracy": hits[c] / n, "ci95": wilson(hits[c], n)} for c in args.controls}
        cells = " ".join(
            f"{hits[c] / n:6.3f} [{wilson(hits[c], n)[0]:.2f}, {wilson(hits[c], n)[1]:.2f}]".rjust(22)
            for c in args.controls
        )
        print(f"{family:12} {items[0].num_frames:6d} {cells}   ({time.time() - start:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"clip": source, "items": args.items, "table": table}, indent=1))


if __name__ == "__main__":
    main()
