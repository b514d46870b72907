"""ByteTrack multi-object tracker (Zhang et al., ECCV 2022), vectorized over tracks.

Behaves as Ultralytics' ``BYTETracker`` (8.4) with the same parameters: a constant-velocity Kalman filter per track,
a first association of the high-score detections with all tracked and lost tracks (IoU, optionally score-fused), a
second association of the low-score detections with the still unmatched tracked tracks (IoU only), unconfirmed
tracks that need a second detection to be reported, new tracks from unmatched high-score detections, lost tracks
kept for ``max_frames_lost`` frames, and tracked/lost duplicates removed. Differences: an optional class-aware
association, header-stamp time (dropped frames), and the rejection of non-finite input. All track state lives in
one array (structure of arrays), so a frame costs a fixed, small number of numpy calls whatever the track count.

Time: ``update(..., stamp=t)`` counts ``round((t - t_prev) * frame_rate)`` frame periods since the previous frame,
so the filter predicts over dropped frames and lost tracks age in time. A missing or non-finite stamp, and a stamp
not later than the previous one (repeated, out of order, or a driver that leaves stamps at zero), count as one
period; a stamp that goes back starts the count from it. A gap longer than the lost-track buffer ends every track
(as ByteTrack would have dropped them by then); IDs keep counting. ``reset()`` clears the tracks and numbering.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import kalman_filter as kf
from .matching import iou_matrix, linear_assignment

# Rows of the track table (one column per track); rows 0..kf.STATE_ROWS-1 are the Kalman state.
_SCORE, _CLASS, _ID, _START, _LAST, _DET = range(kf.STATE_ROWS, kf.STATE_ROWS + 6)
_ROWS = kf.STATE_ROWS + 6
_VH = kf.VEL.start + 3  # row of the height velocity
_SECOND_MATCH_THRESH = 0.5  # low-score detections vs remaining tracked tracks (Ultralytics, IoU only)
_UNCONFIRMED_MATCH_THRESH = 0.7  # unconfirmed tracks vs remaining high-score detections (Ultralytics)
_DUPLICATE_IOU_DISTANCE = 0.15  # a tracked and a lost track overlapping more than this are one object


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack parameters; defaults are Ultralytics' ``bytetrack.yaml`` (plus ``frame_rate`` 30)."""

    track_high_thresh: float = 0.25  # detections scoring at least this enter the first association
    track_low_thresh: float = 0.1  # detections scoring above this (and below high) enter the second one
    new_track_thresh: float = 0.25  # an unmatched high-score detection scoring at least this starts a track
    match_thresh: float = 0.8  # first association: pairs need a cost (1 - IoU, or 1 - IoU * score) below this
    track_buffer: int = 30  # frames a lost track is kept at 30 fps; scaled by frame_rate
    frame_rate: float = 30.0  # nominal camera rate: one frame period is 1 / frame_rate seconds
    fuse_score: bool = True  # first association cost 1 - IoU * score instead of 1 - IoU
    class_aware: bool = True  # match detections only to tracks of their class (a track keeps its class)

    def __post_init__(self) -> None:
        for name in ("track_high_thresh", "track_low_thresh", "new_track_thresh"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if self.track_low_thresh > self.track_high_thresh:
            raise ValueError(
                f"track_low_thresh ({self.track_low_thresh}) must not exceed track_high_thresh "
                f"({self.track_high_thresh})"
            )
        if not 0.0 < self.match_thresh <= 1.0:
            raise ValueError(f"match_thresh must be in (0, 1], got {self.match_thresh}")
        if self.track_buffer < 1:
            raise ValueError(f"track_buffer must be at least 1, got {self.track_buffer}")
        if not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise ValueError(f"frame_rate must be a positive number, got {self.frame_rate}")

    @property
    def max_frames_lost(self) -> int:
        """Frames a lost track is kept: ``int(frame_rate / 30 * track_buffer)``, at least 1."""
        return max(1, int(self.frame_rate / 30.0 * self.track_buffer))


@dataclass(frozen=True)
class Tracks:
    """The confirmed tracks of one frame, each matched to a detection of that frame."""

    boxes: np.ndarray  # (K, 4) float32 x1, y1, x2, y2: the Kalman-filtered box
    scores: np.ndarray  # (K,) float32: score of the matched detection
    class_ids: np.ndarray  # (K,) int64
    track_ids: np.ndarray  # (K,) int64, from 1, unique and fixed for a track's life
    det_indices: np.ndarray  # (K,) int64: index of the matched detection in update()'s input

    def __len__(self) -> int:
        return len(self.track_ids)


def _no_tracks() -> Tracks:
    ints = np.empty(0, dtype=np.int64)
    return Tracks(np.empty((0, 4), dtype=np.float32), np.empty(0, dtype=np.float32), ints, ints, ints)


_NO_TRACKS = _no_tracks()
_EMPTY_TABLE = np.empty((_ROWS, 0))
_EMPTY_INDEX = np.empty(0, dtype=np.intp)


class ByteTracker:
    """ByteTrack over per-frame detections; see the module docstring for the algorithm and the time rule."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.set_config(config or TrackerConfig())
        self.reset()

    @property
    def config(self) -> TrackerConfig:
        return self._config

    def set_config(self, config: TrackerConfig) -> None:
        """Change parameters; existing tracks are kept and follow the new ones from the next frame on."""
        self._config = config
        self._max_lost = config.max_frames_lost

    def reset(self) -> None:
        """Forget every track and restart track IDs at 1 and the frame count at 0."""
        # Columns: [tracked (confirmed) | lost | unconfirmed (created last frame, not yet reported)].
        self._table = _EMPTY_TABLE
        self._n_tracked = self._n_lost = 0
        self._frame = 0
        self._next_id = 1
        self._last_stamp: float | None = None

    @property
    def frame_count(self) -> int:
        """Frame periods elapsed since the last reset (the current frame number)."""
        return self._frame

    @property
    def tracked_count(self) -> int:
        """Confirmed tracks matched in the last frame (what update() returned)."""
        return self._n_tracked

    @property
    def lost_count(self) -> int:
        """Tracks currently lost but still kept for re-identification."""
        return self._n_lost

    def _advance(self, stamp: float | None) -> int:
        """Frame periods since the previous update (the time rule of the module docstring)."""
        if stamp is None or not math.isfinite(stamp):
            return 1
        last, self._last_stamp = self._last_stamp, stamp
        if last is None or stamp <= last:
            return 1
        return max(1, round((stamp - last) * self._config.frame_rate))

    def update(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        class_ids: np.ndarray | None = None,
        stamp: float | None = None,
    ) -> Tracks:
        """Advance to the next frame and associate its detections; returns the confirmed tracks.

        ``boxes`` (N, 4) x1, y1, x2, y2; ``scores`` (N,); ``class_ids`` (N,) integers (None: all 0); ``stamp`` the
        frame time in seconds (the image header stamp) or None to count one frame. Detections with a non-finite
        coordinate or score, or an empty box, are ignored.
        """
        cfg = self._config
        steps = self._advance(stamp)
        self._frame += steps
        frame = self._frame
        table = self._table
        n_tracked, n_lost = self._n_tracked, self._n_lost
        if steps > self._max_lost:
            table, n_tracked, n_lost = _EMPTY_TABLE, 0, 0
        n_pool = n_tracked + n_lost
        n = table.shape[1]
        sel, n_high, det_scores, det_cls, det_boxes, det_xyah = self._detections(boxes, scores, class_ids)
        n_det = len(sel)
        if n_det == 0 and n == 0:
            self._table, self._n_tracked, self._n_lost = table, 0, 0
            return _NO_TRACKS

        # Predict tracked and lost tracks (lost ones without height velocity); unconfirmed ones stay as created.
        if n_pool:
            table[_VH, n_tracked:n_pool] = 0.0
            kf.predict(table[: kf.STATE_ROWS, :n_pool], steps)
        track_boxes = kf.xyxy(table).astype(np.float32)
        if n and n_det:
            iou = iou_matrix(track_boxes, det_boxes)
            if cfg.class_aware:
                iou *= np.equal.outer(table[_CLASS], det_cls)
        else:
            iou = np.zeros((n, n_det), dtype=np.float32)

        # 1. High-score detections vs tracked + lost tracks.
        rows1, dets1 = _EMPTY_INDEX, _EMPTY_INDEX
        if n_pool and n_high:
            rows1, dets1 = linear_assignment(self._cost(iou[:n_pool, :n_high], det_scores[:n_high]), cfg.match_thresh)
        pool_left = np.ones(n_pool, dtype=bool)
        pool_left[rows1] = False
        high_left = np.ones(n_high, dtype=bool)
        high_left[dets1] = False

        # 2. Low-score detections vs the tracked tracks still unmatched (IoU only); the rest become lost.
        rows_left = pool_left[:n_tracked].nonzero()[0]
        rows, dets = rows1, dets1
        if len(rows_left) and n_det > n_high:
            m2, d2 = linear_assignment(1 - iou.take(rows_left, 0)[:, n_high:], _SECOND_MATCH_THRESH)
            if len(m2):
                rows = np.concatenate((rows, rows_left.take(m2)))
                dets = np.concatenate((dets, d2 + n_high))
                still_left = np.ones(len(rows_left), dtype=bool)
                still_left[m2] = False
                rows_left = rows_left[still_left]

        # 3. Unconfirmed tracks vs the high-score detections still unmatched; unmatched unconfirmed ones end.
        dets_left = high_left.nonzero()[0]
        if n > n_pool and len(dets_left):
            m3, d3 = linear_assignment(
                self._cost(iou[n_pool:].take(dets_left, 1), det_scores.take(dets_left)), _UNCONFIRMED_MATCH_THRESH
            )
            if len(m3):
                rows = np.concatenate((rows, m3 + n_pool))
                dets = np.concatenate((dets, dets_left.take(d3)))
                high_left[dets_left.take(d3)] = False
                dets_left = high_left.nonzero()[0]

        # Correct every matched track at once.
        matched = table.take(rows, 1)
        if len(rows):
            kf.update(matched[: kf.STATE_ROWS], det_xyah.take(dets, 1))
            matched[_SCORE] = det_scores.take(dets)
            if not cfg.class_aware:
                matched[_CLASS] = det_cls.take(dets)
            matched[_LAST] = frame
            matched[_DET] = sel.take(dets)

        # 4. New tracks from the remaining high-score detections; reported from their second frame (or frame 1).
        new = _EMPTY_TABLE
        if len(dets_left):
            dets_new = dets_left[det_scores.take(dets_left) >= cfg.new_track_thresh]
            if len(dets_new):
                new = self._new_tracks(dets_new, det_xyah, det_scores, det_cls, sel, frame)

        # 5. Lost tracks: the still-lost ones not too old, then the newly lost tracked ones.
        lost_rows = rows_left
        if n_lost:
            lost_old = pool_left[n_tracked:].nonzero()[0] + n_tracked
            lost_old = lost_old[frame - table[_LAST].take(lost_old) <= self._max_lost]
            lost_rows = np.concatenate((lost_old, rows_left))
        lost = table.take(lost_rows, 1)

        tracked = np.concatenate((matched, new), 1) if frame == 1 and new.shape[1] else matched
        unconfirmed = _EMPTY_TABLE if frame == 1 else new
        tracked_boxes = kf.xyxy(tracked)
        if len(lost_rows) and tracked.shape[1] + unconfirmed.shape[1]:
            tracked, unconfirmed, lost, tracked_boxes = self._remove_duplicates(
                tracked, unconfirmed, lost, tracked_boxes, track_boxes.take(lost_rows, 1)
            )
        self._table = np.concatenate((tracked, lost, unconfirmed), 1)
        self._n_tracked, self._n_lost = tracked.shape[1], lost.shape[1]
        return Tracks(
            tracked_boxes.T.astype(np.float32),
            tracked[_SCORE].astype(np.float32),
            tracked[_CLASS].astype(np.int64),
            tracked[_ID].astype(np.int64),
            tracked[_DET].astype(np.int64),
        )

    def _detections(
        self, boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray | None
    ) -> tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The usable detections, high-score ones first: input indices, how many are high, their scores,
        classes (float64), corner boxes (4, k) float32 and measurements xyah (4, k) float32."""
        b = np.asarray(boxes, dtype=np.float32)
        s = np.asarray(scores, dtype=np.float32)
        if b.shape != (len(s), 4):
            b = b.reshape(-1, 4)
            if len(b) != len(s):
                raise ValueError(f"{len(b)} boxes but {len(s)} scores")
        w = b[:, 2] - b[:, 0]
        h = b[:, 3] - b[:, 1]
        valid = np.minimum(w, h) > 0
        valid &= (w + h + s) < np.inf  # NaN and inf fail both tests
        high = s >= self._config.track_high_thresh
        high &= valid
        low = s > self._config.track_low_thresh
        low &= valid
        sel_high = high.nonzero()[0]
        sel_low = np.greater(low, high).nonzero()[0]  # low and not high
        sel = np.concatenate((sel_high, sel_low)) if len(sel_low) else sel_high
        det_scores = s.take(sel)
        if class_ids is None:
            det_cls = np.zeros(len(sel))
        else:
            cls = np.asarray(class_ids).reshape(-1)
            if len(cls) != len(s):
                raise ValueError(f"{len(s)} scores but {len(cls)} class ids")
            det_cls = cls.take(sel).astype(np.float64)
        # Same float32 arithmetic as Ultralytics (xyxy -> xywh -> tlwh -> xyah / xyxy), for bit-equal costs.
        corners = b.take(sel, 0).T
        size = corners[2:] - corners[:2]
        half = size / 2
        top_left = corners[:2] + corners[2:]
        top_left /= 2
        top_left -= half
        det_boxes = np.empty((4, len(sel)), dtype=np.float32)
        det_boxes[:2] = top_left
        np.add(top_left, size, out=det_boxes[2:])
        det_xyah = np.empty((4, len(sel)), dtype=np.float32)
        np.add(top_left, half, out=det_xyah[:2])
        np.divide(size[0], size[1], out=det_xyah[2])
        det_xyah[3] = size[1]
        return sel, len(sel_high), det_scores, det_cls, det_boxes, det_xyah

    def _cost(self, iou: np.ndarray, det_scores: np.ndarray) -> np.ndarray:
        """Association cost 1 - IoU, or 1 - IoU * score with ``fuse_score`` (Ultralytics' float32 arithmetic)."""
        cost = 1 - iou
        if self._config.fuse_score:
            cost = 1 - (1 - cost) * det_scores
        return cost

    def _new_tracks(
        self,
        dets: np.ndarray,
        det_xyah: np.ndarray,
        det_scores: np.ndarray,
        det_cls: np.ndarray,
        sel: np.ndarray,
        frame: int,
    ) -> np.ndarray:
        """Table columns for new tracks from detections ``dets``, IDs in detection order."""
        count = len(dets)
        if count == 0:
            return _EMPTY_TABLE
        new = np.empty((_ROWS, count))
        new[: kf.STATE_ROWS] = kf.initiate(det_xyah.take(dets, 1))
        new[_SCORE] = det_scores.take(dets)
        new[_CLASS] = det_cls.take(dets)
        new[_ID] = np.arange(self._next_id, self._next_id + count)
        new[_START] = new[_LAST] = frame
        new[_DET] = sel.take(dets)
        self._next_id += count
        return new

    def _remove_duplicates(
        self,
        tracked: np.ndarray,
        unconfirmed: np.ndarray,
        lost: np.ndarray,
        tracked_boxes: np.ndarray,
        lost_boxes: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Drop the younger of each tracked/lost pair with IoU above 0.85 (Ultralytics' duplicate rule).

        Tracked means reported and unconfirmed tracks alike. ``tracked_boxes`` (4, K) float64 are the reported
        tracks' boxes, ``lost_boxes`` (4, L) float32 the lost ones'. Returns the three groups and the boxes of the
        reported tracks kept.
        """
        n_reported = tracked.shape[1]
        if unconfirmed.shape[1]:
            active = np.concatenate((tracked, unconfirmed), 1)
            active_boxes = np.concatenate((tracked_boxes, kf.xyxy(unconfirmed)), 1)
        else:
            active, active_boxes = tracked, tracked_boxes
        iou = iou_matrix(active_boxes.astype(np.float32), lost_boxes)
        if self._config.class_aware:
            iou *= np.equal.outer(active[_CLASS], lost[_CLASS])
        pairs_active, pairs_lost = ((1 - iou) < _DUPLICATE_IOU_DISTANCE).nonzero()
        if len(pairs_active) == 0:
            return tracked, unconfirmed, lost, tracked_boxes
        age_active = (active[_LAST] - active[_START]).tolist()
        age_lost = (lost[_LAST] - lost[_START]).tolist()
        keep_active = np.ones(active.shape[1], dtype=bool)
        keep_lost = np.ones(lost.shape[1], dtype=bool)
        for a, b in zip(pairs_active.tolist(), pairs_lost.tolist()):
            if age_active[a] > age_lost[b]:
                keep_lost[b] = False
            else:
                keep_active[a] = False
        keep_reported = keep_active[:n_reported]
        return (
            tracked[:, keep_reported],
            unconfirmed[:, keep_active[n_reported:]],
            lost[:, keep_lost],
            tracked_boxes[:, keep_reported],
        )
