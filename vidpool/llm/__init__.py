"""Language models over compressed visual tokens.

>>> from vidpool.llm import load_model                                          # doctest: +SKIP
>>> model = load_model("checkpoints/tiny-native")                               # doctest: +SKIP
>>> feats = model.encode_patches(frames)           # [T, h, w, C]               # doctest: +SKIP
>>> tokens = model.visual_tokens(feats)            # [N, hidden]                # doctest: +SKIP
>>> print(model.generate(tokens, "What happens?", timestamps=[0.0, 2.0]))      # doctest: +SKIP

Two kinds share the :class:`VideoLM` interface: native checkpoints (open_clip encoder + projector +
any causal LM, :mod:`vidpool.llm.native`) and transformers LLaVA-OneVision / LLaVA-NeXT-Video
checkpoints (:mod:`vidpool.integrations.transformers_llava`). Kinds are registered by name
(:mod:`vidpool.llm.kinds`); what the planner and the pipeline use of a model is the typed protocol
:class:`VideoModel`.
"""

from __future__ import annotations

from vidpool.llm.base import VideoLM, VisualTokens
from vidpool.llm.config import CONFIG_NAME, ModelConfig
from vidpool.llm.kinds import ModelKind, get_kind, list_kinds, register_kind
from vidpool.llm.loading import LoadOptions, detect_kind, load_model
from vidpool.llm.projector import build_projector, list_projectors
from vidpool.llm.prompt import build_messages, describe_frames
from vidpool.llm.protocol import VideoModel

__all__ = [
    "CONFIG_NAME",
    "LoadOptions",
    "ModelConfig",
    "ModelKind",
    "VideoLM",
    "VideoModel",
    "VisualTokens",
    "build_messages",
    "build_projector",
    "describe_frames",
    "detect_kind",
    "get_kind",
    "list_kinds",
    "list_projectors",
    "load_model",
    "register_kind",
]
