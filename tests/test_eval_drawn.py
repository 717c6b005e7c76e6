"""scripts/eval_drawn.py draws what it asks: each drawn video's answer is read back from its pixels."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from pipeline_support import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("eval_drawn", ROOT / "scripts" / "eval_drawn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DRAWN = _script()


def _has(frame: np.ndarray, colour: str) -> np.ndarray:
    return np.all(frame == np.array(DRAWN.RGB[colour], dtype=np.uint8), axis=-1)


def _frames_with(frames: np.ndarray, colour: str) -> np.ndarray:
    return np.flatnonzero([_has(f, colour).any() for f in frames])


def _read(family: str, frames: np.ndarray, question: str, options: list[str]) -> str:
    """The answer from the pixels and the question's words alone."""
    named = question.split(" the ")[-1].split()[0] if " the " in question else None
    if family == "static":
        if options[0] in DRAWN.RGB:
            return max(options, key=lambda c: _has(frames[0], c).sum())
        return "unchecked"
    if family == "direction":
        first, last = (np.argwhere(_has(frames[i], named)).mean(axis=0) for i in (0, -1))
        dy, dx = last - first
        return ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
    if family == "count":
        shown = _frames_with(frames, named)
        return str(1 + int(np.sum(np.diff(shown) > 1)))
    if family == "change":
        later = [o for o in options if o != named and _frames_with(frames, o).size]
        return later[0] if len(later) == 1 else "several"
    if family == "needle_time":
        return DRAWN.QUARTERS[int(_frames_with(frames, named)[0]) * 4 // len(frames)]
    if family == "order":
        onsets = {o: _frames_with(frames, o) for o in options}
        return min((o for o in options if onsets[o].size), key=lambda o: onsets[o][0])
    brief = [o for o in options if 0 < _frames_with(frames, o.split()[0]).size < len(frames)]
    return brief[0] if len(brief) == 1 else "several"


@pytest.mark.parametrize("family", DRAWN.FAMILIES)
def test_each_drawn_video_shows_its_answer(family):
    rng = np.random.default_rng([7, DRAWN.FAMILIES.index(family)])
    for _ in range(6):
        frames, question, options, answer = DRAWN.make_case(family, rng)
        assert frames.dtype == np.uint8 and frames.shape[1:] == (DRAWN.SIDE, DRAWN.SIDE, 3)
        assert len(set(options)) == len(options) and 0 <= answer < len(options)
        read = _read(family, frames, question, options)
        if read != "unchecked":
            assert read == options[answer], (family, question, options)
        # plain black around the shapes, as docs/synth.md asks
        corner = frames[:, :4, :4].reshape(-1, 3)
        assert corner.max() == 0 or family == "direction"
