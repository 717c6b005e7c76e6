"""The native video LM: an open_clip vision encoder, a projector and any transformers causal LM."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from vidpool.errors import CheckpointError, require
from vidpool.llm.base import VideoLM, as_frames_tensor, lm_spec_of, module_param_bytes
from vidpool.llm.config import ModelConfig, resolve_path
from vidpool.llm.loading import LoadOptions, load_causal_lm
from vidpool.llm.projector import build_projector

if TYPE_CHECKING:
    from vidpool.compression import Compressed
    from vidpool.encode.encoder import EncodedFrames

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
    joint_space = True

    def __init__(
        self, config: ModelConfig, encoder: Any, projector: torch.nn.Module, lm: Any, tokenizer: Any
    ):
        self.config = config
        self.encoder = encoder
        self.projector = projector.eval()
        self.lm = lm.eval()
        self.tokenizer = tokenizer

    @classmethod
    def from_folder(cls, path: str | Path, **options: Any) -> NativeVideoLM:
        """Assemble a native model from a checkpoint folder (``vidpool.json`` + ``projector.safetensors``).

        ``options`` are those of :class:`vidpool.llm.loading.LoadOptions`.
        """
        from vidpool.encode import CLIPEncoder

        opts = LoadOptions.of(options).resolved()
        safetensors_torch = require("safetensors.torch", "llm", "Loading projector weights")
        folder = Path(path)
        config = ModelConfig.load(folder)
        # Read the small projector first so that a refused or missing file fails before the LM loads.
        state, weights_file = _projector_state(folder, opts.allow_pickle, safetensors_torch)
        dtype = opts.dtype
        lm_spec = dict(config.lm)
        for key in ("path", "tokenizer", "config", "adapter"):
            lm_spec[key] = resolve_path(folder, lm_spec.get(key))
        lm, tokenizer = load_causal_lm(lm_spec, **vars(opts))
        # With an accelerate device map the vision side goes where the LM's embeddings went.
        vision_device = (
            lm.get_input_embeddings().weight.device
            if opts.device_map is not None
            else torch.device(opts.device)
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
            allow_pickle=opts.allow_pickle,
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

    def encode_patches(self, frames: Any) -> torch.Tensor:
        """CLIP patch features ``[T, h, w, C]`` of the encoder's layer, before projection."""
        return self.encode(frames).patches

    def encode(self, frames: Any, *, joint: bool = False) -> EncodedFrames:
        """One forward pass: ``patches [T, h, w, C]`` and, with ``joint``, ``joint [T, h, w, D]``.

        ``joint`` holds the last block's patch tokens through ``ln_post`` and ``proj`` (CLIP's joint
        image-text space), what PPLLaVA scores against the prompt.
        """
        return self.encoder.encode_frames(as_frames_tensor(frames), joint=joint)

    @property
    def encoder_identity(self) -> str:
        """The CLIP encoder's identity (config, weights, layer): equal features across processes."""
        return str(self.encoder.identity)

    def text_embedding(self, prompt: str) -> torch.Tensor:
        """CLIP text embedding ``[D]`` of ``prompt`` (joint space, not normalised)."""
        return self.encoder.encode_text([prompt])[0]

    def prompt_scores(
        self, features: torch.Tensor, prompt: str, joint: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[T, h, w]`` CLIP similarity of each patch to ``prompt`` (PPLLaVA's relevance).

        Exact with ``joint`` (``[T, h, w, D]`` from :meth:`encode` with ``joint=True``, as the pipeline
        passes it). Without it, ``features`` reach the joint space through the tower's final norm and
        projection, which is exact only when the encoder layer is the last one.
        """
        from vidpool.compression import prompt_scores
        from vidpool.encode.vision import project_to_joint

        with torch.inference_mode():
            if joint is None:
                visual = self.encoder.model.visual
                joint = project_to_joint(visual, features.to(self.encoder.device, self.encoder.dtype))
            text = self.text_embedding(prompt)
        return prompt_scores(joint.to(text.device), text, logit_scale=self.encoder.logit_scale)

    def _project(self, x: torch.Tensor, where: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., C] -> [..., hidden]``; ``where [..., 3]`` reaches a projector that reads positions
        (``mlp2x_gelu_where``), and a ``[T, h, w, C]`` grid projected before compression brings its own."""
        param = next(self.projector.parameters())
        x = x.to(device=param.device, dtype=param.dtype)
        if not getattr(self.projector, "reads_positions", False):
            return self.projector(x)
        if where is None and x.dim() == 4:
            from vidpool.compression import grid_positions

            where = grid_positions(*x.shape[:3], device=x.device)
        return self.projector(x, where)

    def project_compressed(self, result: Compressed) -> torch.Tensor:
        where = result.token_positions() if getattr(self.projector, "reads_positions", False) else None
        return self._project(result.tokens, where)

    # -- language -------------------------------------------------------------------------
    @property
    def language_model(self) -> Any:
        return self.lm

    @property
    def weight_modules(self) -> tuple[Any, ...]:
        return (self.encoder.model, self.projector, self.lm)

    def activation_bytes_per_frame(
        self, frame_hw: tuple[int, int] | None = None, *, joint: bool = False
    ) -> int:
        """The encoder's :meth:`vidpool.CLIPEncoder.activation_bytes_per_frame`."""
        hw = None if frame_hw is None else tuple(frame_hw)
        return int(self.encoder.activation_bytes_per_frame(hw, joint=joint))

    # -- sizes ----------------------------------------------------------------------------
    @property
    def lm_spec(self) -> dict[str, int]:
        return lm_spec_of(self.lm.config.get_text_config(), self.lm)

    @property
    def vision_spec(self) -> dict[str, Any]:
        return {
            "param_bytes": int(self.encoder.param_bytes) + module_param_bytes(self.projector),
            "activation_bytes_per_frame": int(self.encoder.activation_bytes_per_frame()),
            "grid": tuple(self.encoder.grid),
            "width": int(self.encoder.width),
            "image_size": int(self.encoder.image_size),
            # size D of the joint embeddings kept beside the features when the method uses scores
            "joint_dim": int(self.encoder.embed_dim),
        }
