"""ByteTrack multi-object tracker (Zhang et al., ECCV 2022).

Behaves as Ultralytics' ``BYTETracker`` (8.4) with the same parameters: a constant-velocity Kalman
filter per track, a first association of the high-score detections with all tracked and lost tracks
(IoU, optionally score-fused), a second association of the low-score detections with the still
unmatched tracked tracks (IoU only), unconfirmed tracks that need a second detection to be
reported, new tracks from unmatched high-score detections, lost tracks kept for ``max_frames_lost``
frames, and tracked/lost duplicates removed. With the same input its output equals Ultralytics'
frame by frame (``test/tracking/test_bytetrack.py`` checks golden files). Differences, all
deliberate: header-stamp time (dropped frames), a lost buffer scaled by ``frame_rate`` (as
ByteTrack; Ultralytics 8.4 dropped the scaling), the rejection of non-finite input, IoU/cost
arithmetic in float64 instead of float32, and the option of class-aware association.

Classes: by default association ignores classes, as Ultralytics does, so a track survives a
detector that flips an object's class from frame to frame (car/truck); a track reports the class of
the detection it matched in this frame. ``class_aware=True`` matches detections only to tracks of
their class: a class flip then ends the track and starts a new ID (useful when objects of different
classes overlap, at the cost of those flips).

Design: tracks and detections are arrays with one row per track or detection (``_TrackArrays``:
Kalman mean and covariance, box, and the detection last matched; ``_Detections``), and a frame is
one fixed sequence of numpy operations over all rows, whatever their number: one Kalman prediction
and one correction for all tracks (``kalman_filter``, 8 x 8 matrices), one IoU matrix of every
track with every detection (``detection.boxes.iou``) that the three associations take their blocks
from, one ``scipy.optimize.linear_sum_assignment`` per association (``matching``), and one IoU
matrix for the duplicate check. Speed: from about 50 objects on, the vectorised arithmetic makes it
faster than per-track Python; at a few objects the ~1 us that every numpy call costs dominates, and
a frame takes ~0.18 ms (MOT16-05, ~5 detections), small next to inference (BENCHMARKS.md).

Time: ``update(..., stamp=t)`` counts ``round((t - t_prev) * frame_rate)`` frame periods since the
previous frame, so the filter predicts over dropped frames and lost tracks age in time. A missing
or non-finite stamp, and a stamp not later than the previous one (repeated, out of order, or a
driver that leaves stamps at zero), count as one period; a stamp that goes back starts the count
from it. A gap longer than the lost-track buffer ends every track (as ByteTrack would have dropped
them by then); IDs keep counting. ``reset()`` clears the tracks and numbering.

IDs: a track is numbered when it is first reported (confirmed), so one-frame blips that never
become tracks use up no IDs and the numbers a robot sees stay small and consecutive. Ultralytics
numbers tracks at creation; the partition of detections into tracks is the same, only the numbers
differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from yolo_trt_ros.detection.boxes import iou, xyah_to_xyxy, xyxy_to_xyah
from yolo_trt_ros.tracking import kalman_filter as kf
from yolo_trt_ros.tracking import matching

# Thresholds fixed in Ultralytics: low-score detections vs the remaining tracked tracks (IoU only),
# unconfirmed tracks vs the remaining high-score detections, and the IoU distance (1 - IoU) below
# which an active and a lost track are one object.
_SECOND_MATCH_THRESH = 0.5
_UNCONFIRMED_MATCH_THRESH = 0.7
_DUPLICATE_IOU_DISTANCE = 0.15


@dataclass(frozen=True)
class TrackerConfig:
    """ByteTrack parameters. Defaults: Ultralytics' ``bytetrack.yaml``, and ``frame_rate`` 30."""

    # detections scoring at least this enter the first association
    track_high_thresh: float = 0.25
    # detections scoring above this (and below high) enter the second one
    track_low_thresh: float = 0.1
    # an unmatched high-score detection scoring at least this starts a track
    new_track_thresh: float = 0.25
    # first association: pairs need a cost (1 - IoU, or 1 - IoU * score) below this
    match_thresh: float = 0.8
    # frames a lost track is kept at 30 fps; scaled by frame_rate
    track_buffer: int = 30
    # nominal camera rate: one frame period is 1 / frame_rate seconds
    frame_rate: float = 30.0
    # first association cost 1 - IoU * score instead of 1 - IoU
    fuse_score: bool = True
    # match detections only to tracks of their class (a class flip starts a new ID)
    class_aware: bool = False

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


