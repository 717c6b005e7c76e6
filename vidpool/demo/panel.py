"""The "last answer" panel's contents, from a :class:`vidpool.pipeline.Trace`: thumbnails, the labelled
picture of what was kept, and Markdown for token counts, stage times and the memory plan (or the error
of the last request, which replaces them)."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from vidpool.demo.pictures import KeptTiles, kept_tiles, pick_frames
from vidpool.demo.stages import duration_text

__all__ = [
    "KEPT_CAPTION",
    "error_markdown",
    "frame_label",
    "frames_html",
    "image_data_uri",
    "kept_html",
    "plan_markdown",
    "plan_rows",
    "summary_markdown",
    "thumbnails",
    "trace_tiles",
]

KEPT_CAPTION = (
    "Per sampled frame: top, each patch's weight in its token (light: large, dark: dropped); middle, which "
    "token each patch fed (one colour per token, grey: dropped); bottom, when the method uses the question, "
    "each patch's relevance to it."
)


def frame_label(seconds: float | None, index: int) -> str:
    """A frame's caption: its time (``"1.25 s"``), or ``"frame N"`` (1-based) when the time is unknown."""
    if seconds is None or not math.isfinite(seconds):
        return f"frame {index + 1}"
    return f"{seconds:.2f} s"


def thumbnails(frames: np.ndarray, frame_times: np.ndarray, used: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """``(image, caption)`` for each frame the answer used (``used``: its timestamps, seconds)."""
    return [
        (frames[i], frame_label(t, k)) for k, (i, t) in enumerate(zip(pick_frames(used, frame_times), used))
    ]


def trace_tiles(trace: Any, frames: np.ndarray, frame_times: np.ndarray) -> KeptTiles | None:
    """:func:`kept_tiles` for ``trace`` (``None`` when the model reported no provenance)."""
    if trace.compressed is None:
        return None
    shown = frames[pick_frames(trace.timestamps, frame_times)]
    steps = int(trace.compressed.input_shape[0])
    if 0 < steps < len(shown):  # the model merged frames in time (Qwen-VL: 2 to a grid): each step's first
        shown = shown[:: -(-len(shown) // steps)][:steps]
    return kept_tiles(shown, trace.compressed, trace.scores)


def image_data_uri(image: np.ndarray, *, max_width: int | None = None, fmt: str = "PNG") -> str:
    """``data:`` URI of a uint8 ``[H, W, 3]`` image (shrunk to ``max_width``), for HTML that needs no files:
    the panel's pictures travel inside the event's output, for the page and ``/chat`` API clients alike."""
    import base64
    import io

    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    if max_width is not None and picture.width > max_width:
        picture = picture.resize((max_width, max(1, round(picture.height * max_width / picture.width))))
    buffer = io.BytesIO()
    picture.save(buffer, format=fmt, **({"quality": 85} if fmt == "JPEG" else {}))
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def frames_html(items: list[tuple[np.ndarray, str]], thumb_width: int = 160) -> str:
    """A row of thumbnails with their timestamps under them."""
    cells = [
        f'<figure class="vidpool-frame" style="margin:0;text-align:center">'
        f'<img src="{image_data_uri(img, max_width=thumb_width, fmt="JPEG")}" alt="frame at {caption}" '
        f'style="width:{thumb_width}px;border-radius:4px"/><figcaption>{caption}</figcaption></figure>'
        for img, caption in items
    ]
    return (
        '<div class="vidpool-frames" style="display:flex;flex-wrap:wrap;gap:6px">' + "".join(cells) + "</div>"
    )


def kept_html(tiles: KeptTiles | None, times: np.ndarray | None = None) -> str:
    """The picture of what was kept as a table: a label per row, the frame's time over each column
    (``times``: seconds of the sampled frames), how many of the sampled frames it shows, and a legend (a
    sentence when the model reported no provenance)."""
    if tiles is None:
        return "<p>This model does not report which patches fed which token.</p>"
    shown, total = len(tiles.columns), tiles.total
    count = f"all {total} frames shown" if shown == total else f"{shown} of {total} frames shown"
    stamps = [None if times is None else float(times[c]) for c in tiles.columns]
    head = "".join(f'<th scope="col">{frame_label(t, c)}</th>' for t, c in zip(stamps, tiles.columns))
    body = "".join(
        f'<tr><th scope="row">{html.escape(label)}</th>'
        + "".join(
            f'<td><img class="vidpool-kept-tile" src="{image_data_uri(tile)}" alt="{html.escape(label)}"/></td>'
            for tile in row
        )
        + "</tr>"
        for label, row in tiles.rows
    )
    return (
        '<div class="vidpool-kept">'
        f'<p class="vidpool-kept-count"><strong>{count}</strong></p>'
        '<table class="vidpool-kept-table" style="table-layout:fixed;width:100%;border-collapse:collapse">'
        f'<colgroup><col style="width:7.5em"/>{"<col/>" * shown}</colgroup>'
        f"<tr><th></th>{head}</tr>{body}</table>"
        f'<p style="font-size:0.85em">{KEPT_CAPTION}</p></div>'
    )


def summary_markdown(trace: Any, decode_seconds: float | None = None) -> str:
    """Token counts before -> after, and the time of each stage of the answer (``decode_seconds``: the
    upload's decode, when this answer's request decoded one)."""
    before, after = trace.patch_tokens, trace.visual_tokens
    h, w = trace.grid
    share = f" ({100 * after / before:.1f}%)" if before else ""
    plan = trace.plan
    budget = f", budget {plan.budget}" if getattr(plan, "budget", None) else ""
    lines = [
        f"**Visual tokens:** {trace.num_frames} frames × {h}×{w} patches = **{before}** → **{after}**{share}"
        f" with `{plan.method}`{budget}",
        "",
        "| stage | time |",
        "| --- | ---: |",
    ]
    timings = dict(trace.ordered_timings())
    # the demo's frames were decoded from the upload in a child process, before the pipeline ran
    timings.pop("decode", None)
    decode = duration_text(decode_seconds) if decode_seconds is not None else "done at upload"
    lines.append(f"| decode | {decode} |")
    for stage, seconds in timings.items():
        lines.append(f"| {stage} | {duration_text(seconds)} |")
    if trace.cached:
        lines.append("| encode | cached (video encoded by an earlier question) |")
    return "\n".join(lines)


def error_markdown(message: str) -> str:
    """The panel after a failed request: what went wrong, instead of an earlier answer's numbers."""
    return f"**The last request failed.**\n\n{message}"


def _method_text(plan: Any) -> str:
    params = ", ".join(f"{k}={v}" for k, v in (plan.params or {}).items())
    return f"{plan.method}({params})" if params else str(plan.method)


def _tokens_text(plan: Any, trace: Any) -> str:
    """The visual token count the method produced, and what was planned when that could differ."""
    from vidpool.compression import resolve

    planned, produced = int(plan.num_tokens), int(trace.visual_tokens)
    try:
        h, w = trace.grid
        exact = resolve(plan.method, (trace.num_frames, h, w), budget=plan.budget, **plan.params).exact
    except Exception:  # a method of another model kind: judge by the counts alone
        exact = planned == produced
    if exact and planned == produced:
        return str(produced)
    return f"at most {planned} planned, {produced} produced"


def plan_rows(plan: Any, trace: Any, video: Any) -> list[tuple[str, str]]:
    """``(label, value)`` rows of the memory plan as this answer ran it: frames sampled of the upload's
    frames (``video``: the decoded upload, with ``total_frames``, ``duration``, ``width``, ``height``), the
    tokens the method produced, the context they took, and the predicted memory."""
    from vidpool.schedule import format_bytes

    m = plan.memory
    total = int(getattr(video, "total_frames", 0) or 0)
    facts = [f"{total} frames"] if total else []
    if getattr(video, "duration", None):
        facts.append(f"{video.duration:.1f} s")
    if getattr(video, "width", None):
        facts.append(f"{video.width}×{video.height}")
    sampled = f"{trace.num_frames} sampled" + (f" of {total}" if total else "")
    context = trace.visual_tokens + plan.prompt_tokens + plan.max_new_tokens
    return [
        ("model", str(plan.model_name)),
        ("device", f"{plan.device} ({format_bytes(plan.available)} available)"),
        ("placement", str(plan.placement)),
        ("video", ", ".join(facts) or "unknown"),
        ("frames", sampled),
        ("compression", f"{_method_text(plan)}, {plan.position} projector"),
        ("token budget", "method default" if plan.budget is None else str(plan.budget)),
        ("visual tokens", _tokens_text(plan, trace)),
        ("context", f"{context} of {plan.context_length or 'unknown'} positions"),
        ("weights", format_bytes(m.weights)),
        ("encoder activations", format_bytes(m.encoder_activations)),
        ("visual token memory", format_bytes(m.visual_tokens)),
        ("KV cache", format_bytes(m.kv_cache)),
        ("LM activations", format_bytes(m.lm_activations)),
        ("predicted peak", format_bytes(m.peak)),
        ("required", f"{format_bytes(m.required)} of {format_bytes(plan.available)}"),
    ]


def plan_markdown(plan: Any, trace: Any, video: Any, changes: list[str] | None = None) -> str:
    """The memory plan as a two-column Markdown table (it wraps in a narrow column), then ``changes``:
    what the plan changed from the request (:func:`vidpool.options.plan_changes`)."""
    lines = ["| memory plan | for this answer |", "| --- | --- |"]
    lines += [f"| {label} | {value} |" for label, value in plan_rows(plan, trace, video)]
    if changes:
        lines += ["", "**What the plan changed from the request:**", ""]
        lines += [f"- {line}" for line in changes]
    return "\n".join(lines)
