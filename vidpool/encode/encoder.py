"""``CLIPEncoder``: frames to CLIP patch tokens and prompts to text embeddings, on open_clip."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidpool.encode.batching import (
    activation_bytes_per_frame,
    batch_size_for,
    default_memory_budget,
    iter_batches,
)
from vidpool.encode.config import DEFAULT_MODEL, EncoderSpec, ResolvedConfig, encoder_spec, load_config
from vidpool.encode.preprocess import check_frames, preprocess_frames
from vidpool.encode.text import encode_prompts, make_tokenizer
from vidpool.encode.vision import block_index, check_vision_tower, project_to_joint, vision_tokens
from vidpool.errors import CheckpointError, EncoderError, InvalidArgumentError, require

__all__ = ["CLIPEncoder", "EncodedFrames"]

_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


@dataclass
class EncodedFrames:
    """CLIP features of ``T`` frames.

    Attributes:
        patches: ``[T, h, w, C]`` patch tokens of the encoder's ``layer`` (class token removed).
        joint: ``[T, h, w, D]`` the last block's patch tokens through ``ln_post`` and ``proj`` (CLIP's
            joint image-text space), or ``None`` when not asked for.
        cls: ``[T, C]`` class token of the encoder's ``layer``, or ``None`` when not asked for.
    """

    patches: torch.Tensor
    joint: torch.Tensor | None = None
    cls: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.patches.shape[0])

    def to_dict(self) -> dict[str, torch.Tensor]:
        """The tensors that are present, by field name (for :class:`vidpool.encode.FeatureCache`)."""
        fields = {"patches": self.patches, "joint": self.joint, "cls": self.cls}
        return {name: value for name, value in fields.items() if value is not None}

    @classmethod
    def from_dict(cls, tensors: dict[str, torch.Tensor]) -> EncodedFrames:
        """Inverse of :meth:`to_dict`."""
        if "patches" not in tensors:
            raise InvalidArgumentError("encoded frames need a 'patches' tensor")
        return cls(tensors["patches"], tensors.get("joint"), tensors.get("cls"))


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _param_fingerprint(model: torch.nn.Module) -> str:
    """A cheap hash of the weights (a few values of every tensor), for randomly initialised models."""
    digest = hashlib.sha256()
    for name, param in model.state_dict().items():
        head = param.detach().reshape(-1)[:16].to("cpu", torch.float32)
        digest.update(name.encode())
        digest.update(head.numpy().tobytes())
    return "random:" + digest.hexdigest()[:16]


def _build_model(cfg: ResolvedConfig) -> torch.nn.Module:
    """Instantiate an open_clip model from a config with random weights (nothing is downloaded)."""
    open_clip = require("open_clip", "clip", "the CLIP encoder")
    model_cfg = copy.deepcopy(cfg.model_cfg)
    text_cfg = model_cfg["text_cfg"]
    custom_text = model_cfg.pop("custom_text", False) or "hf_model_name" in text_cfg
    if "hf_model_name" in text_cfg:
        text_cfg["hf_model_pretrained"] = False
    if "multimodal_cfg" in model_cfg:
        raise EncoderError(f"{cfg.name!r} is a CoCa model; vidpool encodes with plain CLIP ViT models")
    model_cls = open_clip.CustomTextCLIP if custom_text else open_clip.CLIP
    try:
        return model_cls(**model_cfg)
    except Exception as exc:
        raise EncoderError(f"cannot build CLIP model {cfg.name!r} from its config: {exc}") from exc


def _load_weights(model: torch.nn.Module, path: Path, allow_pickle: bool) -> None:
    open_clip = require("open_clip", "clip", "the CLIP encoder")
    if path.suffix in _PICKLE_SUFFIXES and not allow_pickle:
        raise CheckpointError(
            f"{path} is a pickle checkpoint, which can run code when loaded: convert it to .safetensors "
            "or pass allow_pickle=True if you trust its source"
        )
    if path.suffix not in (".safetensors", *_PICKLE_SUFFIXES):
        raise CheckpointError(
            f"unsupported weights file {path}: use .safetensors (or .bin/.pt with allow_pickle)"
        )
    try:
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=not allow_pickle)
    except Exception as exc:
        raise CheckpointError(
            f"cannot load CLIP weights from {path}: {exc}. Check that the file matches the model config "
            "(e.g. ViT-L-14-336 for LLaVA's CLIP; OpenAI weights need the '-quickgelu' variant)"
        ) from exc


class CLIPEncoder:
    """A CLIP ViT that turns frames into patch tokens ``[T, h, w, C]`` and prompts into embeddings ``[B, D]``.

    Args:
        model: an open_clip model name (default ``ViT-L-14-336``, LLaVA's vision tower), the name of a
            config shipped with vidpool (``vidpool.encode.list_configs()``), a path to a JSON config, or
            a dict config.
        weights: a ``.safetensors`` file (``.bin``/``.pt`` only with ``allow_pickle=True``), an open_clip
            pretrained tag such as ``"openai"`` (downloads; needs a network), or ``None`` for random
            weights (tests).
        layer: which hidden state gives ``patches``, indexed like Hugging Face ``hidden_states``:
            ``-1`` the last block's output, ``-2`` (default, as LLaVA) the one before it.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
        dtype: weights and output dtype; ``None`` is float16 on CUDA (run under autocast) and float32
            elsewhere.
        memory_budget: bytes of activation memory a batch may use; ``None`` is 70% of free CUDA
            memory or 1 GiB on CPU.
        allow_pickle: allow loading pickle checkpoints (``.bin``/``.pt``), which can run code.
    """

    def __init__(
        self,
        model: str | Path | dict[str, Any] = DEFAULT_MODEL,
        weights: str | Path | None = None,
        *,
        layer: int = -2,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | None = None,
        memory_budget: int | None = None,
        allow_pickle: bool = False,
    ) -> None:
        self._config = load_config(model)
        self.spec: EncoderSpec = encoder_spec(self._config)
        self._block = block_index(layer, self.spec.layers)
        self.layer = layer
        self._device = torch.device(device)
        if self._device.type == "cuda" and not torch.cuda.is_available():
            raise EncoderError("device='cuda' was asked for but CUDA is not available: use device='cpu'")
        if dtype is None:
            dtype = torch.float16 if self._device.type == "cuda" else torch.float32
        if dtype not in _DTYPES:
            raise InvalidArgumentError(f"dtype must be one of {_DTYPES}, got {dtype}")
        self._dtype = dtype
        if memory_budget is not None and memory_budget <= 0:
            raise InvalidArgumentError(
                f"memory_budget must be a positive number of bytes, got {memory_budget}"
            )
        self.memory_budget = memory_budget

        self.model, preprocess_overrides, weights_id = self._create(model, weights, allow_pickle)
        check_vision_tower(self.model.visual)
        self.model.eval().requires_grad_(False)
        self.model.to(device=self._device, dtype=self._dtype)
        if self._device.type == "cuda":
            self.model.visual.conv1.to(memory_format=torch.channels_last)
        self.preprocess_cfg = self.spec.preprocess({**self._config.preprocess_cfg, **preprocess_overrides})
        self._tokenizer: Any = None
        self.last_batch_size = 0
        self.identity = self._make_identity(weights_id)

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: dict[str, Any] | str | Path, **kwargs: Any) -> CLIPEncoder:
        """Build from a config dict or JSON path (random weights unless ``weights=`` is given)."""
        return cls(model=cfg, **kwargs)

    def _create(
        self, model: Any, weights: str | Path | None, allow_pickle: bool
    ) -> tuple[torch.nn.Module, dict[str, Any], str]:
        if weights is None:
            built = _build_model(self._config)
            return built, {}, _param_fingerprint(built)
        path = Path(weights)
        if path.is_file():
            built = _build_model(self._config)
            _load_weights(built, path, allow_pickle)
            return built, {}, _file_identity(path)
        if (
            isinstance(weights, str)
            and isinstance(model, str)
            and os.sep not in weights
            and "." not in weights
        ):
            return self._create_pretrained(model, weights)
        raise CheckpointError(
            f"weights file not found: {weights}; pass a local .safetensors path, an open_clip pretrained tag "
            "with a model name, or None for random weights"
        )

    def _create_pretrained(self, name: str, tag: str) -> tuple[torch.nn.Module, dict[str, Any], str]:
        open_clip = require("open_clip", "clip", "the CLIP encoder")
        try:
            built = open_clip.create_model(name, pretrained=tag, device="cpu")
        except Exception as exc:
            raise EncoderError(
                f"cannot fetch open_clip weights {name!r}/{tag!r} ({exc}); this needs a network and a tag from "
                f"open_clip.list_pretrained_tags_by_model({name!r}), or pass weights=<local .safetensors>"
            ) from exc
        overrides = dict(getattr(built.visual, "preprocess_cfg", {}) or {})
        overrides.pop("size", None)
        return built, overrides, f"open_clip:{name}:{tag}"

    def _make_identity(self, weights_id: str) -> str:
        payload = {
            "config": self._config.model_cfg,
            "preprocess": self.preprocess_cfg,
            "weights": weights_id,
            "block": self._block,
            "dtype": str(self._dtype),
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self._config.name}-{digest[:16]}"

    # -- metadata -------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    @property
    def grid(self) -> tuple[int, int]:
        """Patch grid ``(h, w)`` of one frame (24 x 24 for ViT-L-14-336)."""
        return self.spec.grid

    @property
    def width(self) -> int:
        """Channels C of ``patches`` (1024 for ViT-L-14-336)."""
        return self.spec.width

    @property
    def embed_dim(self) -> int:
        """Size D of the joint image-text space (768 for ViT-L-14-336)."""
        return self.spec.embed_dim

    @property
    def image_size(self) -> int:
        """Side of the square input image in pixels (336 for ViT-L-14-336)."""
        return self.spec.image_size[0]

    @property
    def logit_scale(self) -> float:
        """CLIP's learned temperature, exponentiated (100.0 for trained CLIP models)."""
        return float(self.model.logit_scale.detach().float().exp().reshape(-1)[0])

    @property
    def param_bytes(self) -> int:
        """Bytes taken by the weights and buffers on the device."""
        tensors = [*self.model.parameters(), *self.model.buffers()]
        return int(sum(t.numel() * t.element_size() for t in tensors))

    def activation_bytes_per_frame(
        self, frame_hw: tuple[int, int] | None = None, *, joint: bool = True
    ) -> int:
        """Peak memory each frame of a batch adds (bytes) for decoded frames of ``frame_hw``
        (default ``DEFAULT_FRAME_HW``, 720p).

        The formula is :func:`vidpool.encode.memory.vit_activation_bytes_per_frame` over this model's
        config and device, the same one ``vidpool.plan`` uses (measured: README, "Encoding frames").
        """
        return activation_bytes_per_frame(
            self.spec,
            self._dtype,
            frame_hw=frame_hw,
            joint=joint,
            block=self._block,
            device_type=self._device.type,
        )

    def batch_size_for(self, memory_bytes: int, frame_hw: tuple[int, int] | None = None) -> int:
        """Frames per batch that fit in ``memory_bytes`` of activation memory (at least 1)."""
        return batch_size_for(memory_bytes, self.activation_bytes_per_frame(frame_hw))

    # -- encoding -------------------------------------------------------------------------------

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self._device.type == "cuda" and self._dtype != torch.float32:
            return torch.autocast("cuda", dtype=self._dtype)
        return contextlib.nullcontext()

    def encode_frames(
        self,
        frames: torch.Tensor,
        *,
        joint: bool = False,
        cls: bool = False,
        out_device: str | torch.device | None = None,
        layers: Sequence[int] | None = None,
    ) -> EncodedFrames:
        """Encode frames in memory-budgeted batches.

        Args:
            frames: uint8 ``[T, H, W, 3]`` RGB frames of any size (resized and cropped as the model's
                own open_clip transform does).
            joint: also return the joint-space patch embeddings (for ``vidpool.prompt_scores``).
            cls: also return the class token of ``layer``.
            out_device: where the results go (default: the encoder's device); ``"cpu"`` keeps long
                videos off the GPU.
            layers: hidden states (indexed as ``layer``) whose patch tokens ``patches`` concatenates
                along channels, in this order: ``[T, h, w, len(layers)·C]`` (the input of the
                ``multilayer`` compression method); ``None`` is the encoder's ``layer`` alone.

        Returns:
            :class:`EncodedFrames` with ``patches [T, h, w, C]``, ``joint [T, h, w, D]`` and
            ``cls [T, C]`` in the encoder's dtype.
        """
        frames = check_frames(frames)
        total = int(frames.shape[0])
        (gh, gw), channels, dim = self.grid, self.width, self.embed_dim
        blocks = None if layers is None else [block_index(v, self.spec.layers) for v in layers]
        if blocks is not None:
            if not blocks:
                raise InvalidArgumentError("layers must name at least one layer, e.g. layers=(-3, -2, -1)")
            channels *= len(blocks)
        target = torch.device(out_device) if out_device is not None else self._device
        patches = torch.empty((total, gh, gw, channels), dtype=self._dtype, device=target)
        joint_out = torch.empty((total, gh, gw, dim), dtype=self._dtype, device=target) if joint else None
        cls_out = torch.empty((total, self.width), dtype=self._dtype, device=target) if cls else None
        budget = self.memory_budget or default_memory_budget(self._device)
        per_frame = self.activation_bytes_per_frame(tuple(frames.shape[1:3]), joint=joint)
        batch = batch_size_for(budget, per_frame)

        visual = self.model.visual

        def run(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            pixels = preprocess_frames(
                frames[start:stop], self.preprocess_cfg, device=self._device, dtype=self._dtype
            )
            with self._autocast():
                tokens, cls_token, last = vision_tokens(
                    visual, pixels, block=self._block, final=joint, blocks=blocks
                )
                projected = project_to_joint(visual, last) if joint else None
            return tokens, cls_token, projected

        with torch.inference_mode():
            for start, stop, result in iter_batches(run, total, batch):
                tokens, cls_token, projected = result
                count = stop - start
                patches[start:stop] = tokens.reshape(count, gh, gw, channels).to(target, self._dtype)
                if joint_out is not None:
                    joint_out[start:stop] = projected.reshape(count, gh, gw, dim).to(target, self._dtype)
                if cls_out is not None:
                    cls_out[start:stop] = cls_token.to(target, self._dtype)
                self.last_batch_size = count if start == 0 else max(self.last_batch_size, count)
        return EncodedFrames(patches, joint_out, cls_out)

    def encode_text(self, prompts: Sequence[str]) -> torch.Tensor:
        """Embed prompts: ``B`` strings -> ``[B, D]`` joint-space embeddings (not normalised)."""
        if self._tokenizer is None:
            self._tokenizer = make_tokenizer(self._config.model_cfg["text_cfg"], self.spec.context_length)
        with torch.inference_mode(), self._autocast():
            return encode_prompts(self.model, self._tokenizer, prompts, self._device).to(self._dtype)

    def __repr__(self) -> str:
        return (
            f"CLIPEncoder({self._config.name!r}, layer={self.layer}, grid={self.grid}, width={self.width}, "
            f"embed_dim={self.embed_dim}, device={self._device}, dtype={self._dtype})"
        )
