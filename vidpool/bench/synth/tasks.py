"""The synthetic benchmark's questions: eight families of 4-option multiple choice with known answers.

Families (default frame counts in :data:`DEFAULT_FRAMES`):

- ``static``: the colour (even items) or the shape (odd items) of the one large object;
- ``small``: the colour of a one-patch object beside a large object of another colour (never offered);
- ``needle``: which object (colour and shape) appears for only ``NEEDLE_FRAMES`` consecutive frames
  of a long video, beside one shown all along (its colour never offered);
- ``needle_time``: in which quarter of the video the needle appears (its whole run lies in one);
- ``count``: how many times (1-4) an object flashes, ``FLASH_FRAMES`` frames each, with identical
  still frames in between;
- ``order``: which of three objects appeared first (each is shown for ``ORDER_FRAMES`` frames and
  gone before the next appears; the fourth option never appears);
- ``direction``: which way an object moves; items ``2k`` and ``2k + 1`` show the same clip forwards
  and backwards, so their answers are opposite;
- ``change``: which colour an object turns into for ``CHANGE_FRAMES`` frames before it turns back
  (its first colour is always a wrong option; the change never covers the middle frame).

Balance: the right answer's value runs through shuffled blocks of all values (each block seeded by
family, seed and block), and its position through shuffled blocks of the four positions, so both are
uniform over every whole block. Ordinal families (``needle_time``, ``count``) keep their options in
natural order, so position and value are the same balanced draw. Item ``i`` depends only on
``(family, seed, i)``: a longer list starts with the shorter one.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vidpool.bench.synth.families import (
    BUILDERS,
    CHANGE_FRAMES,
    DIRECTIONS,
    FLASH_FRAMES,
    FLASH_GAP,
    NEEDLE_FRAMES,
    ORDER_FRAMES,
    ORDER_GAP,
    QUARTERS,
)
from vidpool.bench.synth.scenes import Scene, render_scene, write_frames_mp4
from vidpool.bench.synth.world import COLOURS, FRAME_SIZE, SHAPES
from vidpool.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_FRAMES",
    "DESIGN_VERSION",
    "FAMILIES",
    "LETTERS",
    "SEEN_FRAMES",
    "SUBJECT_ROLE",
    "Item",
    "make_items",
    "multiple_choice_prompt",
    "render_item",
    "write_item_mp4",
]

#: the families' design; it names cached features, so that a redesign never reads stale ones
DESIGN_VERSION = 2
FAMILIES = ("static", "small", "needle", "needle_time", "count", "order", "direction", "change")
LETTERS = "ABCD"
DEFAULT_FRAMES = {
    "static": 8,
    "small": 8,
    "needle": 64,
    "needle_time": 64,
    "count": 32,
    "order": 32,
    "direction": 16,
    "change": 16,
}
#: frames sampled (centres of equal segments) from a video of its family's default length that show
#: every needle, flash, order object and change at least once: a needle lasts 4 of 64 frames, a flash 2
#: of 32, so sampling every 4th and every 2nd frame meets each once
SEEN_FRAMES = 16
_MIN_FRAMES = {
    "static": 1,
    "small": 1,
    "needle": 2 * NEEDLE_FRAMES,
    "needle_time": 4 * NEEDLE_FRAMES,
    "count": 4 * FLASH_FRAMES + 3 * FLASH_GAP,
    "order": 3 * ORDER_FRAMES + 2 * ORDER_GAP,
    "direction": 2,
    "change": 2 * CHANGE_FRAMES + 2,
}
#: the object each family's question is about (the role of its :class:`SceneObject`)
SUBJECT_ROLE = {
    "static": "main",
    "small": "small",
    "needle": "needle",
    "needle_time": "needle",
    "count": "flash",
    "order": "order0",
    "direction": "mover",
    "change": "changer",
}
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}
_COLOURS = tuple(COLOURS)


@dataclass(frozen=True)
class Item:
    """One question: its text, four short options, the right one's index and the scene it is about.

    ``unit`` names the unit of independence the statistics resample: items that share a clip share
    it (``direction`` items ``2k`` and ``2k + 1``); it defaults to the item's ``id``.
    """

    id: str
    family: str
    question: str
    options: tuple[str, str, str, str]
    answer: int
    num_frames: int
    scene: Any
    unit: str = ""

    def __post_init__(self) -> None:
        if not self.unit:
            object.__setattr__(self, "unit", self.id)


def _balanced(n: int, index: int, key: str, family: int, seed: int) -> int:
    """Entry ``index % n`` of the seeded shuffle of ``range(n)`` for block ``index // n``."""
    perm = np.random.default_rng([family, seed, zlib.crc32(key.encode()), index // n]).permutation(n)
    return int(perm[index % n])


def _arrange(right: str, wrong: list[str], position: int) -> tuple[str, str, str, str]:
    options = list(wrong)
    options.insert(position, right)
    return tuple(options)  # type: ignore[return-value]


def _wrong(rng: np.random.Generator, values, right: str, exclude=(), fixed=()) -> list[str]:
    """Three wrong option values: ``fixed`` first, then distinct others drawn from ``values``."""
    out = list(fixed)
    pool = [v for v in values if v != right and v not in exclude and v not in out]
    out += [str(v) for v in rng.permutation(pool)[: 3 - len(out)]]
    return [out[k] for k in rng.permutation(len(out))]


def _item(family: str, seed: int, i: int, num_frames: int) -> Item:
    fam = FAMILIES.index(family)
    rng = np.random.default_rng([fam, seed, i])
    position = _balanced(4, i, "position", fam, seed)
    if family == "static":
        values = _COLOURS if i % 2 == 0 else SHAPES
        right = values[_balanced(len(values), i // 2, f"value{i % 2}", fam, seed)]
        scene, facts = BUILDERS[family](rng, right, num_frames)
        # The shape question names the colour, so that grey distractors of an offered shape do not answer it
        question = (
            "What colour is the large shape?"
            if i % 2 == 0
            else f"What shape is the {facts['colour']} object?"
        )
        options = _arrange(right, _wrong(rng, values, right), position)
    elif family in ("small", "order", "change"):
        right = _COLOURS[_balanced(len(_COLOURS), i, "value", fam, seed)]
        scene, facts = BUILDERS[family](rng, right, num_frames)
        fixed = {"order": facts.get("present", ())[1:], "change": (facts.get("before"),)}.get(family, ())
        options = _arrange(right, _wrong(rng, _COLOURS, right, facts["exclude"], fixed), position)
        question = {
            "small": "What colour is the small shape?",
            "order": "Three shapes appear one after another. What colour is the one that appears first?",
            "change": f"What colour does the {facts['colour']} {facts['shape']} turn into?",
        }[family]
    elif family == "needle":
        right_colour = _COLOURS[_balanced(len(_COLOURS), i, "value", fam, seed)]
        scene, facts = BUILDERS[family](rng, right_colour, num_frames)
        colours = _wrong(rng, _COLOURS, right_colour, facts["exclude"])
        wrong = [f"{c} {SHAPES[int(rng.integers(len(SHAPES)))]}" for c in colours]
        right = f"{right_colour} {facts['shape']}"
        options = _arrange(right, wrong, position)
        question = "Which shape appears for only a moment?"
    elif family in ("needle_time", "count"):
        values = QUARTERS if family == "needle_time" else ("1", "2", "3", "4")
        position = _balanced(4, i, "value", fam, seed)
        right = values[position]
        scene, facts = BUILDERS[family](rng, right, num_frames)
        options = tuple(values)
        what = f"the {facts['colour']} {facts['shape']}"
        question = (
            f"In which quarter of the video does {what} appear?"
            if family == "needle_time"
            else f"How many times does {what} flash?"
        )
    else:  # direction: the odd item of each pair replays the even item's clip backwards
        pair_rng = np.random.default_rng([fam, seed, i // 2])
        forward = DIRECTIONS[_balanced(4, i // 2, "value", fam, seed)]
        scene, facts = BUILDERS[family](pair_rng, forward, num_frames)
        right = forward
        if i % 2:
            scene, right = scene.reverse(), _OPPOSITE[forward]
        options = _arrange(right, [d for d in DIRECTIONS if d != right], position)
        question = f"Which way does the {facts['colour']} {facts['shape']} move?"
    return Item(
        id=f"{family}-s{seed}-{i:04d}",
        unit=f"{family}-s{seed}-clip{i // 2:04d}" if family == "direction" else "",
        family=family,
        question=question,
        options=options,
        answer=options.index(right),
        num_frames=num_frames,
        scene=scene,
    )


def make_items(family: str, count: int, *, seed: int = 0, num_frames: int | None = None) -> list[Item]:
    """``count`` items of ``family`` (one of :data:`FAMILIES`) from ``seed``, deterministically.

    ``num_frames`` defaults to :data:`DEFAULT_FRAMES` of the family.
    """
    if family not in FAMILIES:
        raise InvalidArgumentError(f"unknown family {family!r}; the families are {', '.join(FAMILIES)}")
    if not isinstance(count, int) or count < 0:
        raise InvalidArgumentError(f"count must be a non-negative integer, got {count!r}")
    frames = DEFAULT_FRAMES[family] if num_frames is None else num_frames
    if not isinstance(frames, int) or frames < _MIN_FRAMES[family]:
        raise InvalidArgumentError(
            f"{family} items need num_frames >= {_MIN_FRAMES[family]}, got {frames!r}; "
            f"the default is {DEFAULT_FRAMES[family]}"
        )
    return [_item(family, seed, i, frames) for i in range(count)]


def render_item(item: Item, side: int = FRAME_SIZE) -> np.ndarray:
    """The item's video: ``[T, S, S, 3]`` uint8 RGB."""
    if not isinstance(item.scene, Scene):
        raise InvalidArgumentError(f"item {item.id} has no scene to render")
    return render_scene(item.scene, side)


def write_item_mp4(item: Item, path: str | os.PathLike, *, side: int = 128, fps: int = 8) -> Path:
    """Write the item's video to ``path`` as an H.264 MP4 of ``side x side`` pixels; return the path."""
    return write_frames_mp4(render_item(item, side), path, fps=fps)


def multiple_choice_prompt(item: Item) -> str:
    """The question, its lettered options one per line, and ``Answer with the letter.``"""
    lines = [item.question, *(f"{letter}. {text}" for letter, text in zip(LETTERS, item.options))]
    return "\n".join([*lines, "Answer with the letter."])
