"""Small synthetic videos whose content can be checked after decoding.

Each frame shows a few moving coloured squares on a still background and, along its bottom edge, the
frame index written as 16 black/white blocks (two rows of eight, most significant bit first). The blocks
are large enough to survive lossy coding and downscaling, so :func:`read_frame_counter` recovers the
index of a decoded frame. Videos are written with :func:`vidpool.video.writer.write_video`;
low-complexity content keeps encoding fast.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from vidpool.errors import InvalidArgumentError, require
from vidpool.video.writer import CODECS, write_video

__all__ = ["COUNTER_BITS", "make_audio_file", "make_test_video", "read_frame_counter", "render_frame"]

COUNTER_BITS = 16
_COLS = 8
_ROWS = COUNTER_BITS // _COLS


def _counter_box(height: int, width: int) -> tuple[int, int]:
    """Height and width in pixels of one counter block ([H, W] frame)."""
    return max(2, height // 8), max(2, width // _COLS)


def _background(height: int, width: int) -> np.ndarray:
    """A still colour gradient ``[H, W, 3]`` uint8."""
    y = np.linspace(40, 120, height, dtype=np.float32)[:, None]
    x = np.linspace(30, 150, width, dtype=np.float32)[None, :]
    bg = np.empty((height, width, 3), dtype=np.uint8)
    bg[..., 0] = (y * 0.5 + 20).astype(np.uint8)
    bg[..., 1] = ((x + y) * 0.3).astype(np.uint8)
    bg[..., 2] = (x * 0.8).astype(np.uint8)
    return bg


def _texture(height: int, width: int, margin: int) -> np.ndarray:
    """Fixed fine-grained noise ``[H + margin, W + margin, 3]`` int16 in [-24, 24]."""
    rng = np.random.default_rng(0)
    return rng.integers(-24, 25, size=(height + margin, width + margin, 3), dtype=np.int16)


def render_frame(
    index: int,
    width: int,
    height: int,
    background: np.ndarray | None = None,
    texture: np.ndarray | None = None,
) -> np.ndarray:
    """Render frame ``index`` of the test pattern as ``[H, W, 3]`` uint8 RGB.

    ``texture`` (from ``_texture``) adds noise that pans one pixel per frame, so that every frame
    carries detail and motion to code, as camera footage does.
    """
    frame = (_background(height, width) if background is None else background).copy()
    if texture is not None:
        margin = texture.shape[0] - height
        shift = index % max(1, margin)
        noisy = frame.astype(np.int16) + texture[shift : shift + height, shift : shift + width]
        frame = np.clip(noisy, 0, 255).astype(np.uint8)
    bh, bw = _counter_box(height, width)
    side = max(4, min(height, width) // 5)
    usable_h = max(1, height - _ROWS * bh - side)
    usable_w = max(1, width - side)
    shapes = (
        ((index * 3) % usable_w, (usable_h // 4), (230, 40, 40)),
        ((usable_w - 1 - (index * 2) % usable_w), (usable_h * 3) // 4, (40, 220, 60)),
        ((usable_w // 2), (index * 2) % usable_h, (240, 220, 40)),
    )
    for x, y, colour in shapes:
        frame[y : y + side, x : x + side] = colour
    value = index % (1 << COUNTER_BITS)
    top = height - _ROWS * bh
    for bit in range(COUNTER_BITS):
        on = (value >> (COUNTER_BITS - 1 - bit)) & 1
        r, c = divmod(bit, _COLS)
        frame[top + r * bh : top + (r + 1) * bh, c * bw : (c + 1) * bw] = 255 if on else 0
    return frame


def read_frame_counter(frame: np.ndarray | object) -> int:
    """Recover the frame index from a decoded upright test frame ``[H, W, 3]`` (numpy or torch, uint8).

    Works after resizing as long as each counter block keeps a few pixels. Returns the index modulo
    ``2**COUNTER_BITS``.
    """
    arr = np.asarray(frame.numpy() if hasattr(frame, "numpy") else frame)
    height, width = arr.shape[:2]
    bh = height / 8.0
    bw = width / _COLS
    top = height - _ROWS * bh
    grey = arr.astype(np.float32).mean(axis=-1)
    value = 0
    for bit in range(COUNTER_BITS):
        r, c = divmod(bit, _COLS)
        y0, y1 = top + (r + 0.25) * bh, top + (r + 0.75) * bh
        x0, x1 = (c + 0.25) * bw, (c + 0.75) * bw
        patch = grey[int(y0) : max(int(y0) + 1, int(y1)), int(x0) : max(int(x0) + 1, int(x1))]
        value = (value << 1) | int(patch.mean() > 127.5)
    return value


def make_test_video(
    path: str | os.PathLike,
    *,
    num_frames: int = 48,
    fps: float = 24,
    size: tuple[int, int] = (160, 120),
    codec: str = "h264",
    keyframe_interval: int | None = None,
    rotation: int = 0,
    frame_times: Sequence[float] | None = None,
    preset: str = "ultrafast",
    bframes: bool = True,
    faststart: bool = False,
    texture: bool = False,
) -> Path:
    """Write a test video with moving shapes and a readable frame counter; return its path.

    Args:
        path: output file (``.mp4`` or ``.mkv``).
        num_frames: number of frames.
        fps: nominal frame rate.
        size: ``(width, height)`` in pixels (even numbers for H.264).
        codec: ``"h264"`` (libx264) or ``"mpeg4"``.
        keyframe_interval: frames between keyframes (GOP size); ``None`` leaves the encoder default.
        rotation: display rotation in degrees counter-clockwise (0, 90, 180, 270), stored as metadata
            as phones do: frames are stored turned so that only readers honouring it show them upright,
            at ``size``.
        frame_times: per-frame presentation times in seconds (strictly increasing) for a variable frame rate.
        preset: x264 preset (speed/size trade-off).
        bframes: allow B-frames (H.264), so that decode order differs from presentation order.
        faststart: put the index (moov) at the front of MP4 files, as streaming sites do.
        texture: add panning fine noise so that every frame carries detail and motion to code, as
            camera footage does (larger files, slower to write and decode; off by default).
    """
    if codec not in CODECS:
        raise InvalidArgumentError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    width, height = int(size[0]), int(size[1])
    if num_frames < 0 or width < 16 or height < 16:
        raise InvalidArgumentError("make_test_video needs num_frames >= 0 and a size of at least 16x16")
    if frame_times is not None and len(frame_times) != num_frames:
        raise InvalidArgumentError("frame_times must give one time per frame")
    background = _background(height, width)
    noise = _texture(height, width, 64) if texture else None
    return write_video(
        path,
        (render_frame(i, width, height, background, noise) for i in range(num_frames)),
        fps=fps,
        size=(width, height),
        codec=codec,
        preset=preset,
        keyframe_interval=keyframe_interval,
        bframes=bframes,
        frame_times=frame_times,
        rotation=rotation,
        faststart=faststart,
    )


def make_audio_file(path: str | os.PathLike, seconds: float = 1.0) -> Path:
    """Write an audio-only MP4 (AAC sine tone), a file with no video stream; return its path."""
    av = require("av", "video", "Writing test files")
    path = Path(path)
    rate = 16_000
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(int(seconds * rate), dtype=np.float32) / rate
        samples = (0.3 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        for start in range(0, samples.size, 1024):
            chunk = samples[start : start + 1024][None, :]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
