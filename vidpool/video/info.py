"""Video metadata and the frame index every backend samples from.

The index lists the presentation time of every frame and which frames are keyframes. It comes from
the MP4/MOV sample table where that is complete and checked (the keyframes' packets are read; a
5-minute 720p file indexes in about 15 ms), and otherwise from demuxing every packet (no decoding;
tens of milliseconds), so the frame count is what the file really holds rather than what its header
claims: decord's ``get_batch`` deadlocks when asked for frames a container over-reports, and every
decord request is clamped to this index. The display rotation comes from the MP4/MOV track header, or
from decoding the first packet alone.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from vidpool.errors import InvalidArgumentError, VideoDecodeError, VideoNotFoundError, require
from vidpool.video import mp4

__all__ = [
    "MAX_PIXELS",
    "FrameIndex",
    "VideoInfo",
    "build_index",
    "check_path",
    "clear_metadata_cache",
    "open_container",
    "open_metadata",
    "probe",
    "read_metadata_cached",
]

# Frames above this many pixels are refused: one decoded frame alone would need gigabytes.
MAX_PIXELS = 16384 * 16384


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds.

    ``width`` and ``height`` are those of upright frames (after applying ``rotation``, the display
    rotation in degrees counter-clockwise that the file asks for). ``num_frames`` counts frames that
    are present in the file; ``duration`` (seconds) runs from the first frame to the end of the last.
    """

    path: str
    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    codec: str
    rotation: int
    backend: str
    variable_frame_rate: bool = False
    num_keyframes: int = 0


@dataclass(frozen=True)
class FrameIndex:
    """Per-frame timing of one video stream, in presentation order.

    ``pts`` int64 ``[N]`` in ``time_base`` units; ``times`` float64 ``[N]`` seconds from the first frame;
    ``keyframes`` int64 ``[K]`` sorted frame indices that decoding can start from.
    """

    pts: np.ndarray
    times: np.ndarray
    keyframes: np.ndarray
    time_base: Fraction
    frame_duration: float

    @property
    def num_frames(self) -> int:
        return int(self.pts.shape[0])

    @property
    def duration(self) -> float:
        return float(self.times[-1] + self.frame_duration) if self.num_frames else 0.0


