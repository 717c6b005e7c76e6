"""A Qwen-VL prompt around compressed video tokens: its runs, embeddings and M-RoPE ids, and the model call
that takes those ids (and Qwen3-VL's DeepStack rows) instead of computing its own.

The uncompressed prompt text is built as the checkpoint's processor builds it (Qwen2.5-VL: one
``<|vision_start|><|video_pad|><|vision_end|>``; Qwen3-VL: ``<t seconds><|vision_start|><|video_pad|>
<|vision_end|>`` per temporal patch) with a single pad per video run and tokenized once, so the text ids are
the processor's; the runs are then laid out by
:func:`~vidpool.integrations.transformers_qwen_positions.layout_prompt`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vidpool.integrations.transformers_qwen_positions import (
    Segment,
    layout_prompt,
    temporal_timestamps,
    text_segment,
)
from vidpool.llm.prompt import VIDEO_MARKER

__all__ = ["END", "PAD", "START", "PromptInputs", "Prompted", "assemble", "prompt_segments", "video_text"]

PAD, START, END = "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"


@dataclass
class PromptInputs:
    """A prompt ready for the LM.

    Attributes:
        embeds: ``[1, L, hidden]`` input embeddings.
        position_ids: long ``[3, L]`` M-RoPE ids (time, height, width).
        visual_mask: bool ``[L]``, where the video tokens are.
        deepstack: per DeepStack level ``[n_visual, hidden]`` in prompt order (empty for Qwen2.5-VL).
        segments: the prompt's runs (text ids or video token indices) in order, with their ids.
    """

    embeds: torch.Tensor
    position_ids: torch.Tensor
    visual_mask: torch.Tensor
    deepstack: list[torch.Tensor]
    segments: list[Segment]

    @property
    def rope_delta(self) -> int:
        """Positions after the prompt are ``index + rope_delta`` (they continue from ``max(id) + 1``)."""
        return int(self.position_ids.max()) + 1 - int(self.position_ids.shape[1])

    def ids_at(self, start: int, length: int) -> torch.Tensor:
        """``[4, 1, length]`` ids of sequence indices ``start ..``: a plain row (for masks) then M-RoPE's."""
        index = torch.arange(start, start + length)
        ids = index.view(1, -1).expand(3, -1) + self.rope_delta
        inside = index < self.position_ids.shape[1]
        ids = torch.where(inside, self.position_ids[:, index.clamp(max=self.position_ids.shape[1] - 1)], ids)
        return torch.cat([index.view(1, -1), ids])[:, None].to(self.embeds.device)


def video_text(kind: str, timestamps: Any, num_frames: int, temporal: int) -> str:
    """The processor's text of one video with one pad per video run."""
    if kind == "qwen2_5_vl":
        return START + PAD + END
    stamps = temporal_timestamps(timestamps, num_frames, temporal)
    return "".join(f"<{t:.1f} seconds>{START}{PAD}{END}" for t in stamps)


def prompt_segments(
    tokenizer: Any,
    kind: str,
    text: str,
    provenance: tuple[tuple[int, int, int], torch.Tensor, torch.Tensor, int] | None,
    timestamps: Any,
    *,
    temporal: int,
    tokens_per_second: float = 1.0,
) -> list[Segment]:
    """The runs of ``text`` (``VIDEO_MARKER`` where the video goes) with their M-RoPE ids.

    ``provenance`` is ``(grid, assign, weight, count)`` of the compressed tokens, ``None`` without a video.
    """
    if provenance is None:
        ids = tokenizer(text.replace(VIDEO_MARKER, ""), add_special_tokens=False)["input_ids"]
        return [text_segment(ids, 0)]
    grid, assign, weight, count = provenance
    frames = grid[0] * temporal if timestamps is None else len(timestamps)
    full = text.replace(VIDEO_MARKER, video_text(kind, timestamps, frames, temporal))
    pad = tokenizer.convert_tokens_to_ids(PAD)
    pieces: list[list[int]] = [[]]
    for token in tokenizer(full, add_special_tokens=False)["input_ids"]:
        if token == pad:
            pieces.append([])
        else:
            pieces[-1].append(token)
    if kind == "qwen2_5_vl":
        seconds = temporal_timestamps(timestamps, frames, temporal)
        spacing = (seconds[-1] - seconds[0]) / (len(seconds) - 1) if len(seconds) > 1 else 1.0
        interval = float(tokens_per_second) * spacing
        return layout_prompt(pieces[0], pieces[1], grid, assign, weight, count, interval=interval)
    # Qwen3-VL: piece 0 is the chat text then frame 0's "<t seconds><|vision_start|>"; piece k (0 < k < T')
    # is frame k-1's "<|vision_end|>" then frame k's head; the last is "<|vision_end|>" then the chat text
    before = list(tokenizer(text.split(VIDEO_MARKER)[0], add_special_tokens=False)["input_ids"])
    if pieces[0][: len(before)] != before:  # the chat text and the first stamp merged: that stamp stays
        before = pieces[0][:-1]
    heads = [pieces[0][len(before) :]] + [piece[1:] for piece in pieces[1:-1]]
    tails = [[piece[0]] for piece in pieces[1:]]
    return layout_prompt(
        before, pieces[-1][1:], grid, assign, weight, count, frame_text=list(zip(heads, tails))
    )


