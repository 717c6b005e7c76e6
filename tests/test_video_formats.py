"""Every extension in ``VIDEO_EXTENSIONS`` names a file PyAV writes here and ``VideoReader`` samples
right; the captioner's folder scan finds them all, raw MPEG-2 video (``.mpv``) included."""

from __future__ import annotations

import numpy as np
import pytest

from vidpool.video import VIDEO_EXTENSIONS, VideoReader, is_video_path, read_frame_counter
from vidpool.video.synthetic import render_frame

av = pytest.importorskip("av")

N, W, H = 12, 64, 48
WRITERS = {  # extension: (FFmpeg muxer, or None to go by the extension; PyAV encoder; frame size)
    ".mp4": (None, "libx264", (W, H)),
    ".m4v": ("mp4", "libx264", (W, H)),
    ".mov": (None, "libx264", (W, H)),
    ".qt": ("mov", "libx264", (W, H)),
    ".3gp": (None, "libx264", (W, H)),
    ".3g2": (None, "libx264", (W, H)),
    ".f4v": ("f4v", "libx264", (W, H)),
    ".mkv": (None, "libx264", (W, H)),
    ".webm": (None, "libvpx-vp9", (W, H)),
    ".avi": (None, "mpeg4", (W, H)),
    ".divx": ("avi", "mpeg4", (W, H)),
    ".flv": (None, "libx264", (W, H)),
    ".wmv": ("asf", "wmv2", (W, H)),
    ".asf": (None, "msmpeg4", (W, H)),
    ".mpg": (None, "mpeg2video", (W, H)),
    ".mpeg": (None, "mpeg2video", (W, H)),
    ".vob": ("vob", "mpeg2video", (W, H)),
    ".ts": (None, "libx264", (W, H)),
    ".m2ts": (None, "libx264", (W, H)),
    ".mts": ("mpegts", "libx264", (W, H)),
    ".m2t": ("mpegts", "libx264", (W, H)),
    ".mpv": ("mpeg2video", "mpeg2video", (W, H)),
    ".m1v": ("mpeg1video", "mpeg1video", (W, H)),
    ".m2v": ("mpeg2video", "mpeg2video", (W, H)),
    ".mxf": ("mxf", "mpeg2video", (W, H)),
    ".dv": ("dv", "dvvideo", (720, 576)),  # DV has fixed frame sizes
    ".y4m": ("yuv4mpegpipe", "rawvideo", (W, H)),
}


def write(path, muxer: str | None, encoder: str, size: tuple[int, int]) -> None:
    with av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream(encoder, rate=25)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(render_frame(i, *size), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_the_list_is_sorted_lowercase_with_dots_and_every_entry_is_checked_here():
    assert list(VIDEO_EXTENSIONS) == sorted(set(VIDEO_EXTENSIONS))
    assert all(e.startswith(".") and e == e.lower() for e in VIDEO_EXTENSIONS)
    assert set(WRITERS) == set(VIDEO_EXTENSIONS)
    assert is_video_path("a/B.MPV") and is_video_path("clip.m2ts") and not is_video_path("notes.txt")
    assert not is_video_path("mp4")  # a name without an extension


@pytest.mark.parametrize("ext", sorted(WRITERS))
def test_every_listed_format_opens_and_samples_right(tmp_path, ext):
    muxer, encoder, size = WRITERS[ext]
    path = tmp_path / f"clip{ext}"
    try:
        write(path, muxer, encoder, size)
    except (ValueError, av.error.FFmpegError) as exc:  # an FFmpeg build without that muxer or encoder
        pytest.skip(f"this PyAV cannot write {ext} ({muxer}, {encoder}): {exc}")
    with VideoReader(path, backend="pyav") as reader:
        assert reader.info.num_frames == N
        frames = reader.sample(num_frames=4)
    assert [read_frame_counter(f) for f in frames.frames.numpy()] == frames.indices


def test_the_caption_scan_finds_raw_mpeg2_video_that_opens(tmp_path):
    from vidpool.caption.inputs import resolve_inputs

    folder = tmp_path / "videos"
    folder.mkdir()
    write(folder / "raw.mpv", "mpeg2video", "mpeg2video", (W, H))
    write(folder / "clip.MP4", None, "libx264", (W, H))
    (folder / "notes.txt").write_text("not a video")
    found = resolve_inputs([folder])
    assert sorted(p.rsplit("/", 1)[-1] for p in (item.path for item in found)) == ["clip.MP4", "raw.mpv"]
    raw = next(item.path for item in found if item.path.endswith(".mpv"))
    with VideoReader(raw) as reader:
        assert reader.info.codec == "mpeg2video" and reader.info.num_frames == N
        frames = reader.sample(num_frames=3)
    assert [read_frame_counter(f) for f in frames.frames.numpy()] == frames.indices
    assert np.asarray(frames.frames).shape == (3, H, W, 3)
