"""scripts/gpu_check.py: its CPU dry run (tiny shapes) in the default suite, the 7B run on CUDA."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from pipeline_support import ROOT


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_on_cpu(tmp_path):
    out = tmp_path / "rows.json"
    argv = ["--device", "cpu", "--tiny", "--frames", "4", "8", "--budget", "24", "--max-new-tokens", "2"]
    assert gpu_check().main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [(r["frames"], r["requested"]) for r in rows] == [
        (4, "spatial"),
        (4, "progressive"),
        (8, "spatial"),
        (8, "progressive"),
    ]
    for row in rows:
        assert "error" not in row
        assert row["method"] == row["requested"]
        assert row["ttft_s"] > 0
        assert 0.85 <= row["ratio"] <= 1.15, row
    assert rows[1]["tokens"] <= 24 and rows[2]["tokens"] == 8 * 4  # 4x4 grid pooled by 2


def test_refuses_cuda_without_a_gpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gpu_check().main(["--device", "cuda"]) == 1
    assert "--device cpu --tiny" in capsys.readouterr().err


@pytest.mark.gpu
def test_7b_shape_on_cuda(tmp_path):
    out = tmp_path / "rows.json"
    assert gpu_check().main(["--device", "cuda", "--frames", "16", "64", "--json", str(out)]) == 0
    for row in json.loads(out.read_text()):
        assert 0.8 <= row["ratio"] <= 1.2, row


def test_plan_only_prints_the_7b_plans(capsys):
    assert gpu_check().main(["--plan-only", "80GB", "--frames", "16", "256"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 4
    spatial_256 = lines[2].split()
    assert spatial_256[:3] == ["256", "spatial", str(256 * 144)]


def test_llava_dry_run_on_cpu(tmp_path, capsys):
    out = tmp_path / "rows.json"
    argv = [
        "--device",
        "cpu",
        "--tiny",
        "--llava",
        "--frames",
        "4",
        "--budget",
        "24",
        "--max-new-tokens",
        "2",
    ]
    assert gpu_check().main([*argv, "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("vision memory per") == 2 and "(+0.0%)" in printed
    rows = json.loads(out.read_text())
    assert [r["requested"] for r in rows] == ["spatial", "progressive"]
    for row in rows:
        assert 0.85 <= row["ratio"] <= 1.15, row
    # OneVision's image_newline follows the compressed tokens
    assert rows[0]["tokens"] == 4 * 4 + 1 and rows[1]["tokens"] <= 24 + 1


@pytest.mark.gpu
def test_llava_7b_shape_on_cuda(tmp_path):
    out = tmp_path / "rows.json"
    assert gpu_check().main(["--device", "cuda", "--llava", "--frames", "16", "64", "--json", str(out)]) == 0
    for row in json.loads(out.read_text()):
        assert 0.8 <= row["ratio"] <= 1.2, row
