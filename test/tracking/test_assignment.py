"""tracking.assignment: the detector threshold while tracking, and which detections are published
with which IDs (real ``Detections``, real ``ByteTracker`` and hand-made ``Tracks``)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.tracking.assignment import UNTRACKED, assign_ids, detector_threshold
from yolo_trt_ros.tracking.bytetrack import ByteTracker, TrackerConfig, Tracks

CONF = 0.25


def detections(boxes: ArrayLike, scores: ArrayLike, class_ids: ArrayLike) -> Detections:
    return Detections(
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(scores, np.float32),
        np.asarray(class_ids, np.int64),
    )


def tracks(det_indices: list[int], track_ids: list[int]) -> Tracks:
    """Confirmed tracks matched to the detections ``det_indices``; their Kalman boxes, scores and
    classes are deliberately unlike any detection's (``assign_ids`` must not use them)."""
    n = len(det_indices)
    return Tracks(
        np.full((n, 4), -1.0, np.float32),
        np.full(n, 0.01, np.float32),
        np.full(n, 99, np.int64),
        np.asarray(track_ids, np.int64),
        np.asarray(det_indices, np.int64),
    )


def assert_published(
    published: Detections, ids: np.ndarray, source: Detections, rows: list[int], want: list[int]
) -> None:
    """``published`` is exactly rows ``rows`` of ``source`` (same dtypes), with IDs ``want``."""
    assert ids.dtype == np.int64 and ids.tolist() == want
    assert published.boxes.dtype == np.float32 and published.boxes.shape == (len(rows), 4)
    assert published.scores.dtype == np.float32 and published.class_ids.dtype == np.int64
    np.testing.assert_array_equal(published.boxes, source.boxes[rows])
    np.testing.assert_array_equal(published.scores, source.scores[rows])
    np.testing.assert_array_equal(published.class_ids, source.class_ids[rows])


FIVE = detections(
    [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10], [80, 0, 90, 10]],
    [0.9, 0.7, 0.3, 0.15, 0.12],
    [0, 1, 2, 3, 4],
)


def test_detector_threshold_is_conf_threshold_without_a_tracker() -> None:
    assert detector_threshold(0.25, None) == 0.25
    assert detector_threshold(0.05, None) == 0.05
    assert detector_threshold(0.6, None) == 0.6


def test_detector_threshold_is_lowered_to_track_low_thresh_while_tracking() -> None:
    assert detector_threshold(0.25, TrackerConfig()) == 0.1  # default track_low_thresh
    assert detector_threshold(0.5, TrackerConfig(track_low_thresh=0.2)) == 0.2
    # Never raised: a conf_threshold already below track_low_thresh stays.
    assert detector_threshold(0.05, TrackerConfig()) == 0.05
    assert detector_threshold(0.1, TrackerConfig()) == 0.1


def test_tracked_detections_are_published_whatever_their_score_in_detection_order() -> None:
    # Tracks in their own order (not the detections'), two of them on detections below CONF.
    published, ids = assign_ids(FIVE, tracks([3, 0, 4], [5, 9, 2]), CONF)
    assert_published(published, ids, FIVE, [0, 3, 4], [9, 5, 2])


def test_untracked_detections_are_dropped_by_default() -> None:
    published, ids = assign_ids(FIVE, tracks([], []), CONF)
    assert_published(published, ids, FIVE, [], [])
    published, ids = assign_ids(FIVE, tracks([1], [4]), CONF)
    assert_published(published, ids, FIVE, [1], [4])  # detection 0 (0.9) untracked: dropped


def test_include_untracked_publishes_untracked_detections_at_conf_threshold_and_above() -> None:
    dets = detections(
        [[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10], [80, 0, 90, 10]],
        [0.9, 0.25, 0.2499, 0.2, 0.1],  # 0.25: exactly CONF (exact in float32 too)
        [7, 6, 5, 4, 3],
    )
    published, ids = assign_ids(dets, tracks([], []), CONF, include_untracked=True)
    assert_published(published, ids, dets, [0, 1], [UNTRACKED, UNTRACKED])
    # Tracked ones below CONF as well, with their IDs; untracked below CONF still dropped.
    published, ids = assign_ids(dets, tracks([4, 1], [3, 8]), CONF, include_untracked=True)
    assert_published(published, ids, dets, [0, 1, 4], [UNTRACKED, 8, 3])
    assert UNTRACKED == 0


def test_no_detections() -> None:
    published, ids = assign_ids(Detections.empty(), tracks([], []), CONF, include_untracked=True)
    assert_published(published, ids, Detections.empty(), [], [])


def moving_box(frame: int) -> list[float]:
    """A box moving right by 8 px a frame."""
    return [10.0 + 8 * frame, 20.0, 60.0 + 8 * frame, 120.0]


STILL_BOX = [300.0, 300.0, 340.0, 380.0]


def test_with_a_byte_tracker_low_score_continuations_keep_ids_first_sightings_do_not() -> None:
    tracker = ByteTracker(TrackerConfig())
    for frame in range(6):
        dets = detections([moving_box(frame), STILL_BOX], [0.9, 0.8], [0, 2])
        published, ids = assign_ids(
            dets, tracker.update(dets.boxes, dets.scores, dets.class_ids), CONF
        )
        assert_published(published, ids, dets, [0, 1], [1, 2])
    # Both objects now score below CONF (above track_low_thresh: ByteTrack's second association),
    # and a new object appears at 0.95: a first sighting, not yet a confirmed track.
    dets = detections([[500, 50, 540, 90], moving_box(6), STILL_BOX], [0.95, 0.15, 0.2], [1, 0, 2])
    found = tracker.update(dets.boxes, dets.scores, dets.class_ids)
    assert found.det_indices.tolist() == [1, 2] and found.track_ids.tolist() == [1, 2]
    published, ids = assign_ids(dets, found, CONF)
    assert_published(published, ids, dets, [1, 2], [1, 2])
    published, ids = assign_ids(dets, found, CONF, include_untracked=True)
    assert_published(published, ids, dets, [0, 1, 2], [UNTRACKED, 1, 2])


def test_published_boxes_are_the_detections_not_the_kalman_boxes() -> None:
    tracker = ByteTracker(TrackerConfig())
    for frame in range(6):
        # The moving object is detected as class 0, then as class 5 in the last frame: the
        # default class-agnostic association keeps its ID and publishes the new class.
        dets = detections([STILL_BOX, moving_box(frame)], [0.8, 0.9], [2, 5 if frame == 5 else 0])
        found = tracker.update(dets.boxes, dets.scores, dets.class_ids)
        published, ids = assign_ids(dets, found, CONF)
        assert_published(published, ids, dets, [0, 1], [1, 2])
        kalman = found.boxes[np.argsort(found.det_indices)]
        if frame == 0:
            np.testing.assert_array_equal(kalman, dets.boxes)  # a new track starts at its box
        else:
            # The filter lags the moving box (0.76 to 1.6 px here); the still box it has exactly.
            lag = np.abs(kalman[1] - dets.boxes[1])
            assert lag[[1, 3]].max() == 0.0 and lag[[0, 2]].min() > 0.5, kalman[1]
            np.testing.assert_array_equal(kalman[0], dets.boxes[0])
    assert published.class_ids.tolist() == [2, 5]
