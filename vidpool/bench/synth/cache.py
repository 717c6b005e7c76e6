"""Encoded features of generated items, cached on disk: what the training scripts of the reader and the
trained poolings read, so each item is rendered and encoded once."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vidpool.bench.synth.tasks import DESIGN_VERSION, make_items, render_item

__all__ = ["item_features"]


def item_features(
    encoder: Any,
    family: str,
    count: int,
    seed: int,
    folder: Path,
    layers: Sequence[int] | None = None,
    batch: int = 256,
) -> tuple[list, list[torch.Tensor]]:
    """``(items, features)``: ``count`` items of ``family`` from ``seed`` and each one's patch features
    ``[T, h, w, C]`` (``layers``: ``[T, h, w, len(layers)·C]``, the layers concatenated) as float16 on the
    CPU, read from ``folder`` or encoded (``batch`` frames at a time) and written there atomically."""
    tag = "" if layers is None else "-layers" + "_".join(str(v) for v in layers)
    path = Path(folder) / f"features-v{DESIGN_VERSION}-{family}-s{seed}-n{count}{tag}.pt"
    items = make_items(family, count, seed=seed)
    if path.is_file():
        return items, torch.load(path, weights_only=True)
    started = time.perf_counter()
    feats = []
    for item in items:
        frames = torch.from_numpy(render_item(item))
        parts = [
            encoder.encode_frames(frames[i : i + batch], layers=layers).patches
            for i in range(0, len(frames), batch)
        ]
        feats.append(torch.cat(parts).to(torch.float16))
    tmp = path.with_suffix(".tmp")
    torch.save(feats, tmp)
    tmp.replace(path)
    print(
        f"encoded {family} (seed {seed}): {count} items in {time.perf_counter() - started:.0f} s", flush=True
    )
    return items, feats
