"""``VideoReader``: sampled, resized, upright frames with their true timestamps.

The frame index (every frame's presentation time and the keyframes) is built once per reader; sampling
turns times into frame indices on it, so every backend decodes the same frames for the same request and
variable-frame-rate files are sampled by real time. Decoding runs in a worker thread with a stall
timeout; with ``backend="auto"`` a decord failure or stall falls back to PyAV for the rest of the request.
Keyframe sampling (``exact=False``) always seeks with PyAV, the fastest way to get single keyframes.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import torch

from vidpool.errors import DecodeTimeoutError, InvalidArgumentError, VideoDecodeError, VidpoolError
from vidpool.video.backends import Backend, create_backend, list_backends
from vidpool.video.frames import Frames
from vidpool.video.info import FrameIndex, VideoInfo, check_path, open_metadata
from vidpool.video.sampling import decode_size, sample_indices, sample_times, snap_to_keyframes
from vidpool.video.timeout import DECODE_TIMEOUT, call_with_timeout, iterate_with_timeout

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["DEFAULT_MAX_SIDE", "Frames", "SamplingArgs", "VideoReader"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_SIDE = 4096
# Requests averaging this many frames per keyframe interval are decoded straight through with PyAV.
_DENSE_PER_GOP = 3


class SamplingArgs(TypedDict, total=False):
    """Which frames to take, the keywords :meth:`VideoReader.frame_indices`, :meth:`~VideoReader.sample` and
    :meth:`~VideoReader.chunks` share: ``fps``, ``max_frames``, ``start`` and ``end`` (seconds) and
    ``exact`` (``False``: nearest keyframes)."""

    fps: float | None
    max_frames: int | None
    start: float | None
    end: float | None
    exact: bool


class VideoReader:
    """Sample frames from one video file.

    Args:
        path: the video file.
        backend: ``"auto"`` (decord if installed and it agrees with the file's frame count, PyAV
            otherwise and whenever decord fails; requests of several frames per keyframe interval are
            decoded straight through by PyAV, which is faster there), ``"decord"`` or ``"pyav"``.
        timeout: seconds any decode may go without producing a frame before
            :class:`~vidpool.errors.DecodeTimeoutError`; ``None`` waits forever.
        max_side: longest side of output frames; larger frames are downscaled on decode.

    Use as a context manager, or call :meth:`close`. A reader is not thread-safe: use one per thread.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        backend: str = "auto",
        timeout: float | None = DECODE_TIMEOUT,
        max_side: int | None = DEFAULT_MAX_SIDE,
    ):
        if backend != "auto" and backend not in list_backends():
            raise InvalidArgumentError(
                f"unknown video backend {backend!r}; choose 'auto' or one of {list_backends()}"
            )
        if timeout is not None and not timeout > 0:
            raise InvalidArgumentError(f"timeout must be > 0 seconds or None, got {timeout}")
        self.path = check_path(path)
        self.timeout = timeout
        self.max_side = max_side
        self._requested = backend
        self._active = 0
        self._backend: Backend | None = None
        self._keys: Backend | None = None
        self._dense: Backend | None = None
        info, self._index, self._spare = call_with_timeout(
            lambda: open_metadata(self.path), timeout, f"reading {str(self.path)!r}"
        )
        self._info = info
        if backend == "auto":
            # Opened on first use: keyframe and dense sampling never need it.
            self._info = replace(info, backend=self._likely_backend())
        else:
            self._current_backend(decode_size(info.width, info.height, None, max_side))

    def _likely_backend(self) -> str:
        if self._info.rotation or importlib.util.find_spec("decord") is None:
            return "pyav"
        from vidpool.video.backends.decord_backend import untrusted_reason

        return "pyav" if untrusted_reason(self._index, self._info, self.path) else "decord"

    @property
    def info(self) -> VideoInfo:
        """Metadata of the video; ``backend`` names the backend for sparse exact sampling (with
        ``"auto"``, the one it will try first until the first such decode settles it)."""
        return self._info

    @property
    def index(self) -> FrameIndex:
        """Per-frame presentation times and keyframes."""
        return self._index

    def _open_backend(self, size: tuple[int, int] | None = None) -> Backend:
        names = list_backends() if self._requested == "auto" else [self._requested]
        if self._requested == "auto" and self._likely_backend() == "pyav":
            names = ["pyav"]  # decord cannot resize rotated frames on decode, nor read some files right
        errors = []
        for name in names:
            try:
                backend = create_backend(name, self.path, self._index, self._info, size)
            except VidpoolError as exc:
                if self._requested != "auto":
                    raise
                errors.append(f"{name}: {exc}")
                continue
            count = getattr(backend, "frame_count", self._index.num_frames)
            if count != self._index.num_frames:
                msg = (
                    f"{name} counts {count} frames in {self.path} but the file holds {self._index.num_frames}"
                )
                if self._requested != "auto":
                    logger.warning("%s; frames are clamped to the real count", msg)
                    return backend
                backend.close()
                errors.append(msg)
                continue
            return backend
        raise VideoDecodeError(f"no backend can decode {str(self.path)!r}: " + "; ".join(errors))

    def _current_backend(self, size: tuple[int, int] | None = None) -> Backend:
        if self._backend is None:
            try:
                self._backend = call_with_timeout(
                    lambda: self._open_backend(size), self.timeout, f"opening {self.path}"
                )
            except DecodeTimeoutError:
                if self._requested != "auto":
                    raise
                logger.warning("opening %s with decord stalled; using PyAV", self.path)
                self._backend = create_backend("pyav", self.path, self._index, self._info)
            self._info = replace(self._info, backend=self._backend.name)
        return self._backend

    def _is_dense(self, indices: np.ndarray) -> bool:
        # Several frames per keyframe interval: the whole stretch gets decoded anyway, and PyAV decoding
        # straight through runs at the full decode rate, faster than decord's get_batch (see the README).
        gops = np.searchsorted(self._index.keyframes, indices, side="right")
        return indices.size >= _DENSE_PER_GOP * np.unique(gops).size

    def _sequential_decoder(self) -> Backend:
        if self._backend is not None and self._backend.name == "pyav":
            return self._backend
        if self._dense is None:
            from vidpool.video.backends.pyav_backend import PyAVBackend

            self._dense = PyAVBackend(self.path, self._index, self._info)
        return self._dense

    def _keyframe_decoder(self) -> Backend:
        # Keyframes decode fastest with PyAV seeking, several at once (decord's get_batch is several
        # times slower on them), whatever backend decodes exact frames.
        if self._keys is None:
            from vidpool.video.backends.keyframes import KeyframeDecoder

            # The container that read the metadata becomes the first keyframe decoder.
            opened, self._spare = self._spare, None
            self._keys = KeyframeDecoder(self.path, self._index, self._info, opened=opened)
        return self._keys

    def _drop(self, backend: Backend) -> None:
        # A worker may still be inside this decoder: let it go without closing it under the worker.
        if self._backend is backend:
            self._backend = None
        if self._keys is backend:
            self._keys = None
        if self._dense is backend:
            self._dense = None

    def close(self) -> None:
        """Release the decoders."""
        for backend in (self._backend, self._keys, self._dense):
            if backend is not None and not self._active:
                backend.close()
        self._backend = self._keys = self._dense = None
        if self._spare is not None:
            self._spare[0].close()
            self._spare = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def frame_indices(
        self,
        num_frames: int | None = None,
        *,
        fps: float | None = None,
        max_frames: int | None = None,
        start: float | None = None,
        end: float | None = None,
        exact: bool = True,
    ) -> np.ndarray:
        """Frame indices int64 ``[T]`` that :meth:`sample` with these arguments decodes (nothing is decoded).

        The arguments are those of every sampling method (:class:`SamplingArgs`; see :meth:`sample`).
        """
        index = self._index
        if exact:
            spec = {
                "num_frames": num_frames,
                "fps": fps,
                "max_frames": max_frames,
                "start": start,
                "end": end,
            }
            return sample_indices(index.times, index.duration, **spec)
        times = sample_times(index.duration, num_frames, fps, max_frames, start, end)
        indices = snap_to_keyframes(times, index.times, index.keyframes)
        # A rate above the video's own would only repeat frames.
        return np.unique(indices) if fps is not None else indices

    def _decode_unique(
        self, unique: np.ndarray, size: tuple[int, int], keyframes_only: bool, prefetch: int
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        remaining = unique
        while remaining.size:
            if keyframes_only:
                backend = self._keyframe_decoder()
            elif self._requested == "auto" and self._is_dense(remaining):
                backend = self._sequential_decoder()
            else:
                backend = self._current_backend(size)
            done = -1

            def make_iter(backend=backend, remaining=remaining):
                return backend.decode(remaining, size, keyframes_only)

            try:
                for item in iterate_with_timeout(
                    make_iter,
                    self.timeout,
                    f"decoding {str(self.path)!r} with {backend.name}",
                    prefetch,
                    on_abandon=lambda backend=backend: self._drop(backend),
                ):
                    done = item[0]
                    yield item
                return
            except (VideoDecodeError, DecodeTimeoutError) as exc:
                if self._requested != "auto" or backend.name == "pyav":
                    raise
                logger.warning("decord failed on %s (%s); continuing with PyAV", self.path, exc)
                self._drop(backend)
                self._fall_back_to_pyav()
                remaining = remaining[remaining > done]

    def _fall_back_to_pyav(self) -> None:
        self._backend = create_backend("pyav", self.path, self._index, self._info)
        self._info = replace(self._info, backend="pyav")

    def _iter_frames(
        self, requested: np.ndarray, size: tuple[int, int], keyframes_only: bool, prefetch: int
    ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Yield ``(position, decoded_index, frame)`` for every position of sorted ``requested``, in order."""
        n = requested.shape[0]
        p = 0
        last: tuple[int, np.ndarray] | None = None
        pending: list[int] = []
        self._active += 1
        try:
            for target, actual, arr in self._decode_unique(
                np.unique(requested), size, keyframes_only, prefetch
            ):
                while p < n and requested[p] < target:  # frames the decoder could not produce
                    if last is None:
                        pending.append(p)
                    else:
                        yield p, last[0], last[1]
                    p += 1
                for q in pending:
                    yield q, actual, arr
                pending = []
                while p < n and requested[p] == target:
                    yield p, actual, arr
                    p += 1
                last = (actual, arr)
        finally:
            self._active -= 1
        if last is None:
            raise VideoDecodeError(
                f"no frame of {str(self.path)!r} could be decoded; the file is damaged. "
                "Re-encode it, e.g. `ffmpeg -i in.mp4 -c:v libx264 out.mp4`"
            )
        for q in range(p, n):
            yield q, last[0], last[1]

    def _request(self, resize, num_frames, spec: SamplingArgs) -> tuple[np.ndarray, tuple[int, int]]:
        indices = self.frame_indices(num_frames, **spec)
        size = decode_size(self._info.width, self._info.height, resize, self.max_side)
        return indices, size

    def _frames(self, out: np.ndarray, actual: list[int]) -> Frames:
        times = torch.from_numpy(self._index.times[np.asarray(actual, dtype=np.int64)].copy())
        return Frames(frames=torch.from_numpy(out), timestamps=times.to(torch.float64), indices=list(actual))

    def sample(
        self,
        num_frames: int | None = None,
        *,
        resize: int | tuple[int, int] | None = None,
        **spec: Unpack[SamplingArgs],
    ) -> Frames:
        """Decode sampled frames into ``Frames`` (``frames`` uint8 ``[T, H, W, 3]``).

        ``num_frames=N``: N segment-centred frames over ``[start, end]`` (the whole video by default); the
        result always has N frames, repeating frames of videos shorter than N. ``fps=F``: frames ``1/F`` s
        apart, at most ``max_frames`` (uniform ``max_frames`` beyond that), never repeating a frame. ``exact=False`` takes the
        keyframe nearest each sampling time instead (much faster on long videos; timestamps are those of
        the keyframes). ``resize``: short side in pixels (int) or ``(H, W)``.
        """
        indices, (h, w) = self._request(resize, num_frames, spec)
        exact = spec.get("exact", True)
        # Filled with numpy: torch's copy kernels wake its worker threads, which then spin on the
        # cores the decoder threads need.
        out = np.empty((indices.shape[0], h, w, 3), dtype=np.uint8)
        actual = [0] * indices.shape[0]
        for p, i, arr in self._iter_frames(indices, (h, w), not exact, prefetch=8):
            out[p] = arr
            actual[p] = i
        return self._frames(out, actual)

    def chunks(
        self,
        chunk_size: int = 32,
        num_frames: int | None = None,
        *,
        resize: int | tuple[int, int] | None = None,
        **spec: Unpack[SamplingArgs],
    ) -> Iterator[Frames]:
        """The frames :meth:`sample` returns for the same arguments, as ``Frames`` of ``chunk_size`` frames
        (the last may be shorter). At most about two chunks are in memory at once; the next chunk is
        decoded while the caller works on the current one."""
        if chunk_size < 1:
            raise InvalidArgumentError(f"chunk_size must be >= 1, got {chunk_size}")
        indices, (h, w) = self._request(resize, num_frames, spec)
        exact = spec.get("exact", True)
        total = indices.shape[0]
        out: np.ndarray | None = None
        actual: list[int] = []
        base = 0
        for p, i, arr in self._iter_frames(indices, (h, w), not exact, prefetch=chunk_size):
            if out is None:
                out = np.empty((min(chunk_size, total - base), h, w, 3), dtype=np.uint8)
            out[p - base] = arr
            actual.append(i)
            if len(actual) == out.shape[0]:
                yield self._frames(out, actual)
                base += out.shape[0]
                out, actual = None, []
