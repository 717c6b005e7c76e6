"""Sizes of Qwen2.5-VL / Qwen3-VL checkpoints from their config files alone, for the planner.

The merged grid of a frame follows the video processor's ``smart_resize`` (sides rounded to multiples of
``patch x merge`` pixels, the area kept between its min and max pixels); two frames make one temporal patch,
so ``T`` frames give ``ceil(T / 2)`` grids of ``H' x W'`` tokens in the LM's width. The LM is LLaMA-shaped
(GQA head layout, ``max_position_embeddings`` positions).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vidpool.encode.memory import DEFAULT_FRAME_HW
from vidpool.errors import CheckpointError

__all__ = [
    "CLASSES",
    "SHARE_FRAMES",
    "frame_pixels_range",
    "merged_grid",
    "qwen_folder_spec",
    "qwen_vision_activation_bytes",
    "qwen_vision_param_count",
    "smart_resize",
    "video_pixels_range",
]

#: Qwen3-VL: the run whose per-frame share of the processor's video pixel range every batch gets (the
#: model's default frame count, ``vidpool.llm.ModelConfig.num_frames``)
SHARE_FRAMES = 8
CLASSES = {
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "qwen3_vl": "Qwen3VLForConditionalGeneration",
}
# the video processors' defaults when a folder's config does not say (transformers' Qwen2-VL / Qwen3-VL ones)
_DEFAULT_PIXELS = {"qwen2_5_vl": (128 * 28 * 28, 768 * 28 * 28), "qwen3_vl": (128 * 32 * 32, 768 * 32 * 32)}


def smart_resize(height: int, width: int, factor: int, min_pixels: int, max_pixels: int) -> tuple[int, int]:
    """Qwen's resize rule: both sides multiples of ``factor``, the area within ``[min_pixels, max_pixels]``,
    the aspect ratio kept as closely as that allows."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return h, w


def merged_grid(
    frame_hw: tuple[int, int] | None, patch: int, merge: int, min_pixels: float, max_pixels: float
) -> tuple[int, int]:
    """``(H', W')`` merged tokens of a frame of ``frame_hw`` (default 720p) whose area is kept within
    ``[min_pixels, max_pixels]``."""
    height, width = frame_hw or DEFAULT_FRAME_HW
    h, w = smart_resize(int(height), int(width), patch * merge, min_pixels, max_pixels)
    return h // (patch * merge), w // (patch * merge)


