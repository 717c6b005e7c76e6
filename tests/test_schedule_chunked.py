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


# Errors as the allocators raise them. The RuntimeError texts are torch's own messages.
ALLOCATOR_ERRORS = [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB"),
    MemoryError(),
    RuntimeError(
        "[enforce fail at alloc_cpu.cpp:118] DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 bytes"
    ),
    RuntimeError(
        "[enforce fail at ..\\c10\\core\\impl\\alloc_cpu.cpp:72] data. DefaultCPUAllocator: not enough memory: you tried to allocate 8 bytes."
    ),
    RuntimeError(
        "MPS backend out of memory (MPS allocated: 17.00 GB, other allocations: 1.02 GB, max allowed: 18.13 GB)."
    ),
]
OTHER_ERRORS = [
    RuntimeError("shape '[2, 3]' is invalid for input of size 7"),
    ValueError("out of range"),
    OutOfMemoryError("an inner runner already gave up"),
    InvalidArgumentError("bad input"),
]


def _fails_once(exc, calls):
    def run(start, stop):
        calls.append(stop - start)
        if len(calls) == 1:
            raise exc
        return list(range(start, stop))

    return run


@pytest.mark.parametrize("exc", ALLOCATOR_ERRORS + OTHER_ERRORS, ids=lambda e: f"{type(e).__name__}:{e}"[:60])
def test_encoder_batches_and_chunks_back_off_on_the_same_errors(exc):
    """One detector: the encoder's batching and the pipeline's runner halve on exactly the same errors."""
    from vidpool.encode.batching import iter_batches

    oom = is_out_of_memory(exc)
    assert oom == any(exc is e for e in ALLOCATOR_ERRORS)
    runs = {
        "encoder": lambda calls: [r for _, _, r in iter_batches(_fails_once(exc, calls), 8, 8)],
        "runner": lambda calls: list(ChunkRunner(8).call(_fails_once(exc, calls), 0, 8)),
    }
    for name, go in runs.items():
        calls: list[int] = []
        if oom:
            assert [x for part in go(calls) for x in part] == list(range(8)), name
            assert calls == [8, 4, 4], name
        else:
            with pytest.raises(type(exc)) as info:
                go(calls)
            assert info.value is exc and calls == [8], name  # never retried, never wrapped


def test_the_encoder_gives_up_like_the_runner_listing_what_it_tried():
    from vidpool.encode.batching import iter_batches

    def run(start, stop):
        raise RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)")

    with pytest.raises(OutOfMemoryError, match=r"tried 4, 2, 1\).*single frame") as info:
        list(iter_batches(run, 6, 4))
    assert isinstance(info.value.__cause__, RuntimeError)


def test_advice_says_what_to_do():
    def run(start, stop):
        raise MemoryError

    runner = ChunkRunner(4, min_chunk=2, what="windows", advice="lower the resolution")
    with pytest.raises(OutOfMemoryError, match=r"2 windows per chunk \(tried 4, 2\); lower the resolution"):
        list(runner.call(run, 0, 8))
