"""The fidelity benchmark's results for people: a plain-text table and one PNG per question family.

Per family the text has a grid (accuracy [95% Wilson interval] per method and budget) and one line per
cell: accuracy with its interval, questions and units, fidelity with its cluster-bootstrap interval,
and the paired differences from ``random_drop`` and ``frame_subsample`` at the same budget with their
Holm-adjusted p-values. Results of version 1 (no units, no Holm over both scorers) still print.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

__all__ = ["format_cells", "format_generative", "format_memory", "format_table", "write_plots"]

BASELINES = ("random_drop", "frame_subsample")


_COLOURS = (
    "tab:blue",
    "tab:orange",
    "tab:green",
    "tab:red",
    "tab:purple",
    "tab:brown",
    "tab:pink",
    "tab:olive",
    "tab:cyan",
)


def _acc(cell: dict | None) -> str:
    if cell is None:
        return "-"
    if cell["accuracy"] is None:
        return "no budget fit"
    a = cell["accuracy"]
    mark = "*" if cell["status"] == "partial" else ""
    return f"{a['value']:.2f} [{a['low']:.2f}, {a['high']:.2f}]{mark}"


def _by_family(results: dict, section: dict | None = None) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for cell in (section or results)["cells"]:
        out.setdefault(cell["family"], {})[cell["key"]] = cell
    return out


def _names(results: dict) -> list[str]:
    """The methods, then the budgeted controls (a baseline named among the methods ran as its control)."""
    return [m for m in results["settings"]["methods"] if m not in BASELINES] + list(BASELINES)


def _interval(estimate: dict | None) -> str:
    if estimate is None:
        return "-"
    return f"{estimate['value']:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}]"


def _versus(row: dict | None) -> str:
    """``+0.05 p 0.031``: a paired difference and its Holm-adjusted p (raw ``p`` in old results)."""
    if row is None or "diff" not in row:
        return "-"
    p = row.get("p_holm")
    return (
        f"{row['diff']:+.2f} p {p:.2g}" if p is not None else f"{row['diff']:+.2f} p_raw {row['p_value']:.2g}"
    )


def _kind(results: dict) -> str:
    """What the accuracy intervals are: Wilson's from version 2, percentile bootstrap before."""
    return "Wilson" if results.get("version", 1) >= 2 else "bootstrap"


def _seed_line(results: dict) -> str:
    seed = results["settings"].get("seed")
    kind = results.get("seed_kind")
    return f"item seed {seed}" + (f" ({kind})" if kind else "")


def format_cells(results: dict[str, Any], section: dict | None = None) -> str:
    """One line per family x arm: accuracy [95% Wilson], questions/units, fidelity [95% cluster
    bootstrap], and the difference from each baseline at the same budget with its Holm-adjusted p.

    ``section``: the results' ``generative`` part (default: the retrieval scorer's cells)."""
    source = section or results
    versus = {(r["family"], r["a"], r["b"]): r for r in source.get("comparisons", [])}
    accuracy = f"accuracy [95% {_kind(results)}]"
    fid = "fidelity [95% cluster bs]" if _kind(results) == "Wilson" else "fidelity [95% bootstrap]"
    head = (
        f"{'cell':<24}{accuracy:<26}{'n':>5}{'units':>6}  {fid:<27}"
        + "".join(f"{'vs ' + b:<22}" for b in BASELINES)
    ).rstrip()
    lines = []
    for family, cells in _by_family(results, section).items():
        lines += [f"{family}, every cell:", head]
        for key, cell in cells.items():
            acc = "no budget fit" if cell["accuracy"] is None else _interval(cell["accuracy"])
            if cell["status"] == "partial":
                acc += "*"
            units = cell.get("n_units", "-")
            rows = [versus.get((family, key, key.replace(cell["name"], b, 1))) for b in BASELINES]
            vs = "".join(f"{_versus(r) if cell['fraction'] is not None else '-':<22}" for r in rows)
            lines.append(
                f"{key:<24}{acc:<26}{cell['n']:>5}{units:>6}  {_interval(cell['fidelity']):<27}{vs}".rstrip()
            )
        lines.append("")
    return "\n".join(lines).rstrip()


