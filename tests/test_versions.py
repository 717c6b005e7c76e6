"""The dependency ranges in pyproject.toml are ones vidpool uses and CI runs.

``make test-oldest`` installs the floors pinned in ``.ci/oldest-constraints.txt`` and runs the video,
encoder and LM tests under them; these tests keep those pins equal to the floors pyproject declares
and, inside that job, check that the pins are what got installed.
"""

from __future__ import annotations

import os
import re
from importlib import metadata
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
requirements = pytest.importorskip("packaging.requirements")
version = pytest.importorskip("packaging.version")

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / ".ci" / "oldest-constraints.txt"
# Distribution name -> the module vidpool imports, where the two differ.
IMPORT_NAMES = {"open_clip_torch": "open_clip"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _declared() -> list[requirements.Requirement]:
    """Every requirement in pyproject: the core ones and those of every extra."""
    project = _project()
    lines = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        lines += [line for line in extra if not line.startswith("vidpool[")]
    return [requirements.Requirement(line) for line in lines]


def _pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, pinned = line.partition("==")
            assert pinned, f"{path.name}: {line!r} is not a name==version pin"
            pins[_canonical(name)] = pinned.strip()
    return pins


def _floor(req: requirements.Requirement) -> str | None:
    floors = [spec.version for spec in req.specifier if spec.operator == ">="]
    return floors[0] if floors else None


def test_every_core_dependency_is_imported_by_the_package() -> None:
    """A core dependency every user installs must be one the package imports (einops was not)."""
    sources = "\n".join(p.read_text() for p in (ROOT / "vidpool").rglob("*.py"))
    for line in _project()["dependencies"]:
        name = _canonical(requirements.Requirement(line).name)
        module = IMPORT_NAMES.get(name, name)
        assert re.search(rf"^\s*(import|from) {module}\b", sources, re.M), (
            f"core dependency {line!r} is never imported by vidpool"
        )


def test_each_oldest_pin_is_the_declared_floor() -> None:
    declared: dict[str, set[version.Version]] = {}
    for req in _declared():
        floor = _floor(req)
        if floor is not None:
            declared.setdefault(_canonical(req.name), set()).add(version.Version(floor))
    pins = _pins()
    assert {"av", "transformers"} <= pins.keys(), "the oldest job must pin av and transformers"
    for name, pinned in pins.items():
        assert name in declared, f"{name} is pinned in {CONSTRAINTS.name} but pyproject declares no floor"
        assert declared[name] == {version.Version(pinned)}, (
            f"{name}: pyproject's floor {sorted(map(str, declared[name]))} is not the {pinned} that CI tests"
        )


def test_the_oldest_pins_lie_inside_every_declared_range() -> None:
    pins = _pins()
    for req in _declared():
        pinned = pins.get(_canonical(req.name))
        if pinned is not None:
            assert req.specifier.contains(pinned, prereleases=True), f"{pinned} is outside {req}"


def test_the_eval_extra_keeps_a_filelock_that_lmms_eval_can_import() -> None:
    """lmms-eval 0.7.3 patches ``filelock._api.FileLockMeta``: added in filelock 3.16, gone in 4.3."""
    eval_reqs = [requirements.Requirement(line) for line in _project()["optional-dependencies"]["eval"]]
    filelock = [req for req in eval_reqs if _canonical(req.name) == "filelock"]
    assert filelock, "the eval extra must constrain filelock"
    spec = filelock[0].specifier
    assert not spec.contains("4.3.1") and not spec.contains("3.13.0")
    assert spec.contains("4.2.12") and spec.contains("3.16.1")


@pytest.mark.skipif(not os.environ.get("VIDPOOL_OLDEST_CONSTRAINTS"), reason="only inside `make test-oldest`")
def test_the_oldest_job_runs_the_pinned_versions() -> None:
    """Constraints only cap what gets installed: check the floors really are what this job imports."""
    for name, pinned in _pins(ROOT / os.environ["VIDPOOL_OLDEST_CONSTRAINTS"]).items():
        installed = metadata.version(name)
        assert version.Version(installed) == version.Version(pinned), f"{name} {installed} != {pinned}"
