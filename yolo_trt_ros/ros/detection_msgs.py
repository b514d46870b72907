"""vision_msgs/Detection2DArray from a frame's detections and track IDs."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.tracking.assignment import UNTRACKED


class DetectionArrayBuilder:
    """Builds Detection2DArray messages: the input header; bbox centre/size in original-image
    pixels, class name + score; ``id`` the track ID as a string ("" without ``track_ids`` and for
    ``UNTRACKED``).

    The Detection2D objects are reused from frame to frame: rosidl constructors eagerly build every
    default sub-message (a 36-double covariance array per hypothesis), ~30 us per detection once
    inference has evicted the caches. A message is valid until the next call, so publish it
    (publish serializes at once) before building again.
    """

    def __init__(self) -> None:
        self._pool: list[Detection2D] = []

    def __call__(
        self,
        header: Header,
        detections: Detections,
        names: Sequence[str],
        track_ids: np.ndarray | None = None,
    ) -> Detection2DArray:
        out = Detection2DArray(header=header)
        n = len(detections)
        if not n:
            return out
        while len(self._pool) < n:
            self._pool.append(Detection2D(results=[ObjectHypothesisWithPose()]))
        boxes = detections.boxes.astype(np.float64)
        centers = ((boxes[:, :2] + boxes[:, 2:]) * 0.5).tolist()
        sizes = (boxes[:, 2:] - boxes[:, :2]).tolist()
        labels = [names[i] for i in detections.class_ids.tolist()]
        ids = (
            [""] * n
            if track_ids is None
            else ["" if i == UNTRACKED else str(i) for i in track_ids.tolist()]
        )
        for det, (cx, cy), (w, h), score, label, track_id in zip(
            self._pool, centers, sizes, detections.scores.tolist(), labels, ids, strict=False
        ):
            det.header = header
            det.id = track_id
            det.bbox.center.position.x = cx
            det.bbox.center.position.y = cy
            det.bbox.size_x = w
            det.bbox.size_y = h
            hypothesis = det.results[0].hypothesis
            hypothesis.class_id = label
            hypothesis.score = score
        out.detections = self._pool[:n]
        return out
