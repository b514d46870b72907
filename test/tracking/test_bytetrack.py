"""ByteTracker: parity with Ultralytics' BYTETracker (golden files), lifecycle, time from stamps,
bad input."""

from __future__ import annotations

import gzip
import warnings
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import ArrayLike

from yolo_trt_ros.evaluation.mot import load_detections, read_seqinfo
from yolo_trt_ros.tracking.bytetrack import ByteTracker, TrackerConfig, Tracks

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def read_csv(path: Path) -> np.ndarray:
    with gzip.open(path, "rt") as f:
        lines = [line for line in f if line[0].isdigit()]
    return np.array([line.split(",") for line in lines], dtype=np.float64)


def assert_same_tracks(
    frames: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
    golden: np.ndarray,
    config: TrackerConfig,
) -> None:
    """Frame by frame: the same detections reported, boxes within 1e-3 px, scores and classes
    equal, and the track IDs a bijection with the reference IDs that holds for the whole
    sequence."""
    expected = defaultdict(list)
    for row in golden:
        expected[int(row[0])].append(row)
    tracker = ByteTracker(config)
    ours_to_ref: dict[int, int] = {}
    ref_to_ours: dict[int, int] = {}
    for frame, (boxes, scores, classes) in enumerate(frames, 1):
        out = tracker.update(boxes, scores, classes)
        ref = np.array(expected.get(frame, np.empty((0, 9)))).reshape(-1, 9)
        ref = ref[np.argsort(ref[:, 8])]
        order = np.argsort(out.det_indices)
        assert out.det_indices[order].tolist() == ref[:, 8].astype(int).tolist(), f"frame {frame}"
        np.testing.assert_allclose(
            out.boxes[order], ref[:, 2:6], atol=1e-3, err_msg=f"frame {frame}"
        )
        np.testing.assert_allclose(
            out.scores[order], ref[:, 6], atol=1e-6, err_msg=f"frame {frame}"
        )
        assert out.class_ids[order].tolist() == ref[:, 7].astype(int).tolist(), f"frame {frame}"
        for ours, theirs in zip(
            out.track_ids[order].tolist(), ref[:, 1].astype(int).tolist(), strict=True
        ):
            assert ours_to_ref.setdefault(ours, theirs) == theirs, (
                f"frame {frame}: our id {ours} changed partner"
            )
            assert ref_to_ours.setdefault(theirs, ours) == ours, (
                f"frame {frame}: ref id {theirs} changed partner"
            )
    # Numbered when first reported: IDs are 1..K, no numbers spent on tracks never reported
    # (Ultralytics: 76 up to 382).
    assert sorted(ours_to_ref) == list(range(1, len(ours_to_ref) + 1))
    assert tracker.ids_issued == len(ours_to_ref)


def test_parity_with_ultralytics_on_mot16_05(mot_dir: Path) -> None:
    info = read_seqinfo(mot_dir)
    frames = [(b, s, None) for b, s in load_detections(mot_dir / "det" / "det.txt", info.length)]
    golden = read_csv(GOLDEN / "bytetrack_mot16-05_ultralytics.csv.gz")
    assert len(frames) == 837 and len(golden) > 1000
    assert_same_tracks(
        frames, golden, TrackerConfig()
    )  # one class: class-aware or not is the same


def test_parity_with_ultralytics_on_synthetic_sequence() -> None:
    rows = read_csv(GOLDEN / "bytetrack_synthetic_input.csv.gz")
    n_frames = int(rows[:, 0].max())
    frames = []
    for frame in range(1, n_frames + 1):
        r = rows[rows[:, 0] == frame]
        frames.append(
            (r[:, 1:5].astype(np.float32), r[:, 5].astype(np.float32), r[:, 6].astype(np.int64))
        )
    golden = read_csv(GOLDEN / "bytetrack_synthetic_ultralytics.csv.gz")
    assert_same_tracks(
        frames, golden, TrackerConfig()
    )  # defaults associate across classes, as Ultralytics


