"""The scene of each question family, drawn from a seeded generator around a chosen right answer.

Each builder takes ``rng`` (the item's own generator), the answer value the balancing in
:mod:`vidpool.bench.synth.tasks` chose, and the frame count, and returns ``(scene, facts)``: the
:class:`Scene` and what the question and its wrong options need (the subject's colour and shape, the
colours that must not be offered). Geometry (fractions of the side; the CLIP sees an 8 x 8 grid):

- main objects are 0.35-0.5 of the side; the targets a budget can lose are smaller: a small
  object 0.15 (about one patch), needles 0.2, order objects 0.22, flashing and changing objects
  0.22-0.28;
- brief events: a needle shows for ``NEEDLE_FRAMES`` frames, a flash for ``FLASH_FRAMES``, each
  ``order`` object for ``ORDER_FRAMES`` (then it leaves), a colour change for ``CHANGE_FRAMES`` (then
  the object turns back), so that a method which drops frames or scattered tokens can miss them;
- objects that must not overlap sit in different halves or quadrants;
- one or two grey distractors (0.12-0.2) wander and bounce off the edges, drawn beneath the coloured
  objects so that they never hide them; in ``count`` they stand still, so that the frames between
  flashes are identical.
"""

from __future__ import annotations

import numpy as np

from vidpool.bench.synth.scenes import GREY, Scene, SceneObject
from vidpool.bench.synth.world import BACKGROUNDS, COLOURS, SHAPES

__all__ = [
    "BUILDERS",
    "CHANGE_FRAMES",
    "DIRECTIONS",
    "FLASH_FRAMES",
    "NEEDLE_FRAMES",
    "ORDER_FRAMES",
    "QUARTERS",
]

COLOUR_NAMES = tuple(COLOURS)
DIRECTIONS = ("left", "right", "up", "down")
QUARTERS = ("first quarter", "second quarter", "third quarter", "fourth quarter")
NEEDLE_FRAMES = 4  # the needle's run of consecutive frames
FLASH_FRAMES = 2  # frames of one flash in ``count``
FLASH_GAP = 3  # at least this many identical frames between two flashes
ORDER_FRAMES = 4  # frames each ``order`` object is shown
ORDER_GAP = 2  # at least this many frames between one ``order`` object leaving and the next appearing
CHANGE_FRAMES = 3  # frames of the new colour in ``change``
NEEDLE_SIZE = 0.2
_STEP = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}


def _pick(rng: np.random.Generator, values, exclude=()) -> str:
    pool = [v for v in values if v not in exclude]
    return str(pool[int(rng.integers(len(pool)))])


def _free_xy(rng, size: float) -> tuple[float, float]:
    """A centre that keeps an object of ``size`` inside the frame."""
    return tuple(float(v) for v in rng.uniform(size / 2 + 0.02, 1 - size / 2 - 0.02, size=2))


def _still(role, shape, size, colour, xy, runs) -> SceneObject:
    return SceneObject(role, shape, float(size), ((0, colour),), tuple(runs), xy, xy)


def _distractors(rng: np.random.Generator, num_frames: int, moving: bool = True) -> list[SceneObject]:
    out = []
    for _ in range(int(rng.integers(1, 3))):
        size = float(rng.uniform(0.12, 0.2))
        start = tuple(float(v) for v in rng.uniform(size / 2, 1 - size / 2, size=2))
        travel = rng.uniform(-1.2, 1.2, size=2) if moving else np.zeros(2)
        end = (start[0] + float(travel[0]), start[1] + float(travel[1]))
        out.append(
            SceneObject(
                "distractor", _pick(rng, SHAPES), size, ((0, GREY),), ((0, num_frames),), start, end, True
            )
        )
    return out


def _scene(rng: np.random.Generator, num_frames: int, objects, moving: bool = True) -> Scene:
    return Scene(
        num_frames=num_frames,
        background=_pick(rng, BACKGROUNDS),
        background_seed=int(rng.integers(1 << 31)),
        objects=(*_distractors(rng, num_frames, moving), *objects),
    )


