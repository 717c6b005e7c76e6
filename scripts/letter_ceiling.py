"""Can the language model pick the lettered option it is told is right? The ceiling of lettered answers.

    python scripts/letter_ceiling.py                  # 40 development-seed questions a family, vidpool-synth
    python scripts/letter_ceiling.py --families static,count --count 80 --model DIR

No video: each benchmark question is asked with the benchmark's lettered prompt
(:func:`vidpool.bench.synth.tasks.multiple_choice_prompt`) after one line that states the answer in
words ("The answer is: red."), through the model's own chat template and generation, as the
``text_only`` control asks. The reply is read as the benchmark reads it (its leading letter, else the
one option it names). The same is done with the question alone (``free``), read by the option's words.

A model that cannot pick the right letter when it is told the answer cannot pick it from a video:
this bounds what the lettered benchmark can show of the visual tokens. Prints accuracy per family and
style with a 95% Wilson interval and how often the reply is each letter; ``--json`` adds one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

STYLES = ("letter", "free")


def told_prompt(item, style: str) -> str:
    """The answer stated in words, then the question as the benchmark asks it in ``style``."""
    from vidpool.bench.synth.tasks import multiple_choice_prompt

    statement = f"The answer is: {item.options[item.answer]}."
    question = multiple_choice_prompt(item) if style == "letter" else item.question
    return f"{statement}\n{question}"


def main(argv: list[str] | None = None) -> int:
    from vidpool.bench.cli import eval_seed, family_name
    from vidpool.bench.synth.seeds import DEVELOPMENT_SEED
    from vidpool.bench.synth.tasks import FAMILIES
    from vidpool.options import comma_list, positive_int

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--families", type=comma_list(family_name), default=FAMILIES)
    parser.add_argument("--count", type=positive_int, default=40, help="questions a family")
    parser.add_argument(
        "--seed", type=eval_seed, default=DEVELOPMENT_SEED, help="the items' seed (default: development)"
    )
    parser.add_argument("--model", default=None, help="checkpoint folder (default: vidpool-synth)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    import torch

    from vidpool.bench.generative import MAX_NEW_TOKENS, parse_choice
    from vidpool.bench.stats import wilson
    from vidpool.bench.synth.tasks import LETTERS, make_items
    from vidpool.llm import load_model
    from vidpool.models import build_model
    from vidpool.quiet import quiet_libraries

    torch.manual_seed(0)
    folder = Path(args.model) if args.model else build_model("vidpool-synth")
    with quiet_libraries():
        model = load_model(folder, device="cpu")
    weight = model.input_embeddings.weight
    no_video = torch.zeros(0, weight.shape[1], dtype=weight.dtype)
    results: dict[str, dict] = {}
    for family in args.families:
        items = make_items(family, args.count, seed=args.seed)
        for style in STYLES:
            letters = LETTERS if style == "letter" else ""
            right, said = [], Counter()
            for item in items:
                reply = str(
                    model.generate(no_video, told_prompt(item, style), max_new_tokens=MAX_NEW_TOKENS[style])
                )
                choice = parse_choice(reply, item.options, letters)
                right.append(choice == item.answer)
                said[LETTERS[choice] if style == "letter" and choice is not None else "other"] += 1
            k, n = int(sum(right)), len(right)
            low, high = wilson(k, n)
            results.setdefault(family, {})[style] = {
                "right": k,
                "n": n,
                "accuracy": k / n,
                "interval": [low, high],
                "replies": dict(said),
            }
            shares = ", ".join(f"{key} {value}" for key, value in sorted(said.items()))
            print(
                f"{family:12s} {style:6s} {k:3d} of {n:3d}  {k / n:.2f} [{low:.2f}, {high:.2f}]  ({shares})",
                flush=True,
            )
    if args.json:
        print(json.dumps({"model": str(folder), "seed": args.seed, "families": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
