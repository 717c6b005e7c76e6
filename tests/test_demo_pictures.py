"""The demo's pictures of what was kept, its chat-history bookkeeping and its isolated decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vidpool
from vidpool.compression import Compressed
from vidpool.demo.pictures import heat_colors, kept_picture, overlay, patch_weights, pick_frames, token_colors
from vidpool.demo.sessions import model_turns


def _known() -> Compressed:
    """Two frames of a 2x2 grid: frame 0 averaged into token 0, frame 1 keeps one patch (token 1)."""
    assign = torch.tensor([[[0, 0], [0, 0]], [[1, -1], [-1, -1]]])
    weight = torch.tensor([[[0.25, 0.25], [0.25, 0.25]], [[1.0, 0.0], [0.0, 0.0]]])
    return Compressed(torch.zeros(2, 8), assign, weight, "test", input_shape=(2, 2, 2))


def test_patch_weights_are_the_weights_with_dropped_patches_zero():
    result = _known()
    result.weight[1, 0, 1] = 0.7  # a weight on a dropped position must not show
    weights = patch_weights(result)
    assert weights.shape == (2, 2, 2) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights[0], np.full((2, 2), 0.25))
    np.testing.assert_array_equal(weights[1], [[1.0, 0.0], [0.0, 0.0]])


def test_patch_weights_of_a_real_method_sum_to_one_per_token():
    features = torch.randn(4, 6, 6, 8)
    result = vidpool.compress(features, "spatial", stride=2)
    weights = patch_weights(result)
    assign = result.assign.numpy()
    for token in range(result.num_tokens):
        assert weights[assign == token].sum() == pytest.approx(1.0)


def test_heat_colors_run_dark_to_light_and_clip():
    colors = heat_colors(np.array([-1.0, 0.0, 0.5, 1.0, 2.0]))
    assert colors.shape == (5, 3) and colors.dtype == np.uint8
    lightness = colors.astype(int).sum(-1)
    assert lightness[0] == lightness[1] < lightness[2] < lightness[3] == lightness[4]


def test_token_colors_tell_tokens_apart_and_grey_out_dropped_patches():
    colors = token_colors(np.array([[0, 0, 1], [2, -1, -1]]))
    assert (colors[0, 0] == colors[0, 1]).all()
    assert not (colors[0, 0] == colors[0, 2]).all() and not (colors[0, 2] == colors[1, 0]).all()
    assert (colors[1, 1] == 70).all() and (colors[1, 2] == 70).all()


def test_overlay_stretches_each_patch_over_its_pixels():
    frame = np.zeros((4, 6, 3), dtype=np.uint8)
    colors = np.array([[[200, 0, 0], [0, 200, 0]]], dtype=np.uint8)  # 1 x 2 patches
    out = overlay(frame, colors, alpha=0.5)
    assert out.shape == (4, 6, 3)
    assert (out[:, :3] == [100, 0, 0]).all() and (out[:, 3:] == [0, 100, 0]).all()


def test_kept_picture_has_a_tile_per_frame_and_a_row_per_map():
    result = _known()
    frames = np.full((2, 30, 40, 3), 128, dtype=np.uint8)
    picture = kept_picture(frames, result, tile_height=30)
    tile_width = 40
    assert picture.shape == (2 * 30 + 2, 2 * tile_width + 2, 3)
    # frame 1: its kept patch (top left) is the lightest, the dropped ones the darkest
    top_row = picture[:30, tile_width + 2 :].astype(int).sum(-1)
    assert top_row[:15, :20].min() > top_row[15:, 20:].max()
    scores = torch.rand(2, 2, 2)
    assert kept_picture(frames, result, scores, tile_height=30).shape[0] == 3 * 30 + 4


def test_kept_picture_refuses_frames_that_do_not_match():
    with pytest.raises(ValueError, match="3 frames for a compression of 2"):
        kept_picture(np.zeros((3, 8, 8, 3), dtype=np.uint8), _known())


def test_pick_frames_finds_the_nearest_decoded_frame():
    assert pick_frames([0.26, 1.9], [0.25, 0.75, 1.25, 1.75]) == [0, 3]


def test_model_turns_keep_the_model_answers_since_the_last_video():
    # (question, message shown) -> the model's answer: the page shows answers with a tag line
    answers = {("q1", "a1"): "a1", ("q2", "a2"): "a2", ("q3", "a3 <small>tag</small>"): "a3"}
    history = [
        {"role": "user", "content": [{"type": "file", "file": {"path": "/tmp/a.mp4"}}]},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1"},
        {"role": "user", "content": [{"path": "/tmp/b.mp4"}, "q2"]},  # a new video with its question
        {"role": "assistant", "content": [{"type": "text", "text": "a2"}]},
        {"role": "user", "content": "q9"},
        {"role": "assistant", "content": "Could not answer: out of memory"},  # the demo's own message
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "a3 <small>tag</small>"},
    ]
    assert model_turns(history, answers) == [("q2", "a2"), ("q3", "a3")]
    assert model_turns(history[:3], {}) == []


def test_an_upload_that_hangs_is_stopped_and_the_caller_told(tmp_path):
    from vidpool.demo.decode import decode_upload
    from vidpool.errors import DecodeTimeoutError
    from vidpool.video import make_test_video

    video = make_test_video(tmp_path / "v.mp4", num_frames=8)
    with pytest.raises(DecodeTimeoutError, match=r"longer than 0\.001 s"):
        decode_upload(video, 4, timeout=0.001)


def test_decoded_frames_are_the_readers_frames(tmp_path):
    from vidpool.demo.decode import decode_upload
    from vidpool.video import VideoReader, make_test_video

    video = make_test_video(tmp_path / "v.mp4", num_frames=30, size=(160, 120))
    decoded = decode_upload(video, 5, timeout=300)
    with VideoReader(video, max_side=448) as reader:
        reference = reader.sample(5)
    np.testing.assert_array_equal(decoded.frames, reference.frames.numpy())
    np.testing.assert_allclose(decoded.timestamps, reference.timestamps.numpy())
    assert (decoded.width, decoded.height) == (160, 120)


def test_a_decoder_crash_ends_only_its_child_process(tmp_path):
    from demo_support import crashing_decoder

    from vidpool.demo.decode import decode_upload
    from vidpool.errors import VideoDecodeError
    from vidpool.video import make_test_video

    video = make_test_video(tmp_path / "v.mp4", num_frames=8)
    with pytest.raises(VideoDecodeError, match="crashed on this file"):
        decode_upload(video, 4, timeout=300, job=crashing_decoder)
    assert decode_upload(video, 4, timeout=300).frames.shape[0] == 4  # this process goes on decoding


SERVER = """
import sys
from demo_support import sleeping_decoder
from vidpool.demo.decode import decode_upload

