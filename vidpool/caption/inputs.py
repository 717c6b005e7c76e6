"""Which videos a captioning run covers: files, folders (recursive) and list files, each with a stable id.

An input is one of:

* a video file, taken whatever its extension;
* a folder, searched recursively for files with a video extension (:data:`VIDEO_EXTENSIONS`), hidden
  files and folders skipped, in sorted order; the other files it holds are not captioned, and
  :func:`scan_inputs` names them (``vidpool caption`` says so before it starts and in its summary);
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
from dataclasses import dataclass, field
from pathlib import Path

from vidpool.errors import InvalidArgumentError, VideoNotFoundError
from vidpool.video import VIDEO_EXTENSIONS

__all__ = [
    "LIST_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Inputs",
    "VideoItem",
    "resolve_inputs",
    "scan_inputs",
    "video_id",
]

LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})


@dataclass(frozen=True)
class VideoItem:
    """One video of a run: its ``path`` (absolute, as resolved) and stable ``id``."""

    path: str
    id: str


@dataclass(frozen=True)
class Inputs:
    """What a run's inputs name: the ``videos`` to caption, and the files found in its folders that are
    not videos (``not_videos``: each named from its folder input as given, e.g. ``videos/notes.txt``)."""

    videos: list[VideoItem] = field(default_factory=list)
    not_videos: list[str] = field(default_factory=list)


def video_id(path: str | os.PathLike) -> str:
    """The stable id of the video at ``path``: 16 hex digits of the SHA-1 of its resolved absolute path."""
    resolved = os.path.realpath(os.path.abspath(os.fspath(path)))
    return hashlib.sha1(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _item(path: str | os.PathLike) -> VideoItem:
    resolved = os.path.realpath(os.path.abspath(os.fspath(path)))
    return VideoItem(path=resolved, id=video_id(resolved))


def _is_video(name: str, extensions: frozenset[str]) -> bool:
    """Whether a folder's file ``name`` is taken as a video (the one rule of the scan)."""
    return os.path.splitext(name)[1].lower() in extensions


def _walk(folder: Path, extensions: frozenset[str]) -> Iterable[tuple[Path, bool]]:
    """``(path, is_video)`` of every file under ``folder``, hidden files and folders left out, sorted."""
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield Path(root) / name, _is_video(name, extensions)


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
    """The videos that ``inputs`` name, in order, each once (:func:`scan_inputs`' ``videos``)."""
    return scan_inputs(inputs, extensions=extensions).videos


def scan_inputs(
    inputs: Sequence[str | os.PathLike], *, extensions: Iterable[str] = VIDEO_EXTENSIONS
) -> Inputs:
    """The videos that ``inputs`` name, in order, each once (the first mention wins), and the files
    their folders hold that are not videos.

    Raises:
        VideoNotFoundError: an input named directly (not through a list file) does not exist.
        InvalidArgumentError: nothing was given, or a list file is not text.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    if not inputs:
        raise InvalidArgumentError("no inputs: give video files, folders or list files of video paths")
    exts = frozenset(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
    found = Inputs()
    seen: set[str] = set()

    def add(path: Path) -> None:
        item = _item(path)
        if item.id not in seen:
            seen.add(item.id)
            found.videos.append(item)

    for raw in inputs:
        path = Path(os.path.expanduser(os.fspath(raw)))
        if path.is_dir():
            for file, is_video in _walk(path, exts):
                if is_video:
                    add(file)
                else:
                    found.not_videos.append(os.path.join(os.fspath(raw), os.path.relpath(file, path)))
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
    return found
