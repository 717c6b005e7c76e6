"""The panel's table for the Compare switch: the every-token answer beside the compressed one.

Every number comes from the two answers' traces and the plans they ran (``Trace.visual_tokens``, the
``prefill`` stage time, ``Plan.memory``), so the table says what the panel says for each answer alone.
"""

from __future__ import annotations

from typing import Any

from vidpool.demo.stages import duration_text

__all__ = ["compare_markdown", "compare_rows"]


def _heading(trace: Any) -> str:
    plan = trace.plan
    if plan.method == "none":
        return "every token"
    budget = f", budget {plan.budget}" if getattr(plan, "budget", None) else ""
    return f"{plan.method}{budget}"


def compare_rows(baseline: Any, trace: Any) -> list[tuple[str, str, str]]:
    """``(label, every-token value, compressed value)`` rows: visual tokens, prefill time, the planned KV
    cache and predicted peak memory of the two answers (``baseline``, ``trace``: their ``Trace``)."""
    from vidpool.schedule import format_bytes

    def prefill(t: Any) -> str:
        seconds = t.timings.get("prefill")
        return "not streamed" if seconds is None else duration_text(seconds)

    return [
        ("visual tokens", str(baseline.visual_tokens), str(trace.visual_tokens)),
        ("prefill", prefill(baseline), prefill(trace)),
        ("KV cache", format_bytes(baseline.plan.memory.kv_cache), format_bytes(trace.plan.memory.kv_cache)),
        ("predicted peak", format_bytes(baseline.plan.memory.peak), format_bytes(trace.plan.memory.peak)),
    ]


def compare_markdown(baseline: Any, trace: Any) -> str:
    """The Compare table as Markdown, three columns: what, the every-token answer, the compressed one."""
    lines = [f"| | {_heading(baseline)} | {_heading(trace)} |", "| --- | ---: | ---: |"]
    lines += [f"| {label} | {a} | {b} |" for label, a, b in compare_rows(baseline, trace)]
    return "\n".join(lines)
