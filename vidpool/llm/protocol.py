"""What the planner and the pipeline use of a video LM, as a typed protocol.

:class:`VideoModel` names the public members of :class:`vidpool.llm.VideoLM` that code outside
``vidpool.llm`` relies on: the sizes the planner reads (``lm_spec``, ``vision_spec``,
``activation_bytes_per_frame``, ``prompt_tokens``, ``weight_modules``) and the run the pipeline drives
(``encode``, ``visual_tokens``, ``generate``). Both model kinds, native and transformers LLaVA, satisfy
it; a model of another library can too, without subclassing ``VideoLM``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

    from vidpool.encode.encoder import EncodedFrames
    from vidpool.llm.config import ModelConfig

__all__ = ["VideoModel"]


@runtime_checkable
class VideoModel(Protocol):
    """A video LM as the schedule and the pipeline see it.

    Attributes:
        kind: the registered model kind (``vidpool.llm.kinds.list_kinds()``).
        name: a display name (the checkpoint folder's).
        config: compression method, its position and parameters, default frames and budget.
        tokenizer: the LM's tokenizer.
    """

    kind: str
    name: str
    config: ModelConfig
    tokenizer: Any

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

    def activation_bytes_per_frame(
        self, frame_hw: tuple[int, int] | None = None, *, joint: bool = False
    ) -> int: ...

    def prompt_tokens(self, num_frames: int, duration: float | None = None) -> int:
        """Text tokens of the prompt about ``num_frames`` frames, with room for a question."""
        ...

    def encode_frames(self, frames: Any) -> torch.Tensor: ...

    def encode(self, frames: Any, *, joint: bool = False) -> EncodedFrames: ...

    def uses_joint(self, method: str | None = None) -> bool: ...

    @property
    def encoder_identity(self) -> str: ...

    def num_visual_tokens(
        self, num_frames: int, *, budget: int | None = None, method: str | None = None, **params: Any
    ) -> int: ...

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
