"""Captions for many videos with one model: ``Captioner``, and the ``Caption`` each video gets.

``Captioner`` is the one captioner: the library's ``caption``/``caption_many`` and every engine of
``vidpool caption`` (:mod:`vidpool.caption`) run through it. A caption is made in two steps that an
engine may run in different threads: :meth:`Captioner.plan_for` + :meth:`Captioner.read` (probe, plan,
decode the planned frames) and :meth:`Captioner.caption` with that plan (encode, compress, generate).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vidpool.errors import InvalidArgumentError
from vidpool.options import (
    DEFAULT_CAPTION_MAX_NEW_TOKENS,
    check_caption_options,
    generation_options,
    renamed_budget,
)
from vidpool.pipeline.chat import VideoChat, _package, _video_info
from vidpool.pipeline.loading import ModelOrPath, plan_before_loading
from vidpool.pipeline.trace import Trace
from vidpool.progress import ProgressCallback, report
from vidpool.schedule import Plan
from vidpool.video import DECODE_TIMEOUT

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


_PLAN_KEYS = ("num_frames", "budget", "method", "method_params", "max_memory", "fastv")
_GENERATION_KEYS = ("max_new_tokens", "temperature", "top_p", "seed")


class Captioner:
    """Caption videos with one model: ``Captioner(model=...).caption(video) -> str``.

    Each video gets its own plan (its length differs); the model is loaded once. ``plan_kwargs`` are
    :func:`vidpool.plan`'s ``num_frames``, ``budget``, ``method``, ``method_params``, ``max_memory``
    and ``fastv``; ``max_new_tokens``, ``temperature``, ``top_p`` and ``seed`` are the generation
    defaults (a call's own options override them). All of them are checked before the model loads.
    ``device`` ``None`` is :func:`vidpool.options.default_device` (``"cuda"`` when torch sees a GPU).

    Without ``max_memory`` every video is planned for the memory the device had free once the model
    loaded, measured once: a later measurement would count the allocator's cache of earlier videos
    (or another thread's activations) as used, and plans would shrink as a run goes on.
    """

    def __init__(
        self,
        model: ModelOrPath = None,
        *,
        device: str | None = None,
        prompt: str = CAPTION_PROMPT,
        max_new_tokens: int = DEFAULT_CAPTION_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        **plan_kwargs: Any,
    ) -> None:
        if "budget_tokens" in plan_kwargs:
            budget = renamed_budget(plan_kwargs.get("budget"), plan_kwargs.pop("budget_tokens"))
            plan_kwargs["budget"] = budget
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
        plan_before_loading(None, model, self.device, {**plan_kwargs, "max_new_tokens": max_new_tokens})
        self.model = _package().load(model, device=self.device, progress=progress)
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.progress = progress
        self.plan_kwargs = dict(plan_kwargs)
        if self.plan_kwargs.get("max_memory") is None:
            available = (
                _package().plan(None, self.model, self.device, max_new_tokens=max_new_tokens).available
            )
            self.plan_kwargs["max_memory"] = available
        # a fast tokenizer switches its padding/truncation state on its first call; make that call
        # here, before plans made in other threads count prompt tokens while this one generates
        self.model.prompt_tokens(1)
        #: the plan of the latest caption (``None`` before, or when it failed before planning)
        self.last_plan: Plan | None = None
        #: what the latest caption did (seconds per stage, frames, what compression kept)
        self.last_trace: Trace | None = None

    def plan_for(
        self, video: Any, *, max_new_tokens: int | None = None, timeout: float | None = DECODE_TIMEOUT
    ) -> Plan:
        """The plan for ``video`` (a path, probed within ``timeout`` seconds, or frames in memory).

        Safe to call from another thread while :meth:`caption` runs.
        """
        if isinstance(video, (str, os.PathLike)):
            from vidpool.video import probe

            info = probe(video, timeout=timeout)
        else:
            info = _video_info(video)
        tokens = max_new_tokens if max_new_tokens is not None else self.max_new_tokens
        return _package().plan(info, self.model, self.device, max_new_tokens=tokens, **self.plan_kwargs)

    def read(self, video: str | os.PathLike, plan: Plan, *, timeout: float | None = DECODE_TIMEOUT) -> Any:
        """The frames ``plan`` samples from the file ``video`` (a ``Frames``), each decode step allowed
        ``timeout`` seconds; pass them to :meth:`caption` with the same ``plan``. Safe to call from
        another thread while :meth:`caption` runs."""
        from vidpool.video import VideoReader

        with VideoReader(video, timeout=timeout) as reader:
            return reader.sample(**plan.sample_kwargs())

    def caption(self, video: Any, *, plan: Plan | None = None, **generate: Any) -> str:
        """One caption for ``video`` (a path or frames); raises what went wrong.

        ``plan`` is the video's plan when it is already made (:meth:`plan_for`); ``generate`` overrides
        the generation defaults. :attr:`last_plan` and :attr:`last_trace` tell what was done.
        """
        options = generation_options(self.generation, generate)
        self.last_plan = self.last_trace = None
        if plan is None:
            report(self.progress, "planning")
            plan = self.plan_for(video, max_new_tokens=options["max_new_tokens"])
        self.last_plan = plan
        chat = VideoChat(
            video,
            self.model,
            device=self.device,
            plan=plan,
            progress=self.progress,
            **{k: options.pop(k) for k in _GENERATION_KEYS},
        )
        text = str(chat.ask(self.prompt, **options)).strip()
        self.last_trace = chat.last_trace
        return text

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
