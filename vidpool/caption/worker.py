"""What the engines (local, torchrun, Ray) wrap around :class:`vidpool.pipeline.Captioner`: a captioning
split in two halves that can overlap, each turning a video's failure into its output record.

:meth:`CaptionWorker.decode` (probe, plan, decode the plan's frames; any thread) and
:meth:`CaptionWorker.caption` (encode, compress, generate; the model's thread) are the captioner's own
:meth:`~vidpool.pipeline.Captioner.plan_for`/:meth:`~vidpool.pipeline.Captioner.read` and
:meth:`~vidpool.pipeline.Captioner.caption`, so a record's caption equals ``Captioner.caption(path)``
and equal settings give equal captions whichever engine ran them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from vidpool.caption.fields import FIELDS
from vidpool.caption.inputs import VideoItem
from vidpool.options import plan_changes
from vidpool.pipeline import Captioner, ModelOrPath
from vidpool.video import DECODE_TIMEOUT

__all__ = ["FIELDS", "CaptionWorker", "Decoded"]


@dataclass
class Decoded:
    """What :meth:`CaptionWorker.decode` made of one video: its ``plan`` and ``frames`` (a ``Frames``), or
    the ``error`` that stopped it; ``seconds`` it took."""

    item: VideoItem
    plan: Any = None
    frames: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


class CaptionWorker:
    """A :class:`~vidpool.pipeline.Captioner` (loaded model, checked settings) as the engines use it.

    Args:
        model: a checkpoint folder, a loaded ``VideoLM`` or ``None`` (the default model, as ``vidpool chat``).
        decode_timeout: seconds a probe or decode may stall before the video fails with
            ``DecodeTimeoutError``.
        options: the ``Captioner``'s: ``device``, ``prompt``, ``max_new_tokens``, ``temperature``,
            ``top_p``, ``seed``, ``num_frames``, ``budget``, ``method``, ``method_params``,
            ``max_memory``.
    """

    def __init__(
        self, model: ModelOrPath = None, *, decode_timeout: float | None = DECODE_TIMEOUT, **options: Any
    ) -> None:
        self.captioner = Captioner(model, **options)
        self.model = self.captioner.model
        self.model_name = str(getattr(self.model, "name", "") or (os.fspath(model) if model else ""))
        self.decode_timeout = decode_timeout

    def decode(self, item: VideoItem) -> Decoded:
        """Probe, plan and decode ``item`` (safe to call from a decode thread); never raises."""
        start = time.perf_counter()
        out = Decoded(item)
        try:
            out.plan = self.captioner.plan_for(item.path, timeout=self.decode_timeout)
            out.frames = self.captioner.read(item.path, out.plan, timeout=self.decode_timeout)
        except Exception as exc:  # the video's own failure: it goes into its record
            out.error, out.frames = exc, None
        out.seconds = time.perf_counter() - start
        return out

    def caption(self, decoded: Decoded) -> dict[str, Any]:
        """The output record of a decoded video (see :data:`FIELDS`); a failure becomes an ``error`` record."""
        record: dict[str, Any] = dict.fromkeys(FIELDS)
        record.update(
            id=decoded.item.id,
            path=decoded.item.path,
            model=self.model_name,
            decode_s=round(decoded.seconds, 6),
        )
        if decoded.plan is not None:
            p = decoded.plan
            record.update(method=p.method, budget=p.budget, frames=p.num_frames, visual_tokens=p.num_tokens)
            record["plan_notes"] = plan_changes(p, self.captioner.plan_kwargs) or None
        if decoded.error is not None:
            return _failed(record, decoded.error)
        start = time.perf_counter()
        try:
            text = self.captioner.caption(decoded.frames, plan=decoded.plan)
        except Exception as exc:  # out of memory after back-off, a context error ...: this video only
            record["model_s"] = round(time.perf_counter() - start, 6)
            return _failed(record, exc)
        model_s = time.perf_counter() - start
        timings = self.captioner.last_trace.timings if self.captioner.last_trace is not None else {}
        record.update(
            # the frames are in memory: the trace's "decode" is picking them, part of encoding here
            encode_s=_seconds(timings, "decode", "encode"),
            compress_s=_seconds(timings, "compress"),
            generate_s=_seconds(timings, "prefill", "generate"),
            caption=text,
            output_tokens=self.count_tokens(text),
            model_s=round(model_s, 6),
        )
        return record

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model's tokenizer splits it (the generated answer, re-tokenized)."""
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, item: VideoItem) -> dict[str, Any]:
        """Decode and caption ``item`` in this thread."""
        return self.caption(self.decode(item))


def _seconds(timings: dict[str, float], *stages: str) -> float | None:
    """Seconds of ``stages`` together, ``None`` when none of them ran."""
    found = [timings[s] for s in stages if s in timings]
    return round(sum(found), 6) if found else None


def _failed(record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    record.update(
        caption=None, error=" ".join(str(exc).split()) or type(exc).__name__, error_type=type(exc).__name__
    )
    return record
