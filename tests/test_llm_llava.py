"""transformers LLaVA-OneVision / LLaVA-NeXT-Video checkpoints (tiny, random, built from configs) through vidpool."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from pipeline_support import checkpoint

import vidpool
from vidpool.errors import CheckpointError, InvalidArgumentError
from vidpool.integrations import LlavaVideoLM
from vidpool.llm import load_model
from vidpool.llm.compat import llava_parts, token_id, video_features
from vidpool.llm.prompt import VIDEO_MARKER, tokenize_around_marker

QUESTION = "What is going on?"
KINDS = {"llava_onevision": "tiny-llava-onevision", "llava_next_video": "tiny-llava-next-video"}


@pytest.fixture(scope="module")
def folders() -> dict[str, Path]:
    return {kind: checkpoint(name) for kind, name in KINDS.items()}


@pytest.fixture(scope="module")
def models(folders) -> dict[str, LlavaVideoLM]:
    return {kind: load_model(folder) for kind, folder in folders.items()}


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    return torch.randint(
        0, 256, (4, 36, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )


def _hf_pixels(model: LlavaVideoLM, frames: torch.Tensor) -> torch.Tensor:
    return model._pixels(frames)[None]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_loads_with_its_own_pooling_as_the_default_method(models, kind):
    model = models[kind]
    assert isinstance(model, LlavaVideoLM) and model.kind == kind and model.name == KINDS[kind]
    assert model.device == torch.device("cpu")
    assert model.config.method == "spatial"
    assert model.config.position == ("after" if kind == "llava_onevision" else "before")
    assert model.grid == (4, 4)
    assert model.lm_spec["num_layers"] == 2 and model.lm_spec["hidden_size"] == 32
    assert model.vision_spec["width"] == 32 and model.vision_spec["param_bytes"] > 0
    assert model.text_embedding("anything") is None


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_default_reproduces_transformers_features_and_logits(models, frames, kind):
    """With the checkpoint's own pooling, vidpool's path gives transformers' own answer (OneVision's
    image_newline included)."""
    model = models[kind]
    tokens = model.visual_tokens(model.encode_patches(frames))
    assert tokens.shape[0] == model.num_visual_tokens(4)
    pixels = _hf_pixels(model, frames)
    newline = llava_parts(model.model).image_newline if kind == "llava_onevision" else None
    with torch.inference_mode():
        theirs = video_features(model.model, pixels, suffix=newline)[0]
    assert torch.allclose(tokens, theirs, atol=1e-5)
    if kind == "llava_onevision":
        assert torch.allclose(tokens[-1], llava_parts(model.model).image_newline)

    embeds = model.build_inputs_embeds(tokens, QUESTION, timestamps=[0, 1, 2, 3])
    text = model.prompt_text(QUESTION, timestamps=[0, 1, 2, 3])
    before, after = tokenize_around_marker(model.tokenizer, text)
    video_id = token_id(model.hf_config, "video")
    ids = torch.tensor([[*before, *([video_id] * tokens.shape[0]), *after]])
    with torch.inference_mode():
        reference = model.model(input_ids=ids, pixel_values_videos=pixels).logits
        ours = model.model(inputs_embeds=embeds).logits
    assert torch.allclose(ours, reference, atol=1e-4)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    ("method", "params"),
    [("none", {}), ("adaptive", {"grid": (2, 2, 2)}), ("slowfast", {}), ("spatial", {"budget": 5})],
)
def test_any_method_sets_the_placeholder_count(models, frames, kind, method, params):
    model = models[kind]
    features = model.encode_patches(frames)
    tokens = model.visual_tokens(features, method=method, **params)
    newline = 1 if kind == "llava_onevision" else 0  # OneVision ends a video with image_newline
    expected = vidpool.num_output_tokens(method, (4, 4, 4), **params) + newline
    assert tokens.shape == (expected, 32) and model.num_visual_tokens(4, method=method, **params) == expected
    text = model.prompt_text(QUESTION)
    assert text.count(VIDEO_MARKER) == 1
    before, after = tokenize_around_marker(model.tokenizer, text)
    embeds = model.build_inputs_embeds(tokens, QUESTION)
    assert embeds.shape == (1, len(before) + expected + len(after), 32)
    assert torch.equal(embeds[0, len(before) : len(before) + expected], tokens)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generation_streams_the_same_text_and_is_seeded(models, frames, kind):
    model = models[kind]
    tokens = model.visual_tokens(model.encode_patches(frames), method="adaptive", grid=(2, 2, 2))
    whole = model.generate(tokens, QUESTION, max_new_tokens=12, temperature=0.8, seed=3)
    again = model.generate(tokens, QUESTION, max_new_tokens=12, temperature=0.8, seed=3)
    streamed = "".join(
        model.generate(tokens, QUESTION, max_new_tokens=12, temperature=0.8, seed=3, stream=True)
    )
    assert whole and whole == again == streamed


def test_pickle_weights_are_refused_unless_allowed(folders, models, frames, tmp_path):
    from safetensors.torch import load_file

    copy = tmp_path / "next-video-bin"
    shutil.copytree(folders["llava_next_video"], copy)
    torch.save(load_file(copy / "model.safetensors"), copy / "pytorch_model.bin")
    (copy / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="allow_pickle=True"):
        load_model(copy)
    loaded = load_model(copy, allow_pickle=True)
    original = models["llava_next_video"]
    assert torch.allclose(loaded.encode_patches(frames), original.encode_patches(frames))


def test_next_video_crops_the_centre_and_onevision_squashes(models):
    frame = torch.zeros(1, 32, 64, 3, dtype=torch.uint8)
    frame[:, :, :16] = 255
    frame[:, :, 48:] = 255
    next_video, onevision = models["llava_next_video"], models["llava_onevision"]

    def unnormalised(model: LlavaVideoLM) -> torch.Tensor:
        mean, std = (torch.tensor(model._preprocess[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
        return model._pixels(frame) * std + mean

    cropped, squashed = unnormalised(next_video), unnormalised(onevision)
    assert cropped.shape == squashed.shape == (1, 3, 32, 32)
    assert torch.allclose(cropped, torch.zeros_like(cropped), atol=1e-6)
    assert squashed[..., :4].min() > 0.9 and squashed[..., 14:18].max() < 0.1


def test_no_text_tower_means_no_joint_embeddings(models, frames):
    model = models["llava_onevision"]
    assert not model.uses_joint("prompt_guided")
    assert torch.equal(model.encode(frames).patches, model.encode_patches(frames))
    with pytest.raises(InvalidArgumentError, match="no joint image-text space"):
        model.encode(frames, joint=True)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_selected_hidden_states_equal_the_full_ones_and_stop_early(models, frames, kind):
    from vidpool.llm.compat import _encoder_layers, vision_hidden_states

    model = models[kind]
    tower = llava_parts(model.model).vision_tower
    pixels = model._pixels(frames)
    blocks = _encoder_layers(tower)
    ran = []
    handle = blocks[-1].register_forward_hook(lambda *_: ran.append(1))
    try:
        with torch.inference_mode():
            full = vision_hidden_states(tower, pixels)
            assert len(full) == len(blocks) + 1 and len(ran) == 1
            for layers in ([-1], [-2], [0], [1, -1], [-2, 0]):
                ran.clear()
                got = vision_hidden_states(tower, pixels, layers)
                assert len(got) == len(layers)
                for index, state in zip(layers, got):
                    assert torch.equal(state, full[index])
                assert len(ran) == (1 if -1 in layers else 0)  # blocks past the deepest never run
    finally:
        handle.remove()


MID_VISION = {  # 8 heads: with eager attention the scores, not the MLP, set the peak
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_hidden_layers": 3,
    "num_attention_heads": 8,
    "image_size": 112,
    "patch_size": 14,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_vision_memory_formula_equals_the_measured_peak(kind, attn, dtype):
    """The tower runs up to its selected state; the planner's per-frame formula is its exact CPU peak."""
    from vidpool.encode.measure import measure_peak
    from vidpool.models import builders as builder

    hf = builder.llava_model(kind, MID_VISION, builder.TINY_TEXT, seed=5, attn=attn).to(dtype)
    model = LlavaVideoLM(hf, builder.tiny_tokenizer(), kind=kind, center_crop=kind == "llava_next_video")
    assert model.vision_spec["activation_bytes_per_frame"] == model.activation_bytes_per_frame((720, 1280))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for hw in ((112, 112), (240, 320), (480, 640)):
            frames = torch.randint(0, 256, (3, *hw, 3), dtype=torch.uint8)
            model.encode_patches(frames)
            _, peak = measure_peak(lambda frames=frames: model.encode_patches(frames))
            measured = (peak + frames.numel()) / 3  # the caller's uint8 frames count too
            assert model.activation_bytes_per_frame(hw) == measured, (hw, measured)
    finally:
        torch.set_num_threads(threads)