def assemble(
    segments: list[Segment],
    visual_tokens: torch.Tensor,
    embed: Any,
    deepstack: Sequence[torch.Tensor] = (),
    continuation: Sequence[int] = (),
) -> PromptInputs:
    """Embed the text runs, place the visual tokens ``[N, hidden]`` (and DeepStack rows ``[N, hidden]`` per
    level) in their runs' order, and append ``continuation`` ids continuing from ``max(id) + 1``."""
    device, dtype = embed.weight.device, embed.weight.dtype
    parts, ids, mask, order = [], [], [], []
    for segment in segments:
        if segment.kind == "text":
            if len(segment.tokens):
                parts.append(embed(torch.tensor(segment.tokens, dtype=torch.long, device=device)))
        else:
            parts.append(visual_tokens[segment.tokens.to(visual_tokens.device)].to(device, dtype))
            order.append(segment.tokens)
        ids.append(segment.ids)
        mask.append(torch.full((len(segment.tokens),), segment.kind == "video"))
    position_ids = torch.cat(ids, dim=1)
    if continuation:
        parts.append(embed(torch.tensor(list(continuation), dtype=torch.long, device=device)))
        tail = torch.arange(len(continuation)) + int(position_ids.max()) + 1
        position_ids = torch.cat([position_ids, tail.view(1, -1).expand(3, -1)], dim=1)
        mask.append(torch.zeros(len(continuation), dtype=torch.bool))
    rows = torch.cat(order) if order else torch.zeros(0, dtype=torch.long)
    stack = [level[rows.to(level.device)].to(device, dtype) for level in deepstack]
    return PromptInputs(torch.cat(parts)[None], position_ids, torch.cat(mask), stack, segments)


class Prompted:
    """A transformers Qwen-VL model whose LM forward gets ``inputs``' M-RoPE ids (and DeepStack rows in the
    prefill) through a pre-hook on ``text_model`` while it runs: what
    :func:`vidpool.llm.generate.generate_text` and ``continuation_logprob`` call. ``lock`` keeps two
    prompts from hooking the same model at once."""

    def __init__(self, model: Any, text_model: Any, lock: Any, inputs: PromptInputs):
        self._model, self._text_model, self._lock, self._inputs = model, text_model, lock, inputs
        self.forward = model.forward  # its signature says whether logits_to_keep is accepted

    @contextlib.contextmanager
    def _placed(self) -> Iterator[None]:
        inputs = self._inputs

        def hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            embeds = kwargs["inputs_embeds"]
            cache = kwargs.get("cache", kwargs.get("past_key_values"))
            past = int(cache.get_seq_length()) if cache is not None else 0
            kwargs["position_ids"] = inputs.ids_at(past, int(embeds.shape[1]))
            if inputs.deepstack:
                # DeepStack adds into the video's positions during the prefill only
                mask = None
                if past == 0 and embeds.shape[1] >= inputs.visual_mask.numel():
                    mask = torch.zeros(embeds.shape[:2], dtype=torch.bool, device=embeds.device)
                    mask[0, : inputs.visual_mask.numel()] = inputs.visual_mask.to(embeds.device)
                kwargs["visual_pos_masks"] = mask
                kwargs["deepstack_visual_embeds"] = None if mask is None else inputs.deepstack
            return args, kwargs

        with self._lock:
            handle = self._text_model.register_forward_pre_hook(hook, with_kwargs=True)
            try:
                yield
            finally:
                handle.remove()

    def generate(self, **kwargs: Any) -> Any:
        with self._placed():
            return self._model.generate(**kwargs)

    def __call__(self, **kwargs: Any) -> Any:
        with self._placed():
            return self._model(**kwargs)
