"""Qwen-VL kinds: prefill time and peak memory of the tiny checkpoints on the CPU, and the planned memory of a
Qwen2.5-VL-7B-shaped config (config.json only, no weights) with and without compression.

    python scripts/bench_qwen.py measure            # tiny-qwen2.5-vl and tiny-qwen3-vl, 64 frames, CPU
    python scripts/bench_qwen.py plan               # the 7B-shaped config at 64 and 256 frames on an 80 GB GPU
    python scripts/bench_qwen.py peaks              # the tiny ones: planned vs measured peak of a whole run

``measure`` encodes 64 frames of a generated 16:9 clip (320x180, 96 frames) once per model, then times the
prefill (``generate`` with one new token, the best of 7) and measures its peak (torch's CPU allocator, the
weights and features excluded) for every token kept and for ``divprune`` at a quarter of them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

#: Qwen2.5-VL-7B-Instruct's published config.json shape (transformers' field names)
QWEN2_5_VL_7B = {
    "model_type": "qwen2_5_vl",
    "architectures": ["Qwen2_5_VLForConditionalGeneration"],
    "image_token_id": 151655,
    "video_token_id": 151656,
    "vision_start_token_id": 151652,
    "vision_end_token_id": 151653,
    "tie_word_embeddings": False,
    "text_config": {
        "model_type": "qwen2_5_vl_text",
        "vocab_size": 152064,
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "max_position_embeddings": 128000,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]},
    },
    "vision_config": {
        "model_type": "qwen2_5_vl_vision",
        "depth": 32,
        "hidden_size": 1280,
        "intermediate_size": 3420,
        "num_heads": 16,
        "out_hidden_size": 3584,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "tokens_per_second": 2,
        "window_size": 112,
        "fullatt_block_indexes": [7, 15, 23, 31],
    },
}
ARMS = (
    ("none", None),
    ("spatial", {"stride": 2}),
    ("progressive", {"budget": 4096}),
    ("none", {"fastv": (2, 0.5)}),  # FastV's default: half the visual tokens from layer 2
    ("progressive", {"budget": 4096, "fastv": (2, 1024)}),
)


def plan_7b(frames: tuple[int, ...] = (64, 256), memory: str = "80GB") -> list[dict]:
    """Planned memory of the 7B-shaped config in bfloat16 on a GPU of ``memory``, per frame count and arm."""
    from vidpool.llm import list_kinds  # noqa: F401  (registers the kinds with the planner)
    from vidpool.options import FastV
    from vidpool.schedule import plan
    from vidpool.video import VideoInfo

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "qwen2.5-vl-7b-shape"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(QWEN2_5_VL_7B))
        video = VideoInfo(
            path="long.mp4",
            num_frames=3000,
            fps=25.0,
            width=1280,
            height=720,
            duration=120.0,
            codec="h264",
            rotation=0,
            backend="pyav",
        )
        for count in frames:
            for method, options in ARMS:
                extra = dict(options or {})
                budget = extra.pop("budget", None)
                fastv = extra.pop("fastv", None)
                if fastv is not None:
                    layer, keep = fastv
                    fastv = FastV(layer=layer, keep=keep) if isinstance(keep, float) else FastV(layer, keep)
                p = plan(
                    video,
                    str(folder),
                    "cuda",
                    max_memory=memory,
                    num_frames=count,
                    method=method,
                    method_params=extra or None,
                    budget=budget,
                    fastv=fastv,
                )
                m = p.memory
                rows.append(
                    {
                        "frames": p.num_frames,
                        "method": method + (f" {options}" if options else ""),
                        "visual_tokens": p.num_tokens,
                        "weights_gib": m.weights / 2**30,
                        "kv_cache_gib": m.kv_cache / 2**30,
                        "peak_gib": m.peak / 2**30,
                        "encoder_batch": p.encoder_batch,
                    }
                )
    return rows


def measure_tiny(frames: int = 64, repeats: int = 7) -> list[dict]:
    """Prefill seconds (the best of ``repeats``: the CPU is shared) and peak bytes of the tiny Qwen checkpoints."""
    import torch

    from vidpool.llm import load_model
    from vidpool.models import build_model
    from vidpool.schedule import measure_peak
    from vidpool.video import VideoReader, make_test_video

    root = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        make_test_video(path, num_frames=96, size=(320, 180))
        with VideoReader(path) as reader:
            sampled = reader.sample(num_frames=frames)
        stamps = list(sampled.timestamps) if sampled.timestamps is not None else None
        for name in ("tiny-qwen2.5-vl", "tiny-qwen3-vl"):
            model = load_model(build_model(name, root / "checkpoints"))
            with torch.inference_mode():
                features = model.encode_patches(sampled.frames)
            total = int(features.shape[0] * features.shape[1] * features.shape[2])
            for method, budget in (("none", None), ("divprune", total // 4)):
                tokens = model.visual_tokens(features, method=method, budget=budget)

                def prefill(tokens=tokens, model=model):
                    return model.generate(tokens, "What happens?", timestamps=stamps, max_new_tokens=1)

                seconds = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    prefill()
                    seconds.append(time.perf_counter() - start)
                _, peak = measure_peak(prefill)
                rows.append(
                    {
                        "model": name,
                        "frames": frames,
                        "method": method,
                        "visual_tokens": int(tokens.shape[0]),
                        "prefill_s": min(seconds),
                        "prefill_peak_mib": peak / 2**20,
                    }
                )
    return rows


def peaks() -> list[dict]:
    """Predicted peak (no margin) vs the measured one of a whole ``VideoChat.ask`` run (weights counted
    exactly, tensors through torch's CPU allocator), as ``tests/test_llm_qwen_plan.py`` checks it."""
    from vidpool.llm import load_model
    from vidpool.models import build_model
    from vidpool.pipeline import VideoChat
    from vidpool.schedule import measure_peak, plan
    from vidpool.video import make_test_video

    root = Path(__file__).resolve().parents[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "clip.mp4"
        make_test_video(video, num_frames=96, size=(320, 180))
        for name in ("tiny-qwen2.5-vl", "tiny-qwen3-vl"):
            model = load_model(build_model(name, root / "checkpoints"))
            for frames, method, budget in ((16, None, None), (64, "none", None), (64, "divprune", 40)):
                extra = {} if budget is None else {"budget": budget}
                p = plan(video, model, "cpu", max_new_tokens=8, num_frames=frames, method=method, **extra)
                chat = VideoChat(video, model, plan=p)
                _, peak = measure_peak(lambda chat=chat: chat.ask("What happens in the video?"))
                measured = peak + p.memory.weights
                rows.append(
                    {
                        "model": name,
                        "frames": frames,
                        "method": p.method,
                        "visual_tokens": p.num_tokens,
                        "predicted_mib": p.memory.peak / 2**20,
                        "measured_mib": measured / 2**20,
                        "ratio": measured / p.memory.peak,
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=("measure", "plan", "peaks"))
    args = parser.parse_args()
    rows = {"measure": measure_tiny, "plan": plan_7b, "peaks": peaks}[args.what]()
    for row in rows:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))


if __name__ == "__main__":
    main()
