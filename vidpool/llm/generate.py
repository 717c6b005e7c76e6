"""Text generation from input embeddings: greedy or sampled, stop strings, streaming, seeded.

Streaming runs ``generate`` in a thread feeding a ``TextIteratorStreamer``; the iterator holds back
the last few characters so that a stop string is never half-printed, which makes the streamed
pieces join to exactly the non-streamed text.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import torch

from vidpool.errors import InvalidArgumentError
from vidpool.options import DEFAULT_MAX_NEW_TOKENS, check_generation

__all__ = ["continuation_logprob", "generate_text", "truncate_at_stop"]


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop string; return the text and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _stop_list(stop: str | Sequence[str] | None) -> list[str]:
    if stop is None:
        return []
    items = [stop] if isinstance(stop, str) else list(stop)
    if any(not isinstance(s, str) or not s for s in items):
        raise InvalidArgumentError(f"stop must be non-empty strings, got {stop!r}")
    return items


def _stopping_criteria(tokenizer: Any, stop: list[str]):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class _StopOnStrings(StoppingCriteria):
        # With inputs_embeds only, ``input_ids`` holds just the generated tokens.
        def __call__(
            self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs
        ) -> torch.BoolTensor:
            text = tokenizer.decode(input_ids[0], skip_special_tokens=True)
            done = truncate_at_stop(text, stop)[1]
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([_StopOnStrings()])


def _generation_kwargs(
    tokenizer: Any,
    inputs_embeds: torch.Tensor,
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    stop: list[str],
) -> dict[str, Any]:
    # the same check, with the same words, as every entry point makes before anything is encoded
    check_generation(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    kwargs: dict[str, Any] = {
        "inputs_embeds": inputs_embeds,
        "attention_mask": torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device),
        "max_new_tokens": max_new_tokens,
        "do_sample": temperature > 0,
    }
    if temperature > 0:
        kwargs.update(temperature=temperature, top_p=top_p, top_k=0)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is not None:
        kwargs["pad_token_id"] = pad
    if stop:
        kwargs["stopping_criteria"] = _stopping_criteria(tokenizer, stop)
    return kwargs


def generate_text(
    lm: Any,
    tokenizer: Any,
    inputs_embeds: torch.Tensor,
    *,
    stream: bool = False,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    stop: str | Sequence[str] | None = None,
    fastv: Any = None,
) -> str | Iterator[str]:
    """Generate the answer that follows ``inputs_embeds``.

    Args:
        lm: a transformers model with ``generate`` (a causal LM or a LLaVA-family model).
        tokenizer: its tokenizer (for decoding, padding and stop strings).
        inputs_embeds: ``[1, L, D]`` prompt embeddings with the visual tokens already spliced in.
        stream: return an iterator of text pieces instead of the whole text.
        temperature: 0 for greedy decoding; sampling otherwise (with ``top_p``).
        seed: seeds torch's generator right before decoding, so equal seeds give equal text.
        stop: strings that end the answer; the answer is cut before the first one.
        fastv: refused: FastV needs to know where the visual tokens are, so a model kind runs it by
            passing ``lm`` as a :class:`vidpool.llm.fastv.FastVGenerator` (``VideoLM.generate`` does);
            a ``fastv`` that reaches this function came through a kind that does not.

    Returns:
        The answer text, or an iterator whose pieces join to the same text.
    """
    if fastv is not None:
        raise InvalidArgumentError(
            f"this model ({type(lm).__name__}) does not run FastV inside its LM; run it without fastv "
            "(--fastv), or prune before the LM with a compression method (--method, --budget)"
        )
    stops = _stop_list(stop)
    kwargs = _generation_kwargs(
        tokenizer,
        inputs_embeds,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        top_p=top_p,
        stop=stops,
    )
    if not stream:
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            out = lm.generate(**kwargs)
        text = tokenizer.decode(out[0], skip_special_tokens=True)
        return truncate_at_stop(text, stops)[0]
    return _stream(lm, tokenizer, kwargs, seed, stops)


def continuation_logprob(lm: Any, inputs_embeds: torch.Tensor, ids: Sequence[int]) -> tuple[float, bool]:
    """Log-probability of the token ``ids`` that the last ``len(ids)`` positions of ``inputs_embeds`` embed.

    Args:
        lm: a transformers model whose forward takes ``inputs_embeds`` and returns ``logits``.
        inputs_embeds: ``[1, L, D]``: the prompt, then the embeddings of ``ids`` (``L > len(ids)``).
        ids: the token ids of the continuation.

    Returns:
        ``(sum of log p(ids[i] | everything before it), whether greedy decoding would give exactly ids)``.
    """
    ids = [int(i) for i in ids]
    num_tokens, length = len(ids), int(inputs_embeds.shape[1])
    if not 0 < num_tokens < length:
        raise InvalidArgumentError(
            f"cannot score {num_tokens} continuation tokens after a prompt of {length - num_tokens} positions; "
            "give a non-empty continuation after a non-empty prompt"
        )
    kwargs: dict[str, Any] = {
        "inputs_embeds": inputs_embeds,
        "attention_mask": torch.ones(inputs_embeds.shape[:2], dtype=torch.long, device=inputs_embeds.device),
    }
    # only the positions that predict the continuation are needed: a long video prompt times a large
    # vocabulary would otherwise hold gigabytes of logits
    if "logits_to_keep" in inspect.signature(lm.forward).parameters:
        kwargs["logits_to_keep"] = num_tokens + 1
    with torch.inference_mode():
        logits = lm(**kwargs).logits[0]
    logits = logits[-num_tokens - 1 : -1].float()
    target = torch.tensor(ids, device=logits.device)
    logprob = torch.log_softmax(logits, dim=-1).gather(1, target[:, None]).sum()
    return float(logprob), bool((logits.argmax(dim=-1) == target).all())


def _stream(
    lm: Any, tokenizer: Any, kwargs: dict[str, Any], seed: int | None, stops: list[str]
) -> Iterator[str]:
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    failure: list[BaseException] = []
    cancelled = threading.Event()

    class _StopWhenClosed(StoppingCriteria):
        # A caller that stops reading early (or closes the iterator) ends decoding at the next token.
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kw) -> torch.BoolTensor:
            return torch.full(
                (input_ids.shape[0],), cancelled.is_set(), dtype=torch.bool, device=input_ids.device
            )

    criteria = StoppingCriteriaList([*kwargs.pop("stopping_criteria", []), _StopWhenClosed()])
    kwargs = {**kwargs, "stopping_criteria": criteria}

    def run() -> None:
        try:
            if seed is not None:
                torch.manual_seed(seed)
            with torch.inference_mode():
                lm.generate(**kwargs, streamer=streamer)
        except BaseException as exc:
            failure.append(exc)
            streamer.end()

    thread = threading.Thread(target=run, name="vidpool-generate", daemon=True)
    thread.start()
    holdback = max((len(s) for s in stops), default=1) - 1
    pending = ""
    try:
        for piece in streamer:
            pending += piece
            pending, found = truncate_at_stop(pending, stops)
            if found:
                if pending:
                    yield pending
                pending = ""
                break
            safe = len(pending) - holdback
            if safe > 0:
                yield pending[:safe]
                pending = pending[safe:]
        else:
            if pending:
                yield pending
    finally:
        cancelled.set()
        thread.join()
    if failure:
        raise failure[0]