def check_path(path: str | os.PathLike) -> Path:
    """Fail early, with a clear message, on paths that cannot be a video."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentError(f"video path must be a str or os.PathLike, got {type(path).__name__}")
    p = Path(path)
    if not p.exists():
        raise VideoNotFoundError(f"video file not found: {str(p)!r}; check the path")
    if not p.is_file():
        raise VideoNotFoundError(f"{str(p)!r} is not a file (a directory?); pass the path of a video file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(f"{str(p)!r} is empty (0 bytes); the download or copy did not finish")
    return p


_ISO_BMFF_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"}


def _is_iso_bmff(path: Path) -> bool:
    """Whether ``path`` starts like an MP4/MOV file (its first box has a known ISO-BMFF type)."""
    try:
        with open(path, "rb") as file:
            return file.read(8)[4:8] in _ISO_BMFF_BOXES
    except OSError:
        return False


def open_container(path: Path):
    """Open ``path`` with PyAV and return ``(container, video_stream)``; map failures to VideoDecodeError.

    MP4/MOV headers describe the stream fully, so there FFmpeg's stream probing is told not to decode
    (``skip_frame=all`` for the probe only; decoding later is unaffected). Probing otherwise decodes
    the first frames, which costs as much as decoding a keyframe: 13 ms of a 14 ms open for 720p
    H.264. Where the header leaves the frame size unknown, the file is opened again with the full probe.
    """
    av = require("av", "video", "Reading videos")
    try:
        if _is_iso_bmff(path):
            container = av.open(str(path), mode="r", metadata_errors="ignore", options={"skip_frame": "all"})
            video = container.streams.video
            if video and video[0].codec_context.width and video[0].codec_context.height:
                return container, video[0]
            container.close()
        container = av.open(str(path), mode="r", metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise VideoDecodeError(
            f"cannot open {str(path)!r} as a video ({exc.strerror or exc}). The file is not a video container "
            "or is truncated (an unfinished download stores its index at the end); re-download it or "
            "re-encode it, e.g. `ffmpeg -i in.mp4 -c:v libx264 out.mp4`"
        ) from exc
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        raise VideoDecodeError(
            f"{str(path)!r} has no video stream holding frames (streams found: {', '.join(kinds)}); "
            "pass a file with video (an audio-only file or an empty recording cannot be sampled)"
        )
    stream = container.streams.video[0]
    return container, stream


def _first_frame(container, stream):
    """The first frame, decoded from the first packet alone (one frame's work, no decoder threads)."""
    stream.thread_type = "NONE"
    container.seek(0, stream=stream)
    codec = stream.codec_context
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        frames = codec.decode(packet) + codec.decode(None)
        return frames[0] if frames else None
    return None


def _rotation(container, stream) -> int:
    """Display rotation in degrees counter-clockwise, from the track header of MP4/MOV files, else from
    the first frame (PyAV exposes the display matrix on decoded frames only), or the stream's tags."""
    rotation = None
    try:
        if "mp4" in container.format.name.split(","):
            rotation = mp4.rotation(container.name, stream.id)
        if rotation is None:
            frame = _first_frame(container, stream)
            rotation = round(frame.rotation) if frame is not None else 0
    except Exception:
        rotation = 0
    if not rotation:
        tag = (stream.metadata or {}).get("rotate")
        if tag and tag.lstrip("-").isdigit():
            rotation = -int(tag)  # the legacy tag is clockwise
    return rotation % 360 // 90 * 90


# AVIndexEntry flags (libavformat/avformat.h)
_INDEX_KEYFRAME = 0x0001
_INDEX_DISCARD = 0x0002


def _packet_pts(container, stream, stamp: int) -> int | None:
    """Presentation time of the packet whose decode time is ``stamp`` (a keyframe), read after a seek.

    Seeking goes by presentation time: forward from the decode time finds this keyframe.
    """
    container.seek(stamp, stream=stream, backward=False, any_frame=False)
    packet = next((q for q in container.demux(stream) if q.size), None)
    if packet is None or packet.dts != stamp or packet.pts is None:
        return None
    return int(packet.pts)


def _mp4_offsets(container, stream, dts: np.ndarray, keyframe: np.ndarray) -> np.ndarray | None:
    """Presentation minus decode time of every frame (decode order) of an MP4/MOV track, as demuxing
    gives it: the ``ctts`` composition offsets plus one constant FFmpeg adds (for negative offsets or
    an edit list), read off the first keyframe's packet and checked on the middle and last ones.
    ``None`` where the box cannot be read or the check fails."""
    if "mp4" not in container.format.name.split(","):
        return None
    offsets = mp4.composition_offsets(container.name, stream.id)
    if offsets is None or offsets.size != dts.size:
        return None
    keys = np.flatnonzero(keyframe)
    probes = sorted({int(keys[0]), int(keys[keys.size // 2]), int(keys[-1])})
    shifts = set()
    for i in probes:
        pts = _packet_pts(container, stream, int(dts[i]))
        if pts is None:
            return None
        shifts.add(pts - int(dts[i] + offsets[i]))
    return offsets + shifts.pop() if len(shifts) == 1 else None


def _index_from_entries(container, stream) -> tuple[np.ndarray, np.ndarray] | None:
    """Frame ``pts`` and keyframe flags from the container's own index (MP4/MOV), without demuxing the
    frames; ``None`` where that index cannot be trusted to give what demuxing every packet gives.

    The index holds decode times and where each frame's data lies (a file cut short is demuxed).
    Keyframes' presentation times come from the ``ctts`` box (checked against three packets) or
    else from reading each keyframe's packet. Presentation times are the decode times
    shifted by the first frame's reordering delay when decode times are evenly spaced (constant frame
    rate: the frames fill that grid), or when no frame is reordered and every keyframe has that delay;
    otherwise every packet is demuxed.
    """
    av = require("av", "video", "Reading videos")
    entries = stream.index_entries
    count = len(entries)
    if count < 2 or count != stream.frames:
        return None
    # one read per field (building the entry objects dominates: 7,200 entries in 2.5 ms)
    es = entries[:]
    dts, pos, size, flags = np.array(
        [[e.timestamp for e in es], [e.pos for e in es], [e.size for e in es], [e.flags for e in es]],
        dtype=np.int64,
    )
    if np.any(flags & _INDEX_DISCARD) or np.any(size <= 0):
        return None
    keyframe = (flags & _INDEX_KEYFRAME) != 0
    steps = np.diff(dts)
    if steps.min() <= 0 or not keyframe[0] or int((pos + size).max()) > os.path.getsize(container.name):
        return None  # reordered decode times, or a file cut short of the frames its index lists
    key_dts = dts[keyframe]
    try:
        frame_offsets = _mp4_offsets(container, stream, dts, keyframe)
        if frame_offsets is not None:
            key_pts = (key_dts + frame_offsets[keyframe]).tolist()
            reordered = bool(np.any(frame_offsets != frame_offsets[0]))
        else:
            # Each keyframe's packet, read after a seek to it (a demuxer that skips packets may
            # misplace the presentation times of the ones it returns).
            key_pts = [_packet_pts(container, stream, stamp) for stamp in key_dts.tolist()]
            if None in key_pts:
                return None
            reordered = bool(stream.codec_context.has_b_frames) or "mp4" in container.format.name.split(",")
    except (av.error.FFmpegError, EOFError, OSError):
        return None
    offsets = np.asarray(key_pts) - key_dts
    if steps.max() != steps.min() and (reordered or np.any(offsets != offsets[0])):
        return None
    pts = dts + offsets[0]
    where = np.searchsorted(pts, key_pts)
    if np.any(where >= count) or np.any(pts[np.minimum(where, count - 1)] != key_pts):
        return None  # a keyframe off the grid
    keys = np.zeros(count, dtype=bool)
    keys[where] = True
    if int(keys.sum()) != len(key_pts):
        return None
    return pts, keys


def _demux_index(container, stream) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``pts`` and keyframe flags of every packet, in presentation order."""
    av = require("av", "video", "Reading videos")
    pts_list: list[int] = []
    key_list: list[bool] = []
    with contextlib.suppress(av.error.FFmpegError):
        container.seek(0, stream=stream)
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None:
                continue
            pts_list.append(int(stamp))
            key_list.append(bool(packet.is_keyframe))
    except (av.error.FFmpegError, EOFError, OSError):
        pass
    pts = np.asarray(pts_list, dtype=np.int64)
    keys = np.asarray(key_list, dtype=bool)
    order = np.argsort(pts, kind="stable")
    pts, keys = pts[order], keys[order]
    if pts.size:
        unique = np.concatenate([[True], np.diff(pts) > 0])
        pts, keys = pts[unique], keys[unique]
    return pts, keys


def build_index(container, stream, demux: bool = False) -> FrameIndex:
    """The :class:`FrameIndex` of ``stream``: from the container's index where it is complete (MP4/MOV),
    else (or with ``demux=True``) by demuxing every packet. Nothing is decoded.

    A truncated or damaged tail ends the index at the last packet that could be read.
    """
    found = None if demux else _index_from_entries(container, stream)
    pts, keys = found if found is not None else _demux_index(container, stream)
    time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 90_000)
    times = (pts - (pts[0] if pts.size else 0)).astype(np.float64) * float(time_base)
    keyframes = np.flatnonzero(keys).astype(np.int64)
    if pts.size and (keyframes.size == 0 or keyframes[0] != 0):
        keyframes = np.concatenate([[0], keyframes]).astype(np.int64)
    for array in (pts, times, keyframes):
        array.flags.writeable = False  # shared by every reader of the file
    if pts.size > 1:
        frame_duration = float(np.median(np.diff(times)))
    else:
        rate = stream.average_rate or stream.guessed_rate or 25
        frame_duration = 1.0 / float(rate)
    return FrameIndex(pts, times, keyframes, time_base, frame_duration)


def read_metadata(path: Path, backend: str = "pyav", keep_open: bool = False):
    """Open, index and describe a video; raise a :class:`~vidpool.errors.VideoError` if it is unusable.

    Returns ``(info, index)``, or with ``keep_open=True`` ``(info, index, (container, video_stream))``,
    still open for the caller to decode with and close.
    """
    container, stream = open_container(path)
    keep = False
    try:
        coded_w, coded_h = int(stream.codec_context.width), int(stream.codec_context.height)
        codec = stream.codec_context.name
        if coded_w * coded_h > MAX_PIXELS:
            raise VideoDecodeError(
                f"{str(path)!r} is {coded_w}x{coded_h}, above the {MAX_PIXELS:,}-pixel limit; "
                "downscale it first, e.g. `ffmpeg -i in.mp4 -vf scale=-2:1080 out.mp4`"
            )
        index = build_index(container, stream)
        if index.num_frames == 0:
            raise VideoDecodeError(
                f"{str(path)!r} has a video stream with no decodable frames; the file is empty or damaged"
            )
        rotation = _rotation(container, stream)
        keep = keep_open
    finally:
        if not keep:
            container.close()
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    diffs = np.diff(index.times)
    vfr = bool(diffs.size > 1 and np.abs(diffs - index.frame_duration).max() > 0.1 * index.frame_duration)
    duration = index.duration
    info = VideoInfo(
        path=str(path),
        duration=duration,
        fps=index.num_frames / duration if duration > 0 else 0.0,
        num_frames=index.num_frames,
        width=width,
        height=height,
        codec=codec,
        rotation=rotation,
        backend=backend,
        variable_frame_rate=vfr,
        num_keyframes=int(index.keyframes.size),
    )
    return (info, index, (container, stream)) if keep_open else (info, index)


# probe() and VideoReader on the same unchanged file (as a plan followed by a run does) index it once.
_CACHE_SIZE = 8
_cache: OrderedDict[tuple, tuple[VideoInfo, FrameIndex]] = OrderedDict()
_cache_lock = threading.Lock()


def clear_metadata_cache() -> None:
    """Forget the metadata and frame indices of recently read files."""
    with _cache_lock:
        _cache.clear()


def read_metadata_cached(path: Path) -> tuple[VideoInfo, FrameIndex]:
    """:func:`read_metadata`, remembered for the last few files (keyed by path, size and mtime)."""
    info, index, opened = open_metadata(path)
    if opened is not None:
        opened[0].close()
    return info, index


def open_metadata(path: Path) -> tuple[VideoInfo, FrameIndex, tuple | None]:
    """:func:`read_metadata_cached`, plus the ``(container, video_stream)`` it opened (the caller closes
    it), or ``None`` where the file was remembered and not opened."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
    if hit is not None:
        info, index = hit
        return replace(info, path=str(path)), index, None
    info, index, opened = read_metadata(path, keep_open=True)
    with _cache_lock:
        _cache[key] = (info, index)
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return info, index, opened


def probe(path: str | os.PathLike, timeout: float | None = 30.0) -> VideoInfo:
    """Describe the video at ``path``: frames are counted, and only the first frame is decoded.

    Raises :class:`~vidpool.errors.VideoNotFoundError`, :class:`~vidpool.errors.VideoDecodeError` or
    :class:`~vidpool.errors.DecodeTimeoutError` with a message that says what to do.
    """
    from vidpool.video.timeout import call_with_timeout

    p = check_path(path)
    info, _ = call_with_timeout(lambda: read_metadata_cached(p), timeout, f"probing {str(p)!r}")
    return info
