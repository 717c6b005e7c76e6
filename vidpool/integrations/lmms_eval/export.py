"""Write benchmark items as a local lmms-eval task: YAML, ``utils.py``, JSONL and MP4s, fully offline.

The folder holds two tasks over the same items:

- ``<name>`` (``generate_until``): the model answers in words; the answer is parsed to an option
  (``task_utils.parse_answer``). Chat models get ``doc_to_messages``, simple ones ``doc_to_visual``.
- ``<name>_choice`` (``multiple_choice``): each option's letter is scored by likelihood; lmms-eval 0.7
  sends such requests to simple models only, so run it with ``--force_simple``.

Both report ``accuracy``, ``accuracy_<family>`` for every family exported (each a mean over that
family's items, with lmms-eval's standard error) and ``answered`` (how often an answer named an option).
The dataset is read with ``dataset_path: json`` and local ``data_files``, never with
``dataset_kwargs.video`` (which downloads).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vidpool.errors import InvalidArgumentError

__all__ = ["DATA_FILE", "export_task", "lmms_eval_command"]

DATA_FILE = "items.jsonl"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_")


def _doc(item: Any, prompt: str, video: str) -> dict[str, Any]:
    options = [str(o) for o in item.options]
    answer = int(item.answer)
    if len(options) != 4 or not 0 <= answer < len(options):
        raise InvalidArgumentError(
            f"item {item.id!r} must have 4 options and an answer index 0-3, got {len(options)} options "
            f"and answer {answer}"
        )
    return {
        "id": str(item.id),
        "family": str(item.family),
        "question": str(item.question),
        "options": options,
        "answer": answer,
        "answer_letter": "ABCD"[answer],
        "num_frames": int(item.num_frames),
        "prompt": prompt,
        "video": video,
    }


def _metrics(families: Sequence[str]) -> list[dict[str, Any]]:
    names = ["accuracy", *(f"accuracy_{f}" for f in families), "answered"]
    return [{"metric": n, "aggregation": "mean", "higher_is_better": True} for n in names]


def _yaml(config: dict[str, Any]) -> str:
    """The task YAML: each value as JSON (which YAML reads as it is), ``!function`` tags left bare."""
    lines = []
    for key, value in config.items():
        bare = isinstance(value, str) and value.startswith("!function ")
        lines.append(f"{key}: {value if bare else json.dumps(value)}")
    return "\n".join(lines) + "\n"


def export_task(
    items: Sequence[Any],
    folder: str | Path,
    *,
    name: str = "vidpool_synth",
    side: int = 128,
    fps: int = 8,
    max_new_tokens: int = 16,
    write_video: Callable[..., Any] | None = None,
    prompt: Callable[[Any], str] | None = None,
) -> Path:
    """Write ``items`` as lmms-eval tasks ``name`` and ``name + "_choice"`` into ``folder``.

    Args:
        items: benchmark items (``vidpool.bench.synth.tasks.Item``: ``id``, ``family``, ``question``,
            4 ``options``, ``answer`` index, ``num_frames``, ``scene``).
        folder: where ``<name>.yaml``, ``<name>_choice.yaml``, ``utils.py``, ``items.jsonl`` and
            ``videos/<id>.mp4`` go (created; files of an earlier export are replaced).
        side, fps: size and rate of the MP4s.
        max_new_tokens: the answer length the generation task asks for.
        write_video, prompt: ``write_item_mp4(item, path, side=, fps=)`` and
            ``multiple_choice_prompt(item)``; default: ``vidpool.bench.synth.tasks``'.

    Returns:
        The folder, to pass as ``--include_path`` (see :func:`lmms_eval_command`).
    """
    if not items:
        raise InvalidArgumentError("no items to export; make some with vidpool.bench.synth.tasks.make_items")
    if not name or not set(name) <= _NAME_CHARS:
        raise InvalidArgumentError(f"task name must be lowercase letters, digits and '_', got {name!r}")
    if write_video is None or prompt is None:
        from vidpool.bench.synth import tasks

        write_video = write_video or tasks.write_item_mp4
        prompt = prompt or tasks.multiple_choice_prompt
    ids = [str(item.id) for item in items]
    if len(set(ids)) != len(ids):
        raise InvalidArgumentError("item ids must be unique: each names its video file")
    folder = Path(folder).resolve()
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    docs = []
    for item in items:
        relative = f"videos/{item.id}.mp4"
        write_video(item, folder / relative, side=side, fps=fps)
        docs.append(_doc(item, prompt(item), relative))
    data = folder / DATA_FILE
    data.write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    shutil.copyfile(Path(__file__).with_name("task_utils.py"), folder / "utils.py")
    families = list(dict.fromkeys(doc["family"] for doc in docs))
    common = {
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data)}},
        "test_split": "test",
        "doc_to_visual": "!function utils.doc_to_visual",
        "doc_to_text": "!function utils.doc_to_text",
        "doc_to_target": "!function utils.doc_to_target",
    }
    generate = {
        "task": name,
        **common,
        "doc_to_messages": "!function utils.doc_to_messages",
        "output_type": "generate_until",
        "generation_kwargs": {
            "max_new_tokens": int(max_new_tokens),
            "temperature": 0,
            "do_sample": False,
            "until": ["\n\n"],
        },
        "process_results": "!function utils.process_results",
        "metric_list": _metrics(families),
        "metadata": {"version": 1},
    }
    choice = {
        "task": f"{name}_choice",
        **common,
        "output_type": "multiple_choice",
        "doc_to_choice": "!function utils.doc_to_choice",
        "target_delimiter": " ",
        "process_results": "!function utils.process_choice_results",
        "metric_list": _metrics(families),
        "metadata": {"version": 1},
    }
    (folder / f"{name}.yaml").write_text(_yaml(generate))
    (folder / f"{name}_choice.yaml").write_text(_yaml(choice))
    return folder


def lmms_eval_command(
    folder: str | Path,
    *,
    name: str = "vidpool_synth",
    model: str | None = None,
    method: str | None = None,
    budget: int | None = None,
    frames: int | None = None,
    device: str | None = None,
    output_path: str | Path = "lmms_eval_results",
    limit: int | None = None,
    choice: bool = False,
) -> list[str]:
    """The ``lmms-eval`` command line that runs the exported task ``name`` with the vidpool model.

    ``choice`` runs the likelihood-scored ``<name>_choice`` task (``--force_simple``). Join with
    :func:`shlex.join` to print it.
    """
    model_args = ",".join(
        f"{key}={value}"
        for key, value in (
            ("model", model),
            ("method", method),
            ("budget", budget),
            ("frames", frames),
            ("device", device),
        )
        if value is not None
    )
    command = ["lmms-eval", "--model", "vidpool"]
    if model_args:
        command += ["--model_args", model_args]
    command += [
        "--tasks",
        f"{name}_choice" if choice else name,
        "--include_path",
        str(Path(folder).resolve()),
        "--batch_size",
        "1",
        "--output_path",
        str(output_path),
        "--log_samples",
    ]
    if choice:
        command.append("--force_simple")
    if limit is not None:
        command += ["--limit", str(limit)]
    return command
