"""What the fidelity benchmark compares on each question: compression methods and controls, and one answer.

An *arm* is a method at a budget fraction, a budgeted control (``random_drop``, ``frame_subsample``) at
a fraction, or a fixed control (``full``, ``middle_frame``, ``shuffled``, ``text_only``) with no budget.
The budgeted controls are the methods of those names run through ``vidpool.compress`` (see
:func:`vidpool.bench.synth.controls.control_compressed`); they run once, as controls, even when named
among the methods.
A budget fraction ``f`` of a ``[T, h, w, C]`` video asks for ``max(1, round(f · T·h·w))`` tokens; a
method may give fewer (or, for content-dependent ones, a different number): the count it gave is kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vidpool.errors import VidpoolError

__all__ = [
    "BUDGETED_CONTROLS",
    "FIXED_CONTROLS",
    "Answer",
    "Arm",
    "Column",
    "answer_item",
    "arms_for",
    "item_seed",
    "requested_tokens",
]

BUDGETED_CONTROLS = ("random_drop", "frame_subsample")
FIXED_CONTROLS = ("full", "middle_frame", "shuffled", "text_only")


@dataclass(frozen=True)
class Arm:
    """One column of the results: ``name`` (a method or a control), ``fraction`` (None: no budget)."""

    name: str
    fraction: float | None
    control: bool = False

    @property
    def key(self) -> str:
        return self.name if self.fraction is None else f"{self.name}@{self.fraction:g}"


@dataclass(frozen=True)
class Answer:
    """One arm on one question: ``correct`` (None when the arm could not run), tokens asked and given."""

    correct: bool | None
    requested: int
    tokens: int
    error: str | None = None


@dataclass
class Column:
    """One arm's answers over a family's items, in item order (``correct``: 1, 0, or -1 not run)."""

    correct: list[int] = field(default_factory=list)
    requested: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    error: str | None = None

    def add(self, answer: Any) -> None:
        """Append one :class:`~vidpool.bench.arms.Answer`."""
        self.correct.append(-1 if answer.correct is None else int(answer.correct))
        self.requested.append(answer.requested)
        self.tokens.append(answer.tokens)
        self.error = self.error or answer.error

    def extend(self, other: Column) -> None:
        self.correct += other.correct
        self.requested += other.requested
        self.tokens += other.tokens
        self.error = self.error or other.error


def arms_for(methods: Sequence[str], fractions: Sequence[float]) -> list[Arm]:
    """Every method and budgeted control at every fraction, then the fixed controls.

    A method that is also a budgeted control (``random_drop``) runs once, as the control.
    """
    arms = [Arm(m, f) for m in methods if m not in BUDGETED_CONTROLS for f in fractions]
    arms += [Arm(c, f, control=True) for c in BUDGETED_CONTROLS for f in fractions]
    arms += [Arm(c, None, control=True) for c in FIXED_CONTROLS]
    return arms


def requested_tokens(fraction: float, shape: tuple[int, int, int]) -> int:
    """Tokens a budget ``fraction`` of a ``(T, h, w)`` input asks for."""
    t, h, w = shape
    return max(1, round(fraction * t * h * w))


def item_seed(base: int, index: int) -> int:
    """The seed of item ``index``'s random controls (shuffled order, dropped tokens, kept frames)."""
    return int(np.random.SeedSequence([base, index]).generate_state(1)[0])


