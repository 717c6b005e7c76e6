"""The frame index every backend samples from: each frame's presentation time and the keyframes.

It comes from the container's own sample table where that is complete and checked (MP4/MOV: a
5-minute 720p file indexes in about 5 ms), and otherwise from demuxing every packet (no decoding;
tens of milliseconds for minutes of video).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from vidpool.errors import require
from vidpool.video import mp4

__all__ = ["FrameIndex", "build_index"]


@dataclass(frozen=True)
class FrameIndex:
    """Per-frame timing of one video stream, in presentation order.

    ``pts`` int64 ``[N]`` in ``time_base`` units; ``times`` float64 ``[N]`` seconds from the first frame;
    ``keyframes`` int64 ``[K]`` sorted frame indices that decoding can start from.

    Frames are numbered in presentation order, by their stamps, whatever order a decoder emits them in.
    ``output_order``: the stamps do not give the display order, so frames are numbered in the order the
    decoder emits them, counting from a keyframe whose own stamp is known. Only the stamps decide it:
    some packets are unstamped (H.264 in an MPEG program stream), two share a stamp, or the stamps only
    ever grow in decode order although the codec may reorder frames (AVI holds no presentation times:
    FFmpeg makes them up from the decode times). ``pts`` is then a grid of one frame duration per frame.

    ``reordered``: some frame is shown before a frame decoded ahead of it (presentation order is not
    decode order), as the stamps say.
    """

    pts: np.ndarray
    times: np.ndarray
    keyframes: np.ndarray
    time_base: Fraction
    frame_duration: float
    output_order: bool = False
    reordered: bool = False

    @property
    def num_frames(self) -> int:
        return int(self.pts.shape[0])

    @property
    def duration(self) -> float:
        return float(self.times[-1] + self.frame_duration) if self.num_frames else 0.0


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


def _index_entries(stream):
    """The stream's index entries: PyAV 17 added ``stream.index_entries``; before it, ``None`` (every
    packet is demuxed instead)."""
    return getattr(stream, "index_entries", None)


def _index_from_entries(container, stream) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """Frame ``pts``, keyframe flags and whether frames are reordered, from the container's own index
    (MP4/MOV), without demuxing the frames; ``None`` where that index cannot be trusted to give what
    demuxing every packet gives.

    The index holds decode times and where each frame's data lies (a file cut short is demuxed).
    MP4/MOV: every frame's presentation time comes from the ``ctts`` box (checked against three
    keyframes' packets). Otherwise only keyframes' packets are read, which says nothing of where the
    frames between them are shown: where the codec may reorder frames (or the file is MP4/MOV, whose
    offsets could not be read) every packet is demuxed. Else presentation times are the decode times
    shifted by the first keyframe's delay when decode times are evenly spaced or every keyframe has
    that delay.
    """
    av = require("av", "video", "Reading videos")
    entries = _index_entries(stream)
    if entries is None:
        return None
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
        reordered = False
        if frame_offsets is not None:
            # every frame's presentation time is known: no grid to assume, variable rates included
            key_pts = key_dts + frame_offsets[keyframe]
            shown = dts + frame_offsets
            reordered = bool(np.any(np.diff(shown) < 0))
            pts = np.sort(shown)
            if np.any(np.diff(pts) <= 0):
                return None  # two frames shown at one time: demuxing decides
        else:
            if stream.codec_context.has_b_frames or "mp4" in container.format.name.split(","):
                return None  # where reordered frames are shown only their own stamps say
            # Each keyframe's packet, read after a seek to it (a demuxer that skips packets may
            # misplace the presentation times of the ones it returns).
            read = [_packet_pts(container, stream, stamp) for stamp in key_dts.tolist()]
            if None in read:
                return None
            key_pts = np.asarray(read, dtype=np.int64)
            offsets = key_pts - key_dts
            if steps.max() != steps.min() and np.any(offsets != offsets[0]):
                return None
            pts = dts + offsets[0]
    except (av.error.FFmpegError, EOFError, OSError):
        return None
    where = np.searchsorted(pts, key_pts)
    if np.any(where >= count) or np.any(pts[np.minimum(where, count - 1)] != key_pts):
        return None  # a keyframe off the grid
    keys = np.zeros(count, dtype=bool)
    keys[where] = True
    if int(keys.sum()) != len(key_pts):
        return None
    return pts, keys, reordered


def _demux_index(container, stream) -> tuple[np.ndarray, np.ndarray, bool, bool]:
    """Frame ``pts`` and keyframe flags of every packet, in presentation order, whether frames must be
    numbered in output order and whether they are reordered (see :class:`FrameIndex`)."""
    av = require("av", "video", "Reading videos")
    stamps: list[int | None] = []
    key_list: list[bool] = []
    with contextlib.suppress(av.error.FFmpegError):
        container.seek(0, stream=stream)
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            stamp = packet.pts if packet.pts is not None else packet.dts
            stamps.append(None if stamp is None else int(stamp))
            key_list.append(bool(packet.is_keyframe))
    except (av.error.FFmpegError, EOFError, OSError):
        pass
    keys = np.asarray(key_list, dtype=bool)
    if None in stamps:
        return (*_stamp_grid(stream, stamps, keys), True, False)
    decode_order = np.asarray(stamps, dtype=np.int64)
    order = np.argsort(decode_order, kind="stable")
    pts, keys = decode_order[order], keys[order]
    if np.any(np.diff(pts) == 0):
        return (*_stamp_grid(stream, stamps, key_list), True, False)  # two frames at one time
    reordered = bool(np.any(np.diff(decode_order) < 0))
    return pts, keys, _stamps_follow_decode_order(stream, decode_order), reordered


def _stamps_follow_decode_order(stream, pts_in_decode_order: np.ndarray) -> bool:
    """Whether packet stamps only ever grow in decode order while the codec may show frames in another
    order (``has_b_frames``): then they are decode times passed off as presentation times."""
    reorders = bool(stream.codec_context.has_b_frames)
    return reorders and pts_in_decode_order.size > 1 and bool(np.all(np.diff(pts_in_decode_order) > 0))


def _stamp_grid(stream, stamps: list[int | None], keys) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``pts`` and keyframe flags of packets whose stamps do not name frames (some missing, or
    shared), in decode order: one frame duration per packet from the earliest stamp. A stamped keyframe
    sits where its stamp falls on that grid; an unstamped one where it is decoded (a GOP's frames are
    all shown before the next keyframe's)."""
    keys = np.asarray(keys, dtype=bool)
    rate = stream.average_rate or stream.guessed_rate
    time_base = stream.time_base
    step = max(1, round(1 / (rate * time_base))) if rate and time_base else 1
    known = [s for s in stamps if s is not None]
    origin = min(known) if known else 0
    count = len(stamps)
    pts = origin + step * np.arange(count, dtype=np.int64)
    grid_keys = np.zeros(count, dtype=bool)
    for position in np.flatnonzero(keys).tolist():
        stamp = stamps[position]
        at = position if stamp is None else round((stamp - origin) / step)
        if 0 <= at < count:
            grid_keys[at] = True
    return pts, grid_keys


def build_index(container, stream, demux: bool = False) -> FrameIndex:
    """The :class:`FrameIndex` of ``stream``: from the container's index where it is complete (MP4/MOV),
    else (or with ``demux=True``) by demuxing every packet. Nothing is decoded.

    A truncated or damaged tail ends the index at the last packet that could be read.
    """
    found = None if demux else _index_from_entries(container, stream)
    pts, keys, output_order, reordered = (
        (*found[:2], False, found[2]) if found else _demux_index(container, stream)
    )
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
    return FrameIndex(pts, times, keyframes, time_base, frame_duration, output_order, reordered)
