"""Batched CLIP preprocessing on uint8 frame tensors.

The same steps as open_clip's evaluation transform (``open_clip.image_transform(..., is_train=False)``):
resize (shortest side by default, with the model's interpolation, bicubic for CLIP), centre-crop, scale to
[0, 1] and normalise with the model's mean and std. It runs on a whole ``[T, H, W, 3]`` uint8 batch with
torchvision's tensor kernels on any device instead of one PIL image at a time. The resize output is
rounded back to uint8 before normalising, as PIL does, so results differ from open_clip's PIL path only
by the antialiasing kernels' rounding (measured in ``tests/test_encode_preprocess.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from vidpool.errors import InvalidArgumentError, require

__all__ = [
    "OPENAI_CLIP_MEAN",
    "OPENAI_CLIP_STD",
    "check_frames",
    "preprocess_frames",
    "resize_as_float",
    "resized_size",
]

# The per-channel RGB statistics OpenAI's CLIP was trained with (open_clip's OPENAI_DATASET_MEAN/STD):
# the normalisation of every CLIP-family tower unless its config says otherwise.
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def check_frames(frames: Any) -> torch.Tensor:
    """Validate a frame batch and return it as a uint8 tensor ``[T, H, W, 3]``.

    Numpy arrays are wrapped, and objects holding their frames in ``.frames`` (``vidpool.video.Frames``)
    are unpacked.
    """
    if not isinstance(frames, torch.Tensor) and isinstance(getattr(frames, "frames", None), torch.Tensor):
        frames = frames.frames
    if not isinstance(frames, torch.Tensor):
        try:
            import numpy as np

            if isinstance(frames, np.ndarray):
                frames = torch.from_numpy(frames)
        except ImportError:  # pragma: no cover - numpy is a dependency
            pass
    if not isinstance(frames, torch.Tensor):
        raise InvalidArgumentError(
            f"frames must be a uint8 tensor [T, H, W, 3], got {type(frames).__name__}; "
            "decode with vidpool.VideoReader or convert with torch.from_numpy"
        )
    if frames.ndim == 3:
        raise InvalidArgumentError(
            f"frames must be [T, H, W, 3], got one image of shape {tuple(frames.shape)}; use frames[None]"
        )
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InvalidArgumentError(
            f"frames must be [T, H, W, 3] (RGB, channels last), got {tuple(frames.shape)}"
        )
    if frames.dtype != torch.uint8:
        raise InvalidArgumentError(
            f"frames must be uint8 (0..255), got {frames.dtype}; convert with (x * 255).round().to(torch.uint8)"
        )
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise InvalidArgumentError(f"frames have an empty side: {tuple(frames.shape)}")
    return frames


def resized_size(height: int, width: int, size: tuple[int, int], resize_mode: str) -> tuple[int, int]:
    """The ``(h, w)`` open_clip's transform resizes a ``height`` x ``width`` image to, before cropping."""
    target_h, target_w = size
    if resize_mode == "squash":
        return target_h, target_w
    if resize_mode == "shortest" and target_h == target_w:
        # torchvision Resize(int): shortest side to `size`, the other truncated.
        short, long = (height, width) if height <= width else (width, height)
        new_long = int(target_h * long / short)
        return (target_h, new_long) if height <= width else (new_long, target_h)
    # open_clip ResizeKeepRatio: shortest (non-square target) or longest edge to the target, rounded.
    ratio_h, ratio_w = height / target_h, width / target_w
    ratio = max(ratio_h, ratio_w) if resize_mode == "longest" else min(ratio_h, ratio_w)
    return round(height / ratio), round(width / ratio)


