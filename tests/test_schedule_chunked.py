"""Chunked execution: halve the chunk on out-of-memory, keep going, and give up with what was tried."""

from __future__ import annotations

import pytest
import torch

from vidpool.errors import InvalidArgumentError, OutOfMemoryError
from vidpool.schedule import ChunkRunner, is_out_of_memory, run_chunked


def oom_above(limit, calls):
    def fn(chunk):
        calls.append(len(chunk))
        if len(chunk) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [x * 10 for x in chunk]

    return fn


def test_halves_until_it_fits_and_keeps_the_smaller_chunk():
    calls: list[int] = []
    runner = ChunkRunner(16, what="frames")
    out = runner.map(oom_above(5, calls), list(range(20)))
    assert [x for part in out for x in part] == [x * 10 for x in range(20)]
    assert calls[:3] == [16, 8, 4]  # backed off twice, then stayed at 4
    assert set(calls[3:]) == {4}
    assert runner.chunk_size == 4 and runner.tried == calls


def test_gives_up_after_the_smallest_chunk_with_what_it_tried():
    calls: list[int] = []
    with pytest.raises(OutOfMemoryError) as info:
        run_chunked(oom_above(0, calls), list(range(8)), 8, what="frames")
    message = str(info.value)
    assert "tried 8, 4, 2, 1" in message and "1 frames" in message
    assert calls == [8, 4, 2, 1]
    assert isinstance(info.value.__cause__, torch.OutOfMemoryError)


def test_min_chunk_is_the_floor():
    calls: list[int] = []
    with pytest.raises(OutOfMemoryError, match="tried 8, 4"):
        run_chunked(oom_above(2, calls), list(range(8)), 8, min_chunk=4)
    assert calls == [8, 4]


def test_cpu_allocator_failures_count_as_oom_but_other_errors_do_not():
    assert is_out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory")
    )
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(OutOfMemoryError("ours, already final"))

    def broken(chunk):
        raise InvalidArgumentError("bad input")

    with pytest.raises(InvalidArgumentError):
        run_chunked(broken, [1, 2, 3], 2)


def test_call_over_ranges():
    runner = ChunkRunner(3)
    assert list(runner.call(lambda a, b: (a, b), 2, 10)) == [(2, 5), (5, 8), (8, 10)]
    with pytest.raises(ValueError):
        ChunkRunner(0)
