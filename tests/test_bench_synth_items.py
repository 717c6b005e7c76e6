"""The synthetic benchmark's videos and questions: determinism, answers recoverable from the scene
record and from the pixels alone, balanced options, and MP4 files that decode to the rendered frames."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from vidpool.bench.synth import (
    DEFAULT_FRAMES,
    FAMILIES,
    LETTERS,
    make_items,
    multiple_choice_prompt,
    render_item,
    write_item_mp4,
)
from vidpool.bench.synth.families import (
    CHANGE_FRAMES,
    FLASH_GAP,
    NEEDLE_FRAMES,
    ORDER_FRAMES,
    ORDER_GAP,
    QUARTERS,
)
from vidpool.bench.synth.world import COLOURS, DISTRACTOR_RGB
from vidpool.errors import InvalidArgumentError

# Short clips keep rendering cheap; needle families need at least 4 needle runs of room.
FRAMES = {"needle": 32, "needle_time": 32}


def _items(family: str, count: int, seed: int = 0):
    return make_items(family, count, seed=seed, num_frames=FRAMES.get(family))


def _present(frame: np.ndarray, colour: str) -> np.ndarray:
    """Bool ``[S, S]``: pixels of exactly ``colour``'s RGB (rendering paints flat colours)."""
    return np.all(frame == np.array(COLOURS[colour], dtype=np.uint8), axis=-1)


def _frames_with(frames: np.ndarray, colour: str) -> np.ndarray:
    return np.flatnonzero([_present(f, colour).any() for f in frames])


def _runs(indices: np.ndarray) -> int:
    return 0 if len(indices) == 0 else int(1 + np.sum(np.diff(indices) > 1))


def _subject_colour(question: str) -> str:
    return re.search(r"the (\w+) (circle|square|triangle|diamond|cross)", question).group(1)


