"""The local captioning engine on the tiny checkpoint: records, errors, resume, parquet and the command."""

from __future__ import annotations

import json
import os
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


def test_the_worker_captions_through_the_captioner(ckpt, videos, monkeypatch):
    from vidpool.caption import CaptionWorker
    from vidpool.pipeline import Captioner

    calls = []
    plain = Captioner.caption

    def recording(self, video, **options):
        calls.append((video, options))
        return plain(self, video, **options)

    monkeypatch.setattr(Captioner, "caption", recording)
    worker = CaptionWorker(ckpt, **CAPTION_OPTIONS)
    item = next(i for i in resolve_inputs([videos]) if i.path.endswith("clip1.mp4"))
    decoded = worker.decode(item)
    record = worker.caption(decoded)
    # one code path: the worker's caption is the Captioner's, on the frames and plan it decoded
    assert len(calls) == 1 and calls[0][0] is decoded.frames and calls[0][1] == {"plan": decoded.plan}
    # its stage seconds are that caption's trace (the pipeline's one stage clock)
    timings = worker.captioner.last_trace.timings
    assert record["compress_s"] == round(timings["compress"], 6)
    assert record["generate_s"] == round(timings["generate"], 6)
    # and the caption of the file itself, planned and decoded by the Captioner, is the same text
    assert worker.captioner.caption(item.path) == record["caption"]
    assert worker.captioner.last_plan.to_dict() == decoded.plan.to_dict()


def test_the_summary_names_skipped_files_and_failed_videos(ckpt, tmp_path, capsys):
    folder = video_folder(tmp_path / "v", 1)  # clip0.mp4 and broken.mp4, a text file
    data = (folder / "clip0.mp4").read_bytes()
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])  # a download cut short
    (folder / "a.txt").write_text("notes\n")
    (folder / "sub").mkdir()
    (folder / "sub" / "b.mp4.part").write_bytes(data)  # a download in progress: not a video by name
    out = tmp_path / "captions.jsonl"
    argv = ["caption", str(folder), "--out", str(out), "--model", str(ckpt), "--frames", "4"]
    assert main([*argv, "--max-new-tokens", "6"]) == 0
    err = capsys.readouterr().err
    skipped = f"skipped 2 files that are not videos: {folder}/a.txt, {folder}/sub/b.mp4.part"
    assert err.count(skipped) == 2  # when the scan finds them, and in the summary
    assert "1 captioned, 2 failed" in err and "2 videos failed" in err
    for name in ("broken.mp4", "cut.mp4"):
        named = f"{os.path.realpath(folder / name)}: VideoDecodeError: "
        line = next(x for x in err.splitlines() if named in x)
        assert len(line.split(named)[1]) < 160  # the error's start, not all of it
    assert len(lines(out)) == 3


def test_a_summary_names_the_first_few_and_counts_the_rest():
    from vidpool.caption.runner import NAMED, Summary

    summary = Summary(not_videos=[f"f{i}.txt" for i in range(NAMED + 2)])
    for i in range(NAMED + 3):
        summary.add(
            {"path": f"/v/{i}.mp4", "error": "cannot open\nsecond line", "error_type": "VideoDecodeError"}
        )
    other = Summary()
    other.add({"path": "/w.mp4", "error": "out of memory", "error_type": "OutOfMemoryError"})
    summary.merge(other)
    notes = summary.notes()
    assert notes[0].startswith(f"skipped {NAMED + 2} files that are not videos: f0.txt, f1.txt")
    assert notes[0].endswith(f"f{NAMED - 1}.txt and 2 more")
    assert notes[1] == f"{NAMED + 4} videos failed (each has an error line in the output):"
    assert notes[2] == "  /v/0.mp4: VideoDecodeError: cannot open"
    assert len(notes) == 2 + NAMED + 1 and notes[-1] == "  and 4 more"


def test_the_first_eta_comes_after_loading_and_the_first_video(tmp_path):
    from vidpool.caption.inputs import VideoItem
    from vidpool.caption.journal import Journal
    from vidpool.caption.runner import ProgressBar, caption_items

    now = [0.0]
    bar = ProgressBar(5, enabled=False, clock=lambda: now[0])
    now[0] += 300.0  # the model loads after the bar is made (as Ray actors load theirs)
    statuses = []

    class Worker:
        def decode(self, item):
            return item

        def caption(self, item):
            now[0] += 2.0  # every video takes two seconds
            statuses.append(bar.status)  # what the bar said before this video was done
            return {"id": item.id, "path": item.path, "error": None, "output_tokens": 3}

    items = [VideoItem(f"/v/{i}.mp4", f"{i:016x}") for i in range(5)]
    with Journal(tmp_path / "out.jsonl") as journal:
        caption_items(Worker(), items, journal, depth=0, bar=bar)
    assert statuses[:2] == ["", ""]  # no ETA before the first video after loading, nor with it alone
    assert statuses[2] == "0.50 videos/s, ETA 6s"  # 3 left at 2 s each: the 300 s of loading are not in it
    assert bar.status == "0.50 videos/s, ETA 0s"


def test_a_plan_that_changes_the_request_is_recorded_and_named(ckpt, tmp_path):
    folder = video_folder(tmp_path / "videos", count=3, broken=False)  # 12, 18 and 24 frames
    out = tmp_path / "out.jsonl"
    options = {**CAPTION_OPTIONS, "num_frames": 18}
    summary = caption_videos([folder], out, model=ckpt, progress=False, **options)
    notes = {os.path.basename(r["path"]): r["plan_notes"] for r in lines(out)}
    assert notes["clip1.mp4"] is None and notes["clip2.mp4"] is None  # 18 and 24 frames: as asked
    assert notes["clip0.mp4"] and "12" in " ".join(notes["clip0.mp4"])  # 12 frames: fewer than asked
    assert summary.changed == 1
    said = "\n".join(summary.notes())
    assert "1 video was planned otherwise than asked" in said and "clip0.mp4" in said
