"""A feature cache keyed by (video file, sampling, encoder): memory LRU plus optional safetensors on disk.

A chat that asks ten questions about one video encodes it once: the pipeline asks the cache first and
only the cheap, prompt-dependent pooling reruns per question.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from vidpool.errors import InvalidArgumentError, VideoNotFoundError, require

__all__ = ["FeatureCache", "video_identity"]

_HASH_CHUNK = 1 << 20


def video_identity(path: str | os.PathLike, *, content_hash: bool = False) -> str:
    """A stable id of a video file for cache keys.

    By default the resolved path, size and modification time (cheap; changes when the file is
    rewritten). With ``content_hash=True`` a BLAKE2b hash of the bytes and the size (reads the whole
    file; survives renames and copies).
    """
    file = Path(path)
    if not file.is_file():
        raise VideoNotFoundError(f"video not found: {file}; check the path")
    stat = file.stat()
    if not content_hash:
        return f"file:{file.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    digest = hashlib.blake2b(digest_size=16)
    with file.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return f"blake2b:{digest.hexdigest()}:{stat.st_size}"


def _check_tensors(tensors: Any) -> dict[str, torch.Tensor]:
    if not isinstance(tensors, dict) or not tensors:
        raise InvalidArgumentError("cache values must be a non-empty dict of name -> tensor")
    for name, value in tensors.items():
        if not isinstance(name, str) or not isinstance(value, torch.Tensor):
            raise InvalidArgumentError(f"cache value {name!r} must be a tensor keyed by a string")
    return tensors


def _standalone_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU tensor that owns its storage (safetensors refuses views sharing memory)."""
    tensor = tensor.detach().to("cpu").contiguous()
    if tensor.untyped_storage().nbytes() != tensor.numel() * tensor.element_size():
        tensor = tensor.clone()
    return tensor


class FeatureCache:
    """Encoded features by key: an in-memory LRU of ``max_items`` entries, backed by ``disk_dir`` if given.

    Values are ``dict[str, Tensor]`` (e.g. ``EncodedFrames.to_dict()`` plus timestamps). On disk each
    entry is one ``<key>.safetensors`` file, written atomically; entries found on disk are loaded to
    CPU and promoted into memory. Thread-safe.
    """

    def __init__(self, max_items: int = 8, disk_dir: str | os.PathLike | None = None) -> None:
        if max_items < 0:
            raise InvalidArgumentError(f"max_items must be >= 0, got {max_items}")
        self.max_items = max_items
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        if self.disk_dir is not None:
            self.disk_dir.mkdir(parents=True, exist_ok=True)
        self._items: OrderedDict[str, dict[str, torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(video_identity: str, sampling: dict[str, Any], encoder_id: str) -> str:
        """A filename-safe key of (video identity, sampling parameters, encoder identity).

        ``sampling`` holds whatever picks the frames (``num_frames``, ``fps``, ``start``, ``end``,
        ``exact`` ...); values must be JSON-serialisable (others are turned into strings).
        """
        if not isinstance(sampling, dict):
            raise InvalidArgumentError(
                f"sampling must be a dict of parameters, got {type(sampling).__name__}"
            )
        payload = json.dumps(
            {"video": video_identity, "sampling": sampling, "encoder": encoder_id},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:32]

    def _path(self, key: str) -> Path | None:
        if self.disk_dir is None:
            return None
        if not key or not all(c.isalnum() or c in "-_" for c in key):
            raise InvalidArgumentError(f"cache keys must be alphanumeric (use FeatureCache.key), got {key!r}")
        return self.disk_dir / f"{key}.safetensors"

    def _remember(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        if self.max_items == 0:
            return
        self._items[key] = tensors
        self._items.move_to_end(key)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        """The tensors stored under ``key`` (memory first, then disk), or ``None``."""
        path = self._path(key)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return dict(self._items[key])
        if path is not None and path.is_file():
            st = require("safetensors.torch", "clip", "the on-disk feature cache")
            try:
                tensors = st.load_file(str(path))
            except Exception:
                # A damaged or partial file is a miss; the next put rewrites it.
                tensors = None
            if tensors:
                with self._lock:
                    self._remember(key, tensors)
                    self.hits += 1
                return dict(tensors)
        with self._lock:
            self.misses += 1
        return None

    def put(self, key: str, tensors: dict[str, torch.Tensor]) -> None:
        """Store ``tensors`` under ``key`` in memory and, if configured, on disk (as CPU tensors)."""
        tensors = dict(_check_tensors(tensors))
        path = self._path(key)
        with self._lock:
            self._remember(key, tensors)
        if path is not None:
            st = require("safetensors.torch", "clip", "the on-disk feature cache")
            cpu = {name: _standalone_cpu(value) for name, value in tensors.items()}
            fd, tmp = tempfile.mkstemp(dir=self.disk_dir, suffix=".tmp")
            os.close(fd)
            try:
                st.save_file(cpu, tmp, metadata={"key": key})
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)

    def get_or_compute(
        self, key: str, compute: Callable[[], dict[str, torch.Tensor]]
    ) -> dict[str, torch.Tensor]:
        """``get(key)``, or run ``compute()``, ``put`` its result and return it."""
        cached = self.get(key)
        if cached is not None:
            return cached
        tensors = compute()
        self.put(key, tensors)
        return dict(tensors)

    def __contains__(self, key: str) -> bool:
        path = self._path(key)
        with self._lock:
            if key in self._items:
                return True
        return path is not None and path.is_file()

    def __len__(self) -> int:
        """Entries held in memory."""
        return len(self._items)

    def clear(self, *, disk: bool = False) -> None:
        """Drop the in-memory entries, and the on-disk files too when ``disk``."""
        with self._lock:
            self._items.clear()
        if disk and self.disk_dir is not None:
            for file in self.disk_dir.glob("*.safetensors"):
                file.unlink(missing_ok=True)
