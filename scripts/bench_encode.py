"""Measure the encoder: preprocessing fidelity and speed against open_clip's PIL transform, encoding
throughput, and the activation-memory estimate against the measured peak.

    python scripts/bench_encode.py                              # tiny model, fast
    python scripts/bench_encode.py --model tiny-clip-32 --frames 4 --hw 48x64   # smallest model
    python scripts/bench_encode.py --model ViT-L-14-336 --frames 8 --memory 1 4   # peak RSS (Linux)
    python scripts/bench_encode.py --estimate tiny-clip-32 tiny-clip-48 ViT-B-16   # formula vs allocator
    python scripts/bench_encode.py --estimate tiny-clip-48 --dtype bfloat16
    python scripts/bench_encode.py --model ViT-L-14-336 --frames 256 --device cuda   # GPU encoding speed

Random weights throughout (nothing is downloaded); speed does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from vidpool.encode.config import encoder_spec, load_config
from vidpool.encode.encoder import CLIPEncoder
from vidpool.encode.memory import measured_bytes_per_frame
from vidpool.encode.preprocess import preprocess_frames

__all__ = ["encode_speed", "estimate_accuracy", "fidelity", "main", "memory", "peak_rss", "preprocess_speed"]

# A fresh interpreter that loads this file as a module (not as __main__) and runs one measurement, so
# each batch size starts from a clean heap and the command line has no hidden mode.
_RSS_CHILD = (
    "import runpy, sys; runpy.run_path(sys.argv[1])['peak_rss'](sys.argv[2], int(sys.argv[3]), sys.argv[4])"
)


def _smooth(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, height // 16 + 2, width // 16 + 2, generator=gen)
    img = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")
    return (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def fidelity(size: int = 336) -> list[dict]:
    """Max / mean difference to open_clip's transform on PIL images, in 0..255 pixel levels."""
    import open_clip
    from PIL import Image

    spec = encoder_spec({**load_config("ViT-L-14-336").model_cfg, "vision_cfg": {"image_size": size}})
    cfg = spec.preprocess()
    reference = open_clip.image_transform(size, is_train=False)
    std = torch.tensor(cfg["std"]).view(3, 1, 1)
    rows = []
    for hw in [(240, 320), (480, 640), (720, 1280), (1080, 1920), (100, 90)]:
        gen = torch.Generator().manual_seed(1)
        images = {
            "smooth": _smooth(1, *hw)[0],
            "noise": torch.randint(0, 256, (*hw, 3), generator=gen).byte(),
        }
        for kind, img in images.items():
            ref = reference(Image.fromarray(img.numpy()))
            levels = (preprocess_frames(img[None], cfg)[0] - ref).abs() * std * 255
            rows.append(
                {
                    "hw": hw,
                    "image": kind,
                    "max_levels": levels.max().item(),
                    "mean_levels": levels.mean().item(),
                }
            )
    return rows


def preprocess_speed(count: int, hw: tuple[int, int], size: int = 336) -> dict:
    """Frames/s of batched tensor preprocessing vs open_clip's per-frame PIL transform."""
    import open_clip
    from PIL import Image

    frames = _smooth(count, *hw)
    spec = encoder_spec({**load_config("ViT-L-14-336").model_cfg, "vision_cfg": {"image_size": size}})
    cfg = spec.preprocess()
    reference = open_clip.image_transform(size, is_train=False)
    start = time.perf_counter()
    preprocess_frames(frames, cfg)
    tensor_s = time.perf_counter() - start
    start = time.perf_counter()
    torch.stack([reference(Image.fromarray(f.numpy())) for f in frames])
    pil_s = time.perf_counter() - start
    return {"frames": count, "hw": hw, "tensor_fps": count / tensor_s, "pil_fps": count / pil_s}


def encode_speed(
    model: str, count: int, hw: tuple[int, int], budget: int | None, device: str = "cpu", repeats: int = 1
) -> dict:
    """Frames/s of ``encode_frames(joint=True)`` on uint8 frames in CPU memory (preprocessing, the copy
    to ``device`` and the forward pass), with batches sized from ``budget``; the best of ``repeats``."""
    torch.manual_seed(0)
    enc = CLIPEncoder(model, memory_budget=budget, device=device)
    frames = _smooth(count, *hw)
    enc.encode_frames(frames[: min(count, 8)])
    best = float("inf")
    for _ in range(repeats):
        if enc.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        enc.encode_frames(frames, joint=True)
        if enc.device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return {"model": model, "frames": count, "batch": enc.last_batch_size, "fps": count / best}


