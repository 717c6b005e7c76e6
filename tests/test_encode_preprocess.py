"""Batched tensor preprocessing against open_clip's own PIL transform."""

from __future__ import annotations

import pytest
import torch
from encode_support import one_thread  # noqa: F401  (autouse fixture)

from vidpool.encode.config import encoder_spec, load_config
from vidpool.encode.preprocess import _crop_or_pad, preprocess_frames, resize_as_float, resized_size
from vidpool.errors import InvalidArgumentError

open_clip = pytest.importorskip("open_clip")
Image = pytest.importorskip("PIL.Image")


# Largest difference to open_clip's PIL path, in 0..255 pixel levels: the two bicubic antialias kernels
# round differently (measured: at most 2 levels, mean below 0.06 levels over the cases below).
MAX_LEVELS = 2.0
MEAN_LEVELS = 0.1


def _smooth(height: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, height // 16 + 2, width // 16 + 2, generator=gen)
    img = torch.nn.functional.interpolate(coarse, size=(height, width), mode="bilinear")[0]
    return (img * 255).round().to(torch.uint8).permute(1, 2, 0).contiguous()


def _noise(height: int, width: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (height, width, 3), generator=gen, dtype=torch.uint8)


def _levels(out: torch.Tensor, ref: torch.Tensor, std: tuple[float, ...]) -> torch.Tensor:
    return (out - ref).abs() * torch.tensor(std).view(3, 1, 1) * 255


@pytest.mark.parametrize("size", [336, 48])
@pytest.mark.parametrize("hw", [(480, 640), (720, 1280), (240, 320), (100, 90), (500, 336)])
def test_matches_open_clip_transform(size: int, hw: tuple[int, int]) -> None:
    spec = encoder_spec({**load_config("ViT-L-14-336").model_cfg, "vision_cfg": {"image_size": size}})
    cfg = spec.preprocess()
    reference = open_clip.image_transform(size, is_train=False)
    images = [_smooth(*hw, seed=1), _noise(*hw, seed=2)]
    batch = preprocess_frames(torch.stack(images), cfg)
    assert batch.shape == (2, 3, size, size)
    assert batch.dtype == torch.float32
    for img, out in zip(images, batch):
        ref = reference(Image.fromarray(img.numpy()))
        diff = _levels(out, ref, cfg["std"])
        assert diff.max().item() <= MAX_LEVELS + 1e-3
        assert diff.mean().item() <= MEAN_LEVELS


def _normalise(x: torch.Tensor, cfg: dict) -> torch.Tensor:
    mean = torch.tensor(cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    return (x.float() / 255 - mean) / std


@pytest.mark.parametrize("size", [336, 48])
@pytest.mark.parametrize("hw", [(480, 640), (720, 1280), (240, 320), (100, 90)])
def test_float_resize_of_the_gpu_path_matches_open_clip(size: int, hw: tuple[int, int]) -> None:
    """GPUs resize through float32 in two passes (run here on the CPU kernels): PIL's result too."""
    spec = encoder_spec({**load_config("ViT-L-14-336").model_cfg, "vision_cfg": {"image_size": size}})
    cfg = spec.preprocess()
    reference = open_clip.image_transform(size, is_train=False)
    for img in (_smooth(*hw, seed=1), _noise(*hw, seed=2)):
        new_size = resized_size(*hw, (size, size), "shortest")
        resized = resize_as_float(img[None].permute(0, 3, 1, 2), new_size, "bicubic")
        assert resized.dtype == torch.float32 and torch.equal(resized, resized.round())
        out = _normalise(_crop_or_pad(resized, (size, size), 0), cfg)[0]
        diff = _levels(out, reference(Image.fromarray(img.numpy())), cfg["std"])
        assert diff.max().item() <= MAX_LEVELS + 1e-3
        assert diff.mean().item() <= 0.05  # measured: at most 0.02 levels


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("hw", [(720, 1280), (240, 320), (100, 90)])
def test_cuda_preprocessing_matches_open_clip(hw: tuple[int, int]) -> None:
    cfg = encoder_spec(load_config("ViT-L-14-336")).preprocess()
    reference = open_clip.image_transform(336, is_train=False)
    images = [_smooth(*hw, seed=1), _noise(*hw, seed=2)]
    batch = preprocess_frames(torch.stack(images), cfg, device="cuda").cpu()
    for img, out in zip(images, batch):
        diff = _levels(out, reference(Image.fromarray(img.numpy())), cfg["std"])
        assert diff.max().item() <= MAX_LEVELS + 1e-3
        assert diff.mean().item() <= MEAN_LEVELS


@pytest.mark.parametrize("mode", ["squash", "longest"])
def test_other_resize_modes_match_open_clip(mode: str) -> None:
    img = _smooth(120, 200, seed=3)
    cfg = encoder_spec(load_config("tiny-clip-48")).preprocess({"resize_mode": mode, "fill_color": 0})
    reference = open_clip.image_transform(48, is_train=False, resize_mode=mode)
    out = preprocess_frames(img[None], cfg)[0]
    ref = reference(Image.fromarray(img.numpy()))
    assert out.shape == ref.shape == (3, 48, 48)
    assert _levels(out, ref, cfg["std"]).max().item() <= MAX_LEVELS + 1e-3


def test_bilinear_interpolation_is_honoured() -> None:
    img = _smooth(90, 160, seed=4)
    cfg = encoder_spec(load_config("tiny-clip-32")).preprocess({"interpolation": "bilinear"})
    reference = open_clip.image_transform(32, is_train=False, interpolation="bilinear")
    out = preprocess_frames(img[None], cfg)[0]
    assert _levels(out, reference(Image.fromarray(img.numpy())), cfg["std"]).max().item() <= MAX_LEVELS + 1e-3


def test_resized_size_follows_torchvision_shortest_side() -> None:
    assert resized_size(480, 640, (336, 336), "shortest") == (336, 448)
    assert resized_size(1280, 720, (336, 336), "shortest") == (597, 336)
    assert resized_size(480, 640, (336, 336), "squash") == (336, 336)
    assert resized_size(480, 640, (336, 336), "longest") == (252, 336)


def test_output_is_channels_last_and_in_requested_dtype() -> None:
    cfg = encoder_spec(load_config("tiny-clip-32")).preprocess()
    out = preprocess_frames(_noise(64, 64, seed=5)[None].repeat(3, 1, 1, 1), cfg, dtype=torch.bfloat16)
    assert out.dtype == torch.bfloat16
    assert out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out[0], out[2])


def test_accepts_numpy_frames() -> None:
    cfg = encoder_spec(load_config("tiny-clip-32")).preprocess()
    frames = _noise(40, 50, seed=6)[None]
    assert torch.equal(preprocess_frames(frames.numpy(), cfg), preprocess_frames(frames, cfg))


@pytest.mark.parametrize(
    "frames",
    [
        torch.zeros(2, 8, 8, 3, dtype=torch.float32),
        torch.zeros(8, 8, 3, dtype=torch.uint8),
        torch.zeros(2, 8, 8, 4, dtype=torch.uint8),
        torch.zeros(2, 0, 8, 3, dtype=torch.uint8),
        [[1, 2, 3]],
    ],
)
def test_bad_frames_raise_invalid_argument(frames: object) -> None:
    cfg = encoder_spec(load_config("tiny-clip-32")).preprocess()
    with pytest.raises(InvalidArgumentError):
        preprocess_frames(frames, cfg)  # type: ignore[arg-type]
