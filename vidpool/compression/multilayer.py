"""``multilayer``: learned queries cross-attending over patch tokens of several encoder layers.

The trainable pooling of PPLLaVA/PLLaVA's variants, per frame. The input holds ``L`` encoder layers
concatenated along channels, in the order of the weights' ``layers`` (``CLIPEncoder.encode_frames(
frames, layers=...)`` gives exactly that): ``[B, T, H, W, L·D]``. For each frame, with ``X`` its
``P = H·W`` positions:

    K = LayerNorm(X) W_k                          [P, d]    (keys see every layer)
    A = softmax_p(Q_{1..q} K^T / sqrt(d))         [q, P]    (one row per learned query)
    V = X_read + X W_v                            [P, D]    (W_v starts at zero)
    Y = A V                                       [q, D]

``X_read`` is the layer the downstream model reads (the weights' ``read``: an index into ``layers``),
so the tokens start as convex combinations of the features that model knows, and the other layers
steer where the queries look (and, through ``W_v``, what they add).

A budget resolves into ``q`` queries per frame, the first ``q`` of the learned bank (so one set of
weights serves every budget): ``q = min(queries, H·W, budget // T)``, ``T·q`` tokens in frame order.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vidpool.compression.budget import check_budget
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.compression.trained import check_width, pooling_config, pooling_module
from vidpool.errors import InvalidArgumentError

__all__ = ["MultiLayer", "MultiLayerPool", "query_attention"]


def query_attention(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention weights of ``queries [q, d]`` over ``keys [..., P, d]``.

    Returns:
        ``[..., q, P]``: a softmax over the positions ``P`` for each query.
    """
    logits = torch.einsum("qd,...pd->...qp", queries, keys) / math.sqrt(queries.shape[-1])
    return logits.softmax(dim=-1)


class MultiLayerPool(nn.Module):
    """Learned queries over the patch tokens of several encoder layers (see the module notes).

    Args:
        width: ``D``, one layer's channels (and the output's).
        layers: the encoder layers the input concatenates, in order (``-2``: LLaVA's layer).
        read: index into ``layers`` of the layer the output lives in.
        dim: ``d``, the key and query width.
        queries: the size of the query bank (the most tokens a frame can give).

    ``forward(tokens [B, T, H, W, L·D] or [T, H, W, L·D], budget=None, queries=None)`` returns the
    registered method's :class:`vidpool.Compressed` with this module as its weights.
    """

    def __init__(
        self, width: int, layers=(-3, -2, -1), read: int = 1, dim: int = 64, queries: int = 64
    ) -> None:
        super().__init__()
        layers = [int(v) for v in layers]
        if not 0 <= read < len(layers):
            raise InvalidArgumentError(f"read={read} must index one of the {len(layers)} layers {layers}")
        self.config = {
            "width": int(width),
            "layers": layers,
            "read": int(read),
            "dim": int(dim),
            "queries": int(queries),
        }
        channels = width * len(layers)
        self.norm = nn.LayerNorm(channels)
        self.key = nn.Linear(channels, dim)
        self.queries = nn.Parameter(torch.randn(queries, dim))
        self.value = nn.Linear(channels, width)
        nn.init.zeros_(self.value.weight)  # start from convex combinations of the read layer
        nn.init.zeros_(self.value.bias)

    @property
    def width(self) -> int:
        return self.config["width"]

    @property
    def in_channels(self) -> int:
        return self.config["width"] * len(self.config["layers"])

    def attend(self, x: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``count`` queries over each frame.

        Args:
            x: ``[B, T, H, W, L·D]``.

        Returns:
            ``(tokens [B, T·count, D] in x's dtype, attention float32 [B, T, count, H·W])``.
        """
        frames = x.flatten(2, 3).float()  # [B, T, P, L·D]
        attn = query_attention(self.queries[:count], self.key(self.norm(frames)))
        d, r = self.config["width"], self.config["read"]
        values = frames[..., r * d : (r + 1) * d] + self.value(frames)  # [B, T, P, D]
        tokens = attn @ values  # [B, T, count, D]
        return tokens.flatten(1, 2).to(x.dtype), attn

    def forward(self, tokens: torch.Tensor, budget: int | None = None, queries: int | None = None):
        from vidpool.compression.api import compress

        return compress(tokens, "multilayer", budget=budget, queries=queries, weights=self)


@register
class MultiLayer(Method):
    """Learned queries over several encoder layers, per frame (see the module notes).

    * ``budget=N``: ``q = min(bank, H·W, N // T)`` queries a frame (at least one: a budget below ``T``
      is refused); ``queries=q`` sets it directly; with neither, a quarter of ``H·W``.
    * ``weights``: a :class:`MultiLayerPool` ``.safetensors`` file (its ``.json`` beside it) or the
      module; default the shipped weights for the world's CLIP (``vidpool/models/synth/multilayer``).
      The input must hold the weights' layers concatenated along channels (``L·D`` channels).

    Provenance: each position's ``assign`` is the query (of its frame) that attends to it most and
    ``weight`` that attention.
    """

    name = "multilayer"
    budget_replaces = ("queries",)
    summary = "learned queries cross-attending over several encoder layers, per frame; trained weights"
    input_layers = (-3, -2, -1)  # the shipped weights' layers

    def resolve(self, shape, budget=None, *, queries=None, weights=None):
        t, h, w = shape
        bank = int(pooling_config(weights, self.name)["queries"])
        most = min(bank, h * w)
        if queries is not None and budget is not None:
            raise InvalidArgumentError("give multilayer either queries=q or budget=N, not both")
        if budget is not None:
            check_budget(self.name, budget, t, shape)
            count = min(most, budget // t)
        elif queries is not None:
            if isinstance(queries, bool) or not isinstance(queries, int) or not 1 <= queries <= most:
                raise InvalidArgumentError(
                    f"multilayer queries must be an integer in 1..{most} (the weights' bank of {bank} "
                    f"queries and the {h * w} positions of a frame), got {queries!r}"
                )
            count = queries
        else:
            count = max(1, min(most, (h * w) // 4))
        return MethodPlan(t * count, {"queries": count, "weights": weights})

    def run(self, x, plan, scores=None):
        module = pooling_module(MultiLayerPool, plan.params["weights"], self.name, x.device)
        layers = module.config["layers"]
        check_width(
            self.name,
            x.shape[-1],
            module.in_channels,
            f"width ({len(layers)} layers {layers} of {module.width})",
        )
        count = plan.params["queries"]
        tokens, attn = module.attend(x, count)
        b, t, h, w, _ = x.shape
        best, query = attn.detach().max(dim=2)  # [B, T, P]
        frame = torch.arange(t, device=x.device).view(1, t, 1)
        assign = (frame * count + query).view(b, t, h, w)
        weight = best.clamp_min(torch.finfo(torch.float32).tiny).view(b, t, h, w)
        return Output(tokens, assign, weight)