@dataclass(slots=True)
class Tracks:
    """The confirmed tracks of one frame, each matched to a detection of that frame."""

    boxes: np.ndarray  # (K, 4) float32 x1, y1, x2, y2: the Kalman-filtered box
    scores: np.ndarray  # (K,) float32: score of the matched detection
    class_ids: np.ndarray  # (K,) int64
    track_ids: np.ndarray  # (K,) int64, from 1, unique and fixed for a track's life
    det_indices: np.ndarray  # (K,) int64: index of the matched detection in update()'s input

    def __len__(self) -> int:
        return len(self.track_ids)


@dataclass(slots=True)
class _Detections:
    """The usable detections of one frame, one row each."""

    box: np.ndarray  # (M, 4) float64 x1, y1, x2, y2
    xyah: np.ndarray  # (M, 4) float64 the box as cx, cy, aspect ratio, height (Kalman measurement)
    score: np.ndarray  # (M,) float64
    class_id: np.ndarray  # (M,) int64
    index: np.ndarray  # (M,) int64: position in update()'s input

    def __len__(self) -> int:
        return len(self.score)

    def take(self, rows: np.ndarray) -> _Detections:
        return _Detections(self.box[rows], self.xyah[rows], self.score[rows], self.class_id[rows],
                           self.index[rows])


