"""Every backend returns the frames it names, in every container, checked against a full sequential decode.

Files are written here with PyAV: each codec into each container that takes it, with B-frames where the
codec has them, 36 frames of 64x48 whose pixels carry their own index. The reference is what PyAV gives
decoding every frame from the start, put in presentation order; the frame counter drawn into the pixels
checks that order first.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidpool.errors import VideoDecodeError
from vidpool.video import VideoReader, read_frame_counter
from vidpool.video.synthetic import render_frame

av = pytest.importorskip("av")

N, W, H, GOP = 36, 64, 48, 12
CODECS = {  # name: (PyAV encoder, stream options)
    "mpeg1video": ("mpeg1video", {}),
    "mpeg2video": ("mpeg2video", {}),
    "mpeg4": ("mpeg4", {}),
    "h264": (
        "libx264",
        {"x264-params": f"bframes=3:b-pyramid=normal:keyint={GOP}:min-keyint={GOP}:scenecut=0"},
    ),
    "vp9": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
}
CONTAINERS = {  # extension: FFmpeg muxer
    "mp4": "mp4",
    "mov": "mov",
    "avi": "avi",
    "mpg": "mpeg",
    "ts": "mpegts",
    "m1v": "mpeg1video",
    "m2v": "mpeg2video",
    "mkv": "matroska",
    "webm": "webm",
}
# Pairs PyAV writes but cannot read back as video (those it refuses to write are skipped with its reason).
CANNOT = {
    ("vp9", "mpg"): "an MPEG program stream has no stream type for VP9 (FFmpeg reads it back as audio)",
    ("vp9", "ts"): "MPEG-TS has no stream type for VP9 (FFmpeg reads it back as a data stream)",
    **{
        (
            codec,
            ext,
        ): "a raw MPEG video stream holds MPEG-1/2 video only (older PyAV writes other codecs' bytes into it)"
        for codec in ("mpeg4", "h264", "vp9")
        for ext in ("m1v", "m2v")
    },
}
PAIRS = [(codec, ext) for codec in CODECS for ext in CONTAINERS]


def write(path, codec: str, muxer: str) -> None:
    encoder, options = CODECS[codec]
    with av.open(str(path), "w", format=muxer) as container:
        stream = container.add_stream(encoder, rate=24)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.codec_context.gop_size = GOP
        stream.codec_context.bit_rate = 400_000
        if codec in ("mpeg1video", "mpeg2video", "mpeg4"):
            stream.codec_context.max_b_frames = 2
        stream.options = options
        for i in range(N):
            frame = av.VideoFrame.from_ndarray(render_frame(i, W, H), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def reference(path, output_order: bool) -> tuple[np.ndarray, np.ndarray]:
    """Every frame decoded from the start: ``(pts [N], frames [N, H, W, 3])`` in presentation order (by
    pts, or as the decoder emits them where the file's stamps are decode times)."""
    with av.open(str(path)) as container:
        decoded = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    if not output_order:
        decoded.sort(key=lambda item: item[0])
    return np.array([p for p, _ in decoded]), np.stack([a for _, a in decoded])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("containers")
    made: dict = {}

    def get(codec: str, ext: str):
        if (codec, ext) in CANNOT:
            pytest.skip(f"{codec} in .{ext}: {CANNOT[codec, ext]}")
        if (codec, ext) not in made:
            path = root / f"{codec}.{ext}"
            try:
                write(path, codec, CONTAINERS[ext])
            except (ValueError, av.error.FFmpegError) as exc:
                pytest.skip(f"PyAV cannot put {codec} in .{ext}: {exc}")
            with VideoReader(path, backend="pyav") as reader:
                index = reader.index
            made[codec, ext] = (path, index, *reference(path, index.output_order))
        return made[codec, ext]

    return get


def check(frames, index, ref_pts, ref, where: str, tolerance: float = 0.0) -> None:
    """Each returned frame is the reference frame at its index, and its timestamp is that frame's."""
    idx = np.asarray(frames.indices)
    got = frames.frames.numpy()
    for k, i in enumerate(idx):
        diff = np.abs(got[k].astype(np.int16) - ref[i].astype(np.int16)).mean()
        assert diff <= tolerance, f"{where}: frame {k} named {i} holds other pixels (mean diff {diff:.2f})"
        assert read_frame_counter(got[k]) == i, f"{where}: frame {k} named {i}"
    np.testing.assert_array_equal(frames.timestamps.numpy(), index.times[idx], err_msg=where)
    if not index.output_order:
        # the reference decode's stamp of each frame is nearest the index's entry for that frame
        nearest = np.abs(index.pts[None, :] - ref_pts[idx][:, None]).argmin(axis=1)
        np.testing.assert_array_equal(nearest, idx, err_msg=where)


@pytest.mark.parametrize(("codec", "ext"), PAIRS)
def test_reference_decode_is_in_presentation_order(files, codec, ext):
    _path, index, _ref_pts, ref = files(codec, ext)
    assert index.num_frames == N
    assert [read_frame_counter(f) for f in ref] == list(range(N))


@pytest.mark.parametrize("backend", ["pyav", "auto", "decord"])
@pytest.mark.parametrize(("codec", "ext"), PAIRS)
def test_sampled_frames_are_the_frames_they_name(files, codec, ext, backend):
    path, index, ref_pts, ref = files(codec, ext)
    if backend == "decord":
        pytest.importorskip("decord")
    try:
        reader = VideoReader(path, backend=backend)
    except VideoDecodeError as exc:
        if backend == "decord":
            pytest.skip(f"decord does not open {codec} in .{ext}: {exc}")
        raise
    # PyAV decodes exactly the reference's pixels; decord converts colours its own way
    tolerance = 3.0 if backend == "decord" else 0.0
    with reader:
        for args in ({"num_frames": 8}, {"fps": 5.0}, {"num_frames": 8, "exact": False}, {"num_frames": 50}):
            planned = reader.frame_indices(**args)
            frames = reader.sample(**args)
            where = f"{backend} sample({args})"
            assert frames.indices == planned.tolist(), where
            check(frames, index, ref_pts, ref, where, tolerance)
            chunks = list(reader.chunks(chunk_size=3, **args))
            assert [i for c in chunks for i in c.indices] == frames.indices, where
            assert all(
                np.array_equal(c.frames.numpy(), frames.frames.numpy()[3 * k : 3 * k + len(c)])
                for k, c in enumerate(chunks)
            ), where
        # every keyframe alone, as keyframe sampling decodes them
        keys = reader.sample(fps=1000.0, exact=False)
        assert keys.indices == index.keyframes.tolist()
        check(keys, index, ref_pts, ref, f"{backend} keyframes", tolerance)
        # all frames, the dense path
        check(reader.sample(fps=1000.0), index, ref_pts, ref, f"{backend} every frame", tolerance)


def test_frames_a_decoder_emits_out_of_order_are_named_by_their_timestamps(files, monkeypatch):
    """A decoder that emits frames out of presentation order (H.264 whose stream under-announces its
    reordering depth does so): every decoded frame arrives swapped with the next, each still stamped
    with its own pts."""
    from vidpool.video.backends import pyav_backend

    path, index, ref_pts, ref = files("h264", "mp4")
    real_open = pyav_backend.open_container
    monkeypatch.setattr(pyav_backend, "open_container", lambda p: _wrap(real_open(p), _Swapped))
    with VideoReader(path, backend="pyav") as warm:
        warm.frame_indices()  # index the file before its decoders open
    with VideoReader(path, backend="pyav") as reader:
        for args in ({"num_frames": 8}, {"fps": 1000.0}, {"num_frames": 5, "start": 0.4}):
            frames = reader.sample(**args)
            assert frames.indices == reader.frame_indices(**args).tolist()
            check(frames, index, ref_pts, ref, f"swapped {args}")


def _wrap(opened: tuple, proxy, *args) -> tuple:
    container, stream = opened
    return proxy(container, *args), stream


class _Swapped:
    """A PyAV container whose decoder emits each pair of frames in reverse order."""

    def __init__(self, container):
        self._container = container

    def decode(self, *args, **kwargs):
        frames = self._container.decode(*args, **kwargs)
        for a in frames:
            b = next(frames, None)
            if b is not None:
                yield b
            yield a

    def __getattr__(self, name):
        return getattr(self._container, name)


class _LateSeeks:
    """A PyAV container whose seeks land ``late`` time-base units after the point asked for, as FFmpeg's
    do in MPEG program and transport streams."""

    def __init__(self, container, late: int):
        self._container, self._late = container, late

    def seek(self, offset, *args, **kwargs):
        return self._container.seek(offset + self._late, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._container, name)


@pytest.mark.parametrize(("codec", "ext"), [("mpeg2video", "mpg"), ("h264", "mp4"), ("mpeg4", "avi")])
def test_seeks_that_land_late_fall_back_to_an_earlier_point(files, monkeypatch, codec, ext):
    from vidpool.video.backends import pyav_backend

    path, index, ref_pts, ref = files(codec, ext)
    late = int(index.pts[GOP + GOP // 2] - index.pts[0])  # past the next keyframe
    real_open = pyav_backend.open_container
    monkeypatch.setattr(pyav_backend, "open_container", lambda p: _wrap(real_open(p), _LateSeeks, late))
    with VideoReader(path, backend="pyav") as warm:
        warm.frame_indices()  # index the file before its decoders open
    with VideoReader(path, backend="pyav") as reader:
        for args in ({"num_frames": 8}, {"num_frames": 8, "exact": False}, {"fps": 1000.0, "exact": False}):
            frames = reader.sample(**args)
            assert frames.indices == reader.frame_indices(**args).tolist(), args
            check(frames, index, ref_pts, ref, f"late seeks {args}")


def test_once_seeks_fail_a_request_is_decoded_in_one_pass(files, monkeypatch):
    from vidpool.video.backends import pyav_backend

    path, index, ref_pts, ref = files("mpeg2video", "mpg")
    late = int(index.pts[GOP + GOP // 2] - index.pts[0])
    real_open = pyav_backend.open_container
    monkeypatch.setattr(pyav_backend, "open_container", lambda p: _wrap(real_open(p), _LateSeeks, late))
    reopened = []
    real_reopen = pyav_backend.PyAVBackend._reopen
    monkeypatch.setattr(
        pyav_backend.PyAVBackend, "_reopen", lambda self: reopened.append(1) or real_reopen(self)
    )
    with VideoReader(path, backend="pyav") as warm:
        warm.frame_indices()
    with VideoReader(path, backend="pyav") as reader:
        frames = reader.sample(num_frames=2)  # two frames two keyframe intervals apart
    check(frames, index, ref_pts, ref, "late seeks, sparse")
    assert len(reopened) == 1  # the second frame is decoded on from the first, not from the start again


@pytest.mark.parametrize(
    ("codec", "ext"), [("h264", "ts"), ("h264", "avi"), ("mpeg2video", "mp4"), ("vp9", "webm")]
)
def test_decord_is_refused_where_it_returns_other_frames(files, codec, ext):
    """decord, asked for these files' frames, returns neighbours under the requested indices (MPEG-TS,
    AVI with B-frames, MPEG-1/2/4 with B-frames) or fails (VP9): it is refused, and "auto" uses PyAV."""
    pytest.importorskip("decord")
    path, index, ref_pts, ref = files(codec, ext)
    with pytest.raises(VideoDecodeError, match="backend='pyav'"):
        VideoReader(path, backend="decord")
    with VideoReader(path) as reader:
        assert reader.info.backend == "pyav"
        frames = reader.sample(num_frames=8)
        assert reader.info.backend == "pyav"
    check(frames, index, ref_pts, ref, "auto")
