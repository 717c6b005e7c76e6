"""Decoding of uploaded files in a child process, so that no file can take the server down.

A native decoder can crash (decord segfaults on some damaged files) or hang inside C code; in the
server's own process either would end every user's session. Each upload is decoded by a short-lived
child process, forked from a server process that has the video stack imported already (so a decode
costs no import time), killed after ``timeout`` seconds, and ending on its own if the server goes.
Frames come back through a ``.npz`` file.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vidpool.errors import DecodeTimeoutError, VideoDecodeError, VidpoolError

__all__ = ["DecodedVideo", "VideoTooLongError", "decode_upload", "start_decoder"]


class VideoTooLongError(VideoDecodeError):
    """An upload longer than the demo's maximum duration."""


@dataclass
class DecodedVideo:
    """Frames sampled from an upload: ``frames`` uint8 ``[T, H, W, 3]``, ``timestamps`` float64 ``[T]``
    seconds, and the file's ``duration`` (seconds), ``width``, ``height`` and ``total_frames`` (its
    frame count, 0 when the container does not say)."""

    frames: np.ndarray
    timestamps: np.ndarray
    duration: float
    width: int
    height: int
    total_frames: int = 0


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # the fork server imports the video stack once; every decode forks from it, threads-free
        ctx.set_forkserver_preload(["vidpool.video", "vidpool.demo.decode"])
        return ctx
    return multiprocessing.get_context("spawn")


def start_decoder() -> None:
    """Start the fork server now (it imports the video stack), so that the first upload does not wait."""
    if _context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _decode_job(path: str, num_frames: int, max_side: int, max_duration: float | None, out: str) -> None:
    """In the child: probe, check the length, sample ``num_frames`` frames; write ``out`` (.npz) or
    ``out + ".json"`` with the error."""
    try:
        from vidpool.video import VideoReader

        with VideoReader(path, max_side=max_side) as reader:
            info = reader.info
            if max_duration is not None and info.duration > max_duration:
                raise VideoTooLongError(
                    f"this video is {info.duration:.0f} s long; this demo takes videos of up to "
                    f"{max_duration:g} s: trim it (ffmpeg -i in.mp4 -t {max_duration:g} -c copy out.mp4) "
                    "or start the demo with a larger --max-duration"
                )
            frames = reader.sample(min(num_frames, max(1, info.num_frames)))
        np.savez(
            out,
            frames=frames.frames.numpy(),
            timestamps=frames.timestamps.numpy(),
            meta=np.array([info.duration, info.width, info.height, info.num_frames or 0], dtype=np.float64),
        )
    except BaseException as exc:  # everything goes back to the parent as a message
        kind = type(exc).__name__ if isinstance(exc, VidpoolError) else "error"
        Path(out + ".json").write_text(json.dumps({"kind": kind, "message": str(exc) or repr(exc)}))


def _child(server: int, job: Callable[..., None], *args: object) -> None:
    """In the child: a watch that ends it when the ``server`` process goes (a server killed mid-decode
    leaves no decoder behind, even one stuck in C code), then ``job(*args)``. The watch follows the
    server itself: the child's parent may be the fork server, which can outlive it."""
    import threading

    from vidpool.bench.workers import exit_with

    threading.Thread(target=exit_with, args=(server,), daemon=True, name="server-watch").start()
    job(*args)


def decode_upload(
    path: str | os.PathLike,
    num_frames: int,
    *,
    max_side: int = 448,
    max_duration: float | None = None,
    timeout: float = 60.0,
    job: Callable[..., None] | None = None,
) -> DecodedVideo:
    """Sample ``num_frames`` frames (at most ``max_side`` pixels on a side) of ``path`` in a child process.

    Raises:
        VideoTooLongError: the video is longer than ``max_duration`` seconds.
        DecodeTimeoutError: the child did not finish within ``timeout`` seconds (it is killed).
        VideoDecodeError: the file is not a video the decoders can read, or the decoder crashed.

    ``job`` replaces the function the child runs (same arguments as ``_decode_job``; tests use it to
    crash a child on purpose).
    """
    work = tempfile.mkdtemp(prefix="vidpool-decode-")
    out = os.path.join(work, "frames.npz")
    try:
        child = _context().Process(
            target=_child,
            args=(
                os.getpid(),
                job or _decode_job,
                os.fspath(path),
                int(num_frames),
                int(max_side),
                max_duration,
                out,
            ),
            daemon=True,
            name="vidpool-decode",
        )
        child.start()
        child.join(timeout)
        if child.is_alive():
            child.kill()
            child.join(5)
            raise DecodeTimeoutError(
                f"decoding took longer than {timeout:g} s and was stopped; the file may be damaged: "
                "re-encode it (ffmpeg -i in.mp4 -c:v libx264 out.mp4) or try a shorter video"
            )
        if os.path.exists(out + ".json"):
            error = json.loads(Path(out + ".json").read_text())
            cls = VideoTooLongError if error["kind"] == "VideoTooLongError" else VideoDecodeError
            raise cls(error["message"])
        if child.exitcode != 0 or not os.path.exists(out):
            raise VideoDecodeError(
                f"the video decoder crashed on this file (exit code {child.exitcode}); "
                "re-encode it (ffmpeg -i in.mp4 -c:v libx264 out.mp4) and upload it again"
            )
        with np.load(out) as data:
            duration, width, height, total = (float(v) for v in data["meta"])
            return DecodedVideo(
                data["frames"], data["timestamps"], duration, int(width), int(height), int(total)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
