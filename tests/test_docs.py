"""The documents stay true: every relative link and anchor resolves, and the README's compression example runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
DOCUMENTS += [p for p in (ROOT / "checkpoints" / "README.md", ROOT / "demos" / "README.md") if p.exists()]


def _without_code(text: str) -> str:
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes, repeats numbered."""
    seen: dict[str, int] = {}
    found = set()
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # headings keep their inline code
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_and_anchors_resolve(document: Path):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _without_code(document.read_text())):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, fragment = target.partition("#")
        dest = (document.parent / file).resolve() if file else document
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and fragment not in _anchors(dest):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{document.name}: {broken}"


def _python_block_after(heading: str) -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_compression_example_runs_and_its_comments_hold():
    code = _python_block_after("## Compressing visual tokens")
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    out = namespace["out"]
    assert 0.9 * 3000 <= out.num_tokens <= 3000
    assert tuple(out.assign.shape) == (2, 32, 24, 24)
    assert "torch.Size([2, 2304, 1024])" in code
    assert str(out.num_tokens) in code  # the count the comment shows is the count the call gives


def test_synth_drawing_example_writes_the_video_it_describes(tmp_path, monkeypatch):
    """docs/synth.md's drawing example runs and its file holds a red circle, 40% of the side, on black."""
    pytest.importorskip("av")
    pytest.importorskip("PIL")
    from vidpool.video import VideoReader

    text = (ROOT / "docs" / "synth.md").read_text()
    section = text[text.index("### Drawing your own video for vidpool-synth") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/synth.md", "exec"), {})
    with VideoReader(tmp_path / "red-circle.mp4") as reader:
        frames = reader.sample(8).frames.numpy().astype(int)
    assert frames.shape == (8, 160, 160, 3)
    assert abs(frames[:, 80, 80] - (220, 30, 30)).max() <= 12  # the fill, in the middle
    assert frames[:, 80, 50].min(axis=0)[0] > 150 and frames[:, 80, 44].max() <= 20  # radius 32: edge
    assert frames[:, 54, 54].max() <= 20 and frames[:, 2, 2].max() <= 12  # round, on black