def answer_item(
    item: Any,
    index: int,
    features: torch.Tensor,
    joint: torch.Tensor,
    arms: Sequence[Arm],
    embed_text: Callable[[list[str]], torch.Tensor],
    *,
    seed: int = 0,
    logit_scale: float = 100.0,
    shuffled: tuple[torch.Tensor, torch.Tensor] | None = None,
    reader: Any = None,
    layered: Callable[[tuple[int, ...]], torch.Tensor] | None = None,
) -> dict[str, Answer]:
    """Every arm's answer to ``item``.

    Args:
        item: a :class:`vidpool.bench.synth.tasks.Item`.
        index: the item's place in its family (seeds the controls' randomness).
        features: ``[T, h, w, C]`` the encoder's patch features (what methods compress).
        joint: ``[T, h, w, D]`` the last block's patches in the joint space (what the rule readout
            scores, and what score-using methods rank patches by).
        embed_text: ``K`` strings -> ``[K, D]``.
        logit_scale: the CLIP's temperature, for the prompt relevance of score-using methods.
        shuffled: ``(features, joint)`` of the item's frames in the order ``shuffle_frames`` gives with
            ``item_seed(seed, index)``; needed by the ``shuffled`` control.
        reader: a trained :class:`vidpool.bench.synth.reader.Reader` that answers from each arm's output
            tokens and their provenance, every arm of the item in one batch; ``None``: the rule readout
            (:mod:`vidpool.bench.synth.readout`).
        layered: ``layers -> [T, h, w, L·C]`` the item's features of several encoder layers, for a
            method whose input concatenates them (``Method.input_layers``); its provenance is read
            against ``features``.

    Returns:
        ``{arm.key: Answer}``.
    """
    import vidpool
    from vidpool.bench.synth.controls import control_compressed

    shape = tuple(int(s) for s in features.shape[:3])
    total = shape[0] * shape[1] * shape[2]
    rng_seed = item_seed(seed, index)
    scores = None

    out: dict[str, Answer] = {}
    ran: list[tuple[Arm, int, Any, torch.Tensor, torch.Tensor]] = []
    for arm in arms:
        requested = total if arm.fraction is None else requested_tokens(arm.fraction, shape)
        on, source = joint, features
        try:
            if not arm.control:
                extra = {}
                if vidpool.get_method(arm.name).uses_scores:
                    if scores is None:
                        question = embed_text([item.question])[0]
                        scores = vidpool.prompt_scores(joint.float(), question, logit_scale=logit_scale)
                    extra["scores"] = scores
                method = vidpool.get_method(arm.name)
                x = features
                if method.input_layers is not None:
                    if layered is None:
                        raise ValueError(f"{arm.name} reads layers {method.input_layers}: pass layered=")
                    x = layered(method.input_layers)
                compressed = vidpool.compress(x, arm.name, budget=requested, **extra)
            elif arm.name == "shuffled":
                if shuffled is None:
                    raise ValueError("the shuffled control needs shuffled=(features, joint)")
                compressed = control_compressed("full", shuffled[0], None, rng_seed)
                source, on = shuffled
            else:
                budget = None if arm.fraction is None else requested
                compressed = control_compressed(arm.name, features, budget, rng_seed)
        except VidpoolError as exc:  # a budget the arm cannot meet is a result, not a crash
            out[arm.key] = Answer(None, requested, 0, f"{type(exc).__name__}: {exc}")
            continue
        ran.append((arm, 0 if arm.name == "text_only" else requested, compressed, source, on))
    right = _score_reader(item, ran, reader) if reader is not None else _score_rules(item, ran, embed_text)
    for (arm, requested, compressed, _, _), correct in zip(ran, right):
        tokens = 0 if compressed is None else int(compressed.num_tokens)
        out[arm.key] = Answer(correct, requested, tokens)
    return {arm.key: out[arm.key] for arm in arms}


def _score_rules(item: Any, ran: list, embed_text: Callable) -> list[bool]:
    from vidpool.bench.synth.readout import kept_tokens, option_scores

    right = []
    for _, _, compressed, _, on in ran:
        kept = None if compressed is None else kept_tokens(compressed, on)
        right.append(int(np.argmax(option_scores(item, kept, embed_text))) == int(item.answer))
    return right


def _score_reader(item: Any, ran: list, reader: Any, batch_tokens: int = 32768) -> list[bool]:
    """The reader's verdict on every arm, in batches of similar length (padding is what costs)."""
    from vidpool.bench.synth.reader import reader_input

    inputs = [reader_input(compressed, source) for _, _, compressed, source, _ in ran]
    # arms that keep the very same tokens (every method at 100%, the full control) are read once
    same: dict[int, int] = {}
    for i, x in enumerate(inputs):
        same[i] = next(
            (
                j
                for j in range(i)
                if same[j] == j
                and len(inputs[j].tokens) == len(x.tokens)
                and torch.equal(inputs[j].place, x.place)
                and torch.equal(inputs[j].tokens, x.tokens)
            ),
            i,
        )
    unique = [i for i in range(len(inputs)) if same[i] == i]
    verdict = dict(zip(unique, _read(item, [inputs[i] for i in unique], reader, batch_tokens)))
    return [verdict[same[i]] for i in range(len(inputs))]


def _read(item: Any, inputs: list, reader: Any, batch_tokens: int) -> list[bool]:
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].tokens))
    right = [False] * len(inputs)
    start = 0
    while start < len(order):
        stop = start + 1
        while (
            stop < len(order) and (stop - start + 1) * max(1, len(inputs[order[stop]].tokens)) <= batch_tokens
        ):
            stop += 1
        chunk = order[start:stop]
        scores = reader.answer(
            [inputs[i] for i in chunk], [item.question] * len(chunk), [item.options] * len(chunk)
        )
        for i, row in zip(chunk, scores):
            right[i] = int(row.argmax()) == int(item.answer)
        start = stop
    return right
