"""``write_video``: the one way vidpool writes frames into a video file (H.264 or MPEG-4 part 2, with
PyAV), for test videos and the generated benchmark alike."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidpool.errors import InvalidArgumentError, require
from vidpool.video import mp4

__all__ = ["CODECS", "write_video"]

#: codec name -> PyAV encoder
CODECS = {"h264": "libx264", "mpeg4": "mpeg4"}
_STAMP_RATE = 90_000  # time base of files given per-frame times, as MPEG streams use


def _encoder_options(
    codec: str,
    preset: str,
    crf: int | None,
    keyframe_interval: int | None,
    bframes: bool | None,
    threads: int,
) -> dict[str, str]:
    """libx264 options: ``bframes`` ``None`` leaves the preset's choice, ``False`` turns them off."""
    if codec != "h264":
        return {}
    options = {"preset": preset}
    if crf is not None:
        options["crf"] = str(crf)
    if bframes is False:
        options["tune"] = "zerolatency"
    x264 = [f"threads={threads}"]
    if keyframe_interval:
        x264 += [f"keyint={keyframe_interval}", f"min-keyint={keyframe_interval}", "scenecut=0"]
    if bframes:
        x264.append("bframes=2")
    options["x264-params"] = ":".join(x264)
    return options


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    *,
    fps: float = 24,
    size: tuple[int, int] | None = None,
    codec: str = "h264",
    crf: int | None = None,
    preset: str = "ultrafast",
    keyframe_interval: int | None = None,
    bframes: bool | None = None,
    frame_times: Sequence[float] | None = None,
    rotation: int = 0,
    faststart: bool = False,
    threads: int = 2,
) -> Path:
    """Write upright uint8 RGB frames ``[H, W, 3]`` (any iterable: they are encoded as they come) into
    ``path`` (``.mp4``, ``.mkv``, ...: the container follows the extension); return the path.

    Args:
        fps: nominal frame rate.
        size: ``(width, height)``, needed only when there are no frames (a valid file whose video stream
            holds none); otherwise that of the first frame, which every frame must share.
        codec: ``"h264"`` (libx264, even sizes, ``yuv420p``) or ``"mpeg4"``.
        crf: H.264 quality (lower is closer to the frames; the encoder's default otherwise).
        preset: x264 preset (speed/size trade-off).
        keyframe_interval: frames between keyframes; ``None`` leaves the encoder's choice.
        bframes: H.264 B-frames (decode order then differs from presentation order); ``None`` leaves
            the preset's choice (``"ultrafast"`` has none).
        frame_times: per-frame presentation times in seconds (increasing) for a variable frame rate.
        rotation: display rotation in degrees counter-clockwise (a multiple of 90), stored as metadata
            as phones do: the frames are stored turned, so that only readers honouring it show them upright.
        faststart: put the MP4 index (moov) at the front, as streaming sites do.
        threads: encoder threads (x264 output is the same for the same count).
    """
    av = require("av", "video", "Writing videos")
    if codec not in CODECS:
        raise InvalidArgumentError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    if rotation % 90:
        raise InvalidArgumentError(f"rotation must be a multiple of 90 degrees, got {rotation}")
    frames = iter(frames)
    first = next(frames, None)
    if first is not None:
        size = (int(first.shape[1]), int(first.shape[0]))
    if size is None:
        raise InvalidArgumentError(
            "no frames to write: pass size=(width, height) to write a video without frames"
        )
    width, height = int(size[0]), int(size[1])
    if codec == "h264" and (width % 2 or height % 2):
        raise InvalidArgumentError(
            f"H.264 needs an even frame size, got {width}x{height}; crop or pad a pixel"
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    turns = (rotation % 360) // 90
    with av.open(str(path), mode="w", options={"movflags": "+faststart"} if faststart else {}) as container:
        stream = container.add_stream(CODECS[codec], rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = (height, width) if turns % 2 else (width, height)
        stream.pix_fmt = "yuv420p"
        if codec == "mpeg4":
            if keyframe_interval:
                stream.codec_context.gop_size = keyframe_interval
            stream.codec_context.bit_rate = max(200_000, width * height * 8)
        stream.options = _encoder_options(codec, preset, crf, keyframe_interval, bframes, threads)
        if frame_times is not None:
            stream.codec_context.time_base = Fraction(1, _STAMP_RATE)
        # Older PyAV (12) cannot attach a display matrix: it goes into the MP4 track header afterwards
        later_rotation = bool(turns) and not hasattr(stream, "set_display_rotation")
        if turns and not later_rotation:
            stream.set_display_rotation(rotation % 360)
        count = 0
        for i, image in enumerate(itertools.chain([] if first is None else [first], frames)):
            image = np.asarray(image)
            if image.shape != (height, width, 3) or image.dtype != np.uint8:
                raise InvalidArgumentError(
                    f"frame {i} is {image.dtype} {image.shape}; every frame must be uint8 [{height}, {width}, 3]"
                )
            if turns:  # stored so that the display rotation brings it back upright
                image = np.rot90(image, -turns)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if frame_times is not None:
                if i >= len(frame_times):
                    raise InvalidArgumentError(f"frame_times gives {len(frame_times)} times for more frames")
                frame.pts = round(float(frame_times[i]) * _STAMP_RATE)
                frame.time_base = Fraction(1, _STAMP_RATE)
            else:
                frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
            count += 1
        if count == 0:
            container.start_encoding()  # a valid file whose video stream holds no frames
        for packet in stream.encode():
            container.mux(packet)
    if frame_times is not None and len(frame_times) != count:
        raise InvalidArgumentError(f"frame_times gives {len(frame_times)} times for {count} frames")
    if later_rotation and not mp4.set_rotation(str(path), rotation % 360):
        raise InvalidArgumentError(
            f"this PyAV cannot write a display rotation into {path.suffix or 'this kind of'} files; "
            "write an .mp4 or upgrade PyAV"
        )
    return path