def _pixel_oracle(item, frames: np.ndarray) -> str:
    """The answer read from the pixels and the question alone, without the scene record."""
    fam, options = item.family, item.options
    if fam == "static" and options[0] in COLOURS:
        counts = {c: int(_present(frames[0], c).sum()) for c in options}
        return max(counts, key=counts.get)
    if fam == "static":
        colour = max(COLOURS, key=lambda c: _present(frames[0], c).sum())
        mask = _present(frames[0], colour)
        ys, xs = np.nonzero(mask)
        box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        fill = box.mean()
        widest = int(np.argmax(box.sum(axis=1))) / box.shape[0]
        if fill > 0.93:
            return "square"
        if fill > 0.7:
            return "circle"
        if fill > 0.545:
            return "cross"
        return "triangle" if widest > 0.75 else "diamond"
    if fam in ("small", "needle"):
        seen = [o for o in options if _frames_with(frames, o.split()[0]).size]
        assert len(seen) == 1, (item.id, seen)
        return seen[0]
    colour = _subject_colour(item.question) if fam != "order" else None
    if fam == "needle_time":
        shown = _frames_with(frames, colour)
        return QUARTERS[int(shown[0]) * 4 // len(frames)]
    if fam == "count":
        return str(_runs(_frames_with(frames, colour)))
    if fam == "order":
        onsets = {o: _frames_with(frames, o) for o in options}
        return min((o for o in options if onsets[o].size), key=lambda o: onsets[o][0])
    if fam == "direction":
        ys0, xs0 = np.nonzero(_present(frames[0], colour))
        ys1, xs1 = np.nonzero(_present(frames[-1], colour))
        dx, dy = xs1.mean() - xs0.mean(), ys1.mean() - ys0.mean()
        return ("right" if dx > 0 else "left") if abs(dx) > abs(dy) else ("down" if dy > 0 else "up")
    assert fam == "change"
    first = [o for o in options if _present(frames[0], o).any()]
    later = [o for o in options if o not in first and _frames_with(frames, o).size]
    assert len(first) == 1 and len(later) == 1, (item.id, first, later)
    return later[0]


def _record_oracle(item) -> str:
    """The answer read from the scene record alone."""
    scene, fam = item.scene, item.family
    if fam == "static":
        main = scene.find("main")
        return main.first_colour if item.options[0] in COLOURS else main.shape
    if fam == "small":
        return scene.find("small").first_colour
    if fam == "needle":
        obj = scene.find("needle")
        return f"{obj.first_colour} {obj.shape}"
    if fam == "needle_time":
        return QUARTERS[int(scene.visible_frames(scene.find("needle"))[0]) * 4 // scene.num_frames]
    if fam == "count":
        return str(len(scene.find("flash").runs))
    if fam == "order":
        objs = [o for o in scene.objects if o.role.startswith("order")]
        return min(objs, key=lambda o: o.runs[0][0]).first_colour
    if fam == "direction":
        obj = scene.find("mover")
        (x0, y0), (x1, y1) = scene.position(obj, 0), scene.position(obj, scene.num_frames - 1)
        return (
            ("right" if x1 > x0 else "left") if abs(x1 - x0) > abs(y1 - y0) else ("down" if y1 > y0 else "up")
        )
    changer = scene.find("changer")
    return next(c for t, c in changer.colours if c != changer.first_colour)


@pytest.mark.parametrize("family", FAMILIES)
def test_answers_recoverable_from_record_and_pixels(family):
    for item in _items(family, 12, seed=3):
        frames = render_item(item, side=128)
        assert frames.shape == (item.num_frames, 128, 128, 3) and frames.dtype == np.uint8
        right = item.options[item.answer]
        assert _record_oracle(item) == right, item.id
        assert _pixel_oracle(item, frames) == right, item.id


def test_needle_is_shown_for_k_consecutive_frames_only():
    for item in _items("needle", 8) + _items("needle_time", 8):
        colour = _subject_colour(f"the {item.options[item.answer]}") if item.family == "needle" else None
        colour = colour or _subject_colour(item.question)
        shown = _frames_with(render_item(item), colour)
        assert len(shown) == NEEDLE_FRAMES and np.all(np.diff(shown) == 1)


def test_count_flashes_are_separated_by_identical_frames():
    for item in _items("count", 8):
        frames = render_item(item)
        shown = _frames_with(frames, _subject_colour(item.question))
        gaps = np.diff(shown)[np.diff(shown) > 1] - 1
        assert all(g >= FLASH_GAP for g in gaps)
        off = np.setdiff1d(np.arange(len(frames)), shown)
        assert all(np.array_equal(frames[off[0]], frames[t]) for t in off)  # distractors stand still


def test_order_objects_leave_before_the_next_appears():
    for item in _items("order", 8):
        frames = render_item(item, side=128)
        shown = sorted(
            (_frames_with(frames, o) for o in item.options), key=lambda f: (f.size == 0, f[:1].tolist())
        )
        runs = [f for f in shown if f.size]
        assert len(runs) == 3  # the fourth option never appears
        for run in runs:
            assert len(run) == ORDER_FRAMES and np.all(np.diff(run) == 1)
        for a, b in itertools.pairwise(runs):
            assert b[0] - a[-1] > ORDER_GAP  # gone for ORDER_GAP frames at least


def test_change_is_brief_and_misses_the_middle_frame():
    for item in _items("change", 24):
        frames = render_item(item, side=128)
        new = item.options[item.answer]
        shown = _frames_with(frames, new)
        assert len(shown) == CHANGE_FRAMES and np.all(np.diff(shown) == 1)
        assert shown[0] > 0 and shown[-1] < len(frames) - 1
        assert item.num_frames // 2 not in shown


def test_direction_items_come_in_reversed_pairs():
    items = make_items("direction", 6, seed=5)
    opposite = {"left": "right", "right": "left", "up": "down", "down": "up"}
    for a, b in zip(items[0::2], items[1::2]):
        assert opposite[a.options[a.answer]] == b.options[b.answer]
        np.testing.assert_array_equal(render_item(a)[::-1], render_item(b))


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_items_and_pixels(family):
    a, b = _items(family, 3, seed=9), _items(family, 3, seed=9)
    assert a == b
    np.testing.assert_array_equal(render_item(a[2]), render_item(b[2]))
    assert _items(family, 5, seed=9)[:3] == a  # item i depends on (family, seed, i) only
    assert [i.id for i in _items(family, 3, seed=10)] != [i.id for i in a]
    assert len({i.id for i in _items(family, 40)}) == 40


@pytest.mark.parametrize("family", FAMILIES)
def test_options_balanced_in_position_and_value(family):
    items = make_items(family, 800, seed=1)
    assert all(len(set(i.options)) == 4 for i in items)
    positions = np.bincount([i.answer for i in items], minlength=4)
    assert positions.tolist() == [200] * 4  # whole blocks of four positions
    kinds = [items] if family != "static" else [items[0::2], items[1::2]]
    value = (lambda o: o.split()[0]) if family == "needle" else (lambda o: o)  # needle: colour and shape
    for group in kinds:
        right = [value(i.options[i.answer]) for i in group]
        values = sorted(set(right))
        counts = np.array([right.count(v) for v in values])
        assert counts.min() == counts.max(), counts  # whole blocks of every value
        offered = [value(o) for i in group for o in i.options]
        seen = np.array([offered.count(v) for v in sorted(set(offered))], dtype=float)
        if len(seen) > 4:  # colours or shapes offered as wrong options about equally often
            expected = seen.sum() / len(seen)
            chi2 = float(((seen - expected) ** 2 / expected).sum())
            assert chi2 < 3 * len(seen) + 20, (seen, chi2)  # far below what a favoured value gives
        wrong = [value(o) for i in group for k, o in enumerate(i.options) if k != i.answer]
        assert len(set(wrong)) == len(set(offered))  # every value is sometimes a wrong option


def test_defaults_and_prompt_text():
    for family in FAMILIES:
        assert make_items(family, 1)[0].num_frames == DEFAULT_FRAMES[family]
    assert DEFAULT_FRAMES["needle"] >= 64 and DEFAULT_FRAMES["static"] <= 16
    item = make_items("change", 1)[0]
    text = multiple_choice_prompt(item)
    assert text.splitlines()[0] == item.question and text.endswith("Answer with the letter.")
    for letter, option in zip(LETTERS, item.options):
        assert f"\n{letter}. {option}\n" in text


def test_bad_arguments_are_explained():
    with pytest.raises(InvalidArgumentError, match="families are"):
        make_items("colour", 1)
    with pytest.raises(InvalidArgumentError, match="num_frames >= 16"):
        make_items("needle_time", 1, num_frames=8)


def test_long_videos_render():
    item = make_items("needle", 1, num_frames=2000)[0]
    frames = render_item(item, side=32)
    assert frames.shape == (2000, 32, 32, 3)
    grey = np.all(frames == np.array(DISTRACTOR_RGB, dtype=np.uint8), axis=-1).any(axis=(1, 2))
    assert grey.mean() > 0.9  # distractors are on screen (coloured objects may cover them briefly)


def test_mp4_round_trip_through_video_reader(tmp_path):
    pytest.importorskip("av")
    from vidpool import VideoReader

    item = make_items("count", 1, seed=2)[0]
    path = write_item_mp4(item, tmp_path / "item.mp4", side=128, fps=8)
    rendered = render_item(item, side=128)
    with VideoReader(path) as reader:
        decoded = reader.sample(item.num_frames).frames.numpy()
        assert reader.info.num_frames == item.num_frames
        assert reader.info.fps == pytest.approx(8)
    assert decoded.shape == rendered.shape
    err = np.abs(decoded.astype(np.int16) - rendered.astype(np.int16))
    assert err.mean() < 4 and np.percentile(err, 99) < 40
    flashes = [f for f in range(len(rendered)) if _present(rendered[f], _subject_colour(item.question)).any()]
    rgb = np.array(COLOURS[_subject_colour(item.question)])
    for f in range(len(rendered)):  # the flashes are where the rendered frames put them
        near = np.abs(decoded[f].astype(int) - rgb).max(axis=-1) < 24
        assert (near.sum() > 100) == (f in flashes)
