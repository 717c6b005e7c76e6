"""Worker processes of one ``vidpool bench fidelity`` run (``--jobs N``).

One spawn pool serves the whole run: each process takes one torch thread and loads, once, what the run
answers with (:class:`Loads`: the CLIP and its text embeddings, the trained reader, a video LM). A family's
items are answered in contiguous chunks (:func:`chunks`) and read back in item order (:func:`in_order`),
so that the answers are those of one process: every random choice is seeded by the item's index.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "Loads",
    "balanced_size",
    "chunks",
    "exit_with",
    "in_order",
    "init_worker",
    "loaded",
    "process_pool",
    "running",
]

_LOADED: dict[str, Any] = {}


@dataclass(frozen=True)
class Loads:
    """What each worker loads once, on ``device``.

    ``clip``: ``(config or name, weights)`` as :func:`vidpool.bench.clip.load_clip` takes them (``None``:
    no CLIP), with a :class:`~vidpool.bench.clip.TextEmbeddings` over it; ``reader``: the trained reader;
    ``model``: a video LM's checkpoint folder.
    """

    clip: tuple[str | None, str | None] | None = None
    reader: bool = False
    model: str | None = None
    device: str = "cpu"


def exit_with(process: int, every: float = 1.0) -> None:
    """End this process once ``process`` has ended (a killed process not yet reaped counts as ended): a
    run killed before it could end its workers leaves none answering the rest of its queue. Polls every
    ``every`` seconds; never returns."""
    while running(process):
        time.sleep(every)
    os._exit(1)


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (on Linux, from ``/proc``)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:  # no /proc here: it exists
        return True


def init_worker(loads: Loads) -> None:
    """Process-pool initializer: a watch that ends the worker with its parent, one torch thread, then
    everything ``loads`` names, loaded once."""
    threading.Thread(target=exit_with, args=(os.getppid(),), daemon=True, name="parent-watch").start()
    torch.set_num_threads(1)
    if loads.clip is not None:
        from vidpool.bench.clip import TextEmbeddings, load_clip

        encoder, _ = load_clip(*loads.clip, loads.device)
        _LOADED["encoder"], _LOADED["text"] = encoder, TextEmbeddings(encoder)
    if loads.reader:
        from vidpool.bench.synth.reader import load_reader

        _LOADED["reader"] = load_reader()
    if loads.model is not None:
        from vidpool.pipeline import load

        _LOADED["model"] = load(loads.model, device=loads.device)


def loaded(name: str) -> Any:
    """In a worker: what :func:`init_worker` loaded as ``name`` (``encoder``, ``text``, ``reader``,
    ``model``); ``None`` when the run did not ask for it."""
    return _LOADED.get(name)


def process_pool(jobs: int, loads: Loads) -> Any:
    """A ``ProcessPoolExecutor`` of ``jobs`` spawned processes, each set up by :func:`init_worker`
    (use it as a context manager: leaving it waits for the workers and ends them)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        jobs, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker, initargs=(loads,)
    )


def chunks(count: int, size: int) -> list[range]:
    """``range(count)`` cut into contiguous ranges of ``size`` (the last one shorter)."""
    size = max(1, int(size))
    return [range(a, min(a + size, count)) for a in range(0, count, size)]


def balanced_size(count: int, jobs: int) -> int:
    """A chunk size that keeps ``jobs`` processes busy to the end: about four chunks a process."""
    return max(1, math.ceil(count / (4 * jobs)))


def in_order(pool: Any, fn: Callable[..., Any], parts: Sequence[Any], *args: Any) -> Iterator[Any]:
    """``fn(part, *args)`` for each of ``parts``, all submitted to ``pool`` at once and yielded in the
    order of ``parts`` (the workers run ahead while earlier results are read). ``fn`` must be a
    module-level function (or a ``functools.partial`` of one): spawned processes import it by name."""
    futures = [pool.submit(fn, part, *args) for part in parts]
    for future in futures:
        yield future.result()
