"""The layering of docs/development.md ("Layers"), held over every module of vidpool and scripts/.

Every ``import`` counts, those inside functions included; relative imports are resolved and
``import vidpool`` is the top package. One test per rule, each listing every violation it finds with
its file and line, so that one run shows all of them.
"""

from __future__ import annotations

import ast
import os
from collections import defaultdict
from pathlib import Path

ROOT = Path(os.environ.get("VIDPOOL_LAYERS_ROOT", Path(__file__).resolve().parent.parent))
PACKAGE = ROOT / "vidpool"
SCRIPTS = ROOT / "scripts"

L0 = {"errors", "_version", "progress", "quiet", "backoff"}
BELOW_LLM = {"compression", "video", "options", "encode", "schedule"} | L0
QWEN = {
    "integrations.transformers_qwen",
    "integrations.transformers_qwen_positions",
    "integrations.transformers_qwen_prompt",
    "integrations.transformers_qwen_spec",
}
BELOW_PIPELINE = BELOW_LLM | {"llm", "integrations.transformers_llava", "models"} | QWEN
BELOW_SURFACES = BELOW_PIPELINE | {"pipeline"}

# unit -> the other units it may import (docs/development.md, "Layers").
ALLOWED: dict[str, set[str]] = {
    **{unit: {"errors", "_version"} for unit in L0},
    "compression": L0,
    "video": L0,
    "options": {"compression", "video"} | L0,
    "encode": {"video"} | L0,
    "schedule": {"compression", "encode", "video", "options"} | L0,
    "llm": BELOW_LLM,
    "integrations.transformers_llava": BELOW_LLM | {"llm"},
    "integrations.transformers_qwen_positions": BELOW_LLM,
    "integrations.transformers_qwen_spec": BELOW_LLM,
    "integrations.transformers_qwen_prompt": BELOW_LLM | {"llm", "integrations.transformers_qwen_positions"},
    "integrations.transformers_qwen": BELOW_LLM | {"llm", "integrations.transformers_llava"} | QWEN,
    "models": BELOW_LLM | {"llm", "integrations.transformers_llava"},
    "pipeline": BELOW_PIPELINE,
    "bench": BELOW_SURFACES,
    "caption": BELOW_SURFACES,
    "demo": BELOW_SURFACES | {"bench"},
    "integrations.lmms_eval": BELOW_SURFACES | {"bench"},
    "integrations": set(),
    "vidpool": {"compression", "errors", "_version"},
}
SURFACES = {"bench", "caption", "demo", "integrations.lmms_eval"}
EVERYTHING = set(ALLOWED) | {"cli", "__main__"}
ALLOWED["cli"] = ALLOWED["__main__"] = EVERYTHING


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _unit(module: str) -> str | None:
    """The layer unit of a ``vidpool...`` module name: ``llm``, ``integrations.lmms_eval``, ``vidpool``."""
    parts = module.split(".")
    if parts[0] != "vidpool":
        return None
    if len(parts) == 1:
        return "vidpool"
    if parts[1] == "integrations" and len(parts) > 2:
        return f"integrations.{parts[2]}"
    return parts[1]


def _is_module(module: str) -> bool:
    path = ROOT.joinpath(*module.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, module, name)`` for every import in ``path``; ``name`` is what a ``from`` imports.

    ``from package import module`` is reported as an import of the module, with no name.
    """
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                if _is_module(sub):
                    found.append((node.lineno, sub, None))
                else:
                    found.append((node.lineno, source, alias.name))
    return found


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def _lazy_edges() -> dict[tuple[str, str], list[str]]:
    """The top package's lazy attributes (``_LAZY``: name -> module) as edges from ``vidpool``."""
    path = PACKAGE / "__init__.py"
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for node in ast.walk(_parse(path)):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_LAZY" for t in node.targets):
            for value in node.value.values:
                edges["vidpool", _unit(value.value)].append(_where(path, value.lineno))
    return edges