# ---------------------------------------------------------------------------------------------
# Behaviour on hand-made scenes.

BOX = np.array([100.0, 100.0, 150.0, 220.0], dtype=np.float32)


def step(
    tracker: ByteTracker,
    boxes: ArrayLike,
    scores: ArrayLike | None = None,
    classes: ArrayLike | None = None,
    stamp: float | None = None,
) -> Tracks:
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    scores = (
        np.full(len(boxes), 0.9, dtype=np.float32)
        if scores is None
        else np.asarray(scores, np.float32)
    )
    return tracker.update(boxes, scores, classes, stamp)


def ids(tracks: Tracks) -> list[int]:
    return tracks.track_ids.tolist()


def test_new_tracks_are_reported_from_their_second_frame_except_in_frame_one() -> None:
    tracker = ByteTracker()
    assert ids(step(tracker, [BOX])) == [1]  # frame 1 activates at once
    far = BOX + 300
    out = step(tracker, [BOX, far])
    assert ids(out) == [1]  # the new one is unconfirmed
    out = step(tracker, [BOX, far])
    assert sorted(ids(out)) == [1, 2]
    assert out.det_indices[out.track_ids == 2].tolist() == [1]


def test_unconfirmed_track_without_second_detection_is_dropped() -> None:
    tracker = ByteTracker()
    step(tracker, [BOX])
    step(tracker, [BOX, BOX + 300])  # a one-frame blip
    step(tracker, [BOX])
    out = step(tracker, [BOX, BOX + 300])  # comes back: a new track, not the blip's
    assert ids(out) == [1]
    assert sorted(ids(step(tracker, [BOX, BOX + 300]))) == [1, 2]  # the blip used up no ID


def test_static_object_keeps_its_id_and_box() -> None:
    tracker = ByteTracker()
    for _ in range(20):
        out = step(tracker, [BOX])
        assert ids(out) == [1]
    np.testing.assert_allclose(out.boxes[0], BOX, atol=1e-3)
    assert tracker.tracked_count == 1 and tracker.lost_count == 0


def moving(frame: int, speed: float = 4.0) -> np.ndarray:
    return BOX + np.array([speed, 0, speed, 0], dtype=np.float32) * frame


def test_lost_track_is_found_again_within_the_buffer() -> None:
    tracker = ByteTracker()
    for f in range(10):
        step(tracker, [moving(f)])
    for _ in range(8):
        assert len(step(tracker, [])) == 0
    assert tracker.lost_count == 1 and tracker.tracked_count == 0
    out = step(tracker, [moving(18)])  # where constant velocity puts it
    assert ids(out) == [1]


@pytest.mark.parametrize("frame_rate, max_lost", [(30.0, 30), (15.0, 15), (10.0, 10)])
def test_lost_buffer_scales_with_frame_rate(frame_rate: float, max_lost: int) -> None:
    config = TrackerConfig(frame_rate=frame_rate, track_buffer=30)
    assert config.max_frames_lost == max_lost
    for absent, same in ((max_lost, True), (max_lost + 1, False)):
        tracker = ByteTracker(config)
        step(tracker, [BOX])
        step(tracker, [BOX])
        for _ in range(absent):
            step(tracker, [])
        out = step(tracker, [BOX])
        assert (ids(out) == [1]) is same, (absent, ids(out))
        if not same:
            assert tracker.lost_count == 0  # the old track was removed


def test_low_score_detection_continues_a_track_but_cannot_start_one() -> None:
    tracker = ByteTracker()
    step(tracker, [BOX])
    assert ids(step(tracker, [BOX], [0.15])) == [1]  # second association
    out = step(tracker, [BOX], [0.05])  # below track_low_thresh: ignored
    assert len(out) == 0 and tracker.lost_count == 1
    tracker.reset()
    for _ in range(3):
        assert len(step(tracker, [BOX], [0.15])) == 0


