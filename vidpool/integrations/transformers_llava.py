"""transformers LLaVA-OneVision and LLaVA-NeXT-Video checkpoints with any vidpool method, training-free.

Their vision tower and feature-layer selection produce ``[T, h, w, C]``; a vidpool method replaces
their fixed 2×2 pooling (OneVision pools after its projector with bilinear interpolation, NeXT-Video
before it with average pooling, and vidpool keeps each in the same place); their projector maps to
the LM width; the tokens are spliced into ``inputs_embeds`` where the video goes, so the number of
video positions is whatever the method's ``num_output_tokens`` says, plus OneVision's learned
``image_newline`` token, which it appends after a video's tokens as transformers does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from vidpool.encode.memory import DEFAULT_FRAME_HW, hf_vit_activation_bytes_per_frame
from vidpool.encode.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, preprocess_frames
from vidpool.errors import CheckpointError, InvalidArgumentError, require
from vidpool.llm.base import VideoLM, as_frames_tensor, lm_spec_of, module_param_bytes
from vidpool.llm.compat import language_model, llava_parts, token_id, vision_hidden_states
from vidpool.llm.config import ModelConfig
from vidpool.llm.kinds import ModelKind, register_kind
from vidpool.llm.loading import LoadOptions, check_weight_files, detect_kind
from vidpool.llm.prompt import VIDEO_MARKER, structured_messages

__all__ = ["LlavaVideoLM", "llava_folder_spec", "processor_chat_template", "refuse_missing_weights"]

logger = logging.getLogger(__name__)

_CLASSES = {
    "llava_onevision": "LlavaOnevisionForConditionalGeneration",
    "llava_next_video": "LlavaNextVideoForConditionalGeneration",
}
# Normalisation used when the folder has no preprocessor config: SigLIP's for OneVision, OpenAI CLIP's for NeXT-Video.
_DEFAULT_NORM = {
    "llava_onevision": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "llava_next_video": (OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
}
_PREPROCESSOR_FILES = ("video_preprocessor_config.json", "preprocessor_config.json")


def _default_compress(kind: str, hf_config: Any) -> dict[str, Any]:
    """The method that reproduces the checkpoint's own pooling, at its own position."""
    if kind == "llava_onevision":
        return {"method": "spatial", "params": {"stride": 2, "mode": "bilinear"}, "position": "after"}
    pool = getattr(hf_config, "spatial_pool_mode", "average")
    stride = int(getattr(hf_config, "spatial_pool_stride", 2))
    if pool not in ("average", "max"):
        logger.warning(
            "this LLaVA-NeXT-Video checkpoint pools with %r (learned weights), which no vidpool method "
            "reproduces; by default its video tokens come from average pooling at stride %d instead "
            "(the convolution is unused), so answers differ from transformers' own. To choose the "
            "pooling knowingly, pass method=... (and its parameters) to visual_tokens or VideoChat",
            pool,
            stride,
        )
    mode = {"average": "avg", "max": "max"}.get(pool, "avg")
    return {"method": "spatial", "params": {"stride": stride, "mode": mode}, "position": "before"}


def _preprocessing(folder: Path, kind: str) -> tuple[tuple[float, ...], tuple[float, ...], bool]:
    """``(mean, std, center_crop)`` from the folder's preprocessor config, else the model family's defaults.

    OneVision squashes frames to the square input; NeXT-Video resizes the short side and crops the centre.
    """
    mean, std = _DEFAULT_NORM[kind]
    crop = kind == "llava_next_video"
    for name in _PREPROCESSOR_FILES:
        path = folder / name
        if path.is_file():
            data = json.loads(path.read_text())
            mean, std = tuple(data.get("image_mean", mean)), tuple(data.get("image_std", std))
            crop = bool(data.get("do_center_crop", crop))
            break
    return mean, std, crop


def processor_chat_template(folder: Path) -> str | None:
    """The chat template the checkpoint's processor uses, if the folder carries one."""
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    js = folder / "chat_template.json"
    if js.is_file():
        return json.loads(js.read_text()).get("chat_template")
    return None


def refuse_missing_weights(loading: dict[str, Any], folder: Path, version: str) -> None:
    """transformers leaves weights it cannot find in a checkpoint random and only logs it; a checkpoint
    whose tensor names another transformers release spells differently would then answer from an
    untrained tower without any error."""
    missing = list(loading.get("missing_keys") or ())
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise CheckpointError(
            f"{folder} lacks {len(missing)} weight tensors that transformers {version} expects ({shown}); "
            "they would be left random. The checkpoint was probably saved by another transformers "
            "release that names them differently: load it with that release (pip install -U "
            "'transformers>=5,<6'), or re-save it with this one"
        )


