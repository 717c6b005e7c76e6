"""lmms-eval requests as vidpool sees them: the video, the question, earlier turns, generation options.

lmms-eval hands a model its requests in two layouts (``lmms_eval/api/task.py``, ``construct_requests``):

- chat (``ConfigurableMessagesTask``): ``(context, doc_to_messages, gen_kwargs, doc_id, task, split)``;
  ``doc_to_messages(doc)`` gives OpenAI-style messages whose ``content`` lists ``{"type": "video",
  "url": path}``, ``{"type": "image", "url": PIL image}`` and ``{"type": "text", "text": ...}`` parts;
- simple (``ConfigurableTask``): ``(context, gen_kwargs, doc_to_visual, doc_id, task, split)`` for
  generation and ``(context, continuation, doc_to_visual, doc_id, task, split)`` for loglikelihood,
  with ``doc_to_visual(doc)`` a list of paths or images.

Both become a :class:`Turn`; nothing here loads a model.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vidpool.errors import InvalidArgumentError
from vidpool.options import DEFAULT_MAX_NEW_TOKENS, check_generation

log = logging.getLogger(__name__)

__all__ = ["Turn", "generation_options", "turn_from_messages", "turn_from_visuals", "video_of"]


@dataclass
class Turn:
    """One question about one video.

    Attributes:
        video: a file path, or uint8 frames ``[T, H, W, 3]`` (images become frames of one video).
        question: the last user message's text.
        history: earlier ``(user, assistant)`` turns of the same conversation.
    """

    video: Any
    question: str
    history: list[tuple[str, str]] = field(default_factory=list)


def _image_frame(image: Any) -> np.ndarray:
    """A PIL image (or an ``[H, W, 3]`` array) as uint8 RGB ``[H, W, 3]``."""
    if hasattr(image, "convert"):
        image = image.convert("RGB")
    frame = np.asarray(image)
    if frame.ndim != 3 or frame.shape[-1] != 3:
        raise InvalidArgumentError(f"an image must be RGB [H, W, 3], got shape {frame.shape}")
    return frame.astype(np.uint8, copy=False)


def _media_path(item: Any) -> str | None:
    """The path of a video given as a path or as lmms-eval's ``{"path"|"url": ...}`` dict, else ``None``."""
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    if isinstance(item, Mapping):
        for key in ("path", "url", "video"):
            value = item.get(key)
            if isinstance(value, (str, os.PathLike)):
                return os.fspath(value)
    return None


def video_of(visuals: Sequence[Any]) -> Any:
    """The one video of a request: a file path, or frames ``[T, H, W, 3]`` stacked from its images.

    Raises:
        InvalidArgumentError: no visual at all, two videos, or a video mixed with images; vidpool
            answers about one video at a time.
    """
    visuals = [v for v in visuals or [] if v is not None]
    paths = [p for p in (_media_path(v) for v in visuals) if p is not None]
    images = [v for v in visuals if _media_path(v) is None]
    if not visuals:
        raise InvalidArgumentError(
            "this request has no video or image; vidpool models answer about a video, so give the task "
            "a doc_to_visual (or video parts in doc_to_messages)"
        )
    if (paths and images) or len(paths) > 1:
        raise InvalidArgumentError(
            f"this request has {len(paths)} videos and {len(images)} images; vidpool answers about one "
            "video (or a list of images, read as the frames of one video) per request"
        )
    if paths:
        return paths[0]
    frames = [_image_frame(image) for image in images]
    if len({f.shape for f in frames}) != 1:
        raise InvalidArgumentError(
            "the request's images differ in size; vidpool reads several images as the frames of one "
            f"video, so they must share one size (got {sorted({f.shape for f in frames})})"
        )
    return np.stack(frames)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") for p in content or [] if isinstance(p, Mapping) and p.get("type") == "text"]
    return "\n".join(part for part in parts if part)


