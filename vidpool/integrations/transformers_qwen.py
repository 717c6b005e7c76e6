"""transformers Qwen2.5-VL and Qwen3-VL checkpoints with any vidpool method, training-free.

Frames go through the checkpoint's own video processor (resized to multiples of 28 or 32 pixels within its
min/max pixels, two frames to a temporal patch, its mean/std) and its vision tower with the 2x2 merger, which
gives tokens already in the LM's width on the merged grid ``[T', H', W', C]`` (``T' = ceil(frames / 2)``).
A vidpool method compresses that grid (position ``"after"``: there is no projector left to run); Qwen3-VL's
DeepStack features (tower layers added into the first LM layers at the video's positions) ride along as extra
channels of the features and are combined with the same provenance as the tokens
(:func:`~vidpool.integrations.transformers_qwen_positions.apply_provenance`). Each kept token keeps its
M-RoPE ids (:mod:`vidpool.integrations.transformers_qwen_positions`), passed to the LM explicitly, so the
number of video positions is exactly the method's ``num_output_tokens``.

What the LM needs besides the tokens (their ids and DeepStack rows) is recorded when
:meth:`QwenVideoLM.compress_visual` returns them, keyed to that tensor object; ``generate`` and
``continuation_logprob`` look it up, so they take the tokens ``compress_visual`` / ``visual_tokens`` made.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vidpool.errors import CheckpointError, InvalidArgumentError, require
from vidpool.integrations.transformers_llava import processor_chat_template, refuse_missing_weights
from vidpool.integrations.transformers_qwen_prompt import (
    END,
    PAD,
    START,
    Prompted,
    PromptInputs,
    assemble,
    prompt_segments,
    video_text,
)
from vidpool.integrations.transformers_qwen_spec import (
    CLASSES,
    frame_pixels_range,
    merged_grid,
    qwen_folder_spec,
    qwen_vision_activation_bytes,
)
from vidpool.llm.base import VideoLM, VisualTokens, as_frames_tensor, lm_spec_of, module_param_bytes
from vidpool.llm.config import ModelConfig
from vidpool.llm.generate import continuation_logprob, generate_text
from vidpool.llm.kinds import ModelKind, register_kind
from vidpool.llm.loading import LoadOptions, check_weight_files, detect_kind
from vidpool.llm.prompt import VIDEO_MARKER, build_messages, structured_messages, tokenize_continuation
from vidpool.options import FastV

__all__ = ["QwenVideoLM"]


@dataclass
class _Provenance:
    """What ``generate`` needs of compressed tokens besides themselves."""

    grid: tuple[int, int, int]
    assign: torch.Tensor  # long [T', H', W']
    weight: torch.Tensor  # float [T', H', W']
    deepstack: list[torch.Tensor]  # per DeepStack level [N, C]


def _one_tensor(value: Any) -> torch.Tensor:
    """A features tensor of one video (transformers splits them per video into tuples)."""
    return torch.cat(list(value)) if isinstance(value, (list, tuple)) else value


class QwenVideoLM(VideoLM):
    """A transformers Qwen2.5-VL or Qwen3-VL model behind the :class:`~vidpool.llm.VideoLM` interface.

    The LM's decoder layers are ``model.model.language_model.layers`` (:attr:`text_model`), and
    :meth:`prompt_inputs` gives a prompt's embeddings with its M-RoPE ids.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        video_processor: Any,
        *,
        kind: str,
        config: ModelConfig | None = None,
        chat_template: str | None = None,
    ):
        if kind not in CLASSES:
            raise InvalidArgumentError(f"kind must be one of {sorted(CLASSES)}, got {kind!r}")
        self.kind = kind
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.video_processor = video_processor
        self.hf_config = model.config
        self.config = config or ModelConfig(
            kind=kind, projector="hf", compress={"method": "none", "params": {}, "position": "after"}
        )
        self._chat_template = chat_template
        vision = self.hf_config.vision_config
        self._patch = int(vision.patch_size)
        self._merge = int(vision.spatial_merge_size)
        self._temporal = int(vision.temporal_patch_size)
        self._levels = len(getattr(vision, "deepstack_visual_indexes", None) or ())
        self._layouts: dict[int, tuple[weakref.ref, _Provenance]] = {}
        self._generating = threading.Lock()

    @classmethod
    def from_folder(cls, path: str | Path, **options: Any) -> QwenVideoLM:
        """Load a transformers Qwen2.5-VL or Qwen3-VL folder (``options``: :class:`LoadOptions`' fields)."""
        opts = LoadOptions.of(options)
        transformers = require("transformers", "llm", "Loading a Qwen-VL checkpoint")
        folder = Path(path)
        kind = detect_kind(folder)
        check_weight_files(folder, allow_pickle=opts.allow_pickle)
        model_cls = getattr(transformers, CLASSES[kind])
        try:
            model, loading = model_cls.from_pretrained(
                folder, output_loading_info=True, **opts.pretrained_kwargs()
            )
            tokenizer = transformers.AutoTokenizer.from_pretrained(
                folder, trust_remote_code=opts.trust_remote_code
            )
            video_processor = transformers.AutoVideoProcessor.from_pretrained(folder)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load {kind} checkpoint from {folder}: {exc}") from exc
        refuse_missing_weights(loading, folder, transformers.__version__)
        opts.place(model)
        config = ModelConfig(
            kind=kind,
            projector="hf",
            lm={"path": str(folder)},
            compress={"method": "none", "params": {}, "position": "after"},
        )
        loaded = cls(
            model,
            tokenizer,
            video_processor,
            kind=kind,
            config=config,
            chat_template=processor_chat_template(folder),
        )
        loaded.name = folder.resolve().name
        return loaded

    # -- vision ---------------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        """``(H', W')`` merged grid of a 720p frame (other sizes give other grids: Qwen keeps the aspect)."""
        return self.grid_for()

    def grid_for(self, frame_hw: tuple[int, int] | None = None) -> tuple[int, int]:
        """``(H', W')`` merged grid of a frame of ``frame_hw`` (default 720p) after the video processor."""
        low, high = frame_pixels_range(self.kind, self.video_processor, self._temporal)
        return merged_grid(frame_hw, self._patch, self._merge, low, high)

    @property
    def text_model(self) -> Any:
        """The LM's decoder stack (``embed_tokens``, ``layers``, ``norm``, ``rotary_emb``)."""
        return self.model.model.language_model

    def encode_patches(self, frames: Any) -> torch.Tensor:
        """Merged vision tokens ``[T', H', W', C x (1 + DeepStack levels)]`` of uint8 frames ``[T, H, W, 3]``:
        the merger's output (LM width ``C``), then each DeepStack level's."""
        frames = as_frames_tensor(frames)
        param = next(self.model.model.visual.parameters())
        size = {}
        if self.kind == "qwen3_vl":  # each frame gets its fixed share of the video range, whatever the batch
            low, high = frame_pixels_range(self.kind, self.video_processor, self._temporal)
            count = -(-int(frames.shape[0]) // self._temporal) * self._temporal
            size = {"size": {"shortest_edge": int(low * count), "longest_edge": int(high * count)}}
        if hasattr(self.video_processor, "cap_pixels_per_frame"):
            # newer processors warn on every call unless told; False is their current default (no cap)
            size["cap_pixels_per_frame"] = False
        batch = self.video_processor(
            videos=[frames.cpu().numpy()], return_tensors="pt", do_sample_frames=False, **size
        )
        pixels = batch["pixel_values_videos"].to(device=param.device, dtype=param.dtype)
        grid_thw = batch["video_grid_thw"].to(param.device)
        with torch.inference_mode():
            out = self.model.model.get_video_features(pixels, grid_thw, return_dict=True)
        merged = _one_tensor(out.pooler_output)
        levels = [_one_tensor(level) for level in list(getattr(out, "deepstack_features", None) or [])]
        if len(levels) != self._levels:
            raise CheckpointError(
                f"the vision tower gave {len(levels)} DeepStack levels, its config names {self._levels}"
            )
        t, h, w = (int(v) for v in grid_thw[0])
        shape = (t, h // self._merge, w // self._merge, -1)
        return torch.cat([merged, *levels], dim=-1).reshape(shape)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return x  # the merger already maps to the LM's width

    @property
    def encode_width(self) -> int:
        return int(self.hf_config.vision_config.out_hidden_size) * (1 + self._levels)

    # -- compression ----------------------------------------------------------------------
    def num_visual_tokens(
        self, num_frames: int, *, budget: int | None = None, method: str | None = None, **params: Any
    ) -> int:
        from vidpool.compression import num_output_tokens

        method, params, budget = self.resolve_compression(method, budget, params)
        t = -(-int(num_frames) // self._temporal)
        return int(num_output_tokens(method, (t, *self.grid), budget=budget, **params))

    def compress_visual(self, features: torch.Tensor, **kwargs: Any) -> VisualTokens:
        """:meth:`VideoLM.compress_visual` over the merger's channels; the DeepStack channels are combined
        with the same provenance and kept, with the grid, for :meth:`generate`."""
        from vidpool.integrations.transformers_qwen_positions import apply_provenance

        if features.dim() != 4:
            raise InvalidArgumentError(f"features must be [T', H', W', C], got shape {tuple(features.shape)}")
        width = int(self.hf_config.vision_config.out_hidden_size)
        visual = super().compress_visual(features[..., :width], **kwargs)
        result = visual.compressed
        assign, weight = result.assign.cpu(), result.weight.cpu()
        count = int(visual.tokens.shape[0])
        flat = features[..., width:].reshape(-1, self._levels, width) if self._levels else None
        deepstack = [
            apply_provenance(flat[:, k], assign.to(flat.device), weight.to(flat.device), count)
            for k in range(self._levels)
        ]
        self._remember(visual.tokens, _Provenance(tuple(features.shape[:3]), assign, weight, deepstack))
        return visual

    def _remember(self, tokens: torch.Tensor, provenance: _Provenance) -> None:
        key = id(tokens)
        self._layouts[key] = (weakref.ref(tokens), provenance)
        weakref.finalize(tokens, self._layouts.pop, key, None)

    def _provenance(self, tokens: torch.Tensor) -> _Provenance:
        entry = self._layouts.get(id(tokens))
        if entry is None or entry[0]() is not tokens:
            raise InvalidArgumentError(
                f"{self.kind} places each visual token by the grid position it came from: pass the tokens "
                "that this model's compress_visual or visual_tokens returned (not a copy or a slice)"
            )
        return entry[1]

    # -- prompt ---------------------------------------------------------------------------
    def prompt_text(
        self,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> str:
        """The chat text around ``VIDEO_MARKER``; time reaches the LM through the M-RoPE ids (and Qwen3-VL's
        per-frame timestamps), so no sentence lists the frame times."""
        messages = build_messages(prompt, history=history, system_prompt=self.config.system_prompt)
        return self.render(messages)

    def render(self, messages: list[dict[str, str]]) -> str:
        structured = structured_messages(messages)
        text = self.tokenizer.apply_chat_template(
            structured, chat_template=self._chat_template, tokenize=False, add_generation_prompt=True
        )
        wrapper = START + PAD + END
        if text.count(wrapper) != 1:
            raise CheckpointError(
                f"the checkpoint's chat template wrote {wrapper!r} {text.count(wrapper)} times"
            )
        return text.replace(wrapper, VIDEO_MARKER)

    def prompt_inputs(
        self,
        visual_tokens: torch.Tensor,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
        continuation: Sequence[int] = (),
    ) -> PromptInputs:
        """The prompt's embeddings, M-RoPE ids ``[3, L]``, video mask and DeepStack rows; ``continuation``
        ids follow the prompt. The ids are what FastV-style code needs beside :attr:`text_model`."""
        text = self.prompt_text(prompt, timestamps=timestamps, history=history)
        prov = self._provenance(visual_tokens) if visual_tokens.shape[0] else None
        layout = None if prov is None else (prov.grid, prov.assign, prov.weight, int(visual_tokens.shape[0]))
        segments = prompt_segments(
            self.tokenizer,
            self.kind,
            text,
            layout,
            timestamps,
            temporal=self._temporal,
            tokens_per_second=float(getattr(self.hf_config.vision_config, "tokens_per_second", 1.0)),
        )
        deepstack = prov.deepstack if prov is not None else []
        return assemble(segments, visual_tokens, self.input_embeddings, deepstack, continuation)

    def _prompted(self, inputs: PromptInputs) -> Prompted:
        return Prompted(self.model, self.text_model, self._generating, inputs)

    def logits(self, inputs: PromptInputs) -> torch.Tensor:
        """The LM's logits ``[1, L, vocab]`` over a prompt from :meth:`prompt_inputs` (its ids and DeepStack
        rows placed as :meth:`generate` places them)."""
        mask = torch.ones(inputs.embeds.shape[:2], dtype=torch.long, device=inputs.embeds.device)
        with torch.inference_mode():
            return self._prompted(inputs)(inputs_embeds=inputs.embeds, attention_mask=mask).logits

    def build_inputs_embeds(self, visual_tokens: torch.Tensor, prompt: str, **kwargs: Any) -> torch.Tensor:
        return self.prompt_inputs(visual_tokens, prompt, **kwargs).embeds

    def generate(
        self,
        visual_tokens: torch.Tensor,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
        stream: bool = False,
        fastv: FastV | None = None,
        **options: Any,
    ) -> str | Iterator[str]:
        """:meth:`VideoLM.generate` with the kind's M-RoPE ids and DeepStack rows; ``fastv`` prunes the
        video tokens inside the LM (:mod:`vidpool.llm.fastv`: they need not be one run, kept tokens keep
        their M-RoPE ids, DeepStack levels after its layer reach the kept tokens only)."""
        inputs = self.prompt_inputs(visual_tokens, prompt, timestamps=timestamps, history=history)
        if fastv is None:
            lm = self._prompted(inputs)
        else:
            lm = self.fastv_model(
                fastv,
                inputs.visual_mask,
                inputs.embeds,
                position_ids=inputs.position_ids[:, None],
                deepstack=inputs.deepstack,
            )
        return generate_text(lm, self.tokenizer, inputs.embeds, stream=stream, **options)

    @property
    def runs_fastv(self) -> bool:
        return True

    def continuation_logprob(
        self,
        visual_tokens: torch.Tensor,
        prompt: str,
        continuation: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> tuple[float, bool]:
        text = self.prompt_text(prompt, timestamps=timestamps, history=history)
        _, ids = tokenize_continuation(self.tokenizer, text.split(VIDEO_MARKER, 1)[1], continuation)
        inputs = self.prompt_inputs(
            visual_tokens, prompt, timestamps=timestamps, history=history, continuation=ids
        )
        return continuation_logprob(self._prompted(inputs), inputs.embeds, ids)

    def prompt_tokens(self, num_frames: int, duration: float | None = None) -> int:
        """Text tokens of a prompt about ``num_frames`` frames (Qwen3-VL: a timestamp and vision start/end per
        temporal patch), plus ``QUESTION_TOKENS``."""
        from vidpool.llm.base import QUESTION_TOKENS

        span = duration if duration else 0.5 * num_frames
        stamps = [(i + 0.5) * span / num_frames for i in range(num_frames)]
        video = video_text(self.kind, stamps, num_frames, self._temporal)
        text = self.prompt_text("").replace(VIDEO_MARKER, video.replace(PAD, ""))
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return len(ids) + QUESTION_TOKENS

    # -- sizes ----------------------------------------------------------------------------
    @property
    def language_model(self) -> Any:
        return self.model

    @property
    def weight_modules(self) -> tuple[Any, ...]:
        return (self.model,)

    @property
    def lm_spec(self) -> dict[str, int]:
        return lm_spec_of(self.hf_config.text_config, self.text_model, self.model.get_output_embeddings())

    def activation_bytes_per_frame(
        self, frame_hw: tuple[int, int] | None = None, *, joint: bool = False
    ) -> int:
        """Peak bytes one decoded frame of ``frame_hw`` (default 720p) adds to a vision batch (``joint`` is
        ignored: no joint space)."""
        param = next(self.model.model.visual.parameters())
        return qwen_vision_activation_bytes(
            self.hf_config.vision_config.to_dict(),
            self.grid_for(frame_hw),
            param.element_size(),
            self._merge,
            frame_hw=frame_hw,
        )

    @property
    def vision_spec(self) -> dict[str, Any]:
        h, w = self.grid
        return {
            "param_bytes": module_param_bytes(self.model.model.visual),
            "activation_bytes_per_frame": self.activation_bytes_per_frame(),
            "grid": (h, w),
            "width": self.encode_width,
            "image_size": h * self._patch * self._merge,
            "frames_per_step": self._temporal,
        }


for _kind in CLASSES:
    register_kind(ModelKind(_kind, QwenVideoLM.from_folder, qwen_folder_spec, model_types=(_kind,)))
