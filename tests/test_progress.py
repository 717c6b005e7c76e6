"""vidpool.progress: one status line on a terminal's stderr, nothing anywhere else."""

from __future__ import annotations

import io
import time

from vidpool.progress import TerminalProgress, report


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_counts_and_stage_names_on_one_rewritten_line():
    out = Terminal()
    with TerminalProgress(out, interval=0.01) as progress:
        progress("encoding frames", 0, 8)
        progress("encoding frames", 8, 8)
        progress("prefill")
        time.sleep(0.05)  # the spinner redraws while a stage without counts runs
        progress.clear()
        assert out.getvalue().endswith("\r\x1b[K")
        cleared = len(out.getvalue())
        time.sleep(0.03)
        assert len(out.getvalue()) == cleared  # nothing is drawn after clear() until the next report
    text = out.getvalue()
    assert "\r\x1b[Kencoding frames 0/8" in text and "\r\x1b[Kencoding frames 8/8" in text
    assert text.count("prefill") >= 2 and "\n" not in text


def test_silent_when_not_a_terminal_or_disabled():
    plain = io.StringIO()
    with TerminalProgress(plain) as progress:
        progress("loading model")
        progress("encoding frames", 1, 2)
    assert plain.getvalue() == ""
    out = Terminal()
    with TerminalProgress(out, enabled=False) as progress:
        progress("loading model")
    assert out.getvalue() == ""


def test_report_without_a_callback_does_nothing():
    report(None, "anything", 1, 2)
    seen = []
    report(lambda *e: seen.append(e), "encoding frames", 1, 2)
    assert seen == [("encoding frames", 1, 2)]
