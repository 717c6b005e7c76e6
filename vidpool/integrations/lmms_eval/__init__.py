"""lmms-eval plugin: the ``vidpool`` model and the synthetic benchmark as a local, offline task.

lmms-eval finds the model through the ``lmms_eval.models`` entry point (:func:`manifests`); this
package imports lmms-eval only when the model class itself is asked for, so that reading the entry
point stays cheap.

>>> from vidpool.integrations.lmms_eval import export_task          # doctest: +SKIP
>>> folder = export_task(items, "bench/lmms")                         # doctest: +SKIP
>>> print(lmms_eval_command(folder, model="/path/to/checkpoint"))    # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "MODEL_ID",
    "VidpoolLMM",
    "VidpoolSimpleLMM",
    "export_task",
    "lmms_eval_command",
    "manifests",
    "parse_answer",
    "parse_model_args",
]

#: the name lmms-eval's ``--model`` takes
MODEL_ID = "vidpool"

_LAZY = {
    "VidpoolLMM": "vidpool.integrations.lmms_eval.model",
    "VidpoolSimpleLMM": "vidpool.integrations.lmms_eval.model",
    "parse_model_args": "vidpool.integrations.lmms_eval.model",
    "export_task": "vidpool.integrations.lmms_eval.export",
    "lmms_eval_command": "vidpool.integrations.lmms_eval.export",
    "parse_answer": "vidpool.integrations.lmms_eval.task_utils",
}


def manifests() -> list[Any]:
    """The ``ModelManifest`` lmms-eval registers for ``--model vidpool`` (the ``lmms_eval.models``
    entry point): the chat class, and the simple class that ``--force_simple`` picks."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return [
        ModelManifest(
            model_id=MODEL_ID,
            chat_class_path="vidpool.integrations.lmms_eval.model.VidpoolLMM",
            simple_class_path="vidpool.integrations.lmms_eval.model.VidpoolSimpleLMM",
        )
    ]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vidpool.integrations.lmms_eval' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
