"""Predicted vs measured peak memory and time to first token for a 7B-shaped video LM (random weights).

    scripts/gpu_check.sh                                  # on a CUDA machine (under 8 minutes on one H100)
    python scripts/gpu_check.py --device cpu --tiny       # the same code path, tiny shapes, on a CPU

The model is built from configs, nothing is downloaded: a LLaMA-7B-shaped decoder (hidden 4096, 32
layers, 32 heads, intermediate 11008, vocab 32000) in bfloat16 and a ViT-L-14-336-shaped open_clip
encoder, both with random weights, joined by an mlp2x_gelu projector. For 16, 64 and 256 frames it
runs one question twice: with the model's own pooling (spatial, stride 2: 144 tokens a frame) and
with progressive pooling to a fixed budget. Each row prints the plan's predicted peak, the measured
peak (CUDA: ``torch.cuda.max_memory_allocated``, absolute, weights included; CPU: tensor storage
from the profiler plus the weights) and the time from the question to the first streamed token
(encoding, compression and prefill).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]

GIB = 2**30
LLAMA_7B = {
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "intermediate_size": 11008,
    "vocab_size": 32000,
}
# the built decoders take the longest run measured (256 frames, 144 tokens each) within their context
BUILT_CONTEXT = 131072
TINY_LM = {
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "vocab_size": 512,
}


# LLaVA-OneVision-7B's shapes: a SigLIP-so400m tower (384 px, 27x27 patches) and a Qwen2-7B decoder
SIGLIP_SO400M = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 26,  # OneVision drops the last of the 27 blocks
    "num_attention_heads": 16,
    "image_size": 384,
    "patch_size": 14,
}
QWEN2_7B = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "max_position_embeddings": 131072,
}


def _builder():
    """The tiny checkpoints' builders (their tokenizer and model builders)."""
    from vidpool.models import builders

    return builders


def _tokenizer():
    """The byte-level ChatML tokenizer of the tiny checkpoints (ids < 262, fits any vocab)."""
    builder = _builder()
    return builder.tiny_tokenizer(), builder.EOS_TOKEN_ID, builder.PAD_TOKEN_ID


def build_llava(device: str, dtype: torch.dtype, *, tiny: bool):
    """A LLaVA-OneVision-7B-shaped model with random weights (transformers' own classes, through
    vidpool's integration), built straight on ``device``; tiny shapes with ``tiny``."""
    from vidpool.integrations import LlavaVideoLM

    builder = _builder()
    tokenizer, eos, pad = _tokenizer()
    text = dict(TINY_LM if tiny else QWEN2_7B)
    text.update(eos_token_id=eos, pad_token_id=pad, bos_token_id=None)
    if tiny:
        text["vocab_size"] = max(text["vocab_size"], builder.VOCAB_SIZE)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            vision = builder.TINY_VISION if tiny else SIGLIP_SO400M
            hf = builder.llava_model("llava_onevision", vision, text, seed=0)
    finally:
        torch.set_default_dtype(default)
    hf.generation_config.eos_token_id = eos
    hf.generation_config.pad_token_id = pad
    return LlavaVideoLM(hf, tokenizer, kind="llava_onevision")


