"""``vidpool bench fidelity``: accuracy against visual tokens, per question family, method and budget.

For each family the runner makes the questions, renders each video, encodes it once with the CLIP
(features: patches of layer -2; joint: the last block in the joint space), then answers every question
with every arm (:mod:`vidpool.bench.arms`): each method at each budget fraction, the budgeted controls,
and the fixed controls. Accuracy gets a Wilson interval, fidelity and differences a cluster bootstrap
over units of independence (``Item.unit``: a ``direction`` clip and its reverse are one unit),
comparisons are paired on the same questions with a sign-flip test, Holm-adjusted over every
comparison of the run (:mod:`vidpool.bench.stats`), and memory at 256 frames comes from the planner and a
measured prefill (:mod:`vidpool.bench.memory`). With a video LM (``model``), the same questions are
also answered by generation (:mod:`vidpool.bench.generative`), with the same statistics, in the
results' ``generative`` section. Results go to ``results.json``, one PNG per family and a printed table
(:mod:`vidpool.bench.report`).
"""

from __future__ import annotations

import contextlib
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidpool.bench.arms import BUDGETED_CONTROLS, Arm, Column, arms_for, item_seed
from vidpool.bench.synth.seeds import DEVELOPMENT_SEED, check_eval_seed
from vidpool.errors import InvalidArgumentError
from vidpool.models import portable_path

__all__ = [
    "BUDGETS",
    "QUICK",
    "FidelitySettings",
    "answer_chunk",
    "answer_one",
    "check_settings",
    "run_fidelity",
]

#: budget fractions of the full ``T·h·w`` tokens (the issue's 100, 50, 25, 12.5, 6.25 and 3%)
#: the shares the answer is read at: 100, 50, 25, 10, 6.25 (where random dropping must fall), 5 and 3%
BUDGETS = (1.0, 0.5, 0.25, 0.1, 0.0625, 0.05, 0.03)
FULL_ITEMS = 300
#: what ``--quick`` changes: fewer questions, budgets and frames (each family's length, at most 20), and
#: no measured prefill
QUICK = {"items": 40, "budgets": (1.0, 0.25, 0.0625), "max_frames": 20, "measure_memory": False}
#: 2: cells hold ``n_units``; accuracy intervals are Wilson's; comparisons have a sign-flip ``p_value``
#: (``test``), ``vs frame_subsample`` rows, and ``p_holm`` over retrieval and generation together;
#: ``seed_kind``; ``items[family]["units"]``
RESULTS_VERSION = 2
#: what answers from the kept tokens: the trained reader (the default) or the hand-written retrieval rules
SCORERS = ("reader", "rules")


@dataclass(frozen=True)
class FidelitySettings:
    """One run of the benchmark. ``None`` means: every family / every method / each family's length."""

    clip: str | None = None
    weights: str | None = None
    families: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    budgets: tuple[float, ...] = BUDGETS
    items: int = FULL_ITEMS
    frames: int | None = None
    max_frames: int | None = None
    seed: int = DEVELOPMENT_SEED
    out: str = "bench-fidelity"
    device: str = "cpu"
    resamples: int = 2000
    memory: bool = True
    memory_model: str | None = None
    memory_frames: int = 256
    memory_fraction: float = 0.25
    measure_memory: bool = True
    quick: bool = False
    model: str | None = None
    model_frames: int | None = None
    retrieval: bool = True
    scorer: str = "reader"
    jobs: int = 1
    model_prompt: str = "letter"

    def with_quick(self) -> FidelitySettings:
        """These settings with ``--quick``'s smaller sizes (:data:`QUICK`)."""
        return replace(self, quick=True, **QUICK)


