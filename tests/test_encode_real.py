"""Full-size CLIP models (``slow``): ViT-L-14-336's geometry with random weights, and real weights if present.

Real weights are never downloaded: set ``VIDPOOL_CLIP_WEIGHTS`` to a local open_clip ``.safetensors`` file
(and ``VIDPOOL_CLIP_MODEL`` to its config, default ``ViT-L-14-336-quickgelu`` for OpenAI's weights).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from vidpool.encode import CLIPEncoder

pytest.importorskip("open_clip")

WEIGHTS = os.environ.get("VIDPOOL_CLIP_WEIGHTS")
MODEL = os.environ.get("VIDPOOL_CLIP_MODEL", "ViT-L-14-336-quickgelu")
needs_weights = pytest.mark.skipif(
    not (WEIGHTS and Path(WEIGHTS).is_file()), reason="set VIDPOOL_CLIP_WEIGHTS to a local CLIP .safetensors"
)


def _colour_frame(rgb: tuple[int, int, int], size: int = 336) -> torch.Tensor:
    return torch.tensor(rgb, dtype=torch.uint8).expand(size, size, 3).clone()


@pytest.mark.slow
def test_vit_l_14_336_random_weights_geometry() -> None:
    torch.manual_seed(0)
    enc = CLIPEncoder("ViT-L-14-336")
    assert (enc.grid, enc.width, enc.embed_dim, enc.image_size) == ((24, 24), 1024, 768, 336)
    frames = torch.randint(0, 256, (2, 360, 640, 3), dtype=torch.uint8)
    out = enc.encode_frames(frames, joint=True, cls=True)
    assert out.patches.shape == (2, 24, 24, 1024)
    assert out.joint.shape == (2, 24, 24, 768)
    assert out.cls.shape == (2, 1024)
    assert enc.encode_text(["a dog"]).shape == (1, 768)


@pytest.mark.slow
@needs_weights
def test_real_clip_knows_colours() -> None:
    import vidpool
    from vidpool.encode.preprocess import preprocess_frames

    enc = CLIPEncoder(MODEL, WEIGHTS)
    assert enc.logit_scale > 50
    frames = torch.stack([_colour_frame((220, 20, 20)), _colour_frame((20, 40, 220))])
    text = enc.encode_text(["a plain red image", "a plain blue image"]).float()
    text = text / text.norm(dim=-1, keepdim=True)
    with torch.inference_mode():
        image = enc.model.encode_image(preprocess_frames(frames, enc.preprocess_cfg, dtype=enc.dtype)).float()
    image = image / image.norm(dim=-1, keepdim=True)
    assert torch.equal((image @ text.T).argmax(dim=1), torch.tensor([0, 1]))
    # Patches in the joint space agree with the image embedding on uniform frames.
    joint = enc.encode_frames(frames, joint=True).joint.float()
    pooled = joint.mean(dim=(1, 2))
    pooled = pooled / pooled.norm(dim=-1, keepdim=True)
    assert torch.equal((pooled @ text.T).argmax(dim=1), torch.tensor([0, 1]))
    scores = vidpool.prompt_scores(joint, text[0], enc.logit_scale)
    assert scores.shape == (2, 24, 24)
