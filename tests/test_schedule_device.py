"""Byte sizes people type, and free memory as the device reports it."""

from __future__ import annotations

import pytest
import torch

from vidpool.errors import InvalidArgumentError
from vidpool.schedule import device_memory, format_bytes, free_memory, measure_peak, parse_bytes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24GB", 24 * 10**9),
        ("16GiB", 16 * 2**30),
        ("16G", 16 * 2**30),
        ("512 MB", 512 * 10**6),
        ("1.5GiB", 3 * 2**29),
        (1024, 1024),
        ("100", 100),
    ],
)
def test_parse_bytes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("bad", ["lots", "24 parsecs", "-1GB", -5, True])
def test_parse_bytes_rejects(bad):
    with pytest.raises(InvalidArgumentError):
        parse_bytes(bad)


def test_format_bytes():
    assert format_bytes(1536 * 2**20) == "1.50 GiB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(3 * 2**10) == "3.00 KiB"


def test_cpu_memory_is_reported():
    mem = device_memory("cpu")
    assert 0 < mem.free <= mem.total and not mem.is_cuda
    assert free_memory("cpu") > 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_gpu_says_what_to_do():
    with pytest.raises(InvalidArgumentError, match="max_memory"):
        device_memory("cuda")


def test_measure_peak_counts_tensor_storage_held_at_once():
    def work():
        a = torch.empty(1_000_000, dtype=torch.float32)  # 4 MB
        b = torch.empty(1_000_000, dtype=torch.float32)  # 4 MB, 8 MB held
        del a
        c = torch.empty(2_000_000, dtype=torch.float32)  # 8 MB, 12 MB held
        return b.numel() + c.numel()

    result, peak = measure_peak(work)
    assert result == 3_000_000
    assert 12_000_000 <= peak < 12_100_000