def _edges() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) -> where, for every import between two units of vidpool.

    The top package's lazy attributes count as its imports.
    """
    edges = _lazy_edges()
    for path in _files(PACKAGE):
        here = _unit(_module_name(path))
        for line, module, _ in _imports(path):
            there = _unit(module)
            where = _where(path, line)
            if there is not None and there != here and where not in edges[here, there]:
                edges[here, there].append(where)
    return edges


def _allowed(here: str, there: str, edges: dict[tuple[str, str], list[str]]) -> bool:
    if there == "vidpool":  # importing the top package is importing everything it reaches
        return {b for (a, b) in edges if a == "vidpool"} <= ALLOWED.get(here, set())
    return there in ALLOWED.get(here, set())


def test_every_unit_is_in_the_table():
    units = {_unit(_module_name(p)) for p in _files(PACKAGE)}
    assert units <= set(ALLOWED), f"add these to the layer table: {sorted(units - set(ALLOWED))}"


def test_imports_follow_the_layers():
    edges = _edges()
    lazy = _lazy_edges()  # the top package's lazy attribute access may reach any unit
    bad = [
        f"{where}: {here} imports {there}"
        for (here, there), places in sorted(edges.items())
        if not _allowed(here, there, edges)
        for where in places
        if where not in lazy.get((here, there), [])
    ]
    assert not bad, "imports against the layer table:\n" + "\n".join(bad)


def test_no_import_cycle_between_units():
    graph: dict[str, set[str]] = defaultdict(set)
    edges = _edges()
    for here, there in edges:
        graph[here].add(there)
    # Tarjan's strongly connected components; any component of two or more units is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(unit: str) -> None:
        index[unit] = low[unit] = len(index)
        stack.append(unit)
        for other in sorted(graph[unit]):
            if other not in index:
                visit(other)
                low[unit] = min(low[unit], low[other])
            elif other in stack:
                low[unit] = min(low[unit], index[other])
        if low[unit] == index[unit]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == unit:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for unit in sorted(graph):
        if unit not in index:
            visit(unit)
    bad = [
        f"cycle {' <-> '.join(c)}: "
        + "; ".join(f"{a} -> {b} at {', '.join(edges[a, b])}" for a in c for b in c if (a, b) in edges)
        for c in cycles
    ]
    assert not bad, "import cycles between units:\n" + "\n".join(bad)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_imported_across_units():
    bad = []
    for path in _files(PACKAGE) + _files(SCRIPTS):
        here = _unit(_module_name(path)) if path.is_relative_to(PACKAGE) else "scripts"
        for line, module, name in _imports(path):
            there = _unit(module)
            private = (name and _private(name)) or any(_private(p) for p in module.split(".")[2:])
            if there is not None and there != here and private:
                bad.append(f"{_where(path, line)}: {here} imports {module}{'.' + name if name else ''}")
    assert not bad, "private names imported across units:\n" + "\n".join(bad)


def _defined_private_names() -> dict[str, set[str]]:
    """unit -> the private names its modules define: functions, classes, assignments, attributes."""
    names: dict[str, set[str]] = defaultdict(set)
    for path in _files(PACKAGE):
        unit = _unit(_module_name(path))
        for node in ast.walk(_parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found = [node.name]
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                found = [node.id]
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                found = [node.attr]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                found = [node.target.id]
            else:
                continue
            names[unit].update(n for n in found if _private(n))
    return names


def test_no_private_attribute_of_another_unit():
    """``obj._name`` where ``_name`` belongs to another unit of vidpool (``self``/``cls`` are fine)."""
    defined = _defined_private_names()
    bad = []
    for path in _files(PACKAGE) + _files(SCRIPTS):
        here = _unit(_module_name(path)) if path.is_relative_to(PACKAGE) else "scripts"
        for node in ast.walk(_parse(path)):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
                continue
            if node.attr in defined.get(here, set()):
                continue
            owners = sorted(u for u, names in defined.items() if node.attr in names)
            if owners:
                bad.append(f"{_where(path, node.lineno)}: .{node.attr} belongs to {', '.join(owners)}")
    assert not bad, "private attributes used across units:\n" + "\n".join(bad)


def test_no_sys_path_edits():
    bad = []
    for path in _files(SCRIPTS) + _files(ROOT / "tests"):
        for node in ast.walk(_parse(path)):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "path"
                and isinstance(node.value, ast.Name)
                and node.value.id == "sys"
            ):
                bad.append(_where(path, node.lineno))
    assert not bad, "sys.path edited (import the package instead):\n" + "\n".join(bad)
