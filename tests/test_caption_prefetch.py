"""Prefetching overlaps decoding of the next videos with the model's work, in order, with a bounded window."""

from __future__ import annotations

import threading
import time

import pytest

from vidpool.caption.prefetch import prefetch
from vidpool.errors import InvalidArgumentError


class Recorder:
    """A slow fake decoder and a slow fake model that log when each starts and ends (and in which thread)."""

    def __init__(self, decode_s: float, model_s: float):
        self.decode_s, self.model_s = decode_s, model_s
        self.events: list[tuple[str, int, str, float]] = []
        self.lock = threading.Lock()
        self.live = 0  # decoded results not yet consumed by the model
        self.most_live = 0

    def log(self, what: str, item: int, edge: str) -> None:
        with self.lock:
            self.events.append((what, item, edge, time.perf_counter()))

    def decode(self, item: int) -> int:
        self.log("decode", item, "start")
        time.sleep(self.decode_s)
        with self.lock:
            self.live += 1
            self.most_live = max(self.most_live, self.live)
        self.log("decode", item, "end")
        return item * 10

    def model(self, decoded: int) -> None:
        self.log("model", decoded // 10, "start")
        time.sleep(self.model_s)
        with self.lock:
            self.live -= 1
        self.log("model", decoded // 10, "end")

    def at(self, what: str, item: int, edge: str) -> float:
        return next(t for w, i, e, t in self.events if (w, i, e) == (what, item, edge))


def test_results_come_in_order_and_decoding_overlaps_the_model():
    rec = Recorder(decode_s=0.05, model_s=0.1)
    got = []
    for decoded, _ in prefetch(range(6), rec.decode, depth=2):
        got.append(decoded)
        rec.model(decoded)
    assert got == [0, 10, 20, 30, 40, 50]
    # evidence of overlap: each next video was decoded while the model worked on the one before
    for i in range(1, 6):
        assert rec.at("decode", i, "start") < rec.at("model", i - 1, "end")
        assert rec.at("decode", i, "end") <= rec.at("model", i, "start")


def test_without_prefetch_nothing_overlaps():
    rec = Recorder(decode_s=0.02, model_s=0.02)
    waits = []
    for decoded, waited in prefetch(range(4), rec.decode, depth=0):
        waits.append(waited)
        rec.model(decoded)
    for i in range(1, 4):
        assert rec.at("decode", i, "start") >= rec.at("model", i - 1, "end")
    assert all(w >= 0.02 for w in waits)  # the model waited for every decode


def test_the_window_is_bounded():
    rec = Recorder(decode_s=0.0, model_s=0.03)
    for decoded, _ in prefetch(range(10), rec.decode, depth=2, workers=3):
        rec.model(decoded)
    # fast decoders never run ahead of the model by more than ``depth`` videos beyond the current one
    assert rec.most_live <= 3


def test_when_the_model_is_slower_it_never_waits_after_the_first():
    rec = Recorder(decode_s=0.01, model_s=0.1)
    waits = []
    for decoded, waited in prefetch(range(5), rec.decode, depth=1):
        waits.append(waited)
        rec.model(decoded)
    # a result that was ready before it was asked for: the model did not wait for it
    ready = [rec.at("decode", i, "end") <= rec.at("model", i - 1, "end") for i in range(1, 5)]
    assert all(ready)
    assert waits[0] > 0


def test_an_exception_arrives_at_its_item_and_stops_the_rest():
    started = []

    def decode(item: int) -> int:
        started.append(item)
        if item == 2:
            raise ValueError("bad video 2")
        return item

    seen = []
    with pytest.raises(ValueError, match="bad video 2"):
        for decoded, _ in prefetch(range(100), decode, depth=2):
            seen.append(decoded)
    assert seen == [0, 1]
    assert max(started) <= 5  # nothing beyond the window was started


def test_bad_settings_are_refused():
    with pytest.raises(InvalidArgumentError, match="depth"):
        list(prefetch([1], str, depth=-1))
    with pytest.raises(InvalidArgumentError, match="workers"):
        list(prefetch([1], str, workers=0))
