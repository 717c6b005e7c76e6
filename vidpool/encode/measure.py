"""Measure the peak memory a piece of work allocates, to check the planner against reality.

CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated
at the start. CPU: torch's own allocator reports every allocation and free of tensor storage to the
profiler (``profile_memory=True``); the running sum of those events, in time order, peaks at the
bytes of tensor storage the work held at once. Unlike RSS this ignores the Python heap, the
allocator's free lists and shared libraries, which is what the plan predicts: tensor bytes.

On the CPU only allocations made on the calling thread (and torch's intra-op threads) are seen, so
measure non-streaming generation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["measure_peak"]

T = TypeVar("T")


def _cpu_peak(fn: Callable[[], T]) -> tuple[T, int]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn()
    events = [
        e
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU
    ]
    events.sort(key=lambda e: e.start_ns())
    level = peak = 0
    for event in events:
        level += event.nbytes()
        peak = max(peak, level)
    return result, peak


def measure_peak(fn: Callable[[], T], device: Any = "cpu") -> tuple[T, int]:
    """Run ``fn()`` and return ``(its result, peak bytes of tensor memory it held above the start)``."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        start = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        result = fn()
        torch.cuda.synchronize(dev)
        return result, int(torch.cuda.max_memory_allocated(dev) - start)
    return _cpu_peak(fn)
