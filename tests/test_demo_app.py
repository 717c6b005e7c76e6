"""The chat demo served for real: `vidpool demo` on localhost, driven by gradio_client and by Chromium.

One server per module (starting it imports gradio, transformers and open_clip). Answers are checked
against the library itself: the tiny model answers greedily, so the app must give exactly what a
``VideoChat`` over the same decoded frames gives.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from demo_support import DemoServer  # noqa: E402
from pipeline_support import checkpoint  # noqa: E402

from vidpool.demo.sessions import ASK_FIRST  # noqa: E402

MAX_FILE_SIZE = 2_000_000
FRAMES = 4


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("demo-home")
    demo = DemoServer(
        checkpoint("tiny-native"),
        home,
        "--max-file-size",
        str(MAX_FILE_SIZE),
        "--max-duration",
        "30",
        "--decode-timeout",
        "120",
    )
    try:
        demo.wait()
        yield demo
    finally:
        demo.stop()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    from vidpool.video import make_test_video

    folder = tmp_path_factory.mktemp("demo-videos")
    return {
        "short": make_test_video(folder / "short.mp4", num_frames=24, fps=24, size=(160, 120)),
        "long": make_test_video(folder / "long.mp4", num_frames=96, fps=24, size=(192, 144)),
    }


def _client(server):
    return gradio_client.Client(server.url, verbose=False, download_files=False)


def _message(text, path=None):
    files = [gradio_client.handle_file(str(path))] if path is not None else []
    return {"text": text, "files": files}


def _library_answers(path, questions, max_new_tokens=128):
    """What the library answers about the frames the demo decodes (same sampler, same size limit)."""
    from types import SimpleNamespace

    from vidpool.pipeline import VideoChat
    from vidpool.video import VideoReader

    with VideoReader(path, max_side=448) as reader:
        sampled = reader.sample(FRAMES)
    video = SimpleNamespace(frames=sampled.frames.numpy(), timestamps=sampled.timestamps.numpy())
    chat = VideoChat(video, checkpoint("tiny-native"), num_frames=FRAMES, max_new_tokens=max_new_tokens)
    return [chat.ask(q) for q in questions], sampled.timestamps.numpy()


def test_two_questions_stream_the_library_answers(server, videos):
    client = _client(server)
    questions = ["What happens in this video?", "And after that?"]
    expected, stamps = _library_answers(videos["short"], questions)
    job = client.submit(_message(questions[0], videos["short"]), FRAMES, api_name="/chat")
    updates = list(job)
    first = job.result()
    assert first[0] == expected[0]
    assert updates and all(expected[0].startswith(u[0]) for u in updates)  # growing prefixes
    frames_html, kept_html, summary, plan_table = first[1:5]
    assert frames_html.count("<img") == FRAMES
    for t in stamps:
        assert f"{t:.2f} s" in frames_html
    assert 'class="vidpool-kept"' in kept_html and "data:image/png;base64," in kept_html
    assert f"{FRAMES} frames" in summary and "encode" in summary and "generate" in summary
    assert "predicted peak" in plan_table
    # a follow-up: same video, the earlier turn as context, features from the session's cache
    second = client.predict(_message(questions[1]), FRAMES, api_name="/chat")
    assert second[0] == expected[1]
    assert "cached" in second[3]


def test_a_question_before_any_video_gets_a_clear_message(server):
    answer = _client(server).predict(_message("What is in the video?"), api_name="/chat")
    assert answer[0] == ASK_FIRST


def test_two_clients_at_once_see_only_their_own_answers(server, videos):
    clients = {name: _client(server) for name in videos}
    results: dict[str, tuple] = {}

    def ask(name):
        results[name] = clients[name].predict(
            _message("What happens?", videos[name]), FRAMES, api_name="/chat"
        )

    threads = [threading.Thread(target=ask, args=(name,)) for name in videos]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    for name, path in videos.items():
        (answer,), stamps = _library_answers(path, ["What happens?"])
        assert results[name][0] == answer
        assert all(f"{t:.2f} s" in results[name][1] for t in stamps)
    # and neither session leaks into a third one
    assert _client(server).predict(_message("And then?"), api_name="/chat")[0] == ASK_FIRST


def test_a_text_file_named_mp4_gives_a_message_and_the_app_keeps_serving(server, videos, tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("these are meeting notes, not a video\n" * 20)
    client = _client(server)
    answer = client.predict(_message("What happens?", fake), FRAMES, api_name="/chat")[0]
    assert answer.startswith("Could not use this file:") and "ffmpeg" in answer
    (expected,), _ = _library_answers(videos["short"], ["What happens?"])
    assert client.predict(_message("What happens?", videos["short"]), FRAMES, api_name="/chat")[0] == expected


def test_an_oversized_upload_is_refused(server, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (MAX_FILE_SIZE + 1))
    with pytest.raises(Exception, match=r"(?i)size|large|exceed"):
        _client(server).predict(_message("What happens?", big), FRAMES, api_name="/chat")


def test_the_page_uploads_asks_and_shows_what_was_kept(server, videos, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("Debian's chromium is not installed")
    shot = tmp_path / "demo.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1250})
            page.goto(server.url, timeout=120_000)
            page.locator("input[type=file]").first.set_input_files(str(videos["long"]))
            box = page.locator("textarea").first
            box.fill("What happens in this video?")
            page.wait_for_timeout(1000)  # the upload finishes before the message is sent
            box.press("Enter")
            page.locator("img.vidpool-kept").wait_for(timeout=300_000)
            assert page.locator(".vidpool-frame").count() == FRAMES
            assert page.get_by_text("random, untrained").count() >= 1
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    if os.environ.get("VIDPOOL_DEMO_SCREENSHOT"):  # refreshing the README's picture
        shutil.copyfile(shot, os.environ["VIDPOOL_DEMO_SCREENSHOT"])
