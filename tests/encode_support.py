"""Helpers shared by the encoder tests (a plain module, imported explicitly by the tests that use it)."""

from __future__ import annotations

import pytest
import torch

__all__ = ["one_thread", "random_frames"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run far faster single-threaded on a busy shared CPU (OpenMP threads contend).

    Autouse in every test module that imports it.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_frames(count: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Uniform random uint8 frames ``[count, height, width, 3]`` from a seeded generator."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, height, width, 3), generator=gen, dtype=torch.uint8)
