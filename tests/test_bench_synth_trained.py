"""With the world's trained CLIP, the retrieval scorer reads static items from all tokens far above
chance (skipped where the weights are absent); with random weights it stays below that bar, so the bar
measures training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vidpool.bench.synth import control_kept, make_items, option_scores, render_item, text_embedder

pytest.importorskip("open_clip")

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "checkpoints" / "vidpool-synth" / "vidpool-synth-clip.json"
WEIGHTS = ROOT / "checkpoints" / "vidpool-synth" / "clip.safetensors"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _accuracy(encoder, family: str, count: int) -> float:
    embed, hits = text_embedder(encoder), 0
    for item in make_items(family, count, seed=123):
        encoded = encoder.encode_frames(torch.from_numpy(render_item(item)), joint=True)
        kept = control_kept("full", encoded.patches, encoded.joint)
        hits += int(np.argmax(option_scores(item, kept, embed)) == item.answer)
    return hits / count


def test_random_weights_stay_below_the_trained_bar():
    from vidpool.encode import CLIPEncoder

    torch.manual_seed(0)
    encoder = CLIPEncoder(CONFIG, weights=None)
    assert encoder.grid == (8, 8) and encoder.embed_dim == 128
    assert _accuracy(encoder, "static", 40) < TRAINED_BAR


# 40 items: chance (0.25) reaches 0.6 with probability below 1e-5
TRAINED_BAR = 0.6


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="the world's CLIP weights are not built yet")
@pytest.mark.parametrize("family", ["static", "small"])
def test_trained_clip_reads_static_and_small_items(family):
    from vidpool.encode import CLIPEncoder

    encoder = CLIPEncoder(CONFIG, weights=WEIGHTS)
    assert _accuracy(encoder, family, 40) >= TRAINED_BAR


@pytest.mark.skipif(not WEIGHTS.is_file(), reason="the world's CLIP weights are not built yet")
def test_a_one_patch_objects_colour_is_read_from_its_own_patch_token():
    """The local stage's promise: each last-block patch token, in the joint space, names the colour
    covering its own patch (held-out stills, zero-shot over the colour prompts)."""
    import torch.nn.functional as F

    from vidpool.bench.synth.stills import COLOUR_PROMPT, random_stills
    from vidpool.bench.synth.world import COLOURS
    from vidpool.bench.synth.zeroshot import HELD_OUT_SEED
    from vidpool.encode import CLIPEncoder

    encoder = CLIPEncoder(CONFIG, weights=WEIGHTS)
    frames, stills = random_stills(HELD_OUT_SEED, 300)
    joint = F.normalize(encoder.encode_frames(torch.from_numpy(frames), joint=True).joint.float(), dim=-1)
    text = F.normalize(encoder.encode_text([COLOUR_PROMPT.format(colour=c) for c in COLOURS]).float(), dim=-1)
    small = [i for i, s in enumerate(stills) if s.small]
    right = 0
    for i in small:
        y, x = (min(int(v * 8), 7) for v in (stills[i].sprite.y, stills[i].sprite.x))
        right += int((joint[i, y, x] @ text.T).argmax()) == list(COLOURS).index(stills[i].colour)
    assert len(small) >= 60 and right / len(small) >= 0.9
