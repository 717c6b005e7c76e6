"""Train a trainable pooling (``attsets``, ``multilayer``) through the benchmark's frozen reader, on CPU.

    python scripts/train_synth_pooling.py attsets            # resumes from --work-dir if it holds a state
    python scripts/train_synth_pooling.py multilayer --steps 600
    python scripts/train_synth_pooling.py attsets --eval-only   # dev-seed accuracy of the shipped weights

Items come from one training seed (``--item-seed``); their videos are rendered once and encoded by the
world's CLIP at layers -3, -2 and -1 (concatenated along channels, as ``multilayer`` reads them;
``attsets`` and the reader take layer -2, the middle block) and cached in ``--work-dir`` as float16.
Each step takes one family's batch (families in turn) and one budget drawn among 25/10/5/3% of the
video's tokens, pools every item with the module, and trains it on the reader's cross-entropy of the
right option; the reader (``vidpool.bench.synth.reader.load_reader()``) stays frozen. After training,
items of the development seed (0) are answered at each budget by the trained pooling, ``adaptive`` and
``random_drop`` (one seed per item), all scored by the same reader; weights (float16), config, log and
summary go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import vidpool
from vidpool.bench.synth.cache import item_features
from vidpool.bench.synth.reader import collate, load_reader, reader_input
from vidpool.bench.synth.seeds import DEVELOPMENT_SEED, TRAINING_SEEDS
from vidpool.bench.synth.tasks import FAMILIES
from vidpool.compression.attsets import AttSetsPool
from vidpool.compression.multilayer import MultiLayerPool
from vidpool.compression.trained import save_pooling
from vidpool.models.training import TrainingRun, lr_at

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "checkpoints" / "vidpool-synth"
LAYERS = (-3, -2, -1)
READ = LAYERS.index(-2)
FRACTIONS = (0.25, 0.10, 0.05, 0.03)
#: items per family trained on (the needle families have 128 frames, the others 8 to 32)
TRAIN_ITEMS = {f: 128 for f in FAMILIES} | {"needle": 64, "needle_time": 64}


def build(name: str, width: int) -> torch.nn.Module:
    if name == "attsets":
        return AttSetsPool(width, hidden=64)
    return MultiLayerPool(width, layers=LAYERS, read=READ, dim=64, queries=64)


def read_layer(feats: torch.Tensor, width: int) -> torch.Tensor:
    """Layer -2 of ``[..., 3·C]`` features: what the reader and single-layer methods read."""
    return feats[..., READ * width : (READ + 1) * width]


def budget_for(feats: torch.Tensor, fraction: float) -> int:
    t, h, w, _ = feats.shape
    return max(1, round(fraction * t * h * w))


def pooled_input(name: str, module, feats: torch.Tensor, width: int, fraction: float, index: int):
    """The reader's input for one item: ``name`` run at ``fraction`` of the tokens (``module`` as weights)."""
    single = read_layer(feats, width).float()
    budget = budget_for(feats, fraction)
    if name == "multilayer":
        out = vidpool.compress(feats.float(), name, budget=budget, weights=module)
    elif name == "attsets":
        out = vidpool.compress(single, name, budget=budget, weights=module)
    elif name == "random_drop":
        out = vidpool.compress(single, name, budget=budget, seed=index)
    else:
        out = vidpool.compress(single, name, budget=budget)
    return reader_input(out, single), out.num_tokens


def accuracy(reader, name, module, items, feats, width, fraction, batch: int = 16) -> tuple[float, float]:
    """``(accuracy, mean tokens)`` of ``name`` at ``fraction`` on ``items``."""
    right, tokens = 0, 0
    with torch.no_grad():
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            pairs = [
                pooled_input(name, module, feats[i + j], width, fraction, i + j) for j in range(len(chunk))
            ]
            tokens += sum(n for _, n in pairs)
            scores = reader.answer(
                [p for p, _ in pairs], [it.question for it in chunk], [it.options for it in chunk]
            )
            right += int((scores.argmax(-1) == torch.tensor([it.answer for it in chunk])).sum())
    return right / len(items), tokens / len(items)


