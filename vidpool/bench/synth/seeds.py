"""The three kinds of item seed, kept apart so that nothing is tuned on the numbers that get published.

- :data:`TRAINING_SEEDS` (1 to 999,999): what trained weights saw. The training scripts draw every
  item from this range (``scripts/train_synth_vlm.py`` asserts it); no evaluation may use one.
- :data:`DEVELOPMENT_SEED` (0): every decision is made on it: readout rules, training stages,
  thresholds, the demo's samples. ``vidpool bench fidelity`` runs it by default.
- :data:`FINAL_SEED` (2,000,003): only the published run uses it; nothing is chosen by looking at it.

Any other non-negative seed is allowed and reported as ``"other"``.
"""

from __future__ import annotations

from vidpool.errors import InvalidArgumentError

__all__ = [
    "DEVELOPMENT_SEED",
    "FINAL_SEED",
    "SEED_KINDS",
    "TRAINING_SEEDS",
    "check_eval_seed",
    "seed_kind",
]

DEVELOPMENT_SEED = 0
FINAL_SEED = 2_000_003
TRAINING_SEEDS = range(1, 1_000_000)
SEED_KINDS = ("development", "final", "other")


def seed_kind(seed: int) -> str:
    """``"development"``, ``"final"``, ``"training"`` or ``"other"``: which kind ``seed`` is."""
    if seed == DEVELOPMENT_SEED:
        return "development"
    if seed == FINAL_SEED:
        return "final"
    return "training" if seed in TRAINING_SEEDS else "other"


def check_eval_seed(seed: int) -> str:
    """The kind of an evaluation item seed (one of :data:`SEED_KINDS`); :class:`InvalidArgumentError`
    for a training seed or a negative one."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidArgumentError(
            f"an item seed is a non-negative integer, got {seed!r}; use seed {DEVELOPMENT_SEED} (development) "
            f"or {FINAL_SEED} (final)"
        )
    kind = seed_kind(seed)
    if kind == "training":
        raise InvalidArgumentError(
            f"seed {seed} is a training seed ({TRAINING_SEEDS.start}..{TRAINING_SEEDS.stop - 1} are kept for "
            f"training; vidpool-synth learnt from their items) and would score what a model may have seen; "
            f"evaluate with seed {DEVELOPMENT_SEED} (development: every choice is made on it) or "
            f"{FINAL_SEED} (final: the published run only)"
        )
    return kind
