"""The registry of model kinds: a name -> how to load a checkpoint of it and how to size it unloaded.

``native`` (a ``vidpool.json`` folder) is registered here. Kinds whose code lives in an integration
register themselves when their module is imported; :data:`PROVIDERS` is the one map from such a kind's
name to its module, which :func:`get_kind` imports on first use, so ``vidpool.llm`` never imports an
integration (or its dependencies) before a checkpoint of that kind is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidpool.errors import CheckpointError
from vidpool.schedule.spec import register_spec

__all__ = ["PROVIDERS", "ModelKind", "get_kind", "kind_of_model_type", "list_kinds", "register_kind"]

#: kind name -> the module that registers it (imported lazily)
PROVIDERS: dict[str, str] = {
    "llava_onevision": "vidpool.integrations.transformers_llava",
    "llava_next_video": "vidpool.integrations.transformers_llava",
    "qwen2_5_vl": "vidpool.integrations.transformers_qwen",
    "qwen3_vl": "vidpool.integrations.transformers_qwen",
}

_KINDS: dict[str, ModelKind] = {}


@dataclass(frozen=True)
class ModelKind:
    """One kind of checkpoint.

    Attributes:
        name: the kind's name (``VideoLM.kind``).
        load: ``load(folder, **LoadOptions fields) -> VideoModel``.
        read_spec: ``read_spec(folder, dtype_bytes, device_type) -> vidpool.schedule.ModelSpec`` from the
            folder's config files alone (no weights), for the planner.
        model_types: transformers ``config.json`` ``model_type`` values that mean this kind.
    """

    name: str
    load: Callable[..., Any]
    read_spec: Callable[[Path, int, str], Any]
    model_types: tuple[str, ...] = ()


def register_kind(kind: ModelKind) -> ModelKind:
    """Add ``kind`` to the registry (a name is registered once) and its ``read_spec`` to the planner's."""
    if not kind.name or kind.name in _KINDS:
        raise ValueError(f"model kind {kind.name!r} is empty or already registered")
    _KINDS[kind.name] = kind
    register_spec(kind.name, kind.read_spec)
    return kind


def list_kinds() -> list[str]:
    """Every kind name, registered or provided by an integration not imported yet, sorted."""
    return sorted(set(_KINDS) | set(PROVIDERS))


def get_kind(name: str) -> ModelKind:
    """The kind called ``name``, importing the integration that provides it if needed."""
    if name not in _KINDS and name in PROVIDERS:
        importlib.import_module(PROVIDERS[name])
    try:
        return _KINDS[name]
    except KeyError:
        raise CheckpointError(f"unknown model kind {name!r}; the kinds are {list_kinds()}") from None


def kind_of_model_type(model_type: str | None) -> str | None:
    """The kind whose checkpoints have this transformers ``model_type``, or None."""
    for name in list_kinds():
        if model_type in get_kind(name).model_types:
            return name
    return None


def _load_native(folder: str | Path, **options: Any) -> Any:
    from vidpool.llm.native import NativeVideoLM

    return NativeVideoLM.from_folder(folder, **options)


def _native_spec(folder: Path, dtype_bytes: int, device_type: str) -> Any:
    from vidpool.llm.config import ModelConfig
    from vidpool.llm.spec import native_folder_spec

    return native_folder_spec(ModelConfig.load(folder), folder, dtype_bytes, device_type)


register_kind(ModelKind("native", _load_native, _native_spec))
