"""Bounded waits on decoders.

Decoders run in a daemon worker thread and the caller waits on a queue with a timeout. A decoder stuck
inside native code (decord's ``get_batch`` on a container that over-reports its frame count) is
abandoned rather than waited for; native calls release the GIL, so the caller keeps running and gets a
:class:`~vidpool.errors.DecodeTimeoutError`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

from vidpool.errors import DecodeTimeoutError

__all__ = ["DECODE_TIMEOUT", "WorkerStalled", "call_with_timeout", "iterate_with_timeout"]

#: seconds a probe or decode may make no progress before it fails (``probe``, ``VideoReader``, captioning)
DECODE_TIMEOUT = 30.0

T = TypeVar("T")

_ITEM, _DONE, _ERROR = 0, 1, 2


class WorkerStalled(DecodeTimeoutError):
    """A timeout whose worker thread may still be running; its decoder must not be reused."""


def _timeout_message(what: str, timeout: float) -> str:
    return (
        f"{what} made no progress for {timeout:g} s; the file may be damaged or its decoder stuck. "
        "Try backend='pyav', re-encode the file (`ffmpeg -i in.mp4 -c:v libx264 out.mp4`), "
        "or raise timeout= for very large frames"
    )


def call_with_timeout(fn: Callable[[], T], timeout: float | None, what: str) -> T:
    """Run ``fn()`` in a worker thread and return its result, or raise DecodeTimeoutError after ``timeout`` s."""
    if timeout is None:
        return fn()
    box: queue.Queue = queue.Queue(maxsize=1)

    def work() -> None:
        try:
            box.put((_ITEM, fn()))
        except BaseException as exc:
            box.put((_ERROR, exc))

    threading.Thread(target=work, daemon=True, name="vidpool-decode").start()
    try:
        kind, value = box.get(timeout=timeout)
    except queue.Empty:
        raise WorkerStalled(_timeout_message(what, timeout)) from None
    if kind == _ERROR:
        raise value
    return value


def iterate_with_timeout(
    make_iter: Callable[[], Iterator[T]],
    timeout: float | None,
    what: str,
    prefetch: int = 8,
    on_abandon: Callable[[], None] | None = None,
) -> Iterator[T]:
    """Iterate ``make_iter()`` in a worker thread, waiting at most ``timeout`` s for each item.

    Up to ``prefetch`` items are decoded ahead, so decoding overlaps with the consumer while memory
    stays bounded. Closing the returned generator stops the worker at its next item. ``on_abandon`` is
    called when the worker is left running (a stall, or it did not stop within ``timeout`` s after the
    generator was closed): its decoder must then not be reused.
    """
    items: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in make_iter():
                if not put((_ITEM, item)):
                    return
            put((_DONE, None))
        except BaseException as exc:
            put((_ERROR, exc))

    worker = threading.Thread(target=work, daemon=True, name="vidpool-decode")
    worker.start()
    finished = False
    try:
        while True:
            try:
                kind, value = items.get(timeout=timeout)
            except queue.Empty:
                if on_abandon is not None:
                    on_abandon()
                finished = True
                raise WorkerStalled(_timeout_message(what, timeout)) from None
            if kind == _DONE:
                finished = True
                return
            if kind == _ERROR:
                finished = True
                raise value
            yield value
    finally:
        stop.set()
        if not finished:
            worker.join(timeout)
            if worker.is_alive() and on_abandon is not None:
                on_abandon()
