"""Models vidpool can build locally, and the default model: ``vidpool models list`` / ``build NAME``.

>>> from vidpool.models import build_model, default_model   # doctest: +SKIP
>>> build_model("smollm2-native")                           # doctest: +SKIP
PosixPath('/home/me/.cache/vidpool/models/smollm2-native')
"""

from __future__ import annotations

from vidpool.models.store import (
    DEFAULT_MODEL,
    MODEL_ENV,
    ModelEntry,
    build_model,
    default_model,
    home,
    is_built,
    list_models,
    model_dir,
    model_names,
    untrained_parts,
)

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_ENV",
    "ModelEntry",
    "build_model",
    "default_model",
    "home",
    "is_built",
    "list_models",
    "model_dir",
    "model_names",
    "untrained_parts",
]
