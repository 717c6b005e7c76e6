"""The Ray Data engine on a local two-CPU cluster: the same records as a single-process run, every id once,
captions identical (greedy decoding), and a resumed run skipping what is written."""

from __future__ import annotations

import pytest
from caption_support import CAPTION_OPTIONS, by_id, lines, video_folder
from pipeline_support import checkpoint

from vidpool.caption import caption_videos, resolve_inputs

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture(scope="module")
def cluster():
    # one cluster for the module: starting Ray takes seconds; fractional-CPU actors fit on 2 CPUs
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray")
    videos = video_folder(folder / "videos", 5)
    reference = folder / "single.jsonl"
    caption_videos([videos], reference, model=checkpoint("tiny-native"), progress=False, **CAPTION_OPTIONS)
    return videos, by_id(lines(reference)), reference


def _same_outcomes(got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for key in ("caption", "error_type", "frames", "visual_tokens", "method", "path"):
        assert {i: r[key] for i, r in got.items()} == {i: r[key] for i, r in expected.items()}, key


def test_two_actors_equal_one_process(cluster, setup, tmp_path):
    videos, expected, _ = setup
    out = tmp_path / "ray.jsonl"
    summary = caption_videos(
        [videos],
        out,
        engine="ray",
        ray_actors=2,
        ray_batch_size=1,
        model=checkpoint("tiny-native"),
        progress=False,
        **CAPTION_OPTIONS,
    )
    assert (summary.done, summary.failed, summary.skipped) == (5, 1, 0)
    _same_outcomes(by_id(lines(out)), expected)


def test_resume_on_ray_skips_what_is_written(cluster, setup, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    videos, expected, reference = setup
    out = tmp_path / "ray.parquet"
    journal = tmp_path / "ray.parquet.jsonl"
    text = reference.read_text().splitlines(keepends=True)
    journal.write_text("".join(text[:4]) + text[4][:25])  # four lines and a torn fifth
    summary = caption_videos(
        [videos],
        out,
        engine="ray",
        ray_actors=1,
        model=checkpoint("tiny-native"),
        progress=False,
        **CAPTION_OPTIONS,
    )
    assert summary.skipped == 4 and summary.done + summary.failed == 2
    got = by_id(lines(journal))
    _same_outcomes(got, expected)
    assert journal.read_text().startswith("".join(text[:4]))
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["id"] for r in rows) == sorted(i.id for i in resolve_inputs([videos]))