def check_settings(s: FidelitySettings) -> FidelitySettings:
    """Refuse settings no run can take (:class:`InvalidArgumentError`), before anything is loaded;
    a training seed is one (:func:`vidpool.bench.synth.seeds.check_eval_seed`)."""
    import vidpool
    from vidpool.bench.synth.tasks import FAMILIES

    check_eval_seed(s.seed)
    for name, values, known in (
        ("famil", s.families, FAMILIES),
        ("method", s.methods, vidpool.list_methods()),
    ):
        unknown = [v for v in values or () if v not in known]
        if unknown:
            raise InvalidArgumentError(
                f"unknown {name}{'ies' if name == 'famil' else 's'} {', '.join(unknown)}; choose from {', '.join(known)}"
            )
    if not s.budgets or any(not (0 < b <= 1) for b in s.budgets):
        raise InvalidArgumentError(
            f"budgets are fractions of the full tokens in (0, 1], e.g. 1,0.25,0.0625; got {list(s.budgets)}"
        )
    for name in ("items", "resamples", "memory_frames", "jobs"):
        if int(getattr(s, name)) < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {getattr(s, name)}")
    for name in ("frames", "max_frames", "model_frames"):
        if getattr(s, name) is not None and getattr(s, name) < 1:
            raise InvalidArgumentError(f"{name} must be a positive integer, got {getattr(s, name)}")
    if not 0 < s.memory_fraction <= 1:
        raise InvalidArgumentError(f"memory_fraction must be in (0, 1], got {s.memory_fraction}")
    from vidpool.bench.generative import STYLES

    if s.model_prompt not in STYLES:
        raise InvalidArgumentError(f"model_prompt must be one of {', '.join(STYLES)}, got {s.model_prompt!r}")
    if s.scorer not in SCORERS:
        raise InvalidArgumentError(f"scorer must be one of {', '.join(SCORERS)}, got {s.scorer!r}")
    if s.scorer == "reader" and s.retrieval and s.clip is not None:
        raise InvalidArgumentError(
            f"the trained reader reads the world's CLIP features, not {s.clip}'s: use --scorer rules with --clip"
        )
    if not s.retrieval and s.model is None:
        raise InvalidArgumentError("nothing to score: --no-retrieval needs --model (a video LM to ask)")
    if s.model is not None:
        from vidpool.bench.generative import model_folder

        model_folder(s.model, build=False)
    from vidpool.options import check_device

    check_device(s.device)
    return replace(s, budgets=tuple(sorted(set(s.budgets), reverse=True)))


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    from vidpool._version import __version__

    out = {"vidpool": __version__, "python": platform.python_version(), "torch": torch.__version__}
    for pkg in ("numpy", "open_clip_torch", "transformers"):
        with contextlib.suppress(md.PackageNotFoundError):
            out[pkg] = md.version(pkg)
    return out


def _shuffled(frames: np.ndarray, features, joint, encoder, seed: int):
    """Features and joint embeddings of the frames in ``shuffle_frames``' order, without re-encoding when
    the shuffle is a pure reordering (the encoder sees each frame on its own)."""
    from vidpool.bench.synth.controls import shuffle_frames

    shuffled, order = shuffle_frames(frames, seed)
    order = np.asarray(order)
    if order.shape == (len(frames),) and np.array_equal(shuffled, frames[order]):
        index = torch.as_tensor(order)
        return features[index], joint[index]
    enc = encoder.encode_frames(
        torch.from_numpy(np.ascontiguousarray(shuffled)), joint=True, out_device="cpu"
    )
    return enc.patches, enc.joint


def _frames_of(family: str, s: FidelitySettings) -> int | None:
    """Frames of ``family``'s videos: ``frames``, else the family's own length capped at ``max_frames``."""
    if s.frames is not None or s.max_frames is None:
        return s.frames
    import importlib

    tasks = importlib.import_module("vidpool.bench.synth.tasks")
    own = getattr(tasks, "DEFAULT_FRAMES", {}).get(family)
    return s.max_frames if own is None else min(own, s.max_frames)


