"""The "last answer" panel's contents, from a :class:`vidpool.pipeline.Trace`: thumbnails, the picture
of what was kept, and Markdown for token counts, stage times and the memory plan."""

from __future__ import annotations

from typing import Any

import numpy as np

from vidpool.demo.pictures import kept_picture, pick_frames

__all__ = [
    "KEPT_CAPTION",
    "frames_html",
    "image_data_uri",
    "kept_html",
    "plan_markdown",
    "summary_markdown",
    "thumbnails",
    "trace_picture",
]

KEPT_CAPTION = (
    "Per sampled frame: top, each patch's weight in its token (light: large, dark: dropped); middle, which "
    "token each patch fed (one colour per token, grey: dropped); bottom, when the method uses the question, "
    "each patch's relevance to it."
)


def thumbnails(frames: np.ndarray, frame_times: np.ndarray, used: np.ndarray) -> list[tuple[np.ndarray, str]]:
    """``(image, caption)`` for each frame the answer used (``used``: its timestamps, seconds)."""
    return [(frames[i], f"{t:.2f} s") for i, t in zip(pick_frames(used, frame_times), used)]


def trace_picture(trace: Any, frames: np.ndarray, frame_times: np.ndarray) -> np.ndarray | None:
    """:func:`kept_picture` for ``trace`` (``None`` when the model reported no provenance)."""
    if trace.compressed is None:
        return None
    shown = frames[pick_frames(trace.timestamps, frame_times)]
    return kept_picture(shown, trace.compressed, trace.scores)


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


def kept_html(picture: np.ndarray | None) -> str:
    """The picture of what was kept, with its legend (a sentence when the model reported no provenance)."""
    if picture is None:
        return "<p>This model does not report which patches fed which token.</p>"
    return (
        f'<img class="vidpool-kept" src="{image_data_uri(picture)}" alt="what compression kept" '
        f'style="max-width:100%"/><p style="font-size:0.85em">{KEPT_CAPTION}</p>'
    )


def _seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


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
    decode = _seconds(decode_seconds) if decode_seconds is not None else "done at upload"
    lines.append(f"| decode | {decode} |")
    for stage, seconds in timings.items():
        lines.append(f"| {stage} | {_seconds(seconds)} |")
    if trace.cached:
        lines.append("| encode | cached (video encoded by an earlier question) |")
    return "\n".join(lines)


def plan_markdown(plan: Any) -> str:
    """The memory plan's table as a Markdown code block."""
    return "**Memory plan**\n\n```text\n" + plan.table() + "\n```"
