"""The demo's Compare switch without a server: ChatService answers a question with every token, then as
asked, and the panel draws what was kept for the compressed answer alone.

The tiny model answers greedily, so each answer must be what a library ``VideoChat`` over the same
decoded frames gives with the same method, budget and earlier turns.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pipeline_support import checkpoint

from vidpool.demo import DemoConfig
from vidpool.demo.sessions import ChatService, model_turns
from vidpool.demo.stages import split_tag

FRAMES = 4
BUDGET = 16
NEW_TOKENS = 6
QUESTION = "What happens in this video?"
FOLLOW_UP = "And after that?"


@pytest.fixture(scope="module")
def model():
    from vidpool.pipeline import load

    return load(checkpoint("tiny-native"), device="cpu")


@pytest.fixture
def service(model, tmp_path):
    from vidpool.video import make_test_video

    uploads = tmp_path / "uploads"
    uploads.mkdir()
    make_test_video(uploads / "clip.mp4", num_frames=24, fps=24, size=(160, 120))
    return ChatService(model, DemoConfig(decode_timeout=300), [uploads])


def _ask(service, text, history=(), *, compare, method="spatial", budget=BUDGET, key=None, with_file=True):
    files = [str(service.upload_roots[0] / "clip.mp4")] if with_file else []
    return list(
        service.respond(
            {"text": text, "files": files},
            list(history),
            frames=FRAMES,
            method=method,
            budget=budget,
            temperature=0.0,
            max_new_tokens=NEW_TOKENS,
            session_key=key,
            compare=compare,
        )
    )


def _library(model, session, method, turns=(), question=QUESTION):
    """What the library answers about the session's decoded frames."""
    from vidpool.pipeline import VideoChat
    from vidpool.video import Frames

    video = Frames(session.video.frames, session.video.timestamps)
    budget = None if method == "none" else BUDGET
    chat = VideoChat(video, model, num_frames=FRAMES, method=method, budget=budget, max_new_tokens=NEW_TOKENS)
    chat.history = list(turns)
    return chat.ask(question)


def test_compare_answers_with_every_token_then_as_asked(model, service):
    replies = _ask(service, QUESTION, compare=True)
    final = replies[-1]
    assert final.error is None and isinstance(final.messages, list) and len(final.messages) == 2
    (every, every_tag), (pooled, pooled_tag) = (split_tag(m) for m in final.messages)
    session = final.session
    assert every == _library(model, session, "none")
    assert pooled == _library(model, session, "spatial")
    # each tag names what produced its answer, with the numbers of its own trace and plan
    assert final.baseline.plan.method == "none" and final.trace.plan.method == "spatial"
    patches = final.trace.patch_tokens
    assert every_tag.startswith(
        f"none · no budget · {patches} of {patches} visual tokens · {FRAMES} frames · "
    )
    assert pooled_tag.startswith(
        f"spatial · budget {BUDGET} · {final.trace.visual_tokens} of {patches} visual tokens · {FRAMES} frames · "
    )
    assert final.trace.visual_tokens < patches
    from vidpool.schedule import format_bytes

    for tag, trace in ((every_tag, final.baseline), (pooled_tag, final.trace)):
        assert " · prefill " in tag and f" · predicted peak {format_bytes(trace.plan.memory.peak)} · " in tag
    # streamed one after the other: the every-token answer alone first, then beside the growing second
    alone = [r for r in replies if not r.before and r.error is None]
    beside = [r for r in replies if r.before]
    assert alone and beside and replies.index(alone[-1]) < replies.index(beside[0])
    assert all(r.before == (final.messages[0],) for r in beside)
    assert all(r.trace is None for r in replies[:-1])


def test_the_panel_compares_both_and_draws_what_was_kept_for_the_compressed_one(service):
    from vidpool.demo.app import panel_outputs
    from vidpool.demo.panel import kept_html, trace_tiles

    final = _ask(service, QUESTION, compare=True)[-1]
    unchanged = SimpleNamespace(skip=lambda: "unchanged")
    request = {"num_frames": FRAMES, "method": "spatial", "budget": BUDGET}
    frames, kept, summary, plan_table = panel_outputs(unchanged, final, request)
    video = final.session.video
    assert frames.count("<img") == FRAMES
    assert kept == kept_html(trace_tiles(final.trace, video.frames, video.timestamps), final.trace.timestamps)
    assert kept.count('class="vidpool-kept-tile"') == 2 * FRAMES  # one picture: weight and token rows
    every = final.baseline
    assert f"| visual tokens | {every.visual_tokens} | {final.trace.visual_tokens} |" in summary
    assert summary.startswith(f"| | every token | spatial, budget {BUDGET} |")
    assert "| predicted peak |" in summary and "| prefill |" in summary
    assert f"| token budget | {BUDGET} |" in plan_table  # the plan shown is the compressed answer's
    # while an answer streams the panel keeps what it shows
    streaming = next(
        r
        for r in _ask(service, FOLLOW_UP, compare=True, with_file=False, key=final.session.key)
        if r.before and r.trace is None
    )
    assert panel_outputs(unchanged, streaming, request) == ("unchanged",) * 4


def test_compare_off_gives_one_answer_with_its_methods_own_context(model, service):
    first = _ask(service, QUESTION, compare=True)[-1]
    session = first.session
    history = [
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first.messages[0]},
        {"role": "assistant", "content": first.messages[1]},
    ]
    every, pooled = (split_tag(m)[0] for m in first.messages)
    # each method is shown its own earlier answer
    assert model_turns(history, session.answers, "none") == [(QUESTION, every)]
    assert model_turns(history, session.answers, "spatial") == [(QUESTION, pooled)]
    off = _ask(service, FOLLOW_UP, history, compare=False, key=session.key, with_file=False)[-1]
    assert isinstance(off.messages, str) and off.before == () and off.baseline is None
    answer, tag = split_tag(off.messages)
    assert answer == _library(model, session, "spatial", [(QUESTION, pooled)], FOLLOW_UP)
    assert (
        tag.startswith(f"spatial · budget {BUDGET} · ")
        and "prefill" not in tag
        and "predicted peak" not in tag
    )
    # the panel is the single answer's again: no comparison table
    from vidpool.demo.app import panel_outputs

    summary = panel_outputs(SimpleNamespace(skip=lambda: None), off, {})[2]
    assert summary.startswith("**Visual tokens:**") and "every token" not in summary


def test_compare_with_method_none_answers_once(service):
    final = _ask(service, QUESTION, compare=True, method="none", budget=0)[-1]
    assert final.error is None, final.error
    assert isinstance(final.messages, str) and final.baseline is None
    assert split_tag(final.messages)[1].startswith("none · no budget · ")
