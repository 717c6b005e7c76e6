"""``torchrun --nproc_per_node 2`` with accelerate's PartialState on the CPU: the union of the ranks' outputs
equals a single-process run, every id exactly once, leftovers of a killed run are resumed, and the
model's notice is said once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from caption_support import CAPTION_OPTIONS, by_id, lines, video_folder
from pipeline_support import ROOT, noted_checkpoint

from vidpool.caption import caption_videos
from vidpool.caption.journal import part_path, part_paths

pytest.importorskip("accelerate")


def test_two_ranks_equal_one_process_and_resume_a_killed_run(tmp_path):
    ckpt = noted_checkpoint(tmp_path / "noted", "a toy model; it cannot describe real footage")
    videos = video_folder(tmp_path / "videos", 5)
    reference = tmp_path / "single.jsonl"
    caption_videos([videos], reference, model=ckpt, progress=False, **CAPTION_OPTIONS)
    expected = by_id(lines(reference))
    assert len(expected) == 6

    # a torchrun run killed earlier: two lines in the output, one in rank 1's part plus a torn tail
    text = reference.read_text().splitlines(keepends=True)
    out = tmp_path / "captions.jsonl"
    out.write_text("".join(text[:2]))
    part_path(out, 1).write_text(text[2] + '{"id":"0123456789abcdef","capt')

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += ["-m", "vidpool", "caption", str(videos), "--out", str(out), "--engine", "torchrun"]
    command += ["--model", str(ckpt), "--device", "cpu", "--frames", "4", "--max-new-tokens", "6", "--quiet"]
    # its own session: a hung rank must not outlive the test
    proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, stderr[-3000:]
    assert "3 skipped" in stderr and "wrote" in stderr
    notice = "vidpool: noted: a toy model; it cannot describe real footage"
    assert stderr.splitlines().count(notice) == 1  # rank 0 only

    got = by_id(lines(out))  # every line whole, every id once
    assert part_paths(out) == []  # merged and removed
    assert set(got) == set(expected)
    # greedy decoding: the same captions whichever process made them
    assert {i: r["caption"] for i, r in got.items()} == {i: r["caption"] for i, r in expected.items()}
    assert {i: r["error_type"] for i, r in got.items()} == {i: r["error_type"] for i, r in expected.items()}
