"""Prompt building: chat template, frame timestamps, history, and the splice of visual tokens.

The visual tokens never pass through the tokenizer. The prompt is rendered with the LM's chat template
around a marker string, split at the marker, and each side is tokenized on its own; the visual
embeddings are then concatenated in between (``splice_embeddings``), so the number of visual positions
is exactly the number of tokens the compression method produced.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from vidpool.errors import InvalidArgumentError

__all__ = [
    "VIDEO_MARKER",
    "build_messages",
    "describe_frames",
    "render_prompt",
    "splice_embeddings",
    "structured_messages",
    "tokenize_around_marker",
    "tokenize_continuation",
]

VIDEO_MARKER = "<|vidpool:video|>"

# Used only when the tokenizer carries no chat template of its own.
_FALLBACK_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'USER: ' + message['content'] + '\n' }}"
    "{% else %}{{ 'ASSISTANT: ' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)


def describe_frames(timestamps: Sequence[float] | torch.Tensor | None, num_frames: int | None = None) -> str:
    """One sentence naming the sampled frames, e.g. ``"The video has 3 frames sampled at 0.0s, 2.0s, 4.0s."``."""
    if timestamps is None:
        if num_frames is None:
            return ""
        return f"The video has {num_frames} frames."
    values = [float(t) for t in (timestamps.tolist() if torch.is_tensor(timestamps) else timestamps)]
    if num_frames is not None and len(values) != num_frames:
        raise InvalidArgumentError(
            f"got {len(values)} timestamps for {num_frames} frames; pass one timestamp per sampled frame"
        )
    stamps = ", ".join(f"{t:.1f}s" for t in values)
    noun = "frame" if len(values) == 1 else "frames"
    return f"The video has {len(values)} {noun} sampled at {stamps}."


def build_messages(
    prompt: str,
    *,
    timestamps: Sequence[float] | torch.Tensor | None = None,
    num_frames: int | None = None,
    history: Sequence[tuple[str, str]] | None = None,
    system_prompt: str | None = None,
    marker: str = VIDEO_MARKER,
) -> list[dict[str, str]]:
    """Chat messages for one turn: the video (marker + frame sentence) opens the first user message.

    ``history`` is a list of earlier ``(user, assistant)`` turns about the same video.
    """
    if not isinstance(prompt, str):
        raise InvalidArgumentError(f"prompt must be a string, got {type(prompt).__name__}")
    turns = [(str(u), str(a)) for u, a in (history or [])]
    video_part = "\n".join(part for part in (marker, describe_frames(timestamps, num_frames)) if part)
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    users = [u for u, _ in turns] + [prompt]
    answers = [a for _, a in turns]
    for i, user in enumerate(users):
        content = f"{video_part}\n{user}" if i == 0 else user
        messages.append({"role": "user", "content": content})
        if i < len(answers):
            messages.append({"role": "assistant", "content": answers[i]})
    return messages


def structured_messages(messages: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Messages with text content as processors' chat templates take them: each content a list of
    parts, ``{"type": "video"}`` where :data:`VIDEO_MARKER` was, then ``{"type": "text", ...}``."""
    structured = []
    for message in messages:
        content = message["content"]
        parts: list[dict[str, str]] = []
        if VIDEO_MARKER in content:
            parts.append({"type": "video"})
            content = content.replace(VIDEO_MARKER, "").lstrip("\n")
        parts.append({"type": "text", "text": content})
        structured.append({"role": message["role"], "content": parts})
    return structured


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """Render ``messages`` with the tokenizer's chat template (a plain USER/ASSISTANT one if it has none)."""
    template = None if getattr(tokenizer, "chat_template", None) else _FALLBACK_TEMPLATE
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=True
    )


def tokenize_around_marker(
    tokenizer: Any, text: str, marker: str = VIDEO_MARKER
) -> tuple[list[int], list[int]]:
    """Token ids of the text before and after the single ``marker`` in ``text``."""
    count = text.count(marker)
    if count != 1:
        raise InvalidArgumentError(
            f"the rendered prompt must hold the video marker once, found it {count} times"
        )
    before, after = text.split(marker)
    ids_before = tokenizer(before, add_special_tokens=False)["input_ids"]
    ids_after = tokenizer(after, add_special_tokens=False)["input_ids"]
    bos = getattr(tokenizer, "bos_token_id", None)
    # Templates that do not write the BOS token rely on the tokenizer adding it.
    if (
        bos is not None
        and getattr(tokenizer, "add_bos_token", False)
        and (not ids_before or ids_before[0] != bos)
    ):
        ids_before = [bos, *ids_before]
    return list(ids_before), list(ids_after)


def tokenize_continuation(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of ``context`` and of the ``continuation`` that follows it.

    The two are tokenized together, as the LM would read them, so that a merge across the boundary does
    not give the continuation ids the LM never sees; only when the joint ids do not begin with the
    context's own ids (the boundary merged) is the continuation tokenized on its own.
    """
    if not isinstance(continuation, str) or not continuation:
        raise InvalidArgumentError(
            f"the continuation to score must be a non-empty string, got {continuation!r}"
        )
    ids_context = list(tokenizer(context, add_special_tokens=False)["input_ids"]) if context else []
    whole = list(tokenizer(context + continuation, add_special_tokens=False)["input_ids"])
    if whole[: len(ids_context)] == ids_context and len(whole) > len(ids_context):
        return ids_context, whole[len(ids_context) :]
    return ids_context, list(tokenizer(continuation, add_special_tokens=False)["input_ids"])


def splice_embeddings(
    embed: Callable[[torch.Tensor], torch.Tensor],
    ids_before: Sequence[int],
    visual: torch.Tensor,
    ids_after: Sequence[int],
) -> torch.Tensor:
    """Embed the text ids and put the visual tokens between them.

    Args:
        embed: the LM's input embedding module, ``[L] long -> [L, D]``.
        visual: ``[N, D]`` visual tokens already in the LM's embedding space.

    Returns:
        ``[1, len(ids_before) + N + len(ids_after), D]`` input embeddings.
    """
    if visual.dim() != 2:
        raise InvalidArgumentError(f"visual tokens must be [N, D], got shape {tuple(visual.shape)}")
    weight = embed.weight if hasattr(embed, "weight") else None
    device = weight.device if weight is not None else visual.device
    parts = []
    for ids in (ids_before, None, ids_after):
        if ids is None:
            parts.append(visual)
        elif len(ids):
            parts.append(embed(torch.tensor(list(ids), dtype=torch.long, device=device)))
    dtype = parts[0].dtype if weight is None else weight.dtype
    if visual.shape[-1] != parts[0].shape[-1]:
        raise InvalidArgumentError(
            f"visual tokens have width {visual.shape[-1]} but the LM embeds to {parts[0].shape[-1]}"
        )
    return torch.cat([p.to(device=device, dtype=dtype) for p in parts], dim=0)[None]
