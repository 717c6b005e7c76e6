"""The memory plan of one run, decided before anything heavy is loaded or decoded.

``plan`` resolves the request against the checkpoint's defaults, makes it fit the LM's context
window, then tries it as asked; when it does not fit in memory it degrades in a fixed order and writes
each step into ``Plan.notes``: features on the CPU, progressive pooling down to
``min_tokens_per_frame`` a frame, LM layers offloaded to the CPU (at most half the LM), fewer frames,
and finally :class:`~vidpool.errors.OutOfMemoryError`. The steps and their rules are :mod:`vidpool.schedule.steps`.
On a GPU whose free memory cannot hold the weights at all, the LM is split between GPU and CPU before
any of that.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vidpool.errors import InvalidArgumentError
from vidpool.options import DEFAULT_MAX_NEW_TOKENS, FastV, check_planning, default_device, renamed_budget
from vidpool.schedule import steps
from vidpool.schedule.device import device_memory, format_bytes, parse_bytes
from vidpool.schedule.estimate import MARGIN_FRACTION, MemoryEstimate, ModelSpec
from vidpool.schedule.search import DEGRADE_METHOD, Candidate, PlanSearch
from vidpool.schedule.spec import model_spec
from vidpool.schedule.steps import MIN_TOKENS_PER_FRAME

__all__ = ["DEGRADE_METHOD", "MIN_TOKENS_PER_FRAME", "Plan", "plan"]


@dataclass(frozen=True)
class Plan:
    """What one run will do and how much memory it will take on ``device``.

    ``num_frames`` frames are sampled uniformly and encoded ``encoder_batch`` at a time; ``method`` with
    ``params`` and ``budget`` turns them into ``num_tokens`` visual tokens. ``placement`` is ``"cpu"``,
    ``"gpu"`` or ``"gpu+cpu-offload"`` (``lm_bytes_on_device`` of the LM weights on the GPU). ``memory``
    is the predicted use of ``device``; ``available`` what it had free. ``context_length`` is the LM's
    (0: unknown); ``num_tokens + prompt_tokens + max_new_tokens`` fits in it (FastV's kept tokens keep
    their positions, so pruning inside the LM saves no context). ``notes`` say how the plan degraded
    from the request, in order. ``fastv``: the visual tokens pruned inside the LM, or ``None``.
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
    context_length: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)
    fastv: FastV | None = None

    @property
    def positions(self) -> int:
        """Positions the run takes in the LM: visual tokens + prompt + new tokens."""
        return self.num_tokens + self.prompt_tokens + self.max_new_tokens

    @property
    def fits(self) -> bool:
        return self.memory.required <= self.available

    @property
    def degraded(self) -> bool:
        return bool(self.notes)

    @property
    def fastv_kept(self) -> int:
        """Visual tokens the LM layers from FastV's layer on see (all of them without FastV)."""
        return self.num_tokens if self.fastv is None else self.fastv.kept(self.num_tokens)

    def generate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``VideoLM.generate`` that this plan decided (``fastv`` when it has one)."""
        return {} if self.fastv is None else {"fastv": self.fastv}

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
                "context_length",
            )
        }
        out["memory"] = self.memory.as_dict()
        out["notes"] = list(self.notes)
        out["fastv"] = None if self.fastv is None else vars(self.fastv) | {"kept": self.fastv_kept}
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
            ("in-LM pruning", self._fastv_row()),
            ("context", f"{self.positions} of {self.context_length or 'unknown'} positions"),
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

    def _fastv_row(self) -> str:
        if self.fastv is None:
            return "none"
        return (
            f"FastV: {self.fastv_kept} of {self.num_tokens} visual tokens from LM layer {self.fastv.layer} on"
        )

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
    if spec.model is None:
        return 0
    import torch

    wanted = torch.device(device)
    seen: set[int] = set()
    total = 0
    for part in spec.model.weight_modules:
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
    device: str | None = None,
    *,
    budget: int | None = None,
    max_memory: Any = None,
    num_frames: int | None = None,
    method: str | None = None,
    method_params: dict[str, Any] | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    prompt_tokens: int | None = None,
    min_tokens_per_frame: int = MIN_TOKENS_PER_FRAME,
    budget_tokens: int | None = None,
    fastv: FastV | None = None,
) -> Plan:
    """Plan a run of ``model`` over a video on ``device`` without loading weights or decoding frames.

    Args:
        video_info: a ``VideoInfo`` (or a path, probed), or None when the length is unknown.
        model: a loaded ``VideoLM``, a checkpoint folder, a ``ModelSpec`` or a dict of its fields.
        device: ``"cpu"`` or ``"cuda[:N]"`` (``None``: :func:`vidpool.options.default_device`).
        budget: the compression method's token budget (default: the model config's; ``budget_tokens``
            is its earlier name, accepted with a DeprecationWarning). It replaces
            the method's default shape parameters (``spatial``'s ``stride``/``size``...); a model that ends
            a video with learned tokens (LLaVA-OneVision's ``image_newline``) adds them.
        max_memory: bytes the run may use on ``device``, weights included (``24GB``, ``16GiB``, an int, or an
            accelerate-style ``{device: size}`` dict); default: what the device reports free now, plus the
            weights of ``model`` when it is loaded there already.
        num_frames: frames to sample (default: the model config's, at most the video's).
        method, method_params: compression method override (default: the model config's).
        max_new_tokens: answer length the KV cache and the context are sized for.
        prompt_tokens: text tokens of the prompt (default: counted with the model's chat template when it
            is loaded, else estimated from the frame count).
        min_tokens_per_frame: the fewest visual tokens a frame keeps when the plan degrades; below it the
            plan samples fewer frames.
        fastv: prune the visual tokens inside the LM (:class:`vidpool.options.FastV`); its layer must exist
            in the model. The KV cache and the prefill are planned with every token below its layer
            and the kept ones from it on.

    Returns:
        a :class:`Plan` whose tokens, prompt and answer fit the LM's context; ``plan.notes`` explain any
        degradation from the request.

    Raises:
        ContextLengthError: the caller fixed the method, its parameters, the budget or the frames, and
            the request cannot fit the LM's context as fixed; the message says what would.
        OutOfMemoryError: when even one frame at the smallest budget does not fit.
    """
    import torch

    budget = renamed_budget(budget, budget_tokens)
    device = device or default_device()
    cuda = torch.device(device).type == "cuda"
    spec = model_spec(model, dtype_bytes=2 if cuda else 4, device_type=torch.device(device).type)
    if fastv is not None:
        check_planning(fastv=fastv)
        fastv.check_layers(spec.num_layers)
    video_frames, duration, frame_size = _video_facts(video_info)
    resize = None
    if min(frame_size) > spec.image_size:
        # decode straight to the encoder's input scale: the encoder would shrink the frames anyway
        resize = spec.image_size
        scale = spec.image_size / min(frame_size)
        frame_size = (round(frame_size[0] * scale), round(frame_size[1] * scale))
    capacity = _capacity(device, max_memory, spec)
    search = PlanSearch(spec, capacity, cuda, frame_size, max_new_tokens, prompt_tokens, duration, fastv)
    notes: list[str] = []
    request = steps.resolve_request(
        spec,
        num_frames=num_frames,
        method=method,
        method_params=method_params,
        budget=budget,
        video_frames=video_frames,
        min_tokens_per_frame=min_tokens_per_frame,
        notes=notes,
    )
    request = steps.fit_context(search, request, notes)
    if cuda and spec.weight_bytes * (1 + MARGIN_FRACTION) >= capacity:
        search.offload = True
        notes.append(
            f"weights ({format_bytes(spec.weight_bytes)}) do not fit in {format_bytes(capacity)}: "
            "the LM is split between GPU and CPU (slower generation)"
        )
    found = (
        steps.as_requested(search, request)
        or steps.features_on_cpu(search, request, notes)
        or steps.progressive_pooling(search, request, notes)
        or steps.offload_layers(search, request, notes)
        or steps.fewer_frames(search, request, notes)
    )
    if found is None:
        steps.refuse(search, str(device))
    return _plan_of(found, search, str(device), resize, video_frames, notes)


def _plan_of(
    got: Candidate,
    search: PlanSearch,
    device: str,
    resize: int | None,
    video_frames: int | None,
    notes: list[str],
) -> Plan:
    spec = search.spec
    offloaded = got.lm_on_device < spec.lm_param_bytes
    return Plan(
        device=device,
        placement="cpu" if not search.cuda else ("gpu+cpu-offload" if offloaded else "gpu"),
        num_frames=got.frames,
        encoder_batch=got.batch,
        method=got.method,
        params=dict(got.params),
        budget=got.budget,
        num_tokens=got.tokens,
        position=spec.compress_position,
        features_on=device if search.features_on_device else "cpu",
        memory=got.memory,
        available=search.capacity,
        lm_bytes_on_device=got.lm_on_device,
        max_new_tokens=search.max_new_tokens,
        prompt_tokens=search.prompt_for(got.frames),
        model_name=spec.name,
        resize=resize,
        frame_size=search.frame_size,
        video_frames=video_frames,
        video_duration=search.duration,
        context_length=spec.context_length,
        notes=tuple(notes),
        fastv=search.fastv,
    )
