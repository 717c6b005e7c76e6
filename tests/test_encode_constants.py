"""Constants every stage shares are named once, in ``vidpool.encode``, and agree with their source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import vidpool
from vidpool.encode.config import encoder_spec, load_config
from vidpool.encode.memory import DEFAULT_FRAME_HW
from vidpool.encode.preprocess import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

PACKAGE = Path(vidpool.__file__).parent


def test_clip_statistics_are_open_clips():
    constants = pytest.importorskip("open_clip.constants")
    assert tuple(constants.OPENAI_DATASET_MEAN) == OPENAI_CLIP_MEAN
    assert tuple(constants.OPENAI_DATASET_STD) == OPENAI_CLIP_STD
    cfg = encoder_spec(load_config("tiny-clip-32")).preprocess()
    assert cfg["mean"] is OPENAI_CLIP_MEAN and cfg["std"] is OPENAI_CLIP_STD


def test_default_frame_size_is_what_the_estimates_assume():
    from vidpool.encode.batching import activation_bytes_per_frame

    spec = encoder_spec(load_config("tiny-clip-32"))
    assert DEFAULT_FRAME_HW == (720, 1280)
    default = activation_bytes_per_frame(spec, torch.float32)
    assert default == activation_bytes_per_frame(spec, torch.float32, frame_hw=DEFAULT_FRAME_HW)
    assert default != activation_bytes_per_frame(spec, torch.float32, frame_hw=(360, 640))


def _literal_tuples(path: Path) -> list[tuple]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant) for e in node.elts):
            out.append(tuple(e.value for e in node.elts))
    return out


@pytest.mark.parametrize(
    "value,home",
    [
        (DEFAULT_FRAME_HW, "encode/memory.py"),
        (OPENAI_CLIP_MEAN, "encode/preprocess.py"),
        (OPENAI_CLIP_STD, "encode/preprocess.py"),
    ],
)
def test_each_constant_is_written_once(value, home):
    """Everywhere else the name is used, so a change reaches the encoder, the planner and the adapters."""
    places = [
        str(path.relative_to(PACKAGE))
        for path in sorted(PACKAGE.rglob("*.py"))
        for found in _literal_tuples(path)
        if found == value
    ]
    assert places == [home]
