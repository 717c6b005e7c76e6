"""Decoding and frame sampling: ``VideoReader``, ``probe``, frames in memory, which files are videos,
and writing videos (synthetic test videos among them).

decord decodes when installed (``pip install 'vidpool[video]'``), PyAV otherwise and whenever decord
fails on a file. Both are imported on first use. Files and frames in memory are sampled by one rule
(:mod:`vidpool.video.sampling`).
"""

from __future__ import annotations

from vidpool.video.backends import list_backends
from vidpool.video.formats import VIDEO_EXTENSIONS, is_video_path
from vidpool.video.frames import Frames, sample_frames, to_frames
from vidpool.video.info import VideoInfo, probe
from vidpool.video.reader import DEFAULT_MAX_SIDE, SamplingArgs, VideoReader
from vidpool.video.sampling import decode_size, sample_positions, sample_times
from vidpool.video.synthetic import make_audio_file, make_test_video, read_frame_counter
from vidpool.video.timeout import DECODE_TIMEOUT
from vidpool.video.writer import write_video

__all__ = [
    "DECODE_TIMEOUT",
    "DEFAULT_MAX_SIDE",
    "VIDEO_EXTENSIONS",
    "Frames",
    "SamplingArgs",
    "VideoInfo",
    "VideoReader",
    "decode_size",
    "is_video_path",
    "list_backends",
    "make_audio_file",
    "make_test_video",
    "probe",
    "read_frame_counter",
    "sample_frames",
    "sample_positions",
    "sample_times",
    "to_frames",
    "write_video",
]
