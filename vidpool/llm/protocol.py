"""What the planner, the pipeline, the benchmark and the scripts use of a video LM, as a typed protocol.

:class:`VideoModel` names every member of :class:`vidpool.llm.VideoLM` that code outside
``vidpool.llm`` calls: the sizes the planner reads (:class:`vidpool.schedule.spec.SizedModel`, which it
extends, and ``weight_modules``), the run the pipeline drives (``encode``, ``uses_joint``,
``compress_visual``, ``generate``) and what training and the benchmark reach for (``input_embeddings``,
``prompt_scores``, ``resolve_compression``). Both model kinds, native and transformers LLaVA, satisfy
it; a model of another library can too, without subclassing ``VideoLM``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from vidpool.schedule.spec import SizedModel

if TYPE_CHECKING:
    import torch

    from vidpool.encode.encoder import EncodedFrames
    from vidpool.llm.base import VisualTokens
    from vidpool.llm.config import ModelConfig

__all__ = ["VideoModel"]


@runtime_checkable
class VideoModel(SizedModel, Protocol):
    """A video LM as the schedule, the pipeline and the benchmark see it.

    Attributes:
        kind: the registered model kind (``vidpool.llm.kinds.list_kinds()``).
        name: a display name (the checkpoint folder's).
        config: compression method, its position and parameters, default frames and budget.
        tokenizer: the LM's tokenizer.
        joint_space: whether the model has a joint image-text space to score patches against a prompt.
    """

    config: ModelConfig
    tokenizer: Any
    joint_space: bool

    @property
    def device(self) -> torch.device:
        """Where visual tokens go to be spliced into the prompt."""
        ...

    @property
    def grid(self) -> tuple[int, int]:
        """``(h, w)`` patch grid of one encoded frame."""
        ...

    @property
    def lm_spec(self) -> dict[str, int]:
        """LM shape and size: ``num_layers``, ``num_kv_heads``, ``head_dim``, ``hidden_size``, ``vocab_size``,
        ``intermediate_size``, ``num_heads``, ``context_length`` (0: unknown), ``lm_param_bytes``, ``dtype_bytes``."""
        ...

    @property
    def vision_spec(self) -> dict[str, Any]:
        """Vision side: ``param_bytes`` (tower + projector), ``activation_bytes_per_frame``, ``grid``,
        ``width``, ``image_size`` and, for models with a joint space, ``joint_dim``."""
        ...

    @property
    def weight_modules(self) -> tuple[Any, ...]:
        """The modules holding all weights."""
        ...

    @property
    def input_embeddings(self) -> Any:
        """The LM's input embedding module, where the visual tokens are spliced into the prompt."""
        ...

    @property
    def encoder_identity(self) -> str: ...

    def encode_patches(self, frames: Any) -> torch.Tensor:
        """Vision features ``[T, h, w, C]`` of uint8 frames ``[T, H, W, 3]``."""
        ...

    def encode(self, frames: Any, *, joint: bool = False) -> EncodedFrames: ...

    def uses_joint(self, method: str | None = None) -> bool:
        """Whether a run of ``method`` encodes joint embeddings (the one answer: ``vidpool.compression``'s
        ``uses_joint``)."""
        ...

    def resolve_compression(
        self, method: str | None = None, budget: int | None = None, params: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], int | None]:
        """``(method, params, budget)`` a call runs with, over the model's configured defaults."""
        ...

    def prompt_scores(
        self, features: torch.Tensor, prompt: str, joint: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Relevance ``[T, h, w]`` of each patch to ``prompt``, or ``None`` without a joint space."""
        ...

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
    ) -> torch.Tensor: ...

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
        """:meth:`visual_tokens` with its provenance (what compression kept, the scores it used)."""
        ...

    def prompt_text(
        self,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
    ) -> str: ...

    def render(self, messages: list[dict[str, str]]) -> str: ...

    def generate(
        self,
        visual_tokens: torch.Tensor,
        prompt: str,
        *,
        timestamps: Sequence[float] | torch.Tensor | None = None,
        history: Sequence[tuple[str, str]] | None = None,
        stream: bool = False,
        **options: Any,
    ) -> str | Iterator[str]: ...
