"""Visual-token compression: pure tensor functions behind one registry of named, budgeted methods.

Importable with torch alone: nothing here knows about video files, encoders or language models.
"""

from __future__ import annotations

# Importing the method modules registers them.
from vidpool.compression import (  # noqa: F401
    adaptive,
    attsets,
    baselines,
    divprune,
    fastvid,
    flatten,
    multilayer,
    progressive,
    prompt_guided,
    slowfast,
    spatial,
    spatiotemporal,
    spp,
    temporal_merge,
    vidcom2,
)
from vidpool.compression.api import compress, num_output_tokens, resolve
from vidpool.compression.budget import grid_for_budget, plane_for_budget
from vidpool.compression.module import TokenCompressor
from vidpool.compression.prompt_guided import prompt_scores
from vidpool.compression.registry import Method, MethodPlan, get_method, list_methods, register
from vidpool.compression.result import Compressed, grid_positions, provenance_mean

__all__ = [
    "Compressed",
    "Method",
    "MethodPlan",
    "TokenCompressor",
    "compress",
    "get_method",
    "grid_for_budget",
    "grid_positions",
    "list_methods",
    "num_output_tokens",
    "plane_for_budget",
    "prompt_scores",
    "provenance_mean",
    "register",
    "resolve",
]