def pil_encode_speed(
    model: str, count: int, hw: tuple[int, int], device: str, batch: int = 32, repeats: int = 1
) -> dict:
    """Frames/s of the straightforward way: open_clip's PIL transform frame by frame, then
    ``encode_image`` in batches of ``batch`` under autocast (same random model, same frames), after the
    same warm-up and with the same best-of-``repeats`` as :func:`encode_speed`."""
    import open_clip
    from PIL import Image

    torch.manual_seed(0)
    enc = CLIPEncoder(model, device=device)
    transform = open_clip.image_transform(enc.image_size, is_train=False)
    frames = _smooth(count, *hw)

    def run(frames: torch.Tensor) -> None:
        with torch.inference_mode(), torch.autocast(enc.device.type, dtype=enc.dtype):
            for i in range(0, len(frames), batch):
                pixels = torch.stack([transform(Image.fromarray(f.numpy())) for f in frames[i : i + batch]])
                enc.model.encode_image(pixels.to(enc.device, enc.dtype))
        if enc.device.type == "cuda":
            torch.cuda.synchronize()

    run(frames[: min(count, 8)])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(frames)
        best = min(best, time.perf_counter() - start)
    return {"frames": count, "batch": batch, "fps": count / best}


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss(model: str, batch: int, size: str) -> None:
    """Print, as JSON, how much one ``encode_frames`` call of ``batch`` frames of ``size`` ("HxW")
    raises this process's peak RSS (Linux), with the estimate per frame. Run it in a fresh process."""
    hw = tuple(int(v) for v in size.split("x"))
    torch.manual_seed(0)
    enc = CLIPEncoder(model, memory_budget=1 << 40)
    frames = _smooth(batch, *hw)
    # Linux: writing 5 to clear_refs resets the peak-RSS mark (VmHWM) to the current RSS.
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    before = _status_kib("VmRSS") * 1024
    enc.encode_frames(frames, joint=True)
    peak = _status_kib("VmHWM") * 1024
    estimate = enc.activation_bytes_per_frame(hw, joint=True)
    print(json.dumps({"batch": batch, "peak_delta": peak - before, "estimate_per_frame": estimate}))


