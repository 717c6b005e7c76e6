"""Inputs of a captioning run (files, folders, list files, stable ids) and its crash-safe JSONL journal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vidpool.caption.formats import journal_path, output_format, write_parquet
from vidpool.caption.inputs import resolve_inputs, scan_inputs, video_id
from vidpool.caption.journal import Journal, merge_parts, part_path, read_records, written_ids
from vidpool.errors import InvalidArgumentError, VideoNotFoundError


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_folders_are_searched_recursively_by_extension(tmp_path):
    a = _touch(tmp_path / "b" / "a.MP4")
    c = _touch(tmp_path / "a" / "deep" / "c.mkv")
    _touch(tmp_path / "notes.txt.bak")
    _touch(tmp_path / "a" / "readme.md")
    _touch(tmp_path / ".hidden" / "x.mp4")
    _touch(tmp_path / "a" / ".y.mp4")
    items = resolve_inputs([tmp_path])
    assert [i.path for i in items] == [
        str(c.resolve()),
        str(a.resolve()),
    ]  # sorted walk, upper-case extension
    assert all(len(i.id) == 16 for i in items)
    # the files that are not videos are named from the folder as given; hidden ones are not
    scanned = scan_inputs([tmp_path])
    assert scanned.videos == items
    assert scanned.not_videos == [str(tmp_path / "notes.txt.bak"), str(tmp_path / "a" / "readme.md")]


def test_files_list_files_and_duplicates(tmp_path):
    v1 = _touch(tmp_path / "v1.mp4")
    v2 = _touch(tmp_path / "odd.bin")  # a file named directly is taken whatever its extension
    listing = tmp_path / "lists" / "videos.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my videos\n\n../v1.mp4\n{v2}\n  ../missing.mp4  \n")
    os.symlink(v1, tmp_path / "link.mp4")
    items = resolve_inputs([tmp_path / "link.mp4", v2, listing, v1])
    paths = [i.path for i in items]
    # the symlink, the list's relative ../v1.mp4 and v1 itself are one video; the missing one is kept
    assert paths == [str(v1.resolve()), str(v2.resolve()), str((tmp_path / "missing.mp4").resolve())]


def test_ids_are_stable_and_depend_on_the_resolved_path_only(tmp_path, monkeypatch):
    v = _touch(tmp_path / "v.mp4")
    monkeypatch.chdir(tmp_path)
    assert video_id("v.mp4") == video_id(v) == video_id(f"{tmp_path}/./v.mp4")
    before = video_id(v)
    v.write_bytes(b"new content")
    assert video_id(v) == before
    assert video_id(tmp_path / "w.mp4") != before


def test_missing_inputs_are_refused_with_a_hint(tmp_path):
    with pytest.raises(VideoNotFoundError, match="does not exist; give video files, folders or list files"):
        resolve_inputs([tmp_path / "nope.mp4"])
    with pytest.raises(InvalidArgumentError, match="no inputs"):
        resolve_inputs([])


def test_journal_repairs_a_torn_tail_and_keeps_whole_lines(tmp_path):
    out = tmp_path / "c.jsonl"
    with Journal(out) as j:
        j.write({"id": "a", "caption": "one"})
        j.write({"id": "b", "caption": "two"})
    with open(out, "ab") as f:
        f.write(b'{"id":"c","capt')  # what a process killed inside write() leaves
    assert [r["id"] for r in read_records(out)] == ["a", "b"]  # readers skip it
    with Journal(out) as j:
        assert j.repaired == len(b'{"id":"c","capt')
        j.write({"id": "c", "caption": "three"})
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["a", "b", "c"]
    assert out.read_text().endswith("\n")


def test_journal_lines_are_in_the_file_before_close(tmp_path):
    out = tmp_path / "c.jsonl"
    j = Journal(out)
    j.write({"id": "a", "caption": "caf\u00e9 \ud800"})  # a lone surrogate must not break the line
    assert read_records(out) == [{"id": "a", "caption": "caf\u00e9 \ud800"}]
    assert out.read_bytes().isascii()
    j.close()


def test_a_second_writer_is_refused(tmp_path):
    out = tmp_path / "c.jsonl"
    with Journal(out), pytest.raises(InvalidArgumentError, match="another run is writing"):
        Journal(out)
    Journal(out).close()  # released with the first


def test_drop_failed_removes_error_lines(tmp_path):
    out = tmp_path / "c.jsonl"
    with Journal(out) as j:
        j.write({"id": "a", "error": None})
        j.write({"id": "b", "error": "boom"})
        j.write({"id": "c", "error": None})
    assert written_ids(out) == {"a": True, "b": False, "c": True}
    with Journal(out, drop_failed=True) as j:
        assert [r["id"] for r in j.records()] == ["a", "c"]
        j.write({"id": "b", "error": None})
    assert [r["id"] for r in read_records(out)] == ["a", "c", "b"]


def test_merge_parts_is_idempotent_after_an_interruption(tmp_path):
    out = tmp_path / "c.jsonl"
    for rank, ids in enumerate((["a", "c"], ["b", "d"])):
        with Journal(part_path(out, rank)) as j:
            for i in ids:
                j.write({"id": i})
    with open(part_path(out, 1), "ab") as f:
        f.write(b'{"id":"e"')  # rank 1 was killed mid-line
    # an earlier merge got as far as "a" before it was cut short
    with Journal(out) as j:
        j.write({"id": "a"})
    assert set(written_ids(out)) == {"a", "b", "c", "d"}
    assert merge_parts(out) == 3
    assert [r["id"] for r in read_records(out)] == ["a", "c", "b", "d"]
    assert not part_path(out, 0).exists() and not part_path(out, 1).exists()
    assert merge_parts(out) == 0


def test_output_formats_and_parquet(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    assert output_format(tmp_path / "x.parquet", None) == "parquet"
    assert output_format(tmp_path / "x.jsonl", None) == "jsonl"
    with pytest.raises(InvalidArgumentError, match="choose from jsonl, parquet"):
        output_format("x", "csv")
    journal = journal_path(tmp_path / "x.parquet", "parquet")
    assert journal.name == "x.parquet.jsonl"
    with Journal(journal) as j:
        j.write({"id": "a", "path": "/a.mp4", "caption": "hi", "frames": 4, "model_s": 0.5})
        j.write({"id": "b", "path": "/b.mp4", "error": "bad", "error_type": "VideoDecodeError"})
    assert write_parquet(journal, tmp_path / "x.parquet") == 2
    table = pq.read_table(tmp_path / "x.parquet")
    rows = table.to_pylist()
    assert [r["id"] for r in rows] == ["a", "b"]
    assert rows[0]["frames"] == 4 and rows[0]["error"] is None and rows[1]["caption"] is None
    assert str(table.schema.field("frames").type) == "int64"
