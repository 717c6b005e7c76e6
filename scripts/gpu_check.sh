#!/usr/bin/env bash
# On a CUDA machine: predicted vs measured peak memory and time to first token of a 7B-shaped video LM
# (random weights built from configs, nothing downloaded) on 16, 64 and 256 frames, with and without
# progressive pooling. Extra arguments go to scripts/gpu_check.py (e.g. --json out.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
exec timeout 470 "$PY" scripts/gpu_check.py --device cuda "$@"