def _two_halves(rng: np.random.Generator, size_a: float, size_b: float):
    """Centres of two objects in opposite halves (left/right or top/bottom, at random)."""
    a = (0.27, float(rng.uniform(size_a / 2 + 0.03, 1 - size_a / 2 - 0.03)))
    b = (0.75, float(rng.uniform(size_b / 2 + 0.03, 1 - size_b / 2 - 0.03)))
    if rng.random() < 0.5:
        a, b = (1 - a[0], a[1]), (1 - b[0], b[1])
    if rng.random() < 0.5:
        a, b = (a[1], a[0]), (b[1], b[0])
    return a, b


def static(rng, answer: str, num_frames: int):
    """One large object; ``answer`` is its colour or its shape (the other is drawn at random)."""
    colour = answer if answer in COLOURS else _pick(rng, COLOUR_NAMES)
    shape = answer if answer in SHAPES else _pick(rng, SHAPES)
    size = float(rng.uniform(0.35, 0.5))
    main = _still("main", shape, size, colour, _free_xy(rng, size), [(0, num_frames)])
    return _scene(rng, num_frames, [main]), {"colour": colour, "shape": shape, "exclude": ()}


def small(rng, answer: str, num_frames: int):
    """A large object of another colour and a one-patch object of colour ``answer``."""
    large_colour = _pick(rng, COLOUR_NAMES, exclude=(answer,))
    big_xy, small_xy = _two_halves(rng, 0.4, 0.15)
    large = _still("main", _pick(rng, SHAPES), 0.4, large_colour, big_xy, [(0, num_frames)])
    tiny = _still("small", _pick(rng, SHAPES), 0.15, answer, small_xy, [(0, num_frames)])
    facts = {"colour": answer, "shape": tiny.shape, "exclude": (large_colour,)}
    return _scene(rng, num_frames, [large, tiny]), facts


def _needle_scene(rng, colour: str, num_frames: int, first: int):
    steady_colour = _pick(rng, COLOUR_NAMES, exclude=(colour,))
    steady_xy, needle_xy = _two_halves(rng, 0.35, NEEDLE_SIZE)
    steady = _still("steady", _pick(rng, SHAPES), 0.35, steady_colour, steady_xy, [(0, num_frames)])
    runs = [(first, first + NEEDLE_FRAMES)]
    needle = _still("needle", _pick(rng, SHAPES), NEEDLE_SIZE, colour, needle_xy, runs)
    facts = {"colour": colour, "shape": needle.shape, "exclude": (steady_colour,)}
    return _scene(rng, num_frames, [steady, needle]), facts


def needle(rng, answer: str, num_frames: int):
    """An object shown all along, and a needle of colour ``answer`` for ``NEEDLE_FRAMES`` frames."""
    first = int(rng.integers(0, num_frames - NEEDLE_FRAMES + 1))
    return _needle_scene(rng, answer, num_frames, first)


def needle_time(rng, answer: str, num_frames: int):
    """A needle whose whole run lies inside quarter ``answer`` (quarters split frames as ``q·T // 4``)."""
    q = QUARTERS.index(answer)
    lo, hi = q * num_frames // 4, (q + 1) * num_frames // 4 - NEEDLE_FRAMES
    first = int(rng.integers(lo, hi + 1))
    return _needle_scene(rng, _pick(rng, COLOUR_NAMES), num_frames, first)


def _spread_runs(rng, n: int, length: int, gap: int, num_frames: int) -> list[tuple[int, int]]:
    """``n`` runs of ``length`` frames, at least ``gap`` frames apart, the slack spread at random over
    the ``n + 1`` gaps (before, between and after the runs)."""
    free = num_frames - n * length - (n - 1) * gap
    cuts = np.sort(rng.integers(0, free + 1, size=n))
    slack = np.diff(np.concatenate([[0], cuts, [free]]))
    runs, t = [], int(slack[0])
    for k in range(n):
        runs.append((t, t + length))
        t += length + gap + int(slack[k + 1])
    return runs