if __name__ == "__main__":
    decode_upload(sys.argv[1], 2, timeout=600, job=sleeping_decoder)
"""


def test_a_killed_server_leaves_no_decoder_behind(tmp_path):
    import os
    import subprocess
    import sys
    import time

    from demo_support import ROOT
    from pipeline_support import kill_and_expect_orphan_gone

    from vidpool.video import make_test_video

    video = make_test_video(tmp_path / "v.mp4", num_frames=8)
    (tmp_path / "server.py").write_text(SERVER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p),
    }
    server = subprocess.Popen([sys.executable, str(tmp_path / "server.py"), str(video)], env=env)
    pid_file = tmp_path / "v.mp4.pid"
    try:
        deadline = time.monotonic() + 120
        while not pid_file.is_file() or not pid_file.read_text():
            assert time.monotonic() < deadline and server.poll() is None, "the decoder never started"
            time.sleep(0.2)
        decoder = int(pid_file.read_text())
        kill_and_expect_orphan_gone(server, decoder, "the decode child")
    finally:
        if server.poll() is None:
            server.kill()


def _many_frames(count: int) -> Compressed:
    assign = torch.arange(count * 4).reshape(count, 2, 2)
    return Compressed(
        torch.zeros(count * 4, 8), assign, torch.ones(count, 2, 2), "test", input_shape=(count, 2, 2)
    )


def test_the_kept_table_labels_its_rows_and_columns_and_says_when_it_shows_a_subset():
    from vidpool.demo.panel import kept_html
    from vidpool.demo.pictures import ROW_LABELS, kept_tiles

    frames = np.full((16, 30, 40, 3), 100, dtype=np.uint8)
    times = np.arange(16) * 0.5 + 0.25
    tiles = kept_tiles(frames, _many_frames(16), torch.rand(16, 2, 2), tile_height=30)
    assert len(tiles.columns) == 8 and tiles.total == 16
    assert [label for label, _ in tiles.rows] == list(ROW_LABELS)
    page = kept_html(tiles, times)
    assert "8 of 16 frames shown" in page
    assert all(f">{label}</th>" in page for label in ROW_LABELS)
    # one time over each column shown: the columns are chosen as frames are sampled, at the centres
    # of eight equal segments
    assert tiles.columns == [1, 3, 5, 7, 9, 11, 13, 15]
    heads = [f">{times[c]:.2f} s</th>" for c in tiles.columns]
    assert all(h in page for h in heads) and ">0.75 s</th>" in page and ">7.75 s</th>" in page
    assert page.count('class="vidpool-kept-tile"') == 3 * 8
    # four frames: all of them, and frame numbers where the video's times are unknown
    few = kept_tiles(frames[:4], _many_frames(4), tile_height=30)
    page = kept_html(few, np.full(4, np.nan))
    assert "all 4 frames shown" in page and ">frame 1</th>" in page and ">frame 4</th>" in page
    assert ROW_LABELS[2] not in page  # no scores: no relevance row


def test_kept_picture_is_the_tiles_side_by_side():
    frames = np.random.default_rng(0).integers(0, 255, (3, 30, 40, 3), dtype=np.uint8)
    from vidpool.demo.pictures import kept_tiles

    tiles = kept_tiles(frames, _many_frames(3), tile_height=30)
    picture = kept_picture(frames, _many_frames(3), tile_height=30)
    np.testing.assert_array_equal(picture[:30, :40], tiles.rows[0][1][0])
    np.testing.assert_array_equal(picture[32:62, 42:82], tiles.rows[1][1][1])


def test_paths_leave_messages_and_tags_come_off_answers():
    from vidpool.demo.stages import scrub_paths, split_tag, stage_line, tagged

    message = "cannot open '/tmp/gradio/3f2a/sub dir/notes.mp4' as a video; see /home/me/x/log.txt"
    cleaned = scrub_paths(message)
    assert "/tmp" not in cleaned and "/home" not in cleaned
    assert "notes.mp4" in cleaned and "log.txt" in cleaned
    assert scrub_paths("re-encode it (ffmpeg -i in.mp4 -c:v libx264 out.mp4), 3 KB/s") == (
        "re-encode it (ffmpeg -i in.mp4 -c:v libx264 out.mp4), 3 KB/s"
    )
    shown = tagged("a red\ncircle", "spatial · budget 32")
    assert split_tag(shown) == ("a red\ncircle", "spatial · budget 32")
    assert split_tag("plain answer") == ("plain answer", None)
    assert stage_line("encoding frames", 3, 8) == "*encoding frames 3/8 …*"
    assert stage_line("prefill") == "*prefilling …*"


def test_a_bad_upload_is_reported_once_when_it_arrives_without_server_paths(tmp_path):
    import tempfile

    from vidpool.demo import DemoConfig
    from vidpool.demo.sessions import ChatService

    fake = tmp_path / "uploads" / "f00d" / "notes.mp4"
    fake.parent.mkdir(parents=True)
    fake.write_text("these are meeting notes, not a video\n" * 20)
    service = ChatService(None, DemoConfig(decode_timeout=120), [tmp_path / "uploads"])
    check = service.check_upload(str(fake), 4, None)
    assert check.video is None and check.error.startswith("Could not use notes.mp4:")
    for server_path in (str(tmp_path), tempfile.gettempdir() + "/", "/tmp/"):
        assert server_path not in check.error
    assert service.check_upload(str(fake), 4, check.session.key) is None  # reported once
    assert check.session.video is None


def test_memory_rows_say_the_videos_frames_and_the_tokens_produced():
    from types import SimpleNamespace

    from pipeline_support import checkpoint

    from vidpool import plan
    from vidpool.demo.panel import plan_rows

    info = SimpleNamespace(num_frames=16, width=160, height=120, duration=None)
    planned = plan(info, checkpoint("tiny-native"), "cpu", method="temporal_merge", num_frames=16)
    trace = SimpleNamespace(num_frames=16, grid=(4, 4), visual_tokens=148)
    video = SimpleNamespace(total_frames=456, duration=19.0, width=320, height=240)
    rows = dict(plan_rows(planned, trace, video))
    assert rows["frames"] == "16 sampled of 456"
    assert rows["video"] == "456 frames, 19.0 s, 320×240"
    assert rows["visual tokens"] == f"at most {planned.num_tokens} planned, 148 produced"
    exact = plan(info, checkpoint("tiny-native"), "cpu", method="spatial", num_frames=16)
    produced = SimpleNamespace(num_frames=16, grid=(4, 4), visual_tokens=exact.num_tokens)
    assert dict(plan_rows(exact, produced, video))["visual tokens"] == str(exact.num_tokens)
