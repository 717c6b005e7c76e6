"""The JSONL output of a captioning run, written so that a killed run loses nothing and repeats nothing.

Each record is one line, written with one ``write`` to a file opened for appending, so a line reaches
the file whole or, when the process dies inside the write, as a torn tail without its newline. A
killed process (SIGKILL included) loses nothing already written: the kernel keeps it. ``fsync`` every
few lines and seconds bounds what a crash of the whole machine can take. Opening a journal repairs a
torn tail (truncates it), so a restarted run appends after the last whole line; the ids in the file
are the videos a restarted run skips.

One writer per file: the file is locked (``flock``) while a run writes it, and a second run on the
same output is refused instead of interleaving lines. The lock goes with the process, however it ends.

Several writers of one run (``torchrun`` ranks) each write a part file, ``OUT.part-R``; their ids
count as written, and :func:`merge_parts` moves their lines into ``OUT`` (skipping ids it already
has) and then deletes them. A merge cut short is finished by the next one, never duplicated.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vidpool.errors import InvalidArgumentError

__all__ = ["Journal", "merge_parts", "part_path", "part_paths", "read_records", "written_ids"]

log = logging.getLogger(__name__)


def part_path(out: str | os.PathLike, rank: int) -> Path:
    """The part file of writer ``rank`` for the output ``out``."""
    return Path(f"{os.fspath(out)}.part-{rank}")


def part_paths(out: str | os.PathLike) -> list[Path]:
    """The part files of ``out`` that exist, by rank."""
    out = Path(out)
    found = [p for p in out.parent.glob(out.name + ".part-*") if p.name.rsplit("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def _lines(data: bytes, where: str) -> Iterator[dict[str, Any]]:
    """The records of the whole lines of ``data``; a torn tail (no newline) is not read."""
    whole = data[: data.rfind(b"\n") + 1]
    for number, line in enumerate(whole.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            # only an outside edit or a machine crash before fsync can leave one: its video is redone
            log.warning("%s line %d is not a caption record; ignored", where, number)
            continue
        yield record


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of the JSONL file ``path`` (``[]`` when it does not exist), a torn tail left out."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    return list(_lines(data, os.fspath(path)))


def written_ids(out: str | os.PathLike, *, with_parts: bool = True) -> dict[str, bool]:
    """``{id: ok}`` of every video written to ``out`` (and its part files): ``ok`` is ``False`` for an
    ``error`` line. Part files others are writing are read as they are: their torn tails are skipped."""
    paths = [Path(out), *(part_paths(out) if with_parts else [])]
    done: dict[str, bool] = {}
    for path in paths:
        for record in read_records(path):
            done[record["id"]] = done.get(record["id"], False) or record.get("error") is None
    return done


class Journal:
    """Append-only JSONL writer of one output file; see the module docstring.

    Args:
        path: the file; created with its folder when missing.
        fsync_every, fsync_seconds: ``fsync`` after this many lines or seconds, whichever comes first
            (each line is handed to the kernel at once either way).
        drop_failed: remove ``error`` lines first (atomically), so that those videos are tried again.

    Raises:
        InvalidArgumentError: another process is writing ``path``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        fsync_every: int = 16,
        fsync_seconds: float = 5.0,
        drop_failed: bool = False,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fsync_every = fsync_every
        self.fsync_seconds = fsync_seconds
        self._fd = self._open_locked()
        self.repaired = self._repair()
        if drop_failed:
            self._drop_failed()
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def _open_locked(self) -> int:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                raise InvalidArgumentError(
                    f"another run is writing {str(self.path)!r}; wait for it to end or write to another --out"
                ) from None
            raise
        return fd

    def _read_all(self) -> bytes:
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0) if size else b""

    def _repair(self) -> int:
        """Truncate a torn last line; returns the bytes removed."""
        data = self._read_all()
        keep = data.rfind(b"\n") + 1
        if keep < len(data):
            log.warning(
                "%s: removed a torn last line (%d bytes) left by a run that was killed",
                self.path,
                len(data) - keep,
            )
            os.ftruncate(self._fd, keep)
            os.fsync(self._fd)
        return len(data) - keep

    def _drop_failed(self) -> None:
        kept = [r for r in _lines(self._read_all(), str(self.path)) if r.get("error") is None]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(_encode(r) for r in kept))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        old, self._fd = self._fd, self._open_locked()
        os.close(old)

    def records(self) -> list[dict[str, Any]]:
        """The records written so far."""
        return list(_lines(self._read_all(), str(self.path)))

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one line; it is in the file (the kernel's) when this returns."""
        data = _encode(record)
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._unsynced += 1
        if self._unsynced >= self.fsync_every or time.monotonic() - self._synced_at >= self.fsync_seconds:
            self.sync()

    def sync(self) -> None:
        if self._unsynced:
            os.fsync(self._fd)
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def close(self) -> None:
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(record: dict[str, Any]) -> bytes:
    # ASCII only: a caption's odd bytes (a random model's, a lone surrogate) can never break the line
    return (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def merge_parts(out: str | os.PathLike) -> int:
    """Move the lines of ``out``'s part files into ``out``, each id once; returns the lines added.

    Call it when no writer of the parts is running. A part is deleted only after its lines are synced
    into ``out``; ids ``out`` already holds are skipped, so a merge cut short is finished by the next.
    """
    parts = part_paths(out)
    if not parts:
        return 0
    added = 0
    with Journal(out) as journal:
        have = {r["id"] for r in journal.records()}
        for part in parts:
            for record in read_records(part):
                if record["id"] not in have:
                    journal.write(record)
                    have.add(record["id"])
                    added += 1
            journal.sync()
            part.unlink()
    return added
