"""Which videos a captioning run covers: files, folders (recursive) and list files, each with a stable id.

An input is one of:

* a video file, taken whatever its extension;
* a folder, searched recursively for files with a video extension (:data:`VIDEO_EXTENSIONS`), hidden
  files and folders skipped, in sorted order;
* a list file (``.txt``, ``.lst``, ``.list``): one path per line, blank lines and ``#`` comments
  ignored, relative paths taken relative to the list file's folder. A listed path that is missing is
  kept: its video gets an ``error`` line in the output, and the run goes on.

The id of a video is a hash of its absolute, resolved path (:func:`video_id`): the same file named
as ``clip.mp4``, ``./clip.mp4`` or through a symlink gets the same id, and a restarted run recognises
it. A file edited in place keeps its id (delete its line from the output to caption it again); a file
moved or renamed gets a new one. Its content is never read, so a million-video manifest resolves in
seconds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vidpool.errors import InvalidArgumentError, VideoNotFoundError

__all__ = ["LIST_EXTENSIONS", "VIDEO_EXTENSIONS", "VideoItem", "resolve_inputs", "video_id"]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".m2ts", ".flv", ".wmv", ".3gp"}
)
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


@dataclass(frozen=True)
class VideoItem:
    """One video of a run: its ``path`` (absolute, as resolved) and stable ``id``."""

    path: str
    id: str


def video_id(path: str | os.PathLike) -> str:
    """The stable id of the video at ``path``: 16 hex digits of the SHA-1 of its resolved absolute path."""
    resolved = os.path.realpath(os.path.abspath(os.fspath(path)))
    return hashlib.sha1(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _item(path: str | os.PathLike) -> VideoItem:
    resolved = os.path.realpath(os.path.abspath(os.fspath(path)))
    return VideoItem(path=resolved, id=video_id(resolved))


def _walk(folder: Path, extensions: frozenset[str]) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in extensions:
                yield Path(root) / name


def _read_list(path: Path) -> Iterable[Path]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidArgumentError(
            f"list file {str(path)!r} is not UTF-8 text; it must hold one video path per line"
        ) from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(os.path.expanduser(line))
            yield entry if entry.is_absolute() else path.parent / entry


def resolve_inputs(
    inputs: Sequence[str | os.PathLike], *, extensions: Iterable[str] = VIDEO_EXTENSIONS
) -> list[VideoItem]:
    """The videos that ``inputs`` name, in order, each once (the first mention wins).

    Raises:
        VideoNotFoundError: an input named directly (not through a list file) does not exist.
        InvalidArgumentError: nothing was given, or a list file is not text.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise InvalidArgumentError("no inputs: give video files, folders or list files of video paths")
    exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    items: list[VideoItem] = []
    seen: set[str] = set()

    def add(path: Path) -> None:
        item = _item(path)
        if item.id not in seen:
            seen.add(item.id)
            items.append(item)

    for raw in inputs:
        path = Path(os.path.expanduser(os.fspath(raw)))
        if path.is_dir():
            for found in _walk(path, exts):
                add(found)
        elif path.is_file() and path.suffix.lower() in LIST_EXTENSIONS:
            for listed in _read_list(path):
                add(listed)
        elif path.exists():
            add(path)
        else:
            raise VideoNotFoundError(
                f"input {os.fspath(raw)!r} does not exist; give video files, folders or list files "
                f"({', '.join(sorted(LIST_EXTENSIONS))}) of video paths"
            )
    return items
