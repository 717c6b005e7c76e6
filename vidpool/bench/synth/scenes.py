"""Scenes of the synthetic world: a seeded record of what happens in a video, and its frames.

A :class:`Scene` is data, not code: a background and a list of :class:`SceneObject` s, each with its
shape, size, the colours it takes over time, the frame runs in which it is visible and a straight
path (or a bouncing one, for the grey distractors). Everything a question asks is read from it, and
:func:`render_scene` turns it into pixels. ``reversed`` plays the same scene backwards (frame ``t``
shows what frame ``T - 1 - t`` of the forward scene shows), which is how a direction item and its
reversed twin share one record.

Rendering draws the background once per scene and only the sprites per frame; a frame whose sprites
equal the previous frame's is a copy of it, so still stretches (the gaps between flashes) cost
nothing and stay bit-identical.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from vidpool.bench.synth.world import COLOURS, DISTRACTOR_RGB, FRAME_SIZE, Sprite, background, draw
from vidpool.errors import InvalidArgumentError
from vidpool.video import write_video

__all__ = ["GREY", "Scene", "SceneObject", "render_scene", "write_frames_mp4"]

GREY = "grey"  # the colour name of distractors; not one of the world's answer colours


@dataclass(frozen=True)
class SceneObject:
    """One object of a scene.

    Attributes:
        role: what the object is for (``"main"``, ``"small"``, ``"needle"``, ``"flash"``, ``"distractor"``
            ...); questions find their subject by role.
        shape: one of the world's shapes.
        size: extent as a fraction of the frame side.
        colours: ``((from_frame, colour), ...)`` sorted by frame, the first from frame 0: the object's
            colour name from each frame on (``"grey"`` for distractors).
        runs: half-open frame ranges ``((start, stop), ...)`` in which the object is visible.
        start: ``(x, y)`` centre at frame 0, fractions of the side.
        end: ``(x, y)`` centre at the last frame; the centre moves linearly in between, or, with
            ``bounce``, at that velocity reflected off the frame edges.
        bounce: move at ``end - start`` per clip and reflect at the edges (distractors wander this way).
    """

    role: str
    shape: str
    size: float
    colours: tuple[tuple[int, str], ...]
    runs: tuple[tuple[int, int], ...]
    start: tuple[float, float]
    end: tuple[float, float]
    bounce: bool = False

    def colour_at(self, t: int) -> str:
        """Colour name at forward frame ``t``."""
        name = self.colours[0][1]
        for frame, colour in self.colours:
            if frame <= t:
                name = colour
        return name

    def visible_at(self, t: int) -> bool:
        return any(a <= t < b for a, b in self.runs)

    def position_at(self, t: int, num_frames: int) -> tuple[float, float]:
        """``(x, y)`` centre at forward frame ``t`` of a ``num_frames`` clip."""
        f = t / max(1, num_frames - 1)
        x = self.start[0] + f * (self.end[0] - self.start[0])
        y = self.start[1] + f * (self.end[1] - self.start[1])
        if not self.bounce:
            return x, y
        lo, hi = self.size / 2, 1 - self.size / 2
        return _reflect(x, lo, hi), _reflect(y, lo, hi)

    @property
    def first_colour(self) -> str:
        return self.colours[0][1]


def _reflect(v: float, lo: float, hi: float) -> float:
    """``v`` folded into ``[lo, hi]`` as a ball bouncing between two walls."""
    span = hi - lo
    if span <= 0:
        return lo
    u = (v - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


@dataclass(frozen=True)
class Scene:
    """A whole video: ``num_frames`` frames of ``background`` (seeded) with ``objects`` drawn in order.

    ``reversed`` plays it backwards; every query below takes the frame index as the viewer sees it.
    """

    num_frames: int
    background: str
    background_seed: int
    objects: tuple[SceneObject, ...]
    reversed: bool = False

    def source_frame(self, t: int) -> int:
        """The forward frame that frame ``t`` shows."""
        return self.num_frames - 1 - t if self.reversed else t

    def reverse(self) -> Scene:
        """The same scene played backwards."""
        return replace(self, reversed=not self.reversed)

    def find(self, role: str) -> SceneObject:
        """The first object whose role is ``role``."""
        for obj in self.objects:
            if obj.role == role:
                return obj
        raise KeyError(f"no object with role {role!r} in this scene")

    def visible(self, obj: SceneObject, t: int) -> bool:
        return obj.visible_at(self.source_frame(t))

    def colour(self, obj: SceneObject, t: int) -> str:
        return obj.colour_at(self.source_frame(t))

    def position(self, obj: SceneObject, t: int) -> tuple[float, float]:
        return obj.position_at(self.source_frame(t), self.num_frames)

    def visible_frames(self, obj: SceneObject) -> np.ndarray:
        """Sorted frame indices (as seen) in which ``obj`` is visible."""
        return np.array([t for t in range(self.num_frames) if self.visible(obj, t)], dtype=np.int64)

    def sprites(self, t: int) -> list[Sprite]:
        """The sprites frame ``t`` shows, in drawing order."""
        out = []
        for obj in self.objects:
            if not self.visible(obj, t):
                continue
            colour = self.colour(obj, t)
            rgb = DISTRACTOR_RGB if colour == GREY else COLOURS[colour]
            x, y = self.position(obj, t)
            out.append(Sprite(obj.shape, rgb, float(x), float(y), obj.size))
        return out


def render_scene(scene: Scene, side: int = FRAME_SIZE) -> np.ndarray:
    """All frames of ``scene``: ``[T, S, S, 3]`` uint8 RGB."""
    if side < 8:
        raise InvalidArgumentError(f"side must be at least 8 pixels, got {side}")
    base = background(scene.background, side, scene.background_seed)
    out = np.empty((scene.num_frames, side, side, 3), dtype=np.uint8)
    previous: list[Sprite] | None = None
    for t in range(scene.num_frames):
        sprites = scene.sprites(t)
        if sprites == previous:
            out[t] = out[t - 1]
        else:
            out[t] = draw(base, sprites)
        previous = sprites
    return out


def write_frames_mp4(frames: np.ndarray, path: str | os.PathLike, *, fps: int = 8, crf: int = 12) -> Path:
    """Write ``[T, S, S, 3]`` uint8 frames as an H.264 MP4 (yuv420p, which every reader decodes; a low
    ``crf`` keeps flat colours within a few levels, and still stretches code to almost nothing)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise InvalidArgumentError(f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.shape}")
    return write_video(path, frames, fps=int(fps), crf=crf, threads=1)
