"""Frames to CLIP patch tokens, prompts to CLIP text embeddings, and a cache of encoded videos.

>>> enc = CLIPEncoder("ViT-L-14-336", "clip-vit-l-14-336.safetensors")      # doctest: +SKIP
>>> out = enc.encode_frames(frames, joint=True)                               # doctest: +SKIP
>>> out.patches.shape, out.joint.shape                     # [T, 24, 24, 1024], [T, 24, 24, 768]  # doctest: +SKIP
"""

from __future__ import annotations

from vidpool.encode.cache import FeatureCache, video_identity
from vidpool.encode.config import DEFAULT_MODEL, EncoderSpec, encoder_spec, list_configs, load_config
from vidpool.encode.encoder import CLIPEncoder, EncodedFrames
from vidpool.encode.preprocess import preprocess_frames

__all__ = [
    "DEFAULT_MODEL",
    "CLIPEncoder",
    "EncodedFrames",
    "EncoderSpec",
    "FeatureCache",
    "encoder_spec",
    "list_configs",
    "load_config",
    "preprocess_frames",
    "video_identity",
]
