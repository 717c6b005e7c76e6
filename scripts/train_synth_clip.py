"""Train the synthetic world's CLIP (open_clip model code, ``ClipLoss``) on generated stills, on CPU.

    python scripts/train_synth_clip.py                      # resumes from --work-dir if it holds a state
    python scripts/train_synth_clip.py --steps 3000 --batch 128

The config (``checkpoints/vidpool-synth/vidpool-synth-clip.json``, in the package as ``vidpool/models/synth/``) is registered with
``open_clip.add_model_config`` and built by ``open_clip.create_model``; the text side uses open_clip's
bundled BPE tokenizer, so nothing is downloaded. Training uses one torch thread, saves a resumable state
every ``--save-every`` steps, logs JSON lines, scores zero-shot colour and shape accuracy on held-out
stills every ``--eval-every`` steps, and writes float16 safetensors weights at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from vidpool.bench.synth.stills import caption, random_still, random_stills
from vidpool.bench.synth.world import COLOURS
from vidpool.bench.synth.zeroshot import HELD_OUT_SEED as EVAL_SEED
from vidpool.bench.synth.zeroshot import zero_shot_accuracy
from vidpool.encode.config import encoder_spec, load_config
from vidpool.encode.preprocess import preprocess_frames
from vidpool.models.training import TrainingRun, lr_at

ROOT = Path(__file__).resolve().parent.parent

OUT = ROOT / "checkpoints" / "vidpool-synth"  # the package reaches it as vidpool/models/synth (a link)
CONFIG = OUT / "vidpool-synth-clip.json"
SIDES = (64, 64, 96, 128)


def build(open_clip):
    open_clip.add_model_config(CONFIG)
    return open_clip.create_model("vidpool-synth-clip", device="cpu")


def batch(step: int, size: int, seed: int):
    rng = np.random.default_rng([seed, step])
    side = int(rng.choice(SIDES))
    frames, texts = [], []
    # Half the batches hold only two colours: colour alone then cannot tell captions apart, so the
    # contrastive loss has to learn shapes too (with all eight colours it is nearly solved by colour).
    colours = list(rng.choice(list(COLOURS), size=2, replace=False)) if rng.random() < 0.5 else None
    for _ in range(size):
        frame, still = random_still(rng, side, colours)
        frames.append(frame)
        texts.append(caption(still, rng))
    frames = np.stack(frames)
    if rng.random() < 0.5:  # lossy-coding-like noise, so decoded MP4 frames look familiar
        noise = rng.normal(0, rng.uniform(2, 8), size=frames.shape)
        frames = np.clip(frames + noise, 0, 255).astype(np.uint8)
    return torch.from_numpy(frames), texts


def evaluate(model, tokenizer, pre, count: int) -> dict[str, float]:
    frames, stills = random_stills(EVAL_SEED, count)
    model.eval()
    with torch.inference_mode():

        def images(x):
            return model.encode_image(preprocess_frames(torch.from_numpy(x), pre))

        def texts(prompts):
            return model.encode_text(tokenizer(prompts))

        result = zero_shot_accuracy(images, texts, frames, stills)
    model.train()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--eval-count", type=int, default=1000)
    parser.add_argument("--save-every", type=int, default=50)
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".cache" / "train_synth_clip")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    model = build(open_clip)
    tokenizer = open_clip.SimpleTokenizer(context_length=model.context_length)
    pre = encoder_spec(load_config(CONFIG)).preprocess()
    loss_fn = open_clip.ClipLoss()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-6,
    )
    run = TrainingRun(args.work_dir)
    step = run.resume(model, opt)
    log = run.log

    model.train()
    started = time.perf_counter()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        frames, texts = batch(step, args.batch, args.seed)
        image = model.encode_image(preprocess_frames(frames, pre), normalize=True)
        text = model.encode_text(tokenizer(texts), normalize=True)
        loss = loss_fn(image, text, model.logit_scale.exp())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        step += 1
        if step % 10 == 0:
            elapsed = time.perf_counter() - started
            log(
                {
                    "step": step,
                    "loss": round(float(loss), 4),
                    "lr": opt.param_groups[0]["lr"],
                    "pairs_per_s": round(10 * args.batch / elapsed, 1),
                }
            )
            started = time.perf_counter()
        if step % args.save_every == 0 or step == args.steps:
            run.save(model, opt, step)
        if step % args.eval_every == 0 or step == args.steps:
            log({"step": step, "eval": evaluate(model, tokenizer, pre, args.eval_count)})

    final = evaluate(model, tokenizer, pre, args.eval_count)
    args.out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(args.out / "clip.safetensors"), metadata={"format": "pt"})
    (args.out / "clip_training_log.jsonl").write_text(run.log_path.read_text())
    summary = {
        "steps": step,
        "batch": args.batch,
        "lr": args.lr,
        "warmup": args.warmup,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "eval_seed": EVAL_SEED,
        "zero_shot": final,
    }
    (args.out / "clip_training.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
