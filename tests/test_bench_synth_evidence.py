"""vidpool.bench.synth.evidence: where an item's answer lives, checked against the rendered pixels,
and how much of it a compression keeps, checked against the methods' own provenance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import vidpool
from vidpool.bench.generative import sample_clip
from vidpool.bench.synth.evidence import EVENT_COVER, event_masks, item_events, kept_share
from vidpool.bench.synth.tasks import FAMILIES, SEEN_FRAMES, make_items, render_item
from vidpool.bench.synth.world import COLOURS, FRAME_SIZE

GRID = (8, 8)


def _sampled(item, count: int) -> list[int]:
    """The frame indices ``sample_clip`` (and so VideoReader) takes for ``count`` frames."""
    frames = render_item(item)
    stamps = sample_clip(frames, count)[1]
    return [round(t * 8.0) for t in stamps]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_event_is_in_the_seen_frames(family):
    """SEEN_FRAMES sampled frames show every needle, flash, order object, change and the mover's ends."""
    for item in make_items(family, 12, seed=5):
        sampled = _sampled(item, SEEN_FRAMES)
        for event, mask in event_masks(item, sampled, GRID):
            assert mask.any(), (item.id, event.name, sampled)


def test_events_name_what_the_answer_depends_on():
    item = make_items("count", 4, seed=1)[2]
    events = item_events(item)
    assert len(events) == int(item.options[item.answer])
    assert [e.name.split(" (")[0] for e in events] == [f"flash {k + 1}" for k in range(len(events))]
    assert all(len(e.frames) == 2 for e in events)  # FLASH_FRAMES
    order = make_items("order", 2, seed=1)[0]
    first = item_events(order)[0]
    assert first.name.startswith(f"the {order.options[order.answer]} ")
    change = make_items("change", 2, seed=1)[0]
    assert item_events(change)[0].name.startswith(f"the turn to {change.options[change.answer]} (")


@pytest.mark.parametrize("family", ["needle", "count", "change", "small"])
def test_masks_are_the_patches_the_objects_colour_covers(family):
    """Against the rendered pixels: a patch is marked when the event's colour fills at least EVENT_COVER
    of it, or is the patch it fills most (these objects are the only ones of their colour in their frames)."""
    for item in make_items(family, 6, seed=2):
        frames = render_item(item, side=FRAME_SIZE)
        sampled = list(range(item.num_frames))
        for event, mask in event_masks(item, sampled, GRID):
            obj = item.scene.find(event.role)
            for t in sampled:
                if t not in event.frames:
                    assert not mask[t].any()
                    continue
                rgb = np.array(COLOURS[item.scene.colour(obj, t)], dtype=np.uint8)
                fill = np.all(frames[t] == rgb, axis=-1)
                side = FRAME_SIZE // GRID[0]
                share = fill.reshape(GRID[0], side, GRID[1], side).mean(axis=(1, 3))
                marked = share >= min(EVENT_COVER, share.max())
                np.testing.assert_array_equal(mask[t], marked, err_msg=f"{item.id} frame {t}")


def test_kept_share_reads_the_methods_provenance():
    torch.manual_seed(0)
    features = torch.randn(4, 8, 8, 16)
    one = np.zeros((4, 8, 8), dtype=bool)
    one[1, 3, 5] = True
    assert kept_share(vidpool.compress(features, "none"), one) == pytest.approx(1.0)
    # spatial pooling with stride 2 averages 2 x 2 patches of a frame: one patch is a quarter of its token
    pooled = vidpool.compress(features, "spatial", stride=2)
    assert kept_share(pooled, one) == pytest.approx(0.25)
    block = np.zeros_like(one)
    block[1, 2:4, 4:6] = True
    assert kept_share(pooled, block) == pytest.approx(1.0)
    # a pruning method keeps a patch whole or drops it
    pruned = vidpool.compress(features, "random_drop", budget=16, seed=0)
    kept = (pruned.assign >= 0).numpy()
    dropped = ~kept
    assert kept_share(pruned, kept) == pytest.approx(1.0)
    assert kept_share(pruned, dropped) == 0.0
    assert kept_share(pruned, np.zeros_like(one)) == 0.0
    with pytest.raises(ValueError, match="grid"):
        kept_share(pooled, one[:2])
