"""Frames are numbered by their timestamps whatever order the decoder emits them in, checked against a
full sequential decode sorted by pts; where the timestamps do not give the display order, frames keep
the order the decoder emits them in.

The files are written here: H.264 without B-frames (its decoder emits frames in decode order), its
frames encoded in the order 0, 3, 2, 4, 1, 5, 8, 7, 9, 6, ... of the index drawn into their pixels,
then muxed with each packet stamped with that index. The stamps give the display order, while the
decoder emits frames out of it, as the decoder of an H.264 stream that under-announces its reordering
depth does.
"""

from __future__ import annotations

import numpy as np
import pytest

from vidpool.errors import VideoDecodeError
from vidpool.video import VideoReader, read_frame_counter, write_video
from vidpool.video.synthetic import render_frame

av = pytest.importorskip("av")

N, W, H, GOP, RATE = 60, 64, 48, 15, 30
PATTERN = (0, 3, 2, 4, 1)  # display index of each frame of a group, in decode order
SAMPLINGS = ({"num_frames": 8}, {"fps": 7.0}, {"num_frames": 8, "exact": False}, {"fps": 1000.0})


def _encode(path, shown: list[int]) -> None:
    """H.264 without B-frames: decode position ``d`` holds the picture of frame ``shown[d]``."""
    frames = (render_frame(k, W, H) for k in shown)
    write_video(path, frames, fps=RATE, keyframe_interval=GOP, bframes=False, threads=1)


def _restamp(source, path, stamps: list[int], lead: int) -> None:
    """Copy the packets of ``source`` into ``path``, packet ``d`` stamped ``stamps[d] + lead`` frames
    (decode time ``d + lead``; ``lead > 0`` makes the MP4 muxer write a two-entry edit list), all
    stamps later by the frames that decoding runs ahead of showing."""
    with av.open(str(source)) as src, av.open(str(path), "w") as dst:
        ins = src.streams.video[0]
        add = getattr(dst, "add_stream_from_template", None)
        out = add(ins) if add is not None else dst.add_stream(template=ins)
        step = round(1 / (ins.time_base * RATE))
        delay = max(max(d - stamp for d, stamp in enumerate(stamps)), 0)  # a frame is shown once decoded
        for packet in src.demux(ins):
            if packet.dts is None:
                continue
            d = round(packet.dts / step)
            packet.stream = out
            packet.dts = (d + lead) * step
            packet.pts = (stamps[d] + delay + lead) * step
            dst.mux(packet)


