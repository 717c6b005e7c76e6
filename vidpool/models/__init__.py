"""Models vidpool can build locally, and the default model: ``vidpool models list`` / ``build NAME``.

>>> from vidpool.models import build_model, default_model   # doctest: +SKIP
>>> build_model("vidpool-synth")                            # doctest: +SKIP
PosixPath('/home/me/.cache/vidpool/models/vidpool-synth')
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
    model_notice_line,
    portable_path,
    say_notice,
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
    "model_notice_line",
    "portable_path",
    "say_notice",
    "untrained_parts",
]