def evaluate(reader, name, module, held, width) -> dict:
    """Development accuracy per budget: the pooling beside ``adaptive`` and ``random_drop``."""
    out = {}
    for fraction in FRACTIONS:
        row = {}
        for method in (name, "adaptive", "random_drop"):
            per_family = {f: accuracy(reader, method, module, *held[f], width, fraction) for f in FAMILIES}
            row[method] = {
                "mean": round(float(np.mean([a for a, _ in per_family.values()])), 4),
                "tokens": round(float(np.mean([n for _, n in per_family.values()])), 1),
                "families": {f: round(a, 4) for f, (a, _) in per_family.items()},
            }
        out[f"{round(fraction * 100)}%"] = row
        print(json.dumps({f"{round(fraction * 100)}%": {m: r["mean"] for m, r in row.items()}}), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("method", choices=("attsets", "multilayer"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument(
        "--max-minutes", type=float, default=30.0, help="stop (saved, resumable) after this long"
    )
    parser.add_argument("--batch", type=int, default=8, help="items a step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--weight-decay", type=float, default=0.01)
    parser.add_argument(
        "--seed", type=int, default=0, help="torch seed (initialisation, batch order, budgets)"
    )
    parser.add_argument("--item-seed", type=int, default=500_002, help="the training seed of the items")
    parser.add_argument("--eval-count", type=int, default=48, help="development items per family")
    parser.add_argument("--save-every", type=int, default=20)
    parser.add_argument("--encode-only", action="store_true", help="fill the feature cache and stop")
    parser.add_argument("--eval-only", action="store_true", help="score the weights in --out, train nothing")
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".cache" / "train_synth_pooling")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.item_seed not in TRAINING_SEEDS:
        parser.error(
            f"--item-seed must be a training seed ({TRAINING_SEEDS.start}..{TRAINING_SEEDS.stop - 1})"
        )

    torch.set_num_threads(1)
    from vidpool.bench.clip import load_clip

    encoder, _ = load_clip(None, None)
    width = encoder.width
    args.work_dir.mkdir(parents=True, exist_ok=True)
    train = {
        f: item_features(encoder, f, TRAIN_ITEMS[f], args.item_seed, args.work_dir, LAYERS) for f in FAMILIES
    }
    held = {
        f: item_features(encoder, f, args.eval_count, DEVELOPMENT_SEED, args.work_dir, LAYERS)
        for f in FAMILIES
    }
    if args.encode_only:
        return 0
    reader = load_reader().requires_grad_(False)
    weights_path = args.out / f"{args.method}.safetensors"
    if args.eval_only:
        result = evaluate(reader, args.method, str(weights_path), held, width)
        print(json.dumps(result), flush=True)
        return 0

    torch.manual_seed(args.seed)
    module = build(args.method, width)
    opt = torch.optim.AdamW(module.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    run = TrainingRun(args.work_dir / args.method)
    step = run.resume(module, opt)
    began = started = time.perf_counter()
    while step < args.steps and time.perf_counter() - began < args.max_minutes * 60:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        family = FAMILIES[step % len(FAMILIES)]
        items, feats = train[family]
        rng = np.random.default_rng([args.seed, step])
        pick = rng.choice(len(items), size=args.batch, replace=False)
        fraction = float(rng.choice(FRACTIONS))
        inputs = [pooled_input(args.method, module, feats[i], width, fraction, int(i))[0] for i in pick]
        batch = collate(
            inputs,
            [items[i].question for i in pick],
            [items[i].options for i in pick],
            reader.config.vocabulary,
        )
        loss = torch.nn.functional.cross_entropy(
            reader(**batch), torch.tensor([items[i].answer for i in pick])
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        step += 1
        run.log(
            {
                "step": step,
                "loss": round(float(loss.detach()), 4),
                "family": family,
                "fraction": fraction,
                "lr": round(opt.param_groups[0]["lr"], 6),
                "s_per_step": round(time.perf_counter() - started, 2),
            }
        )
        started = time.perf_counter()
        if step % args.save_every == 0 or step == args.steps:
            run.save(module, opt, step)
    run.save(module, opt, step)
    module.eval()
    save_pooling(module, weights_path)
    (args.out / f"{args.method}_training_log.jsonl").write_text(run.log_path.read_text())
    summary = {
        "method": args.method,
        "config": module.config,
        "steps": step,
        "planned_steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "warmup": args.warmup,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "item_seed": args.item_seed,
        "items_per_family": TRAIN_ITEMS,
        "budget_fractions": FRACTIONS,
        "development_seed": DEVELOPMENT_SEED,
        "development_items_per_family": args.eval_count,
        "development_accuracy": evaluate(reader, args.method, str(weights_path), held, width),
        "command": "python scripts/train_synth_pooling.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
    }
    (args.out / f"{args.method}_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
