"""Train the synthetic world's CLIP (open_clip model code, ``ClipLoss``) on generated stills, on CPU.

    python scripts/train_synth_clip.py                      # resumes from --work-dir if it holds a state
    python scripts/train_synth_clip.py --steps 3000 --batch 128
    python scripts/train_synth_clip.py --local --steps 800  # the local stage, from the shipped weights

``--local`` is the second stage: it starts from the shipped weights and trains only the last vision
block, ``ln_post`` and ``proj`` (the text tower and every earlier block stay frozen, so the hidden state
a video LM reads, layer -2, does not change by a bit) so that every last-block patch token, taken into
the joint space, says what covers its own patch. Its loss is the mean of the global contrastive loss
(single-object stills against their captions) and a dense one: each patch token's cross-entropy over
the prompts ``"a {colour} shape"`` and ``"the background"`` against the share of the patch each colour
covers (:func:`~vidpool.bench.synth.stills.patch_coverage`), on single-object and crowded stills.

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

from vidpool.bench.synth.stills import (
    COLOUR_PROMPT,
    caption,
    crowded_still,
    patch_coverage,
    random_still,
    random_stills,
)
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


BACKGROUND_PROMPT = "the background"


def colour_prompts() -> list[str]:
    """The dense loss's classes: each colour's prompt, then the background's."""
    return [COLOUR_PROMPT.format(colour=c) for c in COLOURS] + [BACKGROUND_PROMPT]


def local_batch(step: int, size: int, seed: int, grid: int):
    """Half single-object stills (with captions), half crowded ones (caption ``None``), each with its
    dense target ``[grid, grid, len(COLOURS) + 1]`` (colour shares, then the uncovered share)."""
    rng = np.random.default_rng([seed, step])
    side = int(rng.choice(SIDES))
    frames, texts, targets = [], [], []
    for k in range(size):
        if k < size // 2:
            frame, still = random_still(rng, side)
            sprites, text = [still.sprite], caption(still, rng)
        else:
            frame, sprites = crowded_still(rng, side)
            text = None
        cover = patch_coverage(sprites, grid, side=grid * 8)
        targets.append(np.concatenate([cover, 1.0 - cover.sum(-1, keepdims=True)], axis=-1))
        frames.append(frame)
        texts.append(text)
    frames = np.stack(frames)
    if rng.random() < 0.5:
        noise = rng.normal(0, rng.uniform(2, 8), size=frames.shape)
        frames = np.clip(frames + noise, 0, 255).astype(np.uint8)
    return torch.from_numpy(frames), texts, torch.from_numpy(np.stack(targets))


def joint_patches(visual, pixels: torch.Tensor) -> torch.Tensor:
    """``[B, 3, S, S]`` -> ``[B, h*w, D]`` joint-space patch tokens, with gradients only through the
    last block, ``ln_post`` and ``proj`` (the earlier blocks run without them)."""
    last = len(visual.transformer.resblocks) - 1
    with torch.no_grad():
        out = visual.forward_intermediates(
            pixels, indices=[last - 1], intermediates_only=True, output_fmt="NLC", output_extra_tokens=True
        )
        prefix, tokens = out["image_intermediates_prefix"][0], out["image_intermediates"][0]
    x = visual.transformer.resblocks[last](torch.cat([prefix, tokens], dim=1))
    return visual.ln_post(x[:, prefix.shape[1] :]) @ visual.proj


def small_patch_accuracy(model, tokenizer, pre, count: int) -> dict[str, float]:
    """Zero-shot colour read from one patch token alone, on held-out stills.

    ``colour_patch_small``: one-patch objects, the token of the patch holding the object's centre;
    ``colour_patch_large``: large objects, the same. The token goes to the joint space and the nearest
    of the colour prompts (``"a {colour} shape"``) is the answer.
    """
    frames, stills = random_stills(EVAL_SEED, count)
    grid = model.visual.grid_size[0]
    with torch.inference_mode():
        pixels = preprocess_frames(torch.from_numpy(frames), pre)
        patches = torch.nn.functional.normalize(joint_patches(model.visual, pixels).float(), dim=-1)
        text = torch.nn.functional.normalize(
            model.encode_text(tokenizer(colour_prompts()[: len(COLOURS)])).float(), dim=-1
        )
    names, result = list(COLOURS), {}
    for key, small in (("colour_patch_small", True), ("colour_patch_large", False)):
        rows = [i for i, s in enumerate(stills) if s.small == small]
        cells = [
            min(int(stills[i].sprite.y * grid), grid - 1) * grid
            + min(int(stills[i].sprite.x * grid), grid - 1)
            for i in rows
        ]
        guess = (patches[rows, cells] @ text.T).argmax(-1)
        truth = torch.tensor([names.index(stills[i].colour) for i in rows])
        result[key] = round(float((guess == truth).float().mean()), 4)
    return result


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
    parser.add_argument(
        "--local",
        action="store_true",
        help="the local stage: from --init, train the last block on the dense loss",
    )
    parser.add_argument(
        "--init", type=Path, default=OUT / "clip.safetensors", help="--local's starting weights"
    )
    args = parser.parse_args(argv)
    if args.local:
        return train_local(args)

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
                    "loss": round(float(loss.detach()), 4),
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


