"""The one interface both model kinds share: encode, compress + project, generate.

Subclasses supply the vision side (``encode_patches``, ``_project``, ``grid``) and the language side
(``tokenizer``, ``language_model``); compression order, prompt building and generation live here once.
What the planner and the pipeline use of a model is :class:`vidpool.llm.protocol.VideoModel`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from vidpool.errors import InvalidArgumentError
from vidpool.llm.config import ModelConfig
from vidpool.llm.generate import continuation_logprob, generate_text
from vidpool.llm.prompt import (
    VIDEO_MARKER,
    build_messages,
    render_prompt,
    splice_embeddings,
    tokenize_around_marker,
    tokenize_continuation,
)
from vidpool.options import FastV, check_planning

if TYPE_CHECKING:
    from vidpool.compression import Compressed
    from vidpool.encode.encoder import EncodedFrames

__all__ = [
    "QUESTION_TOKENS",
    "VideoLM",
    "VisualTokens",
    "as_frames_tensor",
    "lm_spec_of",
    "module_param_bytes",
]

#: tokens set aside for the question when a prompt is sized before the question is known
QUESTION_TOKENS = 32


def module_param_bytes(*modules: Any) -> int:
    """Bytes held by the parameters and buffers of ``modules`` (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for module in modules:
        if module is None:
            continue
        for tensor in [*module.parameters(), *module.buffers()]:
            if id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def lm_spec_of(text: Any, *modules: Any) -> dict[str, int]:
    """A ``VideoLM.lm_spec`` from a transformers text config and the LM's modules.

    ``lm_param_bytes`` counts the parameters of ``modules`` (shared ones once); ``dtype_bytes`` is the
    element size of the first module's parameters; ``context_length`` is ``max_position_embeddings``.
    """
    heads = int(text.num_attention_heads)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return {
        "num_layers": int(text.num_hidden_layers),
        "num_kv_heads": int(getattr(text, "num_key_value_heads", None) or heads),
        "head_dim": int(head_dim),
        "hidden_size": int(text.hidden_size),
        "vocab_size": int(text.vocab_size),
        "intermediate_size": int(getattr(text, "intermediate_size", None) or 0),
        "num_heads": heads,
        # positions the LM can attend over (0: unknown); visual + prompt + new tokens must fit in it
        "context_length": int(getattr(text, "max_position_embeddings", None) or 0),
        "lm_param_bytes": module_param_bytes(*modules),
        "dtype_bytes": next(modules[0].parameters()).element_size(),
    }


def as_frames_tensor(frames: Any) -> torch.Tensor:
    """Frames as a uint8 tensor ``[T, H, W, 3]`` (accepts numpy arrays, tensors, or a ``Frames`` object)."""
    frames = getattr(frames, "frames", frames)
    if isinstance(frames, np.ndarray):
        frames = torch.from_numpy(np.ascontiguousarray(frames))
    if not torch.is_tensor(frames) or frames.dim() != 4 or frames.shape[-1] != 3:
        shape = tuple(frames.shape) if hasattr(frames, "shape") else type(frames).__name__
        raise InvalidArgumentError(f"frames must be uint8 [T, H, W, 3], got {shape}")
    return frames


@dataclass
class VisualTokens:
    """What :meth:`VideoLM.compress_visual` made: the tokens and how they came about.

    Attributes:
        tokens: ``[N, hidden]`` tokens in the LM's embedding space (what :meth:`VideoLM.visual_tokens` returns).
        compressed: the compression result over the ``[T, h, w]`` patch grid (``assign``/``weight`` say which
            patches fed which token); its ``tokens`` are pre-projection when the model compresses first.
        scores: ``[T, h, w]`` prompt relevance the method used, or ``None`` when it used none.
    """

    tokens: torch.Tensor
    compressed: Compressed
    scores: torch.Tensor | None = None


class VideoLM:
    """A video language model: vision features -> compressed visual tokens -> generated text.

    Attributes:
        kind: ``"native"``, ``"llava_onevision"`` or ``"llava_next_video"``.
        config: the :class:`ModelConfig` (compression method, its position, defaults).
        tokenizer: the LM's tokenizer.
        name: the checkpoint folder's name.
    """

    kind: str
    config: ModelConfig
    tokenizer: Any
    name: str = "model"
    #: whether the model has a joint image-text space (a CLIP text tower) to score patches against a prompt
    joint_space: bool = False

    @property
    def notice(self) -> str | None:
        """One line the model says about itself (its config's ``notice``): what it is and what it
        cannot do; ``None`` when it says nothing."""
        return getattr(self.config, "notice", None)

    # -- supplied by subclasses -------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int]:
        """``(h, w)`` patch grid of one encoded frame."""
        raise NotImplementedError

    def encode_patches(self, frames: Any) -> torch.Tensor:
        """Vision features ``[T, h, w, C]`` (before projection) of uint8 frames ``[T, H, W, 3]``."""
        raise NotImplementedError

    def encode(self, frames: Any, *, joint: bool = False) -> EncodedFrames:
        """``patches [T, h, w, C]`` (the :meth:`encode_patches` features) and, with ``joint``, joint-space
        patch embeddings ``[T, h, w, D]`` from the same forward pass (models with a text tower only)."""
        from vidpool.encode.encoder import EncodedFrames

        if joint:
            raise InvalidArgumentError(
                f"{type(self).__name__} has no joint image-text space; encode with joint=False"
            )
        return EncodedFrames(self.encode_patches(frames))

    def uses_joint(self, method: str | None = None) -> bool:
        """Whether :meth:`encode` should return joint embeddings for ``method`` (default: the configured
        one): :func:`vidpool.compression.registry.uses_joint` over :attr:`joint_space`."""
        from vidpool.compression.registry import uses_joint

        return uses_joint(method or self.config.method, self.joint_space)

    @property
    def encoder_identity(self) -> str:
        """What this model's vision features depend on, for feature-cache keys. Without a weights
        fingerprint it is this object: features are then shared only within one process."""
        return f"{type(self).__name__}-{id(self)}"

    def text_embedding(self, prompt: str) -> torch.Tensor | None:
        """Joint-space text embedding ``[D]`` for prompt-guided scores, or ``None`` if the model has none."""
        return None

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        """Projector ``[..., C] -> [..., hidden]``."""
        raise NotImplementedError

    def project_compressed(self, result: Compressed) -> torch.Tensor:
        """``result.tokens`` ``[N, C]`` through the projector: ``[N, hidden]`` (a model whose projector
        reads where each token comes from overrides this)."""
        return self._project(result.tokens)

    def prompt_scores(
        self, features: torch.Tensor, prompt: str, joint: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Relevance ``[T, h, w]`` of each patch to ``prompt``, or ``None`` for models without a text tower."""
        return None

    @property
    def language_model(self) -> Any:
        """The transformers module whose ``generate`` runs the LM."""
        raise NotImplementedError

    @property
    def weight_modules(self) -> tuple[Any, ...]:
        """The ``torch.nn.Module`` s holding every weight of the model (the planner counts what is resident)."""
        raise NotImplementedError

    def activation_bytes_per_frame(
        self, frame_hw: tuple[int, int] | None = None, *, joint: bool = False
    ) -> int:
        """Peak bytes one decoded frame of ``frame_hw`` (default 720p) adds to a vision batch
        (``joint``: with joint-space embeddings, for models that have them)."""
        raise NotImplementedError

    @property
    def text_config(self) -> Any:
        """The LM's transformers text config."""
        config = self.language_model.config
        return config.get_text_config() if hasattr(config, "get_text_config") else config

    @property
    def input_embeddings(self) -> Any:
        """The LM's input embedding module (``[vocab, hidden]`` weight), where prompts are spliced."""
        return self.language_model.get_input_embeddings()

    @property
    def device(self) -> torch.device:
        """Where the LM's input embeddings live (visual tokens are moved there for the splice)."""
        return self.input_embeddings.weight.device

    @property
    def lm_spec(self) -> dict[str, int]:
        raise NotImplementedError

    @property
    def vision_spec(self) -> dict[str, Any]:
        raise NotImplementedError

    def video_suffix(self) -> torch.Tensor | None:
        """Learned tokens ``[k, hidden]`` the model appends after a video's visual tokens (LLaVA-OneVision's
        ``image_newline``), or ``None``; counted by :meth:`num_visual_tokens`."""
        return None

    # -- shared ---------------------------------------------------------------------------
    def resolve_compression(
        self, method: str | None = None, budget: int | None = None, params: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], int | None]:
        """``(method, params, budget)`` a call runs with, over the configured defaults: the configured
        method keeps its configured parameters unless the call overrides them; a budget (or a shape
        parameter) given in the call replaces the configured sizing (``stride=``, ``size=``, ...).

        A method that reads several encoder layers (``multilayer``) is refused: a model feeds its
        compression one layer."""
        from vidpool.compression import get_method

        method, params, budget = self.config.resolve_compression(method, budget, params)
        layers = get_method(method).input_layers
        if layers is not None:
            raise InvalidArgumentError(
                f"{method} reads encoder layers {layers} concatenated, and a video LM's compression gets one "
                f"layer: choose another method here, or run {method} through vidpool.compress on "
                "CLIPEncoder.encode_frames(frames, layers=...) (or in `vidpool bench fidelity`)"
            )
        return method, params, budget

    def num_visual_tokens(
        self, num_frames: int, *, budget: int | None = None, method: str | None = None, **params: Any
    ) -> int:
        """Number of visual tokens ``visual_tokens`` gives for ``num_frames`` frames (known before running)."""
        from vidpool.compression import num_output_tokens

        method, params, budget = self.resolve_compression(method, budget, params)
        h, w = self.grid
        suffix = self.video_suffix()
        extra = 0 if suffix is None else int(suffix.shape[0])
        return int(num_output_tokens(method, (int(num_frames), h, w), budget=budget, **params)) + extra

    def visual_tokens(
        self,
        features: torch.Tensor,
        *,
        prompt: str | None = None,
        budget: int | None = None,
        method: str | None = None,
        scores: torch.Tensor | None = None,
        joint: torch.Tensor | None = None,
        **params: Any,
    ) -> torch.Tensor:
        """Compress and project vision features in the configured order.

        Args:
            features: ``[T, h, w, C]`` from :meth:`encode_patches`.
            prompt: the question, used to score patches when the method uses scores and none are given.
            scores: optional ``[T, h, w]`` patch relevance for score-using methods. Without scores (no
                prompt, or a model without a text tower) they run unguided: ``prompt_guided`` is then
                average pooling and ``progressive`` spreads its finer frames evenly over the video.
            joint: optional ``[T, h, w, D]`` joint-space patch embeddings from :meth:`encode`; with them the
                prompt scores are exact (PPLLaVA's), without them a native model projects ``features``.

        Returns:
            ``[N, hidden]`` tokens in the LM's embedding space, ``N == num_visual_tokens(T, ...)``.
        """
        return self.compress_visual(
            features, prompt=prompt, budget=budget, method=method, scores=scores, joint=joint, **params
        ).tokens

    def compress_visual(
        self,
        features: torch.Tensor,
        *,
        prompt: str | None = None,
        budget: int | None = None,
        method: str | None = None,
        scores: torch.Tensor | None = None,
        joint: torch.Tensor | None = None,
        **params: Any,
    ) -> VisualTokens:
        """:meth:`visual_tokens` with its provenance: the ``Compressed`` result and the prompt scores used."""
        from vidpool.compression import compress, get_method

        if features.dim() != 4:
            raise InvalidArgumentError(f"features must be [T, h, w, C], got shape {tuple(features.shape)}")
        method, params, budget = self.resolve_compression(method, budget, params)
        uses_scores = bool(get_method(method).uses_scores)
        if uses_scores and scores is None and prompt is not None:
            scores = self.prompt_scores(features, prompt, joint=joint)
        extra = {"scores": scores} if scores is not None else {}
        with torch.inference_mode():
            if self.config.position == "before":
                result = compress(features, method, budget=budget, **extra, **params)
                tokens = self.project_compressed(result)
            else:
                result = compress(self._project(features), method, budget=budget, **extra, **params)
                tokens = result.tokens
            suffix = self.video_suffix()
            if suffix is not None:
                tokens = torch.cat([tokens, suffix.to(device=tokens.device, dtype=tokens.dtype)])
        return VisualTokens(tokens, result, scores if uses_scores else None)

    def build_inputs_embeds(
        self,
        visual_tokens: torch.Tensor,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> torch.Tensor:
        """``[1, L, hidden]`` prompt embeddings: chat template around the spliced visual tokens."""
        return self.prompt_embeds(visual_tokens, prompt, timestamps=timestamps, history=history)[0]

    def prompt_embeds(
        self,
        visual_tokens: torch.Tensor,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        """:meth:`build_inputs_embeds` and ``(start, stop)``, the positions of the visual tokens in it."""
        text = self.prompt_text(prompt, timestamps=timestamps, history=history)
        before, after = tokenize_around_marker(self.tokenizer, text, VIDEO_MARKER)
        embeds = splice_embeddings(self.input_embeddings, before, visual_tokens, after)
        return embeds, (len(before), len(before) + int(visual_tokens.shape[0]))

    def prompt_text(
        self,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> str:
        """The chat-template text the LM sees, with ``VIDEO_MARKER`` where the visual tokens go."""
        messages = build_messages(
            prompt, timestamps=timestamps, history=history, system_prompt=self.config.system_prompt
        )
        return self.render(messages)

    def render(self, messages: list[dict[str, str]]) -> str:
        """Chat messages as the text the LM reads (its chat template), ``VIDEO_MARKER`` kept in place."""
        return render_prompt(self.tokenizer, messages)

    def prompt_tokens(self, num_frames: int, duration: float | None = None) -> int:
        """Text tokens of a prompt about ``num_frames`` frames of a ``duration``-second video (default 2 s
        a frame), rendered with the model's chat template, plus ``QUESTION_TOKENS`` for the question."""
        span = duration if duration else 2.0 * num_frames
        stamps = (np.arange(num_frames) + 0.5) * span / num_frames
        messages = build_messages("", timestamps=stamps, system_prompt=self.config.system_prompt)
        text = self.render(messages).replace(VIDEO_MARKER, "")
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) + QUESTION_TOKENS

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
        """Answer ``prompt`` about the video given its ``[N, hidden]`` visual tokens.

        ``timestamps`` (seconds, one per sampled frame) go into the prompt; ``history`` is a list of
        earlier ``(user, assistant)`` turns. With ``stream=True`` an iterator of text pieces is returned.
        ``fastv`` (:class:`vidpool.options.FastV`) prunes the visual tokens inside the LM from its layer on
        (:mod:`vidpool.llm.fastv`). ``options`` are :func:`vidpool.llm.generate.generate_text`'s:
        ``max_new_tokens`` (:data:`vidpool.options.DEFAULT_MAX_NEW_TOKENS`), ``temperature`` (0: greedy),
        ``top_p``, ``seed`` and ``stop``.
        """
        embeds, visual = self.prompt_embeds(visual_tokens, prompt, timestamps=timestamps, history=history)
        lm = self.language_model if fastv is None else self.fastv_model(fastv, visual, embeds)
        return generate_text(lm, self.tokenizer, embeds, stream=stream, **options)

    @property
    def runs_fastv(self) -> bool:
        """Whether :meth:`generate` takes ``fastv=``: kinds that keep this class's ``generate`` do; a kind
        with its own ``generate`` says so by overriding this property."""
        return type(self).generate is VideoLM.generate

    def fastv_model(
        self,
        fastv: FastV,
        visual: tuple[int, int] | torch.Tensor,
        inputs_embeds: torch.Tensor,
        *,
        position_ids: torch.Tensor | None = None,
        deepstack: Sequence[torch.Tensor] = (),
    ) -> Any:
        """The LM with FastV for a prompt ``inputs_embeds`` ``[1, L, D]`` whose visual tokens sit at
        ``visual`` (``(start, stop)`` or a bool ``[L]`` mask): a :class:`vidpool.llm.fastv.FastVGenerator`
        at positions ``position_ids`` (default ``arange(L)``; M-RoPE kinds pass ``[3, 1, L]``), with
        DeepStack rows where the kind has them."""
        from vidpool.llm.fastv import FastVGenerator

        check_planning(fastv=fastv)
        return FastVGenerator(
            self.language_model, fastv, visual, position_ids=position_ids, deepstack=deepstack
        )

    def continuation_logprob(
        self,
        visual_tokens: torch.Tensor,
        prompt: str,
        continuation: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> tuple[float, bool]:
        """How likely the answer to ``prompt`` begins with ``continuation``, given the video's visual tokens.

        The prompt is built as :meth:`generate` builds it (chat template, generation prompt included) and
        ``continuation`` follows the generation prompt, tokenized with it
        (:func:`vidpool.llm.prompt.tokenize_continuation`).

        Returns:
            ``(log-probability of the continuation's tokens, whether greedy decoding gives exactly them)``.
        """
        text = self.prompt_text(prompt, timestamps=timestamps, history=history)
        before, _ = tokenize_around_marker(self.tokenizer, text, VIDEO_MARKER)
        after, ids = tokenize_continuation(self.tokenizer, text.split(VIDEO_MARKER, 1)[1], continuation)
        embeds = splice_embeddings(self.input_embeddings, before, visual_tokens, [*after, *ids])
        return continuation_logprob(self.language_model, embeds, ids)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, method={self.config.method!r}, position={self.config.position!r})"
