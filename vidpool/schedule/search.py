"""The searches behind :func:`vidpool.plan`: what fits, the largest progressive budget, the batch.

Memory grows with the number of visual tokens, frames and the encoder batch, so each search is a
binary search over one of them with the estimate of :mod:`vidpool.schedule.estimate` as the test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from vidpool.errors import BudgetError
from vidpool.schedule.estimate import MemoryEstimate, ModelSpec, estimate_memory

__all__ = ["DEGRADE_METHOD", "GOOD_ENCODER_BATCH", "MAX_ENCODER_BATCH", "PlanSearch", "largest_passing"]

DEGRADE_METHOD = "progressive"
MAX_ENCODER_BATCH = 32
GOOD_ENCODER_BATCH = 8

T = TypeVar("T")


def largest_passing(lo: int, hi: int, test: Callable[[int], T | None]) -> tuple[int, T] | None:
    """Binary search: the largest ``n`` in ``[lo, hi]`` whose ``test(n)`` is not None, with that result.

    ``test`` must pass for every value below one that passes (memory grows with ``n``); None when no
    value passes.
    """
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        found = test(mid)
        if found is None:
            hi = mid - 1
        else:
            best = (mid, found)
            lo = mid + 1
    return best


class PlanSearch:
    """Fit checks and searches over (frames, method, budget, encoder batch) for one model and device.

    ``features_on_device`` and ``offload`` are switched on by :func:`vidpool.plan` as it degrades.
    """

    def __init__(
        self, spec: ModelSpec, capacity: int, cuda: bool, frame_size, max_new_tokens, prompt_tokens, duration
    ):
        self.spec = spec
        self.capacity = capacity
        self.cuda = cuda
        self.frame_size = frame_size
        self.max_new_tokens = max_new_tokens
        self.prompt_tokens = prompt_tokens
        self.duration = duration
        self._prompt_cache: dict[int, int] = {}
        self.features_on_device = True
        self.offload = False

    def prompt_for(self, frames: int) -> int:
        if self.prompt_tokens is not None:
            return self.prompt_tokens
        if frames not in self._prompt_cache:
            self._prompt_cache[frames] = self.spec.prompt_tokens(frames, self.duration)
        return self._prompt_cache[frames]

    def tokens(self, frames: int, method: str, budget: int | None, params: dict) -> int | None:
        try:
            return self.spec.num_visual_tokens(frames, method, budget, params)
        except BudgetError:
            return None

    def estimate(
        self, frames: int, tokens: int, batch: int, method: str
    ) -> tuple[MemoryEstimate, int] | None:
        """The estimate and LM bytes on the device, or None when it does not fit."""
        lm = self.spec.lm_param_bytes
        kwargs = dict(
            joint=self.spec.keeps_joint(method),
            num_frames=frames,
            num_tokens=tokens,
            encoder_batch=batch,
            frame_size=self.frame_size,
            prompt_tokens=self.prompt_for(frames),
            max_new_tokens=self.max_new_tokens,
            features_on_device=self.features_on_device,
            cuda=self.cuda,
        )
        full = estimate_memory(self.spec, lm_weight_bytes=lm, **kwargs)
        if full.required <= self.capacity:
            return full, lm
        if not self.offload:
            return None
        without = estimate_memory(self.spec, lm_weight_bytes=0, **kwargs)
        room = int((self.capacity - without.required) / 1.08)
        # accelerate streams offloaded layers through the GPU one at a time: leave room for two
        if room < 2 * lm // max(1, self.spec.num_layers):
            return None
        return estimate_memory(self.spec, lm_weight_bytes=room, **kwargs), room

    def fit(self, frames: int, method: str, budget: int | None, params: dict, min_batch: int = 1):
        tokens = self.tokens(frames, method, budget, params)
        if tokens is None:
            return None
        batch = min(frames, MAX_ENCODER_BATCH)
        while batch >= min(min_batch, frames):
            found = self.estimate(frames, tokens, batch, method)
            if found is not None:
                return tokens, batch, found[0], found[1]
            batch //= 2
        return None

    def largest_progressive(self, frames: int, below: int):
        """The progressive fit with the largest budget < ``below`` at ``frames``, or None.

        A budget that would leave room only for a tiny encoder batch is not worth it: the search first
        keeps batches of at least ``GOOD_ENCODER_BATCH`` frames, then accepts any.
        """
        for min_batch in (GOOD_ENCODER_BATCH, 1):
            found = self._largest_progressive(frames, below, min_batch)
            if found is not None:
                return found
        return None

    def at_batch_one(self, frames: int, tokens: int, prompt_tokens: int, method: str) -> MemoryEstimate:
        """The estimate with a 1-frame encoder batch and the features on the device (for messages)."""
        return estimate_memory(
            self.spec,
            joint=self.spec.keeps_joint(method),
            num_frames=frames,
            num_tokens=tokens,
            encoder_batch=1,
            frame_size=self.frame_size,
            prompt_tokens=prompt_tokens,
            max_new_tokens=self.max_new_tokens,
            cuda=self.cuda,
        )

    def _largest_progressive(self, frames: int, below: int, min_batch: int):
        lo, hi = 1, max(1, below - 1)
        if self.tokens(frames, DEGRADE_METHOD, 1, {}) is None:
            try:
                self.spec.num_visual_tokens(frames, DEGRADE_METHOD, 1, {})
            except BudgetError as exc:
                lo = max(1, exc.min_budget or 1)
        if lo > hi or self.fit(frames, DEGRADE_METHOD, lo, {}, min_batch) is None:
            return None
        return largest_passing(lo, hi, lambda budget: self.fit(frames, DEGRADE_METHOD, budget, {}, min_batch))
