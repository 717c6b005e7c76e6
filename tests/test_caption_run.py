"""The local captioning engine on the tiny checkpoint: records, errors, resume, parquet and the command."""

from __future__ import annotations

import json
import shutil

import pytest
from caption_support import CAPTION_OPTIONS, by_id, lines, video_folder
from pipeline_support import checkpoint

from vidpool.caption import FIELDS, caption_videos, resolve_inputs
from vidpool.cli import main


@pytest.fixture(scope="module")
def ckpt():
    return checkpoint("tiny-native")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return video_folder(tmp_path_factory.mktemp("videos"))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, ckpt, videos):
    out = tmp_path_factory.mktemp("out") / "captions.jsonl"
    summary = caption_videos([videos], out, model=ckpt, progress=False, **CAPTION_OPTIONS)
    return out, summary


def test_one_record_per_video_with_the_schema(first_run, videos):
    out, summary = first_run
    records = by_id(lines(out))
    items = resolve_inputs([videos])
    assert set(records) == {i.id for i in items}
    assert (summary.done, summary.failed, summary.skipped) == (5, 1, 0)
    for item in items:
        r = records[item.id]
        assert list(r) == list(FIELDS) and r["path"] == item.path and r["model"] == "tiny-native"
        if item.path.endswith("broken.mp4"):
            assert (
                r["caption"] is None and r["error_type"] == "VideoDecodeError" and "re-encode" in r["error"]
            )
            continue
        assert isinstance(r["caption"], str) and r["error"] is None and r["error_type"] is None
        assert r["frames"] == 4 and r["visual_tokens"] > 0 and r["method"]
        assert r["output_tokens"] > 0
        parts = [r[k] for k in ("encode_s", "compress_s", "generate_s")]
        assert all(p >= 0 for p in parts) and r["decode_s"] > 0
        assert sum(parts) <= r["model_s"] + 1e-6


def test_captions_equal_the_captioner_on_each_file(first_run, videos, ckpt):
    from vidpool.pipeline import Captioner

    captioner = Captioner(ckpt, **CAPTION_OPTIONS)
    records = by_id(lines(first_run[0]))
    for item in resolve_inputs([videos]):
        if not item.path.endswith("broken.mp4"):
            assert records[item.id]["caption"] == captioner.caption(item.path)


def test_a_second_run_skips_everything_and_a_new_video_is_added(first_run, videos, ckpt, tmp_path):
    out = tmp_path / "captions.jsonl"
    shutil.copy(first_run[0], out)
    before = out.read_bytes()
    again = caption_videos([videos], out, model=ckpt, progress=False, **CAPTION_OPTIONS)
    assert (again.done, again.failed, again.skipped) == (0, 0, 6)
    assert out.read_bytes() == before
    extra = tmp_path / "more"
    video_folder(extra, 1, broken=False)
    more = caption_videos([videos, extra], out, model=ckpt, progress=False, **CAPTION_OPTIONS)
    assert (more.done, more.failed, more.skipped) == (1, 0, 6)
    assert out.read_bytes().startswith(before)
    assert len(by_id(lines(out))) == 7


def test_retry_failed_tries_the_failed_again_once(first_run, videos, ckpt, tmp_path):
    out = tmp_path / "captions.jsonl"
    shutil.copy(first_run[0], out)
    summary = caption_videos([videos], out, model=ckpt, progress=False, retry_failed=True, **CAPTION_OPTIONS)
    assert (summary.done, summary.failed, summary.skipped) == (0, 1, 5)
    records = by_id(lines(out))  # still one line per id
    assert len(records) == 6 and sum(r["error"] is not None for r in records.values()) == 1


def test_parquet_output_holds_the_journal(first_run, videos, ckpt, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "captions.parquet"
    shutil.copy(first_run[0], tmp_path / "captions.parquet.jsonl")  # resume from the JSONL run
    summary = caption_videos([videos], out, model=ckpt, progress=False, **CAPTION_OPTIONS)
    assert summary.skipped == 6 and summary.outputs == [str(out) + ".jsonl", str(out)]
    rows = pq.read_table(out).to_pylist()
    assert {r["id"]: r for r in rows} == by_id(lines(first_run[0]))


def test_command_line(first_run, videos, ckpt, tmp_path, capsys):
    out = tmp_path / "cli.jsonl"
    shutil.copy(first_run[0], out)
    argv = ["caption", str(videos), "--out", str(out), "--model", str(ckpt), "--frames", "4", "--quiet"]
    assert main([*argv, "--max-new-tokens", "6"]) == 0
    assert "0 captioned, 0 failed, 6 skipped" in capsys.readouterr().err
    # usage errors are refused before anything loads (exit 2), missing inputs exit 1 with the reason
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--frames", "0"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--prefetch", "-1"])
    assert exc.value.code == 2
    assert main(["caption", str(tmp_path / "nope"), "--out", str(out), "--model", str(ckpt)]) == 1
    assert "does not exist" in capsys.readouterr().err
    # a run where every video failed exits 1
    bad = tmp_path / "bad.mp4"
    bad.write_text("no video")
    assert (
        main(["caption", str(bad), "--out", str(tmp_path / "bad.jsonl"), "--model", str(ckpt), "--quiet"])
        == 1
    )
    assert json.loads((tmp_path / "bad.jsonl").read_text())["error_type"] == "VideoDecodeError"


def test_plans_use_the_memory_measured_when_the_model_loaded(ckpt, videos, monkeypatch):
    from vidpool.caption import CaptionWorker
    from vidpool.schedule import device as device_module
    from vidpool.schedule import planner

    worker = CaptionWorker(ckpt, **CAPTION_OPTIONS)
    item = next(i for i in resolve_inputs([videos]) if i.path.endswith("clip0.mp4"))
    before = worker.decode(item).plan
    # while another video's activations fill the device, the memory reported free drops; a plan made
    # in a decode thread then must not shrink (or fail) because of memory that frees up before it runs
    monkeypatch.setattr(
        planner, "device_memory", lambda device: device_module.DeviceMemory(device, 1 << 30, 1)
    )
    during = worker.decode(item)
    assert during.error is None
    assert during.plan.to_dict() == before.to_dict()
