"""Memory planning for a run: what fits on the device, and chunked execution with OOM back-off.

``vidpool.plan(video_info, model, device, ...)`` decides frames, encoder batch, compression and
placement from shapes alone and predicts peak memory by term; ``ChunkRunner`` executes with back-off.
"""

from __future__ import annotations

from vidpool.encode.measure import measure_peak
from vidpool.schedule.chunked import ChunkRunner, is_out_of_memory, run_chunked
from vidpool.schedule.device import DeviceMemory, device_memory, format_bytes, free_memory, parse_bytes
from vidpool.schedule.estimate import MemoryEstimate, ModelSpec, estimate_memory, kv_cache_bytes
from vidpool.schedule.planner import DEGRADE_METHOD, MIN_TOKENS_PER_FRAME, Plan, plan
from vidpool.schedule.spec import model_spec

__all__ = [
    "DEGRADE_METHOD",
    "MIN_TOKENS_PER_FRAME",
    "ChunkRunner",
    "DeviceMemory",
    "MemoryEstimate",
    "ModelSpec",
    "Plan",
    "device_memory",
    "estimate_memory",
    "format_bytes",
    "free_memory",
    "is_out_of_memory",
    "kv_cache_bytes",
    "measure_peak",
    "model_spec",
    "parse_bytes",
    "plan",
    "run_chunked",
]
