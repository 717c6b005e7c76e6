"""Tiny random Qwen2.5-VL and Qwen3-VL checkpoints, built offline from configs.

    tiny-qwen2.5-vl   Qwen2_5_VLForConditionalGeneration: windowed ViT (patch 14, 2x2 merger) + 2-layer LM, hidden 32
    tiny-qwen3-vl     Qwen3VLForConditionalGeneration: ViT (patch 16, 2x2 merger, DeepStack from both blocks) +
                      2-layer LM, hidden 32

Each folder is what ``save_pretrained`` of the model and of its processor write: weights, ``config.json``,
a byte-level tokenizer with the Qwen special tokens, the chat template and the image / video processor
configs (frames resized to multiples of 28 or 32 pixels; Qwen2.5-VL: 4 to 16 merged tokens a frame,
Qwen3-VL: at most 512 for the whole video, shared by its temporal patches, as its processor shares one).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["QWEN_SPECIALS", "QWEN_TEMPLATE", "qwen_model", "qwen_processor", "qwen_tokenizer"]

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
_VOCAB = 256 + len(QWEN_SPECIALS)


def _id(token: str) -> int:
    return 256 + QWEN_SPECIALS.index(token)


# Qwen2-VL's processor template (the one Qwen2.5-VL and Qwen3-VL ship), without tool calls.
QWEN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'video' %}{{ '<|vision_start|><|video_pad|><|vision_end|>' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_TEXT = {
    "vocab_size": _VOCAB,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "eos_token_id": _id("<|im_end|>"),
    "pad_token_id": _id("<|endoftext|>"),
    "bos_token_id": None,
    "tie_word_embeddings": True,
    "initializer_range": 0.5,
    # head_dim 8: rotary halves of 4 split over (time, height, width)
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]},
}
_IDS = {
    "image_token_id": _id("<|image_pad|>"),
    "video_token_id": _id("<|video_pad|>"),
    "vision_start_token_id": _id("<|vision_start|>"),
    "vision_end_token_id": _id("<|vision_end|>"),
}
# merged tokens per frame between MIN and MAX (a merged token covers factor x factor pixels)
_MIN_TOKENS, _MAX_TOKENS = 4, 16
_VIDEO_TOKENS = 512  # Qwen3-VL: merged tokens of a whole video at most


def qwen_tokenizer():
    """A byte-level tokenizer (every byte a token) with the Qwen special tokens and chat template."""
    from vidpool.models.builders import tiny_tokenizer

    return tiny_tokenizer(QWEN_SPECIALS, pad="<|endoftext|>", template=QWEN_TEMPLATE)


def qwen_model(kind: str, *, seed: int, vision: dict | None = None, text: dict | None = None):
    """An in-memory tiny ``Qwen2_5_VLForConditionalGeneration`` (``kind="qwen2_5_vl"``) or
    ``Qwen3VLForConditionalGeneration`` (``"qwen3_vl"``) with random weights; ``vision`` / ``text``
    override config fields."""
    import transformers

    text = {**_TEXT, **(text or {})}
    if kind == "qwen2_5_vl":
        vision = {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "tokens_per_second": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
            "out_hidden_size": text["hidden_size"],
            **(vision or {}),
        }
        config = transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **_IDS)
        model_cls = transformers.Qwen2_5_VLForConditionalGeneration
    elif kind == "qwen3_vl":
        text = {"head_dim": 8, **text}
        text["rope_parameters"] = {**text["rope_parameters"], "mrope_interleaved": True}
        vision = {
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 4,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 64,
            "deepstack_visual_indexes": [0, 1],
            "out_hidden_size": text["hidden_size"],
            **(vision or {}),
        }
        config = transformers.Qwen3VLConfig(text_config=text, vision_config=vision, **_IDS)
        model_cls = transformers.Qwen3VLForConditionalGeneration
    else:
        raise ValueError(f"unknown Qwen kind {kind!r}")
    config.tie_word_embeddings = True
    torch.manual_seed(seed)
    model = model_cls(config)
    model.generation_config.eos_token_id = text["eos_token_id"]
    model.generation_config.pad_token_id = text["pad_token_id"]
    return model


def qwen_processor(kind: str, tokenizer=None):
    """The transformers processor of a tiny Qwen checkpoint: its image and video processors (patch 14 or 16,
    2x2 merge, 2-frame temporal patch, the pixel ranges above) and the tokenizer."""
    import transformers

    patch = 14 if kind == "qwen2_5_vl" else 16
    factor = 2 * patch
    # Qwen2.5-VL's range is per frame; Qwen3-VL's is the whole video's, shared by its temporal patches
    most = _MAX_TOKENS if kind == "qwen2_5_vl" else _VIDEO_TOKENS
    size = {"shortest_edge": _MIN_TOKENS * factor * factor, "longest_edge": most * factor * factor}
    common = {"size": size, "patch_size": patch, "temporal_patch_size": 2, "merge_size": 2}
    if kind == "qwen2_5_vl":
        video = transformers.Qwen2VLVideoProcessor(**common)
        processor_cls = transformers.Qwen2_5_VLProcessor
    else:
        video = transformers.Qwen3VLVideoProcessor(**common, do_sample_frames=False)
        processor_cls = transformers.Qwen3VLProcessor
    image = transformers.Qwen2VLImageProcessor(**common)
    return processor_cls(
        image_processor=image,
        tokenizer=tokenizer or qwen_tokenizer(),
        video_processor=video,
        chat_template=QWEN_TEMPLATE,
    )


def _build(folder: Path, kind: str, seed: int) -> None:
    model = qwen_model(kind, seed=seed)
    model.save_pretrained(folder, safe_serialization=True)
    processor = qwen_processor(kind)
    processor.save_pretrained(folder)
    processor.tokenizer.save_pretrained(folder)


def build_tiny_qwen2_5_vl(folder: Path) -> None:
    _build(folder, "qwen2_5_vl", seed=7)


def build_tiny_qwen3_vl(folder: Path) -> None:
    _build(folder, "qwen3_vl", seed=8)
