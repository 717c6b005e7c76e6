"""The native model's configuration: a dataclass that round-trips through ``vidpool.json``.

A native checkpoint is a folder::

    vidpool.json             this config
    projector.safetensors    the projector weights
    encoder.safetensors      (optional) vision encoder weights, when ``encoder["weights"]`` names it
    lm/                      (optional) a Hugging Face causal LM folder, when ``lm["path"]`` names it
    adapter/                 (optional) a PEFT LoRA adapter merged into the LM, when ``lm["adapter"]`` names it

Relative paths in the config are resolved against the checkpoint folder, so a folder can be moved whole.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidpool.compression.registry import resolve_compression
from vidpool.errors import CheckpointError, InvalidArgumentError

__all__ = ["CONFIG_NAME", "ModelConfig", "resolve_compression", "resolve_path"]

CONFIG_NAME = "vidpool.json"
_POSITIONS = ("before", "after")


def _default_compress() -> dict[str, Any]:
    return {"method": "spatial", "params": {"stride": 2}, "position": "before"}


@dataclass
class ModelConfig:
    """Everything needed to assemble a video LM, as plain data.

    Attributes:
        kind: ``"native"``, ``"llava_onevision"`` or ``"llava_next_video"``.
        encoder: vision encoder spec passed to ``vidpool.encode.CLIPEncoder`` (``model``, ``weights``, ``layer``).
        projector: projector type name (see ``vidpool.llm.projector.list_projectors``).
        vision_width: channel count ``C`` of the encoder patch features the projector takes.
        lm: language model spec: ``path`` (folder or hub name), optional ``gguf_file``, optional ``tokenizer``,
            optional ``adapter`` (a LoRA adapter folder).
        compress: ``{"method": str, "params": dict, "position": "before" | "after"}`` the projector.
        num_frames: frames to sample by default.
        budget: default visual-token budget (``None``: the method's own count).
        system_prompt: optional system message; ``None`` keeps the chat template's default.
        untrained: parts whose weights are random rather than trained (``"encoder"``, ``"projector"``,
            ``"lm"``), so that a surface can say that the answers do not describe the video; empty when
            all are trained or nothing is said.
        notice: one line the model says about itself on every surface (the CLI's stderr, the demo's
            page): what it is and what it cannot do; ``None`` when it has nothing to say.
    """

    kind: str = "native"
    encoder: dict[str, Any] = field(default_factory=dict)
    projector: str = "mlp2x_gelu"
    vision_width: int | None = None
    lm: dict[str, Any] = field(default_factory=dict)
    compress: dict[str, Any] = field(default_factory=_default_compress)
    num_frames: int = 8
    budget: int | None = None
    system_prompt: str | None = None
    untrained: list[str] = field(default_factory=list)
    notice: str | None = None

    def __post_init__(self) -> None:
        merged = _default_compress()
        merged.update(self.compress or {})
        merged["params"] = dict(merged.get("params") or {})
        if merged["position"] not in _POSITIONS:
            raise InvalidArgumentError(
                f"compress.position must be 'before' or 'after' (the projector), got {merged['position']!r}"
            )
        self.compress = merged
        if self.num_frames < 1:
            raise InvalidArgumentError(f"num_frames must be >= 1, got {self.num_frames}")

    @property
    def method(self) -> str:
        """The default compression method name."""
        return self.compress["method"]

    @property
    def method_params(self) -> dict[str, Any]:
        """The default compression method parameters."""
        return dict(self.compress["params"])

    @property
    def position(self) -> str:
        """Where compression sits relative to the projector: ``"before"`` or ``"after"``."""
        return self.compress["position"]

    def resolve_compression(
        self, method: str | None = None, budget: int | None = None, params: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], int | None]:
        """``(method, params, budget)`` a call runs with: see :func:`resolve_compression`."""
        return resolve_compression(self.method, self.method_params, self.budget, method, budget, params)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(
                f"{CONFIG_NAME} has unknown keys {unknown}; known keys are {sorted(known)}. "
                "Was it written by a newer vidpool?"
            )
        return cls(**data)

    def save(self, folder: str | Path) -> Path:
        """Write ``vidpool.json`` into ``folder`` (created if needed) and return its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / CONFIG_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> ModelConfig:
        """Read ``vidpool.json`` from a checkpoint folder."""
        path = Path(folder) / CONFIG_NAME
        if not path.is_file():
            raise CheckpointError(f"{path} not found: a native checkpoint folder needs a {CONFIG_NAME}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


def resolve_path(folder: str | Path, value: str | None) -> str | None:
    """Resolve ``value`` against ``folder`` when it names something inside it; otherwise return it unchanged.

    ``"pkg:NAME"`` names the folder of an installed Python package (found without importing it), which
    is how wheels that carry model files are referenced. Hub names such as ``"org/model"`` that do
    not exist locally are returned as given.
    """
    if value is None:
        return None
    if value.startswith("pkg:"):
        spec = importlib.util.find_spec(value[4:])
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(f"package {value[4:]!r} named by {value!r} is not installed")
        return str(next(iter(spec.submodule_search_locations)))
    candidate = Path(folder) / value
    if not Path(value).is_absolute() and candidate.exists():
        return str(candidate)
    return value
