"""scripts/compare_runs.py: two training logs paired sample by sample."""

from __future__ import annotations

import importlib.util
import json

import pytest
from pipeline_support import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts" / "compare_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _log(path, losses, shift=0.0, other_method_at=None):
    rows = [{"step": 0, "start": {}}]
    for step, pair in enumerate(losses, start=1):
        samples = []
        for family, loss in pair:
            method = "spatial" if step == other_method_at else "none"
            samples.append([family, method, "free", loss + (shift if family == "count" else 0.0)])
        samples.append(["static", "none", "letter", 0.7])
        rows.append({"step": step, "loss": 1.0, "samples": samples})
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


LOSSES = [[("count", 0.5 + 0.01 * i), ("order", 0.9 - 0.01 * i)] for i in range(20)]


def test_paired_differences_per_family_and_window(tmp_path, capsys):
    script = _script()
    a = _log(tmp_path / "a.jsonl", LOSSES)
    b = _log(tmp_path / "b.jsonl", LOSSES, shift=-0.2, other_method_at=3)
    assert script.main([str(a), str(b), "--window", "10", "--json"]) == 0
    out = capsys.readouterr().out
    assert "drawn differently: 2" in out  # step 3's two free samples name another method
    rows = json.loads(out.strip().splitlines()[-1])["rows"]
    by = {(tuple(r["steps"]), r["family"]): r for r in rows}
    count = by[((1, 10), "count")]
    assert count["n"] == 9 and count["b_lower"] == 9
    assert count["difference"] == pytest.approx(-0.2)
    assert count["interval"] == pytest.approx([-0.2, -0.2])
    order = by[((11, 20), "order")]
    assert order["difference"] == pytest.approx(0.0) and order["b_lower"] == 0
    assert by[((11, 20), "all")]["n"] == 20
    assert all(r["family"] != "static" for r in rows)  # lettered samples are left out by default


def test_a_missing_log_says_what_to_pass(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _script().main([str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")])
    assert "log.jsonl" in capsys.readouterr().err
