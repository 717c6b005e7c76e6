"""VideoReader on synthetic videos whose frames carry their own index (both backends)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from vidpool.errors import DecodeTimeoutError, MissingDependencyError, VideoDecodeError
from vidpool.video import (
    Frames,
    VideoInfo,
    VideoReader,
    make_test_video,
    probe,
    read_frame_counter,
    sample_times,
)
from vidpool.video import backends as backends_mod

BACKENDS = ["decord", "pyav"]

# PyAV 17 added stream.index_entries; before it every file's index is demuxed, with nothing to test here.
needs_index_entries = pytest.mark.skipif(
    not hasattr(pytest.importorskip("av").video.stream.VideoStream, "index_entries"),
    reason="PyAV < 17 has no stream.index_entries: every index is built by demuxing",
)


def counters(frames: Frames) -> list[int]:
    return [read_frame_counter(f) for f in frames.frames]


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    d = tmp_path_factory.mktemp("videos")
    vfr_times = np.cumsum(np.r_[0.0, np.tile([0.02, 0.1, 0.05], 13)])
    return {
        "h264": make_test_video(d / "h264.mp4", num_frames=72, fps=24, keyframe_interval=12),
        "mpeg4": make_test_video(d / "mpeg4.mp4", num_frames=30, fps=10, codec="mpeg4", keyframe_interval=10),
        "rot90": make_test_video(d / "rot90.mp4", num_frames=12, size=(96, 64), rotation=90),
        "rot270": make_test_video(d / "rot270.mp4", num_frames=12, size=(96, 64), rotation=270),
        "vfr": make_test_video(d / "vfr.mp4", num_frames=40, frame_times=vfr_times),
        "vfr_times": vfr_times,
    }


def test_probe_reports_metadata(videos):
    info = probe(videos["h264"])
    assert isinstance(info, VideoInfo)
    assert (info.num_frames, info.width, info.height, info.codec, info.rotation) == (72, 160, 120, "h264", 0)
    assert info.fps == pytest.approx(24.0)
    assert info.duration == pytest.approx(3.0)
    assert info.num_keyframes == 6
    assert not info.variable_frame_rate


@pytest.mark.parametrize("backend", BACKENDS)
def test_uniform_sampling_decodes_the_right_frames(videos, backend):
    with VideoReader(videos["h264"], backend=backend) as reader:
        assert reader.info.backend == backend
        frames = reader.sample(num_frames=8)
    assert frames.frames.dtype == torch.uint8 and frames.frames.shape == (8, 120, 160, 3)
    assert frames.timestamps.dtype == torch.float64
    expected = [int((i + 0.5) * 72 / 8) for i in range(8)]
    assert frames.indices == expected
    assert counters(frames) == expected
    np.testing.assert_allclose(frames.timestamps.numpy(), np.array(expected) / 24.0, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_sampling_returns_every_frame_in_order(videos, backend):
    with VideoReader(videos["h264"], backend=backend) as reader:
        frames = reader.sample(fps=24.0, resize=(48, 64))
    assert frames.frames.shape == (72, 48, 64, 3)
    assert counters(frames) == list(range(72))


def test_fps_window_and_max_frames(videos):
    with VideoReader(videos["h264"]) as reader:
        frames = reader.sample(fps=2.0, start=1.0, end=2.0)
        assert frames.indices == [30, 42]
        capped = reader.sample(fps=24.0, max_frames=6)
        assert len(capped) == 6
        assert counters(capped) == capped.indices


def test_more_frames_than_video_repeats_frames(videos):
    with VideoReader(videos["mpeg4"]) as reader:
        frames = reader.sample(num_frames=45)
    assert len(frames) == 45
    assert counters(frames) == frames.indices
    assert sorted(set(frames.indices)) == list(range(30))


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_give_the_same_frames(videos, backend):
    with VideoReader(videos["h264"], backend="pyav") as ref:
        expected = ref.sample(num_frames=10, resize=60)
    with VideoReader(videos["h264"], backend=backend) as reader:
        got = reader.sample(num_frames=10, resize=60)
    assert got.indices == expected.indices
    assert got.frames.shape == expected.frames.shape == (10, 60, 80, 3)
    diff = (got.frames.float() - expected.frames.float()).abs()
    assert diff.mean() < 3.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunks_equal_sample(videos, backend):
    with VideoReader(videos["h264"], backend=backend) as reader:
        whole = reader.sample(fps=6.0, resize=40)
        chunks = list(reader.chunks(chunk_size=5, fps=6.0, resize=40))
    assert [len(c) for c in chunks] == [5, 5, 5, 3]
    assert torch.equal(torch.cat([c.frames for c in chunks]), whole.frames)
    assert [i for c in chunks for i in c.indices] == whole.indices
    assert torch.equal(torch.cat([c.timestamps for c in chunks]), whole.timestamps)


def test_abandoned_chunks_leave_reader_usable(videos):
    with VideoReader(videos["h264"], backend="pyav") as reader:
        for _chunk in reader.chunks(chunk_size=2, fps=24.0):
            break
        frames = reader.sample(num_frames=3)
    assert counters(frames) == frames.indices


@pytest.mark.parametrize(("name", "gop", "fps"), [("h264", 12, 24.0), ("mpeg4", 10, 10.0)])
def test_keyframe_sampling_reports_true_timestamps(videos, name, gop, fps):
    with VideoReader(videos[name]) as reader:
        fast = reader.sample(num_frames=6, exact=False, resize=60)
        plan = reader.frame_indices(num_frames=6, exact=False)
        key_times = reader.index.times[reader.index.keyframes]
        wanted = sample_times(reader.info.duration, num_frames=6)
    assert fast.indices == plan.tolist()
    assert all(i % gop == 0 for i in fast.indices)
    assert counters(fast) == fast.indices
    np.testing.assert_allclose(fast.timestamps.numpy(), np.array(fast.indices) / fps, atol=1e-6)
    nearest = np.abs(wanted[:, None] - key_times[None, :]).min(axis=1)
    np.testing.assert_allclose(np.abs(fast.timestamps.numpy() - wanted), nearest, atol=1e-6)


@pytest.mark.parametrize("name", ["rot90", "rot270"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_rotation_metadata_gives_upright_frames(videos, name, backend):
    with VideoReader(videos[name], backend=backend) as reader:
        assert reader.info.rotation == int(name[3:])
        assert (reader.info.width, reader.info.height) == (96, 64)
        frames = reader.sample(num_frames=4, resize=(32, 48))
    assert frames.frames.shape == (4, 32, 48, 3)
    assert counters(frames) == frames.indices


def test_auto_sends_rotated_files_to_pyav(videos):
    with VideoReader(videos["rot90"]) as reader:
        assert reader.info.backend == "pyav"


@pytest.mark.parametrize("backend", BACKENDS)
def test_variable_frame_rate_uses_real_times(videos, backend):
    times = videos["vfr_times"]
    with VideoReader(videos["vfr"], backend=backend) as reader:
        assert reader.info.variable_frame_rate
        np.testing.assert_allclose(reader.index.times, times, atol=1e-4)
        frames = reader.sample(fps=5.0)
    sample_at = 0.5 * (times[-1] + reader.index.frame_duration - (len(frames) - 1) / 5.0)
    sample_at = sample_at + np.arange(len(frames)) / 5.0
    expected = (np.searchsorted(times, sample_at + 1e-9, side="right") - 1).tolist()
    assert frames.indices == expected
    assert counters(frames) == expected
    np.testing.assert_allclose(frames.timestamps.numpy(), times[expected], atol=1e-4)


def test_max_side_downscales_on_decode(videos):
    with VideoReader(videos["h264"], max_side=64) as reader:
        frames = reader.sample(num_frames=2)
    assert frames.frames.shape == (2, 48, 64, 3)
    assert counters(frames) == frames.indices


def test_huge_width_is_capped_by_default(tmp_path):
    path = make_test_video(tmp_path / "wide.mp4", num_frames=4, size=(4352, 32))
    with VideoReader(path) as reader:
        assert reader.info.width == 4352
        frames = reader.sample(num_frames=2)
    assert frames.frames.shape == (2, 30, 4096, 3)


def test_falls_back_to_pyav_when_decord_missing(videos, monkeypatch):
    def missing(*args):
        raise MissingDependencyError("no decord")

    monkeypatch.setitem(backends_mod.BACKENDS, "decord", missing)
    with VideoReader(videos["h264"]) as reader:
        assert counters(reader.sample(num_frames=3)) == [12, 36, 60]
        assert reader.info.backend == "pyav"
    with pytest.raises(MissingDependencyError):
        VideoReader(videos["h264"], backend="decord")


def test_auto_prefers_pyav_when_decord_miscounts(videos, monkeypatch):
    from vidpool.video.backends.decord_backend import DecordBackend

    original = DecordBackend.__init__

    def overcount(self, *args):
        original(self, *args)
        self.frame_count += 10

    monkeypatch.setattr(DecordBackend, "__init__", overcount)
    with VideoReader(videos["h264"]) as reader:
        assert counters(reader.sample(num_frames=2)) == [18, 54]
        assert reader.info.backend == "pyav"
    with VideoReader(videos["h264"], backend="decord") as reader:
        frames = reader.sample(fps=24.0, start=2.5)
    assert frames.indices == list(range(60, 72))
    assert counters(frames) == frames.indices


class _StuckBackend:
    name = "decord"
    frame_count = 72

    def __init__(self, *args):
        self.release = threading.Event()

    def decode(self, indices, size, keyframes_only=False):
        self.release.wait(10)
        yield from ()

    def close(self):
        self.release.set()


def test_stuck_decoder_times_out(videos, monkeypatch):
    monkeypatch.setitem(backends_mod.BACKENDS, "decord", _StuckBackend)
    reader = VideoReader(videos["h264"], backend="decord", timeout=0.3)
    with pytest.raises(DecodeTimeoutError, match="no progress"):
        reader.sample(num_frames=2)
    reader.close()


def test_stuck_decord_falls_back_to_pyav(videos, monkeypatch):
    monkeypatch.setitem(backends_mod.BACKENDS, "decord", _StuckBackend)
    with VideoReader(videos["h264"], timeout=0.3) as reader:
        assert reader.info.backend == "decord"
        frames = reader.sample(num_frames=4)
        assert reader.info.backend == "pyav"
    assert counters(frames) == frames.indices == [9, 27, 45, 63]


def test_failing_decord_falls_back_mid_request(videos, monkeypatch):
    from vidpool.video.backends.decord_backend import DecordBackend

    original = DecordBackend.decode

    def fail_late(self, indices, size, keyframes_only=False):
        for n, item in enumerate(original(self, indices, size, keyframes_only)):
            if n == 3:
                raise VideoDecodeError("simulated decord failure")
            yield item

    monkeypatch.setattr(DecordBackend, "decode", fail_late)
    with VideoReader(videos["h264"]) as reader:
        frames = reader.sample(num_frames=8)
    assert counters(frames) == frames.indices == [int((i + 0.5) * 9) for i in range(8)]


def test_decord_reader_is_reopened_to_bound_leaks(videos, monkeypatch):
    from vidpool.video.backends import decord_backend

    monkeypatch.setattr(decord_backend, "_REOPEN_FRAMES", 8)
    with VideoReader(videos["h264"], backend="decord") as reader:
        backend = reader._current_backend()
        first = backend._reader
        frames = reader.sample(fps=24.0)
        assert backend._reader is not first
    assert counters(frames) == list(range(72))


def test_auto_decodes_dense_requests_with_pyav(videos, monkeypatch):
    from vidpool.video.backends.decord_backend import DecordBackend

    def refuse(self, indices, size, keyframes_only=False):
        raise AssertionError("dense requests should not go through decord")
        yield

    monkeypatch.setattr(DecordBackend, "decode", refuse)
    with VideoReader(videos["h264"]) as reader:
        assert reader.info.backend == "decord"
        frames = reader.sample(fps=12.0)
        fast = reader.sample(num_frames=4, exact=False)
    assert counters(frames) == frames.indices == list(range(1, 72, 2))
    assert counters(fast) == fast.indices


def test_keyframe_decoder_handles_any_frame_in_order(videos):
    from vidpool.video.backends.keyframes import KeyframeDecoder

    with VideoReader(videos["h264"], backend="pyav") as reader:
        decoder = KeyframeDecoder(reader.path, reader.index, reader.info, workers=2)
        try:
            out = list(decoder.decode(np.array([0, 5, 12, 31, 48, 70]), (60, 80)))
        finally:
            decoder.close()
    assert [t for t, _, _ in out] == [0, 5, 12, 31, 48, 70]
    assert [a for _, a, _ in out] == [0, 5, 12, 31, 48, 70]
    assert [read_frame_counter(f) for _, _, f in out] == [0, 5, 12, 31, 48, 70]


def test_metadata_is_indexed_once_per_unchanged_file(tmp_path):
    path = make_test_video(tmp_path / "clip.mp4", num_frames=12)
    probe(path)
    with VideoReader(path) as first, VideoReader(path) as second:
        assert first.index is second.index
    make_test_video(path, num_frames=20)  # rewritten: new size and mtime
    with VideoReader(path) as reader:
        assert reader.info.num_frames == 20
        assert counters(reader.sample(num_frames=2)) == [5, 15]


@pytest.mark.parametrize("name", ["h264", "mpeg4", "rot90", "vfr"])
def test_container_index_matches_demuxing_every_packet(videos, name):
    from vidpool.video.info import build_index, open_container

    container, stream = open_container(videos[name])
    try:
        fast = build_index(container, stream)
        full = build_index(container, stream, demux=True)
    finally:
        container.close()
    np.testing.assert_array_equal(fast.pts, full.pts)
    np.testing.assert_array_equal(fast.times, full.times)
    np.testing.assert_array_equal(fast.keyframes, full.keyframes)
    assert fast.frame_duration == full.frame_duration


@pytest.mark.parametrize("name", ["h264", "mpeg4", "vfr"])
def test_index_is_demuxed_where_pyav_has_no_index_entries(videos, name, monkeypatch):
    from vidpool.video import index as index_module
    from vidpool.video.info import open_container

    container, stream = open_container(videos[name])
    try:
        full = index_module.build_index(container, stream, demux=True)
        monkeypatch.setattr(index_module, "_index_entries", lambda stream: None)  # PyAV 12-16
        old = index_module.build_index(container, stream)
    finally:
        container.close()
    np.testing.assert_array_equal(old.pts, full.pts)
    np.testing.assert_array_equal(old.keyframes, full.keyframes)


@needs_index_entries
def test_constant_rate_mp4_is_indexed_from_its_container_index(videos):
    from vidpool.video.index import _index_from_entries
    from vidpool.video.info import open_container

    container, stream = open_container(videos["h264"])  # B-frames, keyframes placed by x264
    try:
        found = _index_from_entries(container, stream)
    finally:
        container.close()
    assert found is not None
    assert found[0].shape == (72,)


@pytest.mark.parametrize("name", ["h264", "rot90"])
def test_cold_keyframe_sampling_reuses_the_metadata_container(videos, name):
    from vidpool.video.info import clear_metadata_cache

    clear_metadata_cache()
    with VideoReader(videos[name]) as reader:
        assert reader._spare is not None  # the container that read the metadata, still open
        fast = reader.sample(num_frames=4, exact=False, resize=48)
        again = reader.sample(num_frames=4, exact=False, resize=48)
        assert reader._spare is None
    assert counters(fast) == fast.indices == again.indices
    assert torch.equal(fast.frames, again.frames)


@pytest.mark.parametrize("name", ["h264", "rot90", "rot270"])
def test_track_header_rotation_matches_the_decoded_frame(videos, name):
    from vidpool.video import mp4
    from vidpool.video.info import _first_frame, _frame_rotation, open_container

    container, stream = open_container(videos[name])
    try:
        header = mp4.rotation(container.name, stream.id)
        decoded = _frame_rotation(_first_frame(container, stream))
    finally:
        container.close()
    assert header is not None
    assert header % 360 == decoded % 360


@needs_index_entries
def test_composition_offsets_come_from_ctts_and_need_three_packet_reads(videos, monkeypatch):
    from vidpool.video import index as index_module
    from vidpool.video import mp4
    from vidpool.video.info import open_container

    container, stream = open_container(videos["h264"])  # B-frames: a ctts box
    try:
        offsets = mp4.composition_offsets(container.name, stream.id)
        container.seek(0, stream=stream)
        demuxed = np.array([p.pts - p.dts for p in container.demux(stream) if p.size], dtype=np.int64)
        reads = []
        real = index_module._packet_pts
        monkeypatch.setattr(index_module, "_packet_pts", lambda *a: reads.append(a[2]) or real(*a))
        index = index_module.build_index(container, stream)
        full = index_module.build_index(container, stream, demux=True)
    finally:
        container.close()
    assert offsets is not None and np.unique(offsets).size > 1  # reordered frames
    assert np.unique(demuxed - offsets).size == 1
    assert len(reads) == 3  # first, middle and last keyframe, not all six
    np.testing.assert_array_equal(index.pts, full.pts)
    np.testing.assert_array_equal(index.keyframes, full.keyframes)


def test_composition_offsets_of_a_non_mp4_or_missing_track_are_none(tmp_path, videos):
    from vidpool.video import mp4

    assert mp4.composition_offsets(str(videos["h264"]), 99) is None
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    assert mp4.composition_offsets(str(text), 1) is None


def test_composition_offsets_are_not_trusted_with_several_edits(tmp_path, videos):
    from vidpool.video import mp4

    data = bytearray(videos["h264"].read_bytes())
    at = data.find(b"elst")
    assert at > 0  # FFmpeg's muxer writes one edit for the B-frame delay
    assert mp4.composition_offsets(str(videos["h264"]), 1) is not None
    count = at + 4 + 4  # after the box type: version and flags, then the entry count
    data[count : count + 4] = (2).to_bytes(4, "big")
    edited = tmp_path / "two_edits.mp4"
    edited.write_bytes(bytes(data))
    assert mp4.composition_offsets(str(edited), 1) is None


@needs_index_entries
def test_variable_rate_mp4_is_indexed_from_ctts_without_demuxing(videos):
    from vidpool.video.index import _index_from_entries, build_index
    from vidpool.video.info import open_container

    container, stream = open_container(videos["vfr"])
    try:
        found = _index_from_entries(container, stream)
        full = build_index(container, stream, demux=True)
    finally:
        container.close()
    assert found is not None
    np.testing.assert_array_equal(found[0], full.pts)
    np.testing.assert_array_equal(np.flatnonzero(found[1]), full.keyframes)


@needs_index_entries
def test_a_ctts_shift_that_disagrees_falls_back_to_demuxing_every_packet(videos, monkeypatch):
    """Without trusted composition offsets only every packet's own stamp says where a reordered frame
    is shown: keyframes' stamps and a grid between them would number frames as the decoder emits them."""
    from vidpool.video import index as index_module
    from vidpool.video import mp4
    from vidpool.video.info import open_container

    real = mp4.composition_offsets

    def off_by_one_in_the_middle(path, track):
        offsets = real(path, track).copy()
        offsets[offsets.size // 2 :] += 1  # the middle and last keyframes disagree with the first
        return offsets

    monkeypatch.setattr(mp4, "composition_offsets", off_by_one_in_the_middle)
    reads = []
    real_read = index_module._packet_pts
    monkeypatch.setattr(index_module, "_packet_pts", lambda *a: reads.append(a[2]) or real_read(*a))
    container, stream = open_container(videos["h264"])
    try:
        index = index_module.build_index(container, stream)
        full = index_module.build_index(container, stream, demux=True)
    finally:
        container.close()
    assert len(reads) == 3  # the three checks, then no keyframe read: every packet is demuxed
    assert not index.output_order and index.reordered
    np.testing.assert_array_equal(index.pts, full.pts)
    np.testing.assert_array_equal(index.keyframes, full.keyframes)
