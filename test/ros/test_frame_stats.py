"""FrameStats: rates over a sliding window, latency percentiles, drops from sequence gaps, rejects
by reason."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from yolo_trt_ros.ros.frame_stats import FrameStats


def test_rates_over_window() -> None:
    stats = FrameStats(window_s=2.0)
    for i in range(61):  # 30 Hz input for 2 s, every third frame processed (10 Hz)
        now = 100.0 + i / 30
        stats.received(now)
        if i % 3 == 0:
            stats.processed(now, latency_ms=5.0, stage_ms={})
    snap = stats.snapshot(102.0)
    assert snap.input_hz == pytest.approx(30.0)
    assert snap.processed_hz == pytest.approx(10.0)
    assert (snap.received, snap.processed) == (61, 21)


def test_rate_decays_to_zero_when_input_stops() -> None:
    stats = FrameStats(window_s=1.0)
    for i in range(10):
        stats.received(10.0 + i * 0.1)
    assert stats.snapshot(10.9).input_hz == pytest.approx(10.0)
    late = stats.snapshot(12.5)
    assert late.input_hz == 0.0
    assert late.last_input_age_s == pytest.approx(1.6)


def test_latency_percentiles_over_last_n() -> None:
    stats = FrameStats(max_samples=100)
    for ms in range(1000, 1050):  # pushed out of the window by the next 100 samples
        stats.processed(1.0, latency_ms=float(ms), stage_ms={})
    values = np.arange(1, 101, dtype=float)
    for ms in values:
        stats.processed(1.0, latency_ms=ms, stage_ms={"infer": ms / 10})
    snap = stats.snapshot(1.0)
    assert snap.latency_p50_ms == pytest.approx(np.percentile(values, 50))
    assert snap.latency_p99_ms == pytest.approx(np.percentile(values, 99))
    assert snap.stage_p50_ms == {"infer": pytest.approx(5.05)}


def test_empty_snapshot() -> None:
    snap = FrameStats().snapshot(0.0)
    assert snap.latency_p50_ms is None and snap.latency_p99_ms is None
    assert (snap.input_hz, snap.processed_hz, snap.dropped, snap.rejected) == (0.0, 0.0, 0, 0)
    assert not snap.drops_known
    assert snap.last_input_age_s is None


def test_drops_are_sequence_gaps_per_publisher() -> None:
    stats = FrameStats()
    for seq in (40, 41, 44, 45, 50):  # first frame seen is 40: earlier frames are not drops
        stats.received(1.0, publisher=b"a", sequence=seq)
    for seq in (3, 4, 6):
        stats.received(1.0, publisher=b"b", sequence=seq)
    stats.received(1.0, publisher=b"b", sequence=5)  # late duplicate/out of order: ignored
    snap = stats.snapshot(1.0)
    assert snap.drops_known
    assert snap.dropped == (2 + 4) + 1
    assert snap.received == 9


def test_drop_counting_restarts_with_a_new_subscription() -> None:
    stats = FrameStats()
    stats.received(1.0, publisher=b"a", sequence=1)
    stats.restart_sequences()
    stats.received(1.0, publisher=b"a", sequence=500)
    stats.received(1.0, publisher=b"a", sequence=502)
    assert stats.snapshot(1.0).dropped == 1


def test_without_sequence_numbers_drops_are_unknown() -> None:
    stats = FrameStats()
    for seq in (None, 0, None):
        stats.received(1.0, publisher=b"a", sequence=seq)
    snap = stats.snapshot(1.0)
    assert not snap.drops_known and snap.dropped == 0


def test_rejects_by_reason_and_reset() -> None:
    stats = FrameStats()
    for reason in ("zero_size", "too_large", "zero_size"):
        stats.rejected(1.0, reason)
    snap = stats.snapshot(1.5)
    assert snap.rejected == 3
    assert snap.rejected_by_reason == {"zero_size": 2, "too_large": 1}
    assert snap.problem_ages_s == {"rejected": pytest.approx(0.5)}
    stats.reset()
    assert stats.snapshot(1.0).rejected == 0


def test_failures_by_stage_and_stamp_glitches_by_kind_are_apart_from_rejects() -> None:
    stats = FrameStats()
    stats.failed(1.0, "annotate")
    stats.failed(2.0, "annotate")
    stats.failed(3.0, "track")
    stats.stamp_glitch(4.0, "zero")
    snap = stats.snapshot(5.0)
    assert snap.failed_by_stage == {"annotate": 2, "track": 1}
    assert snap.stamp_glitches == {"zero": 1}
    assert snap.rejected == 0 and snap.rejected_by_reason == {}
    assert snap.problem_ages_s == {"failed": pytest.approx(2.0), "stamp": pytest.approx(1.0)}


def test_input_rate_is_the_published_rate_with_drops() -> None:
    stats = FrameStats(window_s=5.0)
    for i in range(
        31
    ):  # the camera publishes at 30 Hz for 3 s; every third frame reaches the callback
        if i % 3 == 0:
            stats.received(10.0 + i / 30, publisher=b"cam", sequence=i + 1)
            stats.processed(10.0 + i / 30, latency_ms=1.0, stage_ms={})
    snap = stats.snapshot(11.0)
    assert snap.input_hz == pytest.approx(30.0)
    assert snap.processed_hz == pytest.approx(10.0)
    assert (snap.received, snap.dropped) == (11, 20)


def test_concurrent_writers_and_reader() -> None:
    stats = FrameStats(max_samples=50)

    def write() -> None:
        for i in range(2000):
            stats.received(float(i), publisher=b"x", sequence=None)
            stats.processed(float(i), latency_ms=1.0, stage_ms={"infer": 1.0})

    threads = [threading.Thread(target=write) for _ in range(3)]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        stats.snapshot(1000.0)
        time.sleep(0.001)  # a reader polls; it does not hold the lock back to back
    for thread in threads:
        thread.join()
    snap = stats.snapshot(2000.0)
    assert (snap.received, snap.processed) == (6000, 6000)


def test_frames_without_plausible_latency_are_counted_apart() -> None:
    stats = FrameStats()
    stats.processed(1.0, latency_ms=None, stage_ms={"convert": 0.1})
    snap = stats.snapshot(1.0)
    assert snap.processed == 1 and snap.latency_p50_ms is None and snap.latency_excluded == 1
    assert snap.stage_p50_ms == {"convert": pytest.approx(0.1)}
