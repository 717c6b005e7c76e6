"""The fidelity runner end to end on a stand-in of the synthetic tasks, its memory table and its command."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from bench_support import install, small_settings
from pipeline_support import checkpoint

from vidpool.bench.fidelity import FidelitySettings, run_fidelity
from vidpool.bench.stats import holm, paired, wilson
from vidpool.bench.synth.seeds import FINAL_SEED
from vidpool.cli import main

pytest.importorskip("open_clip")
pytest.importorskip("matplotlib")

METHODS = ("spatial", "none")
BUDGETS = (1.0, 0.25)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    install(mp)
    out = tmp_path_factory.mktemp("fidelity")
    lines: list[str] = []
    settings = FidelitySettings(
        clip="tiny-clip-32",
        weights="random",
        methods=METHODS,
        budgets=BUDGETS,
        items=5,
        frames=8,
        out=str(out),
        resamples=300,
        memory_model=str(checkpoint("tiny-native")),
        memory_frames=8,
        scorer="rules",
    )
    # the untrained CLIP's weights, fixed so that every run sees the same ones; seed 0's answer none of the
    # full-token questions, which leaves fidelity undefined (nan)
    torch.manual_seed(1)
    try:
        results = run_fidelity(settings, log=lines.append)
    finally:
        mp.undo()
    return results, out, "\n".join(lines)


def test_results_json_has_every_cell_with_intervals(run):
    results, out, _ = run
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["cells"] == json.loads(json.dumps(results["cells"]))
    assert {"settings", "versions", "clip", "cells", "comparisons", "memory", "items", "seconds"} <= set(
        on_disk
    )
    assert sorted(on_disk["plots"]) == ["accuracy_all.png", "accuracy_order.png", "accuracy_static.png"]
    assert on_disk["clip"]["weights"] == "random" and set(on_disk["clip"]["zero_shot"]) >= {"colour", "shape"}
    keys = {c["key"] for c in on_disk["cells"] if c["family"] == "static"}
    expected = {f"{m}@{b:g}" for m in (*METHODS, "random_drop", "frame_subsample") for b in BUDGETS}
    assert keys == expected | {"full", "middle_frame", "shuffled", "text_only"}
    assert {c["family"] for c in on_disk["cells"]} == {"static", "order", "all"}
    for cell in on_disk["cells"]:
        assert {
            "family",
            "name",
            "fraction",
            "requested_tokens",
            "tokens",
            "n",
            "status",
            "accuracy",
            "fidelity",
        } <= set(cell)
        if cell["accuracy"] is not None:
            acc = cell["accuracy"]
            assert 0 <= acc["low"] <= acc["value"] <= acc["high"] <= 1 and acc["n"] == cell["n"]
            assert acc["n_units"] == cell["n_units"] == cell["n"]  # the stand-in's items share no clip
            # Wilson's interval on the cell's own count: never a point at 0 or 1 right
            hits = round(acc["value"] * acc["n"])
            assert (acc["low"], acc["high"]) == pytest.approx(wilson(hits, acc["n"]))
            assert acc["high"] - acc["low"] > 0.2
    assert on_disk["version"] == 2 and on_disk["seed_kind"] == "development"


def test_tokens_asked_and_given_are_recorded(run):
    cells = {(c["family"], c["key"]): c for c in run[0]["cells"]}
    t, h, w = 8, 4, 4  # tiny-clip-32: a 4x4 grid
    spatial = cells[("static", "spatial@0.25")]
    assert spatial["requested_tokens"] == t * h * w / 4 and spatial["tokens"]["max"] <= t * h * w / 4
    assert cells[("static", "middle_frame")]["tokens"]["mean"] == h * w
    assert cells[("static", "text_only")]["tokens"]["mean"] == 0


def test_a_budget_a_method_cannot_meet_is_recorded_not_raised(run):
    cell = next(c for c in run[0]["cells"] if c["family"] == "order" and c["key"] == "none@0.25")
    assert cell["status"] == "budget_error" and cell["accuracy"] is None and "BudgetError" in cell["error"]


def test_full_budget_without_pooling_answers_as_the_full_tokens(run):
    # none and spatial at 100% keep every token: the same answers as the full-token control, question
    # by question, and a fidelity of exactly 1
    items = run[0]["items"]
    for family in ("static", "order"):
        correct = items[family]["correct"]
        assert correct["none@1"] == correct["full"] == correct["spatial@1"]
    fid = next(c for c in run[0]["cells"] if c["key"] == "none@1" and c["family"] == "all")["fidelity"]
    assert (fid["value"], fid["low"], fid["high"]) == (1.0, 1.0, 1.0)


def test_paired_comparisons_use_the_same_questions(run):
    results = run[0]
    items = results["items"]
    rows = [r for r in results["comparisons"] if r["family"] == "static"]
    assert {r["rule"] for r in rows} == {
        f"{m} vs {c}" for m in ("spatial", "none") for c in ("random_drop", "frame_subsample")
    }
    row = next(r for r in rows if r["a"] == "spatial@0.25" and r["b"] == "random_drop@0.25")
    a = np.asarray(items["static"]["correct"]["spatial@0.25"]) > 0
    b = np.asarray(items["static"]["correct"]["random_drop@0.25"]) > 0
    assert len(items["static"]["ids"]) == len(items["static"]["units"]) == len(a) == len(b) == 5
    expected = paired(a, b, items["static"]["units"], resamples=300, seed=0)
    assert (row["diff"], row["a_only"], row["b_only"], row["p_value"]) == (
        expected.diff,
        expected.a_only,
        expected.b_only,
        expected.p_value,
    )
    assert expected.p_value <= row["p_holm"] <= 1
    # none@0.25 never ran: its comparison has no questions
    assert next(r for r in rows if r["a"] == "none@0.25")["n"] == 0


def test_holm_adjusts_every_comparison_of_the_run_together(run):
    tested = [r for r in run[0]["comparisons"] if "p_value" in r]
    assert {r["family"] for r in tested} == {"static", "order", "all"}
    assert [r["p_holm"] for r in tested] == pytest.approx(list(holm([r["p_value"] for r in tested])))


@pytest.mark.parametrize("seed", ["1", "4800", "999999", "-1"])
def test_a_training_seed_is_refused_before_loading(seed, monkeypatch, capsys):
    install(monkeypatch)

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded the CLIP before checking the seed")

    monkeypatch.setattr("vidpool.bench.clip.load_clip", no_loading)
    with pytest.raises(SystemExit) as info:
        main(["bench", "fidelity", "--weights", "random", "--seed", seed])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "seed 0" in err and str(FINAL_SEED) in err


@pytest.mark.parametrize("command", [["fidelity"], ["export-lmms", "--out", "x"]])
def test_every_bench_command_with_an_item_seed_refuses_training_seeds(command, capsys):
    from vidpool.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["bench", *command, "--seed", "42"])
    assert info.value.code == 2 and "training seed" in capsys.readouterr().err
    assert build_parser().parse_args(["bench", *command, "--seed", str(FINAL_SEED)]).seed == FINAL_SEED
    assert build_parser().parse_args(["bench", *command]).seed == 0


def test_the_final_and_other_seeds_are_accepted_and_named():
    from vidpool.bench.fidelity import check_settings
    from vidpool.bench.synth.seeds import check_eval_seed
    from vidpool.errors import VidpoolError

    assert check_settings(FidelitySettings(weights="random", seed=FINAL_SEED)).seed == FINAL_SEED
    assert [check_eval_seed(s) for s in (0, FINAL_SEED, 1_000_000)] == ["development", "final", "other"]
    with pytest.raises(VidpoolError, match="training seed"):
        check_settings(FidelitySettings(weights="random", seed=17))


def test_png_per_family_and_the_printed_table(run):
    _, out, log = run
    for family in ("static", "order", "all"):
        assert (out / f"accuracy_{family}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "table.txt").read_text()
    assert table in log
    assert "static (5 questions)" in table and "no budget fit" in table
    assert "random_drop" in table and "[" in table
    assert "item seed 0 (development)" in table and "accuracy [95% Wilson interval]" in table


def test_every_cell_has_its_line_with_units_fidelity_and_holm_adjusted_baselines(run):
    from vidpool.bench.report import format_cells

    results = run[0]
    lines = format_cells(results).splitlines()
    assert "vs random_drop" in lines[1] and "vs frame_subsample" in lines[1] and "units" in lines[1]
    cell = next(c for c in results["cells"] if c["family"] == "static" and c["key"] == "spatial@0.25")
    line = next(x for x in lines if x.startswith("spatial@0.25 "))  # the first family's (static)
    acc, fid = cell["accuracy"], cell["fidelity"]
    assert f"{acc['value']:.2f} [{acc['low']:.2f}, {acc['high']:.2f}]" in line
    assert f"{fid['value']:.2f} [{fid['low']:.2f}, {fid['high']:.2f}]" in line
    for baseline in ("random_drop", "frame_subsample"):
        row = next(
            r
            for r in results["comparisons"]
            if (r["family"], r["a"], r["b"]) == ("static", "spatial@0.25", f"{baseline}@0.25")
        )
        assert f"{row['diff']:+.2f} p {row['p_holm']:.2g}" in line
    assert line.split()[4:6] == ["5", "5"]  # questions and units


def test_results_of_version_1_still_print(run):
    from vidpool.bench.report import format_table

    old = json.loads(json.dumps(run[0]))
    old["version"] = 1
    del old["seed_kind"]
    for cell in old["cells"]:
        del cell["n_units"]
    for row in old["comparisons"]:
        row.pop("p_holm", None)
    table = format_table(old)
    assert "95% bootstrap interval" in table and "p_raw" in table


def test_memory_measured_against_planned(run):
    memory = run[0]["memory"]
    assert memory["status"] == "ok" and memory["frames"] == 8
    rows = {(r["method"], r["fraction"]): r for r in memory["rows"]}
    none = rows[("none", 1.0)]
    assert none["tokens"] == 8 * 4 * 4 and none["vs_none"] == 1.0
    spatial = rows[("spatial", 0.25)]
    assert spatial["tokens"] == 32 and spatial["vs_none"] < 1
    for row in (none, spatial):  # the measured prefill, not the planner, is the reference
        assert row["measured_after_encoding"] == pytest.approx(row["plan_after_encoding"], rel=0.15)


def test_memory_beyond_the_context_is_refused_by_the_plan_but_estimated():
    from vidpool.bench.memory import memory_table

    # tiny-native's LM holds 4096 positions; 300 frames x 16 tokens do not fit
    table = memory_table(
        str(checkpoint("tiny-native")),
        ["spatial"],
        [1.0, 0.125],
        frames=300,
        measure_fraction=None,
        log=print,
    )
    rows = {(r["method"], r["fraction"]): r for r in table["rows"]}
    assert rows[("none", 1.0)]["status"] == "refused" and "context" in rows[("none", 1.0)]["error"]
    assert (
        rows[("none", 1.0)]["estimate_after_encoding"] > rows[("spatial", 0.125)]["estimate_after_encoding"]
    )
    assert rows[("spatial", 0.125)]["status"] == "ok" and rows[("spatial", 0.125)]["vs_none"] < 1


def test_shuffled_features_equal_encoding_the_shuffled_frames():
    from vidpool.bench.fidelity import _shuffled
    from vidpool.encode import CLIPEncoder

    mp = pytest.MonkeyPatch()
    install(mp)
    try:
        torch.manual_seed(0)
        encoder = CLIPEncoder("tiny-clip-32", None)
        frames = np.random.default_rng(0).integers(0, 256, size=(6, 32, 32, 3), dtype=np.uint8)
        enc = encoder.encode_frames(torch.from_numpy(frames), joint=True)
        features, joint = _shuffled(frames, enc.patches, enc.joint, encoder, seed=3)
        order = np.random.default_rng(3).permutation(6)
        direct = encoder.encode_frames(torch.from_numpy(frames[order]), joint=True)
    finally:
        mp.undo()
    assert torch.allclose(features, direct.patches, atol=1e-5)
    assert torch.allclose(joint, direct.joint, atol=1e-5)


@pytest.mark.parametrize(
    "argv",
    [
        ["--budgets", "2"],
        ["--budgets", "0"],
        ["--budgets", "a"],
        ["--methods", "nope"],
        ["--items", "0"],
        ["--families", "static,nope"],
    ],
)
def test_bad_options_exit_2_before_loading(argv, monkeypatch, capsys):
    install(monkeypatch)

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded the CLIP before checking the options")

    monkeypatch.setattr("vidpool.bench.clip.load_clip", no_loading)
    with pytest.raises(SystemExit) as info:
        main(["bench", "fidelity", "--weights", "random", *argv])
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_missing_world_weights_say_how_to_train_them(monkeypatch, tmp_path, capsys):
    install(monkeypatch)
    folder = tmp_path / "vidpool-synth"
    folder.mkdir()
    (folder / "vidpool-synth-clip.json").write_text((checkpoint_config()).read_text())
    monkeypatch.setattr("vidpool.bench.clip.synth_folders", lambda: [folder])
    assert main(["bench", "fidelity", "--out", str(tmp_path / "out"), "--no-memory"]) == 1
    err = capsys.readouterr().err
    assert "train_synth_clip.py" in err and "--weights" in err


def test_bench_help_has_an_example(capsys):
    with pytest.raises(SystemExit) as info:
        main(["bench", "fidelity", "--help"])
    assert info.value.code == 0
    assert "vidpool bench fidelity --quick" in capsys.readouterr().out


def checkpoint_config():
    from vidpool.models.builders import SYNTH_CLIP_CONFIG, SYNTH_DIR

    return SYNTH_DIR / SYNTH_CLIP_CONFIG


def test_runner_on_the_real_synthetic_tasks(tmp_path):
    settings = small_settings(tmp_path, families=("static", "order"), items=3, max_frames=16, resamples=100)
    results = run_fidelity(settings, log=lambda line: None)
    cells = {(c["family"], c["key"]): c for c in results["cells"]}
    assert (
        cells[("order", "shuffled")]["n"] == 3 and cells[("order", "spatial@1")]["tokens"]["max"] == 16 * 16
    )
    for family in ("static", "order"):
        assert results["items"][family]["correct"]["spatial@1"] == results["items"][family]["correct"]["full"]
    assert (tmp_path / "accuracy_order.png").is_file()


def test_the_trained_reader_scores_the_real_world_and_refuses_another_clip(tmp_path):
    """The default scorer on the real world: the reader answers every arm, and the table says so."""
    pytest.importorskip("open_clip")
    from vidpool.bench.fidelity import FidelitySettings, check_settings, run_fidelity
    from vidpool.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="--scorer rules"):
        check_settings(FidelitySettings(clip="tiny-clip-32", weights="random"))
    settings = FidelitySettings(
        families=("static",),
        methods=("spatial",),
        budgets=(1.0, 0.25),
        items=6,
        resamples=100,
        memory=False,
        out=str(tmp_path),
    )
    lines: list[str] = []
    results = run_fidelity(settings, log=lines.append)
    assert results["scorer"] == "reader"
    cells = {c["key"]: c for c in results["cells"] if c["family"] == "static"}
    assert cells["full"]["accuracy"]["value"] >= 4 / 6  # the shipped reader reads static items
    assert cells["text_only"]["n_items"] == 6 and cells["spatial@0.25"]["tokens"]["max"] == 128
    assert any(line.startswith("trained reader") for line in "\n".join(lines).splitlines())


def test_the_best_method_line_names_the_highest_fidelity_and_its_wins(run):
    from vidpool.bench.report import format_best

    results, _, printed = run
    text = format_best(results)
    assert text.splitlines()[0].startswith("best method per family and budget") and text in printed
    cells = {(c["family"], c["key"]): c for c in results["cells"]}
    comparisons = {(r["family"], r["a"], r["b"]): r for r in results["comparisons"]}
    for line in text.splitlines()[1:]:
        family, rest = line.split(": ", 1)
        for part in rest.split("; "):
            if part.endswith(": -"):  # no method with a defined fidelity at this budget
                continue
            share, name, value, *_, wins = part.split(" ")
            fraction = float(share.rstrip("%:")) / 100
            best = max(
                (
                    cells[(family, f"{m}@{fraction:g}")]
                    for m in METHODS
                    if cells[(family, f"{m}@{fraction:g}")]["fidelity"]
                    and not math.isnan(cells[(family, f"{m}@{fraction:g}")]["fidelity"]["value"])
                ),
                key=lambda c: c["fidelity"]["value"],
            )
            assert name == best["name"] and float(value) == round(best["fidelity"]["value"], 2)
            row = comparisons[(family, best["key"], f"random_drop@{fraction:g}")]
            assert (wins.split("/")[0] == "yes") == (row["diff"] > 0 and row["p_holm"] < 0.05)
