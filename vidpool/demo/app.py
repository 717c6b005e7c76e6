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

from vidpool.demo.config import DemoConfig, model_notice
from vidpool.demo.panel import (
    frames_html,
    kept_html,
    plan_markdown,
    summary_markdown,
    thumbnails,
    trace_picture,
)
from vidpool.demo.sessions import ChatService, Reply
from vidpool.errors import require

__all__ = ["CONCURRENCY_ID", "build_app", "launch"]

#: every event that runs the model shares this concurrency group, so the limit holds across them
CONCURRENCY_ID = "vidpool-model"
TITLE = "vidpool: chat about a video"
_VIDEO_TYPES = [".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".ts", ".mpg", ".mpeg"]
_PANEL_EMPTY = "Ask a question about a video: this panel then shows what the answer took."


def _gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    return require("gradio", "demo", "The chat demo")


def _sample_folder() -> Path:
    from vidpool.models import home

    return home() / "demo-samples"


def _load_model(config: DemoConfig) -> tuple[Any, str | None]:
    """The model and the folder it came from (``None`` for an already loaded one)."""
    from vidpool.pipeline import load
    from vidpool.pipeline.loading import _default_if_none

    source = _default_if_none(config.model)
    folder = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
    return load(source, device=config.resolved_device()), folder


def _panel_outputs(gr: Any, reply: Reply) -> tuple:
    """Values of the panel's components for ``reply`` (unchanged while an answer streams)."""
    if reply.trace is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    video = reply.session.video
    trace = reply.trace
    # HTML with inline pictures: the /chat API sends outputs without post-processing, so only
    # JSON-ready values reach its clients
    return (
        frames_html(thumbnails(video.frames, video.timestamps, trace.timestamps)),
        kept_html(trace_picture(trace, video.frames, video.timestamps)),
        summary_markdown(trace, reply.decode_seconds),
        plan_markdown(trace.plan),
    )


def build_app(config: DemoConfig | None = None, *, model: Any = None) -> Any:
    """The demo's ``gr.Blocks`` (queue set up; call ``.launch()`` or :func:`launch`).

    ``model``: an already loaded ``VideoLM`` to serve instead of loading ``config.model``.
    """
    gr = _gradio()
    import vidpool
    from vidpool.demo.samples import SAMPLE_QUESTION, sample_videos

    config = config or DemoConfig()
    if model is None:
        model, folder = _load_model(config)
    else:
        folder = os.fspath(config.model) if config.model is not None else None
    samples = sample_videos(_sample_folder())
    service = ChatService(model, config, [gr.utils.get_upload_folder(), _sample_folder()])
    default_frames = int(min(config.max_frames, getattr(model.config, "num_frames", 8)))
    methods = vidpool.list_methods()
    default_method = getattr(model.config, "method", None)

    def respond(message, history, frames, method, budget, temperature, max_new_tokens, session_key):
        for reply in service.respond(
            message,
            history,
            frames=frames,
            method=method,
            budget=budget,
            temperature=temperature,
            max_new_tokens=max_new_tokens,
            session_key=session_key,
        ):
            yield reply.text, *_panel_outputs(gr, reply), reply.session.key

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
            gr.Slider(1, 1024, value=128, step=1, label="Max new tokens", render=False),
        ]
        gallery = gr.HTML(label="Sampled frames", render=False)
        kept = gr.HTML(label="What was kept", render=False)
        summary = gr.Markdown(_PANEL_EMPTY, label="Tokens and time", render=False)
        plan_table = gr.Markdown(label="Memory plan", render=False)
        textbox = gr.MultimodalTextbox(
            file_types=_VIDEO_TYPES,
            file_count="single",
            sources=["upload"],
            placeholder="Upload a video (paperclip), then ask about it",
            render=False,
        )
        with gr.Row():
            # rendered before the chat, which would otherwise put them in an accordion of its own
            with gr.Column(scale=1, min_width=260), gr.Accordion("Settings", open=True):
                for control in controls:
                    control.render()
            with gr.Column(scale=3):
                chat = gr.ChatInterface(
                    respond,
                    multimodal=True,
                    textbox=textbox,
                    chatbot=gr.Chatbot(height=420, label="Chat"),
                    additional_inputs=[*controls, session_key],
                    additional_outputs=[gallery, kept, summary, plan_table, session_key],
                    api_name="chat",
                    concurrency_limit=config.concurrency,
                    fill_height=False,
                )
                gr.Examples(
                    [[{"text": SAMPLE_QUESTION, "files": [str(p)]}] for p in samples],
                    inputs=[textbox],
                    label="Sample videos (click one, then send)",
                    example_labels=[p.name for p in samples],
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
        **launch_kwargs,
    }
    return demo.launch(**options)
