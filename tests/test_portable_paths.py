"""Files meant for other machines (results, training logs, docs) hold no absolute path of this one."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import vidpool
from vidpool.models import portable_path

ROOT = Path(__file__).resolve().parents[1]
# an absolute path of a machine: a home, root's home or a work folder, quoted or in prose; in data
# files a temporary folder too (a command in the docs may name /tmp/out as the folder to write to)
MACHINE_PATH = re.compile(r"(?<![\w.~])/(?:root|home/\w+|work|var/folders)/[\w.-]+")
TEMPORARY_PATH = re.compile(r"(?<![\w.~])/tmp/[\w.-]+")


def test_portable_path_of_the_package_the_home_the_cwd_and_elsewhere(tmp_path, monkeypatch):
    package = Path(vidpool.__file__).resolve().parent
    assert (
        portable_path(package / "models" / "synth" / "clip.safetensors")
        == "vidpool/models/synth/clip.safetensors"
    )
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert portable_path(tmp_path / "me" / ".cache" / "vidpool" / "x") == "~/.cache/vidpool/x"
    monkeypatch.chdir(tmp_path)
    assert portable_path(tmp_path / "runs" / "a") == "runs/a"
    assert portable_path("/somewhere/else/out") == "out"


def test_committed_data_files_hold_no_machine_paths():
    tracked = subprocess.run(
        ["git", "ls-files", "*.json", "*.jsonl", "*.txt", "*.md"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    if not tracked:  # not a git checkout (an sdist): nothing to check
        return
    found = []
    for name in tracked:
        for number, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1):
            patterns = (MACHINE_PATH,) if name.endswith(".md") else (MACHINE_PATH, TEMPORARY_PATH)
            found += [f"{name}:{number}: {m.group(0)}" for p in patterns for m in p.finditer(line)]
    assert not found, "absolute paths of a machine in committed files:\n" + "\n".join(found[:20])