def build_model(device: str, dtype: torch.dtype, *, tiny: bool):
    """A native VideoLM with random weights, built straight on ``device`` from configs."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from vidpool.encode import CLIPEncoder
    from vidpool.llm import build_projector
    from vidpool.llm.native import NativeVideoLM

    torch.manual_seed(0)
    clip = "tiny-clip-32" if tiny else "ViT-L-14-336"
    encoder = CLIPEncoder(clip, None, layer=-2, device=device, dtype=dtype)
    tokenizer, eos, pad = _tokenizer()
    shape = TINY_LM if tiny else LLAMA_7B
    config = LlamaConfig(
        **shape,
        max_position_embeddings=BUILT_CONTEXT,
        attn_implementation="sdpa",  # fused attention: eager would hold heads x N^2 scores
        eos_token_id=eos,
        pad_token_id=pad,
        bos_token_id=None,
    )
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in the target dtype: a float32 7B would need 27 GB first
    try:
        with torch.device(device):
            lm = LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    lm.generation_config.eos_token_id = eos
    lm.generation_config.pad_token_id = pad
    projector = build_projector("mlp2x_gelu", encoder.width, shape["hidden_size"]).to(
        device=device, dtype=dtype
    )
    model = NativeVideoLM(native_config(clip, encoder.width), encoder, projector, lm, tokenizer)
    return model


def _measure(chat, question: str, device: str, weights: int, max_new_tokens: int) -> tuple[float, int, str]:
    """(seconds to the first token, measured peak bytes, answer)."""
    from vidpool.schedule import measure_peak

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        pieces = chat.ask(question, stream=True, max_new_tokens=max_new_tokens)
        first = next(pieces, "")
        ttft = time.perf_counter() - start
        answer = first + "".join(pieces)
        torch.cuda.synchronize()
        return ttft, int(torch.cuda.max_memory_allocated()), answer

    # CPU: the profiler sees this thread only, so generate without the streaming thread, one token
    def first_token():
        start = time.perf_counter()
        answer = chat.ask(question, max_new_tokens=1)
        return time.perf_counter() - start, answer

    (ttft, answer), peak = measure_peak(first_token)
    return ttft, peak + weights, answer


def vision_memory(model, device: str, sizes: list[tuple[int, int]], count: int = 8) -> list[dict]:
    """Measured vs predicted vision memory per decoded frame (``model.activation_bytes_per_frame``):
    CUDA peak above what was allocated before one ``encode_patches`` call (after a warm-up), or on CPU
    the peak of the allocator events plus the caller's frames, divided by the frame count."""
    from vidpool.schedule import measure_peak

    rows = []
    for hw in sizes:
        frames = torch.randint(0, 256, (count, *hw, 3), dtype=torch.uint8)
        model.encode_patches(frames[:1])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            out = model.encode_patches(frames)
            torch.cuda.synchronize()
            measured = (torch.cuda.max_memory_allocated() - before) / count
            del out
        else:
            _, peak = measure_peak(lambda frames=frames: model.encode_patches(frames))
            measured = (peak + frames.numel()) / count
        predicted = model.activation_bytes_per_frame(hw)
        rows.append({"frame_hw": hw, "measured": measured, "predicted": predicted})
        print(
            f"vision memory per {hw[0]}x{hw[1]} frame: measured {measured:,.0f} B, predicted {predicted:,} B "
            f"({predicted / measured - 1:+.1%})",
            flush=True,
        )
    return rows


def run_checks(
    device: str,
    frames: list[int],
    *,
    tiny: bool,
    budget: int,
    max_new_tokens: int,
    dtype: torch.dtype,
    checkpoint: str | None = None,
    llava: bool = False,
) -> list[dict]:
    from vidpool.encode import FeatureCache
    from vidpool.pipeline import VideoChat
    from vidpool.schedule import format_bytes, plan
    from vidpool.video import Frames

    start = time.perf_counter()
    if checkpoint:
        from vidpool.llm import load_model

        model = load_model(checkpoint, device=device, dtype=dtype)
        what = checkpoint
    elif llava:
        model = build_llava(device, dtype, tiny=tiny)
        what = "tiny LLaVA-OneVision" if tiny else "LLaVA-OneVision-7B-shaped"
    else:
        model = build_model(device, dtype, tiny=tiny)
        what = "tiny" if tiny else "7B-shaped"
    print(f"{what} model on {device} ready in {time.perf_counter() - start:.1f}s", flush=True)
    if llava:
        vision_memory(model, device, [(48, 64), (96, 128)] if tiny else [(384, 682), (720, 1280)])

    height, width = (48, 64) if tiny else (384, 682) if llava else (336, 448)
    # frames as a decoded 30 fps video gives them, with their times (the prompt names them)
    video = Frames.at_rate(
        torch.randint(0, 256, (max(frames), height, width, 3), dtype=torch.uint8).numpy(), 30
    )
    info = SimpleNamespace(num_frames=len(video), duration=len(video) / 30, width=width, height=height)
    question = "What happens in this video?"
    rows = []
    header = f"{'frames':>6}  {'method':<12} {'tokens':>7}  {'predicted':>10}  {'measured':>10}  {'ratio':>5}  {'TTFT':>7}"
    print(header + "\n" + "-" * len(header), flush=True)
    for num_frames in frames:
        for label, method, params, wanted_budget in (
            ("spatial", "spatial", {"stride": 2}, None),
            ("progressive", "progressive", {}, budget),
        ):
            row = {"frames": num_frames, "requested": label}
            try:
                p = plan(
                    info,
                    model,
                    device,
                    num_frames=num_frames,
                    method=method,
                    method_params=params,
                    budget=wanted_budget,
                    max_new_tokens=max_new_tokens,
                )
                chat = VideoChat(video, model, device=device, plan=p, cache=FeatureCache(max_items=1))
                ttft, measured, _ = _measure(chat, question, device, p.memory.weights, max_new_tokens)
                row.update(
                    method=p.method,
                    planned_frames=p.num_frames,
                    tokens=p.num_tokens,
                    predicted_peak=p.memory.peak,
                    measured_peak=measured,
                    ratio=measured / p.memory.peak,
                    ttft_s=ttft,
                    notes=list(p.notes),
                )
                print(
                    f"{num_frames:>6}  {p.method:<12} {p.num_tokens:>7}  {format_bytes(p.memory.peak):>10}  "
                    f"{format_bytes(measured):>10}  {measured / p.memory.peak:>5.2f}  {ttft:>6.2f}s",
                    flush=True,
                )
                for note in p.notes:
                    print(f"        note: {note}")
                del chat
            except Exception as exc:  # one failing row must not hide the others
                row["error"] = f"{type(exc).__name__}: {exc}"
                print(f"{num_frames:>6}  {label:<12} error: {row['error']}", flush=True)
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            rows.append(row)
    return rows


