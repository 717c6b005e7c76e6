"""Prefill time and peak memory of a video prompt with and without FastV, on one checkpoint.

    python scripts/bench_fastv.py [--model tiny-native] [--frames 64] [--method none]
                                  [--fastv 1:64,1:256] [--repeats 5] [--device cpu]

The video is a generated test clip; its frames are encoded and compressed once with ``--method`` (the
pre-LLM step), then the prompt (chat template around the visual tokens) is prefilled:

* ``transformers``: the LM's own forward with a fresh cache and ``logits_to_keep=1`` (what
  ``generate`` runs first);
* ``fastv K:R``: :func:`vidpool.llm.fastv.fastv_prefill`, layers run one by one, ``R`` visual tokens kept
  from layer ``K`` on.

For each it prints the median prefill time over ``--repeats`` runs (after one warm-up), the peak tensor
memory of one run (``vidpool.schedule.measure_peak``: CPU allocator events, or CUDA's peak counter),
the KV cache it leaves, the plan's prediction of the KV cache and prefill working set
(``kv_cache + lm_activations`` minus the visual tokens, which exist before the prefill), and whether
the first generated token equals transformers'.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vidpool.llm import load_model
from vidpool.llm.fastv import decoder_stack, fastv_prefill
from vidpool.models import build_model
from vidpool.options import comma_list, fastv_option, positive_int
from vidpool.pipeline import encode_video
from vidpool.schedule import format_bytes, measure_peak, plan
from vidpool.video import make_test_video

QUESTION = "What happens in the video?"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, repeats: int, device: str) -> float:
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cache_bytes(cache) -> int:
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="tiny-native", help="a name of 'vidpool models list' (default tiny-native)"
    )
    parser.add_argument("--frames", type=positive_int, default=64)
    parser.add_argument("--method", default="none", help="the pre-LLM compression method (default none)")
    parser.add_argument(
        "--fastv", type=comma_list(fastv_option), default=(fastv_option("1:64"),), metavar="K:R,..."
    )
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = load_model(build_model(args.model, Path("checkpoints")), device=args.device)
    lm = model.language_model
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip.mp4"
        make_test_video(video, num_frames=args.frames, size=(320, 240))
        base = plan(video, model, args.device, num_frames=args.frames, method=args.method, max_new_tokens=1)
        encoded = encode_video(model, video, base)
    tokens = model.visual_tokens(encoded.features, method=base.method, budget=base.budget, **base.params)
    embeds, visual = model.prompt_embeds(tokens, QUESTION, timestamps=encoded.timestamps)
    positions = torch.arange(embeds.shape[1], device=embeds.device)[None]
    stack = decoder_stack(lm)
    token_bytes = tokens.numel() * tokens.element_size()
    spec = model.lm_spec
    print(
        f"{args.model} ({spec['num_layers']} layers, hidden {spec['hidden_size']}) on {args.device}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads: {args.frames} frames, {args.method!r} -> "
        f"{tokens.shape[0]} visual tokens in a prompt of {embeds.shape[1]}"
    )
    print(f"{'prefill':<22}{'median ms':>10}{'peak':>12}{'KV cache':>12}{'planned':>12}  first token")

    def plain():
        with torch.inference_mode():
            out = lm(inputs_embeds=embeds, use_cache=True, logits_to_keep=1)
        # transformers 5.0 names the returned cache past_key_values, later releases cache
        return out.logits[0, -1], out["cache"] if "cache" in out else out["past_key_values"]

    def pruned(fastv):
        def run():
            from transformers import DynamicCache

            cache = DynamicCache()
            with torch.inference_mode():
                result = fastv_prefill(stack, embeds, positions, visual, fastv, cache)
            return result.logits[0], cache

        return run

    reference = int(plain()[0].argmax())
    rows = [("transformers", plain, None)] + [
        (f"fastv {f.layer}:{f.budget or f.keep}", pruned(f), f) for f in args.fastv
    ]
    for name, run, fastv in rows:
        seconds = timed(run, args.repeats, args.device)
        (logits, cache), peak = measure_peak(run, args.device)
        # the plan of this prompt exactly: its frames, method and text length, one new token
        planned = plan(
            None,
            model,
            args.device,
            num_frames=args.frames,
            method=args.method,
            max_new_tokens=1,
            prompt_tokens=embeds.shape[1] - tokens.shape[0],
            fastv=fastv,
        ).memory
        predicted = planned.kv_cache + planned.lm_activations - token_bytes
        same = "same" if int(logits.argmax()) == reference else "differs"
        print(
            f"{name:<22}{seconds * 1e3:>10.1f}{format_bytes(peak):>12}{format_bytes(cache_bytes(cache)):>12}"
            f"{format_bytes(predicted):>12}  {same}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