def frame_pixels_range(kind: str, processor: Any, temporal: int = 2) -> tuple[float, float]:
    """``(min, max)`` pixels of one frame. Qwen2.5-VL's video processor bounds each frame; Qwen3-VL's bounds
    a whole call's frames together, which vidpool (encoding in batches that must agree) fixes at the share
    of one frame in a run of :data:`SHARE_FRAMES` frames."""
    low, high = video_pixels_range(processor)
    if kind == "qwen3_vl":
        frames = -(-SHARE_FRAMES // temporal) * temporal
        return low / frames, high / frames
    return float(low), float(high)


def video_pixels_range(processor: Any) -> tuple[int, int]:
    """``(min_pixels, max_pixels)`` of a loaded video processor (or a dict of its config)."""
    get = processor.get if isinstance(processor, dict) else lambda k, d=None: getattr(processor, k, d)
    size = get("size") or {}
    size = (
        size
        if isinstance(size, dict)
        else {k: getattr(size, k, None) for k in ("shortest_edge", "longest_edge")}
    )
    low = get("min_pixels") or size.get("shortest_edge")
    high = get("max_pixels") or size.get("longest_edge")
    if not low or not high:
        raise CheckpointError(
            "the video processor config names no min/max pixels (size.shortest_edge/longest_edge)"
        )
    return int(low), int(high)


def qwen_vision_param_count(vision: dict[str, Any]) -> int:
    """Parameters of a Qwen2.5-VL / Qwen3-VL vision tower: patch embedding, blocks, the 2x2 merger and
    (Qwen3-VL) the position table and DeepStack mergers."""
    width = int(vision.get("hidden_size", 1280))
    inter = int(vision.get("intermediate_size", 4 * width))
    depth = int(vision.get("depth", 32))
    patch, tp = int(vision.get("patch_size", 14)), int(vision.get("temporal_patch_size", 2))
    merge = int(vision.get("spatial_merge_size", 2))
    out = int(vision.get("out_hidden_size", width))
    qwen3 = "deepstack_visual_indexes" in vision
    attn = 4 * width * width + 4 * width
    # Qwen3-VL: fc1, fc2; Qwen2.5-VL: gate, up, down (all with biases)
    mlp = 2 * width * inter + inter + width if qwen3 else 3 * width * inter + 2 * inter + width
    norms = (4 if qwen3 else 2) * width
    embed = 3 * tp * patch * patch * width + (width if qwen3 else 0)
    merged = width * merge * merge
    merger = merged * merged + merged + merged * out + out + (2 if qwen3 else 1) * width
    extra = 0
    if qwen3:
        extra += int(vision.get("num_position_embeddings", 2304)) * width
        extra += len(vision.get("deepstack_visual_indexes") or ()) * (merger + 2 * merged - 2 * width)
    return depth * (attn + mlp + norms) + embed + merger + extra


def qwen_vision_activation_bytes(
    vision: dict[str, Any],
    grid: tuple[int, int],
    dtype_bytes: int,
    merge: int,
    *,
    frame_hw: tuple[int, int] | None = None,
) -> int:
    """Peak bytes one decoded frame adds to a batch through the processor and the tower: the float32 frame and
    its resized copy in the processor, then per patch the float32 pixels, a block's hidden states, attention
    projections and MLP, DeepStack's mergers, and the merged outputs."""
    height, width = frame_hw or DEFAULT_FRAME_HW
    hidden = int(vision.get("hidden_size", 1280))
    inter = int(vision.get("intermediate_size", 4 * hidden))
    patch, tp = int(vision.get("patch_size", 14)), int(vision.get("temporal_patch_size", 2))
    out = int(vision.get("out_hidden_size", hidden))
    levels = len(vision.get("deepstack_visual_indexes") or ())
    patches = grid[0] * grid[1] * merge * merge  # ViT patches of one frame's temporal patch
    resized = patches * patch * patch * 3
    processor = 4 * (3 * int(height) * int(width) + resized)
    # DeepStack: each level's merger input and hidden layer beside the blocks' states
    per_patch = 4 * 3 * tp * patch * patch / tp + dtype_bytes * (6 * hidden + 2 * inter + 2 * levels * hidden)
    merged = grid[0] * grid[1] * out * (1 + levels) * dtype_bytes
    return int(processor + patches * per_patch + merged)


def qwen_folder_spec(folder: Path, dtype_bytes: int, device_type: str) -> Any:
    """The planner's ``ModelSpec`` of a Qwen2.5-VL / Qwen3-VL folder from its config files (no weights)."""
    import json

    from vidpool.schedule.estimate import ModelSpec
    from vidpool.schedule.spec import lm_fields, read_json

    cfg = read_json(folder / "config.json")
    kind = cfg.get("model_type")
    if kind not in CLASSES or "text_config" not in cfg or "vision_config" not in cfg:
        raise CheckpointError(f"{folder}/config.json is not a Qwen2.5-VL or Qwen3-VL config")
    text, vision = cfg["text_config"], cfg["vision_config"]
    processor: dict[str, Any] = {}
    for name in ("video_preprocessor_config.json", "preprocessor_config.json", "processor_config.json"):
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text())
            processor = data.get("video_processor", data)
            break
    if not processor:
        processor = {"size": dict(zip(("shortest_edge", "longest_edge"), _DEFAULT_PIXELS[kind]))}
    patch, merge = int(vision.get("patch_size", 14)), int(vision.get("spatial_merge_size", 2))
    temporal = int(vision.get("temporal_patch_size", 2))
    grid = merged_grid(None, patch, merge, *frame_pixels_range(kind, processor, temporal))
    out = int(vision.get("out_hidden_size", text["hidden_size"]))
    levels = len(vision.get("deepstack_visual_indexes") or ())
    tied = cfg.get("tie_word_embeddings", text.get("tie_word_embeddings"))
    lm = lm_fields({**text, "tie_word_embeddings": tied}, dtype_bytes)
    # beyond a LLaMA decoder: Qwen2.5-VL's q/k/v biases, Qwen3-VL's q/k norms
    head_dim, kv = lm["head_dim"], lm["num_kv_heads"]
    extra = head_dim * (lm["num_heads"] + 2 * kv) if kind == "qwen2_5_vl" else 2 * head_dim
    lm["lm_param_bytes"] += lm["num_layers"] * extra * dtype_bytes
    return ModelSpec(
        vision_param_bytes=qwen_vision_param_count(vision) * dtype_bytes,
        activation_bytes_per_frame=qwen_vision_activation_bytes(vision, grid, dtype_bytes, merge),
        grid=grid,
        width=out * (1 + levels),
        image_size=grid[0] * patch * merge,
        projector_param_bytes=0,
        projector_layers=1,
        method="none",
        method_params={},
        compress_position="after",
        frames_per_step=temporal,
        name=folder.name,
        **lm,
    )
