"""Per-session chat state and the chat logic of the demo, without Gradio.

Each browser tab (or API client) has its own :class:`Session`, found by a random key that Gradio keeps
in the session's ``gr.State``: its decoded video, its feature cache (the video is encoded once per
session, only pooling reruns per question) and the answers the model gave. Nothing is shared between
sessions except the model, so an answer can only reach the session that asked.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from vidpool.demo.config import DemoConfig
from vidpool.demo.decode import DecodedVideo, decode_upload
from vidpool.errors import VidpoolError

__all__ = ["ASK_FIRST", "ChatService", "Reply", "Session", "SessionStore", "model_turns"]

ASK_FIRST = (
    "Please upload a video first (the paperclip button, or one of the sample videos), then ask about it."
)


@dataclass
class Session:
    """One user's state: the current ``video``, its feature ``cache`` and the model's ``answers``."""

    key: str
    video: DecodedVideo | None = None
    video_name: str = ""
    decode_seconds: float | None = None
    cache: Any = None
    chat: Any = None
    chat_options: tuple = ()
    answers: set[tuple[str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class SessionStore:
    """Sessions by key, the ``max_sessions`` most recently used kept (older ones free their memory)."""

    def __init__(self, max_sessions: int = 32) -> None:
        self.max_sessions = max_sessions
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str | None) -> Session:
        """The session of ``key``, or a new one (with a new key) for ``None`` or a forgotten key."""
        from vidpool.encode import FeatureCache

        with self._lock:
            if key and key in self._sessions:
                self._sessions.move_to_end(key)
                return self._sessions[key]
            session = Session(key=uuid.uuid4().hex, cache=FeatureCache(max_items=2))
            self._sessions[session.key] = session
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
            return session

    def drop(self, key: str | None) -> None:
        with self._lock:
            self._sessions.pop(key or "", None)

    def __len__(self) -> int:
        return len(self._sessions)


def _text(content: Any) -> str | None:
    """The text of a message's content (a string, or a list of parts), ``None`` when it has none."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        content = [content]
    if not isinstance(content, (list, tuple)):
        return None
    texts = [c if isinstance(c, str) else c.get("text") for c in content if isinstance(c, (str, dict))]
    texts = [t for t in texts if isinstance(t, str) and t]
    return "\n".join(texts) if texts else None


def _has_file(content: Any) -> bool:
    if isinstance(content, dict):
        return "path" in content or "file" in content
    if isinstance(content, (list, tuple)):
        return any(_has_file(c) or (isinstance(c, dict) and c.get("type") == "file") for c in content)
    return False


def model_turns(history: Sequence[dict], answers: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The ``(question, answer)`` turns of the chat ``history`` (Gradio messages) since the last video
    upload that the model itself answered (in ``answers``), in order: what the model is shown as context.
    Messages the demo wrote (notices, errors) and turns the user undid are left out."""
    turns: list[tuple[str, str]] = []
    question: str | None = None
    for message in history:
        role, content = message.get("role"), message.get("content")
        if role == "user" and _has_file(content):
            turns, question = [], None  # a new video: earlier turns were about another one
        text = _text(content)
        if role == "user":
            question = text
        elif role == "assistant" and question is not None and text is not None:
            if (question, text) in answers:
                turns.append((question, text))
            question = None
    return turns


@dataclass
class Reply:
    """One update of the answer: the ``text`` so far; ``trace`` once the answer is complete, and
    ``decode_seconds`` when this request decoded an upload."""

    text: str
    session: Session
    trace: Any = None
    decode_seconds: float | None = None


def _upload_path(files: Sequence[Any]) -> str | None:
    if not files:
        return None
    last = files[-1]
    if isinstance(last, dict):
        last = last.get("path") or last.get("name")
    return os.fspath(last) if last else None


class ChatService:
    """Answers chat messages about uploaded videos with one shared model.

    Args:
        model: the loaded ``VideoLM``.
        config: the demo's settings.
        upload_roots: folders uploads may be read from (Gradio's upload cache, the sample folder).
    """

    def __init__(self, model: Any, config: DemoConfig, upload_roots: Sequence[str | os.PathLike]) -> None:
        self.model = model
        self.config = config
        self.device = config.resolved_device()
        self.upload_roots = [Path(r).resolve() for r in upload_roots]
        self.sessions = SessionStore(config.max_sessions)

    def _check_upload(self, path: str) -> Path:
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(root) for root in self.upload_roots):
            raise VidpoolError("that file was not uploaded to this demo; upload the video with the paperclip")
        return resolved

    def _load_video(self, session: Session, path: str, frames: int) -> str:
        start = time.perf_counter()
        video = decode_upload(
            self._check_upload(path),
            frames,
            max_duration=self.config.max_duration,
            timeout=self.config.decode_timeout,
        )
        session.video, session.video_name = video, Path(path).name
        session.decode_seconds = time.perf_counter() - start
        session.chat, session.chat_options, session.answers = None, (), set()
        return (
            f"Got the video: {video.duration:.1f} s, {video.width}×{video.height}. "
            "Ask anything about it; follow-up questions keep the context."
        )

    def _chat(self, session: Session, options: dict[str, Any]) -> Any:
        """The session's ``VideoChat`` for ``options``; a new one (same feature cache) when they changed."""
        from vidpool.pipeline import VideoChat

        key = tuple(sorted(options.items()))
        if session.chat is None or session.chat_options != key:
            video = SimpleNamespace(frames=session.video.frames, timestamps=session.video.timestamps)
            session.chat = VideoChat(video, self.model, device=self.device, cache=session.cache, **options)
            session.chat_options = key
        return session.chat

    def respond(
        self,
        message: dict[str, Any],
        history: Sequence[dict],
        *,
        frames: int,
        method: str | None,
        budget: int | None,
        temperature: float,
        max_new_tokens: int,
        session_key: str | None,
    ) -> Iterator[Reply]:
        """Replies to one chat ``message`` (``{"text": ..., "files": [...]}``), streamed."""
        session = self.sessions.get(session_key)
        with session.lock:  # one request at a time per session: its chat and cache are not shared
            text = str((message or {}).get("text") or "").strip()
            path = _upload_path((message or {}).get("files") or [])
            notice = ""
            if path is not None:
                try:
                    notice = self._load_video(session, path, int(frames))
                except VidpoolError as exc:
                    yield Reply(f"Could not use this file: {exc}", session)
                    return
            if not text:
                yield Reply(notice or "Ask a question about the video.", session)
                return
            if session.video is None:
                yield Reply(ASK_FIRST, session)
                return
            options = {
                "num_frames": int(frames),
                "budget_tokens": int(budget) if budget else None,
                "method": method or None,
                "temperature": float(temperature),
                "max_new_tokens": int(max_new_tokens),
            }
            try:
                chat = self._chat(session, options)
                chat.history = model_turns(history, session.answers)
                answer = ""
                for piece in chat.ask(text, stream=True):
                    answer += piece
                    yield Reply(answer, session)
                answer = answer or "(the model gave an empty answer)"
            except VidpoolError as exc:
                yield Reply(f"Could not answer: {exc}", session)
                return
            session.answers.add((text, answer))
            decoded = session.decode_seconds if path is not None else None
            yield Reply(answer, session, chat.last_trace, decoded)
