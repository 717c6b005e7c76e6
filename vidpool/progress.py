"""Progress of long stages, reported through a callback so that the library itself prints nothing.

The pipeline calls ``progress(stage, done, total)``: ``stage`` is a short name ("loading model",
"encoding frames", "compressing", "prefill"), ``done``/``total`` count its units when it has them
(frames encoded so far of the frames planned) and are ``None`` otherwise. Any callable with that
signature works; :class:`TerminalProgress` draws one status line on a terminal's stderr, with a
spinner while a stage without counts runs, and stays silent when stderr is not a terminal.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Protocol

__all__ = ["ProgressCallback", "TerminalProgress", "report"]


class ProgressCallback(Protocol):
    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None: ...


def report(
    progress: ProgressCallback | None, stage: str, done: int | None = None, total: int | None = None
) -> None:
    """Call ``progress`` if there is one."""
    if progress is not None:
        progress(stage, done, total)


class TerminalProgress:
    """One rewritten status line on ``stream`` (stderr): ``⠙ loading model 12s`` / ``encoding frames 48/256``.

    Draws only when ``stream`` is a terminal and ``enabled``; ``clear()`` erases the line (call it
    before writing anything else to the terminal) and ``close()`` also stops the spinner thread.
    """

    _FRAMES = "|/-\\"

    def __init__(self, stream: IO[str] | None = None, *, enabled: bool = True, interval: float = 0.2):
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.active = enabled and bool(isatty and isatty())
        self.interval = interval
        self._lock = threading.Lock()
        self._text = ""
        self._since = time.monotonic()
        self._shown = False
        self._counted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, stage: str, done: int | None = None, total: int | None = None) -> None:
        if not self.active:
            return
        with self._lock:
            self._counted = done is not None
            if done is not None:
                self._text = f"{stage} {done}/{total}" if total else f"{stage} {done}"
            else:
                if not self._text.startswith(stage):
                    self._since = time.monotonic()
                self._text = stage
            self._draw(spin=not self._counted)
        if done is None and self._thread is None:
            self._thread = threading.Thread(target=self._spin, name="vidpool-progress", daemon=True)
            self._thread.start()

    def _draw(self, spin: bool) -> None:
        text = self._text
        if spin:
            frame = self._FRAMES[int(time.monotonic() / self.interval) % len(self._FRAMES)]
            text = f"{frame} {text} {time.monotonic() - self._since:.0f}s"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._shown = True

    def _spin(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                if self._text and not self._counted:
                    self._draw(spin=True)

    def clear(self) -> None:
        """Erase the status line; the next report draws it again."""
        with self._lock:
            self._text = ""
            if self._shown:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
                self._shown = False

    def close(self) -> None:
        """Erase the line and stop the spinner."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.clear()

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
