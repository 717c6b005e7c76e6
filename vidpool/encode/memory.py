"""Peak memory one frame adds to a CLIP encoder batch, from config numbers alone.

One formula serves the encoder's batch sizes (:meth:`vidpool.CLIPEncoder.activation_bytes_per_frame`)
and the planner (``vidpool.schedule``), which must size a run without building the model. It follows
the tensors an open_clip ViT holds at once during inference (``tokens = grid + 1``, ``W`` the width,
``b`` the dtype's bytes), read from torch's CPU allocator events (``vidpool.schedule.measure_peak``):

* the decoded uint8 frame ``3 x H x W`` (the caller's batch, or its copy on the device);
* the preprocessed pixels ``3 x S x S x b``; while preprocessing, the uint8 resize output and a
  float32 copy instead (resizing runs in uint8, so no float copy of a full-size frame exists);
* inside the deepest block that runs, in units of ``tokens x W`` values: the residual stream
  (the block's input and the embedding that the caller keeps: 2, or 1 in the first block where they
  are one tensor), the layer-normed input (1), and either attention's fused q/k/v with its split
  copies (3 + 3, or 3 + the ``heads x tokens^2`` scores, which the CPU kernel materialises) or, with
  the post-attention residual (1), the MLP hidden state and its activation (``2 x mlp_ratio`` for
  GELU, ``3 x mlp_ratio`` for QuickGELU, whose ``x * sigmoid(1.702 x)`` keeps one more);
* the outputs written for the frame: patch tokens ``grid x W`` (and ``grid x D`` joint embeddings).

Measured per 240x320 frame (``python -m vidpool.encode.bench --estimate``, float32, CPU, frames
included), equal to this formula: tiny-clip-32 268,672 B, tiny-clip-48 409,344 B, random ViT-B-16
8,696,832 B (MLP-bound) and random ViT-L-14-336 39,432,256 B (bound by the attention scores).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from vidpool.encode.config import ModelSpec
    from vidpool.encode.encoder import CLIPEncoder

__all__ = [
    "clip_activation_bytes_per_frame",
    "measured_bytes_per_frame",
    "vit_activation_bytes_per_frame",
]


def vit_activation_bytes_per_frame(
    width: int,
    image_size: int,
    patch: int,
    heads: int,
    dtype_bytes: int,
    *,
    mlp_ratio: float = 4.0,
    frame_hw: tuple[int, int] = (0, 0),
    embed_dim: int = 0,
    quick_gelu: bool = False,
    first_block: bool = False,
    attention_matrix: bool = True,
) -> int:
    """Peak bytes one frame adds to a ViT encoder batch (see the module doc for each term).

    Args:
        width: vision width ``W`` (channels of the patch tokens).
        image_size: side ``S`` of the square model input, in pixels.
        patch: patch side; the sequence has ``(S // patch)^2 + 1`` tokens.
        heads: attention heads (for the ``heads x tokens^2`` attention scores).
        dtype_bytes: bytes per activation value (4 for float32, 2 for float16/bfloat16).
        mlp_ratio: MLP hidden size over ``W``.
        frame_hw: decoded ``(height, width)`` of the uint8 input frame; ``(0, 0)`` leaves it out.
        embed_dim: joint-space size ``D`` when joint embeddings are also written (0: not asked for).
        quick_gelu: the MLP uses QuickGELU (open_clip configs with ``"quick_gelu": true``).
        first_block: the deepest block that runs is the first one (a 1-block forward).
        attention_matrix: count the materialised attention scores (True for the CPU kernel).

    Returns:
        Bytes, a pure function of the numbers above.
    """
    grid = (image_size // patch) ** 2
    tokens = grid + 1
    unit = tokens * width
    hidden = int(width * mlp_ratio)
    stream = 2 if first_block else 3
    scores = heads * tokens * tokens if attention_matrix else 0
    # before attention the post-attention residual does not exist yet: one unit less of stream
    attention = (stream + 3) * unit + max(3 * unit, scores)
    mlp = (stream + 1) * unit + (3 if quick_gelu else 2) * tokens * hidden
    pixels = 3 * image_size * image_size * dtype_bytes
    blocks = pixels + max(attention, mlp) * dtype_bytes
    side = min(frame_hw) if frame_hw[0] and frame_hw[1] else image_size
    resized_long = max(frame_hw) * image_size // side if side else image_size
    preprocess = 3 * image_size * max(resized_long, image_size) + 3 * image_size * image_size * 4
    if dtype_bytes != 4:
        preprocess += pixels
    outputs = grid * (width + embed_dim) * dtype_bytes
    frame = 3 * frame_hw[0] * frame_hw[1]
    return int(frame + outputs + max(blocks, preprocess))


def clip_activation_bytes_per_frame(
    spec: ModelSpec,
    dtype_bytes: int,
    *,
    frame_hw: tuple[int, int] = (0, 0),
    joint: bool = False,
    block: int | None = None,
    attention_matrix: bool = True,
) -> int:
    """:func:`vit_activation_bytes_per_frame` for a :class:`vidpool.encode.ModelSpec` (config geometry).

    ``block`` is the index of the block whose output is taken (``None``: the second-to-last, LLaVA's
    layer); with ``joint`` every block runs.
    """
    layers = int(spec.layers)
    if joint:
        deepest = layers - 1
    elif block is None:
        deepest = max(0, layers - 2)
    else:
        deepest = block
    return vit_activation_bytes_per_frame(
        spec.width,
        spec.image_size[0],
        spec.patch_size[0],
        spec.heads,
        dtype_bytes,
        mlp_ratio=spec.mlp_ratio,
        frame_hw=frame_hw,
        embed_dim=spec.embed_dim if joint else 0,
        quick_gelu=spec.quick_gelu,
        first_block=deepest == 0,
        attention_matrix=attention_matrix,
    )


def measured_bytes_per_frame(encoder: CLIPEncoder, frames: torch.Tensor, *, joint: bool = False) -> float:
    """Measured peak bytes per frame of one ``encoder.encode_frames(frames)`` batch on the CPU.

    The peak of torch's allocator events during the call (``vidpool.schedule.measure_peak``) plus the
    uint8 ``frames [T, H, W, 3]`` themselves, divided by ``T``. Give the encoder a budget that fits
    all ``T`` frames in one batch.
    """
    from vidpool.schedule.measure import measure_peak

    _, peak = measure_peak(lambda: encoder.encode_frames(frames, joint=joint))
    return (peak + frames.numel() * frames.element_size()) / int(frames.shape[0])
