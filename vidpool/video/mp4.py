"""What FFmpeg does not expose from MP4/MOV (ISO-BMFF) files, read straight from their boxes: a track's
display rotation and its per-sample composition offsets.

They serve :mod:`vidpool.video.info` (rotation without decoding) and :mod:`vidpool.video.index`
(keyframes' presentation times without reading their packets).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

__all__ = ["composition_offsets", "rotation", "set_rotation"]

# moov/trak/mdia/minf/stbl: the boxes that lead to a track's sample table
_SAMPLE_TABLE_PATH = (b"mdia", b"minf", b"stbl")


def _boxes(file: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield ``(type, body_start, end)`` of the boxes between byte offsets ``start`` and ``end``."""
    pos = start
    while pos + 8 <= end:
        file.seek(pos)
        head = file.read(16)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head[:8])
        body = pos + 8
        if size == 1 and len(head) == 16:
            size, body = struct.unpack(">Q", head[8:])[0], pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            return
        yield kind, body, pos + size
        pos += size


def _child(file: BinaryIO, span: tuple[int, int], kind: bytes) -> tuple[int, int] | None:
    return next(((b, e) for k, b, e in _boxes(file, *span) if k == kind), None)


def _track(file: BinaryIO, track_id: int) -> tuple[tuple[int, int], bytes] | None:
    """``((trak_body, trak_end), tkhd_bytes)`` of track ``track_id``, or ``None``."""
    end = os.fstat(file.fileno()).st_size
    moov = _child(file, (0, end), b"moov")
    for kind, b, e in _boxes(file, *moov) if moov else ():
        tkhd = _child(file, (b, e), b"tkhd") if kind == b"trak" else None
        if tkhd is None:
            continue
        file.seek(tkhd[0])
        data = file.read(min(tkhd[1] - tkhd[0], 92))
        id_at = 20 if data[:1] == b"\x01" else 12  # version 1 has 64-bit times before the id
        if len(data) >= id_at + 4 and struct.unpack(">I", data[id_at : id_at + 4])[0] == track_id:
            return (b, e), data
    return None


def rotation(path: str, track_id: int) -> int | None:
    """Display rotation (degrees counter-clockwise, as FFmpeg reports it) from the matrix in the track
    header of track ``track_id``; ``None`` where there is no such header."""
    with open(path, "rb") as file:
        found = _track(file, track_id)
    if found is None:
        return None
    data = found[1]
    matrix_at = 52 if data[:1] == b"\x01" else 40
    if len(data) < matrix_at + 36:
        return None
    a, b = struct.unpack(">ii", data[matrix_at : matrix_at + 8])
    return round(-math.degrees(math.atan2(b, a)))


def set_rotation(path: str, degrees: int) -> bool:
    """Write display rotation ``degrees`` (counter-clockwise, as :func:`rotation` reads it) into the
    track header of the first track of the MP4/MOV file at ``path``, in place, as FFmpeg writes a
    display matrix (no translation). ``False`` where there is no track header to write."""
    theta = math.radians(-degrees)
    cos, sin = round(math.cos(theta)), round(math.sin(theta))
    matrix = struct.pack(">9i", cos << 16, sin << 16, 0, -sin << 16, cos << 16, 0, 0, 0, 1 << 30)
    with open(path, "r+b") as file:
        end = os.fstat(file.fileno()).st_size
        moov = _child(file, (0, end), b"moov")
        trak = _child(file, moov, b"trak") if moov else None
        tkhd = _child(file, trak, b"tkhd") if trak else None
        if tkhd is None:
            return False
        file.seek(tkhd[0])
        matrix_at = 52 if file.read(1) == b"\x01" else 40
        if tkhd[1] - tkhd[0] < matrix_at + 36:
            return False
        file.seek(tkhd[0] + matrix_at)
        file.write(matrix)
    return True


def composition_offsets(path: str, track_id: int) -> np.ndarray | None:
    """Per-sample composition offsets (presentation minus decode time, in the track's timescale) of
    track ``track_id``, in decode order: int64 ``[samples]`` from its ``ctts`` box, zeros without one.

    Read as FFmpeg reads them (signed, whatever the box version). ``None`` where the track, its sample
    count or a ``ctts`` that covers every sample cannot be read, or where an edit list of several
    entries may make FFmpeg shift parts of the track differently.
    """
    with open(path, "rb") as file:
        found = _track(file, track_id)
        span = found[0] if found else None
        edts = _child(file, span, b"edts") if span else None
        elst = _child(file, edts, b"elst") if edts else None
        if elst is not None:
            file.seek(elst[0])
            head = file.read(8)
            if len(head) < 8 or struct.unpack(">I", head[4:8])[0] > 1:
                return None
        for kind in _SAMPLE_TABLE_PATH:
            span = _child(file, span, kind) if span else None
        if span is None:
            return None
        stsz, ctts = _child(file, span, b"stsz"), _child(file, span, b"ctts")
        if stsz is None:
            return None
        file.seek(stsz[0])
        head = file.read(12)
        if len(head) < 12:
            return None
        samples = struct.unpack(">I", head[8:12])[0]
        if ctts is None:
            return np.zeros(samples, dtype=np.int64)
        file.seek(ctts[0])
        data = file.read(ctts[1] - ctts[0])
    if len(data) < 8:
        return None
    entries = struct.unpack(">I", data[4:8])[0]
    if len(data) < 8 + 8 * entries:
        return None
    runs = np.frombuffer(data, dtype=">i4", count=2 * entries, offset=8).reshape(entries, 2).astype(np.int64)
    counts = runs[:, 0]
    if np.any(counts < 0) or int(counts.sum()) != samples:
        return None
    return np.repeat(runs[:, 1], counts)
