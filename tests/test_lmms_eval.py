"""The lmms-eval plugin: model_args, answer parsing, the exported task as lmms-eval reads it, the model on
a tiny checkpoint, and the real ``lmms-eval --model vidpool`` command, offline."""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from pipeline_support import ROOT, checkpoint, loaded

pytest.importorskip("lmms_eval")

from lmms_eval.api.instance import Instance

from vidpool.bench.synth.tasks import Item
from vidpool.errors import InvalidArgumentError, UnknownMethodError
from vidpool.integrations.lmms_eval import export_task, lmms_eval_command, manifests
from vidpool.integrations.lmms_eval.model import VidpoolLMM, parse_model_args
from vidpool.integrations.lmms_eval.requests import (
    generation_options,
    turn_from_messages,
    video_of,
)
from vidpool.integrations.lmms_eval.task_utils import (
    parse_answer,
    process_choice_results,
    process_results,
)

OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def write_mp4(item: Item, path: Path, *, side: int, fps: int) -> Path:
    from vidpool.video import make_test_video

    make_test_video(path, num_frames=item.num_frames, fps=fps, size=(side, side))
    return path


def mc_prompt(item: Item) -> str:
    lines = [f"{letter}. {option}" for letter, option in zip("ABCD", item.options)]
    return "\n".join([item.question, *lines, "Answer with the letter."])


ITEMS = [
    Item(f"item{i}", ("static", "count")[i % 2], "What colour is the square?", COLOURS, i % 4, 8, None)
    for i, COLOURS in enumerate([("red", "green", "blue", "white")] * 4)
]


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory) -> Path:
    return export_task(
        ITEMS, tmp_path_factory.mktemp("lmms") / "task", write_video=write_mp4, prompt=mc_prompt, side=64
    )


def exported_utils(folder: Path) -> Any:
    """The task's utils.py, imported from its file as lmms-eval imports ``!function utils.NAME``."""
    spec = importlib.util.spec_from_file_location("utils", folder / "utils.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny() -> str:
    return str(checkpoint("tiny-native"))


# -- model_args -----------------------------------------------------------------------------
def test_model_args_parse_the_documented_keys():
    args = parse_model_args(
        model="/m", method="prompt_guided", budget=256, frames=16.0, device="cpu", batch_size="1"
    )
    assert (args.model, args.method, args.budget, args.frames, args.device) == (
        "/m",
        "prompt_guided",
        256,
        16,
        "cpu",
    )
    assert parse_model_args(memory="8GiB").memory == 8 * 2**30


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"methd": "spatial"}, InvalidArgumentError, "unknown vidpool model_args ['methd']"),
        ({"method": "nope"}, UnknownMethodError, "unknown compression method 'nope'"),
        ({"budget": -3.0}, InvalidArgumentError, "budget must be a positive integer"),
        ({"frames": "many"}, InvalidArgumentError, "frames must be a positive integer"),
        ({"device": "tpu"}, InvalidArgumentError, "unsupported device 'tpu'"),
        ({"batch_size": "x"}, InvalidArgumentError, "batch_size must be a positive integer or 'auto'"),
    ],
)
def test_bad_model_args_are_refused_before_the_model_loads(kwargs, error, words, tmp_path):
    # the model path does not exist: the checks must come first
    with pytest.raises(error) as info:
        VidpoolLMM(model=str(tmp_path / "missing"), **kwargs)
    assert words in str(info.value)


def test_an_unknown_model_name_says_what_to_pass():
    with pytest.raises(InvalidArgumentError, match="neither a checkpoint folder nor a model vidpool builds"):
        VidpoolLMM(model="no-such-model", device="cpu")


def test_the_model_says_its_notice_once_and_the_default_model_too(tmp_path, monkeypatch, capsys):
    from pipeline_support import noted_checkpoint

    notice = "a toy model; it cannot describe real footage"
    noted = noted_checkpoint(tmp_path / "noted", notice)
    VidpoolLMM(model=str(noted), device="cpu")
    assert capsys.readouterr().err.count(f"vidpool: noted: {notice}") == 1
    monkeypatch.setenv("VIDPOOL_MODEL", str(noted))  # no model= given: the default model
    VidpoolLMM(device="cpu")
    assert capsys.readouterr().err.count(f"vidpool: noted: {notice}") == 1
    monkeypatch.setenv("RANK", "1")  # lmms-eval under accelerate: rank 0 alone says it
    VidpoolLMM(model=str(noted), device="cpu")
    assert "cannot describe" not in capsys.readouterr().err


