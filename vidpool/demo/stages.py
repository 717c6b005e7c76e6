"""What the chat shows while it waits and after it answers: stage lines, the tag line under an answer,
and error messages cleaned of server paths.

A ``VideoChat`` reports its stages through a progress callback (:mod:`vidpool.progress`) from the
thread that runs it; :func:`stream_with_stages` runs the answer in a worker thread and hands the stages
and the answer's pieces to the (Gradio) generator in order, so the page can say "encoding frames 3/8"
instead of an anonymous spinner.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "StageRelay",
    "answer_tag",
    "duration_text",
    "scrub_paths",
    "split_tag",
    "stage_line",
    "stream_with_stages",
    "tagged",
]

#: what each pipeline stage is called on the page (the CLI's status line uses the pipeline's names)
_STAGE_WORDS = {"prefill": "prefilling", "loading model": "loading the model"}
_TAG_OPEN, _TAG_CLOSE = "\n\n<small>", "</small>"
# an absolute path (at least two parts), not preceded by a word character: "/tmp/gradio/ab12/clip.mp4"
_PATH = re.compile(r"(?<![\w.~])(?:/[^/\s'\"`]+)+/([^/\s'\"`]+)")


def stage_line(stage: str, done: int | None = None, total: int | None = None) -> str:
    """The chat's waiting line for a progress report: ``"*encoding frames 3/8 …*"``."""
    words = _STAGE_WORDS.get(stage, stage)
    if done is not None:
        words += f" {done}/{total}" if total else f" {done}"
    return f"*{words} …*"


def scrub_paths(message: str) -> str:
    """``message`` with every absolute path replaced by its base name, so that a page never shows where
    the server keeps its files."""
    return _PATH.sub(lambda m: m.group(1), message)


def duration_text(seconds: float) -> str:
    """``0.1234`` -> ``"123 ms"``, ``2.5`` -> ``"2.50 s"``."""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def answer_tag(trace: Any, seconds: float, *, costs: bool = False) -> str:
    """One line on what produced an answer: method, budget, visual tokens, frames and time; with
    ``costs`` (the Compare switch) also its prefill time and the plan's predicted peak memory."""
    from vidpool.schedule import format_bytes

    plan = trace.plan
    if plan.method == "none":
        budget = "no budget"
    else:
        budget = f"budget {plan.budget}" if getattr(plan, "budget", None) else "default budget"
    share = f" of {trace.patch_tokens}" if trace.patch_tokens else ""
    parts = [plan.method, budget, f"{trace.visual_tokens}{share} visual tokens", f"{trace.num_frames} frames"]
    if costs:
        prefill = trace.timings.get("prefill")
        if prefill is not None:
            parts.append(f"prefill {duration_text(prefill)}")
        parts.append(f"predicted peak {format_bytes(plan.memory.peak)}")
    return " · ".join([*parts, f"{seconds:.1f} s"])


def tagged(answer: str, tag: str) -> str:
    """The chat message of an answer: the answer, then its tag line in small print."""
    return f"{answer}{_TAG_OPEN}{tag}{_TAG_CLOSE}"


def split_tag(message: str) -> tuple[str, str | None]:
    """``(answer, tag)`` of a message :func:`tagged` wrote (``tag`` is ``None`` for other messages)."""
    head, sep, tail = message.rpartition(_TAG_OPEN)
    if sep and tail.endswith(_TAG_CLOSE) and "\n" not in tail:
        return head, tail[: -len(_TAG_CLOSE)]
    return message, None


class StageRelay:
    """The progress callback a session's ``VideoChat`` keeps; it forwards to the current request's
    ``sink`` (nothing between requests)."""

    def __init__(self) -> None:
        self.sink: Callable[[str], None] | None = None

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        sink = self.sink
        if sink is not None:
            sink(stage_line(stage, done, total))


def stream_with_stages(relay: StageRelay, work: Callable[[], Iterator[str]]) -> Iterator[tuple[str, str]]:
    """Run ``work()`` (a generator of answer pieces) in a worker thread; yield ``("stage", line)`` for
    each stage ``relay`` hears and ``("piece", text)`` for each piece, in order. An exception of the
    work is raised here. Closing this generator early stops the work at its next piece and waits for
    it, so that the session's chat is never used by two requests at once."""
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()

    def run() -> None:
        try:
            for piece in work():
                events.put(("piece", piece))
                if stop.is_set():
                    break
            events.put(("done", None))
        except BaseException as exc:  # handed to the caller's thread
            events.put(("error", exc))

    relay.sink = lambda line: events.put(("stage", line))
    worker = threading.Thread(target=run, name="vidpool-demo-answer", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = events.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield kind, value
    finally:
        stop.set()
        worker.join()
        relay.sink = None