def count(rng, answer: str, num_frames: int):
    """An object that flashes ``answer`` times (``FLASH_FRAMES`` each), still frames in between."""
    runs = _spread_runs(rng, int(answer), FLASH_FRAMES, FLASH_GAP, num_frames)
    size = float(rng.uniform(0.22, 0.28))
    flash = _still("flash", _pick(rng, SHAPES), size, _pick(rng, COLOUR_NAMES), _free_xy(rng, size), runs)
    facts = {"colour": flash.first_colour, "shape": flash.shape, "exclude": ()}
    return _scene(rng, num_frames, [flash], moving=False), facts


def order(rng, answer: str, num_frames: int):
    """Three objects of different colours shown one after another (the first ``answer``), each for
    ``ORDER_FRAMES`` frames, each gone before the next appears."""
    colours = [answer]
    for _ in range(2):
        colours.append(_pick(rng, COLOUR_NAMES, exclude=colours))
    runs = _spread_runs(rng, 3, ORDER_FRAMES, ORDER_GAP, num_frames)
    slots = rng.permutation([(0.27, 0.27), (0.73, 0.27), (0.27, 0.73), (0.73, 0.73)])[:3]
    objects = []
    for k, (colour, run, slot) in enumerate(zip(colours, runs, slots)):
        jitter = rng.uniform(-0.03, 0.03, size=2)
        xy = (float(slot[0] + jitter[0]), float(slot[1] + jitter[1]))
        objects.append(_still(f"order{k}", _pick(rng, SHAPES), 0.22, colour, xy, [run]))
    facts = {"colour": answer, "shape": objects[0].shape, "exclude": (), "present": tuple(colours)}
    return _scene(rng, num_frames, objects), facts


def direction(rng, answer: str, num_frames: int):
    """An object crossing the frame towards ``answer`` (0.22 to 0.78 of the side) over the whole clip."""
    dx, dy = _STEP[answer]
    across = float(rng.uniform(0.25, 0.75))
    a, b = 0.5 - 0.28 * (dx + dy), 0.5 + 0.28 * (dx + dy)
    start, end = ((a, across), (b, across)) if dx else ((across, a), (across, b))
    colour, shape = _pick(rng, COLOUR_NAMES), _pick(rng, SHAPES)
    mover = SceneObject("mover", shape, 0.3, ((0, colour),), ((0, num_frames),), start, end)
    return _scene(rng, num_frames, [mover]), {"colour": colour, "shape": shape, "exclude": ()}


def change(rng, answer: str, num_frames: int):
    """An object that turns from another colour into ``answer`` for ``CHANGE_FRAMES`` frames and back.

    The change starts after frame 0, ends before the last frame and never covers the middle frame
    ``T // 2``: one frame (the middle-frame control) shows the first colour only.
    """
    before = _pick(rng, COLOUR_NAMES, exclude=(answer,))
    middle = num_frames // 2
    starts = [t for t in range(1, num_frames - CHANGE_FRAMES) if not t <= middle < t + CHANGE_FRAMES]
    at = int(starts[int(rng.integers(len(starts)))])
    size = float(rng.uniform(0.22, 0.28))
    colours = ((0, before), (at, answer), (at + CHANGE_FRAMES, before))
    xy = _free_xy(rng, size)
    obj = SceneObject("changer", _pick(rng, SHAPES), size, colours, ((0, num_frames),), xy, xy)
    facts = {"colour": before, "shape": obj.shape, "exclude": (), "before": before, "at": at}
    return _scene(rng, num_frames, [obj]), facts


BUILDERS = {
    "static": static,
    "small": small,
    "needle": needle,
    "needle_time": needle_time,
    "count": count,
    "order": order,
    "direction": direction,
    "change": change,
}
