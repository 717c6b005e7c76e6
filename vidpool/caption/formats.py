"""Where a run writes: the JSONL journal always, and a Parquet file made from it on request.

``--format parquet --out captions.parquet`` journals to ``captions.parquet.jsonl`` (what a restarted
run resumes from; keep it) and writes ``captions.parquet`` from it at the end of each run, in one
atomic rename, so the Parquet file is always whole.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vidpool.caption.fields import FIELDS, FORMATS
from vidpool.caption.journal import read_records
from vidpool.errors import InvalidArgumentError

__all__ = ["FORMATS", "arrow_schema", "journal_path", "output_format", "write_parquet"]

_TYPES = {
    "budget": "int64",
    "frames": "int64",
    "visual_tokens": "int64",
    "output_tokens": "int64",
    "decode_s": "float64",
    "encode_s": "float64",
    "compress_s": "float64",
    "generate_s": "float64",
    "model_s": "float64",
}


def arrow_schema() -> Any:
    """The pyarrow schema of a record (:data:`~vidpool.caption.worker.FIELDS`; every field nullable)."""
    import pyarrow as pa

    def arrow_type(name: str) -> Any:
        if name == "plan_notes":
            return pa.list_(pa.string())
        return getattr(pa, _TYPES.get(name, "string"))()

    return pa.schema([(name, arrow_type(name)) for name in FIELDS])


def output_format(out: str | os.PathLike, format: str | None) -> str:
    """``format``, else ``parquet`` for an ``.parquet`` output and ``jsonl`` otherwise."""
    if format is None:
        return "parquet" if Path(out).suffix.lower() == ".parquet" else "jsonl"
    if format not in FORMATS:
        raise InvalidArgumentError(f"unknown output format {format!r}; choose from {', '.join(FORMATS)}")
    return format


def journal_path(out: str | os.PathLike, format: str) -> Path:
    """The JSONL file a run appends to for the output ``out`` in ``format``."""
    return Path(out) if format == "jsonl" else Path(f"{os.fspath(out)}.jsonl")


def write_parquet(journal: str | os.PathLike, out: str | os.PathLike) -> int:
    """Write the records of ``journal`` to the Parquet file ``out`` (atomically); returns the rows."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise InvalidArgumentError(
            "Parquet output needs pyarrow: pip install pyarrow (or use --format jsonl)"
        ) from None
    schema = arrow_schema()
    rows = [{k: r.get(k) for k in FIELDS} for r in read_records(journal)]
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = Path(f"{os.fspath(out)}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    return table.num_rows
