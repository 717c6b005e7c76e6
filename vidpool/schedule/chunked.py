"""Chunked execution with out-of-memory back-off, as the planner's runs use it.

The mechanism lives in :mod:`vidpool.backoff`, below every stage, so that the encoder's own batching
(which ``schedule`` drives and must not import back) halves on the same errors in the same way.
"""

from __future__ import annotations

from vidpool.backoff import ChunkRunner, is_out_of_memory, run_chunked

__all__ = ["ChunkRunner", "is_out_of_memory", "run_chunked"]