def format_best(results: dict[str, Any], section: dict | None = None) -> str:
    """Per family and budget below 100%: the method with the highest fidelity, its fidelity [95%
    interval], and whether it beats ``random_drop`` and ``frame_subsample`` at that budget (a positive
    paired difference with Holm-adjusted p < 0.05: ``yes``; otherwise ``no``)."""
    source = section or results
    versus = {(r["family"], r["a"], r["b"]): r for r in source.get("comparisons", [])}
    budgets = [b for b in results["settings"]["budgets"] if b < 1]
    methods = [m for m in results["settings"]["methods"] if m not in BASELINES]
    lines = [
        "best method per family and budget: fidelity [95% cluster bs]; beats random_drop / frame_subsample "
        "(Holm p < 0.05)"
    ]
    for family, cells in _by_family(results, section).items():
        parts = []
        for b in budgets:
            scored = [
                cells[f"{m}@{b:g}"]
                for m in methods
                if f"{m}@{b:g}" in cells
                and cells[f"{m}@{b:g}"]["fidelity"] is not None
                and not math.isnan(cells[f"{m}@{b:g}"]["fidelity"]["value"])  # every-token accuracy 0
            ]
            if not scored:
                parts.append(f"{b * 100:g}%: -")
                continue
            best = max(scored, key=lambda c: c["fidelity"]["value"])
            wins = []
            for base in BASELINES:
                row = versus.get((family, best["key"], f"{base}@{b:g}"))
                ok = row is not None and row["diff"] > 0 and (row.get("p_holm") or 1) < 0.05
                wins.append("yes" if ok else "no")
            parts.append(f"{b * 100:g}%: {best['name']} {_interval(best['fidelity'])} {'/'.join(wins)}")
        lines.append(f"{family}: " + "; ".join(parts))
    return "\n".join(lines)


def _short(cell: dict | None) -> str:
    return "-" if cell is None or cell["accuracy"] is None else f"{cell['accuracy']['value']:.2f}"


def scorer_name(results: dict[str, Any]) -> str:
    """What answered from the kept tokens: ``"trained reader"`` or ``"retrieval rules"`` (results that
    predate the reader were scored by the rules)."""
    return "trained reader" if results.get("scorer") == "reader" else "retrieval rules"


def format_generative(results: dict[str, Any]) -> str:
    """The video LM's accuracy [95% interval] per family x method x budget, each followed by the
    retrieval scorer's accuracy for the same cell after ``|`` (``-`` where it did not run); empty
    without a generative section."""
    section = results.get("generative")
    if not section:
        return ""
    budgets = results["settings"]["budgets"]
    names = _names(results)
    width = max(len(n) for n in names)
    col = 27
    retrieval = _by_family(results)
    lines = [
        f"answered by generation: {section['model_name']} ({section['frames']} frames, {section.get('prompt', 'letter')} answers, "
        f"{_seed_line(results)}; each cell: generated accuracy [95% {_kind(results)} interval] | {scorer_name(results)}' accuracy)"
    ]
    for family, cells in _by_family(results, section).items():
        other = retrieval.get(family, {})
        n = cells["full"]["n_items"]
        fixed = ", ".join(f"{c} {_acc(cells.get(c))} | {_short(other.get(c))}" for c in ("full", "text_only"))
        lines.append(f"{family} ({n} questions): {fixed}")
        lines.append(
            f"{'':<{width}}  " + "".join(f"{f'{b * 100:.4g}% tokens':<{col}}" for b in budgets).rstrip()
        )
        for name in names:
            keys = [f"{name}@{b:g}" for b in budgets]
            row = "".join(f"{_acc(cells.get(k)) + ' | ' + _short(other.get(k)):<{col}}" for k in keys)
            lines.append(f"{name:<{width}}  {row}".rstrip())
        lines.append("")
    return "\n".join([*lines, format_cells(results, section)]).rstrip()


def format_table(results: dict[str, Any]) -> str:
    """Accuracy [95% Wilson interval] per family x method x budget fraction, controls after the methods,
    then every cell on its own line (:func:`format_cells`).

    ``*`` marks a cell where some questions' videos could not meet the budget (its ``n`` is smaller).
    """
    budgets = results["settings"]["budgets"]
    names = _names(results)
    width = max(len(n) for n in names)
    col = 20
    lines = [
        f"{scorer_name(results)}, {_seed_line(results)}; each cell: accuracy [95% {_kind(results)} interval]"
    ]
    for family, cells in _by_family(results).items():
        n = cells["full"]["n_items"]
        fixed = ", ".join(
            f"{c} {_acc(cells.get(c))}" for c in ("full", "middle_frame", "shuffled", "text_only")
        )
        lines.append(f"{family} ({n} questions): {fixed}")
        lines.append(
            f"{'':<{width}}  " + "".join(f"{f'{b * 100:.4g}% tokens':<{col}}" for b in budgets).rstrip()
        )
        for name in names:
            row = "".join(f"{_acc(cells.get(f'{name}@{b:g}')):<{col}}" for b in budgets)
            lines.append(f"{name:<{width}}  {row}".rstrip())
        lines.append("")
    if len(lines) == 1:
        return ""
    return "\n".join([*lines, format_cells(results)]).rstrip()


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:,.0f} MiB"


