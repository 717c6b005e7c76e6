"""One run, end to end: video -> encode (in chunks) -> compress + project -> LM, driven by one plan.

>>> chat = VideoChat("clip.mp4", model="checkpoints/smollm2-native")       # doctest: +SKIP
>>> print(chat.plan.table())                                               # doctest: +SKIP
>>> for piece in chat.ask("What happens?", stream=True): print(piece, end="")  # doctest: +SKIP

``VideoChat`` encodes the video once (features kept in a ``FeatureCache``) and answers any number of
questions; ``Captioner`` captions videos one after another with the same model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from vidpool.errors import InvalidArgumentError
from vidpool.llm.protocol import VideoModel
from vidpool.schedule import ChunkRunner, Plan, plan

#: a loaded model, or a checkpoint folder to load
ModelOrPath = VideoModel | str | os.PathLike

__all__ = [
    "CAPTION_PROMPT",
    "Captioner",
    "EncodedVideo",
    "VideoChat",
    "encode_video",
    "load",
    "load_kwargs",
    "run",
]

CAPTION_PROMPT = "Describe this video in detail."


def load(model: ModelOrPath, *, device: str = "cpu", **kwargs: Any) -> VideoModel:
    """A loaded ``VideoLM``: ``model`` itself, or ``vidpool.llm.load_model(model, device=...)`` for a path."""
    if isinstance(model, (str, os.PathLike)):
        from vidpool.llm import load_model

        return load_model(model, device=device, **kwargs)
    if not hasattr(model, "encode_frames") or not hasattr(model, "generate"):
        raise InvalidArgumentError(
            f"model must be a checkpoint folder or a loaded VideoLM, got {type(model).__name__}"
        )
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
) -> EncodedVideo:
    """Encode the frames ``plan_`` samples, one encoder batch at a time, halving the batch on OOM.

    Features go into one preallocated ``[T, h, w, C]`` tensor on ``keep_on`` (default
    ``plan_.features_on``), so no more than one batch of activations and the kept features coexist.
    With ``joint`` the model's joint-space patch embeddings ``[T, h, w, D]`` from the same forward
    pass are kept too (``model.encode(frames, joint=True)``), for exact prompt scores.
    """
    runner = runner or ChunkRunner(plan_.encoder_batch, what="frames per encoder batch")
    keep_on = keep_on or plan_.features_on
    kept: dict[str, torch.Tensor] = {}
    stamps: list[np.ndarray] = []
    filled = 0
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
        model: a loaded ``VideoLM`` or a checkpoint folder (loaded on ``device``).
        device: where the run happens; the plan is made for it.
        plan: a ready plan; otherwise one is made with ``num_frames``, ``budget_tokens``, ``method``,
            ``method_params`` and ``max_memory`` (see :func:`vidpool.plan`).
        cache: a ``vidpool.encode.FeatureCache`` to share features between chats (default: a private one).
        max_new_tokens, temperature, top_p, seed: generation defaults for :meth:`ask`.
    """

    def __init__(
        self,
        video: Any,
        model: ModelOrPath,
        *,
        device: str = "cpu",
        plan: Plan | None = None,
        num_frames: int | None = None,
        budget_tokens: int | None = None,
        method: str | None = None,
        method_params: dict[str, Any] | None = None,
        max_memory: Any = None,
        cache: Any = None,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
    ) -> None:
        plan_options = {
            "budget_tokens": budget_tokens,
            "max_memory": max_memory,
            "num_frames": num_frames,
            "method": method,
            "method_params": method_params,
            "max_new_tokens": max_new_tokens,
        }
        if isinstance(model, (str, os.PathLike)) and plan is None and device.startswith("cuda"):
            # plan from the config files first: an offload placement changes how the weights load
            first = _make_plan(video, model, device, plan_options)
            self.model = load(model, device=device, **load_kwargs(first))
        else:
            self.model = load(model, device=device)
        self.device = _model_device(self.model, device)
        self.video = video
        if plan is None:
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
        encoder = (
            getattr(getattr(self.model, "encoder", None), "identity", None)
            or f"{type(self.model).__name__}-{id(self.model)}"
        )
        if self._joint:
            encoder = f"{encoder}+joint"
        return FeatureCache.key(vid, self.plan.sample_kwargs(), str(encoder))

    @property
    def _joint(self) -> bool:
        return _uses_joint(self.model, self.plan.method)

    def _encoded(self) -> dict[str, torch.Tensor]:
        def compute() -> dict[str, torch.Tensor]:
            self.encode_calls += 1
            enc = encode_video(self.model, self.video, self.plan, joint=self._joint)
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
        tokens = self.model.visual_tokens(features, prompt=question, **kwargs)
        del features
        if not _uses_scores(self.plan.method):
            self._tokens = tokens
        return tokens

    def ask(self, question: str, *, stream: bool = False, **generate: Any) -> str | Iterator[str]:
        """Answer ``question`` about the video, given the earlier turns; ``stream=True`` yields text pieces.

        ``generate`` overrides ``max_new_tokens``, ``temperature``, ``top_p``, ``seed`` or sets ``stop``.
        The turn is added to :attr:`history` once the answer is complete.
        """
        if not isinstance(question, str) or not question.strip():
            raise InvalidArgumentError("question must be a non-empty string")
        tokens = self.visual_tokens(question)
        kwargs = {**self.generation, **generate}
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
    device: str = "cpu",
    plan: Plan | None = None,
    stream: bool = False,
    **kwargs: Any,
) -> str | Iterator[str]:
    """Plan (unless given), encode, compress and answer one question about ``video``."""
    generate_keys = ("temperature", "top_p", "seed", "stop")
    generate = {k: kwargs.pop(k) for k in generate_keys if k in kwargs}
    chat = VideoChat(video, model, device=device, plan=plan, **kwargs)
    return chat.ask(question, stream=stream, **generate)


class Captioner:
    """Caption videos with one model: ``Captioner(model=...).caption(video) -> str``.

    Each video gets its own plan (its length differs); the model is loaded once.
    """

    def __init__(
        self,
        model: ModelOrPath,
        *,
        device: str = "cpu",
        prompt: str = CAPTION_PROMPT,
        max_new_tokens: int = 128,
        **plan_kwargs: Any,
    ) -> None:
        self.model = load(model, device=device)
        self.device = device
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.plan_kwargs = plan_kwargs
        self.last_plan: Plan | None = None

    def caption(self, video: Any, **generate: Any) -> str:
        """One caption for ``video`` (a path or frames)."""
        chat = VideoChat(
            video, self.model, device=self.device, max_new_tokens=self.max_new_tokens, **self.plan_kwargs
        )
        self.last_plan = chat.plan
        return str(chat.ask(self.prompt, **generate)).strip()

    def caption_many(self, videos: Sequence[Any], **generate: Any) -> list[str]:
        """Captions of ``videos`` in order."""
        return [self.caption(v, **generate) for v in videos]
