"""Detector -> ByteTracker glue shared by the node and the CLI: detector threshold, published IDs,
tracker flags.

ByteTrack's second association needs the low-score detections (``track_low_thresh`` ..
``track_high_thresh``), which a detector at its usual ``conf_threshold`` (0.25) has already
dropped; so while tracking, the detector runs at ``min(conf_threshold, track_low_thresh)``
(``detector_threshold``). What is published (``assign_ids``): every detection the tracker confirmed
in this frame, whatever its score (a low-score detection that continues a track is the point of
ByteTrack: an occluded person keeps its ID), with its track ID; an unconfirmed detection (a first
sighting, or one no track took) only on request and only scoring at least ``conf_threshold``, with
``UNTRACKED`` as its ID. Boxes, scores and classes are the detection's own (not the Kalman box):
what the detector measured in this image, consistent with the score and class, and alike for
tracked and untracked detections. With the default class-agnostic association a track's published
class can change from frame to frame (a car the detector calls a truck keeps its ID and is
published as a truck in that frame); ``class_aware`` gives such a flip a new ID instead.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.tracking.bytetrack import TrackerConfig, Tracks

UNTRACKED = 0
"""ID of a published detection no confirmed track matched (track IDs start at 1)."""
TRACKER_FIELDS = tuple(f.name for f in fields(TrackerConfig))


def detector_threshold(conf_threshold: float, tracker: TrackerConfig | None) -> float:
    """The detector's confidence threshold: ``conf_threshold``, lowered to ``track_low_thresh``
    while tracking."""
    return conf_threshold if tracker is None else min(conf_threshold, tracker.track_low_thresh)


def assign_ids(
    detections: Detections, tracks: Tracks, conf_threshold: float, include_untracked: bool = False
) -> tuple[Detections, np.ndarray]:
    """The detections to publish (in detection order) and their track IDs (``UNTRACKED`` for
    untracked ones)."""
    ids = np.full(len(detections), UNTRACKED, np.int64)
    ids[tracks.det_indices] = tracks.track_ids
    keep = ids != UNTRACKED
    if include_untracked:
        keep |= detections.scores >= conf_threshold
    return Detections(
        detections.boxes[keep], detections.scores[keep], detections.class_ids[keep]
    ), ids[keep]
