"""How much memory a device has free, and byte sizes people can type.

``free_memory`` asks the device (``torch.cuda.mem_get_info`` on a GPU, available RAM on the CPU).
Tests and users override it by passing ``max_memory`` to :func:`vidpool.plan`, so no planner
decision depends on the machine the tests happen to run on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vidpool.errors import InvalidArgumentError

__all__ = ["DeviceMemory", "device_memory", "format_bytes", "free_memory", "parse_bytes"]

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
    "K": 2**10,
    "M": 2**20,
    "G": 2**30,
    "T": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*$")


def parse_bytes(value: int | float | str) -> int:
    """Read a byte count: ``24GB`` (10**9), ``24GiB`` or ``24G`` (2**30), ``512MiB``, or a number.

    Raises :class:`InvalidArgumentError` for anything else.
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"not a memory size: {value!r}; write e.g. '24GB' or '16GiB'")
    if isinstance(value, (int, float)):
        if value < 0:
            raise InvalidArgumentError(f"memory size must be >= 0, got {value}")
        return int(value)
    match = _SIZE.match(str(value))
    unit = match.group(2).upper() if match else None
    if match is None or unit not in _UNITS:
        raise InvalidArgumentError(
            f"not a memory size: {value!r}; write a number with a unit such as '24GB', '16GiB' or '512MB'"
        )
    return int(float(match.group(1)) * _UNITS[unit])


def format_bytes(num: float) -> str:
    """``1536 * 2**20`` -> ``'1.50 GiB'``; binary units, three significant figures."""
    sign = "-" if num < 0 else ""
    num = abs(float(num))
    for unit in ("B", "KiB", "MiB", "GiB"):
        if num < 1024 or unit == "GiB":
            break
        num /= 1024
    if unit == "B":
        return f"{sign}{int(num)} B"
    return f"{sign}{num:.2f} {unit}"


@dataclass(frozen=True)
class DeviceMemory:
    """Memory of one device in bytes: ``total`` capacity and what is ``free`` for this run."""

    device: str
    total: int
    free: int

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")


def _cpu_memory() -> tuple[int, int]:
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available)
    except ImportError:
        fields = {}
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) * 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields["MemFree"])


def device_memory(device: str = "cpu") -> DeviceMemory:
    """Total and free bytes of ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``) as the device reports them.

    On CUDA, memory torch has cached but not allocated counts as free.
    """
    import torch

    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError(
                f"device {device!r} asked for but CUDA is not available; use device='cpu' "
                "or pass max_memory to plan for a GPU you do not have here"
            )
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        # blocks torch's caching allocator holds but does not use are free for this process
        cached = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return DeviceMemory(f"cuda:{index}", int(total), int(free + max(0, cached)))
    if dev.type == "cpu":
        total, free = _cpu_memory()
        return DeviceMemory("cpu", total, free)
    raise InvalidArgumentError(f"unsupported device {device!r}; use 'cpu' or 'cuda[:N]'")


def free_memory(device: str = "cpu") -> int:
    """Bytes free on ``device`` right now."""
    return device_memory(device).free
