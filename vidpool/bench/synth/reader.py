"""The trained reader: a small model that answers a synthetic item from the visual tokens a method kept.

It reads what a video LM would read — the method's output tokens (the encoder's patch features,
compressed) — together with each token's provenance from :class:`vidpool.Compressed`: the first and
last frame of the positions that feed it and their weighted grid centre. It is trained once, on
training seeds with every token, and then held fixed, so its accuracy on a method's tokens measures
what that method keeps for a fixed reader, as a training-free method faces a fixed video LLM.

How it reads (``d`` the model width, ``B`` time bins over the video):

1. each token: its features (layer-normed, projected) plus a small MLP of ``(first, last, y, x)``
   (time as a fraction of the video, position as a fraction of the side);
2. the question and each option: the mean of learned word embeddings (a fixed vocabulary of the
   world's words; unknown words are ignored);
3. the question modulates every token (FiLM); each of ``heads`` relevance heads pools, per time bin,
   the tokens whose span overlaps the bin (softmax over them), keeping the bin's weighted centre and
   its best relevance, so a sequence of ``B`` bins keeps *when* and *where* things are;
4. a small transformer reads the question and the bins; each option scores from the result, plus
   the best match of the option with any single token (what a one-token object needs).

Everything here is torch only. :func:`reader_input` turns a ``Compressed`` into the reader's input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vidpool.errors import CheckpointError, InvalidArgumentError

__all__ = [
    "READER_CONFIG",
    "READER_WEIGHTS",
    "Reader",
    "ReaderConfig",
    "ReaderInput",
    "collate",
    "full_input",
    "load_reader",
    "reader_input",
    "save_reader",
    "words",
]

READER_CONFIG = "reader.json"
READER_WEIGHTS = "reader.safetensors"


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters and digits), in order."""
    return re.findall(r"[a-z0-9]+", text.lower())


@dataclass(frozen=True)
class ReaderConfig:
    """The reader's shape and vocabulary (saved beside its weights as ``reader.json``)."""

    feature_dim: int
    vocabulary: tuple[str, ...]
    width: int = 96
    heads: int = 4
    bins: int = 32
    layers: int = 2

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "vocabulary": list(self.vocabulary)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ReaderConfig:
        raw = json.loads(text)
        return cls(**{**raw, "vocabulary": tuple(raw["vocabulary"])})


@dataclass
class ReaderInput:
    """One video's tokens for the reader.

    Attributes:
        tokens: ``[N, C]`` visual tokens (a method's output tokens).
        place: float ``[N, 4]``: first and last frame as fractions of the video (``first / T`` and
            ``(last + 1) / T``), then the centre ``(y, x)`` as fractions of the side.
    """

    tokens: torch.Tensor
    place: torch.Tensor


def reader_input(compressed: Any, features: torch.Tensor) -> ReaderInput:
    """The reader's input from one video's :class:`vidpool.Compressed` and its features ``[T, h, w, C]``.

    Tokens are the method's own output tokens; their provenance (span, centre) comes from ``assign``
    and ``weight`` (:func:`vidpool.bench.synth.readout.kept_tokens`). Output tokens no position records
    are left out, as the retrieval readout leaves them out. ``compressed`` may be ``None`` (no video):
    the input is then empty.
    """
    from vidpool.bench.synth.readout import kept_tokens

    t, h, w, c = features.shape
    if compressed is None:
        return ReaderInput(torch.zeros(0, c), torch.zeros(0, 4))
    kept = kept_tokens(compressed, features)
    tokens = compressed.tokens
    if tokens.dim() == 3:
        tokens = tokens[0]
    first, last = kept.span[:, 0].float(), kept.span[:, 1].float()
    place = torch.stack([first / t, (last + 1) / t, kept.centre[:, 0] / h, kept.centre[:, 1] / w], dim=1)
    return ReaderInput(tokens[kept.index].float().cpu(), place)


def full_input(features: torch.Tensor) -> ReaderInput:
    """Every token of ``features [T, h, w, C]`` as the reader's input (what it is trained on)."""
    t, h, w, c = features.shape
    tt, yy, xx = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    place = torch.stack([tt / t, (tt + 1) / t, (yy + 0.5) / h, (xx + 0.5) / w], dim=-1)
    return ReaderInput(features.reshape(-1, c).float(), place.reshape(-1, 4).float())


