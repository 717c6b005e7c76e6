"""Time every compression method on CLIP-L/14-336-sized inputs, against the straightforward way.

    python scripts/bench_compress.py [--frames 32 256] [--repeats 7] [--dtype float32] [--device cpu]
                                     [--methods spatial,divprune]

For each input ``[1, T, 24, 24, 1024]`` it prints: method, output tokens, median ms, GB/s over the
input bytes, and for ``adaptive`` and ``prompt_guided`` the time of the straightforward implementation
(permute + ``adaptive_avg_pool3d``; ``unfold`` windows + softmax + weighted sum), the speed-up and the
largest relative difference between the two results. Method times include ``compress``'s NaN/Inf
scan (``check_finite=True``, the default); the last line per input times that scan against the other
one-reduction ways to write it.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import vidpool
from vidpool.options import comma_list, method_name


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


# Content-dependent methods that take seconds a call on a CPU: timed once, without a warm-up.
SLOW = ("temporal_merge", "divprune", "fastvid")


def _trained() -> dict:
    from vidpool.compression.attsets import AttSetsPool
    from vidpool.compression.multilayer import MultiLayerPool

    return {"attsets": AttSetsPool, "multilayer": MultiLayerPool}


TRAINED = _trained()


def timed(fn, repeats: int, *, warm_up: bool = True) -> tuple[float, object]:
    out = fn() if warm_up else None
    times = []
    for _ in range(repeats):
        _sync()
        t0 = time.perf_counter()
        out = fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def permute_adaptive(x: torch.Tensor, grid) -> torch.Tensor:
    """The usual way: channels-first copy, adaptive_avg_pool3d, back to tokens."""
    pooled = F.adaptive_avg_pool3d(x.permute(0, 4, 1, 2, 3).contiguous(), grid)
    return pooled.permute(0, 2, 3, 4, 1).flatten(1, 3)


def unfold_prompt_guided(
    x: torch.Tensor, scores: torch.Tensor, kernel, stride, temperature=0.01
) -> torch.Tensor:
    """The usual way: unfold windows of the channels-first features, softmax the scores, weighted sum."""
    b, _, _, _, c = x.shape
    feats = x.permute(0, 4, 1, 2, 3)
    s = scores.unsqueeze(1)
    for dim, (k, st) in enumerate(zip(kernel, stride), start=2):
        feats = feats.unfold(dim, k, st)
        s = s.unfold(dim, k, st)
    feats = feats.reshape(*feats.shape[:5], -1)
    w = (s.reshape(*s.shape[:5], -1) / temperature).softmax(-1)
    out = (feats * w).sum(-1)
    return out.permute(0, 2, 3, 4, 1).reshape(b, -1, c)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max())


def finite_scans(x: torch.Tensor, repeats: int) -> dict[str, float]:
    """Seconds of each way to ask "is every value finite?" in one reduction, on the same input."""
    from vidpool.compression.validate import all_finite

    ways = {
        "vidpool (sum, aminmax if it overflows)": lambda: all_finite(x),
        "x.sum().isfinite()": lambda: bool(x.sum().isfinite()),
        "aminmax(x) finite": lambda: bool(torch.stack(torch.aminmax(x)).isfinite().all()),
        "torch.isfinite(x).all()": lambda: bool(torch.isfinite(x).all()),
    }
    return {name: timed(fn, repeats)[0] for name, fn in ways.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[32, 256])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument(
        "--methods", type=comma_list(method_name), help="methods to time, comma-separated (default: all)"
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    print(
        f"vidpool {vidpool.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.dtype}, {torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}"
    )
    for frames in args.frames:
        x = torch.randn(1, frames, 24, 24, 1024, dtype=dtype, device=args.device)
        scores = vidpool.prompt_scores(
            torch.randn(1, frames, 24, 24, 64, device=args.device), torch.randn(1, 64, device=args.device)
        )
        gb = x.numel() * x.element_size() / 1e9
        print(f"\ninput [1, {frames}, 24, 24, 1024] ({gb:.2f} GB)")
        print(f"{'method':<16}{'tokens':>8}{'ms':>10}{'GB/s':>8}   straightforward way")
        for name in args.methods or vidpool.list_methods():
            kw = {"scores": scores} if vidpool.get_method(name).uses_scores else {}
            inputs = x
            if name in TRAINED:  # the shipped weights are the world's width: time untrained ones of 1024
                kw["weights"] = TRAINED[name](1024).to(device=args.device, dtype=dtype)
            if vidpool.get_method(name).input_layers is not None:
                inputs = x.repeat(1, 1, 1, 1, len(vidpool.get_method(name).input_layers))
            slow = name in SLOW and args.device == "cpu"
            reps = 1 if slow else args.repeats
            sec, out = timed(
                lambda n=name, k=kw, x=inputs: vidpool.compress(x, n, **k), reps, warm_up=not slow
            )
            line = f"{name:<16}{out.num_tokens:>8}{sec * 1e3:>10.1f}{gb / sec:>8.1f}"
            if name == "adaptive":
                grid = out.params["grid"]
                base_sec, base = timed(lambda g=grid, x=x: permute_adaptive(x, g), reps)
                line += f"   permute+adaptive_avg_pool3d {base_sec * 1e3:.1f} ms: {base_sec / sec:.2f}x faster, rel. err {rel_err(out.tokens, base):.1e}"
            if name == "prompt_guided":
                k, s = out.params["kernel"], out.params["stride"]
                base_sec, base = timed(
                    lambda k=k, s=s, x=x, sc=scores: unfold_prompt_guided(x, sc, k, s), reps
                )
                line += f"   unfold+softmax+sum {base_sec * 1e3:.1f} ms: {base_sec / sec:.2f}x faster, rel. err {rel_err(out.tokens, base):.1e}"
            print(line, flush=True)
        scans = finite_scans(x, max(3, args.repeats // 2))
        print("NaN/Inf scan: " + ", ".join(f"{name} {sec * 1e3:.1f} ms" for name, sec in scans.items()))


if __name__ == "__main__":
    main()