def test_learned_conv_pooling_is_named_not_silently_replaced(caplog):
    from vidpool.models import builders as builder

    hf = builder.llava_model(
        "llava_next_video", builder.TINY_VISION, builder.TINY_TEXT, seed=6, spatial_pool_mode="conv"
    )
    with caplog.at_level("WARNING", logger="vidpool.integrations.transformers_llava"):
        model = LlavaVideoLM(hf, builder.tiny_tokenizer(), kind="llava_next_video", center_crop=True)
    assert "'conv'" in caplog.text and "average pooling at stride 2" in caplog.text
    assert model.config.method_params == {"stride": 2, "mode": "avg"}


def test_hidden_state_indices_out_of_range_are_refused(models, frames):
    from vidpool.llm.compat import _encoder_layers, vision_hidden_states

    model = models["llava_onevision"]
    tower = llava_parts(model.model).vision_tower
    pixels = model._pixels(frames)
    blocks = len(_encoder_layers(tower))
    for layers in ([blocks + 1], [-(blocks + 2)], []):
        with pytest.raises(InvalidArgumentError, match="vision feature layers"):
            vision_hidden_states(tower, pixels, layers)


def test_selected_hidden_states_are_per_thread(models):
    """Hooks sit on the shared tower: two threads encoding at once each get their own frames' state."""
    import threading

    from vidpool.llm.compat import vision_hidden_states

    model = models["llava_next_video"]
    tower = llava_parts(model.model).vision_tower
    inputs = [model._pixels(torch.full((2, 32, 32, 3), v, dtype=torch.uint8)) for v in (0, 255)]
    with torch.inference_mode():
        expected = [vision_hidden_states(tower, x, [-2])[0] for x in inputs]
    results: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    start = threading.Barrier(2)

    def work(k: int) -> None:
        start.wait()
        with torch.inference_mode():
            for _ in range(20):
                results[k].append(vision_hidden_states(tower, inputs[k], [-2])[0])

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for k in (0, 1):
        assert len(results[k]) == 20
        assert all(torch.equal(state, expected[k]) for state in results[k])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_preprocessing_matches_the_transformers_video_processors(models, frames, kind):
    """vidpool's batched preprocessing gives the pixels transformers' own video processors give."""
    import transformers

    model = models[kind]
    side = model._image_size
    if kind == "llava_onevision":
        processor = transformers.LlavaOnevisionVideoProcessor(
            size={"height": side, "width": side}, image_mean=[0.5] * 3, image_std=[0.5] * 3
        )
    else:
        processor = transformers.LlavaNextVideoVideoProcessor(
            size={"shortest_edge": side}, crop_size={"height": side, "width": side}
        )
    mean, std = model._preprocess["mean"], model._preprocess["std"]
    assert tuple(processor.image_mean) == tuple(mean) and tuple(processor.image_std) == tuple(std)
    theirs = processor(videos=[frames.numpy()], return_tensors="pt")["pixel_values_videos"][0]
    ours = model._pixels(frames)
    levels = (ours - theirs).abs() * torch.tensor(std).view(1, 3, 1, 1) * 255
    assert ours.shape == theirs.shape and levels.max().item() < 0.01


def test_weights_missing_from_a_checkpoint_are_refused_not_left_random(folders, tmp_path):
    """A checkpoint whose tensor names this transformers does not know loads with those weights random
    (transformers only logs it); vidpool refuses it and says what to do."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "renamed"
    shutil.copytree(folders["llava_next_video"], folder)
    weights = load_file(folder / "model.safetensors")
    renamed = {k.replace("vision_tower.", "visual_tower."): v for k, v in weights.items()}
    assert renamed.keys() != weights.keys()
    save_file(renamed, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"lacks \d+ weight tensors .* left random"):
        load_model(folder)