@dataclass(slots=True)
class _TrackArrays:
    """Tracks, one row each: the Kalman state, its box, and the detection last matched."""

    mean: np.ndarray  # (N, 8) float64 Kalman mean: box cx, cy, a, h and its velocity
    covariance: np.ndarray  # (N, 8, 8) float64 Kalman covariance
    box: np.ndarray  # (N, 4) float64 x1, y1, x2, y2 of the mean (new track: its detection's box)
    score: np.ndarray  # (N,) float64: score of the detection last matched
    class_id: np.ndarray  # (N,) int64: class of that detection
    det_index: np.ndarray  # (N,) int64: its position in update()'s input
    last_frame: np.ndarray  # (N,) int64: frame of that match
    start_frame: np.ndarray  # (N,) int64: frame the track was created
    track_id: np.ndarray  # (N,) int64: 0 until the track is first reported

    @classmethod
    def empty(cls) -> _TrackArrays:
        ints = np.zeros(0, np.int64)
        return cls(np.zeros((0, 8)), np.zeros((0, 8, 8)), np.zeros((0, 4)), np.zeros(0),
                   ints, ints, ints, ints, ints)

    @classmethod
    def start(cls, dets: _Detections, frame: int) -> _TrackArrays:
        """New tracks at the detections ``dets``, created in ``frame``, not numbered yet."""
        mean, covariance = kf.initiate(dets.xyah)
        frames = np.full(len(dets), frame, np.int64)
        return cls(mean, covariance, dets.box, dets.score, dets.class_id, dets.index, frames,
                   frames.copy(), np.zeros(len(dets), np.int64))

    @classmethod
    def concat(cls, *parts: _TrackArrays) -> _TrackArrays:
        columns = zip(*(part.arrays() for part in parts), strict=True)
        return cls(*(np.concatenate(column) for column in columns))

    def __len__(self) -> int:
        return len(self.score)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The fields, in their order."""
        return (self.mean, self.covariance, self.box, self.score, self.class_id, self.det_index,
                self.last_frame, self.start_frame, self.track_id)

    def take(self, rows: np.ndarray) -> _TrackArrays:
        return _TrackArrays(*(array[rows] for array in self.arrays()))

    @property
    def age(self) -> np.ndarray:
        """(N,) frames from creation to the last match."""
        return self.last_frame - self.start_frame

    def predict(self, rows: slice, steps: int) -> None:
        """Advance the Kalman state of tracks ``rows`` by ``steps`` frame periods."""
        mean, self.covariance[rows] = kf.predict(self.mean[rows], self.covariance[rows], steps)
        self.mean[rows], self.box[rows] = mean, xyah_to_xyxy(mean[:, :4])

    def correct(self, dets: _Detections, frame: int) -> None:
        """Kalman update with the matched detections ``dets``, one per track, whose score, class
        and index the tracks take."""
        self.mean, self.covariance = kf.update(self.mean, self.covariance, dets.xyah)
        self.box = xyah_to_xyxy(self.mean[:, :4])
        self.score, self.class_id, self.det_index = dets.score, dets.class_id, dets.index
        self.last_frame = np.full(len(dets), frame, np.int64)


class ByteTracker:
    """ByteTrack over per-frame detections (the module docstring gives the algorithm)."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.set_config(config or TrackerConfig())
        self.reset()

    @property
    def config(self) -> TrackerConfig:
        return self._config

    def set_config(self, config: TrackerConfig) -> None:
        """Change parameters; existing tracks are kept and follow them from the next frame on."""
        self._config = config
        self._max_lost = config.max_frames_lost

    def reset(self) -> None:
        """Forget every track and restart track IDs at 1 and the frame count at 0."""
        self._clear_tracks()
        self._frame = 0
        self._next_id = 1
        self._last_stamp: float | None = None

    def _clear_tracks(self) -> None:
        # Rows: tracked (reported last frame) | lost | unconfirmed (started last frame).
        self._tracks = _TrackArrays.empty()
        self._n_tracked = self._n_lost = 0

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

    @property
    def ids_issued(self) -> int:
        """Track IDs issued since the last reset: the highest ID reported so far (IDs are issued
        when reported)."""
        return self._next_id - 1

    def update(
        self,
        boxes: ArrayLike,
        scores: ArrayLike,
        class_ids: ArrayLike | None = None,
        stamp: float | None = None,
    ) -> Tracks:
        """Advance to the next frame and associate its detections; returns the confirmed tracks.

        ``boxes`` (N, 4) x1, y1, x2, y2; ``scores`` (N,); ``class_ids`` (N,) integers (None: all
        0); ``stamp`` the frame time in seconds (the image header stamp) or None to count one
        frame. Detections with a non-finite coordinate or score, or an empty box, are ignored.
        """
        cfg = self._config
        steps = self._advance(stamp)
        self._frame += steps
        if steps > self._max_lost:
            self._clear_tracks()
        dets, n_high = self._detections(boxes, scores, class_ids)
        self._predict(steps)
        tracks, n_tracked, n_pool = self._tracks, self._n_tracked, self._n_tracked + self._n_lost
        # Rows: tracks (tracked | lost | unconfirmed); columns: detections (high | low score).
        overlap = self._iou(tracks.box, tracks.class_id, dets.box, dets.class_id)
        track_free = np.ones(len(tracks), bool)
        det_free = np.ones(len(dets), bool)

        # 1. High-score detections vs tracked and lost tracks.
        t1, d1 = self._match(overlap[:n_pool, :n_high], dets.score[:n_high], cfg.match_thresh)
        track_free[t1] = det_free[d1] = False
        # 2. Low-score detections vs the tracked tracks still free, IoU only.
        rows = track_free[:n_tracked].nonzero()[0]
        t2, d2 = self._match(overlap[rows, n_high:], None, _SECOND_MATCH_THRESH)
        t2, d2 = rows[t2], d2 + n_high
        track_free[t2] = False
        # 3. Unconfirmed tracks vs the high-score detections still free; unmatched, they end.
        cols = det_free[:n_high].nonzero()[0]
        t3, d3 = self._match(overlap[n_pool:, cols], dets.score[cols], _UNCONFIRMED_MATCH_THRESH)
        t3, d3 = t3 + n_pool, cols[d3]
        det_free[d3] = False

        tracked = tracks.take(np.concatenate((t1, t2, t3)))
        if len(tracked):
            tracked.correct(dets.take(np.concatenate((d1, d2, d3))), self._frame)
        new = self._new_tracks(dets, det_free[:n_high])
        if self._frame == 1:  # the first frame reports its new tracks at once
            tracked, new = new, _TrackArrays.empty()
        self._number(tracked)
        lost = self._lost(track_free[:n_pool].nonzero()[0])
        tracked, lost, new = self._remove_duplicates(tracked, lost, new)

        self._tracks = _TrackArrays.concat(tracked, lost, new)
        self._n_tracked, self._n_lost = len(tracked), len(lost)
        return Tracks(tracked.box.astype(np.float32), tracked.score.astype(np.float32),
                      tracked.class_id, tracked.track_id, tracked.det_index)

    def _advance(self, stamp: float | None) -> int:
        """Frame periods since the previous update (the time rule of the module docstring)."""
        if stamp is None or not math.isfinite(stamp):
            return 1
        last, self._last_stamp = self._last_stamp, stamp
        if last is None or stamp <= last:
            return 1
        return max(1, round((stamp - last) * self._config.frame_rate))

    def _detections(
        self, boxes: ArrayLike, scores: ArrayLike, class_ids: ArrayLike | None
    ) -> tuple[_Detections, int]:
        """The usable detections, high-score ones first, each group in input order, and how many
        are high-score.

        Unusable: a score not above ``track_low_thresh``, a non-finite coordinate or score, or an
        empty box. Boxes and scores are taken as float32 (as Ultralytics' tracker takes them), then
        computed with in float64.
        """
        b = np.asarray(boxes, np.float32)
        s = np.asarray(scores, np.float32)
        m = len(s)
        if b.shape != (m, 4):
            b = b.reshape(-1, 4)
            if len(b) != m:
                raise ValueError(f"{len(b)} boxes but {m} scores")
        if class_ids is None:
            classes = np.zeros(m, np.int64)
        else:
            classes = np.asarray(class_ids).reshape(-1).astype(np.int64)
            if len(classes) != m:
                raise ValueError(f"{m} scores but {len(classes)} class ids")
        b, s = b.astype(np.float64), s.astype(np.float64)
        usable = np.isfinite(b).all(axis=1) & np.isfinite(s) & (s > self._config.track_low_thresh)
        usable &= (b[:, 2:] > b[:, :2]).all(axis=1)
        high = usable & (s >= self._config.track_high_thresh)
        rows = np.concatenate((high.nonzero()[0], (usable ^ high).nonzero()[0]))
        b = b[rows]
        return _Detections(b, xyxy_to_xyah(b), s[rows], classes[rows], rows), int(high.sum())

    def _predict(self, steps: int) -> None:
        """Kalman prediction of the tracked and lost tracks, lost ones without height velocity (as
        Ultralytics). Unconfirmed tracks stay as started."""
        tracks, n_tracked, n_pool = self._tracks, self._n_tracked, self._n_tracked + self._n_lost
        if n_pool:
            tracks.mean[n_tracked:n_pool, 7] = 0.0
            tracks.predict(slice(0, n_pool), steps)

    def _iou(self, boxes_a: np.ndarray, classes_a: np.ndarray, boxes_b: np.ndarray,
             classes_b: np.ndarray) -> np.ndarray:
        """IoU matrix of two box sets; with ``class_aware``, other classes do not overlap."""
        overlap = iou(boxes_a, boxes_b)
        if self._config.class_aware:
            overlap[classes_a[:, None] != classes_b] = 0.0
        return overlap

    def _match(self, overlap: np.ndarray, det_scores: np.ndarray | None,
               thresh: float) -> tuple[np.ndarray, np.ndarray]:
        """Optimal matching of tracks (rows) and detections (columns) by their IoU matrix
        ``overlap``, at a cost below ``thresh``: 1 - IoU, or 1 - IoU * score with ``det_scores``
        when ``fuse_score`` is on. Returns the matched rows (ascending) and columns."""
        if not overlap.size:
            return _NO_ROWS, _NO_ROWS
        scores = det_scores if self._config.fuse_score else None
        return matching.linear_assignment(matching.iou_cost(overlap, scores), thresh)

    def _new_tracks(self, dets: _Detections, free: np.ndarray) -> _TrackArrays:
        """Tracks started at the detections ``free`` (a mask of the first ones) that score at least
        ``new_track_thresh``."""
        starts = (free & (dets.score[: len(free)] >= self._config.new_track_thresh)).nonzero()[0]
        if not len(starts):
            return _TrackArrays.empty()
        return _TrackArrays.start(dets.take(starts), self._frame)

    def _number(self, tracks: _TrackArrays) -> None:
        """Give IDs to the tracks that have none (reported for the first time), in row order."""
        unnumbered = (tracks.track_id == 0).nonzero()[0]
        tracks.track_id[unnumbered] = np.arange(self._next_id, self._next_id + len(unnumbered))
        self._next_id += len(unnumbered)

    def _lost(self, unmatched: np.ndarray) -> _TrackArrays:
        """The tracks ``unmatched`` (tracked or lost, matched in no association) that are still
        within the lost buffer."""
        within = self._tracks.last_frame[unmatched] >= self._frame - self._max_lost
        return self._tracks.take(unmatched[within])

    def _remove_duplicates(
        self, tracked: _TrackArrays, lost: _TrackArrays, new: _TrackArrays
    ) -> tuple[_TrackArrays, _TrackArrays, _TrackArrays]:
        """Ultralytics' duplicate rule: of an active (tracked or new) and a lost track with IoU
        above 0.85, the one followed for fewer frames goes (the active one on a tie)."""
        if not len(lost) or not (len(tracked) or len(new)):
            return tracked, lost, new
        active_box = np.concatenate((tracked.box, new.box))
        active_class = np.concatenate((tracked.class_id, new.class_id))
        overlap = self._iou(active_box, active_class, lost.box, lost.class_id)
        a, b = (1 - overlap < _DUPLICATE_IOU_DISTANCE).nonzero()
        if not len(a):
            return tracked, lost, new
        active_older = np.concatenate((tracked.age, new.age))[a] > lost.age[b]
        keep_active = np.ones(len(active_box), bool)
        keep_active[a[~active_older]] = False
        keep_lost = np.ones(len(lost), bool)
        keep_lost[b[active_older]] = False
        n = len(tracked)
        return (tracked.take(keep_active[:n].nonzero()[0]), lost.take(keep_lost.nonzero()[0]),
                new.take(keep_active[n:].nonzero()[0]))


_NO_ROWS = np.zeros(0, np.int64)