def test_new_track_thresh() -> None:
    tracker = ByteTracker(TrackerConfig(new_track_thresh=0.6))
    for _ in range(3):
        assert len(step(tracker, [BOX], [0.5])) == 0
    step(tracker, [BOX], [0.7])
    assert ids(step(tracker, [BOX], [0.5])) == [
        1
    ]  # an existing track takes high-score detections below it


def test_fuse_score_lowers_weak_matches() -> None:
    shifted = BOX + np.array([20, 0, 20, 0], dtype=np.float32)  # IoU with BOX 0.43
    for fuse, same in ((False, True), (True, False)):
        tracker = ByteTracker(TrackerConfig(fuse_score=fuse))
        step(tracker, [BOX], [0.3])
        out = step(
            tracker, [shifted], [0.3]
        )  # fused cost 1 - 0.43 * 0.3 = 0.87 > match_thresh 0.8
        assert (ids(out) == [1]) is same


def test_class_aware_association() -> None:
    for class_aware, expected in ((True, [0]), (False, [1])):
        tracker = ByteTracker(TrackerConfig(class_aware=class_aware))
        step(tracker, [BOX], classes=[0])
        out = step(tracker, [BOX], classes=[1])
        if class_aware:
            assert (
                len(out) == 0 and tracker.lost_count == 1
            )  # the class-1 detection starts its own track
            out = step(tracker, [BOX], classes=[0])
        assert ids(out) == [1] and out.class_ids.tolist() == expected


