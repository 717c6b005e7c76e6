"""vidpool.progress: one status line on a terminal's stderr, nothing anywhere else."""

from __future__ import annotations

import io
import time

from vidpool.progress import Eta, TerminalProgress, format_seconds, report


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


def test_eta_starts_at_the_first_unit_done():
    now = [0.0]
    eta = Eta(5, clock=lambda: now[0])
    now[0] = 120.0  # loading the model, warm-up: before any unit is done
    assert eta.rate is None and eta.text("video") == ""
    eta.update()
    assert eta.rate is None and eta.seconds_left is None and eta.text("video") == ""  # one point, no rate
    now[0] += 4.0
    eta.update()
    assert eta.rate == 0.25 and eta.seconds_left == 12.0  # 3 left at 4 s each; the 120 s count for nothing
    assert eta.text("video") == "0.25 videos/s, ETA 12s"
    now[0] += 1000.0  # time passing without an update does not move the estimate until the next one
    assert eta.seconds_left == 12.0


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 44.6, 60, 185, 3599.6, 7380)] == [
        "0s",
        "45s",
        "1m00s",
        "3m05s",
        "1h00m",
        "2h03m",
    ]
