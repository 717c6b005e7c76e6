"""The retrieval scorer: answers a synthetic item from kept tokens and CLIP text embeddings, no LLM.

Joint embeddings. The encoder's ``joint`` output ``[T, h, w, D]`` is every patch of the last block
through ``ln_post`` and ``proj``; with ``pool_type: avg`` their mean over a frame is exactly CLIP's
image embedding, so any weighted mean of them lives in the text embeddings' space. A method's
:class:`vidpool.Compressed` says which output token each position feeds (``assign``) and with which
weight; :func:`kept_tokens` gives each output token the weight-averaged joint embedding of the
positions that feed it, the first and last frame among them (``span``) and their weight-averaged
grid centre (``centre``, ``(y, x)`` with patch ``i`` centred at ``i + 0.5``, so ``centre / h`` is a
fraction of the side, as in the world's geometry).

``assign`` records only the token a position feeds most. Where a position feeds several tokens
(``spp``'s coarse pyramid levels, ``slowfast``'s fast tokens of the frames its slow path also keeps)
the tokens that are nobody's main token get no positions: they are left out of :class:`Kept`, and the
remaining tokens' joint embeddings, spans and centres describe only their recorded positions. The
readout therefore sees such methods with fewer (finer) tokens than they produce.

Readout rules (``s_n`` is the cosine of kept token ``n`` with a prompt; prompts are the phrases the
world's CLIP was trained on: ``"a red shape"`` for a colour, ``"a red circle"`` for a needle option or a
shape (the shape question names the object's colour, so grey distractors of an offered shape match
it only half)):

- ``static``, ``small``, ``needle``: each option scores ``max_n s_n`` of its prompt.
- ``change``: the same, except that the colour the object has all along is ruled out: the option
  whose best cosine in a typical frame (the median over frames) is highest.
- the other families use the tokens that *match* the question's subject, by its colour
  (``"a red shape"``; no other object in those scenes has it): with ``r_n = s_n - min(s)``, those in
  the upper half of the range, ``r_n >= max(r) / 2`` (none when all ``s_n`` are equal).
- ``needle_time``: quarter ``q`` scores ``max_n r_n · f_n(q)``, ``f_n(q)`` the share of token ``n``'s span
  inside quarter ``q``.
- ``count``: the matched tokens' spans are united into runs of consecutive frames; option ``k``
  scores ``-|k - runs|``.
- ``order``: each option colour has its own matched tokens; the three options matched most strongly
  (largest ``max r``) are the three objects, and among them the earliest matched span start wins.
- ``direction``: here the subject's tokens are those that stand apart from the bulk either way,
  ``a_n = |s_n - median(s)| >= max(a) / 2``: a CLIP's patch tokens may carry the frame's content
  everywhere but on the object itself, which then stands out low (this world's CLIP does). The
  ``a``-weighted least-squares slope of their centres against their span midpoints gives a velocity
  ``(vx, vy)``; each option scores its dot product with it. The bulk is taken as background, so the
  subject must be under half of the kept tokens (true while a token covers less than half a frame).

Ties at the top (a control with no video, a rule with nothing matched) are broken by a choice seeded
by the item id, which is independent of the right answer: a tie costs chance accuracy, never more.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vidpool.bench.synth.stills import COLOUR_PROMPT
from vidpool.bench.synth.tasks import SUBJECT_ROLE, Item
from vidpool.bench.synth.world import SHAPES
from vidpool.compression.result import Compressed
from vidpool.errors import InvalidArgumentError

__all__ = ["Kept", "kept_tokens", "option_prompts", "option_scores", "subject_prompt", "text_embedder"]

_UNIT = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}


@dataclass
class Kept:
    """Kept tokens in the joint space with their provenance.

    Attributes:
        joint: ``[N, D]`` each kept token's joint embedding: weight-averaged joint of the positions feeding it.
        span: long ``[N, 2]``: first and last frame index of the positions feeding it.
        centre: float ``[N, 2]``: weight-averaged ``(y, x)`` in grid units (patch ``i`` centred at ``i + 0.5``).
        num_frames: ``T`` of the video.
        index: long ``[N]``: each kept token's index among the method's output tokens.
    """

    joint: torch.Tensor
    span: torch.Tensor
    centre: torch.Tensor
    num_frames: int
    index: torch.Tensor | None = None


def kept_tokens(compressed: Compressed, joint: torch.Tensor) -> Kept:
    """Compress joint embeddings ``[T, h, w, D]`` with ``compressed.assign``/``weight`` (one video).

    Output tokens that no position records (see the module notes) are left out, so ``N`` is at most
    ``compressed.num_tokens``; the kept ones stay in token order.
    """
    assign, weight = compressed.assign, compressed.weight
    if assign.dim() == 4 and assign.shape[0] == 1:
        assign, weight = assign[0], weight[0]
    if assign.dim() != 3 or joint.dim() != 4 or tuple(joint.shape[:3]) != tuple(assign.shape):
        raise InvalidArgumentError(
            f"kept_tokens needs one video: assign [T, h, w] and joint [T, h, w, D] of the same T, h, w; "
            f"got {tuple(compressed.assign.shape)} and {tuple(joint.shape)}"
        )
    t, h, w = assign.shape
    n = compressed.num_tokens
    flat_a, flat_w = assign.reshape(-1).cpu(), weight.reshape(-1).float().cpu()
    pos = torch.nonzero((flat_a >= 0) & (flat_w > 0)).squeeze(1)
    tok, wt = flat_a[pos], flat_w[pos]
    emb = joint.reshape(-1, joint.shape[-1]).float().cpu()[pos]
    wsum = torch.zeros(n).index_add_(0, tok, wt)
    sums = torch.zeros(n, emb.shape[1]).index_add_(0, tok, emb * wt[:, None])
    frame, y, x = pos // (h * w), (pos // w) % h, pos % w
    first = torch.full((n,), t, dtype=torch.long).scatter_reduce_(0, tok, frame, "amin")
    last = torch.full((n,), -1, dtype=torch.long).scatter_reduce_(0, tok, frame, "amax")
    cy = torch.zeros(n).index_add_(0, tok, wt * (y.float() + 0.5))
    cx = torch.zeros(n).index_add_(0, tok, wt * (x.float() + 0.5))
    keep = wsum > 0
    norm = wsum[keep]
    return Kept(
        joint=sums[keep] / norm[:, None],
        span=torch.stack([first[keep], last[keep]], dim=1),
        centre=torch.stack([cy[keep] / norm, cx[keep] / norm], dim=1),
        num_frames=int(t),
        index=torch.nonzero(keep).squeeze(1),
    )


def option_prompts(item: Item) -> list[str] | None:
    """The text each option is scored with, or ``None`` for families scored through their subject."""
    if item.family in ("needle_time", "count", "direction"):
        return None
    if item.family == "needle":
        return [f"a {text}" for text in item.options]
    if item.family == "static" and item.options[0] in SHAPES:
        colour = item.scene.find("main").first_colour  # named in the question
        return [f"a {colour} {shape}" for shape in item.options]
    return [COLOUR_PROMPT.format(colour=c) for c in item.options]


def subject_prompt(item: Item) -> str:
    """``"a red shape"``: the colour of the object the question names (its first colour, as named).

    The colour alone, because it is what sets the subject apart in every scene (no other object
    shares it) while grey distractors may share its shape.
    """
    obj = item.scene.find(SUBJECT_ROLE[item.family])
    return COLOUR_PROMPT.format(colour=obj.first_colour)


def text_embedder(encoder) -> Callable[[list[str]], torch.Tensor]:
    """``encoder.encode_text`` with a cache per prompt: ``K`` prompts -> float32 ``[K, D]`` on the CPU."""
    cache: dict[str, torch.Tensor] = {}

    def embed(prompts: list[str]) -> torch.Tensor:
        missing = [p for p in dict.fromkeys(prompts) if p not in cache]
        if missing:
            for p, e in zip(missing, encoder.encode_text(missing).float().cpu()):
                cache[p] = e
        return torch.stack([cache[p] for p in prompts])

    return embed


def _cosines(kept: Kept, text: torch.Tensor) -> np.ndarray:
    """``[N, K]`` cosines of kept tokens with ``text`` ``[K, D]``."""
    a = torch.nn.functional.normalize(kept.joint.float(), dim=-1)
    b = torch.nn.functional.normalize(text.float().cpu(), dim=-1)
    return (a @ b.T).numpy().astype(np.float64)


def _relevance(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(r, matched)``: how far each token stands out for one prompt, and the tokens that match it."""
    # The upper half of the range rather than above the median: under a tight budget the subject's
    # tokens may be most of what is kept.
    r = s - s.min()
    top = r.max(initial=0.0)
    matched = r >= top / 2 if top > 1e-6 else np.zeros_like(r, dtype=bool)
    return r, matched


