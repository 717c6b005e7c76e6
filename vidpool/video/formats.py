"""Which files are videos, by name: the one extension list the demo, the captioner's folder scan and the
command line share.

Every extension listed was checked to open with PyAV (tests/test_video_formats.py writes a small file
of each and samples it). A file of another name is still read when it is named directly.
"""

from __future__ import annotations

import os

__all__ = ["VIDEO_EXTENSIONS", "is_video_path"]

#: lowercase file extensions, with the dot, of the video files vidpool looks for
VIDEO_EXTENSIONS: tuple[str, ...] = tuple(
    sorted(
        {
            # MP4/QuickTime family
            ".mp4", ".m4v", ".mov", ".qt", ".3gp", ".3g2", ".f4v",
            # Matroska/WebM, AVI, Flash, Windows Media
            ".mkv", ".webm", ".avi", ".divx", ".flv", ".wmv", ".asf",
            # MPEG program and transport streams, DVD
            ".mpg", ".mpeg", ".vob", ".ts", ".m2ts", ".mts", ".m2t",
            # raw MPEG-1/2 video elementary streams
            ".mpv", ".m1v", ".m2v",
            # broadcast and uncompressed
            ".mxf", ".dv", ".y4m",
        }
    )
)  # fmt: skip


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video file by its extension (:data:`VIDEO_EXTENSIONS`, any case)."""
    return os.path.splitext(os.fspath(path))[1].lower() in VIDEO_EXTENSIONS
