"""Where an item's answer lives in its video, and how much of it a compression keeps.

An item's *events* are the stretches of its video the answer depends on: the needle's run, each flash
of ``count``, each object of ``order``, the few frames of ``change``, the mover at the start and at the
end of ``direction``, the one object of ``static`` and ``small``. :func:`event_masks` marks, on the
``[T, h, w]`` patch grid of the sampled frames, the patches each event's object covers;
:func:`kept_share` reads from a :class:`~vidpool.compression.Compressed` how much of one kept token
that event makes up at most. An event whose best token is at least :data:`KEPT_SHARE` of it is *kept*;
one that only tints a pooled token, or whose patches were all dropped, is not.

This is a fact about the tokens, not about any model: it says whether the answer is still in what the
LM is shown, which is what a compression method can keep or lose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vidpool.bench.synth.scenes import Scene, SceneObject
from vidpool.bench.synth.world import FRAME_SIZE, shape_mask

__all__ = ["EVENT_COVER", "KEPT_SHARE", "Event", "event_masks", "item_events", "kept_share"]

#: a patch shows an object when the object covers at least this share of the patch's pixels (or, for an
#: object that covers no patch that much, when it is the patch the object covers most)
EVENT_COVER = 0.25
#: an event is kept when one output token is at least this share of it (by the token's weights)
KEPT_SHARE = 0.5


@dataclass(frozen=True)
class Event:
    """One stretch of the video an answer depends on: ``name`` for people, the object (by ``role``)
    and the ``frames`` (indices of the video as seen) in which it counts."""

    name: str
    role: str
    frames: tuple[int, ...]


def _runs(frames: np.ndarray) -> list[np.ndarray]:
    """Consecutive runs of sorted frame indices."""
    if frames.size == 0:
        return []
    return np.split(frames, np.nonzero(np.diff(frames) > 1)[0] + 1)


def _span(frames: Sequence[int]) -> str:
    return f"frame {frames[0]}" if len(frames) == 1 else f"frames {frames[0]}-{frames[-1]}"


def _label(obj: SceneObject) -> str:
    return f"{obj.first_colour} {obj.shape}"


def item_events(item) -> list[Event]:
    """The events of ``item`` (a :class:`~vidpool.bench.synth.tasks.Item` with a scene), in time order."""
    scene: Scene = item.scene
    family = item.family
    if family in ("static", "small"):
        obj = scene.find("main" if family == "static" else "small")
        frames = scene.visible_frames(obj)
        return [Event(f"the {_label(obj)}", obj.role, tuple(int(t) for t in frames))]
    if family in ("needle", "needle_time"):
        obj = scene.find("needle")
        frames = tuple(int(t) for t in scene.visible_frames(obj))
        return [Event(f"the {_label(obj)} needle ({_span(frames)})", obj.role, frames)]
    if family == "count":
        obj = scene.find("flash")
        runs = _runs(scene.visible_frames(obj))
        return [
            Event(f"flash {k + 1} ({_span(run)})", obj.role, tuple(int(t) for t in run))
            for k, run in enumerate(runs)
        ]
    if family == "order":
        events = []
        for obj in scene.objects:
            if obj.role.startswith("order"):
                frames = tuple(int(t) for t in scene.visible_frames(obj))
                events.append(Event(f"the {_label(obj)} ({_span(frames)})", obj.role, frames))
        return sorted(events, key=lambda e: e.frames[0])
    if family == "change":
        obj = scene.find("changer")
        frames = tuple(t for t in range(scene.num_frames) if scene.colour(obj, t) != scene.colour(obj, 0))
        return [Event(f"the turn to {scene.colour(obj, frames[0])} ({_span(frames)})", obj.role, frames)]
    if family == "direction":
        obj = scene.find("mover")
        quarter = max(1, scene.num_frames // 4)
        start = tuple(range(quarter))
        end = tuple(range(scene.num_frames - quarter, scene.num_frames))
        return [
            Event(f"the {_label(obj)} at the start ({_span(start)})", obj.role, start),
            Event(f"the {_label(obj)} at the end ({_span(end)})", obj.role, end),
        ]
    raise ValueError(f"no events are defined for family {family!r}")


def event_masks(
    item, frame_indices: Sequence[int], grid: tuple[int, int], side: int = FRAME_SIZE
) -> list[tuple[Event, np.ndarray]]:
    """Each event of ``item`` with its patches: ``[T, h, w]`` bool over the sampled frames
    ``frame_indices`` (``T`` of them, indices of the video as seen) on a ``grid = (h, w)`` of patches;
    a patch is the event's when the object covers at least :data:`EVENT_COVER` of it. The frames are
    drawn at ``side`` pixels (a multiple of ``h`` and ``w``). An object too small to cover that much of
    any patch (``small``'s, where it straddles patches) marks the patches it covers most."""
    h, w = grid
    if side % h or side % w:
        raise ValueError(f"side {side} is not a multiple of the grid {grid}")
    scene: Scene = item.scene
    out = []
    for event in item_events(item):
        obj = scene.find(event.role)
        mask = np.zeros((len(frame_indices), h, w), dtype=bool)
        for i, t in enumerate(frame_indices):
            if int(t) not in event.frames or not scene.visible(obj, int(t)):
                continue
            sprite = next(s for o, s in zip(_visible(scene, int(t)), scene.sprites(int(t))) if o is obj)
            pixels = shape_mask(sprite, side).reshape(h, side // h, w, side // w).mean(axis=(1, 3))
            mask[i] = pixels >= min(EVENT_COVER, float(pixels.max()))
        out.append((event, mask))
    return out


def _visible(scene: Scene, t: int) -> list[SceneObject]:
    """The objects frame ``t`` shows, in the order :meth:`Scene.sprites` draws them."""
    return [o for o in scene.objects if scene.visible(o, t)]


def kept_share(compressed, mask: np.ndarray | torch.Tensor) -> float:
    """The largest share of one output token's weight that comes from the positions in ``mask``.

    Args:
        compressed: a :class:`~vidpool.compression.Compressed` whose ``assign``/``weight`` are
            ``[T, h, w]`` (or ``[1, T, h, w]``).
        mask: ``[T, h, w]`` bool, the event's patches.

    Returns:
        ``0`` when no position of ``mask`` feeds a kept token; ``1`` when some token is made of the
        event's patches alone (a kept patch of a pruning method; every token of ``none``).
    """
    assign, weight = compressed.assign, compressed.weight
    if assign.dim() == 4:
        assign, weight = assign[0], weight[0]
    mask = torch.as_tensor(np.asarray(mask), dtype=torch.bool).to(assign.device)
    if tuple(mask.shape) != tuple(assign.shape):
        raise ValueError(
            f"the mask's shape {tuple(mask.shape)} is not the compression's grid {tuple(assign.shape)}"
        )
    assign, weight, mask = assign.reshape(-1).cpu(), weight.reshape(-1).float().cpu(), mask.reshape(-1).cpu()
    fed = assign >= 0  # -1: dropped
    assign, weight, mask = assign[fed], weight[fed], mask[fed]
    if not bool((mask & (weight > 0)).any()):
        return 0.0
    size = int(assign.max()) + 1
    total = torch.zeros(size).index_add_(0, assign, weight)
    part = torch.zeros(size).index_add_(0, assign[mask], weight[mask])
    return float((part / total.clamp_min(1e-12)).max())