def _typical_frame_max(cos: np.ndarray, span: np.ndarray) -> np.ndarray:
    """``[P]``: the median over frames of each prompt's best cosine among the tokens covering a frame
    (``cos [n, P]``, ``span [n, 2]`` inclusive; frames no kept token covers are skipped): high for a
    colour shown all along, low for a brief one."""
    frames = np.arange(span[:, 0].min(), span[:, 1].max() + 1)
    covers = (span[None, :, 0] <= frames[:, None]) & (frames[:, None] <= span[None, :, 1])  # [F, n]
    covers = covers[covers.any(axis=1)]
    best = np.where(covers[:, :, None], cos[None], -np.inf).max(axis=1)  # [F, P]
    return np.median(best, axis=0)


def _runs(span: np.ndarray, num_frames: int) -> int:
    covered = np.zeros(num_frames + 1, dtype=bool)
    for first, last in span:
        covered[first : last + 1] = True
    return int(np.sum(covered[1:] & ~covered[:-1]) + covered[0])


def _quarter_scores(r: np.ndarray, span: np.ndarray, num_frames: int) -> np.ndarray:
    bounds = [q * num_frames // 4 for q in range(5)]
    length = span[:, 1] - span[:, 0] + 1
    scores = np.zeros(4)
    for q in range(4):
        overlap = np.minimum(span[:, 1] + 1, bounds[q + 1]) - np.maximum(span[:, 0], bounds[q])
        scores[q] = np.max(r * np.clip(overlap, 0, None) / length, initial=0.0)
    return scores


def _velocity(r: np.ndarray, matched: np.ndarray, kept: Kept) -> tuple[float, float]:
    times = kept.span.numpy()[matched].mean(axis=1)
    if matched.sum() < 2 or np.ptp(times) == 0:
        return 0.0, 0.0
    wt = r[matched]
    tc = times - np.average(times, weights=wt)
    centre = kept.centre.numpy()[matched].astype(np.float64)
    slope = (wt * tc) @ (centre - np.average(centre, axis=0, weights=wt)) / float(wt @ (tc * tc))
    return float(slope[1]), float(slope[0])  # (vx, vy) from the (y, x) centres


def _raw_scores(item: Item, kept: Kept, embed_text: Callable[[list[str]], torch.Tensor]) -> np.ndarray:
    family, span = item.family, kept.span.numpy()
    prompts = option_prompts(item)
    if prompts is not None:
        cos = _cosines(kept, embed_text(prompts))
        if family == "change":
            scores = cos.max(axis=0).astype(np.float64)
            scores[int(np.argmax(_typical_frame_max(cos, span)))] = scores.min() - 1.0
            return scores
        if family != "order":
            return cos.max(axis=0)
        relevance = [_relevance(cos[:, j]) for j in range(4)]
        presence = np.array([r.max() for r, _ in relevance])
        onset = np.array([span[m, 0].min() if m.any() else kept.num_frames for _, m in relevance])
        scores = -onset.astype(np.float64)
        scores[np.argsort(-presence, kind="stable")[3:]] = -2.0 * kept.num_frames - 1
        return scores
    r, matched = _relevance(_cosines(kept, embed_text([subject_prompt(item)]))[:, 0])
    if family == "needle_time":
        return _quarter_scores(r, span, kept.num_frames)
    if family == "count":
        if not matched.any():
            return np.zeros(4)
        runs = _runs(span[matched], kept.num_frames)
        return -np.abs(np.array([int(o) for o in item.options]) - runs).astype(np.float64)
    # Direction needs where the subject is, and a CLIP's patch tokens may carry the frame's content
    # everywhere but on the object (this world's CLIP does): the subject's tokens are those that stand
    # apart from the bulk either way.
    s = _cosines(kept, embed_text([subject_prompt(item)]))[:, 0]
    apart = np.abs(s - np.median(s))
    matched = apart >= apart.max() / 2 if apart.max() > 1e-6 else np.zeros_like(apart, dtype=bool)
    vx, vy = _velocity(apart, matched, kept)
    return np.array([_UNIT[o][0] * vx + _UNIT[o][1] * vy for o in item.options])


def _break_ties(item: Item, scores: np.ndarray) -> np.ndarray:
    top = scores.max()
    tied = np.flatnonzero(scores >= top - 1e-9 * (1.0 + abs(top)))
    if len(tied) > 1:
        pick = np.random.default_rng(zlib.crc32(item.id.encode())).choice(tied)
        scores[pick] = top + 1e-6 * (1.0 + abs(top))
    return scores


def option_scores(
    item: Item, kept: Kept | None, embed_text: Callable[[list[str]], torch.Tensor]
) -> np.ndarray:
    """Scores ``[4]`` of the item's options (the highest is the answer; the top never ties).

    Args:
        item: a synthetic item.
        kept: the video's kept tokens (:func:`kept_tokens`), or ``None`` for the text-only control,
            which scores every option alike and so answers by the item-seeded tie break.
        embed_text: ``K`` prompts -> ``[K, D]`` joint-space text embeddings (:func:`text_embedder`).
    """
    if item.family not in SUBJECT_ROLE:
        raise InvalidArgumentError(f"unknown family {item.family!r}")
    if kept is None or kept.joint.shape[0] == 0:
        raw = np.zeros(4)
    else:
        raw = np.asarray(_raw_scores(item, kept, embed_text), dtype=np.float64)
    return _break_ties(item, raw.copy())
