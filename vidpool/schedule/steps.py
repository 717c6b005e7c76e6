"""The steps of :func:`vidpool.plan`, one function each, in the order the plan takes them.

0. **Context** (:func:`fit_context`): visual tokens + prompt + ``max_new_tokens`` must fit in the LM's
   context. A request whose token count the caller fixed (``method``, ``method_params`` or
   ``budget`` given) is refused when it does not fit, and so is one whose frames the caller
   fixed (``num_frames`` given) when even :data:`MIN_TOKENS_PER_FRAME` a frame would not fit. Otherwise
   the checkpoint's default method gives way to progressive pooling with the largest budget that fits
   (never below the floor a frame), then to fewer frames.
1. **Features on the CPU** (:func:`features_on_cpu`, GPU only): the vision features wait on the CPU
   between encoding and generation.
2. **Progressive pooling** (:func:`progressive_pooling`): the largest progressive budget that fits,
   down to the floor of tokens a frame.
3. **Offload LM layers** (:func:`offload_layers`, GPU only, when the weights fit but the working set
   does not): accelerate keeps up to :data:`MAX_OFFLOAD_FRACTION` of the LM on the CPU to make room
   for every requested frame at the floor.
4. **Fewer frames** (:func:`fewer_frames`): the most frames that fit at the floor or above (with the
   offload of step 3 when it was taken).
5. **Refuse** (:func:`refuse`): :class:`~vidpool.errors.OutOfMemoryError` with the numbers.

Offloading comes before fewer frames because it keeps what the answer is about: on the 7B-shaped
model planned for 256 frames, 15 GiB gives 256 frames at 16 tokens with about 3 GiB of the LM on the
CPU (docs/memory.md shows the plan), and more memory never gives fewer frames. The price is speed (each new token streams the offloaded
layers over PCIe), so offloading never buys more tokens than the floor and never moves more than
half the LM. Each step that changes the request writes a note. Every candidate fits the memory and
the context.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

from vidpool.errors import ContextLengthError, InvalidArgumentError, OutOfMemoryError
from vidpool.schedule.device import format_bytes
from vidpool.schedule.estimate import ModelSpec
from vidpool.schedule.search import DEGRADE_METHOD, Candidate, PlanSearch, largest_passing

__all__ = [
    "MAX_OFFLOAD_FRACTION",
    "MEMORY_STEPS",
    "MIN_TOKENS_PER_FRAME",
    "Request",
    "as_requested",
    "features_on_cpu",
    "fewer_frames",
    "fit_context",
    "offload_layers",
    "progressive_pooling",
    "refuse",
    "resolve_request",
]

#: the fewest visual tokens a frame keeps when the plan degrades (one 4x4 grid): below it a frame says
#: little, so the plan drops frames instead
MIN_TOKENS_PER_FRAME = 16

#: the largest share of the LM's weights the plan moves to the CPU to keep the requested frames
MAX_OFFLOAD_FRACTION = 0.5

#: the memory steps in order, as the notes name them
MEMORY_STEPS = ("features on the CPU", "progressive pooling", "offload LM layers", "fewer frames")


def _step(name: str) -> str:
    return f"step {MEMORY_STEPS.index(name) + 1} of {len(MEMORY_STEPS)} ({name})"


@dataclass(frozen=True)
class Request:
    """What the caller asked for, resolved against the checkpoint's defaults.

    ``frames_given``: the caller chose ``num_frames``. ``tokens_given``: the caller chose the method, its
    parameters or the budget, so the token count is theirs. ``floor`` is the tokens a frame the plan
    keeps when it degrades (:data:`MIN_TOKENS_PER_FRAME`, or less when the request itself has fewer).
    """

    frames: int
    method: str
    params: dict[str, Any] = field(hash=False)
    budget: int | None
    tokens: int
    frames_given: bool
    tokens_given: bool
    floor: int

    def describe(self) -> str:
        return f"{self.frames} frames with {self.method!r} ({self.tokens} visual tokens)"

    def cap(self, search: PlanSearch, frames: int) -> int:
        """Tokens the request itself gives at ``frames`` frames: degrading never adds tokens."""
        at = search.tokens(frames, self.method, self.budget, self.params)
        return min(self.tokens, at) if at is not None else self.tokens


def resolve_request(
    spec: ModelSpec,
    *,
    num_frames: int | None,
    method: str | None,
    method_params: dict[str, Any] | None,
    budget: int | None,
    video_frames: int | None,
    min_tokens_per_frame: int,
    notes: list[str],
) -> Request:
    """The request with the checkpoint's defaults filled in (a budget replaces the default's stride/size)."""
    frames = int(spec.num_frames if num_frames is None else num_frames)
    if frames < 1:
        raise InvalidArgumentError(f"num_frames must be >= 1, got {num_frames}")
    if isinstance(min_tokens_per_frame, bool) or int(min_tokens_per_frame) < 1:
        raise InvalidArgumentError(f"min_tokens_per_frame must be >= 1, got {min_tokens_per_frame!r}")
    if video_frames is not None and frames > video_frames:
        notes.append(f"the video has only {video_frames} frames; sampling all of them")
        frames = video_frames
    tokens_given = method is not None or method_params is not None or budget is not None
    method, params, budget = spec.resolve_compression(method, budget, method_params)
    tokens = spec.num_visual_tokens(frames, method, budget, params)
    patches = spec.grid[0] * spec.grid[1]
    floor = max(1, min(int(min_tokens_per_frame), patches, tokens // frames))
    return Request(
        frames=frames,
        method=method,
        params=params,
        budget=budget,
        tokens=tokens,
        frames_given=num_frames is not None,
        tokens_given=tokens_given,
        floor=floor,
    )


# -- step 0: the context window ------------------------------------------------------------------
def _context_error(search: PlanSearch, req: Request, advice: str) -> ContextLengthError:
    spec = search.spec
    needed = search.positions(req.frames, req.tokens)
    prompt = search.prompt_for(req.frames)
    return ContextLengthError(
        f"{req.describe()} need {needed} positions ({req.tokens} visual + {prompt} prompt + "
        f"{search.max_new_tokens} new tokens), but {spec.name}'s context holds {spec.context_length}; "
        + advice,
        needed=needed,
        context_length=spec.context_length,
    )


def fit_context(search: PlanSearch, req: Request, notes: list[str]) -> Request:
    """Step 0: the request, or the request degraded to fit the LM's context; refuses explicit overflows."""
    if search.fits_context(req.frames, req.tokens):
        return req
    if req.tokens_given:
        frames_ok = largest_passing(
            1, req.frames - 1, lambda f: True if search.fits_context(f, req.cap(search, f)) else None
        )
        advice = []
        if frames_ok is not None:
            advice.append(f"num_frames <= {frames_ok[0]} (--frames)")
        budget = search.largest_context_budget(req.frames, 1, req.tokens)
        if budget is not None:
            advice.append(
                f"budget <= {budget[0]} (--budget) with a method that takes one, such as 'progressive'"
            )
        advice.append("fewer max_new_tokens, or a model with a longer context")
        raise _context_error(search, req, "pass " + ", or ".join(advice))
    at_floor = search.largest_context_budget(req.frames, req.floor * req.frames, req.tokens)
    if at_floor is not None:
        budget, tokens = at_floor
        notes.append(
            f"context: {req.describe()} need {search.positions(req.frames, req.tokens)} positions of "
            f"{search.spec.context_length}; switched to {DEGRADE_METHOD!r} with budget {budget} "
            f"({tokens} visual tokens)"
        )
        return replace(req, method=DEGRADE_METHOD, params={}, budget=budget, tokens=tokens)

    def at(frames: int) -> tuple[int, int] | None:
        return search.largest_context_budget(frames, req.floor * frames, req.cap(search, frames) + 1)

    best = largest_passing(1, req.frames - 1, at)
    if req.frames_given or best is None:
        fit = f"num_frames <= {best[0]} (--frames), or " if best is not None else ""
        raise _context_error(
            search,
            req,
            f"even {req.floor} tokens a frame do not fit; pass {fit}a smaller min_tokens_per_frame, "
            "or fewer max_new_tokens",
        )
    frames, (budget, tokens) = best
    notes.append(
        f"context: {req.describe()} need {search.positions(req.frames, req.tokens)} positions of "
        f"{search.spec.context_length}; sampling {frames} frames with {DEGRADE_METHOD!r} at budget {budget} "
        f"({tokens} visual tokens)"
    )
    return replace(req, frames=frames, method=DEGRADE_METHOD, params={}, budget=budget, tokens=tokens)


