"""Visual-token compression: pure tensor functions behind one registry of named, budgeted methods.

Importable with torch alone: nothing here knows about video files, encoders or language models.
"""

from __future__ import annotations

# Importing the method modules registers them.
from vidpool.compress import (  # noqa: F401
    adaptive,
    flatten,
    progressive,
    prompt_guided,
    slowfast,
    spatial,
    spatiotemporal,
    spp,
    temporal_merge,
)
from vidpool.compress.api import compress, num_output_tokens, resolve
from vidpool.compress.budget import grid_for_budget, plane_for_budget
from vidpool.compress.module import TokenCompressor
from vidpool.compress.prompt_guided import prompt_scores
from vidpool.compress.registry import Method, Plan, get_method, list_methods, register
from vidpool.compress.result import Compressed

__all__ = [
    "Compressed",
    "Method",
    "Plan",
    "TokenCompressor",
    "compress",
    "get_method",
    "grid_for_budget",
    "list_methods",
    "num_output_tokens",
    "plane_for_budget",
    "prompt_scores",
    "register",
    "resolve",
]
