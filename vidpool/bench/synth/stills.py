"""Random still frames of the synthetic world with captions, for training and checking its CLIP.

A still holds one coloured object (large, or small: about one patch) on a random background, with up to
two grey distractors. Its caption names what a person would: the colour, the shape, often both, and
sometimes the size or the background. The same prompts score zero-shot colour and shape accuracy.

A crowded still holds one to three coloured objects of different colours and sizes; with
:func:`patch_coverage` (how much of each patch each colour covers) it teaches and checks what every
patch token says about its own patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpool.bench.synth.world import (
    BACKGROUNDS,
    COLOURS,
    DISTRACTOR_RGB,
    FRAME_SIZE,
    SHAPES,
    Sprite,
    render,
    shape_mask,
)

__all__ = [
    "COLOUR_PROMPT",
    "SHAPE_PROMPT",
    "Still",
    "caption",
    "crowded_still",
    "patch_coverage",
    "random_still",
    "random_stills",
]

COLOUR_PROMPT = "a {colour} shape"
SHAPE_PROMPT = "a {shape}"

_TEMPLATES = (
    "a {colour} {shape}",
    "a {colour} {shape}",
    "a photo of a {colour} {shape}",
    "a {size} {colour} {shape}",
    "a {colour} {shape} on a {background} background",
    "a {colour} shape",
    "a {shape}",
    "something {colour}",
)


@dataclass(frozen=True)
class Still:
    """What a still shows: the object's colour, shape and size class, the background kind, and the object
    itself (its centre and extent as fractions of the side)."""

    colour: str
    shape: str
    small: bool
    background: str
    sprite: Sprite


def random_still(
    rng: np.random.Generator, side: int = FRAME_SIZE, colours: list[str] | None = None
) -> tuple[np.ndarray, Still]:
    """One random still ``[S, S, 3]`` uint8 and its facts; its colour is drawn from ``colours``
    (default: all of the world's)."""
    colour = str(rng.choice(colours or list(COLOURS)))
    shape = str(rng.choice(SHAPES))
    bg = str(rng.choice(BACKGROUNDS))
    small = bool(rng.random() < 0.3)
    size = float(rng.uniform(0.12, 0.17) if small else rng.uniform(0.3, 0.55))
    margin = size / 2 + 0.02
    sprites = []
    for _ in range(int(rng.integers(0, 3))):
        d = float(rng.uniform(0.12, 0.22))
        sprites.append(
            Sprite(str(rng.choice(SHAPES)), DISTRACTOR_RGB, *rng.uniform(d / 2, 1 - d / 2, size=2), d)
        )
    x, y = rng.uniform(margin, 1 - margin, size=2)
    sprite = Sprite(shape, COLOURS[colour], float(x), float(y), size)
    sprites.append(sprite)
    frame = render(bg, sprites, side, seed=int(rng.integers(1 << 31)))
    return frame, Still(colour, shape, small, bg, sprite)


def crowded_still(rng: np.random.Generator, side: int = FRAME_SIZE) -> tuple[np.ndarray, list[Sprite]]:
    """A still ``[S, S, 3]`` uint8 with one to three coloured objects of different colours (each large or
    small, apart from one another) over up to two grey distractors, and every sprite in drawing order."""
    sprites = []
    for _ in range(int(rng.integers(0, 3))):
        d = float(rng.uniform(0.12, 0.22))
        sprites.append(
            Sprite(str(rng.choice(SHAPES)), DISTRACTOR_RGB, *rng.uniform(d / 2, 1 - d / 2, size=2), d)
        )
    colours = rng.choice(list(COLOURS), size=int(rng.integers(1, 4)), replace=False)
    placed: list[Sprite] = []
    for colour in colours:
        size = float(rng.uniform(0.12, 0.17) if rng.random() < 0.5 else rng.uniform(0.25, 0.4))
        margin = size / 2 + 0.02
        for _ in range(20):  # a spot clear of the objects placed so far, if one is found
            x, y = (float(v) for v in rng.uniform(margin, 1 - margin, size=2))
            if all(max(abs(x - o.x), abs(y - o.y)) > (size + o.size) / 2 for o in placed):
                break
        placed.append(Sprite(str(rng.choice(SHAPES)), COLOURS[str(colour)], x, y, size))
    sprites += placed
    bg = str(rng.choice(BACKGROUNDS))
    return render(bg, sprites, side, seed=int(rng.integers(1 << 31))), sprites


def patch_coverage(sprites: list[Sprite], grid: int, side: int = FRAME_SIZE) -> np.ndarray:
    """How much of each patch each colour covers: ``[grid, grid, len(COLOURS)]`` float32 in [0, 1].

    ``sprites`` are painted in order at ``side`` pixels (later ones hide earlier ones, as
    :func:`~vidpool.bench.synth.world.render` draws them); grey distractors and the background count as
    no colour, so a patch's row sums to the share of it that coloured objects cover.
    """
    if side % grid:
        raise ValueError(f"side {side} is not a multiple of the grid {grid}")
    names = list(COLOURS)
    label = np.full((side, side), -1, dtype=np.int64)
    for sprite in sprites:
        colour = next((i for i, n in enumerate(names) if COLOURS[n] == tuple(sprite.rgb)), -1)
        label[shape_mask(sprite, side)] = colour
    onehot = (label[..., None] == np.arange(len(names))).astype(np.float32)
    cell = side // grid
    return onehot.reshape(grid, cell, grid, cell, len(names)).mean(axis=(1, 3))


def random_stills(seed: int, count: int, side: int = FRAME_SIZE) -> tuple[np.ndarray, list[Still]]:
    """``count`` stills ``[N, S, S, 3]`` uint8 from one seed, and their facts."""
    rng = np.random.default_rng(seed)
    pairs = [random_still(rng, side) for _ in range(count)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]


def caption(still: Still, rng: np.random.Generator) -> str:
    """A templated caption of ``still``."""
    template = str(rng.choice(_TEMPLATES))
    return template.format(
        colour=still.colour,
        shape=still.shape,
        size="small" if still.small else "large",
        background=still.background,
    )
