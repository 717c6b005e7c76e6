"""The functions of an exported vidpool task (lmms-eval reads them as ``!function utils.NAME``).

:func:`vidpool.integrations.lmms_eval.export_task` copies this file beside the task YAML as
``utils.py``. It imports nothing but the standard library, so that the exported task runs with any
lmms-eval model, not only vidpool's, and anywhere the folder is copied to.

A document (one line of the JSONL) holds ``id``, ``family``, ``question``, ``options`` (four texts),
``answer`` (the right option's index), ``prompt`` (question, lettered options, instruction) and
``video`` (the MP4's path relative to this folder).
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path
from typing import Any

__all__ = [
    "LETTERS",
    "doc_to_choice",
    "doc_to_messages",
    "doc_to_target",
    "doc_to_text",
    "doc_to_visual",
    "parse_answer",
    "process_choice_results",
    "process_results",
]

LETTERS = "ABCD"
_HERE = Path(__file__).resolve().parent

# "B", "B.", "(B)", "B)", "B: red" at the very start of the answer
_LEADING = re.compile(r"^\s*[(\[]?([A-D])(?:[.):\]]|\s*$)")
# "the answer is B", "Answer: (C)", "answer - D"
_STATED = re.compile(r"[Aa]nswer(?:\s+is)?\s*[:\-]?\s*[(\[]?([A-D])(?![A-Za-z])")
# a capital A-D standing alone as a word
_ALONE = re.compile(r"(?<![A-Za-z])([A-D])(?![A-Za-z])")


def parse_answer(response: str, options: list[str] | tuple[str, ...]) -> int | None:
    """The option index an answer names, or ``None`` when it names none.

    In order: a letter opening the answer (``"B"``, ``"(B)"``, ``"B. red"``); a stated letter (``"the
    answer is B"``); the text of exactly one option, the longest when one contains another (``"dark
    red"`` over ``"red"``), the earliest when several appear; finally the first capital A-D standing
    alone. The article "A" is read as a letter only by this last rule, after option texts had their turn.
    """
    text = str(response or "")
    letters = LETTERS[: len(options)]
    for pattern in (_LEADING, _STATED):
        match = pattern.search(text)
        if match and match.group(1) in letters:
            return letters.index(match.group(1))
    lowered = text.lower()
    found: list[tuple[int, int, int]] = []  # (position, -length, index)
    for index, option in enumerate(options):
        phrase = str(option).strip().lower()
        if not phrase:
            continue
        match = re.search(r"(?<![a-z0-9])" + re.escape(phrase) + r"(?![a-z0-9])", lowered)
        if match:
            found.append((match.start(), -len(phrase), index))
    # an option inside a longer one that also matched ("red" in "dark red") is no separate answer
    spans = [(pos, pos - neg, idx) for pos, neg, idx in found]
    kept = [
        (pos, end, idx)
        for pos, end, idx in spans
        if not any(p <= pos and end <= e and (e - p) > (end - pos) for p, e, _ in spans)
    ]
    if kept:
        return min(kept)[2]
    for match in _ALONE.finditer(text):
        if match.group(1) in letters:
            return letters.index(match.group(1))
    return None


def _video(doc: dict[str, Any]) -> str:
    return str((_HERE / doc["video"]).resolve())


def doc_to_visual(doc: dict[str, Any]) -> list[str]:
    """The item's MP4, as an absolute path."""
    return [_video(doc)]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    """The multiple-choice prompt, between the task's ``pre_prompt`` and ``post_prompt`` if it sets them."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['prompt']}{kwargs.get('post_prompt', '')}"


def doc_to_messages(
    doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One user message: the video, then the prompt."""
    return [
        {
            "role": "user",
            "content": [
                {"type": "video", "url": _video(doc)},
                {"type": "text", "text": doc_to_text(doc, lmms_eval_specific_kwargs)},
            ],
        }
    ]


def doc_to_target(doc: dict[str, Any]) -> str:
    """The right answer's letter."""
    return LETTERS[int(doc["answer"])]


def doc_to_choice(doc: dict[str, Any]) -> list[str]:
    """The letters a ``multiple_choice`` run scores, one per option."""
    return list(LETTERS[: len(doc["options"])])


def _scores(doc: dict[str, Any], predicted: int | None) -> dict[str, float]:
    correct = float(predicted is not None and predicted == int(doc["answer"]))
    return {
        "accuracy": correct,
        f"accuracy_{doc['family']}": correct,
        "answered": float(predicted is not None),
    }


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    """Accuracy of a generated answer, overall and for the item's family; whether it named an option.

    Only the item's own family gets a per-family value, so each family's mean is over its items.
    """
    return _scores(doc, parse_answer(results[0] if results else "", doc["options"]))


def _loglikelihood(result: Any) -> float:
    # lmms-eval 0.7.3 passes every response through unwrap_generation_output, which turns a
    # loglikelihood's (logprob, is_greedy) tuple into its str(); read either form
    if isinstance(result, str):
        result = ast.literal_eval(result.strip())
    return float(result[0]) if isinstance(result, (tuple, list)) else float(result)


def process_choice_results(doc: dict[str, Any], results: list[Any]) -> dict[str, float]:
    """The same metrics for a ``multiple_choice`` run: the option whose letter is likeliest."""
    lls = [_loglikelihood(r) for r in results]
    best = max(range(len(lls)), key=lambda i: lls[i]) if lls and all(math.isfinite(x) for x in lls) else None
    return _scores(doc, best)