def _visuals_of(content: Any) -> list[Any]:
    if isinstance(content, str):
        return []
    visuals = []
    for part in content or []:
        if isinstance(part, Mapping) and part.get("type") in ("video", "image"):
            visuals.append(part.get("url", part.get(part["type"])))
    return visuals


def _plain(messages: Any) -> list[dict[str, Any]]:
    """Messages as plain dicts (lmms-eval may hand pydantic ``ChatMessages``)."""
    if hasattr(messages, "model_dump"):
        messages = messages.model_dump()["messages"]
    return [m.model_dump() if hasattr(m, "model_dump") else dict(m) for m in messages]


def turn_from_messages(messages: Any, *, need_video: bool = True) -> Turn:
    """A :class:`Turn` from chat messages: the last user message is the question, the user/assistant
    pairs before it the history, and the one video (or the images) of any message the video.

    A system message's text opens the first user turn: vidpool's prompts take their system prompt from
    the checkpoint's config. With ``need_video=False`` a turn without visuals gets ``video=None``.
    """
    messages = _plain(messages)
    system = "\n".join(_text_of(m.get("content")) for m in messages if m.get("role") == "system")
    visuals = [v for m in messages for v in _visuals_of(m.get("content"))]
    users: list[str] = []
    answers: list[str] = []
    for message in messages:
        role = message.get("role")
        if role == "user":
            users.append(_text_of(message.get("content")))
        elif role == "assistant":
            answers.append(_text_of(message.get("content")))
    if not users:
        raise InvalidArgumentError("the request's messages have no user message to answer")
    if system.strip():
        users[0] = f"{system.strip()}\n{users[0]}"
    history = list(zip(users[:-1], answers))
    video = video_of(visuals) if visuals or need_video else None
    return Turn(video=video, question=users[-1], history=history)


def turn_from_visuals(context: str, doc_to_visual: Callable[[Any], Any] | None, doc: Any) -> Turn:
    """A :class:`Turn` of the simple layout: ``context`` is the question, ``doc_to_visual(doc)`` the video."""
    visuals = doc_to_visual(doc) if doc_to_visual is not None else []
    return Turn(video=video_of(visuals), question=str(context))


_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(message)


def generation_options(gen_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """vidpool generation options (:meth:`vidpool.VideoChat.ask`) from lmms-eval's ``gen_kwargs``.

    ``until`` becomes ``stop``; ``max_new_tokens`` (default :data:`~vidpool.options.DEFAULT_MAX_NEW_TOKENS`),
    ``temperature`` and ``top_p`` carry over; ``do_sample: false`` means greedy whatever the
    temperature. Beam search is not supported: ``num_beams > 1`` decodes greedily, with a warning.
    """
    kwargs = dict(gen_kwargs or {})
    until = kwargs.get("until")
    stop = [until] if isinstance(until, str) else list(until or [])
    stop = [s for s in stop if isinstance(s, str) and s]
    max_new_tokens = kwargs.get("max_new_tokens")
    max_new_tokens = DEFAULT_MAX_NEW_TOKENS if max_new_tokens is None else max_new_tokens
    if isinstance(max_new_tokens, float) and max_new_tokens.is_integer():
        max_new_tokens = int(max_new_tokens)
    temperature = kwargs.get("temperature") or 0.0
    if kwargs.get("do_sample") is False:
        temperature = 0.0
    top_p = kwargs.get("top_p")
    top_p = 1.0 if top_p is None or temperature == 0 else top_p
    if (kwargs.get("num_beams") or 1) > 1:
        _warn_once("num_beams", "vidpool does not run beam search; num_beams > 1 decodes greedily instead")
    check_generation(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p)
    options: dict[str, Any] = {"max_new_tokens": max_new_tokens, "temperature": float(temperature)}
    if temperature > 0:
        options["top_p"] = float(top_p)
    if stop:
        options["stop"] = stop
    return options