# -- the memory steps ----------------------------------------------------------------------------
def as_requested(search: PlanSearch, req: Request) -> Candidate | None:
    """The request as it stands, with the largest encoder batch that fits."""
    return search.fit(req.frames, req.method, req.budget, req.params)


def features_on_cpu(search: PlanSearch, req: Request, notes: list[str]) -> Candidate | None:
    """Step 1 (GPU): keep the vision features on the CPU between encoding and generation."""
    if not search.cuda or not search.features_on_device:
        return None
    needed = search.at_batch_one(req.frames, req.tokens, req.method).required
    search.features_on_device = False
    notes.append(
        f"{_step('features on the CPU')}: {req.describe()} needs {format_bytes(needed)} of "
        f"{format_bytes(search.capacity)}: vision features are kept on the CPU between encoding and generation"
    )
    return as_requested(search, req)


def progressive_pooling(search: PlanSearch, req: Request, notes: list[str]) -> Candidate | None:
    """Step 2: progressive pooling with the largest budget that fits, no lower than the floor a frame."""
    found = search.largest_progressive(req.frames, req.floor * req.frames, req.tokens)
    capacity = format_bytes(search.capacity)
    if found is None:
        notes.append(
            f"{_step('progressive pooling')}: {req.describe()} does not fit in {capacity}, not even with "
            f"{DEGRADE_METHOD!r} at {req.floor} tokens a frame"
        )
        return None
    notes.append(
        f"{_step('progressive pooling')}: {req.describe()} does not fit in {capacity}; switched to "
        f"{DEGRADE_METHOD!r} with budget {found.budget} ({found.tokens} visual tokens, "
        f"{found.tokens // found.frames} a frame)"
    )
    return found


