"""DetectionArrayBuilder reuses its Detection2D objects: every frame must equal one built from
scratch, also on the wire (compared field by field: CDR alignment padding bytes are
uninitialised)."""

from __future__ import annotations

import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.ros.detection_msgs import DetectionArrayBuilder
from yolo_trt_ros.tracking.assignment import UNTRACKED

NAMES = ["person", "bicycle", "car"]


def fresh(header: Header, dets: Detections, ids: list[str]) -> Detection2DArray:
    """The straightforward construction, one new message object per detection."""
    out = Detection2DArray(header=header)
    for (x1, y1, x2, y2), score, cls, track_id in zip(
        dets.boxes.tolist(), dets.scores.tolist(), dets.class_ids.tolist(), ids, strict=True
    ):
        det = Detection2D(header=header, id=track_id)
        det.bbox.center.position.x, det.bbox.center.position.y = (x1 + x2) / 2, (y1 + y2) / 2
        det.bbox.size_x, det.bbox.size_y = x2 - x1, y2 - y1
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = NAMES[cls], score
        det.results.append(hypothesis)
        out.detections.append(det)
    return out


def detections(n: int, seed: int) -> Detections:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 500, (n, 2))
    boxes = np.hstack([xy, xy + rng.uniform(1, 100, (n, 2))]).astype(np.float32)
    return Detections(boxes, rng.uniform(0.1, 1, n).astype(np.float32), rng.integers(0, 3, n))


def test_reused_messages_serialize_like_fresh_ones() -> None:
    build = DetectionArrayBuilder()
    for frame, n in enumerate([5, 2, 0, 7, 1]):  # shrinking and growing frames reuse the pool
        header = Header(frame_id=f"camera_{frame}")
        header.stamp.sec = frame
        dets = detections(n, frame)
        track_ids = np.arange(1, n + 1, dtype=np.int64)
        track_ids[::2] = UNTRACKED
        msg = build(header, dets, NAMES, track_ids)
        expected = fresh(
            header, dets, ["" if i == UNTRACKED else str(i) for i in track_ids.tolist()]
        )
        assert len(msg.detections) == n
        assert msg == expected
        assert deserialize_message(serialize_message(msg), Detection2DArray) == expected
    untracked = build(Header(), detections(3, 9), NAMES)
    assert [d.id for d in untracked.detections] == ["", "", ""]
