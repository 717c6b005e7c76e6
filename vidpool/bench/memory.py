"""Each method's memory at many frames, planned and measured, beside the accuracy it keeps.

*Planned*: what :func:`vidpool.plan` decides for ``frames`` frames with the method at the budget, and the
planner's own formula (:func:`vidpool.schedule.estimate_memory`) at the requested token count, which
also exists where the plan refuses (a request beyond the LM's context). *Measured*: the compression
and the LM prefill of one answer token run on random features of that many frames, their peak tensor
memory taken by :func:`vidpool.schedule.measure_peak` (CUDA: the allocator's peak; CPU: torch's
allocator events). The encoding phase is left out of both: the features are given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpool.models import portable_path

__all__ = ["MAX_NEW_TOKENS", "memory_table", "resolve_model"]

#: the answer length the rows are planned for; the measured run generates one token
MAX_NEW_TOKENS = 16


def resolve_model(model: str | Path | None) -> Path:
    """A checkpoint folder: ``model`` as a folder, a buildable model's name (built), or the default model."""
    from vidpool.models import default_model, is_built, model_dir, model_names

    if model is None:
        return default_model()
    if str(model) in model_names() and not Path(model).exists():
        if not is_built(str(model)):
            from vidpool.errors import CheckpointError

            raise CheckpointError(f"model {model} is not built: run `vidpool models build {model}`")
        return model_dir(str(model))
    return Path(model).expanduser()


def _lm_phase(m: Any) -> int:
    """Planned bytes once the features exist: weights + max(compression, features kept + generation)."""
    return int(m.weights + max(m.visual_tokens, m.features_kept + m.kv_cache + m.lm_activations))


def _planned(spec: Any, method: str, fraction: float, frames: int, device: str) -> dict:
    import vidpool
    from vidpool.errors import VidpoolError
    from vidpool.schedule import estimate_memory

    h, w = spec.grid
    budget = None if method == "none" else max(1, round(fraction * frames * h * w))
    row: dict[str, Any] = {"method": method, "fraction": fraction, "budget": budget}
    try:
        tokens = spec.num_visual_tokens(frames, method, budget, {})
    except VidpoolError as exc:
        return {**row, "status": "budget_error", "error": str(exc)}
    est = estimate_memory(
        spec,
        num_frames=frames,
        num_tokens=tokens,
        encoder_batch=1,
        prompt_tokens=spec.prompt_tokens(frames),
        max_new_tokens=MAX_NEW_TOKENS,
        joint=spec.uses_joint(method),
        cuda=device.startswith("cuda"),
    )
    row.update(tokens=tokens, estimate_peak=est.peak, estimate_after_encoding=_lm_phase(est))
    try:
        p = vidpool.plan(
            None,
            spec,
            device,
            num_frames=frames,
            method=method,
            budget=budget,
            max_new_tokens=MAX_NEW_TOKENS,
        )
    except VidpoolError as exc:
        return {**row, "status": "refused", "error": " ".join(str(exc).split())}
    row.update(
        status="degraded" if p.notes else "ok",
        plan_method=p.method,
        plan_tokens=p.num_tokens,
        plan_peak=p.memory.peak,
        plan_after_encoding=_lm_phase(p.memory),
        notes=list(p.notes),
    )
    return row


def _measure(model: Any, rows: list[dict], frames: int, device: str, log: Callable[[str], None]) -> None:
    """Add ``measured_after_encoding`` to each row whose plan ran as asked (prefills cached by length)."""
    import vidpool
    from vidpool.schedule import measure_peak

    h, w = model.grid
    spec = model.vision_spec
    dtype = next(model.language_model.parameters()).dtype
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(frames, h, w, int(spec["width"]), generator=gen).to(device, dtype)
    relevance = torch.rand(frames, h, w, generator=gen).to(device)
    relevance = relevance / relevance.sum()
    weights = sum(
        t.numel() * t.element_size() for m in model.weight_modules for t in [*m.parameters(), *m.buffers()]
    )
    stamps = (np.arange(frames) + 0.5) * 2.0
    prefill: dict[int, int] = {}
    for row in rows:
        if row.get("status") != "ok":
            continue
        method, budget = row["method"], row["budget"]
        extra = {"scores": relevance} if vidpool.get_method(method).uses_scores else {}
        tokens, compress_peak = measure_peak(
            lambda method=method, budget=budget, extra=extra: model.visual_tokens(
                features, method=method, budget=budget, **extra
            ),
            device,
        )
        n = int(tokens.shape[0])
        if n not in prefill:
            start = len(prefill)
            _, prefill[n] = measure_peak(
                lambda tokens=tokens: model.generate(
                    tokens, "Which colour is the object?", timestamps=stamps, max_new_tokens=1
                ),
                device,
            )
            log(f"  memory: prefill of {n} visual tokens measured ({start + 1} lengths so far)")
        held = features.numel() * features.element_size()
        # the kept tokens exist before the prefill starts, so its peak sits above them
        after = weights + held + max(compress_peak, tokens.numel() * tokens.element_size() + prefill[n])
        row["measured_after_encoding"] = int(after)
        if row.get("plan_after_encoding"):
            row["measured_over_planned"] = round(after / row["plan_after_encoding"], 3)


