"""The baselines every pruner is compared against: ``random_drop`` and ``frame_subsample``.

Both keep input tokens unchanged (a kept token is the input at its position, weight 1) and return
them in time-major order. Random dropping is a strong baseline (UniPruneBench found it ahead of most
published pruners), so it is a method of its own rather than test code.
"""

from __future__ import annotations

import numbers

import torch

from vidpool.compression.budget import check_budget
from vidpool.compression.keep import keep_positions
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["DEFAULT_KEEP", "FrameSubsample", "RandomDrop", "random_positions", "segment_centres"]

#: the share of positions (``random_drop``) or frames (``frame_subsample``) kept when no budget is given
DEFAULT_KEEP = 0.25


def segment_centres(total: int, count: int) -> list[int]:
    """The frames at the centres of ``count`` equal segments of ``total`` frames, ascending.

    Frame ``⌊(i + ½)·total / count⌋`` for ``i < count`` (``1 <= count <= total``): the rule
    ``vidpool.video`` samples frames with (its ``sample_positions(total, num_frames=count)``),
    written again in exact integer arithmetic because compression may not import video.
    """
    return [(2 * i + 1) * total // (2 * count) for i in range(count)]


def random_positions(total: int, count: int, seed: int) -> torch.Tensor:
    """``count`` distinct positions of ``range(total)`` drawn uniformly for ``seed``: long ``[count]``, sorted.

    The first ``count`` of ``torch.randperm(total)`` under a CPU generator seeded with ``seed``, so a
    seed keeps the same positions on every device.
    """
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=generator)[:count].sort().values


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**64:
        raise InvalidArgumentError(
            f"random_drop seed must be an integer in [0, 2**64), got {seed!r}; the same seed keeps the "
            "same positions"
        )
    return int(seed)


def _frames_arg(num_frames, t: int) -> int:
    if isinstance(num_frames, bool) or not isinstance(num_frames, numbers.Integral) or num_frames < 1:
        raise InvalidArgumentError(f"num_frames must be a positive integer, got {num_frames!r}")
    if num_frames > t:
        raise InvalidArgumentError(f"num_frames={num_frames} is larger than the input's {t} frames")
    return int(num_frames)


@register
class RandomDrop(Method):
    """Keep ``budget`` positions drawn uniformly at random without replacement over all ``T·H·W``.

    * ``budget=N``: exactly ``min(N, T·H·W)`` tokens; with no budget, ``max(1, ⌊T·H·W / 4⌋)``
      (:data:`DEFAULT_KEEP`).
    * ``seed`` (int, default 0): the same seed keeps the same positions, on CPU and CUDA alike. Every
      video of a batch keeps the same positions, so a batch gives what a loop over its videos gives;
      to draw differently per video (a benchmark's items), compress each with a seed of its own.

    Tokens are the inputs at the kept positions, in time-major order.
    """

    name = "random_drop"
    summary = "keep budget tokens drawn uniformly at random (seeded) over all positions; the pruning baseline"

    def resolve(self, shape, budget=None, *, seed=0):
        t, h, w = shape
        total = t * h * w
        count = max(1, int(total * DEFAULT_KEEP)) if budget is None else min(budget, total)
        return MethodPlan(count, {"count": count, "seed": _check_seed(seed)})

    def run(self, x, plan, scores=None) -> Output:
        b, t, h, w, _ = x.shape
        keep = random_positions(t * h * w, plan.params["count"], plan.params["seed"]).to(x.device)
        return keep_positions(x, keep.expand(b, -1))


@register
class FrameSubsample(Method):
    """Keep whole frames, evenly spaced at the centres of equal segments (vidpool's frame sampling).

    * ``budget=N``: as many frames as the budget holds, ``k = min(T, N // (H·W))``, every patch of them
      (``k·H·W`` tokens); a budget below ``H·W`` cannot hold one frame and raises ``BudgetError``.
    * ``num_frames=k`` (at most ``T``): those frames; with neither, ``max(1, ⌊T / 4⌋)``
      (:data:`DEFAULT_KEEP`).

    The frames are :func:`segment_centres`; tokens are the frames' patches, in time-major order.
    """

    name = "frame_subsample"
    budget_replaces = ("num_frames",)
    summary = "keep whole frames at evenly spaced segment centres, as many as the budget holds"
    keeps_grid = True

    def resolve(self, shape, budget=None, *, num_frames=None):
        t, h, w = shape
        if budget is not None:
            if num_frames is not None:
                raise InvalidArgumentError("give frame_subsample either num_frames= or budget=, not both")
            check_budget(self.name, budget, h * w, shape)
            count = min(t, budget // (h * w))
        elif num_frames is not None:
            count = _frames_arg(num_frames, t)
        else:
            count = max(1, int(t * DEFAULT_KEEP))
        return MethodPlan(count * h * w, {"num_frames": count}, grid=(count, h, w))

    def run(self, x, plan, scores=None) -> Output:
        b, t, h, w, _ = x.shape
        frames = torch.tensor(segment_centres(t, plan.params["num_frames"]), device=x.device)
        keep = (frames.unsqueeze(1) * (h * w) + torch.arange(h * w, device=x.device)).flatten()
        return keep_positions(x, keep.expand(b, -1))