def fewer_frames(search: PlanSearch, req: Request, notes: list[str]) -> Candidate | None:
    """Step 4: the most frames that fit with progressive pooling at the floor a frame or above."""

    def at(frames: int) -> Candidate | None:
        return search.largest_progressive(frames, req.floor * frames, req.cap(search, frames) + 1)

    best = largest_passing(1, req.frames - 1, at)
    if best is None:
        return None
    found = best[1]
    notes.append(
        f"{_step('fewer frames')}: sampling {found.frames} frames instead of {req.frames}, "
        f"{DEGRADE_METHOD!r} with budget {found.budget} ({found.tokens} visual tokens)"
    )
    return found


def offload_layers(search: PlanSearch, req: Request, notes: list[str]) -> Candidate | None:
    """Step 3 (GPU, weights fit): move up to ``MAX_OFFLOAD_FRACTION`` of the LM to the CPU to keep every
    requested frame at the floor. The offload stays on for step 4."""
    if not search.cuda or search.offload:
        return None
    search.offload = True
    search.min_lm_on_device = int((1 - MAX_OFFLOAD_FRACTION) * search.spec.lm_param_bytes)
    found = search.largest_progressive(req.frames, req.floor * req.frames, req.tokens)
    if found is None:
        notes.append(
            f"{_step('offload LM layers')}: {req.frames} frames at {req.floor} tokens a frame do not fit "
            f"even with {MAX_OFFLOAD_FRACTION:.0%} of the LM on the CPU"
        )
        return None
    notes.append(
        f"{_step('offload LM layers')}: {format_bytes(found.lm_on_device)} of the LM's "
        f"{format_bytes(search.spec.lm_param_bytes)} stay on the GPU, the rest on the CPU (slower "
        f"generation), to keep {found.frames} frames with {DEGRADE_METHOD!r} at budget {found.budget} "
        f"({found.tokens} visual tokens)"
    )
    return found


def refuse(search: PlanSearch, device: str) -> NoReturn:
    """Step 5: nothing fits: say how much the smallest run needs."""
    spec = search.spec
    smallest = search.at_batch_one(1, 1, DEGRADE_METHOD)
    raise OutOfMemoryError(
        f"{spec.name} does not fit in {format_bytes(search.capacity)} on {device}: even 1 frame with 1 "
        f"visual token needs {format_bytes(smallest.required)} (weights {format_bytes(smallest.weights)}); "
        "free memory, use a smaller model or dtype, or pass a larger max_memory"
    )
