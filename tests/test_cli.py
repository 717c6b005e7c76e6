"""The ``vidpool`` command: methods, plan, chat; --help examples; exit codes 0 / 1 / 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pipeline_support import ROOT, checkpoint, sample_video

import vidpool
from vidpool.cli import main


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return str(sample_video(tmp_path_factory.mktemp("video")))


@pytest.fixture(scope="module")
def tiny():
    return str(checkpoint("tiny-native"))


def test_methods_lists_every_method(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in vidpool.list_methods():
        assert name in out


@pytest.mark.parametrize("argv", [[], ["plan"], ["chat"], ["methods"]])
def test_help_has_an_example(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "vidpool " in out


def test_plan_prints_the_table(video, tiny, capsys):
    assert main(["plan", video, "--model", tiny, "--gpu-memory", "24GB", "--frames", "16"]) == 0
    out = capsys.readouterr().out
    assert "frames to sample" in out and "16" in out
    assert "cuda" in out and "22.35 GiB available" in out  # 24 GB = 22.35 GiB
    for term in ("weights", "encoder activations", "visual tokens", "KV cache", "margin", "required"):
        assert term in out


def test_plan_json(video, tiny, capsys):
    import json

    assert main(["plan", video, "--model", tiny, "--memory", "4GiB", "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["device"] == "cpu" and data["available"] == 4 * 2**30
    assert data["num_frames"] == 4  # the checkpoint's default


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "v.mp4"],  # --model missing
        ["plan", "v.mp4", "--model", "m", "--gpu-memory", "lots"],
        ["plan", "v.mp4", "--model", "m", "--frames", "0"],
        ["plan", "v.mp4", "--model", "m", "--method", "squash"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_failures_exit_1_with_one_line(tiny, tmp_path, capsys):
    assert main(["plan", str(tmp_path / "missing.mp4"), "--model", tiny]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vidpool: error:") and "missing.mp4" in err
    assert "Traceback" not in err


def test_plan_that_cannot_fit_exits_1(video, tiny, capsys):
    assert main(["plan", video, "--model", tiny, "--gpu-memory", "1MB"]) == 1
    assert "does not fit" in capsys.readouterr().err


def test_debug_shows_the_traceback(tiny, tmp_path):
    with pytest.raises(vidpool.VideoNotFoundError):
        main(["plan", str(tmp_path / "missing.mp4"), "--model", tiny, "--debug"])


def test_chat_streams_an_answer(video, tiny, capsys):
    argv = ["chat", video, "What happens?", "--model", tiny, "--device", "cpu", "--frames", "4"]
    assert main([*argv, "--max-new-tokens", "5", "--show-plan"]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("\n") and len(captured.out) > 1
    assert "frames to sample" in captured.err


def test_console_entry_point_exit_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "vidpool.cli", "plan", str(tmp_path / "none.mp4"), "--model", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("vidpool: error:")


def test_offload_plans_load_with_an_accelerate_split():
    from types import SimpleNamespace

    from vidpool.pipeline import load_kwargs

    assert load_kwargs(SimpleNamespace(placement="gpu", device="cuda")) == {}
    offload = load_kwargs(
        SimpleNamespace(placement="gpu+cpu-offload", device="cuda:1", lm_bytes_on_device=5 * 2**30)
    )
    assert offload["device_map"] == "auto"
    assert offload["max_memory"][1] == 5 * 2**30 and offload["max_memory"]["cpu"] > 0