def resize_as_float(x: torch.Tensor, size: tuple[int, int], interpolation: Any) -> torch.Tensor:
    """Resize uint8 ``x [T, 3, H, W]`` through float32, as GPU kernels must (they resize floats only).

    PIL resizes in two passes, width first, and rounds to uint8 in between; so does this, clamping
    and rounding after each pass (one pass over both sides differs from PIL by up to 24 levels on
    noise, these two by at most 2: ``tests/test_encode_preprocess.py``). The float copy is made
    contiguous (CUDA's antialiasing kernel otherwise copies a channels-last input once more).

    Returns:
        float32 ``[T, 3, h, w]`` holding whole numbers 0..255.
    """
    mode = "bilinear" if str(getattr(interpolation, "value", interpolation)) == "bilinear" else "bicubic"
    x = x.to(torch.float32, memory_format=torch.contiguous_format)
    for step in ((int(x.shape[-2]), size[1]), (size[0], size[1])):
        if step != (int(x.shape[-2]), int(x.shape[-1])):
            x = torch.nn.functional.interpolate(x, size=step, mode=mode, align_corners=False, antialias=True)
            x = x.clamp_(0, 255).round_()
    return x


def _crop_or_pad(x: torch.Tensor, size: tuple[int, int], fill: int) -> torch.Tensor:
    """Centre-crop ``x [T, 3, H, W]`` to ``size``, padding with ``fill`` first where it is smaller."""
    crop_h, crop_w = size
    height, width = x.shape[-2:]
    if crop_h > height or crop_w > width:
        pad_w, pad_h = max(crop_w - width, 0), max(crop_h - height, 0)
        padding = (pad_w // 2, (pad_w + 1) // 2, pad_h // 2, (pad_h + 1) // 2)
        x = torch.nn.functional.pad(x, padding, value=fill)
        height, width = x.shape[-2:]
    top = round((height - crop_h) / 2.0)
    left = round((width - crop_w) / 2.0)
    return x[..., top : top + crop_h, left : left + crop_w]


def preprocess_frames(
    frames: torch.Tensor,
    cfg: dict[str, Any],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Resize, centre-crop and normalise a batch of frames as open_clip's evaluation transform does.

    Args:
        frames: uint8 ``[T, H, W, 3]`` RGB frames, any ``H, W``.
        cfg: preprocessing config with ``size`` ``(h, w)``, ``mean``, ``std``, ``interpolation``
            (``bicubic`` | ``bilinear``), ``resize_mode`` (``shortest`` | ``longest`` | ``squash``) and
            ``fill_color`` (see :meth:`vidpool.encode.config.EncoderSpec.preprocess`).
        device: where to run; the uint8 frames move there before any float copy is made.
        dtype: dtype of the result.

    Returns:
        ``[T, 3, h, w]`` normalised pixels in ``dtype``, channels-last in memory.
    """
    tvf = require("torchvision.transforms.v2.functional", "clip", "CLIP preprocessing")
    from torchvision.transforms import InterpolationMode

    frames = check_frames(frames)
    size = tuple(int(s) for s in cfg["size"])
    mode = cfg.get("resize_mode", "shortest")
    if mode not in ("shortest", "longest", "squash"):
        raise InvalidArgumentError(f"resize_mode must be shortest, longest or squash, got {mode!r}")
    # open_clip only distinguishes bilinear; anything else (bicubic, random) runs bicubic at inference.
    interp = (
        InterpolationMode.BILINEAR if cfg.get("interpolation") == "bilinear" else InterpolationMode.BICUBIC
    )
    if mode == "shortest" and size[0] != size[1]:
        interp = InterpolationMode.BICUBIC  # open_clip's ResizeKeepRatio there keeps its bicubic default

    x = frames.to(device) if device is not None else frames
    # [T, H, W, 3] -> [T, 3, H, W] as a view: channels-last memory, which torchvision's uint8 kernels prefer.
    x = x.permute(0, 3, 1, 2)
    new_size = resized_size(x.shape[-2], x.shape[-1], size, mode)
    if new_size != tuple(x.shape[-2:]):
        if x.device.type == "cpu":
            x = tvf.resize(x, list(new_size), interpolation=interp, antialias=True)
        else:
            x = resize_as_float(x, new_size, interp)
    x = _crop_or_pad(x, size, int(cfg.get("fill_color", 0)) if mode == "longest" else 0)

    mean = torch.tensor(cfg["mean"], device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], device=x.device, dtype=torch.float32).view(1, 3, 1, 1)
    out = x.to(torch.float32).div_(255.0).sub_(mean).div_(std)
    return out.to(dtype=dtype, memory_format=torch.channels_last)