def collate(
    inputs: Sequence[ReaderInput],
    questions: Sequence[str],
    options: Sequence[Sequence[str]],
    vocabulary: Sequence[str],
) -> dict[str, torch.Tensor]:
    """A padded batch: ``tokens [B, N, C]``, ``place [B, N, 4]``, ``mask [B, N]`` (real tokens),
    ``question [B, L]`` and ``options [B, 4, L']`` word ids (0 pads; unknown words are dropped)."""
    index = {w: i + 1 for i, w in enumerate(vocabulary)}

    def ids(texts: Sequence[str]) -> torch.Tensor:
        rows = [[index[w] for w in words(t) if w in index] for t in texts]
        out = torch.zeros(len(rows), max(1, *(len(r) for r in rows)), dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return out

    n = max(1, *(len(x.tokens) for x in inputs))
    c = inputs[0].tokens.shape[-1]
    tokens = torch.zeros(len(inputs), n, c)
    place = torch.zeros(len(inputs), n, 4)
    mask = torch.zeros(len(inputs), n, dtype=torch.bool)
    for i, x in enumerate(inputs):
        tokens[i, : len(x.tokens)] = x.tokens
        place[i, : len(x.tokens)] = x.place
        mask[i, : len(x.tokens)] = True
    opts = ids([o for row in options for o in row]).reshape(len(options), len(options[0]), -1)
    return {"tokens": tokens, "place": place, "mask": mask, "question": ids(questions), "options": opts}


class Reader(nn.Module):
    """Scores the options of a batch of questions from visual tokens (see the module notes).

    ``forward(tokens [B, N, C], place [B, N, 4], mask [B, N], question [B, L], options [B, K, L'])``
    returns option scores ``[B, K]`` (logits; the highest is the answer).
    """

    def __init__(self, config: ReaderConfig) -> None:
        super().__init__()
        self.config = config
        d, heads = config.width, config.heads
        self.words = nn.Embedding(len(config.vocabulary) + 1, d, padding_idx=0)
        self.feature = nn.Sequential(nn.LayerNorm(config.feature_dim), nn.Linear(config.feature_dim, d))
        self.place = nn.Sequential(nn.Linear(4 * 8, d), nn.GELU(), nn.Linear(d, d))
        self.film = nn.Linear(d, 2 * d)
        self.token_mlp = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.relevance = nn.Linear(d, heads)
        self.value = nn.Linear(d, d)
        self.bin_in = nn.Linear(d + heads * 3, d)
        self.bin_pos = nn.Parameter(torch.zeros(config.bins, d))
        self.empty = nn.Parameter(torch.zeros(d))
        layer = nn.TransformerEncoderLayer(d, 4, 2 * d, dropout=0.0, batch_first=True, norm_first=True)
        self.mixer = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.out_norm = nn.LayerNorm(d)
        self.score = nn.Sequential(nn.Linear(3 * d, d), nn.GELU(), nn.Linear(d, 1))
        self.match = nn.Linear(d, d)
        nn.init.normal_(self.bin_pos, std=0.02)

    def _bag(self, ids: torch.Tensor) -> torch.Tensor:
        """``[..., L]`` word ids -> ``[..., d]`` mean word embedding (pads excluded)."""
        count = (ids > 0).sum(-1, keepdim=True).clamp(min=1)
        return self.words(ids).sum(-2) / count

    @staticmethod
    def _fourier(place: torch.Tensor) -> torch.Tensor:
        """``[..., 4]`` fractions -> ``[..., 32]`` sines and cosines at four frequencies."""
        freqs = place.new_tensor([1.0, 2.0, 4.0, 8.0]) * math.pi
        angles = place[..., None] * freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1).flatten(-2)

    def forward(
        self,
        tokens: torch.Tensor,
        place: torch.Tensor,
        mask: torch.Tensor,
        question: torch.Tensor,
        options: torch.Tensor,
    ) -> torch.Tensor:
        cfg = self.config
        b, n, _ = tokens.shape
        q = self._bag(question)  # [B, d]
        opts = self._bag(options)  # [B, K, d]
        e = self.feature(tokens) + self.place(self._fourier(place))  # [B, N, d]
        gamma, beta = self.film(q).chunk(2, dim=-1)
        h = e + self.token_mlp(e * (1 + gamma[:, None]) + beta[:, None])  # [B, N, d]
        rel = self.relevance(h)  # [B, N, H]

        # time bins: token n belongs to bin j when its span [first, last) overlaps it
        edges = torch.arange(cfg.bins + 1, device=tokens.device, dtype=place.dtype) / cfg.bins
        inside = (place[..., 0:1] < edges[None, None, 1:]) & (place[..., 1:2] > edges[None, None, :-1])
        inside = inside & mask[..., None]  # [B, N, bins]
        neg = torch.finfo(rel.dtype).min
        logits = rel[:, :, None, :].expand(b, n, cfg.bins, cfg.heads)
        logits = logits.masked_fill(~inside[..., None], neg)
        attn = logits.softmax(dim=1) * inside[..., None]  # [B, N, bins, H]
        v = self.value(h)  # [B, N, d]
        pooled = torch.einsum("bnjh,bnd->bjd", attn, v) / cfg.heads  # [B, bins, d]
        centre = torch.einsum("bnjh,bnc->bjhc", attn, place[..., 2:4]).flatten(2)  # [B, bins, 2H]
        best = logits.amax(dim=1)  # [B, bins, H]
        present = inside.any(dim=1)  # [B, bins]
        best = torch.where(present[..., None], best, torch.zeros_like(best))
        bins = self.bin_in(torch.cat([pooled, centre, best], dim=-1))
        bins = torch.where(present[..., None], bins, self.empty.expand_as(bins)) + self.bin_pos
        seq = self.mixer(torch.cat([q[:, None], bins], dim=1))
        g = self.out_norm(seq[:, 0])  # [B, d]
        gk = g[:, None].expand_as(opts)
        scores = self.score(torch.cat([gk, opts, gk * opts], dim=-1)).squeeze(-1)  # [B, K]
        sim = torch.einsum("bnd,bkd->bkn", self.match(h), opts) / math.sqrt(cfg.width)
        sim = sim.masked_fill(~mask[:, None, :], neg)
        top = sim.amax(dim=-1)
        return scores + torch.where(mask.any(dim=1, keepdim=True), top, torch.zeros_like(top))

    def answer(
        self, inputs: Sequence[ReaderInput], questions: Sequence[str], options: Sequence[Sequence[str]]
    ) -> torch.Tensor:
        """Option scores ``[B, K]`` for a batch of inputs, questions and their options (no gradients)."""
        batch = collate(inputs, questions, options, self.config.vocabulary)
        with torch.inference_mode():
            return self(**batch)


