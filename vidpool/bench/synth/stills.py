"""Random still frames of the synthetic world with captions, for training and checking its CLIP.

A still holds one coloured object (large, or small: about one patch) on a random background, with up to
two grey distractors. Its caption names what a person would: the colour, the shape, often both, and
sometimes the size or the background. The same prompts score zero-shot colour and shape accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidpool.bench.synth.world import BACKGROUNDS, COLOURS, DISTRACTOR_RGB, FRAME_SIZE, SHAPES, Sprite, render

__all__ = [
    "COLOUR_PROMPT",
    "SHAPE_PROMPT",
    "Still",
    "caption",
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
    """What a still shows: the object's colour, shape and size class, and the background kind."""

    colour: str
    shape: str
    small: bool
    background: str


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
    sprites.append(Sprite(shape, COLOURS[colour], float(x), float(y), size))
    frame = render(bg, sprites, side, seed=int(rng.integers(1 << 31)))
    return frame, Still(colour, shape, small, bg)


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
