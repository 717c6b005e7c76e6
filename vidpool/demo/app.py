"""The Gradio app: a multimodal chat about an uploaded video, and a panel of what the last answer did.

>>> from vidpool.demo import DemoConfig, build_app                    # doctest: +SKIP
>>> build_app(DemoConfig(model="checkpoints/tiny-native")).launch()   # doctest: +SKIP

The chat endpoint is ``/chat``: it takes the multimodal message ``{"text": ..., "files": [...]}`` and every
other input has a default, so one ``gradio_client`` call drives it::

    client.predict({"text": "What happens?", "files": [handle_file("clip.mp4")]}, api_name="/chat")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vidpool.demo.compare import compare_markdown
from vidpool.demo.config import DemoConfig, model_notice
from vidpool.demo.panel import (
    error_markdown,
    frames_html,
    image_data_uri,
    kept_html,
    plan_markdown,
    summary_markdown,
    thumbnails,
    trace_tiles,
)
from vidpool.demo.sessions import ChatService, Reply, UploadCheck
from vidpool.errors import require
from vidpool.options import DEFAULT_MAX_NEW_TOKENS
from vidpool.video import VIDEO_EXTENSIONS

__all__ = ["CONCURRENCY_ID", "build_app", "launch", "panel_outputs"]

#: every event that runs the model shares this concurrency group, so the limit holds across them
CONCURRENCY_ID = "vidpool-model"
TITLE = "vidpool: chat about a video"
_VIDEO_TYPES = list(VIDEO_EXTENSIONS)
_PANEL_EMPTY = "Ask a question about a video: this panel then shows what the answer took."
_VIDEO_EMPTY = "No video yet: upload one with the paperclip, or pick a sample under the chat."
COMPARE_LABEL = "Compare with every token"
COMPARE_INFO = "Answer twice: with every visual token (none), then with the method and budget above"
#: containers browsers play in a <video> element; the chat shows the first frame of the others
_PLAYABLE = {".mp4", ".m4v", ".webm", ".mov", ".ogv"}
_CSS = """
.vidpool-kept-table th { font-weight: 600; font-size: 0.85em; padding: 2px 4px; text-align: left; }
.vidpool-kept-table td { padding: 1px; }
.vidpool-kept-table img { width: 100%; display: block; border-radius: 2px; }
.vidpool-plan table { table-layout: fixed; width: 100%; }
.vidpool-plan td, .vidpool-plan th { overflow-wrap: anywhere; }
"""


def _gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return require("gradio", "demo", "The chat demo")


def _sample_folder() -> Path:
    from vidpool.models import home

    return home() / "demo-samples"


def _load_model(config: DemoConfig) -> tuple[Any, str | None]:
    """The model and the folder it came from (``None`` for an already loaded one)."""
    from vidpool.pipeline import load
    from vidpool.pipeline.loading import model_or_default

    source = model_or_default(config.model)
    folder = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    return load(source, device=config.resolved_device()), folder


def panel_outputs(gr: Any, reply: Reply, request: dict[str, Any]) -> tuple:
    """Values of the panel's components (frames, what was kept, summary, plan) for ``reply``: unchanged
    while an answer streams, the error of a failed request, or what a finished answer did (``request``:
    the plan options the user asked for). With Compare, the summary opens with the table of both answers;
    the rest is the compressed answer's: what was kept is drawn for it alone."""
    from vidpool.options import plan_changes

    if reply.error is not None:
        return "", "", error_markdown(reply.error), ""
    if reply.trace is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    video = reply.session.video
    trace = reply.trace
    summary = summary_markdown(trace, reply.decode_seconds)
    if reply.baseline is not None:
        summary = f"{compare_markdown(reply.baseline, trace)}\n\n{summary}"
    # HTML with inline pictures: the /chat API sends outputs without post-processing, so only
    # JSON-ready values reach its clients
    return (
        frames_html(thumbnails(video.frames, video.timestamps, trace.timestamps)),
        kept_html(trace_tiles(trace, video.frames, video.timestamps), trace.timestamps),
        summary,
        plan_markdown(trace.plan, trace, video, plan_changes(trace.plan, request)),
    )


