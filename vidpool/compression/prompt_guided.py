"""``prompt_guided``: PPLLaVA's prompt-guided pooling, and the prompt relevance scores it takes."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from vidpool.compression.budget import check_budget, grid_for_budget
from vidpool.compression.pool import batch_provenance, grid_arg
from vidpool.compression.registry import Method, MethodPlan, Output, register
from vidpool.errors import InvalidArgumentError

__all__ = ["PromptGuided", "prompt_scores", "window_pool"]


def prompt_scores(joint: torch.Tensor, text: torch.Tensor, logit_scale: float = 100.0) -> torch.Tensor:
    """Relevance of every patch to the prompt, as PPLLaVA defines it.

    ``softmax(logit_scale · cos(text, patch))`` over all ``T·H·W`` positions of each video.

    Args:
        joint: patch embeddings in CLIP's joint space, ``[B, T, H, W, D]`` (or ``[T, H, W, D]``).
        text: prompt embeddings ``[B, D]`` (or ``[D]``).
        logit_scale: CLIP's learned temperature (100 for OpenAI CLIP).

    Returns:
        float32 probabilities ``[B, T, H, W]`` (or ``[T, H, W]``) summing to 1 per video.
    """
    single = joint.dim() == 4
    if single:
        joint = joint.unsqueeze(0)
        text = text.reshape(1, -1)
    if (
        joint.dim() != 5
        or text.dim() != 2
        or text.shape[0] != joint.shape[0]
        or text.shape[1] != joint.shape[-1]
    ):
        raise InvalidArgumentError(
            f"prompt_scores needs joint [B, T, H, W, D] and text [B, D], got {tuple(joint.shape)} and {tuple(text.shape)}"
        )
    patches = F.normalize(joint.float(), dim=-1)
    query = F.normalize(text.float(), dim=-1)
    logits = torch.einsum("bthwd,bd->bthw", patches, query) * float(logit_scale)
    probs = logits.flatten(1).softmax(-1).view_as(logits)
    return probs[0] if single else probs


def _windows(scores: torch.Tensor, kernel, stride) -> torch.Tensor:
    """``[B, T, H, W]`` → ``[B, t, h, w, kt·kh·kw]`` (a view of the small score tensor, then one copy)."""
    for dim, (k, s) in enumerate(zip(kernel, stride), start=1):
        scores = scores.unfold(dim, k, s)
    return scores.flatten(-3)


def window_pool(
    x: torch.Tensor,
    scores: torch.Tensor | None,
    kernel: tuple[int, int, int],
    stride: tuple[int, int, int],
    temperature: float = 0.01,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted pooling over 3-D windows, weights ``softmax(scores_in_window / temperature)``.

    Args:
        x: ``[B, T, H, W, C]``.
        scores: ``[B, T, H, W]`` or ``None`` (then every window is a plain average).
        kernel, stride: per axis (T, H, W); output size per axis is ``(I - k) // s + 1``.

    Returns:
        ``(tokens [B, t, h, w, C], window weights float32 [B, t, h, w, kt·kh·kw])``.

    The weighted sum runs window offset by window offset over strided views of ``x``: the input is
    read once and never unfolded, permuted or copied. Sums accumulate in float32.
    """
    b, t_in, h_in, w_in, c = x.shape
    out_shape = [(i - k) // s + 1 for i, k, s in zip((t_in, h_in, w_in), kernel, stride)]
    n_win = math.prod(kernel)
    if scores is None:
        weights = torch.full((b, *out_shape, n_win), 1.0 / n_win, device=x.device)
    else:
        weights = (_windows(scores.float(), kernel, stride) / temperature).softmax(-1)
    acc_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    out = torch.zeros(b, *out_shape, c, dtype=acc_dtype, device=x.device)
    # One contiguous [B, t, h, w, 1] weight slab per offset: a strided weight operand makes addcmul
    # fall off its vectorised path (measured 10x slower).
    w_cast = weights.to(acc_dtype).movedim(-1, 0).contiguous().unsqueeze(-1)
    offsets = itertools.product(*(range(k) for k in kernel))
    for n, (a, bb, cc) in enumerate(offsets):
        view = x[
            :,
            a : a + stride[0] * (out_shape[0] - 1) + 1 : stride[0],
            bb : bb + stride[1] * (out_shape[1] - 1) + 1 : stride[1],
            cc : cc + stride[2] * (out_shape[2] - 1) + 1 : stride[2],
        ]
        # In place is autograd-safe: addcmul's backward needs only view and weights, never out.
        out.addcmul_(view, w_cast[n])
    return out.to(x.dtype), weights


def _window_provenance(weights: torch.Tensor, shape, kernel, stride) -> tuple[torch.Tensor, torch.Tensor]:
    """Per input position, the window that weights it most and that weight: ``[B, T, H, W]`` each."""
    b, t, h, w, _ = weights.shape
    assign = torch.full((b, *shape), -1, dtype=torch.long, device=weights.device)
    best = torch.zeros((b, *shape), dtype=torch.float32, device=weights.device)
    ids = torch.arange(t * h * w, device=weights.device).view(1, t, h, w).expand(b, t, h, w)
    for n, (a, bb, cc) in enumerate(itertools.product(*(range(k) for k in kernel))):
        sl = (
            slice(None),
            slice(a, a + stride[0] * (t - 1) + 1, stride[0]),
            slice(bb, bb + stride[1] * (h - 1) + 1, stride[1]),
            slice(cc, cc + stride[2] * (w - 1) + 1, stride[2]),
        )
        cand = weights[..., n]
        better = cand > best[sl]
        best[sl] = torch.where(better, cand, best[sl])
        assign[sl] = torch.where(better, ids, assign[sl])
    return assign, best


@register
class PromptGuided(Method):
    """PPLLaVA's prompt-guided pooling.

    Windows of ``kernel`` moved by ``stride`` (default both ``(2, 3, 3)``; a kernel longer than the input
    on an axis is cut to the input) give ``(I - k) // s + 1`` tokens per axis. Inside a window the weights
    are ``softmax(scores / temperature)`` (``temperature`` default 0.01) and the token is the weighted sum.
    ``grid=(t, h, w)`` sets ``stride = I // O`` and ``kernel = I - (O - 1)·stride`` per axis; ``budget=N``
    picks the grid. Without ``scores`` every window is a plain average.

    ``scores`` are ``[B, T, H, W]`` probabilities from :func:`prompt_scores`.
    """

    name = "prompt_guided"
    budget_replaces = ("kernel", "stride", "grid")
    summary = "prompt-weighted 3-D window pooling (PPLLaVA)"
    uses_scores = True
    keeps_grid = True

    def resolve(self, shape, budget=None, *, kernel=None, stride=None, grid=None, temperature=0.01):
        if not temperature > 0:
            raise InvalidArgumentError(f"temperature must be positive, got {temperature!r}")
        if budget is not None or grid is not None:
            if kernel is not None or stride is not None or (budget is not None and grid is not None):
                raise InvalidArgumentError("give prompt_guided one of kernel/stride, grid= or budget=")
            if budget is not None:
                check_budget(self.name, budget, 1, shape)
                grid = grid_for_budget(shape, budget, windows=True)
            grid = grid_arg(grid, 3, "grid")
            if any(o > i for o, i in zip(grid, shape)):
                raise InvalidArgumentError(f"grid {grid} is larger than the input {shape} on some axis")
            stride = tuple(i // o for i, o in zip(shape, grid))
            kernel = tuple(i - (o - 1) * s for i, o, s in zip(shape, grid, stride))
        else:
            kernel = tuple(min(k, i) for k, i in zip(grid_arg(kernel or (2, 3, 3), 3, "kernel"), shape))
            stride = grid_arg(stride or kernel, 3, "stride")
        out = tuple((i - k) // s + 1 for i, k, s in zip(shape, kernel, stride))
        params = {"kernel": kernel, "stride": stride, "temperature": float(temperature)}
        return MethodPlan(math.prod(out), params, grid=out)

    def run(self, x, plan, scores=None):
        kernel, stride = plan.params["kernel"], plan.params["stride"]
        tokens, weights = window_pool(x, scores, kernel, stride, plan.params["temperature"])
        with torch.no_grad():
            if scores is None:
                # Same weights for every item: compute once and repeat.
                assign, best = _window_provenance(weights[:1], x.shape[1:4], kernel, stride)
                assign, best = batch_provenance(assign[0], best[0], x.shape[0])
            else:
                assign, best = _window_provenance(weights, x.shape[1:4], kernel, stride)
        return Output(tokens.flatten(1, 3), assign, best)
