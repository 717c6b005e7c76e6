"""Bad input raises a VidpoolError subclass with an actionable message, never a hang or a crash."""

from __future__ import annotations

import struct

import pytest

from vidpool.errors import InvalidArgumentError, VideoDecodeError, VideoNotFoundError, VidpoolError
from vidpool.video import VideoReader, make_audio_file, make_test_video, probe, read_frame_counter


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    return {
        "plain": make_test_video(d / "plain.mp4", num_frames=48, keyframe_interval=12),
        "faststart": make_test_video(d / "fs.mp4", num_frames=48, keyframe_interval=12, faststart=True),
    }


def test_missing_file(tmp_path):
    with pytest.raises(VideoNotFoundError, match="not found"):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(VideoNotFoundError, match="not a file"):
        VideoReader(tmp_path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="0 bytes"):
        VideoReader(path)


def test_text_file_named_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(VideoDecodeError, match="not a video container"):
        probe(path)


def test_truncated_mp4_with_index_at_end(tmp_path, good):
    data = good["plain"].read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoDecodeError, match="truncated"):
        VideoReader(path)


@pytest.mark.parametrize("backend", ["auto", "pyav"])
def test_truncated_faststart_mp4_reads_what_is_there(tmp_path, good, backend):
    data = good["faststart"].read_bytes()
    path = tmp_path / "cut_fs.mp4"
    path.write_bytes(data[: len(data) * 6 // 10])
    with VideoReader(path, backend=backend, timeout=10) as reader:
        assert 0 < reader.info.num_frames < 48
        frames = reader.sample(fps=24.0)
        sparse = reader.sample(num_frames=2)
        assert reader.info.backend == "pyav"  # decord cannot open it
    assert [read_frame_counter(f) for f in sparse.frames] == sparse.indices
    assert [read_frame_counter(f) for f in frames.frames] == frames.indices
    assert frames.indices == sorted(frames.indices)


def test_truncated_faststart_mp4_with_decord_raises(tmp_path, good):
    data = good["faststart"].read_bytes()
    path = tmp_path / "cut_fs.mp4"
    path.write_bytes(data[: len(data) * 6 // 10])
    with pytest.raises(VidpoolError), VideoReader(path, backend="decord", timeout=10) as reader:
        reader.sample(fps=24.0)


def test_audio_only_file(tmp_path):
    path = make_audio_file(tmp_path / "tone.mp4")
    with pytest.raises(VideoDecodeError, match="no video stream"):
        probe(path)


def test_video_stream_without_frames(tmp_path):
    path = make_test_video(tmp_path / "none.mp4", num_frames=0)
    with pytest.raises(VideoDecodeError, match="no video stream holding frames"):
        VideoReader(path)


def test_zero_decodable_frames(tmp_path, good):
    data = bytearray(good["plain"].read_bytes())
    at = data.find(b"mdat")
    size = struct.unpack(">I", data[at - 4 : at])[0]
    data[at + 4 : at - 4 + size] = bytes(size - 8)
    path = tmp_path / "blank.mp4"
    path.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError, match=r"could be decoded|cannot"):  # noqa: SIM117
        with VideoReader(path, timeout=10) as reader:
            reader.sample(num_frames=4)


@pytest.mark.parametrize("kwargs", [{"backend": "ffmpeg"}, {"timeout": 0}, {"timeout": -1.0}])
def test_bad_reader_arguments(good, kwargs):
    with pytest.raises(InvalidArgumentError):
        VideoReader(good["plain"], **kwargs)


def test_bad_sample_arguments(good):
    with VideoReader(good["plain"]) as reader:
        with pytest.raises(InvalidArgumentError):
            reader.sample(num_frames=4, fps=1.0)
        with pytest.raises(InvalidArgumentError):
            reader.sample(start=10.0)
        with pytest.raises(InvalidArgumentError):
            next(iter(reader.chunks(chunk_size=0)))


def test_errors_are_builtin_compatible(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.mp4")


def test_resolution_above_the_limit_is_refused(good, monkeypatch):
    from vidpool.video import info as info_mod

    monkeypatch.setattr(info_mod, "MAX_PIXELS", 100 * 100)
    info_mod.clear_metadata_cache()
    with pytest.raises(VideoDecodeError, match="pixel limit"):
        VideoReader(good["plain"])
