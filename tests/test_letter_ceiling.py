"""scripts/letter_ceiling.py: the answer stated in words, then the benchmark's own question."""

from __future__ import annotations

import importlib.util
import json

import pytest
from pipeline_support import ROOT, checkpoint

from vidpool.bench.synth.tasks import LETTERS, make_items, multiple_choice_prompt


def _script():
    spec = importlib.util.spec_from_file_location("letter_ceiling", ROOT / "scripts" / "letter_ceiling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("family", ["static", "count", "needle_time"])
def test_the_prompt_states_the_answer_then_asks_as_the_benchmark_does(family):
    script = _script()
    item = make_items(family, 3, seed=0)[1]
    lettered = script.told_prompt(item, "letter")
    statement, question = lettered.split("\n", 1)
    assert statement == f"The answer is: {item.options[item.answer]}."
    assert question == multiple_choice_prompt(item)
    assert script.told_prompt(item, "free") == f"{statement}\n{item.question}"


def test_it_scores_every_family_and_style_and_refuses_training_seeds(capsys):
    script = _script()
    folder = checkpoint("tiny-native")
    assert script.main(["--families", "static,order", "--count", "2", "--model", str(folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for family in ("static", "order"):
        for style in ("letter", "free"):
            row = result["families"][family][style]
            assert row["n"] == 2 and 0 <= row["right"] <= 2
            assert sum(row["replies"].values()) == 2
            assert set(row["replies"]) <= {*LETTERS, "other"}
    with pytest.raises(SystemExit):
        script.main(["--seed", "5", "--model", str(folder)])
    assert "training seed" in capsys.readouterr().err