def answer_one(
    item: Any, index: int, seed: int, arms: Sequence[Arm], encoder: Any, text: Any, reader: Any = None
) -> dict[str, Any]:
    """Every arm's :class:`~vidpool.bench.arms.Answer` to ``item``, the ``index``-th of its family: its
    video rendered and encoded, the shuffled control built with ``item_seed(seed, index)``, each arm
    scored by ``reader`` (``None``: the rules with ``text``, a :class:`~vidpool.bench.clip.TextEmbeddings`)."""
    from vidpool.bench.arms import answer_item
    from vidpool.bench.synth.tasks import render_item

    frames = np.ascontiguousarray(render_item(item, side=encoder.image_size))
    enc = encoder.encode_frames(torch.from_numpy(frames), joint=True, out_device="cpu")
    features, joint = enc.patches.float(), enc.joint.float()
    shuffled = _shuffled(frames, features, joint, encoder, item_seed(seed, index))
    layers: dict[tuple[int, ...], torch.Tensor] = {}

    def layered(which: tuple[int, ...]) -> torch.Tensor:
        if which not in layers:
            out = encoder.encode_frames(torch.from_numpy(frames), layers=which, out_device="cpu")
            layers[which] = out.patches.float()
        return layers[which]

    return answer_item(
        item,
        index,
        features,
        joint,
        arms,
        text,
        seed=seed,
        logit_scale=encoder.logit_scale,
        shuffled=shuffled,
        reader=reader,
        layered=layered,
    )


def answer_chunk(part: Sequence[tuple[int, Any]], seed: int, arms: Sequence[Arm]) -> list[dict[str, Any]]:
    """In a worker (:mod:`vidpool.bench.workers`): :func:`answer_one` for each ``(index, item)`` of
    ``part`` with the worker's CLIP, text embeddings and reader (none: the rules), in ``part``'s order."""
    from vidpool.bench.workers import loaded

    encoder, text, reader = loaded("encoder"), loaded("text"), loaded("reader")
    return [answer_one(item, i, seed, arms, encoder, text, reader) for i, item in part]


def _run_family(
    family: str,
    items: list,
    s: FidelitySettings,
    arms: list[Arm],
    encoder,
    text,
    log: Callable[[str], None],
    reader: Any = None,
    pool: Any = None,
) -> dict[str, Column]:
    """Every arm's answers to ``items``, in item order: here, or over ``pool``'s workers in contiguous
    chunks (the same answers: each item keeps its index in the family, which seeds its controls)."""
    if pool is None:
        answered: Iterator[list[dict]] = (
            [answer_one(item, i, s.seed, arms, encoder, text, reader)] for i, item in enumerate(items)
        )
    else:
        from vidpool.bench.workers import balanced_size, chunks, in_order

        parts = [
            [(i, items[i]) for i in part] for part in chunks(len(items), balanced_size(len(items), s.jobs))
        ]
        answered = in_order(pool, answer_chunk, parts, s.seed, arms)
    columns = {arm.key: Column() for arm in arms}
    start, done = time.perf_counter(), 0
    for answers in answered:
        for by_key in answers:
            for key, a in by_key.items():
                columns[key].add(a)
        before, done = done, done + len(answers)
        if done // 25 > before // 25 or done == len(items):
            log(f"  {family}: {done}/{len(items)} questions, {time.perf_counter() - start:.0f}s")
    return columns


def _cell(
    family: str, arm: Arm, col: Column, full: np.ndarray, units: np.ndarray, s: FidelitySettings
) -> dict[str, Any]:
    """One arm's row: accuracy (Wilson interval over its units), fidelity (cluster bootstrap), tokens."""
    from vidpool.bench.stats import accuracy, fidelity

    correct = np.asarray(col.correct)
    ran = correct >= 0
    tokens = np.asarray(col.tokens)[ran]
    cell: dict[str, Any] = {
        "family": family,
        "name": arm.name,
        "key": arm.key,
        "control": arm.control,
        "fraction": arm.fraction,
        "requested_tokens": float(np.mean(col.requested)),
        "tokens": None,
        "n_items": int(correct.size),
        "n": int(ran.sum()),
        "n_units": int(np.unique(units[ran]).size),
        "status": "ok" if ran.all() else ("budget_error" if not ran.any() else "partial"),
        "error": col.error,
        "accuracy": None,
        "fidelity": None,
    }
    if ran.any():
        cell["tokens"] = {"mean": float(tokens.mean()), "min": int(tokens.min()), "max": int(tokens.max())}
        cell["accuracy"] = accuracy(correct[ran], units[ran]).as_dict()
        both = ran & (full >= 0)
        if both.any():
            cell["fidelity"] = fidelity(
                correct[both], full[both], units[both], resamples=s.resamples, seed=s.seed
            ).as_dict()
    return cell