def memory(model: str, batches: list[int], hw: tuple[int, int]) -> list[dict]:
    """Measured peak RSS growth of one ``encode_frames`` call per batch size (fresh process each; Linux)."""
    rows = []
    for batch in batches:
        cmd = [
            sys.executable,
            "-c",
            _RSS_CHILD,
            str(Path(__file__).resolve()),
            model,
            str(batch),
            f"{hw[0]}x{hw[1]}",
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        rows.append(json.loads(out))
    return rows


def estimate_accuracy(
    models: list[str],
    hw: tuple[int, int] = (240, 320),
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
) -> list[dict]:
    """Predicted vs measured bytes per frame of one batch (allocator events on CPU, peak stats on CUDA).

    ``predicted`` is the formula for the encoder's device; ``predicted_scores`` counts the attention
    scores as materialised whatever the device (the CPU kernel holds them, CUDA's fused kernels not).
    """
    from vidpool.encode.memory import clip_activation_bytes_per_frame
    from vidpool.encode.vision import block_index

    rows = []
    for name in models:
        torch.manual_seed(0)
        enc = CLIPEncoder(name, dtype=dtype, device=device, memory_budget=1 << 40)
        batch = 8 if enc.spec.width <= 64 or enc.device.type == "cuda" else 2
        frames = torch.randint(0, 256, (batch, *hw, 3), dtype=torch.uint8)
        item = torch.empty((), dtype=enc.dtype).element_size()
        for joint in (False, True):
            measured = measured_bytes_per_frame(enc, frames, joint=joint)
            predicted = enc.activation_bytes_per_frame(hw, joint=joint)
            scores = clip_activation_bytes_per_frame(
                enc.spec,
                item,
                frame_hw=hw,
                joint=joint,
                block=block_index(enc.layer, enc.spec.layers),
                device_type=enc.device.type,
                attention_matrix=True,
            )
            rows.append(
                {
                    "model": name,
                    "device": str(enc.device),
                    "dtype": str(enc.dtype).removeprefix("torch."),
                    "joint": joint,
                    "measured": measured,
                    "predicted": predicted,
                    "predicted_scores": scores,
                }
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="tiny-clip-48", help="model name or config for the encode timings")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--hw", default="720x1280", help="decoded frame size HxW")
    parser.add_argument("--budget", type=int, default=None, help="activation memory budget in bytes")
    parser.add_argument("--memory", type=int, nargs="*", help="batch sizes for the peak-memory check")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--estimate", nargs="+", metavar="MODEL", help="check the per-frame memory formula")
    parser.add_argument(
        "--dtype", choices=["float32", "float16", "bfloat16"], default="float32", help="for --estimate"
    )
    parser.add_argument(
        "--device", default="cpu", help="cpu or cuda (on cuda: encoding speed or --estimate only)"
    )
    parser.add_argument("--hw-estimate", default="240x320", help="for --estimate: decoded frame size HxW")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.estimate:
        hw = tuple(int(v) for v in args.hw_estimate.split("x"))
        rows = estimate_accuracy(args.estimate, hw, getattr(torch, args.dtype), args.device)
        print(
            f"{'model':<14} {'device':<7} {'dtype':<9} {'joint':<6} {'measured B/frame':>17} "
            f"{'predicted':>11} {'error':>7} {'w/ scores':>11} {'error':>7}"
        )
        for row in rows:
            error = row["predicted"] / row["measured"] - 1
            with_scores = row["predicted_scores"] / row["measured"] - 1
            print(
                f"{row['model']:<14} {row['device']:<7} {row['dtype']:<9} {row['joint']!s:<6} "
                f"{row['measured']:>17,.0f} {row['predicted']:>11,} {error:>+7.1%} "
                f"{row['predicted_scores']:>11,} {with_scores:>+7.1%}"
            )
        return
    hw = tuple(int(v) for v in args.hw.split("x"))
    if args.device != "cpu":
        enc = encode_speed(args.model, args.frames, hw, args.budget, args.device, repeats=3)
        print(
            f"encode {args.model} on {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}: "
            f"{enc['frames']} frames {hw[0]}x{hw[1]}, batch {enc['batch']}, {enc['fps']:.1f} frames/s"
        )
        base = pil_encode_speed(args.model, args.frames, hw, args.device, repeats=3)
        print(
            f"open_clip PIL transform per frame + encode_image in batches of {base['batch']}: "
            f"{base['fps']:.1f} frames/s (vidpool {enc['fps'] / base['fps']:.1f}x faster)"
        )
        return
    print(f"torch threads: {torch.get_num_threads()}")
    print("preprocessing vs open_clip's PIL transform (336 px), pixel levels 0..255:")
    for row in fidelity():
        print(
            f"  {row['hw']!s:>13} {row['image']:>6}: max {row['max_levels']:.2f}  mean {row['mean_levels']:.4f}"
        )
    speed = preprocess_speed(args.frames, hw)
    print(
        f"preprocess {args.frames} frames {hw} -> 336: tensor {speed['tensor_fps']:.1f} frames/s, "
        f"PIL {speed['pil_fps']:.1f} frames/s"
    )
    enc = encode_speed(args.model, args.frames, hw, args.budget)
    print(f"encode {args.model}: {enc['frames']} frames, batch {enc['batch']}, {enc['fps']:.1f} frames/s")
    if args.memory:
        rows = memory(args.model, args.memory, hw)
        for row in rows:
            print(
                f"  batch {row['batch']}: peak +{row['peak_delta'] / 2**20:.0f} MiB, estimate "
                f"{row['batch'] * row['estimate_per_frame'] / 2**20:.0f} MiB"
            )
        if len(rows) >= 2:
            slope = (rows[-1]["peak_delta"] - rows[0]["peak_delta"]) / (rows[-1]["batch"] - rows[0]["batch"])
            print(
                f"  measured per frame {slope / 2**20:.1f} MiB, estimate "
                f"{rows[0]['estimate_per_frame'] / 2**20:.1f} MiB"
            )


if __name__ == "__main__":
    main()
