"""A captioning run killed with SIGKILL mid-run, then restarted: nothing lost, nothing twice, no torn line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from caption_support import by_id, lines, video_folder
from pipeline_support import ROOT, checkpoint

from vidpool.caption import resolve_inputs
from vidpool.cli import main

# the real command, each caption slowed down so that the kill lands mid-run
_SLOW_RUN = """
import sys, time
from vidpool.caption import worker
plain = worker.CaptionWorker.caption
def slow(self, decoded):
    record = plain(self, decoded)
    time.sleep(0.5)
    return record
worker.CaptionWorker.caption = slow
from vidpool.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _whole_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_sigkill_then_restart_loses_nothing_and_repeats_nothing(tmp_path):
    ckpt = checkpoint("tiny-native")
    videos = video_folder(tmp_path / "videos", 5)
    out = tmp_path / "captions.jsonl"
    args = [str(videos), "--out", str(out), "--model", str(ckpt), "--frames", "4", "--max-new-tokens", "6"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN, "caption", *args, "--quiet"], env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 240
        while _whole_lines(out) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the run wrote nothing in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    written = out.read_bytes()
    before = lines(out)
    assert 2 <= len(before) < 6  # killed mid-run
    # what a kill inside write() leaves: the start of a line without its newline
    with open(out, "ab") as f:
        f.write(b'{"id":"0123456789abcdef","path":"/x.mp4","capt')

    assert main(["caption", *args, "--quiet"]) == 0

    after = lines(out)  # every line parses: the torn one was cut, not carried on
    assert out.read_bytes().startswith(written)  # lines written before the kill are kept as they were
    records = by_id(after)  # every id exactly once
    assert set(records) == {i.id for i in resolve_inputs([videos])}
    assert sum(r["error"] is not None for r in after) == 1  # broken.mp4
    assert before == after[: len(before)]
