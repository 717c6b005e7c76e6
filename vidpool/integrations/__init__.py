"""Adapters to other ecosystems; each is imported on first use so that its dependencies stay optional."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["LlavaVideoLM", "QwenVideoLM"]

_LAZY = {
    "LlavaVideoLM": "vidpool.integrations.transformers_llava",
    "QwenVideoLM": "vidpool.integrations.transformers_qwen",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vidpool.integrations' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
