"""The local engine: one process, one model, decoding of the next videos overlapped with captioning.

Also what every engine shares: the run's :class:`Summary` (counts, and the names of the files skipped
and the videos that failed) and its :class:`ProgressBar`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from vidpool.caption.inputs import VideoItem
from vidpool.caption.journal import Journal
from vidpool.caption.prefetch import prefetch
from vidpool.progress import Eta

__all__ = ["NAMED", "ProgressBar", "Summary", "caption_items", "not_videos_line", "progress_bar"]


#: how many skipped files and failed videos a summary names (the rest are counted)
NAMED = 10


@dataclass
class Summary:
    """What a run did: videos captioned (``done``), ``failed`` (an ``error`` line), ``skipped`` (already
    in the output), ``seconds`` of wall time, ``output_tokens`` generated, and the seconds the model
    spent waiting for decoded frames (``model_wait_s``) against its own (``model_s``).

    ``not_videos`` are the files the input folders held that are not videos (not captioned);
    ``failures`` the first :data:`NAMED` failed videos of this run, ``(path, "ErrorType: message")``.
    """

    done: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    output_tokens: int = 0
    model_s: float = 0.0
    model_wait_s: float = 0.0
    outputs: list[str] = field(default_factory=list)
    not_videos: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    changed: int = 0
    changes: list[tuple[str, str]] = field(default_factory=list)

    def add(self, record: dict[str, Any]) -> None:
        if record.get("plan_notes"):
            self.changed += 1
            if len(self.changes) < NAMED:
                self.changes.append((str(record.get("path")), "; ".join(record["plan_notes"])))
        if record.get("error") is None:
            self.done += 1
            self.output_tokens += int(record.get("output_tokens") or 0)
        else:
            self.failed += 1
            if len(self.failures) < NAMED:
                self.failures.append((str(record.get("path")), _error_line(record)))
        self.model_s += float(record.get("model_s") or 0.0)

    def merge(self, other: Summary) -> None:
        for name in ("done", "failed", "changed", "output_tokens", "model_s", "model_wait_s"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures = (self.failures + [tuple(f) for f in other.failures])[:NAMED]  # type: ignore[misc]
        self.changes = (self.changes + [tuple(c) for c in other.changes])[:NAMED]  # type: ignore[misc]

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

    def notes(self) -> list[str]:
        """Lines that name what the counts of :meth:`line` do not: the files skipped because they are
        not videos, the videos whose plan changed the request (fewer frames than asked, a smaller
        budget), and each failed video with its error."""
        out = [not_videos_line(self.not_videos)] if self.not_videos else []
        if self.changed:
            videos = "video was" if self.changed == 1 else "videos were"
            heading = f"{self.changed} {videos} planned otherwise than asked (plan_notes in the output):"
            out += _named_list(heading, self.changes, self.changed)
        if self.failed:
            videos = "video" if self.failed == 1 else "videos"
            heading = f"{self.failed} {videos} failed (each has an error line in the output):"
            out += _named_list(heading, self.failures, self.failed)
        return out

    def to_dict(self) -> dict[str, Any]:
        keys = ("done", "failed", "skipped", "seconds", "output_tokens", "model_s", "model_wait_s", "outputs")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out.update(not_videos=list(self.not_videos), failures=[list(f) for f in self.failures])
        out.update(changed=self.changed, changes=[list(c) for c in self.changes])
        out.update(videos_per_s=self.videos_per_s, tokens_per_s=self.tokens_per_s, wait_share=self.wait_share)
        return out


def _named_list(heading: str, named: Sequence[tuple[str, str]], count: int) -> list[str]:
    """``heading``, then one ``path: what`` line for each of ``named``, then how many more of ``count``."""
    lines = [heading, *(f"  {path}: {what}" for path, what in named)]
    if count > len(named):
        lines.append(f"  and {count - len(named)} more")
    return lines


def not_videos_line(names: Sequence[str]) -> str:
    """``"skipped 2 files that are not videos: a.txt, b.mpv"`` (the first :data:`NAMED`, then a count)."""
    shown = ", ".join(names[:NAMED])
    more = f" and {len(names) - NAMED} more" if len(names) > NAMED else ""
    what = "file that is not a video" if len(names) == 1 else "files that are not videos"
    return f"skipped {len(names)} {what}: {shown}{more}"


def _error_line(record: dict[str, Any], limit: int = 160) -> str:
    text = f"{record.get('error_type') or 'Error'}: {str(record.get('error')).splitlines()[0]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


class ProgressBar:
    """A tqdm bar over ``total`` videos on ``stream`` (stderr), with rate and ETA measured from the first
    video done (:class:`~vidpool.progress.Eta`), so that model loading and warm-up are not in them.

    ``enabled=False`` draws nothing. :attr:`status` is the text after the counts (rate, ETA, failures).
    """

    def __init__(
        self,
        total: int,
        *,
        enabled: bool = True,
        stream: IO[str] | None = None,
        desc: str = "captioning",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from tqdm.auto import tqdm

        self.eta = Eta(total, clock=clock)
        self.status = ""
        # tqdm's own rate and ETA would start counting when the bar is made: the postfix holds ours
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit="video",
            disable=not enabled,
            file=stream if stream is not None else sys.stderr,
            dynamic_ncols=True,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]",
        )

    def update(self, n: int = 1, *, failed: int = 0) -> None:
        """``n`` more videos done; ``failed`` of the run so far."""
        self.eta.update(n)
        parts = [self.eta.text("video")] + ([f"{failed} failed"] if failed else [])
        self.status = ", ".join(p for p in parts if p)
        self.bar.set_postfix_str(self.status, refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_bar(
    total: int, *, enabled: bool = True, stream: IO[str] | None = None, desc: str = "captioning"
) -> ProgressBar:
    """A :class:`ProgressBar` over ``total`` videos (draws nothing when disabled)."""
    return ProgressBar(total, enabled=enabled, stream=stream, desc=desc)


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
            bar.update(1, failed=summary.failed)
    summary.seconds = time.perf_counter() - start
    return summary
