"""Patch tokens from an open_clip ViT: a chosen layer's hidden state and the joint-space projection.

Layers are counted as in Hugging Face / LLaVA ``hidden_states``: index 0 is the embedding (after
``ln_pre``), index ``k`` the output of block ``k``, and negative indices count from the end, so the
default ``-2`` is the output of the second-to-last block, the hidden state fed to the last block
(LLaVA's ``mm_vision_select_layer=-2``). Intermediate states come from open_clip's supported
``VisionTransformer.forward_intermediates``, which runs only the blocks it needs.
"""

from __future__ import annotations

from typing import Any

import torch

from vidpool.errors import EncoderError, InvalidArgumentError

__all__ = ["block_index", "check_vision_tower", "project_to_joint", "vision_tokens"]


def check_vision_tower(visual: Any) -> None:
    """Raise :class:`EncoderError` unless ``visual`` is an open_clip ViT tower with per-token outputs."""
    if not hasattr(visual, "forward_intermediates") or not hasattr(visual, "transformer"):
        raise EncoderError(
            f"the vision tower is a {type(visual).__name__}, not an open_clip VisionTransformer; "
            "vidpool needs a ViT-* CLIP model to return patch tokens"
        )


def block_index(layer: int, num_blocks: int) -> int:
    """The block whose output is hidden state ``layer`` (HF ``hidden_states`` indexing, see module doc)."""
    num_states = num_blocks + 1
    if not -num_states <= layer < num_states:
        raise InvalidArgumentError(
            f"layer {layer} is out of range for a {num_blocks}-block vision tower: "
            f"use -{num_blocks}..-1 or 1..{num_blocks} (-2 is LLaVA's choice)"
        )
    state = layer % num_states
    if state == 0:
        raise InvalidArgumentError(
            f"layer {layer} is the patch embedding, not a transformer block output: use -{num_blocks}..-1"
        )
    return state - 1


def vision_tokens(
    visual: Any, pixels: torch.Tensor, *, block: int, final: bool, blocks: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run the ViT on a batch and take block outputs, in one forward pass.

    Args:
        visual: an open_clip ``VisionTransformer`` in eval mode.
        pixels: ``[B, 3, S, S]`` preprocessed images.
        block: index of the block whose output gives ``patches`` and ``cls``.
        final: also return the last block's patch tokens (runs every block; otherwise the forward
            stops after the last block asked for).
        blocks: the blocks whose patch tokens ``patches`` concatenates along channels, in this order
            (default ``[block]``).

    Returns:
        ``(patches [B, h*w, len(blocks)*C], cls [B, C], last [B, h*w, C] | None)``: patch tokens (class
        token removed), the class token of ``block``, and the last block's patch tokens when ``final``.
    """
    blocks = [block] if blocks is None else list(blocks)
    last = len(visual.transformer.resblocks) - 1
    indices = sorted({*blocks, block} | ({last} if final else set()))
    out = visual.forward_intermediates(
        pixels,
        indices=indices,
        stop_early=not final,
        intermediates_only=True,
        output_fmt="NLC",
        output_extra_tokens=True,
    )
    states = dict(zip(indices, out["image_intermediates"]))
    prefixes = dict(zip(indices, out["image_intermediates_prefix"]))
    patches = states[block] if blocks == [block] else torch.cat([states[b] for b in blocks], dim=-1)
    return patches, prefixes[block][:, 0], states[last] if final else None


def project_to_joint(visual: Any, tokens: torch.Tensor) -> torch.Tensor:
    """Map last-block tokens into CLIP's joint image-text space: ``ln_post`` then ``proj``.

    Applied to the class token this is exactly CLIP's image embedding (for towers that pool the class
    token); applied to patch tokens it gives the per-patch embeddings that prompt guidance scores.

    Args:
        visual: an open_clip ``VisionTransformer``.
        tokens: ``[..., C]`` outputs of the last block.

    Returns:
        ``[..., D]`` joint-space embeddings (not normalised).
    """
    if getattr(visual, "attn_pool", None) is not None or getattr(visual, "proj", None) is None:
        raise EncoderError(
            "this vision tower has an attentional pooler or no projection, so patch tokens have no "
            "joint-space embedding: use a plain CLIP ViT model for prompt guidance"
        )
    return visual.ln_post(tokens) @ visual.proj
