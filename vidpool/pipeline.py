"""One run, end to end: video -> encode (in chunks) -> compress + project -> LM, driven by one plan.

>>> chat = VideoChat("clip.mp4", model=None)   # the default model; see vidpool.models  # doctest: +SKIP
>>> print(chat.plan.table())                                               # doctest: +SKIP
>>> for piece in chat.ask("What happens?", stream=True): print(piece, end="")  # doctest: +SKIP

``VideoChat`` encodes the video once (features kept in a ``FeatureCache``) and answers any number of
questions; ``Captioner`` captions videos one after another with the same model.

Every option is checked (:mod:`vidpool.options`) before the model loads or a frame is decoded. Long
stages report to an optional ``progress(stage, done, total)`` callback (:mod:`vidpool.progress`);
without one the pipeline prints nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vidpool.errors import InvalidArgumentError
from vidpool.llm.protocol import VideoModel
from vidpool.options import (
    DEFAULT_MAX_NEW_TOKENS,
    check_device,
    check_generation,
    check_planning,
    check_question,
    check_video,
    check_with_plan,
    generation_options,
    run_device,
)
from vidpool.progress import ProgressCallback, report
from vidpool.schedule import ChunkRunner, Plan, plan

log = logging.getLogger(__name__)

#: a loaded model, or a checkpoint folder to load (``None``: the default model)
ModelOrPath = VideoModel | str | os.PathLike | None

__all__ = [
    "CAPTION_PROMPT",
    "Caption",
    "Captioner",
    "EncodedVideo",
    "VideoChat",
    "encode_video",
    "load",
    "load_kwargs",
    "run",
]

CAPTION_PROMPT = "Describe this video in detail."


def load(
    model: ModelOrPath, *, device: str = "cpu", progress: ProgressCallback | None = None, **kwargs: Any
) -> VideoModel:
    """A loaded ``VideoLM``: ``model`` itself, or ``vidpool.llm.load_model(model, device=...)`` for a path
    (``None``: the default model, :func:`vidpool.models.default_model`)."""
    model = _default_if_none(model)
    if isinstance(model, (str, os.PathLike)):
        from vidpool.llm import load_model

        report(progress, "loading model")
        return load_model(model, device=device, **kwargs)
    if not hasattr(model, "encode_frames") or not hasattr(model, "generate"):
        raise InvalidArgumentError(
            f"model must be a checkpoint folder or a loaded VideoLM, got {type(model).__name__}"
        )
    return model


def _default_if_none(model: ModelOrPath) -> VideoModel | str | os.PathLike:
    if model is None:
        from vidpool.models import default_model

        return default_model()
    return model


def load_kwargs(plan_: Plan) -> dict[str, Any]:
    """``load_model`` options that realise ``plan_.placement`` (an accelerate split for CPU offload)."""
    if plan_.placement != "gpu+cpu-offload":
        return {}
    from vidpool.schedule import device_memory

    index = int(plan_.device.split(":")[1]) if ":" in plan_.device else 0
    return {
        "device_map": "auto",
        "max_memory": {index: int(plan_.lm_bytes_on_device), "cpu": int(device_memory("cpu").free * 0.9)},
    }


def _model_device(model: VideoModel, default: str) -> str:
    device = getattr(model, "device", None)
    return str(device) if device is not None else default


class EncodedVideo:
    """Vision features of the sampled frames: ``features [T, h, w, C]`` and ``timestamps [T]`` seconds.

    ``joint [T, h, w, D]`` holds joint-space patch embeddings when they were asked for (prompt scores).
    """

    def __init__(
        self,
        features: torch.Tensor,
        timestamps: np.ndarray,
        tried: Sequence[int] = (),
        joint: torch.Tensor | None = None,
    ):
        self.features = features
        self.timestamps = np.asarray(timestamps, dtype=np.float64)
        self.tried = list(tried)
        self.joint = joint

    @property
    def num_frames(self) -> int:
        return int(self.features.shape[0])


def _frame_pieces(video: Any, plan_: Plan) -> Iterator[Any]:
    """Decoded ``Frames`` pieces of ``plan_.num_frames`` uniformly sampled frames, one encoder batch each."""
    if isinstance(video, (str, os.PathLike)):
        from vidpool.video import VideoReader

        with VideoReader(video) as reader:
            yield from reader.chunks(plan_.encoder_batch, **plan_.sample_kwargs())
        return
    frames = getattr(video, "frames", video)
    if isinstance(frames, torch.Tensor):
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise InvalidArgumentError(f"video must be a path or uint8 frames [T, H, W, 3], got {frames.shape}")
    stamps = getattr(video, "timestamps", None)
    if stamps is None:
        stamps = np.arange(len(frames), dtype=np.float64)
    pick = np.linspace(0, len(frames) - 1, num=min(plan_.num_frames, len(frames))).round().astype(int)
    for start in range(0, len(pick), plan_.encoder_batch):
        idx = pick[start : start + plan_.encoder_batch]
        yield SimpleNamespace(frames=frames[idx], timestamps=np.asarray(stamps)[idx])


def _encode_batch(model: VideoModel, frames: Any, joint: bool) -> dict[str, torch.Tensor]:
    """``{"features": [n, h, w, C]}`` of ``frames`` (plus ``"joint": [n, h, w, D]`` when ``joint``)."""
    if not joint:
        return {"features": model.encode_frames(frames)}
    out = model.encode(frames, joint=True)
    return {"features": out.patches, "joint": out.joint}


def encode_video(
    model: VideoModel,
    video: Any,
    plan_: Plan,
    *,
    runner: ChunkRunner | None = None,
    keep_on: str | None = None,
    joint: bool = False,
    progress: ProgressCallback | None = None,
) -> EncodedVideo:
    """Encode the frames ``plan_`` samples, one encoder batch at a time, halving the batch on OOM.

    Features go into one preallocated ``[T, h, w, C]`` tensor on ``keep_on`` (default
    ``plan_.features_on``), so no more than one batch of activations and the kept features coexist.
    With ``joint`` the model's joint-space patch embeddings ``[T, h, w, D]`` from the same forward
    pass are kept too (``model.encode(frames, joint=True)``), for exact prompt scores.
    ``progress("encoding frames", done, total)`` follows each batch.
    """
    runner = runner or ChunkRunner(plan_.encoder_batch, what="frames per encoder batch")
    keep_on = keep_on or plan_.features_on
    kept: dict[str, torch.Tensor] = {}
    stamps: list[np.ndarray] = []
    filled = 0
    report(progress, "encoding frames", 0, plan_.num_frames)
    with torch.inference_mode():
        for piece in _frame_pieces(video, plan_):
            for out in runner.map(lambda f: _encode_batch(model, f, joint), piece.frames):
                count = out["features"].shape[0]
                for name, value in out.items():
                    if name not in kept:
                        shape = (plan_.num_frames, *value.shape[1:])
                        kept[name] = torch.empty(shape, dtype=value.dtype, device=keep_on)
                    kept[name][filled : filled + count].copy_(value)
                filled += count
                del out
                report(progress, "encoding frames", filled, plan_.num_frames)
            stamps.append(np.asarray(piece.timestamps, dtype=np.float64))
    if not kept or filled == 0:
        raise InvalidArgumentError("no frames were decoded from the video")
    joint_kept = kept["joint"][:filled] if "joint" in kept else None
    return EncodedVideo(kept["features"][:filled], np.concatenate(stamps), runner.tried, joint_kept)


def _uses_scores(method: str) -> bool:
    from vidpool.compression import get_method

    return bool(getattr(get_method(method), "uses_scores", False))


def _uses_joint(model: VideoModel, method: str) -> bool:
    """Whether ``model`` scores patches for ``method`` in a joint space it can encode to."""
    uses_joint = getattr(model, "uses_joint", None)
    return bool(uses_joint(method)) if uses_joint is not None else False


class VideoChat:
    """Questions and answers about one video; the video is encoded once.

    Args:
        video: a path, or uint8 frames ``[T, H, W, 3]`` (a ``Frames`` object or array).
        model: a loaded ``VideoLM``, a checkpoint folder (loaded on ``device``) or ``None`` for the
            default model (:func:`vidpool.models.default_model`).
        device: where the run happens; the plan is made for it (default: the plan's, else ``"cpu"``).
        plan: a ready plan; otherwise one is made with ``num_frames``, ``budget_tokens``, ``method``,
            ``method_params``, ``max_memory`` and ``max_new_tokens`` (see :func:`vidpool.plan`).
            Give one or the other: options that a given plan would silently ignore are refused.
        cache: a ``vidpool.encode.FeatureCache`` to share features between chats (default: a private one).
        max_new_tokens: answer length, for the plan's KV cache and for :meth:`ask` alike (default: the
            plan's, else 256).
        temperature, top_p, seed: generation defaults for :meth:`ask`.
        progress: a ``progress(stage, done, total)`` callback for loading, encoding, compressing and
            prefill (see :mod:`vidpool.progress`).

    Raises:
        InvalidArgumentError, UnknownMethodError, VideoNotFoundError: for a bad option or a missing
            video, before the model loads.
    """

    def __init__(
        self,
        video: Any,
        model: ModelOrPath = None,
        *,
        device: str | None = None,
        plan: Plan | None = None,
        num_frames: int | None = None,
        budget_tokens: int | None = None,
        method: str | None = None,
        method_params: dict[str, Any] | None = None,
        max_memory: Any = None,
        cache: Any = None,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        plan_options = {
            "budget_tokens": budget_tokens,
            "max_memory": max_memory,
            "num_frames": num_frames,
            "method": method,
            "method_params": method_params,
        }
        device = run_device(device, plan, plan_options)
        if max_new_tokens is None:
            max_new_tokens = plan.max_new_tokens if plan is not None else DEFAULT_MAX_NEW_TOKENS
        check_generation(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
        check_with_plan(plan, max_new_tokens)
        check_video(video)
        model = _default_if_none(model)
        plan_options["max_new_tokens"] = max_new_tokens
        self.progress = progress
        first = plan
        if isinstance(model, (str, os.PathLike)) and first is None and device.startswith("cuda"):
            # plan from the config files first: an offload placement changes how the weights load
            first = _make_plan(video, model, device, plan_options)
        placement = load_kwargs(first) if first is not None and isinstance(model, (str, os.PathLike)) else {}
        self.model = load(model, device=device, progress=progress, **placement)
        self.device = _model_device(self.model, device)
        self.video = video
        if plan is None:
            report(progress, "planning")
            plan = _make_plan(video, self.model, device, plan_options)
        self.plan: Plan = plan
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
        self._tokens: torch.Tensor | None = None
        self._timestamps: np.ndarray | None = None

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
        return _uses_joint(self.model, self.plan.method)

    def _encoded(self) -> dict[str, torch.Tensor]:
        def compute() -> dict[str, torch.Tensor]:
            self.encode_calls += 1
            enc = encode_video(self.model, self.video, self.plan, joint=self._joint, progress=self.progress)
            out = {"features": enc.features, "timestamps": torch.from_numpy(enc.timestamps)}
            if enc.joint is not None:
                out["joint"] = enc.joint
            return out

        return self.cache.get_or_compute(self._cache_key(), compute)

    @property
    def timestamps(self) -> np.ndarray:
        """Seconds of each sampled frame."""
        if self._timestamps is None:
            self._timestamps = self._encoded()["timestamps"].numpy()
        return self._timestamps

    def visual_tokens(self, question: str | None = None) -> torch.Tensor:
        """``[N, hidden]`` visual tokens for ``question`` (prompt-independent methods compute them once)."""
        if self._tokens is not None:
            return self._tokens
        encoded = self._encoded()
        self._timestamps = encoded["timestamps"].numpy()
        features = encoded["features"].to(self.device)
        kwargs = {"budget": self.plan.budget, "method": self.plan.method, **self.plan.params}
        if "joint" in encoded and question is not None:
            kwargs["joint"] = encoded["joint"]
        report(self.progress, "compressing")
        tokens = self.model.visual_tokens(features, prompt=question, **kwargs)
        del features
        if not _uses_scores(self.plan.method):
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
        tokens = self.visual_tokens(question)
        report(self.progress, "prefill")
        out = self.model.generate(
            tokens,
            question,
            timestamps=self.timestamps,
            history=list(self.history),
            stream=stream,
            **kwargs,
        )
        if not stream:
            self.history.append((question, str(out)))
            return out
        return self._record(question, out)

    def _record(self, question: str, pieces: Iterator[str]) -> Iterator[str]:
        answer: list[str] = []
        for piece in pieces:
            answer.append(piece)
            yield piece
        self.history.append((question, "".join(answer)))

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
    return "frames-" + digest.hexdigest()[:16]


def _make_plan(video: Any, model: ModelOrPath, device: str, options: dict[str, Any]) -> Plan:
    return plan(_video_info(video), model, device, **options)


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
        check_planning(**{k: v for k, v in plan_kwargs.items() if k != "max_memory"})
        check_generation(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
        check_question(prompt)
        self.device = check_device(device)
        self.model = load(model, device=device, progress=progress)
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.generation = {
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "seed": seed,
        }
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
