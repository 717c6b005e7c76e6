"""``--jobs N`` for the retrieval scorer: items answered in worker processes give the one-process results."""

from __future__ import annotations

import pytest
import torch
from bench_support import small_settings

from vidpool.bench.fidelity import run_fidelity
from vidpool.bench.workers import balanced_size, chunks

pytest.importorskip("open_clip")
pytest.importorskip("matplotlib")

# direction: a clip and its reverse are one unit (paired items); needle: a short event in a longer video
FAMILIES = ("direction", "needle")


def _run(out, jobs: int) -> tuple[dict, list[str]]:
    settings = small_settings(out, families=FAMILIES, items=6, max_frames=16, jobs=jobs)
    lines: list[str] = []
    torch.manual_seed(1)  # the untrained CLIP's weights: the same draw in both runs
    return run_fidelity(settings, log=lines.append), lines


def test_two_processes_give_the_one_process_results(tmp_path):
    one, _ = _run(tmp_path / "one", 1)
    two, log = _run(tmp_path / "two", 2)
    assert two["settings"]["jobs"] == 2
    assert two["cells"] == one["cells"] and two["comparisons"] == one["comparisons"]
    for family in FAMILIES:
        assert two["items"][family] == one["items"][family]
        correct = two["items"][family]["correct"]
        assert set(correct) >= {"spatial@0.25", "prompt_guided@1", "shuffled", "full"}
        assert all(len(c) == 6 for c in correct.values())
        assert min(correct["full"]) >= 0  # every question answered with every token
        # right and wrong answers both occur: a chunk read back out of order would show
        assert {0, 1} <= {x for c in correct.values() for x in c}
    assert len(set(two["items"]["direction"]["units"])) < 6  # the paired items are there
    assert f"  {FAMILIES[-1]}: 6/6 questions" in "\n".join(log)


def test_chunks_cover_the_items_in_order():
    # about four chunks a process: 10 items over 2 processes in chunks of ceil(10 / 8) = 2
    assert [list(p) for p in chunks(10, balanced_size(10, 2))] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert [list(p) for p in chunks(7, 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert balanced_size(300, 2) == 38 and balanced_size(3, 4) == 1
    assert chunks(0, 5) == []


PARENT = """
import os, sys, time
from vidpool.bench.workers import Loads, process_pool

if __name__ == "__main__":
    pool = process_pool(1, Loads())
    pid = pool.submit(os.getpid).result()
    pool.submit(time.sleep, 120)
    print(pid, flush=True)
    time.sleep(120)
"""


def test_a_killed_run_leaves_no_worker_behind(tmp_path):
    import os
    import subprocess
    import sys

    from pipeline_support import kill_and_expect_orphan_gone

    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        os.kill(worker, 0)  # the worker is alive, busy with the long task
        kill_and_expect_orphan_gone(parent, worker, "the pool's worker")
    finally:
        if parent.poll() is None:
            parent.kill()