class LlavaVideoLM(VideoLM):
    """A transformers LLaVA-family model behind the :class:`~vidpool.llm.VideoLM` interface."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        kind: str,
        config: ModelConfig | None = None,
        mean: tuple[float, ...] = (0.5, 0.5, 0.5),
        std: tuple[float, ...] = (0.5, 0.5, 0.5),
        center_crop: bool = False,
        chat_template: str | None = None,
    ):
        if kind not in _CLASSES:
            raise InvalidArgumentError(f"kind must be one of {sorted(_CLASSES)}, got {kind!r}")
        self.kind = kind
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.hf_config = model.config
        self.config = config or ModelConfig(
            kind=kind, projector="hf", compress=_default_compress(kind, model.config)
        )
        self._parts = llava_parts(model)
        side = int(model.config.vision_config.image_size)
        self._preprocess = {
            "size": (side, side),
            "mean": tuple(mean),
            "std": tuple(std),
            "interpolation": "bicubic",
            "resize_mode": "shortest" if center_crop else "squash",
        }
        self._chat_template = chat_template
        vision = self.hf_config.vision_config
        self._image_size = int(vision.image_size)
        side = self._image_size // int(vision.patch_size)
        self._grid = (side, side)
        video_id = token_id(self.hf_config, "video")
        self._video_token = tokenizer.convert_ids_to_tokens(video_id)

    @classmethod
    def from_folder(cls, path: str | Path, **options: Any) -> LlavaVideoLM:
        """Load a transformers LLaVA-OneVision or LLaVA-NeXT-Video folder.

        ``options`` are those of :class:`vidpool.llm.loading.LoadOptions`.
        """
        opts = LoadOptions.of(options)
        transformers = require("transformers", "llm", "Loading a LLaVA-family checkpoint")
        folder = Path(path)
        kind = detect_kind(folder)
        check_weight_files(folder, allow_pickle=opts.allow_pickle)
        kwargs = opts.pretrained_kwargs()
        model_cls = getattr(transformers, _CLASSES[kind])
        try:
            model, loading = model_cls.from_pretrained(folder, output_loading_info=True, **kwargs)
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, trust_remote_code=opts.trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load {kind} checkpoint from {folder}: {exc}") from exc
        refuse_missing_weights(loading, folder, transformers.__version__)
        opts.place(model)
        mean, std, crop = _preprocessing(folder, kind)
        config = ModelConfig(
            kind=kind,
            projector="hf",
            lm={"path": str(folder)},
            compress=_default_compress(kind, model.config),
        )
        loaded = cls(
            model,
            tokenizer,
            kind=kind,
            config=config,
            mean=mean,
            std=std,
            center_crop=crop,
            chat_template=processor_chat_template(folder),
        )
        loaded.name = folder.resolve().name
        return loaded

    # -- vision ---------------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        return self._grid

    def _pixels(
        self, frames: torch.Tensor, device: Any = None, dtype: torch.dtype = torch.float32
    ) -> torch.Tensor:
        """uint8 ``[T, H, W, 3]`` -> normalised ``[T, 3, S, S]`` at the tower's input size: bicubic resize
        (shortest side then centre crop for NeXT-Video, squashed to ``S x S`` for OneVision, as their
        processors do), through :func:`vidpool.encode.preprocess_frames` on ``device``."""
        return preprocess_frames(frames, self._preprocess, device=device, dtype=dtype)

    def encode_patches(self, frames: Any) -> torch.Tensor:
        """Vision-tower features ``[T, h, w, C]`` at the checkpoint's selected layer(s), before projection."""
        frames = as_frames_tensor(frames)
        tower = self._parts.vision_tower
        param = next(tower.parameters())
        pixels = self._pixels(frames, param.device, param.dtype)
        layer = self.hf_config.vision_feature_layer
        layers = [layer] if isinstance(layer, int) else list(layer)
        with torch.inference_mode():
            states = vision_hidden_states(tower, pixels, layers)
        selected = states[0] if len(states) == 1 else torch.cat(states, dim=-1)
        if self.hf_config.vision_feature_select_strategy == "default":
            selected = selected[:, 1:]
        h, w = self._grid
        if selected.shape[1] != h * w:
            raise CheckpointError(
                f"vision tower gave {selected.shape[1]} patches per frame, expected {h}x{w}"
            )
        return selected.reshape(frames.shape[0], h, w, selected.shape[-1])

    def video_suffix(self) -> torch.Tensor | None:
        """OneVision's learned ``image_newline`` ``[1, hidden]``, which ends every video; NeXT-Video: ``None``."""
        newline = getattr(self._parts, "image_newline", None) if self.kind == "llava_onevision" else None
        return None if newline is None else newline.detach().reshape(1, -1)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        projector = self._parts.multi_modal_projector
        param = next(projector.parameters())
        return projector(x.to(device=param.device, dtype=param.dtype))

    # -- language -------------------------------------------------------------------------
    @property
    def language_model(self) -> Any:
        return self.model

    @property
    def weight_modules(self) -> tuple[Any, ...]:
        return (self.model,)

    def render(self, messages: list[dict[str, str]]) -> str:
        if self._chat_template is None:
            return super().render(messages)
        # Processor templates take structured content and write the video token where the video goes.
        structured = structured_messages(messages)
        text = self.tokenizer.apply_chat_template(
            structured, chat_template=self._chat_template, tokenize=False, add_generation_prompt=True
        )
        if text.count(self._video_token) != 1:
            raise CheckpointError(
                f"the checkpoint's chat template wrote the video token {self._video_token!r} "
                f"{text.count(self._video_token)} times; expected once"
            )
        return text.replace(self._video_token, VIDEO_MARKER)

    # -- sizes ----------------------------------------------------------------------------
    @property
    def lm_spec(self) -> dict[str, int]:
        lm = language_model(self.model)
        return lm_spec_of(self.hf_config.text_config, lm, self.model.get_output_embeddings())

    def activation_bytes_per_frame(
        self, frame_hw: tuple[int, int] | None = None, *, joint: bool = False
    ) -> int:
        """Peak memory one decoded frame of ``frame_hw`` (default 720p) adds to a vision batch, in bytes
        (:func:`vidpool.encode.memory.hf_vit_activation_bytes_per_frame` for this tower, its attention
        implementation and its device). ``joint`` is accepted for the planner and ignored: these
        towers have no joint space."""
        vision = self.hf_config.vision_config
        tower = self._parts.vision_tower
        param = next(tower.parameters())
        layer = self.hf_config.vision_feature_layer
        return hf_vit_activation_bytes_per_frame(
            int(vision.hidden_size),
            self._image_size,
            int(vision.patch_size),
            int(vision.num_attention_heads),
            int(vision.intermediate_size),
            param.element_size(),
            class_token=vision.model_type.startswith("clip"),
            quick_gelu=getattr(vision, "hidden_act", "") == "quick_gelu",
            attention=str(getattr(tower.config, "_attn_implementation", None) or "sdpa"),
            states=1 if isinstance(layer, int) else len(layer),
            frame_hw=tuple(frame_hw or DEFAULT_FRAME_HW),
            device_type=param.device.type,
            squash=self._preprocess["resize_mode"] == "squash",
        )

    @property
    def vision_spec(self) -> dict[str, Any]:
        tower = self._parts.vision_tower
        return {
            "param_bytes": module_param_bytes(tower, self._parts.multi_modal_projector),
            "activation_bytes_per_frame": self.activation_bytes_per_frame(),
            "grid": self._grid,
            "width": self.encode_width,
            "image_size": self._image_size,
        }

    @property
    def encode_width(self) -> int:
        """Channel count ``C`` of :meth:`encode_patches` output."""
        layer = self.hf_config.vision_feature_layer
        count = 1 if isinstance(layer, int) else len(layer)
        return int(self.hf_config.vision_config.hidden_size) * count


