"""What vidpool-synth's training scripts share: the learning-rate schedule and a resumable run.

``scripts/train_synth_clip.py`` and ``scripts/train_synth_vlm.py`` import it from here.

A run lives in one folder: ``state.pt`` (the trained module, the optimizer and the step, replaced
atomically so a kill never leaves half a file) and ``log.jsonl`` (one JSON record a line, each with its
``step``). Resuming loads the state and drops the log records of steps after it, since those steps run
again.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

__all__ = ["TrainingRun", "lr_at"]


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps to ``peak``, then cosine decay to 0 at ``total``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class TrainingRun:
    """The state and log of one resumable training run in ``work_dir``.

    Args:
        work_dir: the run's folder (created).
        key: the name the trained module's weights are saved under in ``state.pt``.
    """

    def __init__(self, work_dir: Path, key: str = "model") -> None:
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = self.work_dir / "state.pt"
        self.log_path = self.work_dir / "log.jsonl"
        self.key = key

    def resume(self, module: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
        """Load the saved state into ``module`` and ``opt``; the step to go on from (0: a new run)."""
        if not self.state_path.is_file():
            return 0
        # on the CPU first: a state saved on CUDA resumes anywhere (loading moves it to the module's device)
        state = torch.load(self.state_path, map_location="cpu", weights_only=True)
        module.load_state_dict(state[self.key])
        opt.load_state_dict(state["opt"])
        step = int(state["step"])
        print(f"resumed at step {step}", flush=True)
        kept = [r for r in self.records() if r["step"] <= step]
        self.log_path.write_text("".join(json.dumps(r) + "\n" for r in kept))
        return step

    def save(self, module: torch.nn.Module, opt: torch.optim.Optimizer, step: int) -> None:
        """Replace the saved state with this step's, atomically."""
        tmp = self.state_path.with_suffix(".tmp")
        torch.save({self.key: module.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
        os.replace(tmp, self.state_path)

    def log(self, record: dict) -> None:
        """Print ``record`` and append it to the log."""
        print(json.dumps(record), flush=True)
        with self.log_path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        """Every record of the log, in order."""
        if not self.log_path.is_file():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line.strip()]
