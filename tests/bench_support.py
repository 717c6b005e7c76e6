"""A small stand-in for ``vidpool.bench.synth``'s tasks, readout and controls, for the runner's tests.

It has the same names and signatures as the real modules and two families: ``static`` (the colour of
one large object) and ``order`` (which of two colours came first). ``install(monkeypatch)`` puts it in
``sys.modules`` in place of the real modules for one test. ``small_settings`` is a benchmark run small
enough for a test.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import vidpool
from vidpool.bench.synth.tasks import Item
from vidpool.bench.synth.world import COLOURS, Sprite, render
from vidpool.errors import BudgetError

FAMILIES = ("static", "order")
SMALL_RUN = {
    "clip": "tiny-clip-32",
    "weights": "random",
    "methods": ("spatial", "prompt_guided"),
    "budgets": (1.0, 0.25),
    "max_frames": 8,
    "resamples": 200,
    "memory": False,
    "scorer": "rules",  # the stand-in world's rules; the trained reader reads the world's CLIP only
}
CONTROLS = ("full", "middle_frame", "shuffled", "text_only", "random_drop", "frame_subsample")
_NAMES = list(COLOURS)[:4]


def make_items(family: str, count: int, *, seed: int = 0, num_frames: int | None = None) -> list[Item]:
    if family not in FAMILIES:
        raise ValueError(family)
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    items = []
    for i in range(count):
        order = rng.permutation(4)
        colours = tuple(_NAMES[j] for j in order)
        answer = int(rng.integers(4))
        second = (answer + 1 + int(rng.integers(3))) % 4
        question = "which colour is the object?" if family == "static" else "which colour came first?"
        items.append(
            Item(
                f"{family}-{i}",
                family,
                question,
                colours,
                answer,
                num_frames or 8,
                {"first": colours[answer], "second": colours[second]},
            )
        )
    return items


def render_item(item: Item, side: int = 64) -> np.ndarray:
    frames = []
    for t in range(item.num_frames):
        name = (
            item.scene["first"]
            if item.family == "static" or t < item.num_frames // 2
            else item.scene["second"]
        )
        frames.append(render("plain", [Sprite("square", COLOURS[name], 0.5, 0.5, 0.6)], side, seed=t))
    return np.stack(frames)


@dataclass
class Kept:
    joint: torch.Tensor
    span: torch.Tensor
    centre: torch.Tensor
    num_frames: int


def kept_tokens(compressed: vidpool.Compressed, joint: torch.Tensor) -> Kept:
    t, h, w, d = joint.shape
    n = compressed.num_tokens
    assign = compressed.assign.reshape(-1)
    weight = compressed.weight.reshape(-1).float()
    keep = assign >= 0
    idx = assign[keep]
    flat = joint.reshape(-1, d).float()[keep] * weight[keep, None]
    pooled = torch.zeros(n, d).index_add_(0, idx, flat)
    times = torch.arange(t).repeat_interleave(h * w)[keep].float()
    span = torch.stack(
        [
            torch.full((n,), float(t)).scatter_reduce(0, idx, times, "amin"),
            torch.full((n,), -1.0).scatter_reduce(0, idx, times, "amax"),
        ],
        -1,
    )
    return Kept(pooled, span, torch.zeros(n, 2), t)


def option_scores(item: Item, kept: Kept | None, embed_text) -> np.ndarray:
    if kept is None:
        return np.zeros(4)
    text = torch.nn.functional.normalize(embed_text([f"a {c} shape" for c in item.options]), dim=-1)
    sims = torch.nn.functional.normalize(kept.joint, dim=-1) @ text.T  # [N, 4]
    if item.family == "static":
        return sims.max(0).values.numpy()
    best = sims.argmax(0)
    return (-kept.span[best, 0] + sims.max(0).values).numpy()


def _manual(features: torch.Tensor, positions: torch.Tensor, name: str) -> vidpool.Compressed:
    t, h, w, c = features.shape
    assign = torch.full((t * h * w,), -1, dtype=torch.long)
    assign[positions] = torch.arange(positions.numel())
    weight = (assign >= 0).float()
    return vidpool.Compressed(
        features.reshape(-1, c)[positions], assign.view(t, h, w), weight.view(t, h, w), name, {}, (t, h, w)
    )


def control_compressed(name: str, features: torch.Tensor, budget: int | None, seed: int):
    t, h, w, _ = features.shape
    if name in ("full", "shuffled"):
        return vidpool.compress(features, "none")
    if name == "text_only":
        return None
    if name == "middle_frame":
        mid = t // 2
        return _manual(features, torch.arange(mid * h * w, (mid + 1) * h * w), name)
    if name == "random_drop":
        g = torch.Generator().manual_seed(seed)
        return _manual(features, torch.randperm(t * h * w, generator=g)[:budget].sort().values, name)
    if name == "frame_subsample":
        keep = budget // (h * w)
        if keep < 1:
            raise BudgetError(
                f"frame_subsample keeps whole frames of {h * w} tokens; budget {budget} is less"
            )
        frames = torch.linspace(0, t - 1, keep).round().long()
        return _manual(features, (frames[:, None] * h * w + torch.arange(h * w)).reshape(-1), name)
    raise ValueError(name)


def shuffle_frames(frames: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(len(frames))
    return frames[order], order


def install(monkeypatch) -> None:
    """Put the stand-in in place of ``vidpool.bench.synth.{tasks,readout,controls}`` for one test."""
    parts = {
        "tasks": {"FAMILIES": FAMILIES, "Item": Item, "make_items": make_items, "render_item": render_item},
        "readout": {"Kept": Kept, "kept_tokens": kept_tokens, "option_scores": option_scores},
        "controls": {
            "CONTROLS": CONTROLS,
            "control_compressed": control_compressed,
            "shuffle_frames": shuffle_frames,
        },
    }
    import vidpool.bench.synth as package

    for name, attrs in parts.items():
        module = types.ModuleType(f"vidpool.bench.synth.{name}")
        module.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setattr(package, name, module, raising=False)


def small_settings(out, **changes: Any):
    """``FidelitySettings`` for a test-sized run writing to ``out``; ``changes`` replace the defaults."""
    from vidpool.bench.fidelity import FidelitySettings

    return FidelitySettings(**{**SMALL_RUN, "out": str(out), **changes})
