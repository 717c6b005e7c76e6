"""Pictures of what compression kept: heatmaps of ``Compressed.weight`` / ``assign`` and prompt scores.

Pure numpy over a ``Compressed`` result of one video (``assign``/``weight`` ``[T, h, w]``) and its frames
``[T, H, W, 3]``; nothing here knows Gradio, so the panel's pictures are tested as arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vidpool.video import sample_positions

__all__ = [
    "ROW_LABELS",
    "KeptTiles",
    "heat_colors",
    "kept_picture",
    "kept_tiles",
    "overlay",
    "patch_weights",
    "pick_frames",
    "token_colors",
]

# dark blue -> purple -> orange -> light yellow: ordered in lightness, readable as "more"
_ANCHORS = np.array(
    [[12, 7, 60], [110, 20, 120], [220, 80, 50], [250, 190, 40], [252, 250, 200]], dtype=np.float32
)


def _single(tensor: Any) -> np.ndarray:
    """``[T, h, w]`` numpy of one video's ``assign``/``weight``/scores (a batch of one is unwrapped)."""
    array = tensor.detach().float().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3:
        raise ValueError(f"expected one video's [T, h, w] map, got shape {array.shape}")
    return array


def patch_weights(compressed: Any) -> np.ndarray:
    """float32 ``[T, h, w]``: each patch's weight in the token it feeds, ``0`` where it was dropped."""
    weight = _single(compressed.weight).astype(np.float32)
    assign = _single(compressed.assign)
    return np.where(assign >= 0, weight, 0.0).astype(np.float32)


def heat_colors(values: np.ndarray) -> np.ndarray:
    """uint8 ``[..., 3]`` colours of ``values`` in ``[0, 1]`` (clipped): dark for 0, light for 1."""
    v = np.clip(np.nan_to_num(np.asarray(values, dtype=np.float32)), 0.0, 1.0) * (len(_ANCHORS) - 1)
    low = np.floor(v).astype(np.int64).clip(0, len(_ANCHORS) - 2)
    frac = (v - low)[..., None]
    return np.round(_ANCHORS[low] * (1 - frac) + _ANCHORS[low + 1] * frac).astype(np.uint8)


def token_colors(assign: np.ndarray) -> np.ndarray:
    """uint8 ``[h, w, 3]``: one colour per output token (neighbouring token ids differ), grey where dropped."""
    assign = np.asarray(assign)
    # the golden-ratio walk spreads consecutive ids far apart on the hue circle
    hue = (assign.astype(np.float64) * 0.61803398875) % 1.0
    rgb = np.stack([_hue_channel(hue, shift) for shift in (0.0, 1 / 3, 2 / 3)], axis=-1)
    colors = np.round(60 + 170 * rgb).astype(np.uint8)
    colors[assign < 0] = 70
    return colors


def _hue_channel(hue: np.ndarray, shift: float) -> np.ndarray:
    return 0.5 + 0.5 * np.cos(2 * np.pi * (hue - shift))


def _nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image [h, w, ...]`` resized to ``[height, width, ...]`` by nearest neighbour."""
    rows = np.minimum((np.arange(height) * image.shape[0]) // height, image.shape[0] - 1)
    cols = np.minimum((np.arange(width) * image.shape[1]) // width, image.shape[1] - 1)
    return image[rows][:, cols]


def overlay(frame: np.ndarray, colors: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """uint8 ``[H, W, 3]``: ``colors [h, w, 3]`` (one per patch) stretched over ``frame [H, W, 3]``."""
    frame = np.asarray(frame, dtype=np.float32)
    stretched = _nearest(np.asarray(colors, dtype=np.float32), frame.shape[0], frame.shape[1])
    return np.round(frame * (1 - alpha) + stretched * alpha).clip(0, 255).astype(np.uint8)


def pick_frames(timestamps: Sequence[float], available: Sequence[float]) -> list[int]:
    """For each of ``timestamps``, the index of the nearest of ``available`` (frames decoded for display)."""
    available = np.asarray(available, dtype=np.float64)
    return [int(np.abs(available - t).argmin()) for t in np.asarray(timestamps, dtype=np.float64)]


def _columns(count: int, limit: int) -> list[int]:
    # the frames shown are chosen as frames are sampled from a video: the one rule of vidpool.video
    if count <= limit:
        return list(range(count))
    return sample_positions(count, num_frames=limit).tolist()


#: the rows of the picture of what was kept, top to bottom (the third only when the method used scores)
ROW_LABELS = ("weight in its token", "token it fed", "relevance to the question")


@dataclass
class KeptTiles:
    """The tiles of the picture of what was kept: ``columns`` are the indices (into the sampled frames)
    shown, ``rows`` pairs each of :data:`ROW_LABELS` with one uint8 ``[h, w, 3]`` tile per column, and
    ``total`` counts the sampled frames (``len(columns) < total`` when only some are shown)."""

    columns: list[int]
    rows: list[tuple[str, list[np.ndarray]]]
    total: int


def kept_tiles(
    frames: np.ndarray,
    compressed: Any,
    scores: Any = None,
    *,
    max_frames: int = 8,
    tile_height: int = 120,
) -> KeptTiles:
    """The tiles of :func:`kept_picture`, labelled (arguments as there)."""
    weights = patch_weights(compressed)
    assign = _single(compressed.assign)
    frames = np.asarray(frames)
    if frames.shape[0] != weights.shape[0]:
        raise ValueError(f"{frames.shape[0]} frames for a compression of {weights.shape[0]} frames")
    peak = float(weights.max()) or 1.0
    score_maps = _single(scores) if scores is not None else None
    tile_width = max(1, round(tile_height * frames.shape[2] / frames.shape[1]))
    columns = _columns(len(frames), max_frames)
    rows: list[list[np.ndarray]] = [[], []] + ([[]] if score_maps is not None else [])
    for t in columns:
        frame = _nearest(frames[t], tile_height, tile_width)
        rows[0].append(overlay(frame, heat_colors(weights[t] / peak)))
        rows[1].append(overlay(frame, token_colors(assign[t]), alpha=0.55))
        if score_maps is not None:
            s = score_maps[t]
            span = float(s.max() - s.min()) or 1.0
            rows[2].append(overlay(frame, heat_colors((s - s.min()) / span)))
    return KeptTiles(columns, list(zip(ROW_LABELS, rows)), len(frames))


def kept_picture(
    frames: np.ndarray,
    compressed: Any,
    scores: Any = None,
    *,
    max_frames: int = 8,
    tile_height: int = 120,
) -> np.ndarray:
    """uint8 picture of what was kept: one column per frame (at most ``max_frames``, evenly chosen), rows

    1. each patch's weight in its token (``patch_weights``, scaled so the largest is light; dropped: dark),
    2. which output token each patch fed (``assign``: one colour per token, grey where dropped),
    3. with ``scores`` ``[T, h, w]``: the prompt relevance the method used (scaled per frame).

    ``frames [T, H, W, 3]`` are the sampled frames, in the order of the compressed ``T`` axis.
    """
    tiles = kept_tiles(frames, compressed, scores, max_frames=max_frames, tile_height=tile_height)
    gap = np.full((tile_height, 2, 3), 255, dtype=np.uint8)
    lines = [np.concatenate([x for tile in row for x in (tile, gap)][:-1], axis=1) for _, row in tiles.rows]
    bar = np.full((2, lines[0].shape[1], 3), 255, dtype=np.uint8)
    return np.concatenate([x for line in lines for x in (line, bar)][:-1], axis=0)