def _comparison_pairs(methods: Sequence[str], fractions: Sequence[float]) -> list[tuple[str, str, str]]:
    """``(rule, key a, key b)`` of the paired comparisons the results report."""
    pairs = []
    for f in fractions:
        if "prompt_guided" in methods and "spatial" in methods:
            pairs.append(("prompt_guided vs spatial", f"prompt_guided@{f:g}", f"spatial@{f:g}"))
    for m in methods:
        for control in BUDGETED_CONTROLS:
            for f in fractions if m not in BUDGETED_CONTROLS else ():
                pairs.append((f"{m} vs {control}", f"{m}@{f:g}", f"{control}@{f:g}"))
    reference = "none@1" if "none" in methods and 1.0 in fractions else "full"
    if "progressive" in methods:
        for f in fractions:
            pairs.append(("progressive vs none", f"progressive@{f:g}", reference))
    return pairs


def _compare(
    family: str, correct: dict[str, list[int]], units: np.ndarray, pairs, s: FidelitySettings
) -> list[dict]:
    """The paired comparisons of one family (or ``all``) on the questions both arms answered."""
    from vidpool.bench.stats import paired

    out = []
    for rule, a, b in pairs:
        if a not in correct or b not in correct:
            continue
        x, y = np.asarray(correct[a]), np.asarray(correct[b])
        both = (x >= 0) & (y >= 0)
        row: dict[str, Any] = {"family": family, "rule": rule, "a": a, "b": b, "n": int(both.sum())}
        if both.any():
            row.update(
                paired(x[both] > 0, y[both] > 0, units[both], resamples=s.resamples, seed=s.seed).as_dict()
            )
        out.append(row)
    return out


def _adjust(comparisons: list[dict]) -> None:
    """Holm-adjusted p-values over ``comparisons`` (``p_holm``), beside the raw ones: pass every
    comparison of the run at once (every family, the pooled rows, both scorers)."""
    from vidpool.bench.stats import holm

    tested = [row for row in comparisons if "p_value" in row]
    for row, adjusted in zip(tested, holm([row["p_value"] for row in tested])):
        row["p_holm"] = float(adjusted)


def _section(
    family_columns: dict[str, dict[str, Column]],
    family_units: dict[str, list[str]],
    arms: list[Arm],
    pairs,
    s: FidelitySettings,
) -> tuple[list[dict], list[dict]]:
    """Cells and paired comparisons of one scorer: per family, then (with several) every family pooled.

    ``family_units``: each family's ``[n]`` unit labels, in item order. The p-values are raw here;
    :func:`_adjust` adjusts the whole run's together.
    """
    cells: list[dict] = []
    comparisons: list[dict] = []
    pooled = {arm.key: Column() for arm in arms}
    pooled_units: list[str] = []
    for family, columns in family_columns.items():
        units = np.asarray(family_units[family])
        full = np.asarray(columns["full"].correct)
        cells += [_cell(family, arm, columns[arm.key], full, units, s) for arm in arms]
        comparisons += _compare(family, {k: c.correct for k, c in columns.items()}, units, pairs, s)
        for key, column in columns.items():
            pooled[key].extend(column)
        pooled_units += [f"{family}/{u}" for u in units]
    if len(family_columns) > 1:
        # every family's questions together: one more row per arm, weighted by question count
        units = np.asarray(pooled_units)
        full = np.asarray(pooled["full"].correct)
        cells += [_cell("all", arm, pooled[arm.key], full, units, s) for arm in arms]
        comparisons += _compare("all", {k: c.correct for k, c in pooled.items()}, units, pairs, s)
    return cells, comparisons


