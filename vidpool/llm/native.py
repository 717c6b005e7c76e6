"""The native video LM: an open_clip vision encoder, a projector and any transformers causal LM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vidpool.errors import CheckpointError, require
from vidpool.llm.base import VideoLM, as_frames_tensor, module_param_bytes
from vidpool.llm.config import ModelConfig, resolve_path
from vidpool.llm.loading import load_causal_lm, resolve_dtype
from vidpool.llm.projector import build_projector

__all__ = ["PROJECTOR_FILE", "NativeVideoLM"]

PROJECTOR_FILE = "projector.safetensors"
PICKLE_PROJECTOR_FILE = "projector.bin"


def _projector_state(folder: Path, allow_pickle: bool, safetensors_torch: Any) -> tuple[dict, Path]:
    """The projector's state dict: from safetensors, or from ``projector.bin`` only with ``allow_pickle``."""
    safe = folder / PROJECTOR_FILE
    if safe.is_file():
        return safetensors_torch.load_file(str(safe)), safe
    pickled = folder / PICKLE_PROJECTOR_FILE
    if pickled.is_file():
        if not allow_pickle:
            raise CheckpointError(
                f"{pickled} is a pickle file, which can run code when loaded: convert it to {PROJECTOR_FILE}, "
                "or pass allow_pickle=True if you trust the source"
            )
        return torch.load(pickled, map_location="cpu", weights_only=True), pickled
    raise CheckpointError(f"{safe} not found: a native checkpoint needs its projector weights")


class NativeVideoLM(VideoLM):
    """CLIP patch features -> (compress | project, in the configured order) -> causal LM.

    Args:
        config: the model config (``kind == "native"``).
        encoder: a ``vidpool.encode.CLIPEncoder``.
        projector: module mapping ``[..., C]`` to ``[..., hidden]``.
        lm: a transformers causal LM.
        tokenizer: its tokenizer (its chat template formats the prompt).
    """

    kind = "native"

    def __init__(
        self, config: ModelConfig, encoder: Any, projector: torch.nn.Module, lm: Any, tokenizer: Any
    ):
        self.config = config
        self.encoder = encoder
        self.projector = projector.eval()
        self.lm = lm.eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str | None = None,
        device_map: Any = None,
        max_memory: dict[Any, Any] | None = None,
        attn_implementation: str | None = None,
        allow_pickle: bool = False,
        trust_remote_code: bool = False,
    ) -> NativeVideoLM:
        """Assemble a native model from a checkpoint folder (``vidpool.json`` + ``projector.safetensors``)."""
        from vidpool.encode import CLIPEncoder

        safetensors_torch = require("safetensors.torch", "llm", "Loading projector weights")
        folder = Path(path)
        config = ModelConfig.load(folder)
        # Read the small projector first so that a refused or missing file fails before the LM loads.
        state, weights_file = _projector_state(folder, allow_pickle, safetensors_torch)
        dtype = resolve_dtype(dtype, device_map or device)
        lm_spec = dict(config.lm)
        lm_spec["path"] = resolve_path(folder, lm_spec.get("path"))
        for key in ("tokenizer", "config"):
            lm_spec[key] = resolve_path(folder, lm_spec.get(key))
        lm, tokenizer = load_causal_lm(
            lm_spec,
            device=device,
            dtype=dtype,
            device_map=device_map,
            max_memory=max_memory,
            attn_implementation=attn_implementation,
            allow_pickle=allow_pickle,
            trust_remote_code=trust_remote_code,
        )
        # With an accelerate device map the vision side goes where the LM's embeddings went.
        vision_device = (
            lm.get_input_embeddings().weight.device if device_map is not None else torch.device(device)
        )
        spec = dict(config.encoder)
        model = spec.pop("model", None)
        if model is None:
            raise CheckpointError(
                f"{folder}/vidpool.json: encoder needs a 'model' (an open_clip name or config)"
            )
        if isinstance(model, str):
            model = resolve_path(folder, model)
        weights = resolve_path(folder, spec.pop("weights", None))
        encoder = CLIPEncoder(
            model,
            weights,
            layer=int(spec.pop("layer", -2)),
            device=vision_device,
            dtype=dtype,
            allow_pickle=allow_pickle,
            **spec,
        )
        hidden = int(lm.config.get_text_config().hidden_size)
        width = config.vision_width or encoder.width
        projector = build_projector(config.projector, width, hidden)
        try:
            projector.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{weights_file} does not fit a {config.projector!r} projector {width} -> {hidden}: {exc}"
            ) from exc
        projector.to(device=vision_device, dtype=dtype)
        model = cls(config, encoder, projector, lm, tokenizer)
        model.name = folder.resolve().name
        return model

    # -- vision ---------------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.encoder.grid)

    def encode_frames(self, frames: Any) -> torch.Tensor:
        """CLIP patch features ``[T, h, w, C]`` of the encoder's layer, before projection."""
        return self.encoder.encode_frames(as_frames_tensor(frames)).patches

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """CLIP text embedding ``[D]`` of ``prompt`` (joint space, not normalised)."""
        return self.encoder.encode_text([prompt])[0]

    def _prompt_scores(self, features: torch.Tensor, prompt: str) -> torch.Tensor:
        """``[T, h, w]`` CLIP similarity of each patch to ``prompt``.

        Patches reach the joint space through the tower's final norm and projection. That is exact when
        the encoder layer is the last one; for earlier layers it is an approximation; pass ``scores=``
        computed from ``encoder.encode_frames(frames, joint=True).joint`` for the exact ones.
        """
        from vidpool.compress import prompt_scores
        from vidpool.encode.vision import project_to_joint

        visual = self.encoder.model.visual
        with torch.inference_mode():
            joint = project_to_joint(visual, features.to(self.encoder.device, self.encoder.dtype))
            text = self.text_embedding(prompt)
        return prompt_scores(joint, text, logit_scale=self.encoder.logit_scale)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        param = next(self.projector.parameters())
        return self.projector(x.to(device=param.device, dtype=param.dtype))

    # -- language -------------------------------------------------------------------------
    @property
    def _generator(self) -> Any:
        return self.lm

    # -- sizes ----------------------------------------------------------------------------
    @property
    def lm_spec(self) -> dict[str, int]:
        text = self.lm.config.get_text_config()
        heads = int(text.num_attention_heads)
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        return {
            "num_layers": int(text.num_hidden_layers),
            "num_kv_heads": int(getattr(text, "num_key_value_heads", None) or heads),
            "head_dim": int(head_dim),
            "hidden_size": int(text.hidden_size),
            "vocab_size": int(text.vocab_size),
            "lm_param_bytes": module_param_bytes(self.lm),
            "dtype_bytes": next(self.lm.parameters()).element_size(),
        }

    @property
    def vision_spec(self) -> dict[str, Any]:
        return {
            "param_bytes": int(self.encoder.param_bytes) + module_param_bytes(self.projector),
            "activation_bytes_per_frame": int(self.encoder.activation_bytes_per_frame()),
            "grid": tuple(self.encoder.grid),
            "width": int(self.encoder.width),
            "image_size": int(self.encoder.image_size),
        }