def llava_folder_spec(folder: Path, dtype_bytes: int, device_type: str) -> Any:
    """The planner's ``ModelSpec`` of a LLaVA-family folder from its ``config.json`` alone (no weights):
    LLaMA-style LM shape and context length, ViT tower sizes, the checkpoint's own pooling as the
    default method, and OneVision's ``image_newline`` counted as one token after the video."""
    from types import SimpleNamespace

    from vidpool.schedule.estimate import ModelSpec, vit_activation_bytes_per_frame, vit_param_count
    from vidpool.schedule.spec import lm_fields, read_json

    cfg = read_json(folder / "config.json")
    if "text_config" not in cfg or "vision_config" not in cfg:
        raise CheckpointError(
            f"{folder}/config.json is not a LLaVA-family config (no text_config/vision_config)"
        )
    kind = detect_kind(folder)
    text, vis = cfg["text_config"], cfg["vision_config"]
    side = int(vis.get("image_size", 384))
    patch = int(vis.get("patch_size", 14))
    width = int(vis.get("hidden_size", 1024))
    layers = int(vis.get("num_hidden_layers", 24))
    mlp_ratio = int(vis.get("intermediate_size", 4 * width)) / width
    heads = int(vis.get("num_attention_heads", 16))
    grid = side // patch
    compress = _default_compress(kind, SimpleNamespace(**cfg))
    return ModelSpec(
        vision_param_bytes=vit_param_count(width, layers, patch, side, mlp_ratio) * dtype_bytes,
        activation_bytes_per_frame=vit_activation_bytes_per_frame(
            width, side, patch, heads, dtype_bytes, mlp_ratio=mlp_ratio, device_type=device_type
        ),
        grid=(grid, grid),
        width=width,
        image_size=side,
        method=compress["method"],
        method_params=compress["params"],
        compress_position=compress["position"],
        suffix_tokens=1 if kind == "llava_onevision" else 0,
        name=folder.name,
        **lm_fields(text, dtype_bytes),
    )


for _kind, _class in _CLASSES.items():
    register_kind(ModelKind(_kind, LlavaVideoLM.from_folder, llava_folder_spec, model_types=(_kind,)))