def _full_decode(path) -> tuple[list[int], np.ndarray]:
    """Every frame decoded from the start, as the decoder emits them: ``(pts, frames [N, H, W, 3])``."""
    with av.open(str(path)) as container:
        decoded = [(f.pts, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    return [p for p, _ in decoded], np.stack([a for _, a in decoded])


def _check(frames, ref: np.ndarray, where: str) -> None:
    """Each returned frame holds the pixels of the reference frame at its index, and its counter."""
    got = frames.frames.numpy()
    for k, i in enumerate(frames.indices):
        assert read_frame_counter(got[k]) == i, f"{where}: frame {k} named {i}"
        assert np.array_equal(got[k], ref[i]), f"{where}: frame {k} named {i} holds other pixels"


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    """``(ext, lead) -> (path, reference frames in pts order)`` of files whose decoder emits frames out
    of the order of their (right) stamps."""
    root = tmp_path_factory.mktemp("order")
    made: dict = {}

    def get(ext: str, lead: int):
        if (ext, lead) not in made:
            shown = [start + p for start in range(0, N, len(PATTERN)) for p in PATTERN]
            assert sorted(shown) == list(range(N))
            source, path = root / f"source-{ext}-{lead}.mp4", root / f"shuffled-{lead}.{ext}"
            _encode(source, shown)
            _restamp(source, path, shown, lead)
            pts, decoded = _full_decode(path)
            # preconditions: the decoder emits frames out of pts order, and sorting them by pts puts
            # every frame where its drawn index says it belongs
            assert pts != sorted(pts)
            ref = decoded[np.argsort(pts, kind="stable")]
            assert [read_frame_counter(f) for f in ref] == list(range(N))
            made[ext, lead] = (path, ref)
        return made[ext, lead]

    return get


# lead 10: a two-entry MP4 edit list, whose composition offsets the index does not read (PyAV 17+ would
# otherwise index the file from its container index): every packet is demuxed instead
CASES = [("mp4", 0), ("mp4", 10), ("mkv", 0)]


@pytest.mark.parametrize("backend", ["pyav", "auto"])
@pytest.mark.parametrize(("ext", "lead"), CASES)
def test_frames_are_numbered_by_their_timestamps(shuffled, ext, lead, backend):
    path, ref = shuffled(ext, lead)
    with VideoReader(path, backend=backend) as reader:
        assert reader.index.num_frames == N
        assert not reader.index.output_order and reader.index.reordered
        np.testing.assert_allclose(reader.index.times, np.arange(N) / RATE, atol=1e-3)
        for args in SAMPLINGS:
            frames = reader.sample(**args)
            where = f"{backend} .{ext} lead {lead} sample({args})"
            assert frames.indices == reader.frame_indices(**args).tolist(), where
            _check(frames, ref, where)
            np.testing.assert_allclose(
                frames.timestamps.numpy(), np.asarray(frames.indices) / RATE, atol=1e-3
            )
            chunks = list(reader.chunks(chunk_size=3, **args))
            assert [i for c in chunks for i in c.indices] == frames.indices, where
        assert reader.info.backend == "pyav"  # decord is refused for this file (see below)


@pytest.mark.parametrize(("ext", "lead"), CASES)
def test_decord_is_refused_where_the_decoder_emits_frames_out_of_stamp_order(shuffled, ext, lead):
    """decord counts frames as the decoder emits them after a keyframe: here that misnames them."""
    pytest.importorskip("decord")
    path, _ref = shuffled(ext, lead)
    with pytest.raises(VideoDecodeError, match="out of the order of their timestamps"):
        VideoReader(path, backend="decord")


def test_decord_is_kept_where_the_decoder_puts_reordered_frames_in_stamp_order(tmp_path):
    """H.264 with B-frames (frames reordered, and the decoder puts them back in order): decord decodes
    it, and returns the frames of the full decode sorted by pts."""
    pytest.importorskip("decord")
    from vidpool.video import make_test_video

    path = make_test_video(tmp_path / "b.mp4", num_frames=N, keyframe_interval=GOP, size=(W, H))
    pts, decoded = _full_decode(path)
    ref = decoded[np.argsort(pts, kind="stable")]
    with VideoReader(path, backend="decord") as reader:
        assert reader.index.reordered and not reader.index.output_order
        frames = reader.sample(num_frames=8)
    assert [read_frame_counter(f) for f in frames.frames.numpy()] == frames.indices
    got = frames.frames.numpy().astype(np.int16)
    assert np.abs(got - ref[frames.indices].astype(np.int16)).mean() < 3.0  # decord's colour conversion


@pytest.fixture(scope="module")
def shared_stamps(tmp_path_factory):
    """An MP4 whose packets share stamps in pairs (decode positions 0 and 1 both at 1, 2 and 3 at 3,
    ...): the stamps do not give the display order. Returns ``(path, frames as the decoder emits them)``."""
    root = tmp_path_factory.mktemp("shared")
    source, path = root / "source.mp4", root / "shared.mp4"
    _encode(source, list(range(N)))
    _restamp(source, path, [d + 1 - d % 2 for d in range(N)], lead=0)
    pts, decoded = _full_decode(path)
    assert len(set(pts)) < len(pts)  # precondition: stamps are shared
    assert [read_frame_counter(f) for f in decoded] == list(range(N))
    return path, decoded


@pytest.mark.parametrize("backend", ["pyav", "auto"])
def test_frames_keep_output_order_where_timestamps_do_not_give_display_order(shared_stamps, backend):
    path, decoded = shared_stamps
    with VideoReader(path, backend=backend) as reader:
        assert reader.index.output_order and reader.index.num_frames == N
        for args in SAMPLINGS:
            _check(reader.sample(**args), decoded, f"{backend} shared stamps sample({args})")
        assert reader.info.backend == "pyav"


def test_decord_is_refused_where_timestamps_do_not_give_display_order(shared_stamps):
    pytest.importorskip("decord")
    with pytest.raises(VideoDecodeError, match="timestamps do not give the display order"):
        VideoReader(shared_stamps[0], backend="decord")


def test_the_stamp_check_needs_no_decoder_where_frames_are_not_reordered(tmp_path, monkeypatch):
    """Files whose frames are shown in decode order never pay for the decoder-order check."""
    pytest.importorskip("decord")
    from vidpool.video import make_test_video
    from vidpool.video.backends import decord_backend

    path = make_test_video(tmp_path / "p.mp4", num_frames=24, bframes=False, size=(W, H))
    monkeypatch.setattr(decord_backend, "emits_in_stamp_order", lambda p: pytest.fail("decoded to check"))
    with VideoReader(path, backend="decord") as reader:
        assert not reader.index.reordered
        assert reader.info.backend == "decord"
