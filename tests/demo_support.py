"""The demo server of the demo tests: `vidpool demo` in a child process on a free local port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 600  # importing gradio, transformers and open_clip takes minutes on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DemoServer:
    """``vidpool demo`` on 127.0.0.1, stopped by its own process id."""

    def __init__(self, model: Path, home: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = home / "server.log"
        env = {
            **os.environ,
            "GRADIO_ANALYTICS_ENABLED": "False",
            "VIDPOOL_HOME": str(home),
            "GRADIO_TEMP_DIR": str(home / "gradio"),
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
        }
        argv = [sys.executable, "-m", "vidpool.cli", "demo", "--model", str(model), "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*argv, *args], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait(self, timeout: float = START_TIMEOUT) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the demo exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "config", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise TimeoutError(f"the demo did not answer within {timeout} s:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            # its own process group: the server and the decoders it forked, nothing else
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)


def crashing_decoder(path, num_frames, max_side, max_duration, out) -> None:
    """A decode job that dies the way a native decoder does (SIGSEGV), in the child that runs it."""
    os.kill(os.getpid(), signal.SIGSEGV)


def sleeping_decoder(path, num_frames, max_side, max_duration, out) -> None:
    """A decode job stuck for two minutes; it writes its process id to ``path + ".pid"`` first."""
    Path(f"{path}.pid").write_text(str(os.getpid()))
    time.sleep(120)