def format_memory(memory: dict[str, Any]) -> str:
    """The memory rows as text: tokens, the planner's peak after encoding, the measured one, the ratios."""
    if memory.get("status") != "ok":
        return f"memory: {memory.get('status')} ({memory.get('reason')})"
    head = (
        f"memory at {memory['frames']} frames, {memory['model']} on {memory['device']} "
        f"(context {memory['context_length']}, weights {_mib(memory['weights'])}; peak once the features exist)"
    )
    lines = [
        head,
        f"{'method':<16}{'budget':>8}{'tokens':>8}{'planned':>12}{'measured':>12}{'vs none':>9}"
        f"{'vs spatial':>11}  plan",
    ]
    for r in memory["rows"]:
        if r["status"] == "budget_error":
            continue
        plan = r["status"]
        if plan == "refused":
            need = re.search(r"need (\d+) positions", r["error"])
            plan += f": {need.group(1)} positions > context" if need else f": {r['error'][:60]}"
        lines.append(
            f"{r['method']:<16}{r['fraction'] * 100:>7.4g}%{r['tokens']:>8}{_mib(r['estimate_after_encoding']):>12}"
            f"{_mib(r.get('measured_after_encoding')):>12}{r.get('vs_none', '-'):>9}{r.get('vs_spatial', '-'):>11}  {plan}"
        )
    return "\n".join(lines)


def write_plots(results: dict[str, Any], out: str | Path) -> list[Path]:
    """``accuracy_<family>.png`` per family: accuracy against visual tokens (log scale), one line per
    method with its 95% band, the budgeted controls dotted, the full tokens and the text alone dashed;
    with a generative section, ``generated_<family>.png`` the same for the video LM's answers."""
    written = _plots(results, _by_family(results), out, "accuracy", scorer_name(results))
    if results.get("generative"):
        section = results["generative"]
        by_family = _by_family(results, section)
        written += _plots(results, by_family, out, "generated", f"answered by {section['model_name']}")
    return written


def _plots(results: dict, by_family: dict, out: str | Path, prefix: str, scorer: str) -> list[Path]:
    from vidpool.errors import require

    matplotlib = require("matplotlib", "eval", "the fidelity benchmark's plots")
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    out = Path(out)
    budgets = results["settings"]["budgets"]
    names = _names(results)
    written = []
    for family, cells in by_family.items():
        fig, ax = plt.subplots(figsize=(9, 4.8))
        for i, name in enumerate(names):
            points = [cells.get(f"{name}@{b:g}") for b in budgets]
            points = sorted(
                (c for c in points if c is not None and c["accuracy"] is not None),
                key=lambda c: c["tokens"]["mean"],
            )
            if not points:
                continue
            x = [max(c["tokens"]["mean"], 1.0) for c in points]
            control = name in ("random_drop", "frame_subsample")
            if control:
                style = {"linestyle": ":", "marker": "o", "color": "0.35" if name == "random_drop" else "0.6"}
            else:  # tab10 without its grey (the controls'); past nine methods another marker and dash
                cycle = i // len(_COLOURS)
                style = {
                    "color": _COLOURS[i % len(_COLOURS)],
                    "marker": "osD^"[cycle % 4],
                    "linestyle": ("-", "-.", "--", (0, (5, 1)))[cycle % 4],
                }
            (line,) = ax.plot(x, [c["accuracy"]["value"] for c in points], ms=3, label=name, **style)
            ax.fill_between(
                x,
                [c["accuracy"]["low"] for c in points],
                [c["accuracy"]["high"] for c in points],
                color=line.get_color(),
                alpha=0.05 if control else 0.12,
                linewidth=0,
            )
        for name, colour in (("full", "black"), ("text_only", "tab:red")):
            cell = cells.get(name)
            if cell is not None and cell["accuracy"] is not None:
                ax.axhline(cell["accuracy"]["value"], linestyle="--", color=colour, linewidth=1, label=name)
        ax.axhline(0.25, linestyle=":", color="0.75", linewidth=1, label="chance (1 in 4)")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.LogFormatter(labelOnlyBase=False))
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("visual tokens kept (log scale)")
        ax.set_ylabel("accuracy (95% Wilson band)")
        ax.set_title(f"{family}: {cells['full']['n_items']} questions, 4 options ({scorer})")
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
        fig.tight_layout()
        path = out / f"{prefix}_{family}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
