"""The memory plan of one run, decided before anything heavy is loaded or decoded.

``plan`` tries the requested quality first. When it does not fit it degrades in a fixed order and
writes each step into ``Plan.notes``:

1. (GPU) keep the vision features on the CPU between encoding and generation;
2. progressive pooling: switch the method to ``"progressive"`` with the largest budget that fits;
3. fewer frames (still progressive), the most that fit.

On a GPU whose free memory cannot hold the weights, the LM is split between GPU and CPU (offload)
before any of that. If one frame at the smallest budget still does not fit, it raises
:class:`~vidpool.errors.OutOfMemoryError` with the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidpool.errors import InvalidArgumentError, OutOfMemoryError
from vidpool.schedule.device import device_memory, format_bytes, parse_bytes
from vidpool.schedule.estimate import MemoryEstimate, ModelSpec
from vidpool.schedule.search import DEGRADE_METHOD, PlanSearch, largest_passing
from vidpool.schedule.spec import model_spec

__all__ = ["DEGRADE_METHOD", "Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """What one run will do and how much memory it will take on ``device``.

    ``num_frames`` frames are sampled uniformly and encoded ``encoder_batch`` at a time; ``method`` with
    ``params`` and ``budget`` turns them into ``num_tokens`` visual tokens. ``placement`` is ``"cpu"``,
    ``"gpu"`` or ``"gpu+cpu-offload"`` (``lm_bytes_on_device`` of the LM weights on the GPU). ``memory``
    is the predicted use of ``device``; ``available`` what it had free. ``notes`` say how the plan
    degraded from the request, in order.
    """

    device: str
    placement: str
    num_frames: int
    encoder_batch: int
    method: str
    params: dict[str, Any]
    budget: int | None
    num_tokens: int
    position: str
    features_on: str
    memory: MemoryEstimate
    available: int
    lm_bytes_on_device: int
    max_new_tokens: int
    prompt_tokens: int
    model_name: str = "model"
    resize: int | None = None
    frame_size: tuple[int, int] = (0, 0)
    video_frames: int | None = None
    video_duration: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def fits(self) -> bool:
        return self.memory.required <= self.available

    @property
    def degraded(self) -> bool:
        return bool(self.notes)

    def sample_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``VideoReader.sample`` / ``chunks`` that decode what this plan encodes."""
        return {"num_frames": self.num_frames, "resize": self.resize}

    def compress_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``VideoLM.visual_tokens`` / ``num_visual_tokens``."""
        return {"method": self.method, "budget": self.budget, **self.params}

    def to_dict(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "device",
                "placement",
                "num_frames",
                "encoder_batch",
                "method",
                "params",
                "budget",
                "num_tokens",
                "position",
                "features_on",
                "available",
                "lm_bytes_on_device",
                "max_new_tokens",
                "prompt_tokens",
                "model_name",
                "resize",
                "frame_size",
                "video_frames",
                "video_duration",
            )
        }
        out["memory"] = self.memory.as_dict()
        out["notes"] = list(self.notes)
        return out

    def table(self) -> str:
        """The plan as a plain-text table (what ``vidpool plan`` prints)."""
        m = self.memory
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        method = f"{self.method}({params})" if params else self.method
        video = f"{self.video_frames} frames" if self.video_frames else "unknown length"
        if self.video_duration:
            video += f", {self.video_duration:.1f}s"
        if self.frame_size[0]:
            video += f", decoded at {self.frame_size[1]}x{self.frame_size[0]}"
        rows: list[tuple[str, str]] = [
            ("model", self.model_name),
            ("device", f"{self.device} ({format_bytes(self.available)} available)"),
            ("placement", self.placement),
            ("video", video),
            ("frames to sample", str(self.num_frames)),
            ("encoder batch", f"{self.encoder_batch} frames"),
            ("compression", f"{method}, {self.position} projector"),
            ("token budget", "method default" if self.budget is None else str(self.budget)),
            ("visual token count", str(self.num_tokens)),
            ("features kept on", self.features_on),
            ("", ""),
            ("weights", format_bytes(m.weights)),
            ("encoder activations", format_bytes(m.encoder_activations)),
            ("visual tokens", format_bytes(m.visual_tokens)),
            ("KV cache", format_bytes(m.kv_cache)),
            ("LM activations", format_bytes(m.lm_activations)),
            ("predicted peak", format_bytes(m.peak)),
            ("margin", format_bytes(m.margin)),
            ("required", f"{format_bytes(m.required)} of {format_bytes(self.available)}"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}" if k else "-" * (width + 24) for k, v in rows]
        if self.notes:
            lines.append("")
            lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _video_facts(video_info: Any) -> tuple[int | None, float | None, tuple[int, int]]:
    if video_info is None:
        return None, None, (0, 0)
    if isinstance(video_info, (str, Path)):
        from vidpool.video import probe

        video_info = probe(video_info)
    frames = getattr(video_info, "num_frames", None)
    duration = getattr(video_info, "duration", None)
    size = (int(getattr(video_info, "height", 0) or 0), int(getattr(video_info, "width", 0) or 0))
    return (int(frames) if frames else None), (float(duration) if duration else None), size


def _resident_bytes(spec: ModelSpec, device: str) -> int:
    """Weight bytes of a loaded model already on ``device`` (free memory no longer shows them)."""
    model = spec.model
    if model is None:
        return 0
    import torch

    wanted = torch.device(device)
    parts = [
        getattr(model, "lm", None) or getattr(model, "_generator", None),
        getattr(getattr(model, "encoder", None), "model", None),
        getattr(model, "projector", None),
    ]
    seen: set[int] = set()
    total = 0
    for part in parts:
        if not hasattr(part, "parameters"):
            continue
        for tensor in [*part.parameters(), *part.buffers()]:
            where = tensor.device
            same = where.type == wanted.type and (wanted.index is None or where.index == wanted.index)
            if same and id(tensor) not in seen:
                seen.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total


def _capacity(device: str, max_memory: Any, spec: ModelSpec) -> int:
    if max_memory is None:
        return device_memory(device).free + _resident_bytes(spec, device)
    if isinstance(max_memory, dict):
        for key in (device, device.split(":")[0], 0 if device.startswith("cuda") else "cpu"):
            if key in max_memory:
                return parse_bytes(max_memory[key])
        raise InvalidArgumentError(f"max_memory has no entry for device {device!r}: {max_memory}")
    return parse_bytes(max_memory)


def plan(
    video_info: Any,
    model: Any,
    device: str = "cpu",
    *,
    budget_tokens: int | None = None,
    max_memory: Any = None,
    num_frames: int | None = None,
    method: str | None = None,
    method_params: dict[str, Any] | None = None,
    max_new_tokens: int = 256,
    prompt_tokens: int | None = None,
) -> Plan:
    """Plan a run of ``model`` over a video on ``device`` without loading weights or decoding frames.

    Args:
        video_info: a ``VideoInfo`` (or a path, probed), or None when the length is unknown.
        model: a loaded ``VideoLM``, a checkpoint folder, a ``ModelSpec`` or a dict of its fields.
        device: ``"cpu"`` or ``"cuda[:N]"``.
        budget_tokens: the compression method's token budget (default: the model config's); a model
            that ends a video with learned tokens (LLaVA-OneVision's ``image_newline``) adds them.
        max_memory: bytes the run may use on ``device``, weights included (``24GB``, ``16GiB``, an int, or an
            accelerate-style ``{device: size}`` dict); default: what the device reports free now, plus the
            weights of ``model`` when it is loaded there already.
        num_frames: frames to sample (default: the model config's, at most the video's).
        method, method_params: compression method override (default: the model config's).
        max_new_tokens: answer length the KV cache is sized for.
        prompt_tokens: text tokens of the prompt (default: estimated from the frame count).

    Returns:
        a :class:`Plan`; ``plan.notes`` explain any degradation from the request.

    Raises:
        OutOfMemoryError: when even one frame at the smallest budget does not fit.
    """
    import torch

    device_type = torch.device(device).type
    cuda = device_type == "cuda"
    spec = model_spec(model, dtype_bytes=2 if cuda else 4, device_type=device_type)
    video_frames, duration, frame_size = _video_facts(video_info)
    resize = None
    if min(frame_size) > spec.image_size:
        # decode straight to the encoder's input scale: the encoder would shrink the frames anyway
        resize = spec.image_size
        scale = spec.image_size / min(frame_size)
        frame_size = (round(frame_size[0] * scale), round(frame_size[1] * scale))
    capacity = _capacity(device, max_memory, spec)

    frames0 = int(num_frames or spec.num_frames)
    if frames0 < 1:
        raise InvalidArgumentError(f"num_frames must be >= 1, got {num_frames}")
    notes: list[str] = []
    if video_frames is not None and frames0 > video_frames:
        notes.append(f"the video has only {video_frames} frames; sampling all of them")
        frames0 = video_frames
    method0 = method or spec.method
    params0 = dict(
        method_params if method_params is not None else (spec.method_params if method0 == spec.method else {})
    )
    budget0 = budget_tokens if budget_tokens is not None else spec.budget

    p = PlanSearch(spec, capacity, cuda, frame_size, max_new_tokens, prompt_tokens, duration)
    tokens0 = spec.num_visual_tokens(frames0, method0, budget0, params0)
    if cuda and spec.weight_bytes * 1.08 >= capacity:
        p.offload = True
        notes.append(
            f"weights ({format_bytes(spec.weight_bytes)}) do not fit in {format_bytes(capacity)}: "
            "the LM is split between GPU and CPU (slower generation)"
        )

    def done(frames, method, params, budget, got) -> Plan:
        tokens, batch, est, lm_on = got
        placement = "cpu" if not cuda else ("gpu+cpu-offload" if lm_on < spec.lm_param_bytes else "gpu")
        return Plan(
            device=str(device),
            placement=placement,
            num_frames=frames,
            encoder_batch=batch,
            method=method,
            params=dict(params),
            budget=budget,
            num_tokens=tokens,
            position=spec.compress_position,
            features_on=str(device) if p.features_on_device else "cpu",
            memory=est,
            available=capacity,
            lm_bytes_on_device=lm_on,
            max_new_tokens=max_new_tokens,
            prompt_tokens=p.prompt_for(frames),
            model_name=spec.name,
            resize=resize,
            frame_size=frame_size,
            video_frames=video_frames,
            video_duration=duration,
            notes=tuple(notes),
        )

    got = p.fit(frames0, method0, budget0, params0)
    if got is not None:
        return done(frames0, method0, params0, budget0, got)
    first = p.at_batch_one(frames0, tokens0, p.prompt_for(frames0), method0)
    request = f"{frames0} frames with {method0!r} ({tokens0} visual tokens)"
    if cuda:
        p.features_on_device = False
        got = p.fit(frames0, method0, budget0, params0)
        notes.append(
            f"{request} needs {format_bytes(first.required)} of {format_bytes(capacity)}: "
            "vision features are kept on the CPU between encoding and generation"
        )
        if got is not None:
            return done(frames0, method0, params0, budget0, got)

    found = p.largest_progressive(frames0, tokens0)
    if found is not None:
        budget, got = found
        notes.append(
            f"step 1 of 2 (progressive pooling): {request} does not fit in {format_bytes(capacity)}; "
            f"switched to {DEGRADE_METHOD!r} with budget {budget} ({got[0]} visual tokens)"
        )
        return done(frames0, DEGRADE_METHOD, {}, budget, got)

    def progressive_at(frames: int):
        cap = min(tokens0, p.tokens(frames, method0, budget0, params0) or tokens0)
        return p.largest_progressive(frames, cap + 1)

    best = largest_passing(1, frames0 - 1, progressive_at)
    if best is not None:
        frames, (budget, got) = best
        notes.append(
            f"step 1 of 2 (progressive pooling): {request} does not fit in {format_bytes(capacity)}, "
            f"not even with {DEGRADE_METHOD!r} at its smallest budget"
        )
        notes.append(
            f"step 2 of 2 (fewer frames): sampling {frames} frames instead of {frames0}, "
            f"{DEGRADE_METHOD!r} with budget {budget} ({got[0]} visual tokens)"
        )
        return done(frames, DEGRADE_METHOD, {}, budget, got)

    smallest = p.at_batch_one(1, 1, 0, DEGRADE_METHOD)
    raise OutOfMemoryError(
        f"{spec.name} does not fit in {format_bytes(capacity)} on {device}: even 1 frame with 1 visual "
        f"token needs {format_bytes(smallest.required)} (weights {format_bytes(smallest.weights)}); "
        "free memory, use a smaller model or dtype, or pass a larger max_memory"
    )