# -- answers --------------------------------------------------------------------------------
OPTIONS = ["red", "dark red", "blue", "a green circle"]


@pytest.mark.parametrize(
    ("response", "index"),
    [
        ("B", 1),
        (" (C) blue", 2),
        ("D.", 3),
        ("A: red", 0),
        ("The answer is C.", 2),
        ("Answer: (B)", 1),
        ("It is dark red.", 1),  # the longer option, not "red" inside it
        ("blue, I think", 2),
        ("A green circle.", 3),  # an article, then the option's text
        ("I would say D here", 3),
        ("no idea", None),
        ("", None),
        ("E", None),
    ],
)
def test_parse_answer(response, index):
    assert parse_answer(response, OPTIONS) == index


def test_results_count_per_family_and_overall():
    doc = {"family": "count", "options": OPTIONS, "answer": 2}
    assert process_results(doc, ["C"]) == {"accuracy": 1.0, "accuracy_count": 1.0, "answered": 1.0}
    assert process_results(doc, ["zzz"]) == {"accuracy": 0.0, "accuracy_count": 0.0, "answered": 0.0}
    likelihoods = [(-3.0, False), (-2.0, False), (-0.5, True), (-9.0, False)]
    assert process_choice_results(doc, likelihoods)["accuracy"] == 1.0
    # what lmms-eval 0.7.3 hands over: each response passed through str() by unwrap_generation_output
    assert process_choice_results(doc, [str(x) for x in likelihoods])["accuracy"] == 1.0
    assert process_choice_results(doc, [str(likelihoods[0])] * 4)["accuracy"] == 0.0


# -- requests -------------------------------------------------------------------------------
def test_generation_options_follow_gen_kwargs():
    options = generation_options(
        {"until": "\n\n", "max_new_tokens": 8, "temperature": 0.7, "do_sample": True}
    )
    assert options == {"max_new_tokens": 8, "temperature": 0.7, "top_p": 1.0, "stop": ["\n\n"]}
    greedy = generation_options({"temperature": 0.7, "do_sample": False, "until": ["", "Q:"]})
    assert greedy == {"max_new_tokens": 256, "temperature": 0.0, "stop": ["Q:"]}
    with pytest.raises(InvalidArgumentError, match="max_new_tokens must be a positive integer"):
        generation_options({"max_new_tokens": 0})


def test_messages_give_the_video_question_and_history():
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "video", "url": "/v.mp4"}, {"type": "text", "text": "Q1"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A1"}]},
        {"role": "user", "content": [{"type": "text", "text": "Q2"}]},
    ]
    turn = turn_from_messages(messages)
    assert (turn.video, turn.question, turn.history) == ("/v.mp4", "Q2", [("Be brief.\nQ1", "A1")])


def test_images_become_frames_of_one_video_and_two_videos_are_refused():
    from PIL import Image

    images = [Image.fromarray(np.full((6, 8, 3), v, np.uint8)) for v in (10, 20)]
    frames = video_of(images)
    assert frames.shape == (2, 6, 8, 3) and frames[1, 0, 0, 0] == 20
    with pytest.raises(InvalidArgumentError, match="one video"):
        video_of(["/a.mp4", "/b.mp4"])
    with pytest.raises(InvalidArgumentError, match="no video or image"):
        video_of([])


