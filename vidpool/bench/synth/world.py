"""The synthetic world: its vocabulary and how one frame of it is drawn.

The world's rules, which any drawing tool can follow (``docs/synth.md``, "Drawing your own video for
vidpool-synth", says how a video drawn elsewhere reaches the model trained on it):

- a square frame (64 x 64 pixels by default; any size draws the same picture, as every position and
  size is a fraction of the side); vidpool-synth samples 8 frames and sees each at 64 x 64, and of a
  frame that is not square only the middle square;
- a dark background: plain (one dark grey), noise, stripes, checker or a gradient, every pixel of it
  with each channel below 90 and little colour (plain black works);
- objects of one of :data:`COLOURS` (flat RGB) and one of :data:`SHAPES`, filled; the main object is
  large (30-50% of the side, 35-50% in ``static``), a small object is about one eighth of the side
  (one patch of an 8 x 8 grid), distractors are grey, mid-sized and move;
- objects never carry text, outlines or shading;
- questions use only these colour and shape names (the families' wordings are in ``tasks.py``).

Everything here is pure numpy: ``[H, W, 3]`` uint8 RGB frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BACKGROUNDS",
    "COLOURS",
    "DISTRACTOR_RGB",
    "FRAME_SIZE",
    "SHAPES",
    "Sprite",
    "background",
    "draw",
    "draw_sprite",
    "render",
    "shape_mask",
]

FRAME_SIZE = 64

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 190, 50),
    "blue": (40, 70, 235),
    "yellow": (235, 215, 30),
    "purple": (150, 50, 200),
    "orange": (245, 130, 20),
    "cyan": (30, 210, 220),
    "white": (245, 245, 245),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
BACKGROUNDS: tuple[str, ...] = ("plain", "noise", "stripes", "checker", "gradient")
DISTRACTOR_RGB = (120, 120, 120)


@dataclass(frozen=True)
class Sprite:
    """One filled shape: centre ``(x, y)`` and ``size`` (its extent) as fractions of the frame side."""

    shape: str
    rgb: tuple[int, int, int]
    x: float
    y: float
    size: float


def _grid(side: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates ``([S, 1], [1, S])`` as fractions of the side."""
    c = (np.arange(side, dtype=np.float32) + 0.5) / side
    return c[:, None], c[None, :]


def _mask(shape: str, side: int, x: float, y: float, size: float) -> np.ndarray:
    """``[S, S]`` bool: the pixels inside ``shape`` centred at ``(x, y)`` with extent ``size``."""
    ys, xs = _grid(side)
    dx, dy, r = xs - x, ys - y, size / 2
    if shape == "circle":
        return dx * dx + dy * dy <= r * r
    if shape == "square":
        return (np.abs(dx) <= r * 0.9) & (np.abs(dy) <= r * 0.9)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= r
    if shape == "cross":
        arm = r * 0.36
        return ((np.abs(dx) <= arm) & (np.abs(dy) <= r)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= r))
    if shape == "triangle":
        # Apex up; the base on y = r, sides through the apex at y = -r.
        inside_y = (dy >= -r) & (dy <= r)
        return inside_y & (np.abs(dx) <= (dy + r) / 2)
    raise ValueError(f"unknown shape {shape!r}; the world's shapes are {SHAPES}")


def shape_mask(sprite: Sprite, side: int) -> np.ndarray:
    """``[S, S]`` bool: the pixels ``sprite`` covers in a frame of ``side`` pixels."""
    return _mask(sprite.shape, side, sprite.x, sprite.y, sprite.size)


def background(kind: str, side: int, seed: int) -> np.ndarray:
    """A dark background ``[S, S, 3]`` uint8 of one of :data:`BACKGROUNDS`, seeded."""
    rng = np.random.default_rng(seed)
    base = int(rng.integers(8, 40))
    ys, xs = _grid(side)
    if kind == "plain":
        level = np.full((side, side), base, dtype=np.float32)
    elif kind == "noise":
        level = base + rng.normal(0, 12, size=(side, side)).astype(np.float32)
    elif kind == "stripes":
        period = float(rng.uniform(0.08, 0.25))
        angle = float(rng.uniform(0, np.pi))
        phase = (xs * np.cos(angle) + ys * np.sin(angle)) / period
        level = base + 25 * ((phase % 1.0) < 0.5)
    elif kind == "checker":
        cell = float(rng.uniform(0.08, 0.2))
        level = base + 25 * (((xs // cell) + (ys // cell)) % 2)
    elif kind == "gradient":
        angle = float(rng.uniform(0, 2 * np.pi))
        level = base + 45 * ((xs - 0.5) * np.cos(angle) + (ys - 0.5) * np.sin(angle) + 0.5)
    else:
        raise ValueError(f"unknown background {kind!r}; the world's backgrounds are {BACKGROUNDS}")
    tint = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    level = np.broadcast_to(level, (side, side)).astype(np.float32)
    return np.clip(level[..., None] * tint, 0, 85).astype(np.uint8)


def draw_sprite(frame: np.ndarray, sprite: Sprite) -> None:
    """Paint ``sprite`` onto ``frame`` ``[S, S, 3]`` uint8 in place."""
    frame[shape_mask(sprite, frame.shape[0])] = sprite.rgb


def draw(base: np.ndarray, sprites: list[Sprite]) -> np.ndarray:
    """A copy of ``base`` ``[S, S, 3]`` with ``sprites`` painted in order (later ones on top)."""
    frame = base.copy()
    for sprite in sprites:
        draw_sprite(frame, sprite)
    return frame


def render(kind: str, sprites: list[Sprite], side: int = FRAME_SIZE, seed: int = 0) -> np.ndarray:
    """One frame ``[S, S, 3]`` uint8: background ``kind`` (seeded) with ``sprites`` on it."""
    return draw(background(kind, side, seed), sprites)
