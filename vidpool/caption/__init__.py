"""Batch captioning: ``vidpool caption`` and :func:`caption_videos`, resumable, on one of three engines.

A run resolves its inputs to videos with stable ids (:mod:`~vidpool.caption.inputs`), decodes the next
videos while the model captions the current one (:mod:`~vidpool.caption.prefetch`), and appends one
JSONL record per video to a crash-safe journal (:mod:`~vidpool.caption.journal`) that a restarted run
resumes from. Engines: local, torchrun + accelerate (:mod:`~vidpool.caption.torchrun`) and Ray Data
(:mod:`~vidpool.caption.ray_engine`). Parquet output is written from the journal
(:mod:`~vidpool.caption.formats`). Names are imported on first use: the command's parser reads
:mod:`~vidpool.caption.fields` without loading torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "ENGINES": "fields",
    "FIELDS": "fields",
    "FORMATS": "fields",
    "VIDEO_EXTENSIONS": "inputs",
    "Inputs": "inputs",
    "VideoItem": "inputs",
    "resolve_inputs": "inputs",
    "scan_inputs": "inputs",
    "video_id": "inputs",
    "Journal": "journal",
    "merge_parts": "journal",
    "read_records": "journal",
    "Summary": "runner",
    "CaptionWorker": "worker",
    "caption_videos": "api",
    "write_parquet": "formats",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'vidpool.caption' has no attribute {name!r}")
    return getattr(importlib.import_module(f"vidpool.caption.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