# -- the exported task ----------------------------------------------------------------------
def test_export_layout(task_dir):
    from vidpool.video import VideoReader

    names = {p.name for p in task_dir.iterdir()}
    assert {"vidpool_synth.yaml", "vidpool_synth_choice.yaml", "utils.py", "items.jsonl", "videos"} <= names
    docs = [json.loads(line) for line in (task_dir / "items.jsonl").read_text().splitlines()]
    assert [d["id"] for d in docs] == [i.id for i in ITEMS]
    assert docs[1]["answer_letter"] == "B" and docs[1]["prompt"] == mc_prompt(ITEMS[1])
    for doc in docs:
        with VideoReader(task_dir / doc["video"], backend="pyav") as reader:
            assert reader.info.num_frames == doc["num_frames"]
            assert reader.sample(doc["num_frames"]).frames.shape == (doc["num_frames"], 64, 64, 3)
    # utils.py stands alone: an lmms-eval user without vidpool can run the task with any model
    tree = ast.parse((task_dir / "utils.py").read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def test_lmms_eval_reads_the_exported_task(task_dir, tmp_path, monkeypatch):
    for key, value in {**OFFLINE, "HF_HOME": str(tmp_path / "hf")}.items():
        monkeypatch.setenv(key, value)
    from lmms_eval.protocol import ChatMessages
    from lmms_eval.tasks import TaskManager, get_task_dict

    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    assert {"vidpool_synth", "vidpool_synth_choice"} <= set(manager.all_tasks)
    task = get_task_dict(["vidpool_synth"], manager, "chat")["vidpool_synth"]
    docs = list(task.test_docs())
    assert len(docs) == len(ITEMS)
    assert task.doc_to_target(docs[2]) == "C"
    assert sorted(task.aggregation()) == ["accuracy", "accuracy_count", "accuracy_static", "answered"]
    messages = ChatMessages(messages=task.doc_to_messages(docs[0]))  # lmms-eval's own schema accepts them
    _, videos, _ = messages.extract_media()
    assert videos == [str(task_dir / "videos" / "item0.mp4")]


def test_the_printed_command_names_the_task_folder_and_args(task_dir):
    command = lmms_eval_command(task_dir, model="/ckpt", method="spatial", budget=64, choice=True)
    assert command[:3] == ["lmms-eval", "--model", "vidpool"]
    assert command[command.index("--model_args") + 1] == "model=/ckpt,method=spatial,budget=64"
    assert command[command.index("--tasks") + 1] == "vidpool_synth_choice" and "--force_simple" in command
    assert command[command.index("--include_path") + 1] == str(task_dir)


# -- the model on a tiny checkpoint ---------------------------------------------------------
@pytest.fixture(scope="module")
def lmm(tiny, task_dir):
    model = VidpoolLMM(model=tiny, method="spatial", budget=16, frames=4, device="cpu")
    docs = [json.loads(line) for line in (task_dir / "items.jsonl").read_text().splitlines()]
    model.task_dict = {"vidpool_synth": {"test": docs}}  # what lmms-eval's evaluator sets
    return model


def _request(kind: str, args: tuple, doc_id: int) -> Instance:
    return Instance(kind, args, 0, metadata={"task": "vidpool_synth", "doc_id": doc_id, "repeats": 1})


def test_generate_until_answers_as_video_chat_does(lmm, task_dir):
    from vidpool.pipeline import VideoChat

    utils = exported_utils(task_dir)

    def answer(gen_kwargs):
        args = ("ctx", utils.doc_to_messages, gen_kwargs, 1, "vidpool_synth", "test")
        return lmm.generate_until([_request("generate_until", args, 1)])[0]

    doc = lmm.task_dict["vidpool_synth"]["test"][1]
    free = answer({"max_new_tokens": 12})
    chat = VideoChat(str(task_dir / doc["video"]), lmm.model, num_frames=4, budget=16, method="spatial")
    assert free == chat.ask(doc["prompt"], max_new_tokens=12)
    assert chat.plan.budget == 16 and chat.plan.num_frames == 4
    # until: the answer ends before the stop string; max_new_tokens: no more tokens than asked
    stop = free[len(free) // 2 :][:2]
    assert stop.strip(), f"the tiny model's answer {free!r} is long enough to cut"
    assert answer({"max_new_tokens": 12, "until": [stop]}) == free[: free.index(stop)]
    short = answer({"max_new_tokens": 2})
    chat.reset()  # each request is a conversation of its own
    assert short == chat.ask(doc["prompt"], max_new_tokens=2) and short != free
    # the simple layout (--force_simple) gives the same answer from doc_to_visual and the context
    args = (doc["prompt"], {"max_new_tokens": 12}, utils.doc_to_visual, 1, "vidpool_synth", "test")
    assert lmm.generate_until([_request("generate_until", args, 1)]) == [free]


def test_multi_round_is_one_conversation_about_one_video(lmm, task_dir):
    from vidpool.pipeline import VideoChat

    utils = exported_utils(task_dir)
    doc = lmm.task_dict["vidpool_synth"]["test"][0]
    seen = []

    def rounds(doc, round_idx=None, previous_output=None, previous_round_info=None):
        seen.append(list(previous_output or []))
        if round_idx is None:
            return utils.doc_to_messages(doc)
        if round_idx == 2:
            return None, True, previous_output, previous_round_info
        return [{"role": "user", "content": [{"type": "text", "text": "And then?"}]}], False, None, "info"

    args = ("ctx", rounds, {"max_new_tokens": 6}, 0, "vidpool_synth", "test")
    (outputs,) = lmm.generate_until_multi_round([_request("generate_until_multi_round", args, 0)])
    chat = VideoChat(str(task_dir / doc["video"]), lmm.model, num_frames=4, budget=16, method="spatial")
    expected = [chat.ask(doc["prompt"], max_new_tokens=6), chat.ask("And then?", max_new_tokens=6)]
    assert outputs == expected
    assert seen == [[], [expected[0]], expected]


def test_a_model_name_is_built_in_the_model_cache(tmp_path, monkeypatch):
    from vidpool.integrations.lmms_eval.model import resolve_model

    monkeypatch.setenv("VIDPOOL_HOME", str(tmp_path))
    folder = resolve_model("tiny-native")
    assert folder == tmp_path / "models" / "tiny-native" and (folder / "vidpool.json").is_file()
    assert resolve_model(str(folder)) == folder and resolve_model(None) is None


def test_loglikelihood_is_the_lm_forward_over_the_spliced_prompt(lmm, task_dir):
    docs = lmm.task_dict["vidpool_synth"]["test"]
    to_visual = exported_utils(task_dir).doc_to_visual
    args = ("Which colour?", " B", to_visual, 0, "vidpool_synth", "test")
    ((logprob, greedy),) = lmm.loglikelihood([_request("loglikelihood", args, 0)])

    # reference: transformers' forward of the whole sequence (no logits_to_keep), scored by hand
    from vidpool.llm.prompt import VIDEO_MARKER
    from vidpool.pipeline import VideoChat

    model = lmm.model
    chat = VideoChat(to_visual(docs[0])[0], model, num_frames=4, budget=16, method="spatial")
    visual = chat.visual_tokens("Which colour?")
    text = model.prompt_text("Which colour?", timestamps=chat.timestamps)
    before, after = text.split(VIDEO_MARKER)
    tok = model.tokenizer
    ids_before = tok(before, add_special_tokens=False)["input_ids"]
    if (
        tok.bos_token_id is not None
        and getattr(tok, "add_bos_token", False)
        and ids_before[:1] != [tok.bos_token_id]
    ):
        ids_before = [tok.bos_token_id, *ids_before]
    ids_after = tok(after, add_special_tokens=False)["input_ids"]
    ids_cont = tok(after + " B", add_special_tokens=False)["input_ids"][len(ids_after) :]
    embed = model.lm.get_input_embeddings()
    full = torch.cat([embed(torch.tensor(ids_before)), visual, embed(torch.tensor(ids_after + ids_cont))])[
        None
    ]
    with torch.no_grad():
        logits = model.lm(inputs_embeds=full).logits[0].float()
    n = len(ids_cont)
    steps = torch.log_softmax(logits[-n - 1 : -1], dim=-1)
    expected = float(sum(steps[i, t] for i, t in enumerate(ids_cont)))
    assert logprob == pytest.approx(expected, abs=1e-4)
    assert greedy == all(int(steps[i].argmax()) == t for i, t in enumerate(ids_cont))


def test_continuation_logprob_agrees_with_greedy_generate(lmm):
    # transformers' own greedy decoding: its tokens must be "greedy" and its scores sum to the logprob
    from vidpool.llm.generate import continuation_logprob

    model = lmm.model
    prompt = model.build_inputs_embeds(torch.randn(3, model.lm.config.hidden_size), "What happens?")
    with torch.no_grad():
        out = model.lm.generate(
            inputs_embeds=prompt,
            max_new_tokens=3,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
            attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long),
            pad_token_id=0,
        )
    ids = out.sequences[0, -3:].tolist()
    expected = sum(float(torch.log_softmax(s[0].float(), -1)[t]) for s, t in zip(out.scores, ids))
    embeds = torch.cat([prompt, model.lm.get_input_embeddings()(torch.tensor(ids))[None]], dim=1)
    logprob, greedy = continuation_logprob(model.lm, embeds, ids)
    assert greedy and logprob == pytest.approx(expected, abs=1e-4)
    other = [(ids[0] + 1) % model.lm.config.vocab_size, *ids[1:]]
    embeds = torch.cat([prompt, model.lm.get_input_embeddings()(torch.tensor(other))[None]], dim=1)
    assert not continuation_logprob(model.lm, embeds, other)[1]


def test_lmms_eval_scores_the_choice_task_by_loglikelihood(tiny, task_dir, tmp_path, monkeypatch):
    """lmms-eval's own evaluator with the simple class (what --force_simple picks): multiple_choice
    requests, one loglikelihood per option letter, and the likeliest letter is the answer."""
    for key, value in {**OFFLINE, "HF_HOME": str(tmp_path / "hf")}.items():
        monkeypatch.setenv(key, value)
    from lmms_eval import evaluator
    from lmms_eval.tasks import TaskManager

    from vidpool.integrations.lmms_eval.model import VidpoolSimpleLMM

    lm = VidpoolSimpleLMM(model=tiny, method="spatial", budget=16, frames=4, device="cpu")
    manager = TaskManager(include_path=str(task_dir), include_defaults=False)
    out = evaluator.simple_evaluate(
        model=lm, tasks=["vidpool_synth_choice"], task_manager=manager, limit=4, log_samples=True
    )
    samples = out["samples"]["vidpool_synth_choice"]
    assert len(samples) == 4
    for sample in samples:
        lls = [ast.literal_eval(r)[0] for r in sample["filtered_resps"]]
        assert len(lls) == 4 and all(ll < 0 for ll in lls)
        assert sample["accuracy"] == float("ABCD"[lls.index(max(lls))] == sample["target"])
    metrics = out["results"]["vidpool_synth_choice"]
    assert metrics["accuracy,none"] == pytest.approx(np.mean([s["accuracy"] for s in samples]))
    assert metrics["answered,none"] == 1.0


# -- registration ---------------------------------------------------------------------------
def _declared_entry_point() -> str:
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["project"]["entry-points"]["lmms_eval.models"]["vidpool"]


def test_pyproject_entry_point_gives_the_manifest_lmms_eval_loads():
    from importlib import import_module

    from lmms_eval.api.model import lmms
    from lmms_eval.models.registry_v2 import ModelRegistryV2

    module, _, attr = _declared_entry_point().partition(":")
    payload = getattr(import_module(module), attr)
    assert payload is manifests
    registry = ModelRegistryV2()
    registry._coerce_payload_to_manifests(payload)  # the entry-point payload forms lmms-eval accepts
    for manifest in payload():
        registry.register_manifest(manifest)
    chat = registry.get_model_class("vidpool")
    simple = registry.get_model_class("vidpool", force_simple=True)
    assert issubclass(chat, lmms) and chat.is_simple is False
    assert issubclass(simple, chat) and simple.is_simple is True


def _installed_entry_point() -> bool:
    return any(ep.name == "vidpool" for ep in entry_points(group="lmms_eval.models"))


def _entry_point_shim(folder: Path) -> Path:
    """A dist-info declaring pyproject's entry point, for a vidpool installed before it had one.

    importlib.metadata finds it on PYTHONPATH exactly as it finds an installed package's, so lmms-eval
    loads the model through its real entry-point path; once vidpool is reinstalled the shim is unused.
    """
    info = folder / "vidpool_lmms_entry_point-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vidpool-lmms-entry-point\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[lmms_eval.models]\nvidpool = {_declared_entry_point()}\n")
    return folder


