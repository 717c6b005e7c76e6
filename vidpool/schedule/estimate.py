"""Memory terms of one run, computed from shapes alone (no weights are touched).

A run has three phases that never overlap:

* encoding: decoded frames and vision-tower activations of one encoder batch (``encoder_activations``);
* compression: all vision features ``[T, h, w, C]``, the projected/pooled intermediates and the visual
  tokens (``visual_tokens``);
* generation: the KV cache and the prefill workspace with its input embeddings (``kv_cache`` +
  ``lm_activations``); with FastV the layers from its layer on cache and run only the kept visual
  tokens (:func:`lm_working_set`).

The weights live through all three, and so do the features when they are kept on the device
(``features_kept``; 0 when they wait on the CPU). So the predicted peak is::

    peak = weights + max(features_kept + encoder_activations,
                         visual_tokens,
                         features_kept + kv_cache + lm_activations)

and the plan asks for ``peak + margin`` to be free, where ``margin`` is :data:`MARGIN_FRACTION` of the
peak (plus :data:`CUDA_MARGIN_BYTES` on a GPU, for the CUDA context and allocator slack). The KV cache
term is the standard ``2 (K and V) x layers x kv_heads x head_dim x bytes x tokens``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

from vidpool.compression.api import num_output_tokens
from vidpool.compression.registry import resolve_compression, uses_joint
from vidpool.encode.memory import vit_activation_bytes_per_frame
from vidpool.options import DEFAULT_MAX_NEW_TOKENS, FastV

__all__ = [
    "CUDA_MARGIN_BYTES",
    "MARGIN_FRACTION",
    "MemoryEstimate",
    "ModelSpec",
    "estimate_memory",
    "kv_cache_bytes",
    "llama_param_count",
    "lm_working_set",
    "margin_bytes",
    "vit_activation_bytes_per_frame",
    "vit_param_count",
]

#: the safety margin on top of the predicted peak: a fraction of it, plus a fixed amount on CUDA
MARGIN_FRACTION = 0.08
CUDA_MARGIN_BYTES = 256 * 2**20


def margin_bytes(peak: int, cuda: bool = False) -> int:
    """The margin a plan keeps free beside a predicted ``peak``."""
    return int(MARGIN_FRACTION * peak) + (CUDA_MARGIN_BYTES if cuda else 0)


def kv_cache_bytes(num_layers: int, num_kv_heads: int, head_dim: int, dtype_bytes: int, tokens: int) -> int:
    """Bytes of a full KV cache: ``2 x layers x kv_heads x head_dim x dtype_bytes x tokens``."""
    return 2 * num_layers * num_kv_heads * head_dim * dtype_bytes * tokens


def llama_param_count(
    hidden: int,
    layers: int,
    heads: int,
    kv_heads: int,
    intermediate: int,
    vocab: int,
    *,
    tie_embeddings: bool = False,
) -> int:
    """Parameters of a LLaMA-shaped decoder (no biases, RMSNorm, gated MLP)."""
    head_dim = hidden // heads
    attn = hidden * heads * head_dim + 2 * hidden * kv_heads * head_dim + heads * head_dim * hidden
    block = attn + 3 * hidden * intermediate + 2 * hidden
    embeddings = vocab * hidden * (1 if tie_embeddings else 2)
    return layers * block + embeddings + hidden


def vit_param_count(width: int, layers: int, patch: int, image_size: int, mlp_ratio: float = 4.0) -> int:
    """Parameters of a CLIP-style ViT vision tower (pre-norm blocks with biases, class token)."""
    tokens = (image_size // patch) ** 2 + 1
    mlp = int(width * mlp_ratio)
    block = 4 * width * width + 4 * width + 2 * width * mlp + mlp + width + 4 * width
    return layers * block + 3 * patch * patch * width + tokens * width + width + 4 * width


@dataclass
class ModelSpec:
    """Everything the planner needs to know about a model, without its weights.

    ``grid`` and ``width`` describe the vision features ``[T, h, w, C]``; ``hidden_size`` is the LM's;
    ``compress_position`` is ``"before"`` or ``"after"`` the projector; ``joint_dim`` is the CLIP joint
    space's size D when the model scores patches against the prompt (0: it never does). ``projector_param_bytes``
    defaults to an ``mlp2x_gelu`` projector's size; 0 when ``vision_param_bytes`` already includes it.
    ``projector_layers`` is 1 for a linear projector, 2 for an MLP (LLaVA's ``mlp2x_gelu``, every
    transformers LLaVA), whose hidden layer exists next to its output. ``context_length`` is the LM's
    number of positions (``max_position_embeddings``, a GGUF header's ``*.context_length``; 0: unknown,
    not checked). ``suffix_tokens`` are learned tokens the model appends after a video (OneVision: 1).
    ``method``, ``method_params`` and ``budget`` are the checkpoint's defaults.
    """

    num_layers: int
    num_kv_heads: int
    head_dim: int
    hidden_size: int
    vocab_size: int
    lm_param_bytes: int
    dtype_bytes: int
    vision_param_bytes: int
    activation_bytes_per_frame: int
    grid: tuple[int, int]
    width: int
    image_size: int
    projector_param_bytes: int | None = None
    intermediate_size: int = 0
    num_heads: int = 0
    method: str = "none"
    method_params: dict[str, Any] = field(default_factory=dict)
    compress_position: str = "after"
    num_frames: int = 16
    budget: int | None = None
    name: str = "model"
    model: Any = field(default=None, repr=False, compare=False)
    joint_dim: int = 0
    projector_layers: int = 2
    context_length: int = 0
    suffix_tokens: int = 0
    frame_activation: Callable[[tuple[int, int], bool], int] | None = field(
        default=None, repr=False, compare=False
    )
    prompt_counter: Callable[[int, float | None], int] | None = field(default=None, repr=False, compare=False)
    #: decoded frames per temporal step of the features (Qwen-VL: 2 frames make one ``[H', W']`` grid)
    frames_per_step: int = 1

    def __post_init__(self) -> None:
        self.grid = (int(self.grid[0]), int(self.grid[1]))
        if not self.intermediate_size:
            self.intermediate_size = int(self.hidden_size * 8 / 3)
        if not self.num_heads:
            self.num_heads = max(1, self.hidden_size // max(1, self.head_dim))
        if self.projector_param_bytes is None:
            self.projector_param_bytes = (self.width + self.hidden_size) * self.hidden_size * self.dtype_bytes

    def activation_bytes(self, frame_hw: tuple[int, int] = (0, 0), joint: bool = False) -> int:
        """Encoder activation bytes one frame adds to a batch, for decoded frames of ``frame_hw``
        (``joint``: the encoder also runs its last block and projects the patches into CLIP's joint space)."""
        if self.frame_activation is not None and frame_hw[0] and frame_hw[1]:
            return int(self.frame_activation(frame_hw, joint))
        return int(self.activation_bytes_per_frame)

    def uses_joint(self, method: str) -> bool:
        """Whether a run with ``method`` keeps joint-space patch embeddings beside the features
        (:func:`vidpool.compression.registry.uses_joint`; a joint space is a nonzero ``joint_dim``)."""
        return uses_joint(method, self.joint_dim > 0)

    def prompt_tokens(self, num_frames: int, duration: float | None = None) -> int:
        """Text tokens of a prompt about ``num_frames`` frames, with room for a question."""
        if self.prompt_counter is not None:
            try:
                return int(self.prompt_counter(num_frames, duration))
            except Exception:  # the tokenizer could not render it: use the rule of thumb
                pass
        # chat template plus "The video has N frames sampled at 0.0s, 2.0s, ..." (about 4 tokens a frame)
        return 64 + 4 * num_frames

    @property
    def weight_bytes(self) -> int:
        return self.vision_param_bytes + self.projector_param_bytes + self.lm_param_bytes

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """Build from a flat dict of the field names, ignoring unknown keys."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def resolve_compression(
        self, method: str | None, budget: int | None, params: dict[str, Any] | None
    ) -> tuple[str, dict[str, Any], int | None]:
        """``(method, params, budget)`` of a request over this checkpoint's defaults, as the model resolves
        it (:func:`vidpool.compression.registry.resolve_compression`: a budget replaces the default's
        stride/size)."""
        return resolve_compression(self.method, self.method_params, self.budget, method, budget, params)

    def num_visual_tokens(self, num_frames: int, method: str, budget: int | None, params: dict) -> int:
        """Visual tokens the LM sees for ``num_frames`` frames with ``method`` at ``budget`` and exactly
        ``params`` (resolved ones, see :meth:`resolve`)."""
        if self.model is not None:
            return int(self.model.num_visual_tokens(num_frames, budget=budget, method=method, **params))
        steps = -(-int(num_frames) // self.frames_per_step)
        count = num_output_tokens(method, (steps, *self.grid), budget=budget, **params)
        return int(count) + self.suffix_tokens


@dataclass(frozen=True)
class MemoryEstimate:
    """Predicted bytes on the compute device, by term. ``peak`` excludes the safety ``margin``."""

    weights: int
    encoder_activations: int
    visual_tokens: int
    kv_cache: int
    lm_activations: int
    margin: int
    features_kept: int = 0

    @property
    def peak(self) -> int:
        kept = self.features_kept
        return self.weights + max(
            kept + self.encoder_activations, self.visual_tokens, kept + self.kv_cache + self.lm_activations
        )

    @property
    def required(self) -> int:
        return self.peak + self.margin

    def as_dict(self) -> dict[str, int]:
        names = (
            "weights",
            "encoder_activations",
            "visual_tokens",
            "kv_cache",
            "lm_activations",
            "margin",
            "features_kept",
        )
        return {n: getattr(self, n) for n in names} | {"peak": self.peak, "required": self.required}


def lm_working_set(
    spec: ModelSpec, num_tokens: int, prompt_tokens: int, max_new_tokens: int, fastv: FastV | None = None
) -> tuple[int, int]:
    """``(KV cache bytes, prefill transient bytes)`` of a prompt with ``num_tokens`` visual tokens.

    transformers' forward holds one decoder layer's transients over the ``n`` prompt positions,
    ``n (6 hidden + 3 intermediate)`` elements (input, norm, q/k/v/o, gated MLP, and the final norm of
    every position). With ``fastv`` (:class:`vidpool.options.FastV`: layer ``K`` keeps ``R`` visual
    tokens) the layers run one by one and only the last position is normed at the end, so a layer
    holds ``n (4 hidden + 3 intermediate)``; the first ``K`` layers run and cache all ``n`` positions,
    the other ``L - K`` the ``n'`` kept ones while the full input embeddings are still held; the
    ranking at layer ``K`` holds the input, its norm and the head-repeated keys of every position
    (``n (3 hidden + 2 kv width)`` elements, a float32 copy of the keys for half precision, and the
    rotary tables), which matters only when ``K == 0``.
    """
    b = spec.dtype_bytes
    full = num_tokens + prompt_tokens
    layers, heads, head_dim = spec.num_layers, spec.num_kv_heads, spec.head_dim
    if fastv is None:
        per_position = (6 * spec.hidden_size + 3 * spec.intermediate_size) * b
        return kv_cache_bytes(layers, heads, head_dim, b, full + max_new_tokens), full * per_position
    first = min(fastv.layer, layers)
    pruned = fastv.kept(num_tokens) + prompt_tokens
    kv = kv_cache_bytes(first, heads, head_dim, b, full + max_new_tokens) + kv_cache_bytes(
        layers - first, heads, head_dim, b, pruned + max_new_tokens
    )
    per_position = (4 * spec.hidden_size + 3 * spec.intermediate_size) * b
    repeated = spec.num_heads * head_dim * 4 if b < 4 else 0  # the float32 copy of the keys
    ranking = full * ((3 * spec.hidden_size + 2 * heads * head_dim) * b + repeated + 2 * head_dim * 4)
    before = full * per_position if first else ranking
    after = pruned * per_position + full * spec.hidden_size * b
    return kv, max(before, after)


def estimate_memory(
    spec: ModelSpec,
    *,
    num_frames: int,
    num_tokens: int,
    encoder_batch: int,
    frame_size: tuple[int, int] = (0, 0),
    prompt_tokens: int = 0,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    lm_weight_bytes: int | None = None,
    features_on_device: bool = True,
    joint: bool = False,
    cuda: bool = False,
    fastv: FastV | None = None,
) -> MemoryEstimate:
    """Predict the device memory of a run.

    ``frame_size`` is the decoded ``(height, width)`` (preprocessing of full-size frames is part of the
    encoder's activations). ``lm_weight_bytes`` is the LM share placed on the device (default: all of it).
    ``features_on_device=False`` keeps the vision features ``[T, h, w, C]`` on the CPU between phases.
    ``joint=True``: joint-space embeddings ``[T, h, w, D]`` are encoded and kept with the features.
    ``fastv``: visual tokens pruned inside the LM (:func:`lm_working_set`).
    """
    b = spec.dtype_bytes
    lm_weights = spec.lm_param_bytes if lm_weight_bytes is None else lm_weight_bytes
    weights = spec.vision_param_bytes + spec.projector_param_bytes + lm_weights

    patches = spec.grid[0] * spec.grid[1]
    encoder = encoder_batch * spec.activation_bytes(frame_size, joint)

    steps = -(-int(num_frames) // spec.frames_per_step)  # feature grids: frames over the temporal patch
    features = steps * patches * (spec.width + (spec.joint_dim if joint else 0)) * b
    tokens = num_tokens * spec.hidden_size * b
    hidden_copies = 2 if spec.projector_layers > 1 else 1  # an MLP's hidden layer next to its output
    if spec.compress_position == "after":
        # every patch is projected, then pooled while the projection is held
        projected = steps * patches * spec.hidden_size * b
        transient = max(hidden_copies * projected, projected + tokens) - tokens
    else:
        # the pooled features, then the projector's hidden layer next to the tokens
        transient = num_tokens * spec.width * b + (hidden_copies - 1) * tokens
    visual = features + transient + tokens

    kv, prefill = lm_working_set(spec, num_tokens, prompt_tokens, max_new_tokens, fastv)
    # the kept visual tokens, then during prefill the spliced input embeddings and one decoder layer's
    # transients, and the last position's float32 logits
    lm_act = tokens + prefill + spec.vocab_size * 4

    kept = features if features_on_device else 0
    estimate = MemoryEstimate(
        weights=int(weights),
        encoder_activations=int(encoder),
        visual_tokens=int(visual),
        kv_cache=int(kv),
        lm_activations=int(lm_act),
        margin=0,
        features_kept=int(kept),
    )
    return replace(estimate, margin=margin_bytes(estimate.peak, cuda))