def video_html(check: UploadCheck) -> str:
    """The "video" box: the upload's name with its first sampled frame and facts, or why it cannot be used."""
    import html

    name = html.escape(check.name)
    if check.video is None:
        return f'<div class="vidpool-video"><p><strong>{name}</strong></p><p>{html.escape(check.error or "")}</p></div>'
    video = check.video
    facts = [f"{video.duration:.1f} s", f"{video.width}×{video.height}"]
    if video.total_frames:
        facts.insert(1, f"{video.total_frames} frames")
    first = image_data_uri(video.frames[0], max_width=320, fmt="JPEG")
    return (
        f'<div class="vidpool-video"><p><strong>{name}</strong><br/>{" · ".join(facts)}</p>'
        f'<img src="{first}" alt="first sampled frame of {name}" style="width:100%;border-radius:4px"/></div>'
    )


def _show_posters(chatbot: Any, posters: dict[str, str]) -> Any:
    """``chatbot``, showing a video the browser cannot play (AVI, MPEG...) as its first frame.

    Wrapped on the instance: a subclass of a Gradio component makes Gradio write a ``.pyi`` stub beside
    the module that defines it."""
    plain = chatbot.postprocess

    def postprocess(value: Any) -> Any:
        return plain(None if value is None else [_with_posters(message, posters) for message in value])

    chatbot.postprocess = postprocess
    return chatbot


def _with_posters(message: Any, posters: dict[str, str]) -> Any:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    swapped = []
    for part in content:
        path = part.get("path") if isinstance(part, dict) else None
        poster = posters.get(os.fspath(Path(path).resolve())) if path else None
        if poster is not None and Path(path).suffix.lower() not in _PLAYABLE:
            part = {"path": poster, "alt_text": f"first frame of {Path(path).name}"}
        swapped.append(part)
    return {**message, "content": swapped}


