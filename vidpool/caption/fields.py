"""The names a captioning run is described by, importable without torch (the command's parser uses them)."""

from __future__ import annotations

__all__ = ["ENGINES", "FIELDS", "FORMATS"]

#: where a run executes: this process, ``torchrun`` processes (one per GPU) or a Ray cluster
ENGINES = ("local", "torchrun", "ray")

#: output formats; Parquet is written from the JSONL journal
FORMATS = ("jsonl", "parquet")

#: the keys of every output record, in order (``error``/``error_type`` are ``None`` for a caption,
#: ``caption`` is ``None`` for a failure; planning fields are ``None`` when the video failed before;
#: ``plan_notes`` says what the plan changed from the request, e.g. fewer frames than asked, or ``None``)
FIELDS = (
    "id",
    "path",
    "caption",
    "error",
    "error_type",
    "model",
    "method",
    "budget",
    "frames",
    "visual_tokens",
    "plan_notes",
    "output_tokens",
    "decode_s",
    "encode_s",
    "compress_s",
    "generate_s",
    "model_s",
)
