"""Per-session chat state and the chat logic of the demo, without Gradio.

Each browser tab (or API client) has its own :class:`Session`, found by a random key that Gradio keeps
in the session's ``gr.State``: its decoded video, its feature cache (the video is encoded once per
session, only pooling reruns per question) and the answers the model gave. Nothing is shared between
sessions except the model, so an answer can only reach the session that asked.

With the Compare switch on, a question is answered twice, one answer after the other: with every
visual token (method ``none``), then with the chosen method and budget; both replies stay in the chat,
each tagged with what produced it, and a follow-up gives each method its own earlier answers.
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
from typing import Any

from vidpool.demo.config import DemoConfig
from vidpool.demo.decode import DecodedVideo, decode_upload
from vidpool.demo.stages import (
    StageRelay,
    answer_tag,
    scrub_paths,
    split_tag,
    stage_line,
    stream_with_stages,
    tagged,
)
from vidpool.errors import VidpoolError
from vidpool.video import Frames

__all__ = ["ASK_FIRST", "ChatService", "Reply", "Session", "SessionStore", "UploadCheck", "model_turns"]

ASK_FIRST = (
    "Please upload a video first (the paperclip button, or one of the sample videos), then ask about it."
)


@dataclass
class Session:
    """One user's state: the current ``video`` (decoded from ``video_path``), its feature ``cache``, its
    ``chats`` (a ``VideoChat`` per set of options, the last two used) and the model's ``answers``
    (``(question, message shown) -> answer``)."""

    key: str
    video: DecodedVideo | None = None
    video_name: str = ""
    video_path: Path | None = None
    frames_asked: int = 0
    checked_upload: str = ""
    decode_seconds: float | None = None
    cache: Any = None
    chats: OrderedDict[tuple, Any] = field(default_factory=OrderedDict)
    answers: dict[tuple[str, str], str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    relay: StageRelay = field(default_factory=StageRelay)


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


def _tag_method(shown: str) -> str | None:
    """The method named first in the tag line of a message shown (``None`` without a tag)."""
    tag = split_tag(shown)[1]
    return tag.split(" · ", 1)[0] if tag else None


def model_turns(
    history: Sequence[dict], answers: dict[tuple[str, str], str], method: str | None = None
) -> list[tuple[str, str]]:
    """The ``(question, answer)`` turns of the chat ``history`` (Gradio messages) since the last video
    upload that the model itself answered (``answers`` maps ``(question, message shown)`` to the model's
    answer, without its tag line), in order: what the model is shown as context. Messages the demo wrote
    (notices, errors) and turns the user undid are left out. A question answered twice (the Compare
    switch) gives the answer whose tag names ``method``, else the first."""
    turns: list[tuple[str, str]] = []
    question: str | None = None
    shown: list[str] = []

    def close() -> None:
        if question is not None and shown:
            chosen = next((m for m in shown if _tag_method(m) == method), shown[0])
            turns.append((question, answers[question, chosen]))

    for message in history:
        role, content = message.get("role"), message.get("content")
        text = _text(content)
        if role == "user":
            close()
            if _has_file(content):
                turns = []  # a new video: earlier turns were about another one
            question, shown = text, []
        elif role == "assistant" and question is not None and (question, text) in answers:
            shown.append(text)
    close()
    return turns


@dataclass
class Reply:
    """One update of the answer: the ``text`` so far (a stage line while waiting); ``trace`` once the
    answer is complete, ``decode_seconds`` when this request decoded an upload, ``error`` when the
    request failed (the panel then shows it instead of an earlier answer). With the Compare switch,
    ``before`` holds the finished every-token message that comes before ``text`` in the chat and
    ``baseline`` its trace (given with ``trace``)."""

    text: str
    session: Session
    trace: Any = None
    decode_seconds: float | None = None
    error: str | None = None
    before: tuple[str, ...] = ()
    baseline: Any = None

    @property
    def messages(self) -> str | list[str]:
        """What the chat shows for this request: one message, or (Compare) the list of them."""
        return [*self.before, self.text] if self.before else self.text


@dataclass
class UploadCheck:
    """What checking an upload found: the ``video`` (``None`` when it cannot be used, then ``error``
    says why, without server paths), the file's base ``name`` and the ``session`` it was loaded into."""

    session: Session
    name: str
    video: DecodedVideo | None = None
    error: str | None = None


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
        poster_folder: where the first frame of each decoded upload is written as a JPEG (``posters``
            maps the upload's resolved path to it), for pages that cannot play the file; ``None``: none.
    """

    def __init__(
        self,
        model: Any,
        config: DemoConfig,
        upload_roots: Sequence[str | os.PathLike],
        poster_folder: str | os.PathLike | None = None,
    ) -> None:
        self.model = model
        self.config = config
        self.device = config.resolved_device()
        self.upload_roots = [Path(r).resolve() for r in upload_roots]
        self.sessions = SessionStore(config.max_sessions)
        self.poster_folder = Path(poster_folder) if poster_folder is not None else None
        self.posters: dict[str, str] = {}

    def _write_poster(self, resolved: Path, video: DecodedVideo) -> None:
        if self.poster_folder is None or os.fspath(resolved) in self.posters:
            return
        import hashlib

        from PIL import Image

        self.poster_folder.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha1(os.fspath(resolved).encode()).hexdigest()[:16] + ".jpg"
        Image.fromarray(video.frames[0]).save(self.poster_folder / name, quality=88)
        self.posters[os.fspath(resolved)] = os.fspath(self.poster_folder / name)

    def _check_upload(self, path: str) -> Path:
        resolved = Path(path).resolve()
        if not any(resolved.is_relative_to(root) for root in self.upload_roots):
            raise VidpoolError("that file was not uploaded to this demo; upload the video with the paperclip")
        return resolved

    @staticmethod
    def _has(session: Session, path: str, frames: int) -> bool:
        """Whether ``session`` holds ``frames`` frames of ``path`` already."""
        same = session.video_path == Path(path).resolve() and session.frames_asked == frames
        return session.video is not None and same

    def _load_video(self, session: Session, path: str, frames: int) -> bool:
        """Decode ``frames`` frames of upload ``path`` into ``session`` in a child process, unless they
        are there already; ``True`` when this call decoded."""
        resolved = self._check_upload(path)
        if self._has(session, path, frames):
            return False
        start = time.perf_counter()
        video = decode_upload(
            resolved, frames, max_duration=self.config.max_duration, timeout=self.config.decode_timeout
        )
        if session.video_path != resolved:  # a new video: the conversation starts again
            session.chats, session.answers = OrderedDict(), {}
        session.video, session.video_name, session.video_path = video, Path(path).name, resolved
        session.frames_asked = frames
        self._write_poster(resolved, video)
        session.decode_seconds = time.perf_counter() - start
        return True

    def check_upload(self, path: str, frames: int, session_key: str | None) -> UploadCheck | None:
        """Decode a new upload as soon as it arrives (in a child process), so that a file that is not a
        usable video is reported at once; a good one becomes the session's video. ``None`` when the
        session checked this upload already (the page reports each upload once)."""
        session = self.sessions.get(session_key)
        name = Path(path).name
        with session.lock:
            if session.checked_upload == path:
                return None
            session.checked_upload = path
            try:
                self._load_video(session, path, int(frames))
            except VidpoolError as exc:
                return UploadCheck(session, name, error=f"Could not use {name}: {scrub_paths(str(exc))}")
        return UploadCheck(session, name, session.video)

    def _chat(self, session: Session, options: dict[str, Any]) -> Any:
        """The session's ``VideoChat`` for ``options``; a new one (same feature cache) when they or the
        frames changed. The last two are kept, so that Compare's two answers reuse their chats."""
        from vidpool.pipeline import VideoChat

        key = (id(session.video), *sorted(options.items()))
        if key not in session.chats:
            video = Frames(session.video.frames, session.video.timestamps)
            session.chats[key] = VideoChat(
                video, self.model, device=self.device, cache=session.cache, progress=session.relay, **options
            )
            while len(session.chats) > 2:
                session.chats.popitem(last=False)
        session.chats.move_to_end(key)
        return session.chats[key]

    def _answer(
        self,
        session: Session,
        text: str,
        history: Sequence[dict],
        options: dict[str, Any],
        start: float,
        costs: bool = False,
    ) -> Iterator[tuple[str, Any]]:
        """One streamed answer: ``(stage line or answer so far, None)`` updates, then ``(message shown,
        trace)``: the answer with its tag line (``costs``: with prefill time and planned memory; the time
        counts from ``start``). Raises what the pipeline raises."""
        chat = None

        def answer() -> Iterator[str]:
            nonlocal chat
            chat = self._chat(session, options)
            chat.history = model_turns(history, session.answers, chat.plan.method)
            yield from chat.ask(text, stream=True)

        pieces = ""
        for kind, value in stream_with_stages(session.relay, answer):
            if kind == "piece":
                pieces += value
            yield (pieces if pieces else value), None
        pieces = pieces or "(the model gave an empty answer)"
        shown = tagged(pieces, answer_tag(chat.last_trace, time.perf_counter() - start, costs=costs))
        session.answers[text, shown] = pieces
        yield shown, chat.last_trace

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
        compare: bool = False,
    ) -> Iterator[Reply]:
        """Replies to one chat ``message`` (``{"text": ..., "files": [...]}``), streamed: stage lines while
        the answer is prepared, then the growing answer, then the answer with its tag line. With
        ``compare`` (and a method other than ``none``) the question is answered with every token first,
        then as asked; the replies' ``before`` holds the first answer while the second streams."""
        session = self.sessions.get(session_key)
        with session.lock:  # one request at a time per session: its chat and cache are not shared
            start = time.perf_counter()
            text = str((message or {}).get("text") or "").strip()
            path = _upload_path((message or {}).get("files") or [])
            if path is None and session.video_path is not None:
                path = os.fspath(session.video_path)  # the frames asked may differ from those decoded
            decoded = False
            if path is not None:
                if not self._has(session, path, int(frames)):
                    yield Reply(stage_line("decoding the video"), session)
                try:
                    decoded = self._load_video(session, path, int(frames))
                except VidpoolError as exc:
                    error = f"Could not use {Path(path).name}: {scrub_paths(str(exc))}"
                    yield Reply(error, session, error=error)
                    return
            if not text:
                video = session.video
                notice = (
                    f"Got the video: {video.duration:.1f} s, {video.width}×{video.height}. "
                    "Ask anything about it; follow-up questions keep the context."
                    if video is not None
                    else ASK_FIRST
                )
                yield Reply(notice, session)
                return
            if session.video is None:
                yield Reply(ASK_FIRST, session)
                return
            options = {
                "num_frames": int(frames),
                "budget": int(budget) if budget else None,
                "method": method or None,
                "temperature": float(temperature),
                "max_new_tokens": int(max_new_tokens),
            }
            decode_seconds = session.decode_seconds if decoded else None
            compare = bool(compare) and options["method"] != "none"
            before: tuple[str, ...] = ()
            baseline = None
            try:
                if compare:
                    every = {**options, "method": "none", "budget": None}
                    for shown, baseline in self._answer(session, text, history, every, start, costs=True):
                        if baseline is None:
                            yield Reply(shown, session)
                    before, start = (shown,), time.perf_counter()
                for shown, trace in self._answer(session, text, history, options, start, costs=compare):
                    if trace is None:
                        yield Reply(shown, session, before=before)
                yield Reply(shown, session, trace, decode_seconds, before=before, baseline=baseline)
            except VidpoolError as exc:
                error = f"Could not answer: {scrub_paths(str(exc))}"
                yield Reply(error, session, error=error, before=before)