def build_app(config: DemoConfig | None = None, *, model: Any = None) -> Any:
    """The demo's ``gr.Blocks`` (queue set up; call ``.launch()`` or :func:`launch`).

    ``model``: an already loaded ``VideoLM`` to serve instead of loading ``config.model``.
    """
    gr = _gradio()
    import vidpool
    from vidpool.demo.samples import real_footage_model, sample_videos

    config = config or DemoConfig()
    if model is None:
        model, folder = _load_model(config)
    else:
        folder = os.fspath(config.model) if config.model is not None else None
    samples = sample_videos(_sample_folder(), real_footage=real_footage_model(model, folder))
    uploads = gr.utils.get_upload_folder()
    service = ChatService(model, config, [uploads, _sample_folder()], Path(uploads) / "vidpool-posters")
    default_frames = int(min(config.max_frames, getattr(model.config, "num_frames", 8)))
    # a method that reads several encoder layers cannot run on a model's one-layer features
    methods = [m for m in vidpool.list_methods() if vidpool.get_method(m).input_layers is None]
    default_method = getattr(model.config, "method", None)

    def respond(message, history, frames, method, budget, temperature, max_new_tokens, compare, session_key):
        request = {"num_frames": int(frames), "method": method or None, "budget": int(budget) or None}
        for reply in service.respond(
            message,
            history,
            frames=frames,
            method=method,
            budget=budget,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            session_key=session_key,
            compare=bool(compare),
        ):
            yield reply.messages, *panel_outputs(gr, reply, request), reply.session.key

    def uploaded(value, frames, session_key):
        """Check a new upload at once: its name and first frame, or (one toast) why it cannot be used."""
        files = (value or {}).get("files") or []
        path = files[-1] if files else None
        if isinstance(path, dict):
            path = path.get("path")
        session = service.sessions.get(session_key)
        check = service.check_upload(path, frames, session.key) if path else None
        if check is None:
            return gr.skip(), gr.skip(), session.key
        if check.error is None:
            return video_html(check), gr.skip(), session.key
        gr.Warning(check.error)
        # the file leaves the message box, so that sending the question does not report it again
        return video_html(check), {"text": (value or {}).get("text") or "", "files": []}, session.key

    with gr.Blocks(title=TITLE, delete_cache=(600, 3600)) as demo:
        session_key = gr.State(None, delete_callback=service.sessions.drop)
        gr.Markdown(f"## {TITLE}\n\n{model_notice(model, folder, service.device)}")
        controls = [
            gr.Slider(1, config.max_frames, value=default_frames, step=1, label="Frames", render=False),
            gr.Dropdown(methods, value=default_method, label="Compression method", render=False),
            gr.Number(
                value=0, precision=0, minimum=0, label="Token budget (0: the method's default)", render=False
            ),
            gr.Slider(0.0, 2.0, value=0.0, step=0.05, label="Temperature (0: greedy)", render=False),
            gr.Slider(1, 1024, value=DEFAULT_MAX_NEW_TOKENS, step=1, label="Max new tokens", render=False),
            # last, so that /chat API calls that pass the earlier inputs by position work as before
            gr.Checkbox(value=False, label=COMPARE_LABEL, info=COMPARE_INFO, render=False),
        ]
        gallery = gr.HTML(label="Sampled frames", render=False)
        kept = gr.HTML(label="What was kept", render=False)
        summary = gr.Markdown(_PANEL_EMPTY, label="Tokens and time", render=False)
        plan_table = gr.Markdown(label="Memory plan", elem_classes=["vidpool-plan"], render=False)
        textbox = gr.MultimodalTextbox(
            file_types=_VIDEO_TYPES,
            file_count="single",
            sources=["upload"],
            placeholder="Upload a video (paperclip), then ask about it",
            render=False,
        )
        with gr.Row():
            # rendered before the chat, which would otherwise put them in an accordion of its own
            with gr.Column(scale=1, min_width=260):
                video_box = gr.HTML(f"<p>{_VIDEO_EMPTY}</p>")
                with gr.Accordion("Settings", open=True):
                    # Compare beside the method and budget it compares
                    for control in [*controls[:3], controls[-1], *controls[3:-1]]:
                        control.render()
            with gr.Column(scale=3):
                chat = gr.ChatInterface(
                    respond,
                    multimodal=True,
                    textbox=textbox,
                    chatbot=_show_posters(
                        # Compare's two replies as two bubbles, each with its own tag
                        gr.Chatbot(height=480, label="Chat", group_consecutive_messages=False),
                        service.posters,
                    ),
                    additional_inputs=[*controls, session_key],
                    additional_outputs=[gallery, kept, summary, plan_table, session_key],
                    api_name="chat",
                    concurrency_limit=config.concurrency,
                    fill_height=False,
                )
                gr.Examples(
                    [[{"text": s.question, "files": [str(s.path)]}] for s in samples],
                    inputs=[textbox],
                    label="Sample videos with a question this model answers (click one, then send)",
                    example_labels=[s.label for s in samples],
                )
        gr.Markdown("### The last answer")
        with gr.Row():
            with gr.Column(scale=1):
                summary.render()
                plan_table.render()
            with gr.Column(scale=2):
                gr.Markdown("**Sampled frames**")
                gallery.render()
                gr.Markdown("**What was kept**")
                kept.render()
        textbox.change(
            uploaded,
            [textbox, controls[0], session_key],
            [video_box, textbox, session_key],
            trigger_mode="always_last",
            show_progress="minimal",
            api_visibility="private",
        )
        chat.chatbot.clear(
            lambda: (_PANEL_EMPTY, "", "", ""),
            None,
            [summary, gallery, kept, plan_table],
            api_visibility="private",
        )
    _share_model_concurrency(demo, config.concurrency)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=config.concurrency)
    demo.vidpool_service = service
    demo.vidpool_samples = samples
    return demo


def _share_model_concurrency(demo: Any, limit: int) -> None:
    """Put every event that runs the chat function (the page's and the ``/chat`` API's) in one group."""
    for fn in demo.fns.values():
        name = getattr(getattr(fn, "fn", None), "__name__", "")
        if name in ("_submit_fn", "respond") or getattr(fn, "api_name", None) == "chat":
            fn.concurrency_id = CONCURRENCY_ID
            fn.concurrency_limit = limit


def launch(config: DemoConfig | None = None, **launch_kwargs: Any) -> Any:
    """Build the app and serve it (blocking): offline, no share link, on ``config.host``/``config.port``."""
    config = config or DemoConfig()
    demo = build_app(config)
    from vidpool.demo.decode import start_decoder

    start_decoder()
    options = {
        "server_name": config.host,
        "server_port": config.port,
        "share": False,
        "max_file_size": config.max_file_size,
        "allowed_paths": [str(_sample_folder())],
        "show_error": True,
        "css": _CSS,
        **launch_kwargs,
    }
    return demo.launch(**options)