def train_local(args) -> int:
    torch.set_num_threads(1)
    import open_clip
    from safetensors.torch import load_file, save_file

    torch.manual_seed(args.seed)
    model = build(open_clip)
    model.load_state_dict({k: v.float() for k, v in load_file(str(args.init)).items()})
    tokenizer = open_clip.SimpleTokenizer(context_length=model.context_length)
    pre = encoder_spec(load_config(CONFIG)).preprocess()
    visual = model.visual
    last = len(visual.transformer.resblocks) - 1
    trained = [*visual.transformer.resblocks[last].parameters(), visual.ln_post.weight, visual.ln_post.bias]
    trained.append(visual.proj)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in trained:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(trained, lr=args.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=args.weight_decay)
    run = TrainingRun(args.work_dir)
    step = run.resume(model, opt)
    log = run.log
    grid = visual.grid_size[0]
    scale = float(model.logit_scale.exp())
    captions: dict[str, torch.Tensor] = {}

    def text_rows(texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in captions]
        if missing:
            with torch.no_grad():
                emb = torch.nn.functional.normalize(model.encode_text(tokenizer(missing)), dim=-1)
            captions.update(zip(missing, emb))
        return torch.stack([captions[t] for t in texts])

    prompts = text_rows(colour_prompts())  # [len(COLOURS) + 1, D]
    loss_fn = open_clip.ClipLoss()
    model.eval()  # no dropout; only the last block learns
    visual.transformer.resblocks[last].train()
    started = time.perf_counter()
    while step < args.steps:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, args.steps, args.lr, args.warmup)
        frames, texts, target = local_batch(step, args.batch, args.seed, grid)
        patches = joint_patches(visual, preprocess_frames(frames, pre))  # [B, h*w, D]
        logits = scale * torch.nn.functional.normalize(patches, dim=-1) @ prompts.T
        dense = -(target.reshape(len(frames), grid * grid, -1) * logits.log_softmax(-1)).sum(-1).mean()
        single = [i for i, t in enumerate(texts) if t is not None]
        image = torch.nn.functional.normalize(patches[single].mean(dim=1), dim=-1)
        contrastive = loss_fn(image, text_rows([texts[i] for i in single]), scale)
        loss = 0.5 * (dense + contrastive)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        step += 1
        if step % 10 == 0:
            elapsed = time.perf_counter() - started
            log(
                {
                    "step": step,
                    "loss": round(float(loss.detach()), 4),
                    "dense": round(float(dense.detach()), 4),
                    "contrastive": round(float(contrastive.detach()), 4),
                    "lr": opt.param_groups[0]["lr"],
                    "pairs_per_s": round(10 * args.batch / elapsed, 1),
                }
            )
            started = time.perf_counter()
        if step % args.save_every == 0 or step == args.steps:
            run.save(model, opt, step)
        if step % args.eval_every == 0 or step == args.steps:
            scores = evaluate(model, tokenizer, pre, args.eval_count)
            scores.update(small_patch_accuracy(model, tokenizer, pre, args.eval_count))
            log({"step": step, "eval": scores})
            model.eval()
            visual.transformer.resblocks[last].train()
    final = evaluate(model, tokenizer, pre, args.eval_count)
    final.update(small_patch_accuracy(model, tokenizer, pre, args.eval_count))
    args.out.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(args.out / "clip.safetensors"), metadata={"format": "pt"})
    print(json.dumps({"steps": step, "zero_shot": final}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
