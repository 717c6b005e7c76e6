"""FastV (Chen et al., ECCV 2024, "An Image is Worth 1/2 Tokens After Layer 2"): visual tokens pruned
inside the LM.

Layers ``0 .. K-1`` see every token. At layer ``K`` the last prompt token's attention over the keys is
computed from that layer's own input norm, ``q_proj``/``k_proj`` (and ``q_norm``/``k_norm`` where the
model has them), the rotary embedding at the real position ids, the GQA head repetition and the
layer's scaling; averaged over heads, it ranks the visual tokens and only the top ``R`` go on, with
the text, into layers ``K .. L-1``. Kept tokens keep their position ids (M-RoPE's three axes included).
The visual tokens may be one run or any set of positions (a mask: Qwen3-VL's frames are split by their
timestamps). Qwen3-VL's DeepStack rows are added after the first layers at the visual positions, as the
model's own forward adds them; a level that comes after layer ``K`` is added to the kept tokens only.
The row is computed apart from the attention kernel, so the model keeps its SDPA (or flash) attention
and no attention matrix is ever materialised.

The decoder layers are run here, one by one, for the prefill and for each new token, with a
transformers ``DynamicCache`` whose layers hold their own lengths: layers below ``K`` cache the whole
prompt, layers from ``K`` on only the kept tokens. :class:`FastVGenerator` has the ``generate``
interface :func:`vidpool.llm.generate.generate_text` drives (stop strings, streaming, sampling and
seeds work unchanged). One video at a time (batch 1).

The paper ranks each image token by the attention it receives averaged over the query positions;
this module takes the attention that the last prompt token pays to it (one row: the query that
predicts the first answer token), which is what makes the SDPA route cheap.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from vidpool.errors import InvalidArgumentError
from vidpool.options import FastV

__all__ = [
    "DecoderStack",
    "FastV",
    "FastVGenerator",
    "FastVPrefill",
    "add_deepstack",
    "decoder_stack",
    "fastv_prefill",
    "last_token_attention",
    "select_visual",
    "stack_step",
    "visual_mask",
]

#: attention implementations whose causal masking needs no mask tensor (``is_causal``)
_MASK_FREE = ("sdpa", "flash_attention_2", "flash_attention_3")

RotaryFn = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]
]


@dataclass(frozen=True)
class DecoderStack:
    """A transformers decoder as FastV runs it.

    Attributes:
        embed: the input embedding module.
        layers: the decoder layers, each ``layer(hidden, position_embeddings=..., ...)``.
        norm: the final norm.
        rotary: ``rotary(hidden, position_ids) -> (cos, sin)``.
        lm_head: hidden -> vocabulary logits.
        apply_rotary: ``(q, k, cos, sin) -> (q, k)``, the model's own rotary application (M-RoPE models
            pass theirs).
        config: the text config (``_attn_implementation`` decides whether masks are built).
    """

    embed: Any
    layers: Sequence[Any]
    norm: Any
    rotary: Any
    lm_head: Any
    apply_rotary: RotaryFn
    config: Any

    @functools.cached_property
    def cache_keyword(self) -> str:
        """The name the layers take the cache under: ``cache`` in recent transformers 5,
        ``past_key_values`` before."""
        params = inspect.signature(self.layers[0].forward).parameters
        return "cache" if "cache" in params else "past_key_values"


def decoder_stack(lm: Any, apply_rotary: RotaryFn | None = None) -> DecoderStack:
    """The :class:`DecoderStack` of a transformers causal LM or LLaVA-family model.

    ``apply_rotary`` defaults to ``apply_rotary_pos_emb`` of the attention module's own modeling file
    (LLaMA, Qwen2, Qwen3, Mistral ...). Sliding-window attention is refused: its cache and masks count
    positions by index, which pruning changes.
    """
    decoder = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model
    for name in ("layers", "norm", "rotary_emb"):
        if not hasattr(decoder, name):
            raise InvalidArgumentError(
                f"FastV runs LLaMA-style decoders (layers, norm, rotary_emb); {type(decoder).__name__} has no "
                f"{name!r}: run this model without fastv"
            )
    config = decoder.config
    types = set(getattr(config, "layer_types", None) or ())
    if "sliding_attention" in types or getattr(config, "use_sliding_window", False):
        raise InvalidArgumentError(
            f"{type(decoder).__name__} uses sliding-window attention, which FastV does not support: "
            "run this model without fastv"
        )
    if apply_rotary is None:
        apply_rotary = _model_rotary(decoder.layers[0].self_attn)
    return DecoderStack(
        embed=lm.get_input_embeddings(),
        layers=decoder.layers,
        norm=decoder.norm,
        rotary=decoder.rotary_emb,
        lm_head=lm.get_output_embeddings(),
        apply_rotary=apply_rotary,
        config=config,
    )


def _model_rotary(attention: Any) -> RotaryFn:
    """The rotary application of ``attention``'s modeling file: ``apply_rotary_pos_emb``, or Qwen2-VL-style
    ``apply_multimodal_rotary_pos_emb`` with the config's ``mrope_section`` (transformers 5.0's Qwen2.5-VL;
    later releases fold the sections into the rotary embedding)."""
    module = sys.modules[type(attention).__module__]
    multimodal = getattr(module, "apply_multimodal_rotary_pos_emb", None)
    if multimodal is not None:
        rope = getattr(attention.config, "rope_parameters", None) or getattr(
            attention.config, "rope_scaling", None
        )
        section = (rope or {}).get("mrope_section")
        if section is not None:
            return functools.partial(multimodal, mrope_section=section)
    plain = getattr(module, "apply_rotary_pos_emb", None)
    if plain is None:
        raise InvalidArgumentError(
            f"{module.__name__} has no apply_rotary_pos_emb; pass apply_rotary= to decoder_stack"
        )
    return plain


def last_token_attention(
    layer: Any,
    hidden: torch.Tensor,
    position_embeddings: tuple[torch.Tensor, torch.Tensor],
    apply_rotary: RotaryFn,
) -> torch.Tensor:
    """The last position's attention over every key at ``layer``, averaged over heads.

    Args:
        layer: a decoder layer (``input_layernorm``, ``self_attn`` with ``q_proj``, ``k_proj``, ``head_dim``,
            ``scaling``, optional ``q_norm``/``k_norm``).
        hidden: ``[1, L, D]`` the layer's input.
        position_embeddings: ``(cos, sin)`` of the ``L`` positions (``[..., L, head_dim]``).

    Returns:
        float32 ``[L]``: ``mean_h softmax(q_h k_h^T * scaling)`` for the last query (which sees every key,
        so no causal mask applies), computed in float32.
    """
    attn = layer.self_attn
    x = layer.input_layernorm(hidden)
    length, head_dim = x.shape[1], int(attn.head_dim)
    q = attn.q_proj(x[:, -1:]).view(1, 1, -1, head_dim)
    k = attn.k_proj(x).view(1, length, -1, head_dim)
    if hasattr(attn, "q_norm"):
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    cos, sin = position_embeddings
    q = apply_rotary(q, q, cos[..., -1:, :], sin[..., -1:, :])[0]
    k = apply_rotary(k, k, cos, sin)[1]
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # GQA: head h reads kv head h // groups
    scaling = float(getattr(attn, "scaling", head_dim**-0.5))
    scores = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scaling  # [1, H, 1, L]
    return scores.softmax(dim=-1).mean(dim=1)[0, 0]


def visual_mask(visual: tuple[int, int] | torch.Tensor, length: int, device: Any = None) -> torch.Tensor:
    """Where the visual tokens of a prompt of ``length`` positions are: bool ``[L]``.

    ``visual`` is ``(start, stop)`` (one contiguous run) or already a bool ``[L]`` mask (runs split by text,
    as Qwen3-VL's per-frame timestamps split them).
    """
    if isinstance(visual, torch.Tensor):
        if visual.dtype != torch.bool or visual.shape != (length,):
            raise InvalidArgumentError(
                f"the visual mask must be bool [{length}] (one entry per prompt position), got "
                f"{visual.dtype} {tuple(visual.shape)}"
            )
        return visual.to(device)
    start, stop = visual
    mask = torch.zeros(length, dtype=torch.bool, device=device)
    mask[start:stop] = True
    return mask


def select_visual(row: torch.Tensor, visual: tuple[int, int] | torch.Tensor, kept: int) -> torch.Tensor:
    """Positions that go on: every non-visual one and the ``kept`` visual ones with the highest ``row``.

    Args:
        row: ``[L]`` attention each position receives.
        visual: the visual tokens' positions, ``(start, stop)`` or a bool ``[L]`` mask (:func:`visual_mask`).

    Returns:
        long ``[L - n_visual + kept]``, ascending.
    """
    mask = visual_mask(visual, row.shape[0], row.device)
    where = mask.nonzero()[:, 0]
    keep = ~mask
    keep[where[torch.topk(row[where], kept).indices]] = True
    return keep.nonzero()[:, 0]


def add_deepstack(hidden: torch.Tensor, where: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """DeepStack (Qwen3-VL): ``rows`` ``[n, D]`` added to the hidden states ``[1, L, D]`` at the ``n``
    positions where the bool ``[L]`` ``where`` is set, in the hidden states' dtype (as the model's own
    text forward adds them after each of its first layers)."""
    hidden = hidden.clone()
    hidden[0, where] = hidden[0, where] + rows.to(hidden.device, hidden.dtype)
    return hidden


def _causal_mask(config: Any, length: int, like: torch.Tensor) -> torch.Tensor | None:
    """``None`` for attention kernels that mask causally by themselves, else an additive
    ``[1, 1, L, L]`` mask (eager attention)."""
    if length == 1 or getattr(config, "_attn_implementation", "sdpa") in _MASK_FREE:
        return None
    mask = torch.full((length, length), torch.finfo(like.dtype).min, dtype=like.dtype, device=like.device)
    return mask.triu(1)[None, None]


def _run_layer(
    stack: DecoderStack,
    index: int,
    hidden: torch.Tensor,
    positions: torch.Tensor,
    rotary: tuple[torch.Tensor, torch.Tensor],
    cache: Any,
) -> torch.Tensor:
    out = stack.layers[index](
        hidden,
        attention_mask=_causal_mask(stack.config, hidden.shape[1], hidden),
        # M-RoPE ids [3, 1, L] reach the layers only through the rotary embedding, as in the model's own
        # forward (flash attention would read a position row as packed sequences)
        position_ids=positions if positions.dim() == 2 else None,
        position_embeddings=rotary,
        use_cache=True,
        **{stack.cache_keyword: cache},
    )
    return out[0] if isinstance(out, tuple) else out


def _logits(stack: DecoderStack, hidden: torch.Tensor) -> torch.Tensor:
    return stack.lm_head(stack.norm(hidden[:, -1:]))[:, -1].float()


@dataclass(frozen=True)
class FastVPrefill:
    """What :func:`fastv_prefill` did: ``logits`` float32 ``[1, V]`` of the last position, ``kept`` long
    ``[L']`` the prompt positions layers ``K ..`` hold, ``visual_kept`` long ``[R]`` the kept visual tokens
    (indices among the visual tokens, ascending), and ``row`` float32 ``[L]`` the attention that ranked
    them (``None`` when every visual token was kept)."""

    logits: torch.Tensor
    kept: torch.Tensor
    visual_kept: torch.Tensor
    row: torch.Tensor | None


def fastv_prefill(
    stack: DecoderStack,
    inputs_embeds: torch.Tensor,
    position_ids: torch.Tensor,
    visual: tuple[int, int] | torch.Tensor,
    fastv: FastV,
    cache: Any,
    deepstack: Sequence[torch.Tensor] = (),
) -> FastVPrefill:
    """Run the prompt through the decoder, pruning the visual tokens at layer ``fastv.layer``.

    Args:
        inputs_embeds: ``[1, L, D]`` prompt embeddings.
        position_ids: ``[1, L]`` (or ``[3, 1, L]`` for M-RoPE) as the model's rotary embedding takes them;
            kept tokens keep theirs.
        visual: the visual tokens' positions, ``(start, stop)`` or a bool ``[L]`` mask; the last position
            must be text.
        cache: an empty ``transformers.DynamicCache``; filled per layer (``L`` or ``L'`` entries).
        deepstack: Qwen3-VL's DeepStack rows, per level ``[n_visual, D]`` in prompt order: level ``i`` is
            added at the visual positions after layer ``i`` (only at the kept ones once pruned).
    """
    length = inputs_embeds.shape[1]
    if inputs_embeds.shape[0] != 1:
        raise InvalidArgumentError(
            f"FastV runs one prompt at a time, got a batch of {inputs_embeds.shape[0]}"
        )
    mask = visual_mask(visual, length, inputs_embeds.device)
    count = int(mask.sum())
    if count == 0 or bool(mask[-1]):
        raise InvalidArgumentError(
            f"FastV needs visual tokens followed by at least one text token; got {count} visual positions "
            f"in a prompt of {length}{', the last one visual' if count else ''}"
        )
    for level, rows in enumerate(deepstack):
        if rows.shape[0] != count:
            raise InvalidArgumentError(
                f"DeepStack level {level} has {rows.shape[0]} rows for {count} visual tokens"
            )
    fastv.check_layers(len(stack.layers))
    kept = fastv.kept(count)
    hidden, positions = inputs_embeds, position_ids
    keep, row = torch.arange(length, device=inputs_embeds.device), None
    rank = mask.cumsum(0) - 1  # each position's index among the visual tokens (where it is one)
    rotary = stack.rotary(hidden, positions)
    for index in range(len(stack.layers)):
        if index == fastv.layer and kept < count:
            row = last_token_attention(stack.layers[index], hidden, rotary, stack.apply_rotary)
            keep = select_visual(row, mask, kept)
            hidden, positions = hidden[:, keep], positions[..., keep]
            rotary = stack.rotary(hidden, positions)
        hidden = _run_layer(stack, index, hidden, positions, rotary, cache)
        if index < len(deepstack):
            held = mask[keep]
            hidden = add_deepstack(hidden, held, deepstack[index][rank[keep][held]])
    inside = rank[keep][mask[keep]]
    return FastVPrefill(_logits(stack, hidden), keep, inside, row)


def stack_step(
    stack: DecoderStack, inputs_embeds: torch.Tensor, position_ids: torch.Tensor, cache: Any
) -> torch.Tensor:
    """One new token through every layer with the cache: float32 logits ``[1, V]``.

    ``inputs_embeds`` ``[1, 1, D]``; ``position_ids`` ``[1, 1]`` (or ``[k, 1, 1]``).
    """
    hidden = inputs_embeds
    rotary = stack.rotary(hidden, position_ids)
    for index in range(len(stack.layers)):
        hidden = _run_layer(stack, index, hidden, position_ids, rotary, cache)
    return _logits(stack, hidden)


class FastVGenerator:
    """A language model with FastV, behind the ``generate`` keywords :func:`vidpool.llm.generate.generate_text`
    passes (``inputs_embeds``, ``max_new_tokens``, ``do_sample``, ``temperature``, ``top_p``,
    ``stopping_criteria``, ``streamer``); returns the new token ids ``[1, n]`` as transformers' ``generate``
    does for ``inputs_embeds``.

    Args:
        lm: the transformers model (causal LM or LLaVA-family).
        fastv: what to keep from which layer.
        visual: the visual tokens' positions in the prompt: ``(start, stop)`` or a bool ``[L]`` mask.
        position_ids: the prompt's position ids (default ``arange(L)``); a new token takes
            ``max(position_ids) + 1 + t`` on every axis (the arange's continuation, and Qwen2-VL's
            M-RoPE rule for text after the video).
        stack: the decoder stack (default :func:`decoder_stack` of ``lm``).
        deepstack: DeepStack rows per level ``[n_visual, D]`` (Qwen3-VL), added in the prefill only.
    """

    def __init__(
        self,
        lm: Any,
        fastv: FastV,
        visual: tuple[int, int] | torch.Tensor,
        *,
        position_ids: torch.Tensor | None = None,
        stack: DecoderStack | None = None,
        deepstack: Sequence[torch.Tensor] = (),
    ):
        self.lm = lm
        self.fastv = fastv
        self.visual = visual
        self.position_ids = position_ids
        self.stack = stack or decoder_stack(lm)
        self.deepstack = list(deepstack)
        #: the latest prefill (which visual tokens were kept), ``None`` before the first
        self.last_prefill: FastVPrefill | None = None

    def _eos(self) -> set[int]:
        eos = getattr(getattr(self.lm, "generation_config", None), "eos_token_id", None)
        if eos is None:
            return set()
        return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}

    def generate(
        self,
        *,
        inputs_embeds: torch.Tensor,
        max_new_tokens: int,
        do_sample: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        stopping_criteria: Any = None,
        streamer: Any = None,
        **_: Any,
    ) -> torch.Tensor:
        from transformers import DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

        device = inputs_embeds.device
        length = inputs_embeds.shape[1]
        positions = self.position_ids
        if positions is None:
            positions = torch.arange(length, device=device)[None]
        positions = positions.to(device)
        warpers = LogitsProcessorList()
        if do_sample:
            warpers.append(TemperatureLogitsWarper(float(temperature)))
            if top_p is not None and top_p < 1:
                warpers.append(TopPLogitsWarper(float(top_p)))
        eos = self._eos()
        criteria = list(stopping_criteria or [])
        cache = DynamicCache()
        out = torch.empty((1, 0), dtype=torch.long, device=device)
        if streamer is not None:
            streamer.put(out.cpu())  # the (empty) prompt ids, as transformers' generate puts them first
        prefill = self.last_prefill = fastv_prefill(
            self.stack, inputs_embeds, positions, self.visual, self.fastv, cache, self.deepstack
        )
        logits, nxt = prefill.logits, int(positions.max()) + 1
        for step in range(max_new_tokens):
            scores = warpers(out, logits)
            if do_sample:
                token = torch.multinomial(scores.softmax(dim=-1), num_samples=1)[:, 0]
            else:
                token = scores.argmax(dim=-1)
            out = torch.cat([out, token[:, None]], dim=1)
            if streamer is not None:
                streamer.put(token.cpu())
            done = int(token) in eos or any(bool(c(out, scores).any()) for c in criteria)
            if done or step == max_new_tokens - 1:
                break
            embeds = self.stack.embed(token[:, None]).to(inputs_embeds.dtype)
            step_positions = torch.full_like(positions[..., :1], nxt + step)
            logits = stack_step(self.stack, embeds, step_positions, cache)
        if streamer is not None:
            streamer.end()
        return out
