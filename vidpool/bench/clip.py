"""The CLIP the fidelity benchmark scores with: the synthetic world's own, or any open_clip ViT a user has.

The world's CLIP (``vidpool-synth-clip``: a ViT at 64 px with an 8 x 8 patch grid) ships in
``vidpool/models/synth/`` (also reachable as ``checkpoints/vidpool-synth``), where
``scripts/train_synth_clip.py`` writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpool.errors import CheckpointError

__all__ = [
    "RANDOM_WEIGHTS",
    "SYNTH_CONFIG",
    "SYNTH_WEIGHTS",
    "TextEmbeddings",
    "clip_zero_shot",
    "load_clip",
    "resolve_clip",
    "synth_folders",
]

SYNTH_CONFIG = "vidpool-synth-clip.json"
SYNTH_WEIGHTS = "clip.safetensors"
#: ``--weights random``: an untrained CLIP, for smoke tests of the benchmark itself
RANDOM_WEIGHTS = "random"
#: held-out stills for the zero-shot check (training draws its stills from seeds below 10,000,000)
ZERO_SHOT_SEED = 10_000_019


def synth_folders() -> list[Path]:
    """Where the world's CLIP config and weights are looked for, in order."""
    from vidpool.models.builders import SYNTH_DIR

    return [SYNTH_DIR]


def _find(filename: str) -> Path | None:
    return next((f / filename for f in synth_folders() if (f / filename).is_file()), None)


def _train_hint() -> str:
    return (
        "train it with `python scripts/train_synth_clip.py` (a repository checkout, CPU, under an hour; it "
        f"writes vidpool/models/synth/{SYNTH_WEIGHTS}), or pass --weights PATH, or --weights "
        f"{RANDOM_WEIGHTS} for a smoke test whose accuracies mean nothing"
    )


def resolve_clip(clip: str | None, weights: str | None) -> tuple[str, str | None]:
    """``(config or model name, weights path or None for random)`` for ``--clip`` / ``--weights``.

    Raises :class:`CheckpointError` saying how to get the weights when none are found.
    """
    if clip is None:
        config = _find(SYNTH_CONFIG)
        if config is None:
            where = ", ".join(str(f) for f in synth_folders())
            raise CheckpointError(f"the synthetic world's CLIP config {SYNTH_CONFIG} is in none of {where}")
        clip = str(config)
    if weights == RANDOM_WEIGHTS:
        return clip, None
    if weights is None:
        if Path(clip).name != SYNTH_CONFIG:
            raise CheckpointError(f"--clip {clip} needs --weights PATH (a .safetensors file of that model)")
        found = _find(SYNTH_WEIGHTS)
        if found is None:
            where = ", ".join(str(f) for f in synth_folders())
            raise CheckpointError(
                f"the synthetic world's CLIP weights are in none of {where}: {_train_hint()}"
            )
        return clip, str(found)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise CheckpointError(f"CLIP weights not found: {path}; {_train_hint()}")
    return clip, str(path)


def load_clip(clip: str | None, weights: str | None, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """The encoder (features at layer -2, as LLaVA) and a description of it for the results."""
    from vidpool.encode import CLIPEncoder

    model, path = resolve_clip(clip, weights)
    encoder = CLIPEncoder(model, path, layer=-2, device=device)
    about = {
        "model": model,
        "weights": path or RANDOM_WEIGHTS,
        "grid": list(encoder.grid),
        "width": encoder.width,
        "embed_dim": encoder.embed_dim,
        "image_size": encoder.image_size,
        "logit_scale": round(encoder.logit_scale, 3),
    }
    return encoder, about


class TextEmbeddings:
    """``encoder.encode_text`` with a cache: options and questions repeat across items and methods.

    Calling it with ``K`` strings gives float32 ``[K, D]`` on the CPU.
    """

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self._rows: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._rows))
        if missing:
            emb = self.encoder.encode_text(missing).float().cpu()
            self._rows.update(zip(missing, emb))
        return torch.stack([self._rows[t] for t in texts])


def clip_zero_shot(encoder: Any, text: TextEmbeddings, count: int = 500) -> dict[str, float]:
    """Zero-shot colour and shape accuracy of ``encoder`` on held-out stills of the world."""
    from vidpool.bench.synth.stills import random_stills
    from vidpool.bench.synth.zeroshot import zero_shot_accuracy
    from vidpool.encode import preprocess_frames

    frames, stills = random_stills(ZERO_SHOT_SEED, count, side=encoder.image_size)

    def images(x: np.ndarray) -> torch.Tensor:
        pixels = preprocess_frames(
            torch.from_numpy(x), encoder.preprocess_cfg, device=encoder.device, dtype=encoder.dtype
        )
        with torch.inference_mode():
            return encoder.model.encode_image(pixels).float().cpu()

    return zero_shot_accuracy(images, text, frames, stills)
