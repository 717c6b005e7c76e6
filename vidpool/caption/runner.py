"""The local engine: one process, one model, decoding of the next videos overlapped with captioning.

Also what every engine shares: the run's :class:`Summary` and its progress bar.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from vidpool.caption.inputs import VideoItem
from vidpool.caption.journal import Journal
from vidpool.caption.prefetch import prefetch

__all__ = ["Summary", "caption_items", "progress_bar"]


@dataclass
class Summary:
    """What a run did: videos captioned (``done``), ``failed`` (an ``error`` line), ``skipped`` (already
    in the output), ``seconds`` of wall time, ``output_tokens`` generated, and the seconds the model
    spent waiting for decoded frames (``model_wait_s``) against its own (``model_s``)."""

    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    output_tokens: int = 0
    model_s: float = 0.0
    model_wait_s: float = 0.0
    outputs: list[str] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        if record.get("error") is None:
            self.done += 1
            self.output_tokens += int(record.get("output_tokens") or 0)
        else:
            self.failed += 1
        self.model_s += float(record.get("model_s") or 0.0)

    def merge(self, other: Summary) -> None:
        for name in ("done", "failed", "output_tokens", "model_s", "model_wait_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def videos_per_s(self) -> float:
        return (self.done + self.failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def wait_share(self) -> float:
        """Share of the model's time spent waiting for frames: ``wait / (wait + model)``."""
        total = self.model_wait_s + self.model_s
        return self.model_wait_s / total if total > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.done} captioned, {self.failed} failed, {self.skipped} skipped (already written) in "
            f"{self.seconds:.1f}s: {self.videos_per_s:.2f} videos/s, {self.tokens_per_s:.1f} output tokens/s, "
            f"model waited for frames {100 * self.wait_share:.0f}% of the time"
        )

    def to_dict(self) -> dict[str, Any]:
        keys = ("done", "failed", "skipped", "seconds", "output_tokens", "model_s", "model_wait_s", "outputs")
        out = {k: getattr(self, k) for k in keys}
        out.update(videos_per_s=self.videos_per_s, tokens_per_s=self.tokens_per_s, wait_share=self.wait_share)
        return out


def progress_bar(
    total: int, *, enabled: bool = True, stream: IO[str] | None = None, desc: str = "captioning"
) -> Any:
    """A tqdm bar over ``total`` videos with rate and ETA (a no-op object when disabled)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="video",
        disable=not enabled,
        file=stream if stream is not None else sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def caption_items(
    worker: Any,
    items: Sequence[VideoItem] | Iterable[VideoItem],
    journal: Journal,
    *,
    depth: int = 2,
    decode_workers: int = 1,
    bar: Any = None,
) -> Summary:
    """Caption ``items`` with ``worker`` (a :class:`~vidpool.caption.worker.CaptionWorker`), appending one
    record per video to ``journal`` as it completes; ``depth`` videos are decoded ahead (0: none)."""
    summary = Summary()
    start = time.perf_counter()
    for decoded, waited in prefetch(items, worker.decode, depth=depth, workers=decode_workers):
        # with depth=0 the decode ran in this thread: the model waited for all of it
        summary.model_wait_s += waited
        record = worker.caption(decoded)
        journal.write(record)
        summary.add(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(failed=summary.failed, refresh=False)
    summary.seconds = time.perf_counter() - start
    return summary
