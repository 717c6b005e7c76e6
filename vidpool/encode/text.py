"""Prompt embeddings from an open_clip text tower."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import torch

from vidpool.errors import EncoderError, InvalidArgumentError, require

__all__ = ["encode_prompts", "make_tokenizer"]


@functools.lru_cache(maxsize=8)
def _simple_tokenizer(context_length: int) -> Any:
    open_clip = require("open_clip", "clip", "the CLIP text encoder")
    return open_clip.SimpleTokenizer(context_length=context_length)


def make_tokenizer(text_cfg: dict[str, Any], context_length: int) -> Any:
    """The tokenizer open_clip pairs with ``text_cfg``: CLIP's BPE, or a Hugging Face one when named.

    Returns a callable mapping a list of strings to ``[B, context_length]`` token ids.
    """
    hf_name = text_cfg.get("hf_tokenizer_name")
    if hf_name:
        open_clip = require("open_clip", "clip", "the CLIP text encoder")
        try:
            return open_clip.HFTokenizer(hf_name, context_length=context_length)
        except Exception as exc:
            raise EncoderError(
                f"cannot load the Hugging Face tokenizer {hf_name!r} ({exc}); it must be in the local cache"
            ) from exc
    return _simple_tokenizer(context_length)


def encode_prompts(model: Any, tokenizer: Any, prompts: Sequence[str], device: torch.device) -> torch.Tensor:
    """Embed prompts with the model's text tower.

    Args:
        model: an open_clip CLIP model (``encode_text``).
        tokenizer: from :func:`make_tokenizer`.
        prompts: ``B`` strings; longer ones are truncated to the model's context length.
        device: where the model lives.

    Returns:
        ``[B, D]`` text embeddings in the joint space, not normalised.
    """
    if isinstance(prompts, str):
        prompts = [prompts]
    if not all(isinstance(p, str) for p in prompts):
        raise InvalidArgumentError("prompts must be a list of strings")
    if len(prompts) == 0:
        raise InvalidArgumentError("prompts is empty: pass at least one string")
    tokens = tokenizer(list(prompts)).to(device)
    return model.encode_text(tokens)
