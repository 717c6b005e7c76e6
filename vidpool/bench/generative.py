"""The generative scorer: a video LM answers each multiple-choice question by writing its letter.

Beside the retrieval scorer (:mod:`vidpool.bench.synth.readout`, no LM), this asks the question the way a
user would: the item's video is sampled to the model's frame count (centres of equal segments, as
:class:`vidpool.VideoReader` samples a file), encoded once, compressed by each arm, projected, and the
LM generates greedily from :func:`~vidpool.bench.synth.tasks.multiple_choice_prompt`. The reply counts
as the option its letter names (or, without a letter, the one option whose words it contains); a reply
naming none is wrong and is counted apart.

Two ways to ask (``style``): ``"letter"`` sends the lettered prompt and reads the letter;
``"free"`` sends the question alone and reads which option the reply names (a small model may answer
in words far better than it maps words to letters).

Arms: each method at each budget fraction of the model's ``T·h·w`` tokens, the baselines
``random_drop`` (the item's own seed, as the retrieval scorer's control) and ``frame_subsample`` at the
same fractions, ``full`` (every token, the ``none`` method) and ``text_only`` (no visual tokens: what the
LM answers from its priors). Every arm, ``text_only`` included, goes through one path: the same
prompt, the same new-token limit and the same reply-to-option rule.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpool.bench.arms import BUDGETED_CONTROLS, Answer, Arm, Column, item_seed, requested_tokens
from vidpool.errors import InvalidArgumentError, VidpoolError

__all__ = [
    "GENERATIVE_CONTROLS",
    "MAX_NEW_TOKENS",
    "STYLES",
    "Reply",
    "answer_chunk",
    "answer_family",
    "answer_generative",
    "generative_arms",
    "model_folder",
    "parse_choice",
    "sample_clip",
]

GENERATIVE_CONTROLS = ("full", "text_only")
#: ``"letter"``: a letter, its full stop and a little slack; ``"free"``: a short sentence that ends in
#: the option ("The orange object is a shape called a" is 8 tokens: a limit of 8 cut it before the
#: option). A reply that names no option is wrong, whatever its length: without the video vidpool-synth
#: answers a colour question with a shape, which keeps the text-only control below chance.
MAX_NEW_TOKENS = {"letter": 4, "free": 16}
STYLES = tuple(MAX_NEW_TOKENS)
#: frames per second of the benchmark's videos (what ``write_item_mp4`` writes)
FPS = 8.0

_LETTER = re.compile(r"^\W*([A-Z])(?:\W|$)")


@dataclass(frozen=True)
class Reply:
    """One arm's answer to one question, with what the model wrote and the option read from it."""

    answer: Answer
    text: str = ""
    choice: int | None = None


def generative_arms(methods: Sequence[str], fractions: Sequence[float]) -> list[Arm]:
    """Every method at every fraction, the budgeted controls (``random_drop``, ``frame_subsample``) at
    every fraction, then ``full`` and ``text_only``; a method that is a budgeted control runs once."""
    arms = [Arm(m, f) for m in methods if m not in BUDGETED_CONTROLS for f in fractions]
    arms += [Arm(c, f, control=True) for c in BUDGETED_CONTROLS for f in fractions]
    return arms + [Arm(c, None, control=True) for c in GENERATIVE_CONTROLS]


def parse_choice(text: str, options: Sequence[str], letters: str = "ABCD") -> int | None:
    """The option a generated reply names: its leading letter (``B``, ``B.``, ``(B)``, ``B. red``), else the
    one option whose words it contains; ``None`` when it names no option or several. ``letters=""``
    reads words only (a free reply such as "A red circle." names no letter)."""
    match = _LETTER.match(text.strip()) if letters else None
    if match and match.group(1) in letters[: len(options)]:
        return letters.index(match.group(1))
    said = text.lower()
    named = [i for i, option in enumerate(options) if re.search(rf"\b{re.escape(option.lower())}\b", said)]
    return named[0] if len(named) == 1 else None


def sample_clip(frames: np.ndarray, count: int, fps: float = FPS) -> tuple[np.ndarray, list[float]]:
    """``count`` frames of ``[N, H, W, 3]`` at the centres of equal segments and their times in seconds.

    The frames :class:`vidpool.VideoReader` decodes for ``num_frames=count`` from the same video written
    at ``fps``; the training script samples with this too.
    """
    from vidpool.video.sampling import sample_times, times_to_indices

    total = int(frames.shape[0])
    times = sample_times(total / fps, num_frames=min(int(count), total))
    index = times_to_indices(times, np.arange(total, dtype=np.float64) / fps)
    return frames[index], [float(i) / fps for i in index]


