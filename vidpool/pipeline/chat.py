"""Questions and answers about one video: ``VideoChat`` encodes it once and answers any number of questions."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vidpool.compression import get_method
from vidpool.errors import InvalidArgumentError
from vidpool.llm.protocol import VideoModel
from vidpool.options import (
    DEFAULT_MAX_NEW_TOKENS,
    FastV,
    check_generation,
    check_question,
    check_video,
    check_with_plan,
    generation_options,
    renamed_budget,
    run_device,
)
from vidpool.pipeline.encoding import encode_video
from vidpool.pipeline.loading import (
    ModelOrPath,
    _model_device,
    load_kwargs,
    model_or_default,
    plan_before_loading,
)
from vidpool.pipeline.trace import StageClock, Trace
from vidpool.progress import ProgressCallback, report
from vidpool.schedule import Plan

__all__ = ["VideoChat", "run"]


def _package() -> Any:
    # load and plan are looked up on vidpool.pipeline, where users see them, so that replacing them
    # there (a wrapper that records plans, a test that refuses to load) reaches every run
    return sys.modules["vidpool.pipeline"]


class VideoChat:
    """Questions and answers about one video; the video is encoded once.

    Args:
        video: a path, or uint8 frames ``[T, H, W, 3]`` (a ``Frames`` object or array).
        model: a loaded ``VideoLM``, a checkpoint folder (loaded on ``device``) or ``None`` for the
            default model (:func:`vidpool.models.default_model`).
        device: where the run happens; the plan is made for it (default: the plan's, else
            :func:`vidpool.options.default_device`: ``"cuda"`` when torch sees a GPU, else ``"cpu"``).
        plan: a ready plan; otherwise one is made with ``num_frames``, ``budget``, ``method``,
            ``method_params``, ``max_memory`` and ``max_new_tokens`` (see :func:`vidpool.plan`).
            Give one or the other: options that a given plan would silently ignore are refused.
        cache: a ``vidpool.encode.FeatureCache`` to share features between chats (default: a private one).
        max_new_tokens: answer length, for the plan's KV cache and for :meth:`ask` alike (default: the
            plan's, else :data:`vidpool.options.DEFAULT_MAX_NEW_TOKENS`).
        temperature, top_p, seed: generation defaults for :meth:`ask`.
        progress: a ``progress(stage, done, total)`` callback for loading, encoding, compressing and
            prefill (see :mod:`vidpool.progress`).
        budget_tokens: the earlier name of ``budget`` (accepted with a DeprecationWarning).
        fastv: prune the visual tokens inside the LM as well (:class:`vidpool.options.FastV`), after
            whatever ``method`` did before it; part of the plan (``plan.fastv``).

    Raises:
        InvalidArgumentError, UnknownMethodError, VideoNotFoundError, VideoDecodeError, BudgetError: for a
            bad option, a missing or unreadable video, or a budget below the method's smallest on the
            planned frames (``.min_budget``), before the model loads. What the plan changed from the
            request (fewer frames, another method or budget) is in ``plan.notes``
            (:func:`vidpool.options.plan_changes`).
    """

    def __init__(
        self,
        video: Any,
        model: ModelOrPath = None,
        *,
        device: str | None = None,
        plan: Plan | None = None,
        num_frames: int | None = None,
        budget: int | None = None,
        method: str | None = None,
        method_params: dict[str, Any] | None = None,
        max_memory: Any = None,
        cache: Any = None,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        budget_tokens: int | None = None,
        fastv: FastV | None = None,
    ) -> None:
        plan_options = {
            "budget": renamed_budget(budget, budget_tokens),
            "max_memory": max_memory,
            "num_frames": num_frames,
            "method": method,
            "method_params": method_params,
            "fastv": fastv,
        }
        device = run_device(device, plan, plan_options)
        if max_new_tokens is None:
            max_new_tokens = plan.max_new_tokens if plan is not None else DEFAULT_MAX_NEW_TOKENS
        check_generation(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
        check_with_plan(plan, max_new_tokens)
        check_video(video)
        model = model_or_default(model)
        plan_options["max_new_tokens"] = max_new_tokens
        self.progress = progress
        # the video is probed and the budget checked before the weights load; and an offload
        # placement changes how they load
        first = plan or plan_before_loading(_video_info(video), model, device, plan_options)
        placement = load_kwargs(first) if first is not None and isinstance(model, (str, os.PathLike)) else {}
        self.model: VideoModel = _package().load(model, device=device, progress=progress, **placement)
        self.device = _model_device(self.model, device)
        self.video = video
        if plan is None:
            report(progress, "planning")
            plan = _make_plan(video, self.model, device, plan_options)
        self.plan: Plan = plan
        if plan.fastv is not None and not getattr(self.model, "runs_fastv", False):
            raise InvalidArgumentError(
                f"{getattr(self.model, 'kind', type(self.model).__name__)} models do not run FastV inside "
                "their LM; run without fastv (--fastv), or prune before the LM (--method, --budget)"
            )
        if cache is None:
            from vidpool.encode import FeatureCache

            cache = FeatureCache(max_items=2)
        self.cache = cache
        self.generation = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
        }
        self.history: list[tuple[str, str]] = []
        self.encode_calls = 0
        #: what the latest :meth:`ask` did (stage times, frames, what compression kept); ``None`` before
        self.last_trace: Trace | None = None
        self._tokens: torch.Tensor | None = None
        self._visual: Any = None
        self._timestamps: np.ndarray | None = None
        self._indices: np.ndarray | None = None  # set with _timestamps once the video is encoded
        self._clock: StageClock | None = None

    def _cache_key(self) -> str:
        from vidpool.encode import FeatureCache, video_identity

        if isinstance(self.video, (str, os.PathLike)):
            vid = video_identity(self.video)
        else:
            vid = _frames_identity(self.video)
        encoder = self.model.encoder_identity
        if self._joint:
            encoder = f"{encoder}+joint"
        return FeatureCache.key(vid, self.plan.sample_kwargs(), str(encoder))

    @property
    def _joint(self) -> bool:
        return self.model.uses_joint(self.plan.method)

    def _encoded(self) -> dict[str, torch.Tensor]:
        clock = self._clock or StageClock(self.device)

        def compute() -> dict[str, torch.Tensor]:
            self.encode_calls += 1
            enc = encode_video(
                self.model, self.video, self.plan, joint=self._joint, progress=self.progress, clock=clock
            )
            out = {"features": enc.features, "indices": torch.from_numpy(enc.indices)}
            if enc.timestamps is not None:  # frames in memory given without times have none
                out["timestamps"] = torch.from_numpy(enc.timestamps)
            if enc.joint is not None:
                out["joint"] = enc.joint
            return out

        return self.cache.get_or_compute(self._cache_key(), compute)

    @property
    def timestamps(self) -> np.ndarray | None:
        """Seconds of each sampled frame; ``None`` for frames in memory given without times (pass a
        ``vidpool.video.Frames`` with timestamps, or ``Frames.at_rate(frames, fps)``)."""
        if self._indices is None:
            self._remember_frames(self._encoded())
        return self._timestamps

    @property
    def frame_indices(self) -> np.ndarray:
        """Which frames were sampled: int64 ``[T]`` frame indices of the file (positions in memory)."""
        if self._indices is None:
            self._remember_frames(self._encoded())
        return self._indices

    def _remember_frames(self, encoded: dict[str, torch.Tensor]) -> None:
        stamps = encoded.get("timestamps")
        self._timestamps = None if stamps is None else stamps.numpy()
        indices = encoded.get("indices")
        count = int(encoded["features"].shape[0])
        self._indices = np.arange(count, dtype=np.int64) if indices is None else indices.numpy()

    def visual_tokens(self, question: str | None = None) -> torch.Tensor:
        """``[N, hidden]`` visual tokens for ``question`` (prompt-independent methods compute them once)."""
        if self._tokens is not None:
            return self._tokens
        encoded = self._encoded()
        self._remember_frames(encoded)
        features = encoded["features"].to(self.device)
        kwargs = {"budget": self.plan.budget, "method": self.plan.method, **self.plan.params}
        if "joint" in encoded and question is not None:
            kwargs["joint"] = encoded["joint"]
        report(self.progress, "compressing")
        clock = self._clock or StageClock(self.device)
        with clock.measure("compress"):
            # the provenance (which patches fed which token) is kept for last_trace
            self._visual = self.model.compress_visual(features, prompt=question, **kwargs)
            tokens = self._visual.tokens
        del features
        if not get_method(self.plan.method).uses_scores:  # then the tokens are the same for every question
            self._tokens = tokens
        return tokens

    def ask(self, question: str, *, stream: bool = False, **generate: Any) -> str | Iterator[str]:
        """Answer ``question`` about the video, given the earlier turns; ``stream=True`` yields text pieces.

        ``generate`` overrides ``max_new_tokens``, ``temperature``, ``top_p``, ``seed`` or sets ``stop``.
        The turn is added to :attr:`history` once the answer is complete. The question and options are
        checked before anything is decoded, encoded or generated.
        """
        check_question(question)
        kwargs = generation_options(self.generation, generate)
        check_with_plan(self.plan, kwargs["max_new_tokens"])
        clock = self._clock = StageClock(self.device)
        trace = self.last_trace = Trace(question, self.plan)
        try:
            tokens = self.visual_tokens(question)
        finally:
            self._clock = None
        self._fill_trace(trace, tokens, clock)
        report(self.progress, "prefill")
        with clock.measure("prefill" if stream else "generate"):
            out = self.model.generate(
                tokens,
                question,
                timestamps=self.timestamps,
                history=list(self.history),
                stream=stream,
                **self.plan.generate_kwargs(),
                **kwargs,
            )
        if not stream:
            self.history.append((question, str(out)))
            trace.answer, trace.done = str(out), True
            return out
        return self._record(question, out, trace, clock)

    def _fill_trace(self, trace: Trace, tokens: torch.Tensor, clock: StageClock) -> None:
        trace.timings = clock.seconds
        trace.cached = "encode" not in clock.seconds
        trace.frames = np.asarray(self.frame_indices)
        trace.timestamps = None if self.timestamps is None else np.asarray(self.timestamps)
        trace.grid = tuple(int(n) for n in getattr(self.model, "grid", (0, 0)))
        trace.visual_tokens = int(tokens.shape[0])
        if self._visual is not None:
            trace.compressed = self._visual.compressed
            trace.scores = self._visual.scores

    def _record(self, question: str, pieces: Iterator[str], trace: Trace, clock: StageClock) -> Iterator[str]:
        answer: list[str] = []
        stage = "prefill"  # until the first piece arrives
        start = time.perf_counter()
        for piece in pieces:
            clock.add(stage, time.perf_counter() - start)
            answer.append(piece)
            trace.answer = "".join(answer)
            yield piece
            stage, start = "generate", time.perf_counter()
        clock.add(stage, time.perf_counter() - start)
        trace.done = True
        self.history.append((question, trace.answer))

    def reset(self) -> None:
        """Forget the conversation (the encoded video is kept)."""
        self.history.clear()


def _video_info(video: Any) -> Any:
    if isinstance(video, (str, os.PathLike)):
        from vidpool.video import probe

        return probe(video)
    frames = getattr(video, "frames", video)
    shape = getattr(frames, "shape", None)
    if shape is None or len(shape) != 4:
        raise InvalidArgumentError(
            f"video must be a path or uint8 frames [T, H, W, 3], got {type(video).__name__}"
        )
    return SimpleNamespace(num_frames=int(shape[0]), height=int(shape[1]), width=int(shape[2]), duration=None)


def _frames_identity(video: Any) -> str:
    """A content hash of in-memory frames (an ``id`` could be reused by a later array)."""
    import hashlib

    frames = getattr(video, "frames", video)
    array = frames.numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    digest = hashlib.sha1(np.ascontiguousarray(array).data)
    digest.update(str(array.shape).encode())
    stamps = getattr(video, "timestamps", None)  # they decide which frames are sampled
    if stamps is not None:
        digest.update(np.asarray(stamps, dtype=np.float64).tobytes())
    return "frames-" + digest.hexdigest()[:16]


def _make_plan(video: Any, model: ModelOrPath, device: str, options: dict[str, Any]) -> Plan:
    return _package().plan(_video_info(video), model, device, **options)


def run(
    video: Any,
    model: ModelOrPath,
    question: str,
    *,
    device: str | None = None,
    plan: Plan | None = None,
    stream: bool = False,
    **kwargs: Any,
) -> str | Iterator[str]:
    """Plan (unless given), encode, compress and answer one question about ``video``.

    ``kwargs`` are :class:`VideoChat`'s (planning, generation and ``progress``) plus ``stop``.
    """
    check_question(question)
    generate = {"stop": kwargs.pop("stop")} if "stop" in kwargs else {}
    chat = VideoChat(video, model, device=device, plan=plan, **kwargs)
    return chat.ask(question, stream=stream, **generate)
