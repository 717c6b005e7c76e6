"""Captions for many videos with one model: ``Captioner``, and the ``Caption`` each video gets."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vidpool.errors import InvalidArgumentError
from vidpool.options import check_caption_options, generation_options
from vidpool.pipeline.chat import VideoChat, _package
from vidpool.pipeline.loading import ModelOrPath
from vidpool.progress import ProgressCallback
from vidpool.schedule import Plan

log = logging.getLogger("vidpool.pipeline")

__all__ = ["CAPTION_PROMPT", "Caption", "Captioner"]

CAPTION_PROMPT = "Describe this video in detail."


@dataclass(frozen=True)
class Caption:
    """The outcome for one video of :meth:`Captioner.caption_many`: its ``text`` or the ``error``.

    Exactly one of ``text`` and ``error`` is set; ``plan`` is the plan the video was captioned with
    (``None`` when it failed before planning). ``str(caption)`` is the text, or ``""`` for a failure.
    """

    video: Any
    text: str | None = None
    error: BaseException | None = None
    plan: Plan | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return self.text or ""


_PLAN_KEYS = ("num_frames", "budget_tokens", "method", "method_params", "max_memory")


class Captioner:
    """Caption videos with one model: ``Captioner(model=...).caption(video) -> str``.

    Each video gets its own plan (its length differs); the model is loaded once. ``plan_kwargs`` are
    :func:`vidpool.plan`'s ``num_frames``, ``budget_tokens``, ``method``, ``method_params`` and
    ``max_memory``; ``max_new_tokens``, ``temperature``, ``top_p`` and ``seed`` are the generation
    defaults (a call's own options override them). All of them are checked before the model loads.
    """

    def __init__(
        self,
        model: ModelOrPath = None,
        *,
        device: str = "cpu",
        prompt: str = CAPTION_PROMPT,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        **plan_kwargs: Any,
    ) -> None:
        unknown = sorted(set(plan_kwargs) - set(_PLAN_KEYS))
        if unknown:
            raise InvalidArgumentError(
                f"unknown Captioner options {unknown}; planning options are {_PLAN_KEYS}"
            )
        self.device, self.generation = check_caption_options(
            device=device,
            prompt=prompt,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            **plan_kwargs,
        )
        self.model = _package().load(model, device=device, progress=progress)
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.plan_kwargs = plan_kwargs
        self.progress = progress
        self.last_plan: Plan | None = None

    def caption(self, video: Any, **generate: Any) -> str:
        """One caption for ``video`` (a path or frames); raises what went wrong."""
        options = generation_options(self.generation, generate)
        self.last_plan = None
        chat = VideoChat(
            video,
            self.model,
            device=self.device,
            progress=self.progress,
            **self.plan_kwargs,
            **{k: options.pop(k) for k in ("max_new_tokens", "temperature", "top_p", "seed")},
        )
        self.last_plan = chat.plan
        return str(chat.ask(self.prompt, **options)).strip()

    def caption_many(self, videos: Sequence[Any], **generate: Any) -> list[Caption]:
        """A :class:`Caption` for each of ``videos``, in order: ``zip(videos, result)`` pairs them.

        A video that fails (missing, unreadable, out of memory ...) gets a ``Caption`` with ``error``
        set and a warning in the ``vidpool.pipeline`` log; the others are captioned all the same.
        Options that would fail for every video (bad generation options) raise before the first one.
        """
        generation_options(self.generation, generate)
        results: list[Caption] = []
        for video in videos:
            try:
                text = self.caption(video, **generate)
            except Exception as exc:  # one bad video must not cost the others
                log.warning("could not caption %s: %s", _describe(video), exc)
                results.append(Caption(video, error=exc, plan=self.last_plan))
            else:
                results.append(Caption(video, text=text, plan=self.last_plan))
        return results


def _describe(video: Any) -> str:
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    return f"frames {tuple(getattr(getattr(video, 'frames', video), 'shape', ()))}"
