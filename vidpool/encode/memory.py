"""Peak memory one frame adds to a CLIP encoder batch, from config numbers alone.

One formula serves the encoder's batch sizes (:meth:`vidpool.CLIPEncoder.activation_bytes_per_frame`)
and the planner (``vidpool.schedule``), which must size a run without building the model. It follows
the tensors an open_clip ViT holds at once during inference (``tokens = grid + 1``, ``W`` the width,
``b`` the dtype's bytes), read from torch's CPU allocator events (``vidpool.encode.measure.measure_peak``):

* the decoded uint8 frame ``3 x H x W``: the caller's batch on the CPU, for the whole call; on a GPU
  its device copy, during preprocessing only;
* the preprocessed pixels ``3 x S x S x b``; while preprocessing, on the CPU the uint8 resize output
  and a float32 copy instead (resizing runs in uint8 there, so no float copy of a full-size frame
  exists); on a GPU, whose kernels resize floats only, a float32 copy of the decoded frame, each of
  the two resize passes' float32 output next to its input, then the last next to the pixels;
* inside the deepest block that runs, in units of ``tokens x W`` values: the residual stream
  (the block's input and the embedding that the caller keeps: 2, or 1 in the first block where they
  are one tensor), the layer-normed input (1), and either attention's fused q/k/v with its split
  copies (3 + 3, or 3 + the ``heads x tokens^2`` scores, which the CPU kernel materialises and
  CUDA's fused attention never holds) or, with
  the post-attention residual (1), the MLP hidden state and its activation (``2 x mlp_ratio`` for
  GELU, ``3 x mlp_ratio`` for QuickGELU, whose ``x * sigmoid(1.702 x)`` keeps one more);
* the outputs written for the frame: patch tokens ``grid x W`` (and ``grid x D`` joint embeddings).

Measured per 240x320 frame (``python scripts/bench_encode.py --estimate``, float32, CPU, frames
included), equal to this formula: tiny-clip-32 268,672 B, tiny-clip-48 409,344 B, random ViT-B-16
8,696,832 B (MLP-bound) and random ViT-L-14-336 39,432,256 B (bound by the attention scores).
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from vidpool.encode.config import EncoderSpec
    from vidpool.encode.encoder import CLIPEncoder

# Decoded ``(height, width)`` the estimates assume when the caller does not know the video's: 720p,
# a common decode size, and larger than most, so a batch sized for it leaves room for smaller frames.
DEFAULT_FRAME_HW = (720, 1280)

__all__ = [
    "DEFAULT_FRAME_HW",
    "clip_activation_bytes_per_frame",
    "hf_vit_activation_bytes_per_frame",
    "measured_bytes_per_frame",
    "preprocess_bytes_per_frame",
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
    device_type: str = "cpu",
    attention_matrix: bool | None = None,
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
        device_type: where the encoder runs (``"cpu"``, ``"cuda"``, ...): it decides how
            preprocessing resizes and, unless ``attention_matrix`` is given, whether attention
            materialises its scores (the CPU kernel does, CUDA's fused kernels do not).
        attention_matrix: count the ``heads x tokens^2`` attention scores (default: on the CPU only).

    Returns:
        Bytes, a pure function of the numbers above.
    """
    grid = (image_size // patch) ** 2
    tokens = grid + 1
    unit = tokens * width
    hidden = int(width * mlp_ratio)
    stream = 2 if first_block else 3
    if attention_matrix is None:
        attention_matrix = device_type == "cpu"
    scores = heads * tokens * tokens if attention_matrix else 0
    # before attention the post-attention residual does not exist yet: one unit less of stream
    attention = (stream + 3) * unit + max(3 * unit, scores)
    mlp = (stream + 1) * unit + (3 if quick_gelu else 2) * tokens * hidden
    pixels = 3 * image_size * image_size * dtype_bytes
    blocks = pixels + max(attention, mlp) * dtype_bytes
    preprocess = preprocess_bytes_per_frame(
        image_size, dtype_bytes, frame_hw=frame_hw, device_type=device_type
    )
    outputs = grid * (width + embed_dim) * dtype_bytes
    return int(outputs + _with_frame(3 * frame_hw[0] * frame_hw[1], preprocess, blocks, device_type))


def _with_frame(frame: int, preprocess: int, blocks: int, device_type: str) -> int:
    """The peak of preprocessing and the blocks with the uint8 frame: the caller's batch stays through
    both on the CPU; on a GPU its device copy is gone once preprocessing is done (measured). Frames
    that a caller already holds on the GPU stay through the blocks too, ``3·H·W`` bytes a frame more
    than this counts (vidpool's reader always decodes into CPU memory)."""
    if device_type == "cpu":
        return frame + max(preprocess, blocks)
    return max(frame + preprocess, blocks)


def preprocess_bytes_per_frame(
    image_size: int,
    dtype_bytes: int,
    *,
    frame_hw: tuple[int, int] = (0, 0),
    device_type: str = "cpu",
    squash: bool = False,
) -> int:
    """Peak bytes :func:`vidpool.encode.preprocess_frames` holds for one frame, its input excluded.

    ``squash``: the frame is resized to ``S x S`` (open_clip's ``squash``, LLaVA-OneVision) instead of
    its shortest side to ``S`` and then centre-cropped. ``frame_hw`` ``(0, 0)`` means a frame already
    at the model's size.
    """
    from vidpool.encode.preprocess import resized_size

    pixels = 3 * image_size * image_size * dtype_bytes
    height, width = frame_hw if frame_hw[0] and frame_hw[1] else (image_size, image_size)
    mode = "squash" if squash else "shortest"
    new_h, new_w = resized_size(height, width, (image_size, image_size), mode)
    if (new_h, new_w) == (height, width):
        # no resize: the crop's float32 copy, then the pixels
        return 3 * image_size * image_size * 4 + (pixels if dtype_bytes != 4 or device_type != "cpu" else 0)
    if device_type == "cpu":
        # uint8 resize output, then its float32 copy (and the pixels when they are not float32)
        return 3 * new_h * new_w + 3 * image_size * image_size * 4 + (pixels if dtype_bytes != 4 else 0)
    # float32 frame, then each pass's float32 output next to its input (width first), then the pixels
    steps = [3 * height * width * 4]
    if new_w != width:
        steps.append(3 * height * new_w * 4)
    if new_h != height:
        steps.append(3 * new_h * new_w * 4)
    return max(max(a + b for a, b in pairwise(steps)), steps[-1] + pixels)


def hf_vit_activation_bytes_per_frame(
    width: int,
    image_size: int,
    patch: int,
    heads: int,
    intermediate: int,
    dtype_bytes: int,
    *,
    class_token: bool,
    quick_gelu: bool = False,
    attention: str = "sdpa",
    states: int = 1,
    frame_hw: tuple[int, int] = (0, 0),
    device_type: str = "cpu",
    squash: bool = False,
) -> int:
    """Peak bytes one frame adds to a Hugging Face CLIP/SigLIP vision tower batch run up to the
    selected hidden state(s) (``vidpool.llm.compat.vision_hidden_states`` with ``layers``).

    Measured on CPU with ``vidpool.encode.measure.measure_peak`` (``tokens x W`` units ``U``, ``I`` the MLP
    size, ``k`` 3 for QuickGELU else 2, ``A`` the ``heads x tokens^2`` scores): with fused attention
    (``sdpa``, ``flash_attention_2``) a block holds ``max(4U + k·tokens·I, 6U)``; with ``eager`` the
    scores stay alive through the MLP, ``max(4U + k·tokens·I + A, 6U + 2A)``, where the second ``A``
    is the float32 softmax (4 bytes a score whatever the dtype; on the CPU a half-precision input is
    first upcast, 4 bytes more; not measured on CUDA, where SDPA is the default). Each further
    selected state adds ``U``. On top: the uint8 frame, preprocessing (:func:`preprocess_bytes_per_frame`;
    the pixels live through the forward) and, for several selected states, their concatenation. Equal to the
    measured CPU peak for SigLIP and CLIP towers with both attentions, in float32 and bfloat16, for
    112x112 to 480x640 frames (``tests/test_llm_llava.py``); within 64 B of the CUDA peak for
    OneVision's SigLIP tower with SDPA on an H200 (``scripts/gpu_check.py --llava``).
    """
    grid = (image_size // patch) ** 2
    tokens = grid + (1 if class_token else 0)
    unit = tokens * width
    mlp = (3 if quick_gelu else 2) * tokens * intermediate
    scores = heads * tokens * tokens if attention == "eager" else 0
    b = dtype_bytes
    # eager's float32 softmax next to its input; the CPU kernel first upcasts a half-precision input
    softmax = b + 4 + (4 if b != 4 and device_type == "cpu" else 0)
    block = max((4 * unit + mlp + scores) * b, 6 * unit * b + scores * softmax) + (states - 1) * unit * b
    pixels = 3 * image_size * image_size * dtype_bytes
    preprocess = preprocess_bytes_per_frame(
        image_size, dtype_bytes, frame_hw=frame_hw, device_type=device_type, squash=squash
    )
    # one selected state is returned as a view of itself; several are concatenated into a copy
    outputs = grid * width * states * dtype_bytes if states > 1 else 0
    frame = 3 * frame_hw[0] * frame_hw[1]
    return int(outputs + _with_frame(frame, preprocess, pixels + block, device_type))


def clip_activation_bytes_per_frame(
    spec: EncoderSpec,
    dtype_bytes: int,
    *,
    frame_hw: tuple[int, int] = (0, 0),
    joint: bool = False,
    block: int | None = None,
    device_type: str = "cpu",
    attention_matrix: bool | None = None,
) -> int:
    """:func:`vit_activation_bytes_per_frame` for a :class:`vidpool.encode.EncoderSpec` (config geometry).

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
        device_type=device_type,
        attention_matrix=attention_matrix,
    )


def measured_bytes_per_frame(encoder: CLIPEncoder, frames: torch.Tensor, *, joint: bool = False) -> float:
    """Measured peak bytes per frame of one ``encoder.encode_frames(frames)`` batch.

    CPU: the peak of torch's allocator events during the call (``vidpool.encode.measure.measure_peak``)
    plus the uint8 ``frames [T, H, W, 3]`` themselves. CUDA: ``torch.cuda.max_memory_allocated``
    above what was allocated before the call (the frames' copy on the device included), after one
    warm-up call so that library workspaces already exist. Either is divided by ``T``; give the
    encoder a budget that fits all ``T`` frames in one batch.
    """
    import torch

    device = encoder.device
    if device.type == "cuda":
        encoder.encode_frames(frames[:1], joint=joint)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        out = encoder.encode_frames(frames, joint=joint)
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del out
        return peak / int(frames.shape[0])

    from vidpool.encode.measure import measure_peak

    _, peak = measure_peak(lambda: encoder.encode_frames(frames, joint=joint))
    return (peak + frames.numel() * frames.element_size()) / int(frames.shape[0])
