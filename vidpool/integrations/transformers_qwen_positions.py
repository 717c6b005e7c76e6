"""M-RoPE positions of Qwen2.5-VL / Qwen3-VL prompts whose video tokens were compressed: pure tensor code.

Qwen's LM rotates each token by three ids, ``(time, height, width)``. transformers computes them for an
uncompressed prompt (``get_rope_index``): text advances all three by one per token; a video token at merged
grid cell ``(t, i, j)`` after ``s`` earlier positions gets ``(s + time(t), s + i, s + j)``, and the text that
follows the video starts at ``s + max(H', W')``. Qwen2.5-VL spaces ``time(t) = int(t x interval)``, with
``interval = tokens_per_second x seconds per temporal patch``; Qwen3-VL writes every temporal patch as its
own block (``<t seconds><|vision_start|>`` frame ``<|vision_end|>``), each laid out as an image
(``time = 0``) at the position where it starts.

vidpool lays the prompt out as if nothing were compressed, then keeps what compression kept:

* a kept (pruned) token has exactly its own ids;
* a pooled token has the weighted centre of the ids of the positions that fed it (``Compressed.weight``),
  rounded to the nearest integer;
* every text token keeps the id it has in the uncompressed layout; a Qwen3-VL frame that lost all its
  tokens loses its timestamp and its vision start / end tokens too;
* generated tokens continue from ``max(id) + 1`` of the prompt (transformers' ``rope_deltas``).

This is vLLM's convention for pruned video (EVS) and, with every token kept, transformers' own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vidpool.compression import provenance_mean
from vidpool.errors import InvalidArgumentError

__all__ = [
    "Segment",
    "apply_provenance",
    "frame_of_tokens",
    "grid_position_ids",
    "layout_prompt",
    "temporal_timestamps",
    "text_segment",
    "token_position_ids",
]


def grid_position_ids(grid: tuple[int, int, int], starts: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
    """Ids ``[3, T'*H'*W']`` of every merged grid cell in raster order.

    Args:
        grid: ``(T', H', W')``, the merged grid.
        starts: long ``[T']``, the position where each temporal patch's tokens start.
        time: long ``[T']``, the time id of each temporal patch relative to its start.
    """
    t, h, w = grid
    base = starts.long().view(t, 1, 1).expand(t, h, w)
    rows = torch.arange(h).view(1, h, 1).expand(t, h, w)
    cols = torch.arange(w).view(1, 1, w).expand(t, h, w)
    times = time.long().view(t, 1, 1).expand(t, h, w)
    return torch.stack([base + times, base + rows, base + cols]).reshape(3, -1)


def token_position_ids(
    ids: torch.Tensor, assign: torch.Tensor, weight: torch.Tensor, count: int
) -> torch.Tensor:
    """Ids ``[3, count]`` of compressed tokens: the weighted centre of the ids ``[3, P]`` of the positions
    feeding each (``assign``/``weight`` ``[P]`` flattened from :class:`vidpool.compression.Compressed`),
    rounded; a pruned token has its own ids."""
    if ids.shape[1] != assign.numel():
        raise InvalidArgumentError(f"{ids.shape[1]} position ids for {assign.numel()} grid positions")
    centres = provenance_mean(assign.reshape(-1), weight.reshape(-1), ids.t(), count, torch.float64)
    if torch.isnan(centres).any():
        missing = int(torch.isnan(centres[:, 0]).sum())
        raise InvalidArgumentError(
            f"{missing} compressed tokens have no provenance (no input position names them in assign), so "
            "they have no M-RoPE position; use a method whose result records where each token came from"
        )
    return centres.round().long().t().contiguous()


def frame_of_tokens(assign: torch.Tensor, weight: torch.Tensor, count: int) -> torch.Tensor:
    """Temporal patch ``[count]`` each token belongs to (the rounded weighted mean of its sources' ``t``),
    from ``assign``/``weight`` ``[T', H', W']``."""
    t = torch.arange(assign.shape[0], dtype=torch.float64).view(-1, 1, 1).expand(assign.shape)
    centre = provenance_mean(assign.reshape(-1), weight.reshape(-1), t.reshape(-1, 1), count, torch.float64)
    return centre[:, 0].round().long()


def apply_provenance(
    values: torch.Tensor, assign: torch.Tensor, weight: torch.Tensor, count: int
) -> torch.Tensor:
    """Rows ``[P, C]`` (one per grid position) combined as compression combined the tokens: output token
    ``n`` is the ``weight``-weighted mean of the rows whose ``assign`` is ``n``. Returns ``[count, C]`` in
    ``values``' dtype (:func:`vidpool.compression.provenance_mean`, a token fed by nothing zero)."""
    # float32 at least: half-precision sums of many rows would round away small contributions
    dtype = torch.promote_types(values.dtype, torch.float32)
    out = provenance_mean(assign.reshape(-1), weight.reshape(-1), values, count, dtype)
    return torch.nan_to_num(out).to(values.dtype)


def temporal_timestamps(
    timestamps: Sequence[float] | torch.Tensor | None, num_frames: int, patch: int = 2
) -> list[float]:
    """Seconds of each temporal patch of ``patch`` frames: the mean of its first and last frame's time, the
    last patch padded with the last frame (Qwen3-VL's processor); without timestamps frames are 0.5 s apart
    (2 fps, Qwen's default sampling)."""
    if timestamps is None:
        stamps = [0.5 * i for i in range(num_frames)]
    else:
        stamps = [float(t) for t in (timestamps.tolist() if torch.is_tensor(timestamps) else timestamps)]
        if len(stamps) != num_frames:
            raise InvalidArgumentError(
                f"got {len(stamps)} timestamps for {num_frames} frames; pass one timestamp per sampled frame"
            )
    while len(stamps) % patch:
        stamps.append(stamps[-1])
    return [(stamps[i] + stamps[i + patch - 1]) / 2 for i in range(0, len(stamps), patch)]


@dataclass
class Segment:
    """One run of the prompt: text token ids, or the video tokens of one temporal patch (``frame``) or of all
    of them (``frame = -1``). ``ids`` are its M-RoPE positions ``[3, n]``."""

    kind: str  # "text" or "video"
    tokens: list[int] | torch.Tensor
    ids: torch.Tensor
    frame: int = -1


def text_segment(tokens: Sequence[int], start: int) -> Segment:
    """A text run at ``start``: each token advances time, height and width by one."""
    ids = (torch.arange(len(tokens)) + start).view(1, -1).expand(3, -1)
    return Segment("text", list(tokens), ids)


def _text(tokens: list[int], start: int) -> tuple[Segment, int]:
    return text_segment(tokens, start), start + len(tokens)


def layout_prompt(
    before: list[int],
    after: list[int],
    grid: tuple[int, int, int],
    assign: torch.Tensor,
    weight: torch.Tensor,
    count: int,
    *,
    interval: float | None = None,
    frame_text: list[tuple[list[int], list[int]]] | None = None,
) -> list[Segment]:
    """The prompt's runs with their M-RoPE ids, compressed tokens placed by provenance.

    Args:
        before, after: token ids of the text around the video (Qwen2.5-VL: ``before`` ends with
            ``<|vision_start|>`` and ``after`` begins with ``<|vision_end|>``).
        grid: ``(T', H', W')`` merged grid; ``assign``/``weight`` ``[T', H', W']`` its provenance over
            ``count`` tokens, which keep their order in each video run.
        interval: Qwen2.5-VL: time ids per temporal patch (one video run).
        frame_text: Qwen3-VL: per temporal patch, the ids before its tokens (``<t seconds><|vision_start|>``)
            and after them (``<|vision_end|>``); each patch is its own run, and a patch no token
            belongs to is left out with its text.
    """
    t, h, w = grid
    segments: list[Segment] = []
    first, pos = _text(before, 0)
    segments.append(first)
    if frame_text is None:
        if interval is None:
            raise InvalidArgumentError("a single video run needs the time interval of its temporal patches")
        time = (torch.arange(t, dtype=torch.float64) * interval).long()
        ids = grid_position_ids(grid, torch.full((t,), pos), time)
        segments.append(Segment("video", torch.arange(count), token_position_ids(ids, assign, weight, count)))
        pos += max(h, w)
    else:
        if len(frame_text) != t:
            raise InvalidArgumentError(f"{len(frame_text)} frame texts for {t} temporal patches")
        starts, spans = [], []
        for head, tail in frame_text:
            start = pos + len(head)
            starts.append(start)
            spans.append((pos, start + max(h, w)))
            pos = start + max(h, w) + len(tail)
        ids = grid_position_ids(grid, torch.tensor(starts), torch.zeros(t, dtype=torch.long))
        token_ids = token_position_ids(ids, assign, weight, count)
        frames = frame_of_tokens(assign, weight, count)
        for k, (head, tail) in enumerate(frame_text):
            members = torch.nonzero(frames == k).flatten()
            if members.numel() == 0:
                continue
            segments.append(_text(head, spans[k][0])[0])
            segments.append(Segment("video", members, token_ids[:, members], frame=k))
            segments.append(_text(tail, spans[k][1])[0])
    segments.append(_text(after, pos)[0])
    return segments