def _portable(value: Any) -> Any:
    """An absolute path as results meant for other machines record it; any other value as it is."""
    if isinstance(value, Path) or (isinstance(value, str) and Path(value).is_absolute()):
        return portable_path(value)
    return value


def _say_fewer_frames(family: str, items: list, asked: int) -> None:
    """What sampling changes from the LM's request, on stderr (as ``vidpool chat`` says its plan's changes)."""
    shortest = min((int(item.num_frames) for item in items), default=asked)
    if shortest < asked:
        print(
            f"vidpool bench fidelity: {family}: the videos have only {shortest} frames; the LM sees all of "
            f"them, not the {asked} asked for",
            file=sys.stderr,
        )


def _weights_for_workers(encoder: Any, about: dict[str, Any], s: FidelitySettings, scope: Any) -> str | None:
    """The ``--weights`` the worker processes load: ``s.weights``, or, for an untrained CLIP
    (``--weights random``), these very random weights, saved in a folder that lives as long as ``scope``."""
    from vidpool.bench.clip import RANDOM_WEIGHTS

    if about["weights"] != RANDOM_WEIGHTS:
        return s.weights
    import tempfile

    from safetensors.torch import save_file

    path = Path(scope.enter_context(tempfile.TemporaryDirectory(prefix="vidpool-clip-"))) / "clip.safetensors"
    save_file({k: v.detach().contiguous().cpu() for k, v in encoder.model.state_dict().items()}, str(path))
    return str(path)


