"""Run work in chunks and back off on out-of-memory: halve the chunk and retry, down to a floor.

The one mechanism for every stage that sizes its batches from a memory estimate: the encoder's
batches (:func:`vidpool.encode.batching.iter_batches`) and the pipeline's chunks
(``vidpool.schedule.ChunkRunner``). It sits beside :mod:`vidpool.errors`, below the stages, because
``schedule`` drives ``encode`` and the encoder may not import ``schedule``.

The chunk size that finally worked is kept for the rest of the run (memory pressure rarely goes away
by itself). When the smallest chunk still fails, :class:`~vidpool.errors.OutOfMemoryError` lists
every size that was tried.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from vidpool.errors import OutOfMemoryError, VidpoolError

__all__ = ["DEFAULT_ADVICE", "ChunkRunner", "free_cached_memory", "is_out_of_memory", "run_chunked"]

T = TypeVar("T")

# What allocators say when they fail without raising torch.OutOfMemoryError: the CPU allocator
# ("DefaultCPUAllocator: can't allocate memory" on Linux, "not enough memory" on Windows), MPS
# ("MPS backend out of memory") and older CUDA builds.
_OOM_MESSAGES = (
    "out of memory",
    "can't allocate memory",
    "cannot allocate memory",
    "not enough memory",
    "failed to allocate",
)

DEFAULT_ADVICE = "use fewer frames, a smaller token budget, max_memory, or a smaller model"


def _torch_oom_types() -> tuple[type[BaseException], ...]:
    import torch

    # torch.OutOfMemoryError is the newer, device-neutral name of torch.cuda.OutOfMemoryError (the
    # same class); older releases within the declared torch>=2.1 have only the latter.
    types = {torch.cuda.OutOfMemoryError, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)}
    return tuple(types)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocator failure worth retrying with less work.

    True for ``torch.OutOfMemoryError`` / ``torch.cuda.OutOfMemoryError``, Python's ``MemoryError``,
    and ``RuntimeError`` s whose message says an allocation failed (CPU and MPS allocators). False
    for every :class:`~vidpool.errors.VidpoolError`, including vidpool's own ``OutOfMemoryError``: an
    inner runner that already gave up must not be retried by an outer one.
    """
    if isinstance(exc, VidpoolError):
        return False
    if isinstance(exc, (*_torch_oom_types(), MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _OOM_MESSAGES)


def free_cached_memory() -> None:
    """Hand cached device blocks back after an OOM so the retry can use them."""
    import torch

    # The CPU allocator returns freed blocks at once; the CUDA and MPS caching allocators keep them,
    # and a failed step's tensors may still be held by reference cycles until a collection.
    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        gc.collect()
        torch.mps.empty_cache()


class ChunkRunner:
    """Apply a function to consecutive slices of a sequence, halving the slice length on OOM.

    ``chunk_size`` is the first length tried, ``min_chunk`` the floor. ``tried`` records every
    length attempted, in order; ``chunk_size`` is the length in use now. ``what`` names the unit in
    error messages (``"frames"``) and ``advice`` says what to do when even ``min_chunk`` fails.
    """

    def __init__(
        self, chunk_size: int, *, min_chunk: int = 1, what: str = "items", advice: str = DEFAULT_ADVICE
    ):
        if chunk_size < 1 or min_chunk < 1:
            raise ValueError(f"chunk sizes must be >= 1, got chunk_size={chunk_size}, min_chunk={min_chunk}")
        self.chunk_size = max(int(chunk_size), int(min_chunk))
        self.min_chunk = int(min_chunk)
        self.what = what
        self.advice = advice
        self.tried: list[int] = []
        self.failures: list[str] = []

    def _back_off(self, exc: BaseException, size: int) -> None:
        self.failures.append(
            f"{size} {self.what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        )
        free_cached_memory()
        if size <= self.min_chunk:
            tried = ", ".join(str(s) for s in self.tried)
            raise OutOfMemoryError(
                f"out of memory even with {size} {self.what} per chunk (tried {tried}); {self.advice}"
            ) from exc
        self.chunk_size = max(self.min_chunk, size // 2)

    def call(self, fn: Callable[[int, int], T], start: int, stop: int) -> Iterator[T]:
        """Yield ``fn(a, b)`` over ``[start, stop)`` in slices ``[a, b)`` of at most ``chunk_size``."""
        pos = start
        while pos < stop:
            size = min(self.chunk_size, stop - pos)
            self.tried.append(size)
            try:
                result = fn(pos, pos + size)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._back_off(exc, size)
                continue
            pos += size
            yield result

    def map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``[fn(items[a:b]) ...]`` over consecutive slices; works for lists, arrays and tensors."""
        return list(self.call(lambda a, b: fn(items[a:b]), 0, len(items)))


def run_chunked(
    fn: Callable[[Any], T], items: Sequence[Any], chunk_size: int, *, min_chunk: int = 1, what: str = "items"
) -> list[T]:
    """Apply ``fn`` to slices of ``items`` of ``chunk_size``, halving on OOM; see :class:`ChunkRunner`."""
    return ChunkRunner(chunk_size, min_chunk=min_chunk, what=what).map(fn, items)
