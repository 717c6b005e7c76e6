"""Progress of long stages, reported through a callback so that the library itself prints nothing.

The pipeline calls ``progress(stage, done, total)``: ``stage`` is a short name ("loading model",
"encoding frames", "compressing", "prefill"), ``done``/``total`` count its units when it has them
(frames encoded so far of the frames planned) and are ``None`` otherwise. Any callable with that
signature works; :class:`TerminalProgress` draws one status line on a terminal's stderr, with a
spinner while a stage without counts runs, and stays silent when stderr is not a terminal.
:class:`Eta` is the rate and time left of a run of many units (``vidpool caption``'s videos).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Protocol

__all__ = ["Eta", "ProgressCallback", "TerminalProgress", "format_seconds", "report"]


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


class Eta:
    """Rate and time left of a run of ``total`` units (videos), measured from the first unit done.

    The units done before the clock starts, and the time they took, count for nothing: what comes
    before the first result (loading the model, starting workers, first-call warm-up) is not the
    rate of the run, and an ETA that included it would be wrong for the rest of the run. So the
    first estimate comes with the second unit done. ``clock`` is ``time.monotonic`` unless a test
    gives another.
    """

    def __init__(self, total: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.total = total
        self.done = 0
        self._clock = clock
        self._start: tuple[float, int] | None = None
        self._last = 0.0

    def update(self, done: int = 1) -> None:
        """``done`` more units are done."""
        self.done += done
        self._last = self._clock()
        if self._start is None:
            self._start = (self._last, self.done)

    @property
    def rate(self) -> float | None:
        """Units per second since the first unit done, as of the latest update (``None``: not known yet)."""
        if self._start is None:
            return None
        seconds, units = self._last - self._start[0], self.done - self._start[1]
        return units / seconds if units > 0 and seconds > 0 else None

    @property
    def seconds_left(self) -> float | None:
        rate = self.rate
        return max(0, self.total - self.done) / rate if rate else None

    def text(self, unit: str = "unit") -> str:
        """``"0.52 videos/s, ETA 3m05s"``, or ``""`` while the rate is not known."""
        rate, left = self.rate, self.seconds_left
        if rate is None or left is None:
            return ""
        return f"{rate:.2f} {unit}s/s, ETA {format_seconds(left)}"


def format_seconds(seconds: float) -> str:
    """``"45s"``, ``"3m05s"``, ``"2h03m"``."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
