"""The searches behind :func:`vidpool.plan`: what fits, the largest progressive budget, the batch.

Memory and context grow with the number of visual tokens, frames and the encoder batch, so each
search is a binary search over one of them, with the estimate of :mod:`vidpool.schedule.estimate`
and the LM's context length as the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vidpool.errors import BudgetError
from vidpool.options import FastV
from vidpool.schedule.estimate import MARGIN_FRACTION, MemoryEstimate, ModelSpec, estimate_memory

__all__ = [
    "DEGRADE_METHOD",
    "GOOD_ENCODER_BATCH",
    "MAX_ENCODER_BATCH",
    "Candidate",
    "PlanSearch",
    "largest_passing",
]

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


@dataclass(frozen=True)
class Candidate:
    """One way to run: ``frames`` frames, ``method`` with ``params`` at ``budget`` giving ``tokens`` visual
    tokens, encoded ``batch`` frames at a time; ``memory`` its estimate with ``lm_on_device`` bytes of
    the LM's weights on the device (less than all of them when layers are offloaded)."""

    frames: int
    method: str
    params: dict[str, Any] = field(hash=False)
    budget: int | None
    tokens: int
    batch: int
    memory: MemoryEstimate
    lm_on_device: int


class PlanSearch:
    """Fit checks and searches over (frames, method, budget, encoder batch) for one model and device.

    ``features_on_device``, ``offload`` and ``min_lm_on_device`` are set by the plan's steps as it
    degrades. Every candidate it returns fits ``capacity`` and the LM's context.
    """

    def __init__(
        self,
        spec: ModelSpec,
        capacity: int,
        cuda: bool,
        frame_size: tuple[int, int],
        max_new_tokens: int,
        prompt_tokens: int | None,
        duration: float | None,
        fastv: FastV | None = None,
    ):
        self.spec = spec
        self.capacity = capacity
        self.cuda = cuda
        self.frame_size = frame_size
        self.max_new_tokens = max_new_tokens
        self.prompt_tokens = prompt_tokens
        self.duration = duration
        self._prompt_cache: dict[int, int] = {}
        #: FastV's pruning inside the LM (:class:`vidpool.options.FastV`), or ``None``
        self.fastv = fastv
        self.features_on_device = True
        self.offload = False
        # with offload on, the fewest LM bytes that must stay on the device
        self.min_lm_on_device = 0

    # -- context -----------------------------------------------------------------------------
    def prompt_for(self, frames: int) -> int:
        if self.prompt_tokens is not None:
            return self.prompt_tokens
        if frames not in self._prompt_cache:
            self._prompt_cache[frames] = self.spec.prompt_tokens(frames, self.duration)
        return self._prompt_cache[frames]

    def positions(self, frames: int, tokens: int) -> int:
        """Positions a run takes in the LM: visual tokens + prompt + ``max_new_tokens``."""
        return tokens + self.prompt_for(frames) + self.max_new_tokens

    def fits_context(self, frames: int, tokens: int) -> bool:
        """Whether the run fits the LM's context (always, when its length is unknown)."""
        context = self.spec.context_length
        return not context or self.positions(frames, tokens) <= context

    def tokens(self, frames: int, method: str, budget: int | None, params: dict) -> int | None:
        try:
            return self.spec.num_visual_tokens(frames, method, budget, params)
        except BudgetError:
            return None

    def min_budget(self, frames: int, method: str = DEGRADE_METHOD) -> int:
        """The smallest budget ``method`` takes for ``frames`` frames."""
        try:
            self.spec.num_visual_tokens(frames, method, 1, {})
        except BudgetError as exc:
            return max(1, exc.min_budget or 1)
        return 1

    def largest_context_budget(self, frames: int, lo: int, below: int) -> tuple[int, int] | None:
        """``(budget, tokens)`` of the progressive run with the largest budget in ``[lo, below)`` that fits
        the context at ``frames`` (memory aside), or None."""

        def test(budget: int) -> int | None:
            tokens = self.tokens(frames, DEGRADE_METHOD, budget, {})
            return tokens if tokens is not None and self.fits_context(frames, tokens) else None

        lo = max(lo, self.min_budget(frames))
        return largest_passing(lo, below - 1, test)

    # -- memory ------------------------------------------------------------------------------
    def estimate(
        self, frames: int, tokens: int, batch: int, method: str
    ) -> tuple[MemoryEstimate, int] | None:
        """The estimate and LM bytes on the device, or None when it does not fit."""
        lm = self.spec.lm_param_bytes
        kwargs = dict(
            joint=self.spec.uses_joint(method),
            num_frames=frames,
            num_tokens=tokens,
            encoder_batch=batch,
            frame_size=self.frame_size,
            prompt_tokens=self.prompt_for(frames),
            max_new_tokens=self.max_new_tokens,
            features_on_device=self.features_on_device,
            cuda=self.cuda,
            fastv=self.fastv,
        )
        full = estimate_memory(self.spec, lm_weight_bytes=lm, **kwargs)
        if full.required <= self.capacity:
            return full, lm
        if not self.offload:
            return None
        without = estimate_memory(self.spec, lm_weight_bytes=0, **kwargs)
        # the LM share placed on the device adds its own margin
        room = int((self.capacity - without.required) / (1 + MARGIN_FRACTION))
        # accelerate streams offloaded layers through the GPU one at a time: leave room for two
        if room < max(2 * lm // max(1, self.spec.num_layers), self.min_lm_on_device):
            return None
        return estimate_memory(self.spec, lm_weight_bytes=room, **kwargs), room

    def fit(
        self, frames: int, method: str, budget: int | None, params: dict, min_batch: int = 1
    ) -> Candidate | None:
        """The candidate with the largest encoder batch (at least ``min_batch``) that fits, or None."""
        tokens = self.tokens(frames, method, budget, params)
        if tokens is None or not self.fits_context(frames, tokens):
            return None
        batch = min(frames, MAX_ENCODER_BATCH)
        while batch >= min(min_batch, frames):
            found = self.estimate(frames, tokens, batch, method)
            if found is not None:
                return Candidate(frames, method, dict(params), budget, tokens, batch, *found)
            batch //= 2
        return None

    def largest_progressive(self, frames: int, lo: int, below: int) -> Candidate | None:
        """The progressive fit with the largest budget in ``[lo, below)`` at ``frames``, or None.

        A budget that would leave room only for a tiny encoder batch is not worth it: the search first
        keeps batches of at least ``GOOD_ENCODER_BATCH`` frames, then accepts any. With LM layers
        offloaded, every token more moves more of the LM to the CPU, so the budget stays at ``lo``
        (the floor): offloading makes room for the floor, it does not buy tokens.
        """
        lo = max(lo, self.min_budget(frames))
        if self.offload:
            below = min(below, lo + 1)
        for min_batch in (GOOD_ENCODER_BATCH, 1):
            if lo > below - 1 or self.fit(frames, DEGRADE_METHOD, lo, {}, min_batch) is None:
                continue
            found = largest_passing(
                lo, below - 1, lambda budget, m=min_batch: self.fit(frames, DEGRADE_METHOD, budget, {}, m)
            )
            if found is not None:
                return found[1]
        return None

    def at_batch_one(self, frames: int, tokens: int, method: str) -> MemoryEstimate:
        """The estimate with a 1-frame encoder batch and the features on the device (for messages)."""
        return estimate_memory(
            self.spec,
            joint=self.spec.uses_joint(method),
            num_frames=frames,
            num_tokens=tokens,
            encoder_batch=1,
            frame_size=self.frame_size,
            prompt_tokens=self.prompt_for(frames),
            max_new_tokens=self.max_new_tokens,
            cuda=self.cuda,
            fastv=self.fastv,
        )