def native_config(clip: str, vision_width: int):
    """The vidpool.json of the checked model: spatial stride-2 pooling before an mlp2x_gelu projector."""
    from vidpool.llm import ModelConfig

    return ModelConfig(
        kind="native",
        encoder={"model": clip, "layer": -2},
        projector="mlp2x_gelu",
        vision_width=vision_width,
        lm={"path": "random-llama-7b-shape"},
        compress={"method": "spatial", "params": {"stride": 2}, "position": "before"},
        num_frames=16,
    )


def seven_b_spec():
    """The schedule ModelSpec of the built 7B model, from shapes only (for --plan-only on any machine)."""
    from vidpool.encode.config import encoder_spec as clip_spec
    from vidpool.encode.config import load_config
    from vidpool.llm.spec import native_spec

    width = clip_spec(load_config("ViT-L-14-336")).width
    config = native_config("ViT-L-14-336", width)
    lm = {**LLAMA_7B, "max_position_embeddings": BUILT_CONTEXT}
    return native_spec(config, lm, 2, name="llama-7b-shape + ViT-L-14-336 (random)", device_type="cuda")


def plan_only(frames: list[int], budget: int, memory: str, max_new_tokens: int) -> int:
    """Print the plans the CUDA run would follow, for a GPU with ``memory`` free; builds nothing."""
    from vidpool.schedule import format_bytes, plan

    spec = seven_b_spec()
    info = SimpleNamespace(num_frames=max(frames), duration=None, width=448, height=336)
    print(f"{'frames':>6}  {'method':<12} {'tokens':>7}  {'predicted':>10}  {'required':>10}  notes")
    for num_frames in frames:
        for method, params, wanted in (("spatial", {"stride": 2}, None), ("progressive", {}, budget)):
            p = plan(
                info,
                spec,
                "cuda",
                num_frames=num_frames,
                method=method,
                method_params=params,
                budget=wanted,
                max_memory=memory,
                max_new_tokens=max_new_tokens,
            )
            print(
                f"{p.num_frames:>6}  {p.method:<12} {p.num_tokens:>7}  {format_bytes(p.memory.peak):>10}  "
                f"{format_bytes(p.memory.required):>10}  {len(p.notes)}"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes instead of 7B / ViT-L (a dry run)")
    parser.add_argument("--model", help="a checkpoint folder to measure instead of the built model")
    parser.add_argument(
        "--llava",
        action="store_true",
        help="a LLaVA-OneVision-7B-shaped transformers model (SigLIP-so400m + Qwen2-7B) instead",
    )
    parser.add_argument("--frames", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--budget", type=int, default=2048, help="progressive pooling budget (default 2048)")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--dtype", choices=["bfloat16", "float16", "float32"], help="default: bfloat16 on CUDA"
    )
    parser.add_argument("--json", help="also write the rows to this JSON file")
    parser.add_argument(
        "--plan-only",
        metavar="GPU_MEMORY",
        help="print the 7B plans for a GPU with this much free memory (e.g. 80GB) and build nothing",
    )
    args = parser.parse_args(argv)
    if args.plan_only:
        return plan_only(args.frames, args.budget, args.plan_only, args.max_new_tokens)
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32"))
    if not args.device.startswith("cuda") and not (args.tiny or args.model):  # also with --llava
        print(
            "gpu_check: the 7B shape needs a GPU (27 GB in float32); add --tiny or --model", file=sys.stderr
        )
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available here; use --device cpu --tiny for a dry run", file=sys.stderr)
        return 1
    if args.device.startswith("cuda"):
        print(f"device: {torch.cuda.get_device_name()}, {torch.cuda.mem_get_info()[1] / GIB:.1f} GiB")
    rows = run_checks(
        args.device,
        args.frames,
        tiny=args.tiny,
        budget=args.budget,
        max_new_tokens=args.max_new_tokens,
        dtype=dtype,
        checkpoint=args.model,
        llava=args.llava,
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
