"""Train the benchmark's reader (``vidpool.bench.synth.reader``) on every token of training-seed items, on CPU.

    python scripts/train_synth_reader.py                    # resumes from --work-dir if it holds a state
    python scripts/train_synth_reader.py --steps 3000 --out /tmp/reader

Items come from one training seed (``--item-seed``, in the training range that the benchmark's
``--seed`` refuses); their videos are rendered and encoded once by the world's CLIP (patch features at
layer -2, what the video LM reads) and cached in ``--work-dir`` as float16, one file per family. Every
step trains on one family's batch, families in turn, with every token of every frame: the reader never
sees a compression method or a control. Every ``--eval-every`` steps it answers items of the
development seed with every token; the weights (float16 safetensors), config and log go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vidpool.bench.synth.cache import item_features
from vidpool.bench.synth.reader import Reader, ReaderConfig, collate, full_input, save_reader, words
from vidpool.bench.synth.tasks import FAMILIES, make_items
from vidpool.models.training import TrainingRun, lr_at

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "checkpoints" / "vidpool-synth"
DEVELOPMENT_SEED = 0
#: items per family the reader trains on
TRAIN_ITEMS = {f: 600 for f in FAMILIES} | {"needle": 400, "needle_time": 400}


def vocabulary() -> tuple[str, ...]:
    """Every word of the families' questions and options (over many items of several seeds)."""
    seen: dict[str, None] = {}
    for family in FAMILIES:
        for item in make_items(family, 200, seed=DEVELOPMENT_SEED) + make_items(family, 200, seed=999_983):
            for text in (item.question, *item.options):
                seen.update(dict.fromkeys(words(text)))
    return tuple(sorted(seen))


def accuracy(reader: Reader, items, feats, batch: int = 16) -> float:
    right = 0
    reader.eval()
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        scores = reader.answer(
            [full_input(f.float()) for f in feats[i : i + batch]],
            [it.question for it in chunk],
            [it.options for it in chunk],
        )
        right += int((scores.argmax(-1) == torch.tensor([it.answer for it in chunk])).sum())
    reader.train()
    return right / len(items)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=16, help="items a step (at most; see --batch-tokens)")
    parser.add_argument(
        "--batch-tokens",
        type=int,
        default=65536,
        help="tokens a step at most: long videos come in smaller batches",
    )
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0, help="torch seed (initialisation and batch order)")
    parser.add_argument("--item-seed", type=int, default=500_001, help="the training seed of the items")
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-count", type=int, default=64)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".cache" / "train_synth_reader")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--init", type=Path, help="start from the reader saved in this folder (a new stage)")
    parser.add_argument(
        "--families",
        type=lambda t: tuple(t.split(",")),
        default=FAMILIES,
        help="the families trained on, in turn",
    )
    parser.add_argument(
        "--items",
        type=lambda t: {k: int(v) for k, v in (p.split("=") for p in t.split(","))},
        default={},
        metavar="FAMILY=N,...",
        help="items of these families (default: TRAIN_ITEMS)",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.item_seed < 1_000_000:
        parser.error("--item-seed must be a training seed (1..999999); 0 is the development seed")

    torch.set_num_threads(1)
    from vidpool.bench.clip import load_clip

    encoder, _ = load_clip(None, None)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    counts = {**TRAIN_ITEMS, **args.items}
    train = {f: item_features(encoder, f, counts[f], args.item_seed, args.work_dir) for f in args.families}
    held = {f: item_features(encoder, f, args.eval_count, DEVELOPMENT_SEED, args.work_dir) for f in FAMILIES}

    torch.manual_seed(args.seed)
    config = ReaderConfig(feature_dim=encoder.width, vocabulary=vocabulary())
    reader = Reader(config)
    if args.init is not None:
        from vidpool.bench.synth.reader import load_reader

        reader.load_state_dict(load_reader(args.init).state_dict())
    opt = torch.optim.AdamW(reader.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    run = TrainingRun(args.work_dir)
    step = run.resume(reader, opt)
    log = run.log
    started = time.perf_counter()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        family = args.families[step % len(args.families)]
        items, feats = train[family]
        rng = np.random.default_rng([args.seed, step])
        size = max(2, min(args.batch, args.batch_tokens // feats[0][..., 0].numel()))
        pick = rng.choice(len(items), size=size, replace=False)
        batch = collate(
            [full_input(feats[i].float()) for i in pick],
            [items[i].question for i in pick],
            [items[i].options for i in pick],
            config.vocabulary,
        )
        scores = reader(**batch)
        loss = torch.nn.functional.cross_entropy(scores, torch.tensor([items[i].answer for i in pick]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reader.parameters(), 1.0)
        opt.step()
        step += 1
        if step % len(args.families) == 0:
            log(
                {
                    "step": step,
                    "loss": round(float(loss.detach()), 4),
                    "family": family,
                    "lr": opt.param_groups[0]["lr"],
                    "s_per_step": round((time.perf_counter() - started) / len(args.families), 2),
                }
            )
            started = time.perf_counter()
        if step % args.save_every == 0 or step == args.steps:
            run.save(reader, opt, step)
        if step % args.eval_every == 0 or step == args.steps:
            log({"step": step, "eval": {f: round(accuracy(reader, *held[f]), 4) for f in FAMILIES}})

    save_reader(reader, args.out)
    (args.out / "reader_training_log.jsonl").write_text(run.log_path.read_text())
    summary = {
        "steps": step,
        "batch": args.batch,
        "batch_tokens": args.batch_tokens,
        "lr": args.lr,
        "warmup": args.warmup,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "item_seed": args.item_seed,
        "items_per_family": {f: counts[f] for f in args.families},
        "families": list(args.families),
        "init": None if args.init is None else str(args.init),
        "development_seed": DEVELOPMENT_SEED,
        "development_accuracy_every_token": {f: round(accuracy(reader, *held[f]), 4) for f in FAMILIES},
        "command": "python scripts/train_synth_reader.py " + " ".join(argv or []),
    }
    (args.out / "reader_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
