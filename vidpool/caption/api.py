"""``caption_videos``: caption every video of some inputs into one output file, resumably, on an engine.

>>> from vidpool.caption import caption_videos            # doctest: +SKIP
>>> caption_videos(["videos/"], "captions.jsonl", model="checkpoints/tiny-native", max_new_tokens=64)  # doctest: +SKIP
Summary(done=12, failed=0, skipped=0, ...)

Engines: ``local`` (this process; the next videos decode while the model captions), ``torchrun``
(one process per GPU, started by ``torchrun``; each rank takes its share and writes a part file that
rank 0 merges at the end) and ``ray`` (Ray Data: captioning actors, one per GPU, on a cluster or this
machine). All three write the same records; a restarted run skips the videos already written.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from vidpool.caption.fields import ENGINES
from vidpool.caption.formats import journal_path, output_format, write_parquet
from vidpool.caption.inputs import VideoItem, scan_inputs
from vidpool.caption.journal import Journal, merge_parts
from vidpool.caption.runner import Summary, caption_items, not_videos_line, progress_bar
from vidpool.errors import InvalidArgumentError

__all__ = ["ENGINES", "caption_videos"]


def caption_videos(
    inputs: Sequence[str | os.PathLike] | Sequence[VideoItem],
    out: str | os.PathLike,
    *,
    engine: str = "local",
    format: str | None = None,
    prefetch: int = 2,
    decode_workers: int = 1,
    retry_failed: bool = False,
    progress: bool = True,
    ray_address: str | None = None,
    ray_actors: int | None = None,
    ray_batch_size: int = 4,
    **worker_options: Any,
) -> Summary:
    """Caption the videos of ``inputs`` into ``out``; returns what was done.

    Args:
        inputs: video files, folders and list files (:func:`~vidpool.caption.inputs.scan_inputs`), or
            resolved ``VideoItem``s. The files of a folder that are not videos are named on stderr
            (with ``progress``) and in the summary's ``not_videos``.
        out: the output file; a restarted run with the same ``out`` skips the ids written there.
        engine: ``"local"``, ``"torchrun"`` (in a process ``torchrun`` started) or ``"ray"``.
        format: ``"jsonl"`` or ``"parquet"`` (default: from ``out``'s suffix).
        prefetch: videos decoded ahead of the model (0: decode and caption one after the other).
        decode_workers: threads that decode ahead.
        retry_failed: caption the videos with an ``error`` line again (their old lines are removed).
        progress: a progress bar on stderr.
        ray_address, ray_actors, ray_batch_size: the Ray cluster (default: a local one), captioning
            actors (default: one per GPU, else one) and videos per actor call.
        worker_options: :class:`~vidpool.caption.worker.CaptionWorker`'s (``decode_timeout`` and the
            :class:`~vidpool.pipeline.Captioner`'s): ``model``, ``device``, ``prompt``,
            ``max_new_tokens``, ``temperature``, ``top_p``, ``seed``, ``num_frames``, ``budget``,
            ``method``, ``method_params``, ``max_memory``, ``decode_timeout``.
    """
    if engine not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    fmt = output_format(out, format)
    journal = journal_path(out, fmt)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    items = [i for i in inputs if isinstance(i, VideoItem)]
    not_videos: list[str] = []
    if len(items) != len(inputs):
        scanned = scan_inputs(inputs)  # type: ignore[arg-type]
        items, not_videos = scanned.videos, scanned.not_videos
    if not_videos and progress and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 speaks
        # now, not only in the summary: a folder of unexpected files is seen before the hours of work
        print(f"vidpool caption: {not_videos_line(not_videos)}", file=sys.stderr)
    if engine == "torchrun":
        from vidpool.caption.torchrun import caption_torchrun

        summary = caption_torchrun(
            items,
            journal,
            worker_options,
            depth=prefetch,
            decode_workers=decode_workers,
            retry_failed=retry_failed,
            progress=progress,
        )
        if summary.outputs and fmt == "parquet":  # rank 0 only: the others return no outputs
            write_parquet(journal, out)
        summary.not_videos = not_videos
        return summary
    merge_parts(journal)  # what a torchrun run cut short left behind
    with Journal(journal, drop_failed=retry_failed) as writer:
        done = {r["id"] for r in writer.records()}
        todo = [i for i in items if i.id not in done]
        if engine == "ray":
            from vidpool.caption.ray_engine import caption_ray

            summary = caption_ray(
                todo,
                writer,
                worker_options,
                address=ray_address,
                actors=ray_actors,
                batch_size=ray_batch_size,
                depth=prefetch,
                decode_workers=decode_workers,
                progress=progress,
            )
        else:
            summary = _local(todo, writer, worker_options, prefetch, decode_workers, progress)
    summary.skipped = len(items) - len(todo)
    summary.not_videos = not_videos
    summary.outputs = [os.fspath(journal)]
    if fmt == "parquet":
        write_parquet(journal, out)
        summary.outputs.append(os.fspath(out))
    return summary


def _local(
    todo: list[VideoItem], writer: Journal, options: dict[str, Any], depth: int, workers: int, progress: bool
) -> Summary:
    if not todo:
        return Summary()
    from vidpool.caption.worker import CaptionWorker

    worker = CaptionWorker(**options)
    with progress_bar(len(todo), enabled=progress) as bar:
        return caption_items(worker, todo, writer, depth=depth, decode_workers=workers, bar=bar)