def save_reader(reader: Reader, folder: str | Path) -> None:
    """Write ``reader.json`` and float16 ``reader.safetensors`` into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / READER_CONFIG).write_text(reader.config.to_json())
    weights = {k: v.detach().to(torch.float16).contiguous() for k, v in reader.state_dict().items()}
    save_file(weights, str(folder / READER_WEIGHTS), metadata={"format": "pt"})


def load_reader(folder: str | Path | None = None) -> Reader:
    """The reader saved in ``folder`` (default: the shipped one, beside the world's CLIP), in float32."""
    from safetensors.torch import load_file

    if folder is None:
        from vidpool.models.builders import SYNTH_DIR

        folder = SYNTH_DIR
    folder = Path(folder)
    config, weights = folder / READER_CONFIG, folder / READER_WEIGHTS
    if not config.is_file() or not weights.is_file():
        raise CheckpointError(
            f"no trained reader in {folder} ({READER_CONFIG}, {READER_WEIGHTS}): train one with "
            "`python scripts/train_synth_reader.py` from a repository checkout, or score with --scorer rules"
        )
    reader = Reader(ReaderConfig.from_json(config.read_text()))
    state = {k: v.float() for k, v in load_file(str(weights)).items()}
    missing = reader.load_state_dict(state, strict=False)
    if missing.missing_keys or missing.unexpected_keys:
        raise CheckpointError(f"{weights} does not match {config}: {missing}")
    return reader.eval()


def check_options(options: Sequence[str]) -> None:
    """Refuse fewer than two options with a message that says what to pass."""
    if len(options) < 2:
        raise InvalidArgumentError(f"a question needs at least two options, got {list(options)}")
