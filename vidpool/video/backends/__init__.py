"""Decoding backends: decord (preferred) and PyAV (always available with the ``video`` extra).

A backend decodes given frame indices of one video, in order, resized on decode and upright. Each yields
``(requested_index, decoded_index, frame)`` with ``frame`` uint8 ``[H, W, 3]``; ``decoded_index`` differs
from the request only when that frame cannot be decoded and a neighbour stands in. A backend may stop
early if the stream ends; the reader then fills the gap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from vidpool.errors import InvalidArgumentError
from vidpool.video.info import FrameIndex, VideoInfo

__all__ = ["BACKENDS", "Backend", "create_backend", "list_backends"]


class Backend(Protocol):
    name: str

    def decode(
        self, indices: np.ndarray, size: tuple[int, int], keyframes_only: bool = False
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Decode sorted unique ``indices`` (int64 ``[T]``) at ``size`` ``(H, W)`` of the upright frame."""
        ...

    def close(self) -> None: ...


def _pyav(path: Path, index: FrameIndex, info: VideoInfo, size: tuple[int, int] | None = None) -> Backend:
    from vidpool.video.backends.pyav_backend import PyAVBackend

    return PyAVBackend(path, index, info)


def _decord(path: Path, index: FrameIndex, info: VideoInfo, size: tuple[int, int] | None = None) -> Backend:
    from vidpool.video.backends.decord_backend import DecordBackend

    return DecordBackend(path, index, info, size)


BACKENDS = {"decord": _decord, "pyav": _pyav}


def list_backends() -> list[str]:
    """Backend names in order of preference."""
    return list(BACKENDS)


def create_backend(
    name: str, path: Path, index: FrameIndex, info: VideoInfo, size: tuple[int, int] | None = None
) -> Backend:
    """Open ``path`` with the backend called ``name``, ready to decode at ``size`` ``(H, W)`` if given
    (errors from the backend propagate)."""
    factory = BACKENDS.get(name)
    if factory is None:
        raise InvalidArgumentError(
            f"unknown video backend {name!r}; choose 'auto' or one of {list(BACKENDS)}"
        )
    return factory(path, index, info) if size is None else factory(path, index, info, size)
