"""Controls for every table: what the benchmark gets with all tokens, with no video, and with naive cuts.

Each control returns a :class:`vidpool.Compressed` with the same fields and meaning as a method's
(``assign``/``weight`` over the input positions, ``-1``/``0`` where dropped), so the same readout
applies, or ``None`` for ``text_only``:

- ``full``: every position is its own token (the ceiling);
- ``middle_frame``: frame ``T // 2`` only, every patch of it;
- ``shuffled``: every token of frames in a seeded random order. The frames are shuffled *before*
  encoding (:func:`shuffle_frames`), so the tokens' provenance names the shuffled timeline and all
  order in time is lost; :func:`control_kept` shuffles features and joint embeddings alike (a CLIP
  encodes each frame alone, so that equals encoding shuffled frames);
- ``text_only``: no video (``None``); the options are scored without it;
- ``random_drop``: the method ``random_drop`` with the item's seed: ``budget`` positions drawn without
  replacement, each kept as its own token, in time-major order;
- ``frame_subsample``: the method ``frame_subsample`` with ``max(1, budget // (h·w))`` whole frames (at
  most ``T``), evenly spaced at the centres of equal segments, every patch of them. Below one frame's
  tokens the control still keeps one frame, where the method refuses the budget.

Seed each item on its own (:func:`item_seed`): one permutation shared by every item of a length is
correlated with time order the same way on all of them, and ``shuffled`` then keeps a direction
readout's sign on every item (40 of 40 ``direction`` items with seed 0 for all, at 16 frames).
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

from vidpool.bench.synth.readout import Kept, kept_tokens
from vidpool.compression.api import compress
from vidpool.compression.baselines import segment_centres
from vidpool.compression.result import Compressed
from vidpool.errors import InvalidArgumentError

__all__ = [
    "BUDGETED_CONTROLS",
    "CONTROLS",
    "control_compressed",
    "control_kept",
    "item_seed",
    "shuffle_frames",
]

CONTROLS = ("full", "middle_frame", "shuffled", "text_only", "random_drop", "frame_subsample")
BUDGETED_CONTROLS = ("random_drop", "frame_subsample")


def item_seed(item_id: str, seed: int = 0) -> int:
    """A control seed of its own for item ``item_id`` in run ``seed`` (shuffles and drops differ per item)."""
    return zlib.crc32(f"{item_id}:{seed}".encode())


def shuffle_frames(frames, seed: int):
    """``(frames[perm], perm)``: the first axis (time) of an array or tensor in a seeded random order.

    ``perm`` is a long array: shown frame ``i`` is original frame ``perm[i]``.
    """
    perm = np.random.default_rng([7, seed]).permutation(len(frames))
    if isinstance(frames, torch.Tensor):
        return frames[torch.from_numpy(perm).to(frames.device)], perm
    return np.asarray(frames)[perm], perm


def _keep_positions(name: str, features: torch.Tensor, keep: torch.Tensor, params: dict) -> Compressed:
    """One token per kept position (bool ``keep`` ``[T, h, w]``), in time-major order."""
    t, h, w, _ = features.shape
    flat = keep.reshape(-1)
    assign = torch.full((t * h * w,), -1, dtype=torch.long, device=features.device)
    assign[flat] = torch.arange(int(flat.sum()), device=features.device)
    return Compressed(
        tokens=features.reshape(t * h * w, -1)[flat],
        assign=assign.view(t, h, w),
        weight=flat.to(torch.float32).view(t, h, w),
        method=name,
        params=params,
        input_shape=(t, h, w),
        grid=None,
    )


def _frames_mask(features: torch.Tensor, frames: list[int]) -> torch.Tensor:
    keep = torch.zeros(features.shape[:3], dtype=torch.bool, device=features.device)
    keep[frames] = True
    return keep


def control_compressed(name: str, features: torch.Tensor, budget: int | None, seed: int) -> Compressed | None:
    """The tokens control ``name`` keeps of features ``[T, h, w, C]`` (``None`` for ``text_only``).

    ``budget`` is needed by ``random_drop`` and ``frame_subsample`` and ignored by the others;
    ``seed`` drives ``random_drop``. For ``shuffled`` pass the features of the shuffled frames (see
    :func:`control_kept`); the result keeps them all. Grid-shaped results set ``grid`` as methods do.
    """
    if name not in CONTROLS:
        raise InvalidArgumentError(f"unknown control {name!r}; the controls are {', '.join(CONTROLS)}")
    if not isinstance(features, torch.Tensor) or features.dim() != 4:
        raise InvalidArgumentError(
            f"controls take one video's features [T, h, w, C], got {getattr(features, 'shape', features)}"
        )
    t, h, w, _ = features.shape
    if name == "text_only":
        return None
    if name in BUDGETED_CONTROLS and (not isinstance(budget, int) or budget < 1):
        raise InvalidArgumentError(f"control {name!r} needs a positive integer budget, got {budget!r}")
    if name in ("full", "shuffled"):
        out = _keep_positions(name, features, torch.ones(t, h, w, dtype=torch.bool), {})
        out.grid = (t, h, w)
        return out
    if name == "middle_frame":
        out = _keep_positions(name, features, _frames_mask(features, [t // 2]), {"frame": t // 2})
        out.grid = (1, h, w)
        return out
    if name == "random_drop":
        out = compress(features, "random_drop", budget=budget, seed=seed)
        out.params = {"budget": budget, "seed": seed}
        return out
    # One frame at least, as a control always answers; the method itself refuses a budget below a frame.
    count = min(t, max(1, budget // (h * w)))
    out = compress(features, "frame_subsample", num_frames=count)
    out.params = {"budget": budget, "frames": segment_centres(t, count)}
    return out


def control_kept(
    name: str, features: torch.Tensor, joint: torch.Tensor, *, budget: int | None = None, seed: int = 0
) -> Kept | None:
    """Control ``name`` applied end to end: the :class:`Kept` tokens the readout scores, or ``None``.

    ``features`` ``[T, h, w, C]`` and ``joint`` ``[T, h, w, D]`` are those of the frames in their true
    order; ``shuffled`` reorders both with :func:`shuffle_frames` before keeping every token.
    """
    if name == "shuffled":
        features, _ = shuffle_frames(features, seed)
        joint, _ = shuffle_frames(joint, seed)
    compressed = control_compressed(name, features, budget, seed)
    return None if compressed is None else kept_tokens(compressed, joint)
