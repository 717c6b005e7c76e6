"""Captioning split in two halves that can overlap: :meth:`CaptionWorker.decode` (probe, plan, decode the
plan's frames; any thread) and :meth:`CaptionWorker.caption` (encode, compress, generate; the model's
thread). Every engine (local, torchrun, Ray) runs the same two calls, so equal settings give equal
captions whichever engine ran them.

The plan is the one ``Captioner``/``VideoChat`` make for the video file (same probe, same options), and
the frames are the ones ``VideoChat`` would decode for it, so a caption equals ``Captioner.caption(path)``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from vidpool.caption.fields import FIELDS
from vidpool.caption.inputs import VideoItem
from vidpool.options import check_caption_options
from vidpool.pipeline import CAPTION_PROMPT, ModelOrPath, VideoChat, load

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


class _StageClock:
    """A ``progress`` callback that notes when each pipeline stage first reports."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.seen: dict[str, float] = {}

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        self.seen.setdefault(stage, time.perf_counter())

    def spans(self, end: float) -> dict[str, float | None]:
        marks = [self.seen.get(s) for s in ("encoding frames", "compressing", "prefill")] + [end]
        out: dict[str, float | None] = {}
        for name, a, b in zip(("encode_s", "compress_s", "generate_s"), marks, marks[1:]):
            out[name] = round(b - a, 6) if a is not None and b is not None else None
        return out


class CaptionWorker:
    """A loaded model and the settings of a captioning run.

    Args:
        model: a checkpoint folder, a loaded ``VideoLM`` or ``None`` (the default model, as ``vidpool chat``).
        device: ``"cpu"`` or ``"cuda[:N]"``.
        prompt: what the model is asked about each video.
        max_new_tokens, temperature, top_p, seed: generation options (temperature 0: greedy, reproducible).
        num_frames, budget_tokens, method, method_params, max_memory: planning options (see ``vidpool.plan``).
        decode_timeout: seconds a decode may stall before the video fails with ``DecodeTimeoutError``.

    All options are checked before the model loads. Without ``max_memory`` every video is planned for
    the memory the device had free once the model loaded (measured once: plans made while another
    video runs would otherwise see its activations as used memory and come out smaller).
    """

    def __init__(
        self,
        model: ModelOrPath = None,
        *,
        device: str = "cpu",
        prompt: str = CAPTION_PROMPT,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        num_frames: int | None = None,
        budget_tokens: int | None = None,
        method: str | None = None,
        method_params: dict[str, Any] | None = None,
        max_memory: Any = None,
        decode_timeout: float | None = 30.0,
    ) -> None:
        self.device, self.generation = check_caption_options(
            device=device,
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            num_frames=num_frames,
            budget_tokens=budget_tokens,
            method=method,
            method_params=method_params,
        )
        self.model = load(model, device=device)
        self.model_name = str(getattr(self.model, "name", "") or (os.fspath(model) if model else ""))
        self.prompt = prompt
        self.decode_timeout = decode_timeout
        if max_memory is None:
            # what the device has now, with the model loaded: measured once, so that a plan made in a
            # decode thread while the model thread holds activations sees the same memory as any other
            from vidpool.schedule import plan

            max_memory = plan(None, self.model, self.device, max_new_tokens=max_new_tokens).available
        self.plan_options = {
            "num_frames": num_frames,
            "budget_tokens": budget_tokens,
            "method": method,
            "method_params": method_params,
            "max_memory": max_memory,
            "max_new_tokens": max_new_tokens,
        }
        # a fast tokenizer switches its padding/truncation state on the first call; make that call here,
        # before decode threads plan (and count prompt tokens) while this thread generates
        self.model.prompt_tokens(1)

    def decode(self, item: VideoItem) -> Decoded:
        """Probe, plan and decode ``item`` (safe to call from a decode thread); never raises."""
        from vidpool.schedule import plan
        from vidpool.video import VideoReader, probe

        start = time.perf_counter()
        out = Decoded(item)
        try:
            out.plan = plan(
                probe(item.path, timeout=self.decode_timeout), self.model, self.device, **self.plan_options
            )
            with VideoReader(item.path, timeout=self.decode_timeout) as reader:
                out.frames = reader.sample(**out.plan.sample_kwargs())
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
        if decoded.error is not None:
            return _failed(record, decoded.error)
        clock = _StageClock()
        try:
            chat = VideoChat(
                decoded.frames,
                self.model,
                device=self.device,
                plan=decoded.plan,
                progress=clock,
                **self.generation,
            )
            text = str(chat.ask(self.prompt)).strip()
        except Exception as exc:  # out of memory after back-off, a context error ...: this video only
            record["model_s"] = round(time.perf_counter() - clock.start, 6)
            return _failed(record, exc)
        end = time.perf_counter()
        record.update(clock.spans(end))
        record.update(
            caption=text, output_tokens=self.count_tokens(text), model_s=round(end - clock.start, 6)
        )
        return record

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` as the model's tokenizer splits it (the generated answer, re-tokenized)."""
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def __call__(self, item: VideoItem) -> dict[str, Any]:
        """Decode and caption ``item`` in this thread."""
        return self.caption(self.decode(item))


def _failed(record: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    record.update(
        caption=None, error=" ".join(str(exc).split()) or type(exc).__name__, error_type=type(exc).__name__
    )
    return record
