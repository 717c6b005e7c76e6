"""vidpool: named, budgeted visual-token compression for video LLMs.

The compression library (``compress``, ``num_output_tokens``, ``list_methods``, ``prompt_scores``)
needs torch alone. The later pipeline stages are imported on first use so that ``import vidpool``
stays cheap and works without the optional extras.
"""

from __future__ import annotations

import importlib
from typing import Any

from vidpool._version import __version__
from vidpool.compression import (
    Compressed,
    TokenCompressor,
    compress,
    get_method,
    list_methods,
    num_output_tokens,
    prompt_scores,
    resolve,
)
from vidpool.errors import (
    BudgetError,
    CheckpointError,
    ContextLengthError,
    DecodeTimeoutError,
    EncoderError,
    InvalidArgumentError,
    MissingDependencyError,
    OutOfMemoryError,
    UnknownMethodError,
    VideoDecodeError,
    VideoError,
    VideoNotFoundError,
    VidpoolError,
)

# name -> module that defines it; imported lazily by __getattr__.
_LAZY = {
    "VideoReader": "vidpool.video",
    "VideoInfo": "vidpool.video",
    "Frames": "vidpool.video",
    "probe": "vidpool.video",
    "CLIPEncoder": "vidpool.encode",
    "FeatureCache": "vidpool.encode",
    "load_model": "vidpool.llm",
    "VideoLM": "vidpool.llm",
    # the pipeline's plan: importing vidpool.pipeline registers the model kinds the planner sizes
    "plan": "vidpool.pipeline",
    "Plan": "vidpool.schedule",
    "VideoChat": "vidpool.pipeline",
    "Captioner": "vidpool.pipeline",
}

__all__ = [
    "BudgetError",
    "CheckpointError",
    "Compressed",
    "ContextLengthError",
    "DecodeTimeoutError",
    "EncoderError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "OutOfMemoryError",
    "TokenCompressor",
    "UnknownMethodError",
    "VideoDecodeError",
    "VideoError",
    "VideoNotFoundError",
    "VidpoolError",
    "__version__",
    "compress",
    "get_method",
    "list_methods",
    "num_output_tokens",
    "prompt_scores",
    "resolve",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vidpool' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
