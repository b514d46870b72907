"""LatestFrames: the newest frame per camera, batches in turn, no starvation, threads."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from yolo_trt_ros.latest_frames import LatestFrames


def test_a_new_frame_replaces_the_waiting_one_of_its_camera() -> None:
    frames: LatestFrames[str] = LatestFrames(2)
    assert frames.put(0, "a1") is None
    assert frames.put(0, "a2") == "a1"  # dropped: stale
    assert frames.put(1, "b1") is None
    assert frames.take(limit=4) == [(0, "a2"), (1, "b1")]
    assert frames.take(limit=4, timeout_s=0.01) == []


def test_batches_smaller_than_the_camera_count_take_cameras_in_turn() -> None:
    frames: LatestFrames[int] = LatestFrames(3)
    served: Counter[int] = Counter()
    for frame in range(30):  # every camera always has a frame waiting
        for camera in range(3):
            frames.put(camera, frame)
        for camera, _ in frames.take(limit=2):
            served[camera] += 1
    assert served == {0: 20, 1: 20, 2: 20}


def test_cameras_at_equal_rates_are_served_equally_by_a_slow_consumer() -> None:
    """Three camera threads at the same rate, an inference thread slower than the frames arrive,
    batches of at most two: each camera's share stays within 20 % of the mean."""
    frames: LatestFrames[float] = LatestFrames(3)
    stop = threading.Event()
    served: Counter[int] = Counter()

    def camera(index: int) -> None:
        while not stop.is_set():
            frames.put(index, time.monotonic())
            time.sleep(0.002)

    def inference() -> None:
        while not stop.is_set():
            for index, _ in frames.take(limit=2, timeout_s=0.05):
                served[index] += 1
            time.sleep(0.005)

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(3)]
    threads.append(threading.Thread(target=inference))
    for thread in threads:
        thread.start()
    time.sleep(0.6)
    stop.set()
    for thread in threads:
        thread.join()
    mean = sum(served.values()) / 3
    assert mean > 20
    assert all(abs(served[i] - mean) <= 0.2 * mean for i in range(3)), served


def test_take_waits_for_a_frame_and_close_wakes_it() -> None:
    frames: LatestFrames[str] = LatestFrames(1)
    got: list[list[tuple[int, str]]] = []
    waiter = threading.Thread(target=lambda: got.append(frames.take(limit=1, timeout_s=5)))
    waiter.start()
    time.sleep(0.05)
    frames.put(0, "x")
    waiter.join(2)
    assert got == [[(0, "x")]]
    waiter = threading.Thread(target=lambda: got.append(frames.take(limit=1, timeout_s=5)))
    waiter.start()
    frames.put(0, "left")
    time.sleep(0.05)
    frames.put(0, "waiting")
    assert frames.close() in (["waiting"], [])
    waiter.join(2)
    assert not waiter.is_alive()
    assert frames.take(limit=1, timeout_s=0) == []


def test_needs_a_camera() -> None:
    with pytest.raises(ValueError, match="at least one camera"):
        LatestFrames(0)
