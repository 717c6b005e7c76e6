"""`vidpool demo`: options are checked before gradio starts or a model loads, with the usual exit codes."""

from __future__ import annotations

import pytest

from vidpool.cli import main


@pytest.fixture
def no_serving(monkeypatch):
    """Loading a model or launching the app fails the test: the checks must come first."""
    import vidpool.demo
    import vidpool.pipeline

    def refuse(*args, **kwargs):
        raise AssertionError("the demo started before its options were checked")

    monkeypatch.setattr(vidpool.pipeline, "load", refuse)
    monkeypatch.setattr(vidpool.demo, "launch", refuse)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--port", "70000"], "port number"),
        (["--port", "0"], "positive integer"),
        (["--max-duration", "-5"], "positive number of seconds"),
        (["--decode-timeout", "inf"], "positive number of seconds"),
        (["--max-file-size", "lots"], "not a memory size"),
        (["--concurrency", "0"], "positive integer"),
        (["--device", "tpu"], "device"),
    ],
)
def test_bad_options_are_usage_errors(argv, says, no_serving, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", *argv])
    assert exit_.value.code == 2
    assert says in capsys.readouterr().err


def test_a_folder_without_a_checkpoint_exits_1_before_serving(tmp_path, no_serving, capsys):
    assert main(["demo", "--model", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("vidpool: error:") and str(tmp_path) in err and "Traceback" not in err


def test_help_shows_an_example_and_says_it_is_offline(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "vidpool demo --model" in out and "127.0.0.1" in out and "no share link" in out


def test_the_page_says_when_the_vision_side_is_untrained(tmp_path):
    import json
    from types import SimpleNamespace

    from pipeline_support import checkpoint

    from vidpool.demo import model_notice
    from vidpool.models import untrained_parts

    tiny = checkpoint("tiny-native")
    assert untrained_parts(tiny) == ("encoder", "projector", "lm")
    model = SimpleNamespace(name="tiny-native", kind="native", config=SimpleNamespace(untrained=[]))
    notice = model_notice(model, tiny, "cpu")
    assert "`tiny-native`" in notice and "its answers do not describe the video" in notice
    # a checkpoint that declares itself trained, or says nothing, gets no warning
    (tmp_path / "vidpool.json").write_text(json.dumps({"kind": "native", "untrained": []}))
    assert untrained_parts(tmp_path) == ()
    assert "do not describe" not in model_notice(model, tmp_path, "cpu")
    (tmp_path / "vidpool.json").write_text(json.dumps({"kind": "native", "untrained": ["projector"]}))
    assert "projector has random" in model_notice(model, tmp_path, "cpu")


def test_the_page_and_stderr_say_the_models_notice(tmp_path, monkeypatch, capsys):
    from types import SimpleNamespace

    from pipeline_support import checkpoint, noted_checkpoint

    import vidpool.demo
    from vidpool.demo import model_notice

    notice = "a toy model; it cannot describe real footage"
    noted = noted_checkpoint(tmp_path / "noted", notice)
    model = SimpleNamespace(name="noted", kind="native", config=SimpleNamespace(untrained=[], notice=None))
    page = model_notice(model, noted, "cpu")
    lines = page.splitlines()
    assert lines[0].startswith("**Model:** `noted`") and f"**About this model:** {notice}" in lines
    assert "its answers do not describe the video" in page  # its parts are still untrained: both are said
    assert "About this model" not in model_notice(model, checkpoint("tiny-native"), "cpu")
    # a model served without a folder says what its config says
    loaded = SimpleNamespace(name="x", kind="native", config=SimpleNamespace(untrained=[], notice=notice))
    assert notice in model_notice(loaded, None, "cpu")

    launched = []
    monkeypatch.setattr(vidpool.demo, "launch", launched.append)
    assert main(["demo", "--model", str(noted)]) == 0
    assert launched[0].model == str(noted)
    assert capsys.readouterr().err.splitlines().count(f"vidpool: noted: {notice}") == 1
