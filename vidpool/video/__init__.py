"""Decoding and frame sampling: ``VideoReader``, ``probe`` and synthetic test videos.

decord decodes when installed (``pip install 'vidpool[video]'``), PyAV otherwise and whenever decord
fails on a file. Both are imported on first use.
"""

from __future__ import annotations

from vidpool.video.backends import list_backends
from vidpool.video.info import VideoInfo, probe
from vidpool.video.reader import DEFAULT_MAX_SIDE, Frames, SamplingArgs, VideoReader
from vidpool.video.sampling import decode_size, sample_times
from vidpool.video.synthetic import make_audio_file, make_test_video, read_frame_counter

__all__ = [
    "DEFAULT_MAX_SIDE",
    "Frames",
    "SamplingArgs",
    "VideoInfo",
    "VideoReader",
    "decode_size",
    "list_backends",
    "make_audio_file",
    "make_test_video",
    "probe",
    "read_frame_counter",
    "sample_times",
]
