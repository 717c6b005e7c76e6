"""Shared helpers of the captioning tests: a folder of small generated videos (and one broken file)."""

from __future__ import annotations

import json
from pathlib import Path

CAPTION_OPTIONS = {"num_frames": 4, "max_new_tokens": 6}


def video_folder(folder: Path, count: int = 5, *, broken: bool = True) -> Path:
    """``count`` generated videos of different lengths in ``folder`` (half in a subfolder), plus a text
    file named ``broken.mp4`` that no decoder opens."""
    from vidpool.video import make_test_video

    for i in range(count):
        path = folder / ("sub" if i % 2 else ".") / f"clip{i}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            make_test_video(path, num_frames=12 + 6 * i, size=(64, 48), fps=12)
    if broken:
        (folder / "broken.mp4").write_text("not a video\n")
    return folder


def lines(path: Path) -> list[dict]:
    """Every line of a JSONL file parsed (a line that does not parse fails the test)."""
    text = Path(path).read_text()
    assert text == "" or text.endswith("\n"), "the file ends in a torn line"
    return [json.loads(line) for line in text.splitlines()]


def by_id(records: list[dict]) -> dict[str, dict]:
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), f"duplicated ids: {sorted(i for i in ids if ids.count(i) > 1)}"
    return {r["id"]: r for r in records}