def _relative(rows: list[dict], weights: int) -> None:
    """Each row's planner-formula peak against ``none`` (all tokens) and ``spatial`` at the same fraction;
    ``working_vs_none`` leaves the weights out of both sides (what the visual tokens themselves cost)."""
    none = next((r for r in rows if r["method"] == "none" and "estimate_after_encoding" in r), None)
    spatial = {r["fraction"]: r for r in rows if r["method"] == "spatial" and "estimate_after_encoding" in r}
    for r in rows:
        if "estimate_after_encoding" not in r:
            continue
        if none is not None:
            r["vs_none"] = round(r["estimate_after_encoding"] / none["estimate_after_encoding"], 3)
            working = none["estimate_after_encoding"] - weights
            r["working_vs_none"] = round((r["estimate_after_encoding"] - weights) / working, 3)
        if r["fraction"] in spatial:
            r["vs_spatial"] = round(
                r["estimate_after_encoding"] / spatial[r["fraction"]]["estimate_after_encoding"], 3
            )


def memory_table(
    model: str | Path | None,
    methods: Sequence[str],
    fractions: Sequence[float],
    *,
    frames: int = 256,
    device: str = "cpu",
    measure_fraction: float | None = 0.25,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Planned (every method x fraction, ``none`` once) and measured (at ``measure_fraction``) memory.

    Args:
        model: a checkpoint folder or buildable model name (default: the default model).
        frames: frames of the video planned for (the issue's 256).
        measure_fraction: the budget fraction whose rows are also measured; ``None``: plan only.

    Returns:
        ``{"model", "frames", "device", "context_length", "rows": [...], "status"}``; a row has ``method``,
        ``fraction``, ``budget``, ``tokens``, ``estimate_peak``, ``estimate_after_encoding``, ``vs_none``,
        ``working_vs_none``, ``vs_spatial``, ``status`` (``ok``, ``degraded``, ``refused``, ``budget_error``), the plan's
        ``plan_tokens``/``plan_peak``/``plan_after_encoding``/``notes`` or its ``error``, and
        ``measured_after_encoding`` where measured (bytes).
    """
    import vidpool.llm  # noqa: F401  (the model kinds register their spec readers with the planner)
    from vidpool.schedule import model_spec

    folder = resolve_model(model)
    cuda = device.startswith("cuda")
    spec = model_spec(str(folder), dtype_bytes=2 if cuda else 4, device_type=device.split(":")[0])
    loaded = None
    if measure_fraction is not None:
        from vidpool.llm import load_model
        from vidpool.quiet import quiet_libraries

        log(f"memory: loading {folder} to measure")
        with quiet_libraries():  # loading bars would break up the benchmark's log
            loaded = load_model(folder, device=device)
        spec = model_spec(loaded)
    fractions = sorted({*fractions, *([measure_fraction] if measure_fraction else [])}, reverse=True)
    rows = [_planned(spec, "none", 1.0, frames, device)]
    rows += [_planned(spec, m, f, frames, device) for m in methods if m != "none" for f in fractions]
    _relative(rows, spec.weight_bytes)
    if loaded is not None:
        chosen = [r for r in rows if r["method"] == "none" or r["fraction"] == measure_fraction]
        _measure(loaded, chosen, frames, device, log)
    return {
        "status": "ok",
        "model": portable_path(folder),
        "frames": frames,
        "device": device,
        "context_length": spec.context_length,
        "weights": spec.weight_bytes,
        "grid": list(spec.grid),
        "measured_fraction": measure_fraction,
        "max_new_tokens": MAX_NEW_TOKENS,
        "rows": rows,
    }
