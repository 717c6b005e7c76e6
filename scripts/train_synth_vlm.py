"""Train vidpool-synth's projector (and a LoRA): frozen world CLIP + SmolLM2-135M-Instruct, CPU or CUDA.

    python scripts/train_synth_vlm.py                 # resumes from --work-dir if it holds a state
    python scripts/train_synth_vlm.py --steps 300 --accum 8
    python scripts/train_synth_vlm.py --lora-rank 8 --init checkpoints/vidpool-synth/projector.safetensors \
        --work-dir .cache/train_synth_vlm_lora       # LoRA on the LM too (needs `pip install peft`)
    python scripts/train_synth_vlm.py --device cuda --batch 8 --accum 2 --frames 64 --max-minutes 7 ...

LLaVA's alignment stage: only the ``mlp2x_gelu`` projector learns (lr 1e-3, warm-up, cosine decay);
``--projector mlp2x_gelu_where`` adds where and when each kept token comes from (its frame, row and
column, from the compression's provenance) through a position layer that starts at zero;
with ``--lora-rank`` a LoRA on the LM's attention learns with it (its own ``--lora-lr``), saved in
PEFT's format beside the projector (``lm-adapter/``) and merged into the LM when the model loads.
Each sample is a generated video of the synthetic world (``vidpool.bench.synth``) with one question of
a task family, asked free-form (answer: the option's words) or as multiple choice (answer: its letter).
The visual tokens are compressed by a method drawn at random with a budget drawn from a range, so that
one projector serves every method and budget. A resumable state every ``--save-every`` optimizer
steps; JSON-lines log; a loss curve PNG and float16 weights at the end.

Devices. ``--device cpu`` (the default) runs ``--threads`` torch threads (1) and one sample a forward, ``--accum``
forwards an optimizer step. ``--device cuda`` keeps float32 master weights and runs the LM forward
under bfloat16 autocast; with ``--batch B`` each forward holds B samples, right-padded to the longest
with an attention mask, their answer tokens scored at their own positions (each sample's mean
cross-entropy, averaged over the batch: the loss ``--batch 1`` gives sample by sample). An optimizer
step sees ``accum * batch`` samples. ``--max-minutes M`` ends the run before the step that would pass
M minutes of wall clock, saving the state, the weights and the summary as a finished run does.

Frames. Every item is drawn at its family's own length (``DEFAULT_FRAMES``: 8 to 64 frames) and
sampled to at most ``--frames`` frames, 64 CLIP tokens each: ``--frames 64`` shows every family every
frame (a needle's 4 frames, a flash's 2), at most 4096 visual tokens before compression, inside
SmolLM2's 8192-token context. The summary records the frame count; ask the trained model with as many
(``vidpool chat --frames 64``, ``vidpool bench ... --frames 64``). ``--dev-count N`` ends the run
with free-form accuracy per family on N development-seed items each, every visual token.
GPU: ``bash scripts/gpu_train_synth.sh`` (docs/vidpool-synth.md, "Training on a GPU").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vidpool.bench.cli import family_name
from vidpool.bench.generative import parse_choice, sample_clip
from vidpool.bench.synth.seeds import TRAINING_SEEDS
from vidpool.bench.synth.tasks import (
    FAMILIES,
    LETTERS,
    make_items,
    multiple_choice_prompt,
    render_item,
)
from vidpool.errors import BudgetError
from vidpool.models.builders import SYNTH_ADAPTER, SYNTH_DIR, build_vidpool_synth
from vidpool.models.store import portable_path
from vidpool.models.training import TrainingRun, lr_at
from vidpool.options import comma_list, positive_int

ROOT = Path(__file__).resolve().parent.parent

# Static questions are what the model must do best; the others are there so it learns what it can.
FAMILY_WEIGHTS = {
    "static": 0.34,
    "small": 0.1,
    "change": 0.1,
    "direction": 0.1,
    "count": 0.1,
    "order": 0.1,
    "needle": 0.08,
    "needle_time": 0.08,
}
BUDGET_CHOICES = (8, 16, 16, 32, 32, 64, 64, 128)
# Samples that see every visual token (method ``none``: 512 for 8 frames), so that the full tokens are
# not out of distribution at inference.
FULL_SHARE = 0.2
#: free-form samples each point of a family's learning curve averages
CURVE_WINDOW = 40
EVAL_SEED = 900_000  # the training run's own check, never trained on; a training seed all the same
assert EVAL_SEED in TRAINING_SEEDS
# Other wordings of the static questions, so that a person's own phrasing reaches the same answer.
COLOUR_WORDINGS = (
    "What colour is the shape?",
    "What color is the shape?",
    "What colour is the object?",
    "Which colour is the shape in the video?",
    "What is the colour of the shape?",
)
# the last is the prompt of ``vidpool caption`` (vidpool.pipeline.captioning.CAPTION_PROMPT)
DESCRIBE_WORDINGS = (
    "Describe the video.",
    "What is in the video?",
    "What do you see?",
    "Describe this video in detail.",
)
SHAPE_WORDINGS = (
    "What shape is it?",
    "What shape is the object?",
    "Which shape is shown?",
    "What shape do you see?",
    "What is the shape in the video?",
)


class Trainable(torch.nn.Module):
    """What a LoRA run trains and saves: the projector and the LoRA weights of the LM (the same
    parameter objects, so loading a saved state updates the LM's LoRA layers in place)."""

    def __init__(self, projector: torch.nn.Module, adapted: torch.nn.Module) -> None:
        super().__init__()
        self.projector = projector
        named = [(n, p) for n, p in adapted.named_parameters() if "lora_" in n]
        for _, param in named:
            param.requires_grad_(True)
        self.lora = torch.nn.ParameterDict({n.replace(".", "__"): p for n, p in named})


def family_weights(static: float) -> dict[str, float]:
    """``FAMILY_WEIGHTS`` with static questions at ``static`` and the other families scaled to the rest."""
    others = {k: v for k, v in FAMILY_WEIGHTS.items() if k != "static"}
    scale = (1.0 - static) / sum(others.values())
    return {"static": static, **{k: v * scale for k, v in others.items()}}


def draw_item(rng: np.random.Generator, seed: int, frames: int, weights: dict[str, float]):
    # items come only from training seeds: evaluation refuses them (vidpool.bench.synth.seeds)
    assert seed in TRAINING_SEEDS, f"item seed {seed} is outside the training seeds {TRAINING_SEEDS}"
    family = str(rng.choice(list(weights), p=list(weights.values())))
    # items alternate within a family (static: colour, then shape; direction: a clip, then reversed)
    item = make_items(family, 2, seed=seed)[int(rng.integers(2))]
    clip, stamps = sample_clip(render_item(item), frames)
    return item, clip, stamps


def question_and_answer(item, rng: np.random.Generator, mc: bool) -> tuple[str, str]:
    """What to ask about ``item`` and the answer to learn.

    Multiple choice: the lettered prompt and the letter. Free-form: the question and the option's
    words; a static video is asked for a caption ("A red circle.", 35%), its shape (45%) or its colour
    (20%), each in one of several wordings (shape is the harder half, so it gets most of the questions
    whichever the item asks).
    """
    if mc:
        return multiple_choice_prompt(item), LETTERS[item.answer]
    if item.family != "static":
        return item.question, item.options[item.answer]
    main = next(o for o in item.scene.objects if o.role == "main")
    colour, shape = main.colour_at(0), main.shape
    pick = rng.random()
    if pick < 0.35:
        return str(rng.choice(DESCRIBE_WORDINGS)), f"A {colour} {shape}."
    if pick < 0.8:
        return str(rng.choice([f"What shape is the {colour} object?", *SHAPE_WORDINGS])), shape
    return str(rng.choice(["What colour is the large shape?", *COLOUR_WORDINGS])), colour


def lm_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (the weights stay float32); nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_sample(model, question, target, clip, stamps, method: str, budget: int | None):
    """One sample's LM input: ``(embeds [1, L, hidden], answer_len)``, the answer's tokens (and
    ``<|im_end|>``) last; the compressed video is projected with gradients. ``BudgetError`` when
    ``method`` cannot meet ``budget``."""
    from vidpool.compression import compress
    from vidpool.llm.prompt import splice_embeddings, tokenize_around_marker

    joint = model.uses_joint(method)
    with torch.no_grad():
        encoded = model.encode(torch.from_numpy(clip), joint=joint)
        method, params, budget = model.resolve_compression(method, budget)
        extra = {}
        if joint:
            extra["scores"] = model.prompt_scores(encoded.patches, question, joint=encoded.joint)
        result = compress(encoded.patches, method, budget=budget, **extra, **params)
    visual = model.project_compressed(result)
    tok = model.tokenizer
    before, after = tokenize_around_marker(tok, model.prompt_text(question, timestamps=stamps))
    answer = tok(target, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    embeds = splice_embeddings(model.input_embeddings, before, visual, list(after) + answer)
    return embeds, answer


def servable_methods() -> list[str]:
    """The registered methods a video LM can run on its visual tokens: not those that read several
    encoder layers (``multilayer``; ``resolve_compression`` refuses them)."""
    import vidpool
    from vidpool.compression import get_method

    return [m for m in vidpool.list_methods() if get_method(m).input_layers is None]


def single_loss(model, embeds: torch.Tensor, answer: list[int]) -> torch.Tensor:
    """Cross-entropy of the last ``len(answer)`` tokens of ``embeds`` ``[1, L, hidden]`` (the LM's own loss)."""
    labels = torch.full(embeds.shape[:2], -100, dtype=torch.long, device=embeds.device)
    labels[0, -len(answer) :] = torch.tensor(answer, device=embeds.device)
    with lm_autocast(embeds.device):
        return model.language_model(inputs_embeds=embeds, labels=labels).loss


def batch_losses(model, samples: list[tuple[torch.Tensor, list[int]]]) -> torch.Tensor:
    """``[B]``: each of ``samples``' (``(embeds [1, L_i, hidden], answer)`` each) answer cross-entropy,
    in one forward: right-padded to the longest with an attention mask, logits kept only where an
    answer token is predicted. Each equals :func:`single_loss` of that sample alone."""
    lengths = [int(e.shape[1]) for e, _ in samples]
    longest, hidden = max(lengths), int(samples[0][0].shape[2])
    device = samples[0][0].device
    rows, mask = [], torch.zeros(len(samples), longest, dtype=torch.long, device=device)
    for i, (embeds, _) in enumerate(samples):
        pad = embeds.new_zeros(1, longest - lengths[i], hidden)
        rows.append(torch.cat([embeds, pad], dim=1))
        mask[i, : lengths[i]] = 1
    # position p predicts token p + 1: the answer of sample i is predicted from L_i - n - 1 to L_i - 2
    wanted = [list(range(n - len(a) - 1, n - 1)) for n, (_, a) in zip(lengths, samples, strict=True)]
    keep = sorted({p for w in wanted for p in w})
    column = {p: j for j, p in enumerate(keep)}
    with lm_autocast(device):
        logits = model.language_model(
            inputs_embeds=torch.cat(rows),
            attention_mask=mask,
            logits_to_keep=torch.tensor(keep, device=device),
        ).logits
    losses = []
    for i, (w, (_, answer)) in enumerate(zip(wanted, samples, strict=True)):
        picked = logits[i, [column[p] for p in w]].float()
        losses.append(torch.nn.functional.cross_entropy(picked, torch.tensor(answer, device=device)))
    return torch.stack(losses)


def evaluate(model, frames: int, count: int, method: str | None = None, letters: bool = False) -> dict:
    """Greedy free-form accuracy on held-out static items, compressed by ``method`` (``None``: the
    model's default compression; ``"none"``: every visual token); with ``letters`` also the share of
    the same questions answered right as lettered multiple choice."""
    correct: dict[str, list[bool]] = {"colour": [], "shape": [], "letter": []}
    items = make_items("static", count, seed=EVAL_SEED)
    model.projector.eval()
    for item in items:
        clip, stamps = sample_clip(render_item(item), frames)
        with torch.inference_mode():
            encoded = model.encode(torch.from_numpy(clip))
            tokens = model.visual_tokens(encoded.patches, method=method)
            text = model.generate(tokens, item.question, timestamps=stamps, max_new_tokens=6)
            if letters:
                reply = model.generate(
                    tokens, multiple_choice_prompt(item), timestamps=stamps, max_new_tokens=6
                )
                correct["letter"].append(parse_choice(str(reply), item.options) == item.answer)
        kind = "colour" if item.question.startswith("What colour") else "shape"
        correct[kind].append(item.options[item.answer].lower() in str(text).lower())
    model.projector.train()
    both = correct["colour"] + correct["shape"]
    return {
        "static_freeform": round(float(np.mean(both)), 4),
        **{kind: round(float(np.mean(v)), 4) for kind, v in correct.items() if v},
        "n": count,
        "method": method or model.config.method,
    }


def evaluate_families(model, frames: int, count: int, families=FAMILIES) -> dict[str, float]:
    """Free-form accuracy per family of ``families`` on ``count`` development-seed items each, every
    visual token, the video sampled to at most ``frames`` frames (the benchmark's ``full`` arm, asked
    in words)."""
    from vidpool.bench.arms import Arm, item_seed
    from vidpool.bench.generative import answer_generative
    from vidpool.bench.synth.seeds import DEVELOPMENT_SEED

    full = Arm("full", None, control=True)
    model.projector.eval()
    scores = {}
    with lm_autocast(model.device):
        for family in families:
            right = [
                answer_generative(
                    model, item, [full], frames=frames, style="free", seed=item_seed(DEVELOPMENT_SEED, i)
                )[full.key].answer.correct
                for i, item in enumerate(make_items(family, count, seed=DEVELOPMENT_SEED))
            ]
            scores[family] = round(float(np.mean([bool(r) for r in right])), 4)
    model.projector.train()
    return scores


def family_curves(rows: list[dict], window: int = CURVE_WINDOW) -> dict[str, tuple[list[int], list[float]]]:
    """Per family, the mean loss of its last ``window`` free-form samples at each step that had one:
    ``{family: (steps, means)}`` from the log's ``samples`` records (steps logged without them are
    skipped)."""
    seen: dict[str, list[tuple[int, float]]] = {}
    for r in rows:
        for family, _method, style, loss in r.get("samples", []):
            if style == "free":
                seen.setdefault(family, []).append((r["step"], loss))
    curves = {}
    for family, points in seen.items():
        if len(points) >= window:
            losses = np.array([v for _, v in points])
            means = np.convolve(losses, np.ones(window) / window, mode="valid")
            curves[family] = ([s for s, _ in points[window - 1 :]], [float(m) for m in means])
    return curves


def plot_losses(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows if "loss" in r]
    losses = np.array([r["loss"] for r in rows if "loss" in r])
    curves = family_curves(rows)
    fig, axes = plt.subplots(1, 2 if curves else 1, figsize=(12 if curves else 6, 3.5), squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, losses, alpha=0.35, label="loss")
    if len(losses) >= 10:
        kernel = np.ones(10) / 10
        ax.plot(steps[9:], np.convolve(losses, kernel, mode="valid"), label="mean of 10")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("answer cross-entropy")
    ax.set_title("vidpool-synth training")
    ax.legend()
    if curves:
        ax = axes[0, 1]
        for family, (at, means) in sorted(curves.items()):
            ax.plot(at, means, label=family)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("free-form answer cross-entropy")
        ax.set_title(f"by family (mean of its last {CURVE_WINDOW} samples)")
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def _option_text(value) -> str:
    """An option's value as written on a command line (no absolute paths of this machine)."""
    if isinstance(value, Path):
        return portable_path(value)
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def projector_groups(projector: torch.nn.Module, lr: float, position_lr: float | None) -> list[dict]:
    """The projector's optimizer groups, each with its ``peak`` rate: one group, or with ``position_lr``
    the position layer (``where.*``) in a group of its own, so that its output can grow to the scale of
    the visual tokens it is added to instead of staying a rounding error beside them."""
    named = list(projector.named_parameters())
    if position_lr is None:
        return [{"params": [p for _, p in named], "peak": lr}]
    where = [p for n, p in named if n.startswith("where.")]
    if not where:
        raise ValueError("position_lr needs a projector with a position layer (mlp2x_gelu_where)")
    rest = [p for n, p in named if not n.startswith("where.")]
    return [{"params": rest, "peak": lr}, {"params": where, "peak": position_lr}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps")
    parser.add_argument("--accum", type=int, default=8, help="samples per optimizer step")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=15)
    parser.add_argument(
        "--schedule-start",
        type=int,
        default=0,
        help="step the warm-up + cosine schedule starts from (a warm restart when resuming)",
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument(
        "--budgets",
        type=comma_list(positive_int),
        default=BUDGET_CHOICES,
        help="visual-token budgets a compressed sample draws from (repeat one to weight it)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--full-share", type=float, default=FULL_SHARE, help="share of samples with every visual token"
    )
    parser.add_argument(
        "--static-weight", type=float, default=FAMILY_WEIGHTS["static"], help="share of static questions"
    )
    parser.add_argument("--save-every", type=int, default=5)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--eval-count", type=int, default=24)
    parser.add_argument(
        "--eval-method", default=None, help="compression for the held-out check ('none': every token)"
    )
    parser.add_argument("--note", default="", help="what this stage changes and why (kept in the summary)")
    parser.add_argument(
        "--eval-letters", action="store_true", help="the held-out check also asks for the letter"
    )
    parser.add_argument(
        "--mc-share", type=float, default=0.4, help="share of samples asked as lettered multiple choice"
    )
    parser.add_argument(
        "--init", type=Path, default=None, help="projector weights a new run starts from (default: random)"
    )
    parser.add_argument(
        "--projector",
        choices=("mlp2x_gelu", "mlp2x_gelu_where"),
        default="mlp2x_gelu",
        help="a new run's projector: mlp2x_gelu_where adds where and when each token comes from; its "
        "position layer starts at zero, the rest from --init",
    )
    parser.add_argument(
        "--position-lr",
        type=float,
        default=None,
        help="mlp2x_gelu_where: the position layer's own peak learning rate (default: --lr)",
    )
    parser.add_argument("--lora-rank", type=int, default=0, help="LoRA rank on the LM (0: projector only)")
    parser.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: twice the rank)")
    parser.add_argument("--lora-lr", type=float, default=2e-4)
    parser.add_argument(
        "--lora-targets", default="q_proj,k_proj,v_proj,o_proj", help="the LM's linear layers LoRA adapts"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (bfloat16 autocast)")
    parser.add_argument(
        "--threads", type=positive_int, default=1, help="torch threads on a CPU (default 1: one per process)"
    )
    parser.add_argument(
        "--batch", type=int, default=1, help="samples a forward (padded; more than 1 is meant for cuda)"
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="end before the step that would pass this wall clock, saving state, weights and summary",
    )
    parser.add_argument(
        "--dev-count",
        type=int,
        default=0,
        help="at the end, free-form accuracy per family on this many development-seed items each",
    )
    parser.add_argument(
        "--dev-families",
        type=comma_list(family_name),
        default=FAMILIES,
        help="the families --dev-count asks (default: all)",
    )
    parser.add_argument("--work-dir", type=Path, default=ROOT / ".cache" / "train_synth_vlm")
    parser.add_argument("--out", type=Path, default=SYNTH_DIR)
    args = parser.parse_args(argv)

    began = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device here; run with --device cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    if args.batch < 1:
        parser.error("--batch must be 1 or more")
    if args.position_lr is not None and args.projector != "mlp2x_gelu_where":
        parser.error("--position-lr sets the position layer's rate: it needs --projector mlp2x_gelu_where")
    if args.lora_rank < 0:
        parser.error("--lora-rank must be 0 (off) or a positive rank")
    from safetensors.torch import load_file, save_file

    import vidpool
    from vidpool.llm import build_projector

    lora = None
    if args.lora_rank:
        try:
            import peft
        except ImportError:
            parser.error("--lora-rank needs peft: pip install peft")
        lora = peft.LoraConfig(
            r=args.lora_rank,
            lora_alpha=args.lora_alpha or 2 * args.lora_rank,
            lora_dropout=0.0,
            target_modules=args.lora_targets.split(","),
        )
    run = TrainingRun(args.work_dir, key="trainable" if lora else "projector")
    folder = args.work_dir / "model"
    if not (folder / "vidpool.json").is_file():
        torch.manual_seed(args.seed)
        start = args.work_dir / "projector-init.safetensors"
        projector = build_projector(args.projector, 128, 576)
        if args.init is not None:
            # the position layer (absent from an mlp2x_gelu file) keeps its zero start
            missing, unexpected = projector.load_state_dict(load_file(str(args.init)), strict=False)
            if unexpected or any(not key.startswith("where.") for key in missing):
                parser.error(f"--init {args.init} does not fit a {args.projector} projector 128 -> 576")
        save_file({k: v.contiguous() for k, v in projector.state_dict().items()}, str(start))
        staging = Path(tempfile.mkdtemp(dir=args.work_dir))
        build_vidpool_synth(staging, projector=start, adapter=False)
        staging.rename(folder)
    model = vidpool.load_model(folder, device=device, dtype=torch.float32)  # float32 master weights
    model.language_model.requires_grad_(False)
    model.encoder.model.requires_grad_(False)
    projector = model.projector.float().train().requires_grad_(True)
    groups = projector_groups(projector, args.lr, args.position_lr)
    trainable: torch.nn.Module = projector
    adapted = None
    if lora is not None:
        torch.manual_seed(args.seed)
        adapted = peft.get_peft_model(model.language_model, lora)  # LoRA layers go into the LM in place
        trainable = Trainable(projector, adapted)
        groups.append({"params": list(trainable.lora.values()), "peak": args.lora_lr})
    opt = torch.optim.AdamW(groups, lr=args.lr, weight_decay=0.0)
    step = first_step = run.resume(trainable, opt)
    for group, peak in zip(opt.param_groups, [g["peak"] for g in groups], strict=True):
        group["peak"] = peak  # this stage's --lr/--lora-lr, not the peak a resumed state was saved with
    log = run.log

    weights = family_weights(args.static_weight)
    # the stage's options as another machine can read them: no absolute paths of this one
    start = {k: _option_text(v) for k, v in vars(args).items()}
    log({"step": step, "start": start})
    methods = servable_methods()
    stopped = None
    while step < args.steps:
        started = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(
                step - args.schedule_start, args.steps - args.schedule_start, group["peak"], args.warmup
            )
        rng = np.random.default_rng([args.seed, step])
        total, drawn = 0.0, []
        opt.zero_grad(set_to_none=True)
        for k in range(args.accum):
            samples = []
            for j in range(args.batch):
                seed = (step * args.accum + k) * args.batch + j + 1
                item, clip, stamps = draw_item(rng, seed, args.frames, weights)
                mc = bool(rng.random() < args.mc_share)
                question, target = question_and_answer(item, rng, mc=mc)
                full = bool(rng.random() < args.full_share)
                while True:  # a method with a fixed token count ('none', 'spp') cannot meet every budget
                    method, budget = str(rng.choice(methods)), int(rng.choice(args.budgets))
                    if full:
                        method, budget = "none", None
                    try:
                        samples.append(prepare_sample(model, question, target, clip, stamps, method, budget))
                        break
                    except BudgetError:
                        continue
                drawn.append([item.family, method, "letter" if mc else "free"])
            losses = (
                single_loss(model, *samples[0])[None] if args.batch == 1 else batch_losses(model, samples)
            )
            loss = losses.mean()
            (loss / args.accum).backward()
            total += float(loss.detach())
            for row, value in zip(drawn[-len(samples) :], losses.detach().tolist(), strict=True):
                row.append(round(float(value), 4))
        torch.nn.utils.clip_grad_norm_(trainable.parameters(), 1.0)
        opt.step()
        step += 1
        seconds = time.perf_counter() - started
        log(
            {
                "step": step,
                "loss": round(total / args.accum, 4),
                "lr": opt.param_groups[0]["lr"],
                "seconds": round(seconds, 1),
                # each sample: [family, method, "free" or "letter", its loss] (learning curves by family)
                "samples": drawn,
            }
        )
        # the next step would end past the wall-clock bound: stop here, as a finished run does
        late = args.max_minutes is not None and time.perf_counter() - began + seconds > 60 * args.max_minutes
        if step % args.save_every == 0 or step == args.steps or late:
            run.save(trainable, opt, step)
        if step % args.eval_every == 0:
            with lm_autocast(device):
                check = evaluate(model, args.frames, args.eval_count, args.eval_method, args.eval_letters)
            log({"step": step, "eval": check})
        if late and step < args.steps:
            stopped = f"--max-minutes {args.max_minutes:g} reached at step {step} of {args.steps}"
            log({"step": step, "stopped": stopped})
            break

    with lm_autocast(device):
        final = evaluate(model, args.frames, args.eval_count, args.eval_method, args.eval_letters)
    development = (
        evaluate_families(model, args.frames, args.dev_count, args.dev_families) if args.dev_count else None
    )
    rows = run.records()
    args.out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to(torch.float16).contiguous() for k, v in projector.state_dict().items()}
    save_file(tensors, str(args.out / "projector.safetensors"), metadata={"format": "pt"})
    if adapted is not None:
        adapted.save_pretrained(args.out / SYNTH_ADAPTER)
        (args.out / SYNTH_ADAPTER / "README.md").unlink(missing_ok=True)  # peft's blank model card
    (args.out / "vlm_training_log.jsonl").write_text(run.log_path.read_text())
    plot_losses(run.records(), args.out / "vlm_loss.png")
    # what earlier stages recorded in the summary is kept; this run's --note names its steps
    summary_path = args.out / "vlm_training.json"
    earlier = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    changes = dict(earlier.get("stage_changes", {}))
    if args.note:
        changes[f"{first_step + 1}-{step}"] = args.note
    summary = {
        "steps": step,
        "accum": args.accum,
        "lr": args.lr,
        "warmup": args.warmup,
        "frames": args.frames,
        "seed": args.seed,
        "budgets": list(args.budgets),
        "full_share": args.full_share,
        "lora": None
        if lora is None
        else {
            "r": lora.r,
            "alpha": lora.lora_alpha,
            "targets": sorted(lora.target_modules),
            "lr": args.lora_lr,
        },
        "family_weights": weights,
        "stages": [r["start"] for r in rows if "start" in r],
        "families": list(FAMILIES),
        "final_eval": final,
        **(
            {"development_freeform_every_token": {"seed": 0, "n": args.dev_count, **development}}
            if development
            else {}
        ),
        **({"stopped": stopped} if stopped else {}),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch": args.batch,
        "stage_changes": changes,
        **({"machine": earlier["machine"]} if "machine" in earlier else {}),
    }
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
