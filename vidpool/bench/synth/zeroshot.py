"""Zero-shot colour and shape accuracy of a CLIP on held-out stills of the synthetic world."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from vidpool.bench.synth.stills import COLOUR_PROMPT, SHAPE_PROMPT, Still, random_stills
from vidpool.bench.synth.world import COLOURS, SHAPES

__all__ = ["HELD_OUT_SEED", "encoder_zero_shot", "zero_shot_accuracy"]

# Training stills come from seeds below 10_000_000; these are never trained on.
HELD_OUT_SEED = 10_000_019


def _accuracy(image: torch.Tensor, text: torch.Tensor, truth: list[int]) -> float:
    """Share of rows of ``image [N, D]`` whose nearest ``text [K, D]`` (cosine) is ``truth[n]``."""
    image = torch.nn.functional.normalize(image.float(), dim=-1)
    text = torch.nn.functional.normalize(text.float(), dim=-1)
    guess = (image @ text.T).argmax(dim=-1)
    return float((guess == torch.tensor(truth)).float().mean())


def zero_shot_accuracy(
    embed_images: Callable[[np.ndarray], torch.Tensor],
    embed_texts: Callable[[list[str]], torch.Tensor],
    frames: np.ndarray,
    stills: Sequence[Still],
) -> dict[str, float]:
    """Colour and shape accuracy on large objects and on small (one-patch) ones, by nearest prompt.

    Args:
        embed_images: ``[N, S, S, 3]`` uint8 frames -> ``[N, D]`` image embeddings.
        embed_texts: ``K`` prompts -> ``[K, D]`` text embeddings.
        frames: ``[N, S, S, 3]`` uint8 stills (:func:`vidpool.bench.synth.stills.random_stills`).
        stills: their facts.

    Returns:
        ``{"colour", "shape", "colour_small", "shape_small"}`` accuracies in [0, 1] (the first two on
        large objects, the benchmark's main objects); the prompts are ``COLOUR_PROMPT`` over the world's
        colours and ``SHAPE_PROMPT`` over its shapes.
    """
    colours, shapes = list(COLOURS), list(SHAPES)
    image = torch.cat([embed_images(frames[i : i + 256]) for i in range(0, len(frames), 256)])
    colour_text = embed_texts([COLOUR_PROMPT.format(colour=c) for c in colours])
    shape_text = embed_texts([SHAPE_PROMPT.format(shape=s) for s in shapes])
    small = np.array([s.small for s in stills])
    result = {}
    for key, text, truth in (
        ("colour", colour_text, [colours.index(s.colour) for s in stills]),
        ("shape", shape_text, [shapes.index(s.shape) for s in stills]),
    ):
        for suffix, idx in (("", np.flatnonzero(~small)), ("_small", np.flatnonzero(small))):
            result[key + suffix] = round(_accuracy(image[idx], text, [truth[i] for i in idx]), 4)
    return result


def encoder_zero_shot(encoder: Any, count: int = 1000, seed: int = HELD_OUT_SEED) -> dict[str, float]:
    """:func:`zero_shot_accuracy` of a ``vidpool.encode.CLIPEncoder`` on ``count`` held-out stills.

    The image embedding is the mean of the patches' joint embeddings, which is the CLIP image embedding
    of an average-pooling tower (``pool_type: avg``), as the world's CLIP is.
    """
    frames, stills = random_stills(seed, count)

    def images(batch: np.ndarray) -> torch.Tensor:
        return encoder.encode_frames(torch.from_numpy(batch), joint=True).joint.float().mean(dim=(1, 2))

    return zero_shot_accuracy(images, lambda prompts: encoder.encode_text(prompts).float(), frames, stills)