def run_fidelity(settings: FidelitySettings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the benchmark; write ``results.json``, the PNGs and ``table.txt`` into ``settings.out``.

    Returns the results (what ``results.json`` holds).
    """
    import vidpool
    from vidpool.bench.report import format_best, format_generative, format_memory, format_table, write_plots
    from vidpool.bench.synth.tasks import FAMILIES, make_items

    s = check_settings(settings)
    started = time.perf_counter()
    families = list(s.families or FAMILIES)
    # The baselines run as the budgeted controls (dotted in the plots), not a second time as methods.
    methods = list(s.methods or [m for m in vidpool.list_methods() if m not in BUDGETED_CONTROLS])
    out = Path(s.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    pairs = _comparison_pairs(methods, s.budgets)
    arms, clip_about, encoder, text, reader = [], None, None, None, None
    if s.retrieval:
        from vidpool.bench.clip import TextEmbeddings, clip_zero_shot, load_clip

        encoder, clip_about = load_clip(s.clip, s.weights, s.device)
        text = TextEmbeddings(encoder)
        clip_about["zero_shot"] = clip_zero_shot(encoder, text)
        log(f"CLIP {clip_about['model']} ({clip_about['weights']}): zero-shot {clip_about['zero_shot']}")
        arms = arms_for(methods, s.budgets)
        if s.scorer == "reader":
            from vidpool.bench.synth.reader import load_reader

            reader = load_reader()
            log("scorer: the trained reader (vidpool/models/synth/reader.safetensors)")
    model, gen_arms, scope, folder = None, [], contextlib.ExitStack(), None
    if s.model is not None:
        from vidpool.bench.generative import answer_family, generative_arms, model_folder

        folder = model_folder(s.model, build=True)
        model = vidpool.load_model(folder, device=s.device)
        gen_arms = generative_arms(methods, s.budgets)
        log(f"video LM {folder} answers by generation ({s.model_frames or model.config.num_frames} frames)")
    pool = None
    if s.jobs > 1:  # one pool for the run: every family, the retrieval scorer and the LM
        from vidpool.bench.workers import Loads, process_pool

        clip = None if encoder is None else (s.clip, _weights_for_workers(encoder, clip_about, s, scope))
        loads = Loads(clip, reader is not None, None if folder is None else str(folder), s.device)
        pool = scope.enter_context(process_pool(s.jobs, loads))

    retrieval: dict[str, dict[str, Column]] = {}
    generation: dict[str, dict[str, Column]] = {}
    per_item: dict[str, dict] = {}
    replies: dict[str, dict] = {}
    with scope:
        for family in families:
            items = make_items(family, s.items, seed=s.seed, num_frames=_frames_of(family, s))
            per_item[family] = {
                "ids": [str(item.id) for item in items],
                "units": [str(getattr(item, "unit", item.id)) for item in items],
            }
            if model is not None:
                _say_fewer_frames(family, items, s.model_frames or model.config.num_frames)
            if s.retrieval:
                log(f"{family}: {s.items} questions x {len(arms)} arms")
                retrieval[family] = _run_family(family, items, s, arms, encoder, text, log, reader, pool)
                per_item[family]["correct"] = {k: c.correct for k, c in retrieval[family].items()}
            if model is not None:
                log(f"{family}: {s.items} questions x {len(gen_arms)} arms, answered by generation")
                make = {
                    "count": s.items,
                    "seed": s.seed,
                    "num_frames": _frames_of(family, s),
                    "frames": s.model_frames,
                    "style": s.model_prompt,
                }
                generation[family], replies[family] = answer_family(
                    family, items, gen_arms, model, pool, make, log
                )
                per_item[family]["generated"] = {k: c.correct for k, c in generation[family].items()}
    units = {family: part["units"] for family, part in per_item.items()}
    cells, comparisons = _section(retrieval, units, arms, pairs, s)
    generative, gen_comparisons = None, []
    if model is not None:
        gen_cells, gen_comparisons = _section(generation, units, gen_arms, pairs, s)
        generative = {
            "model": portable_path(folder),
            "model_name": s.model,
            "prompt": s.model_prompt,
            "frames": int(s.model_frames or model.config.num_frames),
            "cells": gen_cells,
            "comparisons": gen_comparisons,
            "unparsed": {
                family: {
                    key: sum(
                        r["choice"] is None for r, c in zip(rows, generation[family][key].correct) if c >= 0
                    )
                    for key, rows in by_key.items()
                }
                for family, by_key in replies.items()
            },
            "replies": replies,
        }

    _adjust(comparisons + gen_comparisons)  # one family of tests: the whole run
    memory = _memory_section(s, methods, log)
    results = {
        "version": RESULTS_VERSION,
        "seed_kind": check_eval_seed(s.seed),
        "scorer": s.scorer if s.retrieval else None,
        "settings": {
            **{k: _portable(v) for k, v in asdict(s).items()},
            "families": families,
            "methods": methods,
            "budgets": list(s.budgets),
        },
        "versions": _versions(),
        "clip": None if clip_about is None else {k: _portable(v) for k, v in clip_about.items()},
        "cells": cells,
        "comparisons": comparisons,
        "generative": generative,
        "memory": memory,
        "items": per_item,
        "seconds": round(time.perf_counter() - started, 1),
    }
    results["plots"] = [p.name for p in write_plots(results, out)]
    (out / "results.json").write_text(json.dumps(results, indent=1, default=str))
    best = format_best(results) if results["cells"] else ""
    parts = [format_table(results), best, format_generative(results), format_memory(memory)]
    table = "\n\n".join(part for part in parts if part)
    (out / "table.txt").write_text(table + "\n")
    log(table)
    log(f"wrote {out / 'results.json'}, {len(results['plots'])} plots, in {results['seconds']}s")
    return results


def _memory_section(s: FidelitySettings, methods: list[str], log: Callable[[str], None]) -> dict[str, Any]:
    if not s.memory:
        return {"status": "skipped", "reason": "--no-memory"}
    from vidpool.bench.memory import memory_table

    try:
        return memory_table(
            s.memory_model,
            methods,
            s.budgets,
            frames=s.memory_frames,
            device=s.device,
            measure_fraction=s.memory_fraction if s.measure_memory else None,
            log=log,
        )
    except Exception as exc:  # the accuracy results stand on their own; say why memory is missing
        from vidpool.errors import VidpoolError

        if not isinstance(exc, VidpoolError):
            raise
        reason = str(exc).replace(str(Path.home()), "~")  # results travel to other machines
        log(f"memory: skipped ({reason})")
        return {"status": "skipped", "reason": reason}
