"""The synthetic video benchmark: a seeded world of coloured shapes, eight question families with known
answers, a retrieval scorer that reads answers from kept tokens, and the controls every table needs.

The rules of the world, the families and the readout are described in ``docs/synth.md``.
"""

from vidpool.bench.synth.controls import (
    BUDGETED_CONTROLS,
    CONTROLS,
    control_compressed,
    control_kept,
    item_seed,
    shuffle_frames,
)
from vidpool.bench.synth.readout import (
    Kept,
    kept_tokens,
    option_prompts,
    option_scores,
    subject_prompt,
    text_embedder,
)
from vidpool.bench.synth.scenes import Scene, SceneObject, render_scene, write_frames_mp4
from vidpool.bench.synth.tasks import (
    DEFAULT_FRAMES,
    FAMILIES,
    LETTERS,
    Item,
    make_items,
    multiple_choice_prompt,
    render_item,
    write_item_mp4,
)

__all__ = [
    "BUDGETED_CONTROLS",
    "CONTROLS",
    "DEFAULT_FRAMES",
    "FAMILIES",
    "LETTERS",
    "Item",
    "Kept",
    "Scene",
    "SceneObject",
    "control_compressed",
    "control_kept",
    "item_seed",
    "kept_tokens",
    "make_items",
    "multiple_choice_prompt",
    "option_prompts",
    "option_scores",
    "render_item",
    "render_scene",
    "shuffle_frames",
    "subject_prompt",
    "text_embedder",
    "write_frames_mp4",
    "write_item_mp4",
]