def answer_generative(
    model: Any,
    item: Any,
    arms: Sequence[Arm],
    *,
    frames: int | None = None,
    side: int | None = None,
    style: str = "letter",
    seed: int = 0,
) -> dict[str, Reply]:
    """Every arm's generated answer to ``item``.

    Args:
        model: a loaded :class:`vidpool.llm.VideoModel`.
        item: a :class:`vidpool.bench.synth.tasks.Item`.
        frames: frames to sample from the item's video (default: the model's ``num_frames``).
        side: the side the video is drawn at (default: the world's frame size).
        style: ``"letter"`` (the lettered prompt, the letter read) or ``"free"`` (the question alone,
            the option its words name).
        seed: the item's control seed (``random_drop``'s draw; :func:`vidpool.bench.arms.item_seed`).

    Returns:
        ``{arm.key: Reply}``; an arm whose budget the method cannot meet has ``answer.correct = None``.
    """
    from vidpool.bench.synth.tasks import multiple_choice_prompt, render_item

    if style not in STYLES:
        raise InvalidArgumentError(f"style must be one of {', '.join(STYLES)}, got {style!r}")
    count = int(frames or model.config.num_frames)
    video = render_item(item) if side is None else render_item(item, side)
    clip, stamps = sample_clip(video, count)
    joint = any(not a.control and model.uses_joint(a.name) for a in arms)
    with torch.inference_mode():
        encoded = model.encode(torch.from_numpy(np.ascontiguousarray(clip)), joint=joint)
    features = encoded.patches
    shape = tuple(int(s) for s in features.shape[:3])
    total = shape[0] * shape[1] * shape[2]
    prompt = multiple_choice_prompt(item) if style == "letter" else item.question
    letters = "ABCD" if style == "letter" else ""

    out: dict[str, Reply] = {}
    for arm in arms:
        requested = total if arm.fraction is None else requested_tokens(arm.fraction, shape)
        timestamps: list[float] | None = stamps
        try:
            if arm.name == "text_only":  # no video: no visual tokens and no frame times
                weight = model.input_embeddings.weight
                tokens = torch.zeros(0, weight.shape[1], dtype=weight.dtype, device=weight.device)
                requested, kept, timestamps = 0, 0, None
            else:
                method = "none" if arm.name == "full" else arm.name
                budget = None if arm.fraction is None else requested
                extra = {"seed": seed} if method == "random_drop" else {}
                visual = model.compress_visual(
                    features, method=method, budget=budget, prompt=item.question, joint=encoded.joint, **extra
                )
                tokens = visual.tokens
                kept = int(visual.compressed.num_tokens)
        except VidpoolError as exc:  # a budget the method cannot meet is a result, not a crash
            out[arm.key] = Reply(Answer(None, requested, 0, f"{type(exc).__name__}: {exc}"))
            continue
        # one way to ask and one way to read the reply, for every arm
        text = str(
            model.generate(tokens, prompt, timestamps=timestamps, max_new_tokens=MAX_NEW_TOKENS[style])
        )
        choice = parse_choice(text, item.options, letters)
        out[arm.key] = Reply(Answer(choice == item.answer, requested, kept), text, choice)
    return out


def _replies(
    family: str, items: list, arms: Sequence[Arm], model: Any, pool: Any, make: dict
) -> Iterator[dict]:
    """Each item's ``{arm.key: Reply}``, in item order: here, or over ``pool``'s processes in chunks
    (``make``: the ``make_items`` arguments that gave ``items`` — count, seed, num_frames — and frames)."""
    if pool is None:
        for i, item in enumerate(items):
            seed = item_seed(make["seed"], i)
            yield answer_generative(model, item, arms, frames=make["frames"], style=make["style"], seed=seed)
        return
    from vidpool.bench.workers import chunks, in_order

    chunk = partial(answer_chunk, family, make["count"], make["seed"], make["num_frames"])
    for replies in in_order(pool, chunk, chunks(len(items), 5), arms, make["frames"], make["style"]):
        for _, answers in replies:
            yield answers


def answer_family(
    family: str,
    items: list,
    arms: Sequence[Arm],
    model: Any,
    pool: Any,
    make: dict,
    log: Callable[[str], None],
) -> tuple[dict[str, Column], dict[str, list]]:
    """Every generative arm's answers to ``items``, and what the model wrote and the option read from it
    (``{key: [{"text", "choice"}, ...]}``; ``choice`` None: no option named, or the arm did not run)."""
    columns = {arm.key: Column() for arm in arms}
    replies: dict[str, list] = {arm.key: [] for arm in arms}
    start = time.perf_counter()
    for i, answers in enumerate(_replies(family, items, arms, model, pool, make)):
        for key, reply in answers.items():
            columns[key].add(reply.answer)
            replies[key].append({"text": reply.text, "choice": reply.choice})
        if (i + 1) % 10 == 0 or i + 1 == len(items):
            log(
                f"  {family} (generation): {i + 1}/{len(items)} questions, {time.perf_counter() - start:.0f}s"
            )
    return columns, replies


def model_folder(model: str, *, build: bool) -> Path:
    """The checkpoint folder of ``model``: a folder, or the name of a model vidpool builds (built when
    ``build``); :class:`InvalidArgumentError` when it is neither."""
    from vidpool.models import build_model, model_dir, model_names

    if model in model_names():
        return build_model(model) if build else model_dir(model)
    folder = Path(model).expanduser()
    if not folder.is_dir():
        raise InvalidArgumentError(
            f"--model {model!r} is neither a checkpoint folder nor a model name ({', '.join(model_names())})"
        )
    from vidpool.llm.loading import detect_kind

    detect_kind(folder)
    return folder


# -- in a worker process (``jobs`` > 1, :mod:`vidpool.bench.workers`): chunks of a family's items --


def answer_chunk(
    family: str,
    count: int,
    seed: int,
    num_frames: int | None,
    indices: Sequence[int],
    arms: Sequence[Arm],
    frames: int | None,
    style: str = "letter",
) -> list[tuple[int, dict[str, Reply]]]:
    """In a worker: ``(index, replies)`` for items ``indices`` of ``make_items(family, count, ...)``, answered
    by the worker's video LM (:class:`vidpool.bench.workers.Loads`' ``model``)."""
    from vidpool.bench.synth.tasks import make_items
    from vidpool.bench.workers import loaded

    items = make_items(family, count, seed=seed, num_frames=num_frames)
    model = loaded("model")
    return [
        (i, answer_generative(model, items[i], arms, frames=frames, style=style, seed=item_seed(seed, i)))
        for i in indices
    ]