def test_default_keeps_one_id_through_class_flips() -> None:
    """A car the detector calls car (2) or truck (7), three frames each, is one track by default,
    more when class-aware."""
    classes = [(2, 7)[f // 3 % 2] for f in range(24)]
    seen: dict[bool, set[int]] = {}
    for config in (TrackerConfig(), TrackerConfig(class_aware=True)):
        tracker = ByteTracker(config)
        found: set[int] = set()
        for f, cls in enumerate(classes):
            out = step(
                tracker, [BOX + np.array([4 * f, 0, 4 * f, 0], dtype=np.float32)], classes=[cls]
            )
            found.update(ids(out))
            if not config.class_aware:
                assert ids(out) == [1] and out.class_ids.tolist() == [cls]  # the detection's class
        seen[config.class_aware] = found
    assert seen[False] == {1}
    assert len(seen[True]) > 1


def test_two_crossing_objects_keep_their_ids() -> None:
    tracker = ByteTracker()
    for f in range(40):
        a = BOX + np.array([6 * f, 0, 6 * f, 0], dtype=np.float32)
        b = BOX + np.array([240 - 6 * f, 10, 240 - 6 * f, 10], dtype=np.float32)
        out = step(tracker, [a, b])
        by_det = dict(zip(out.det_indices.tolist(), ids(out), strict=True))
        assert by_det == {0: 1, 1: 2}, f


def walk_onto_a_lost_track(a_frames: int, b_start: int, frames: int) -> list[tuple[list, int]]:
    """Object A stands at BOX in frames 1 .. a_frames, then vanishes; object B comes in from 60 px
    to the left from frame b_start on, 3 px a frame, and stops on A's spot. Per frame: the IDs
    reported and the lost count."""
    tracker = ByteTracker()
    log = []
    for f in range(1, frames + 1):
        boxes = [BOX] if f <= a_frames else []
        if f >= b_start:
            x = min(0, -60 + 3 * (f - b_start))
            boxes.append(BOX + np.array([x, 0, x, 0], dtype=np.float32))
        log.append((sorted(ids(step(tracker, boxes))), tracker.lost_count))
    return log


def test_of_an_active_and_a_lost_track_on_one_spot_the_younger_goes() -> None:
    log = walk_onto_a_lost_track(a_frames=5, b_start=1, frames=25)
    # B (ID 2) was followed longer: once it covers lost A (IoU > 0.85), lost A goes, 16 frames
    # before its buffer runs out
    assert log[18] == ([2], 1) and log[19] == ([2], 0)
    log = walk_onto_a_lost_track(a_frames=25, b_start=24, frames=45)
    # A (ID 1) was followed longer: B's track goes, and the next frame its detection continues A
    assert log[41] == ([2], 1) and log[42] == ([], 1) and log[43] == ([1], 0)


def test_reset_restarts_numbering() -> None:
    tracker = ByteTracker()
    step(tracker, [BOX, BOX + 300])
    assert sorted(ids(step(tracker, [BOX, BOX + 300]))) == [1, 2]
    assert tracker.ids_issued == 2
    tracker.reset()
    assert (
        tracker.frame_count == 0
        and tracker.tracked_count == tracker.lost_count == tracker.ids_issued == 0
    )
    assert sorted(ids(step(tracker, [BOX + 150, BOX + 300]))) == [1, 2]


# ---------------------------------------------------------------------------------------------
# Time from header stamps.


def test_dropped_frames_are_predicted_over_from_stamps() -> None:
    period = 1 / 30
    fast = 25.0  # px per frame: a 5-frame gap moves the box far beyond its width

    def run(use_stamps: bool) -> list[int]:
        tracker = ByteTracker()
        for f in range(10):
            step(tracker, [moving(f, fast)], stamp=f * period if use_stamps else None)
        return ids(step(tracker, [moving(15, fast)], stamp=15 * period if use_stamps else None))

    assert run(use_stamps=True) == [1]
    assert run(use_stamps=False) == []  # counted as one frame: the prediction is 125 px off


def test_stamp_rules() -> None:
    tracker = ByteTracker(TrackerConfig(frame_rate=10.0))
    step(tracker, [BOX], stamp=100.0)
    assert tracker.frame_count == 1
    step(tracker, [BOX], stamp=100.3)  # 3 periods
    assert tracker.frame_count == 4
    step(tracker, [BOX], stamp=100.3)  # repeated: one period
    assert tracker.frame_count == 5
    step(tracker, [BOX], stamp=50.0)  # back in time: one period, counting restarts from it
    assert tracker.frame_count == 6
    out = step(tracker, [BOX], stamp=50.1)
    assert tracker.frame_count == 7 and ids(out) == [1]
    for stamp in (None, float("nan"), float("inf"), 0.0, 0.0):  # no usable time: one period each
        out = step(tracker, [BOX], stamp=stamp)
    assert tracker.frame_count == 12 and ids(out) == [1]


def test_gap_longer_than_the_buffer_ends_every_track() -> None:
    tracker = ByteTracker(TrackerConfig(frame_rate=30.0, track_buffer=30))
    step(tracker, [BOX], stamp=0.0)
    step(tracker, [BOX], stamp=1 / 30)
    assert ids(step(tracker, [BOX], stamp=1 / 30 + 1.0)) == [
        1
    ]  # 30 periods: still within the buffer
    out = step(
        tracker, [BOX], stamp=1e9
    )  # a huge jump: fresh tracks, IDs keep counting, no overflow
    assert ids(out) == [] and tracker.lost_count == 0
    out = step(tracker, [BOX], stamp=1e9 + 1 / 30)
    assert ids(out) == [2] and np.isfinite(out.boxes).all()


# ---------------------------------------------------------------------------------------------
# Bad and extreme input.


def test_empty_input_in_every_shape() -> None:
    tracker = ByteTracker()
    for boxes, scores in (
        (np.empty((0, 4), np.float32), np.empty(0, np.float32)),
        (np.empty(0), np.empty(0)),
        ([], []),
    ):
        out = tracker.update(boxes, scores)
        assert len(out) == 0 and out.boxes.shape == (0, 4) and out.track_ids.dtype == np.int64
    step(tracker, [BOX])
    assert ids(step(tracker, [BOX])) == [1]
    assert len(tracker.update([], [])) == 0 and tracker.lost_count == 1


def test_mismatched_lengths_are_rejected() -> None:
    tracker = ByteTracker()
    with pytest.raises(ValueError, match="boxes"):
        tracker.update(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="class ids"):
        tracker.update(np.zeros((2, 4)), np.zeros(2), np.zeros(3))


@pytest.mark.parametrize("padding", [0, 40])  # 40: a frame of many detections
def test_non_finite_and_degenerate_boxes_are_ignored(padding: int) -> None:
    tracker = ByteTracker()
    nan, inf = float("nan"), float("inf")
    bad = [
        [nan, 0, 10, 10],
        [0, 0, inf, 10],
        [-inf, 0, 10, 10],
        [inf, inf, inf, inf],
        [5, 5, 5, 20],  # zero width
        [30, 30, 10, 10],  # inverted
        [nan] * 4,
    ]
    far = [[2000.0 + 60 * i, 2000.0, 2040.0 + 60 * i, 2100.0] for i in range(padding)]
    boxes = np.array([bad[0], BOX, *bad[1:4], BOX + 300, *bad[4:], *far], dtype=np.float32)
    good = [1, 5] + list(range(len(boxes) - padding, len(boxes)))
    scores = np.full(len(boxes), 0.9, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy RuntimeWarning either
        for _ in range(3):
            out = tracker.update(boxes, scores)
            assert sorted(out.det_indices.tolist()) == good
            assert np.isfinite(out.boxes).all()
        bad_scores = scores.copy()
        bad_scores[1], bad_scores[5] = nan, inf
        out = tracker.update(boxes, bad_scores)
    assert sorted(out.det_indices.tolist()) == good[2:] and tracker.lost_count == 2


def test_500_detections() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1900, (500, 2))
    boxes = np.column_stack((xy, xy + rng.uniform(10, 120, (500, 2)))).astype(np.float32)
    scores = rng.uniform(0.0, 1.0, 500).astype(np.float32)
    classes = rng.integers(0, 80, 500)
    tracker = ByteTracker()
    first = tracker.update(boxes, scores, classes)
    assert len(set(ids(first))) == len(first) == int((scores >= 0.25).sum())
    for _ in range(3):
        jitter = rng.normal(0, 0.5, boxes.shape).astype(np.float32)
        out = tracker.update(boxes + jitter, scores, classes)
        assert len(set(ids(out))) == len(out)
        assert set(ids(out)) >= set(ids(first))
        same = dict(zip(first.det_indices.tolist(), ids(first), strict=True))
        pairs = zip(out.det_indices.tolist(), ids(out), strict=True)
        assert all(same[d] == i for d, i in pairs if d in same)


def test_config_validation_names_the_parameter() -> None:
    for kwargs, name in (
        ({"track_high_thresh": 1.5}, "track_high_thresh"),
        ({"track_low_thresh": 0.5, "track_high_thresh": 0.4}, "track_low_thresh"),
        ({"match_thresh": 0.0}, "match_thresh"),
        ({"track_buffer": 0}, "track_buffer"),
        ({"frame_rate": float("nan")}, "frame_rate"),
    ):
        with pytest.raises(ValueError, match=name):
            TrackerConfig(**kwargs)


def test_set_config_keeps_tracks() -> None:
    tracker = ByteTracker()
    step(tracker, [BOX])
    tracker.set_config(TrackerConfig(track_high_thresh=0.5, new_track_thresh=0.5))
    assert ids(step(tracker, [BOX], [0.6])) == [1]
    assert tracker.config.track_high_thresh == 0.5


def test_track_fields_are_views_of_one_array() -> None:
    """Selecting or joining tracks is one numpy call: every field is a column view of one array."""
    from yolo_trt_ros.tracking.bytetrack import _TrackArrays

    tracks = _TrackArrays.empty(3)
    for field in (tracks.mean, tracks.covariance, tracks.box, tracks.class_id, tracks.track_id):
        assert np.shares_memory(field, tracks.data)
    assert tracks.covariance.shape == (3, 8, 8)
    tracks.covariance[1, 2, 3] = 7.0
    assert tracks.data[1, _TrackArrays.COVARIANCE.start + 2 * 8 + 3] == 7.0
