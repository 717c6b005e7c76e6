"""The torchrun engine: one process per GPU of a machine (or per CPU process in tests), via accelerate.

``torchrun --nproc_per_node 4 -m vidpool caption videos/ --out captions.jsonl --engine torchrun``

accelerate's ``PartialState`` gives each process its rank and device. Rank 0 first merges part files
a cut-short run left behind; every rank then reads the ids already written, and only after a barrier
does anyone write, so all ranks split the same list of remaining videos (``todo[rank::world]``). Each
rank appends to its own part file, ``OUT.part-RANK``; after a final barrier rank 0 merges the parts
into ``OUT``. A rank killed at any point loses at most the videos it had not written.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from vidpool.caption.inputs import VideoItem
from vidpool.caption.journal import Journal, merge_parts, part_path, written_ids
from vidpool.caption.runner import Summary, caption_items, progress_bar
from vidpool.options import default_device

__all__ = ["caption_torchrun"]

# ranks wait for the slowest at the end: a shard can take hours longer than another
_BARRIER_TIMEOUT = timedelta(days=7)


def _state(device: str | None) -> Any:
    from accelerate import PartialState

    cpu = (device or default_device()) == "cpu"
    if "RANK" in os.environ and "LOCAL_RANK" in os.environ:
        return PartialState(cpu=cpu, timeout=_BARRIER_TIMEOUT)
    return PartialState(cpu=cpu)


def caption_torchrun(
    items: list[VideoItem],
    journal: Path,
    worker_options: dict[str, Any],
    *,
    depth: int,
    decode_workers: int,
    retry_failed: bool,
    progress: bool,
) -> Summary:
    """This rank's part of the run; rank 0's ``Summary`` counts every rank (the others' only their own)."""
    from accelerate.utils import gather_object

    from vidpool.caption.worker import CaptionWorker

    options = dict(worker_options)
    state = _state(options.get("device"))
    rank, world = state.process_index, state.num_processes
    if state.device.type == "cuda":
        options["device"] = f"cuda:{state.local_process_index}"
    else:
        options["device"] = "cpu"
    with state.main_process_first():
        if state.is_main_process:
            merge_parts(journal)
            Journal(journal, drop_failed=retry_failed).close()  # repairs a torn tail too
    done = written_ids(journal, with_parts=False)
    state.wait_for_everyone()  # nobody writes before every rank has read the same ``done``
    todo = [i for i in items if i.id not in done]
    mine = todo[rank::world]
    summary = Summary(skipped=len(items) - len(todo) if rank == 0 else 0)
    if mine:
        worker = CaptionWorker(**options)
        with (
            Journal(part_path(journal, rank)) as writer,
            progress_bar(
                len(mine), enabled=progress and state.is_main_process, desc=f"captioning (rank 0 of {world})"
            ) as bar,
        ):
            mine_summary = caption_items(
                worker, mine, writer, depth=depth, decode_workers=decode_workers, bar=bar
            )
        summary.merge(mine_summary)
        summary.seconds = mine_summary.seconds
    state.wait_for_everyone()
    everyone = gather_object([summary.to_dict()]) if world > 1 else [summary.to_dict()]
    if not state.is_main_process:
        return summary
    merge_parts(journal)
    total = Summary(skipped=summary.skipped, outputs=[os.fspath(journal)])
    for other in everyone:
        keys = (
            "done",
            "failed",
            "changed",
            "output_tokens",
            "model_s",
            "model_wait_s",
            "failures",
            "changes",
        )
        total.merge(Summary(**{k: other[k] for k in keys}))
        total.seconds = max(total.seconds, other["seconds"])
    return total
