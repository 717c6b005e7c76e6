"""The demo's settings, and what the page says about the model it runs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "model_notice"]

_PART_NAMES = {"encoder": "vision encoder", "projector": "projector", "lm": "language model"}


@dataclass
class DemoConfig:
    """Settings of one demo server.

    Attributes:
        model: a checkpoint folder vidpool loads, or ``None`` for the default model (as ``vidpool chat``).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (``None``: cuda when available, else cpu).
        host, port: where the server listens (127.0.0.1 only, unless told otherwise).
        max_file_size: largest upload Gradio accepts, in bytes (or Gradio's text, ``"200mb"``).
        max_duration: longest video, seconds.
        decode_timeout: seconds one upload may take to decode before its child process is killed.
        queue_size: requests that may wait in the queue; more are refused with a "try later".
        concurrency: requests the model serves at once (one shared limit for every chat event).
        max_frames: the largest frame count the "frames" slider offers.
        max_sessions: sessions kept in memory (least recently used ones are dropped first).
    """

    model: str | os.PathLike | None = None
    device: str | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    max_file_size: int | str = 200 * 10**6
    max_duration: float = 600.0
    decode_timeout: float = 60.0
    queue_size: int = 16
    concurrency: int = 1
    max_frames: int = 64
    max_sessions: int = 32

    def resolved_device(self) -> str:
        from vidpool.options import default_device

        return self.device or default_device()


def model_notice(model: Any, folder: str | os.PathLike | None, device: str) -> str:
    """Markdown naming the running model, then the line the model says about itself (its notice) and,
    when parts of it are untrained, a note that its answers do not describe the video."""
    from vidpool.models import model_notice_line, portable_path, untrained_parts

    name = getattr(model, "name", None) or (Path(folder).name if folder else type(model).__name__)
    parts = list(untrained_parts(folder)) if folder is not None else []
    parts = parts or list(getattr(getattr(model, "config", None), "untrained", None) or [])
    notice = model_notice_line(folder) if folder is not None else None
    notice = notice or getattr(getattr(model, "config", None), "notice", None)
    text = f"**Model:** `{name}` ({getattr(model, 'kind', 'model')}) on `{device}`"
    if folder is not None:  # the page is public: no absolute path of the server's disk
        text += f" — from `{portable_path(folder)}`"
    if notice:
        text += f"\n\n**About this model:** {notice}"
    if "encoder" in parts or "projector" in parts:
        named = " and ".join(_PART_NAMES.get(p, p) for p in parts)
        text += (
            f"\n\n**Note:** this model's {named} {'have' if len(parts) > 1 else 'has'} random, untrained "
            "weights, so **its answers do not describe the video**. The demo still runs every stage "
            "(decode → encode → compress → generate) and shows what was kept; start it with "
            "`--model` and a trained checkpoint for real answers."
        )
    return text
