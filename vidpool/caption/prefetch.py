"""Ordered prefetching: ``fn`` runs on the next items in worker threads while the caller works on one.

Decoding a video is I/O and native code (PyAV, decord) that releases the GIL, so threads overlap it
with the model's work without copying frames between processes. The window is bounded: at most
``depth`` results wait decoded (or being decoded) beyond the one the caller holds, so memory stays
at ``depth + 1`` decoded videos however long the list is.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from vidpool.errors import InvalidArgumentError

__all__ = ["prefetch"]

T = TypeVar("T")
R = TypeVar("R")


def prefetch(
    items: Iterable[T], fn: Callable[[T], R], *, depth: int = 2, workers: int = 1
) -> Iterator[tuple[R, float]]:
    """``(fn(item), waited)`` for each of ``items``, in order; ``waited`` is how long the caller waited
    for that result, in seconds (0 when it was ready: the caller never waited for it).

    ``depth=0`` runs ``fn`` in the caller's thread, one item after another (``waited`` is then the
    whole time of ``fn``). An exception of ``fn`` is raised here, at its item. Closing the iterator
    early cancels what has not started and waits for what has.
    """
    if not isinstance(depth, int) or depth < 0:
        raise InvalidArgumentError(f"prefetch depth must be an integer >= 0, got {depth!r}")
    if not isinstance(workers, int) or workers < 1:
        raise InvalidArgumentError(f"decode workers must be an integer >= 1, got {workers!r}")
    if depth == 0:
        for item in items:
            start = time.perf_counter()
            result = fn(item)
            yield result, time.perf_counter() - start
        return
    source = iter(items)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vidpool-prefetch")
    pending: deque[Future[R]] = deque()

    def top_up(limit: int) -> None:
        while len(pending) < limit:
            try:
                item = next(source)
            except StopIteration:
                return
            pending.append(pool.submit(fn, item))

    try:
        top_up(depth + 1)
        while pending:
            future = pending.popleft()
            start = time.perf_counter()
            result = future.result()
            waited = time.perf_counter() - start
            top_up(depth)  # the caller holds this one; ``depth`` more are on their way
            yield result, waited
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