def test_the_lmms_eval_command_runs_the_exported_task(task_dir, tiny, tmp_path):
    exe = Path(sys.executable).with_name("lmms-eval")
    if not exe.exists():
        pytest.skip(f"no lmms-eval command beside {sys.executable}")
    paths = [str(ROOT)]
    if not _installed_entry_point():
        paths.append(str(_entry_point_shim(tmp_path / "shim")))
    env = {
        **os.environ,
        **OFFLINE,
        "HF_HOME": str(tmp_path / "hf"),
        "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    out = tmp_path / "results"
    command = lmms_eval_command(
        task_dir, model=tiny, method="spatial", budget=16, frames=4, device="cpu", output_path=out, limit=4
    )
    command[0] = str(exe)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    log = done.stdout + done.stderr
    # lmms-eval reports a failed evaluation on its log and still exits 0: look for the results too
    assert done.returncode == 0, log[-4000:]
    assert "Error during evaluation" not in log, log[-4000:]
    (results_file,) = out.rglob("*_results.json")
    results = json.loads(results_file.read_text())
    metrics = results["results"]["vidpool_synth"]
    assert 0.0 <= metrics["accuracy,none"] <= 1.0
    assert {"accuracy_static,none", "accuracy_count,none", "answered,none"} <= set(metrics)
    assert results["n-samples"]["vidpool_synth"]["effective"] == 4
    assert "method=spatial" in results["config"]["model_args"]
    (samples_file,) = out.rglob("*_samples_vidpool_synth.jsonl")
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert sorted(s["target"] for s in samples) == ["A", "B", "C", "D"]


# -- vidpool bench export-lmms --------------------------------------------------------------
def test_export_lmms_help_has_an_example(capsys):
    from vidpool.cli import main

    with pytest.raises(SystemExit) as info:
        main(["bench", "export-lmms", "--help"])
    assert info.value.code == 0
    assert "vidpool bench export-lmms --out" in capsys.readouterr().out


def test_export_lmms_writes_the_task_and_prints_the_command(tmp_path, capsys):
    from vidpool.bench.synth import tasks
    from vidpool.cli import main

    family = tasks.FAMILIES[0]
    out = tmp_path / "task"
    argv = ["bench", "export-lmms", "--out", str(out), "--items", "2", "--families", family]
    assert main([*argv, "--model", "/ckpt", "--method", "spatial", "--budget", "32"]) == 0
    printed = capsys.readouterr().out
    expected = lmms_eval_command(out, model="/ckpt", method="spatial", budget=32)
    assert " ".join(expected) in printed
    docs = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    assert len(docs) == 2 and {d["family"] for d in docs} == {family}
    assert all((out / d["video"]).is_file() for d in docs)
    with pytest.raises(SystemExit) as info:
        main(["bench", "export-lmms", "--out", str(out), "--families", "no_such_family"])
    assert info.value.code == 2


def test_continuation_logprob_on_a_transformers_llava_model():
    # the LLaVA wrapper's forward keeps only the logits asked for; the full forward is the reference
    from vidpool.llm.generate import continuation_logprob

    model = loaded("tiny-llava-onevision")
    lm = model.language_model
    ids = [5, 17, 9]
    embeds = model.build_inputs_embeds(torch.randn(3, model.text_config.hidden_size), "Which colour?")
    embeds = torch.cat([embeds, lm.get_input_embeddings()(torch.tensor(ids))[None]], dim=1)
    with torch.no_grad():
        steps = torch.log_softmax(lm(inputs_embeds=embeds).logits[0, -4:-1].float(), dim=-1)
    expected = float(sum(steps[i, t] for i, t in enumerate(ids)))
    logprob, greedy = continuation_logprob(lm, embeds, ids)
    assert logprob == pytest.approx(expected, abs=1e-4)
    assert greedy == all(int(steps[i].argmax()) == t for i, t in enumerate(ids))
