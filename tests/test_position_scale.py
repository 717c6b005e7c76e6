"""scripts/position_scale.py: the position layer's output norm beside the projected tokens'."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from pipeline_support import ROOT


def _script():
    spec = importlib.util.spec_from_file_location("position_scale", ROOT / "scripts" / "position_scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _where_projector(bias_norm: float):
    from vidpool.llm import build_projector

    torch.manual_seed(0)
    projector = build_projector("mlp2x_gelu_where", 8, 16)
    with torch.no_grad():  # a position layer that adds one fixed vector whatever the position
        projector.where.bias.copy_(torch.full((16,), bias_norm / 4.0))
    return projector.eval()


def test_scales_are_the_mean_token_norms_of_each_part():
    script = _script()
    grids = [torch.randn(2, 3, 3, 8), torch.randn(4, 2, 2, 8)]
    projector = _where_projector(5.0)
    out = script.scales(projector, grids)
    with torch.no_grad():
        expected = torch.cat([projector(g).reshape(-1, 16).norm(dim=-1) for g in grids]).mean().item()
    assert out["token_norm"] == pytest.approx(expected, abs=1e-3)
    assert out["position_norm"] == pytest.approx(5.0, abs=1e-3)
    assert out["ratio"] == pytest.approx(5.0 / expected, abs=1e-4)
    assert script.scales(_where_projector(0.0), grids)["position_norm"] == 0.0


def test_a_training_states_projector_is_read_without_its_lora(tmp_path):
    script = _script()
    projector = _where_projector(2.0)
    state = {f"projector.{k}": v for k, v in projector.state_dict().items()}
    state["lora.layer__lora_A__weight"] = torch.zeros(2, 2)
    torch.save({"trainable": state, "opt": {}, "step": 3}, tmp_path / "state.pt")
    read = script.projector_weights(tmp_path / "state.pt")
    assert read.keys() == projector.state_dict().keys()
    assert all(torch.equal(read[k], v) for k, v in projector.state_dict().items())
    torch.save({"opt": {}, "step": 3}, tmp_path / "empty.pt")
    with pytest.raises(SystemExit, match="no 'trainable'"):
        script.projector_weights(tmp_path / "empty.pt")
