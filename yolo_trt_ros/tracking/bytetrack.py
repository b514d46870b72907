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

Design: tracks and detections are arrays with one row per track or detection, each one float64
array whose fields are named column views (``_TrackArrays``: Kalman mean and covariance, box, and
the detection last matched; ``_Detections``), so selecting or joining tracks is one numpy call,
and a frame is one fixed sequence of numpy operations over all rows, whatever their number: one
Kalman prediction and one correction for all tracks, in place on the track array
(``kalman_filter``, 8 x 8 matrices), one IoU matrix of every track with every detection
(``detection.boxes.iou``) that the three associations take their blocks from, one thresholded
optimal assignment per association (``matching``: ``scipy.optimize.linear_sum_assignment``, skipped
when no two candidate pairs share a track or a detection, where its answer is known), and one IoU
matrix for the duplicate check.

Speed (``bench/bench_tracker.py``, one 2-core run): a frame of MOT16-05 (~5 detections) takes
~0.14 ms, 2.7x less than Ultralytics' tracker (0.37 ms) but 4-5x more than the per-track Python
tracker this replaced (0.03 ms). At a few objects nearly all of it is the ~0.3-1 us fixed cost of
each of the ~170 numpy calls of a frame, whatever the array size (the two IoU matrices ~20%, the
Kalman filter and box conversions ~30%, reading the detections ~15%, the rest bookkeeping), so the
time grows slowly with the number of objects: faster than per-track Python from about 50 objects
on (1.6x at 200). Small next to inference either way.

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


class _Detections:
    """The usable detections of one frame: one row each of one float64 array, high-score rows
    first (each group in input order), the fields named column views."""

    __slots__ = ("data", "n_high")
    BOX = slice(0, 4)  # x1, y1, x2, y2
    SCORE, CLASS_ID, INDEX = 4, 5, 6  # class id, and position in update()'s input, as floats
    MATCHED = slice(4, 7)  # score, class id, index: what a track takes from its detection
    XYAH = slice(7, 11)  # the box as cx, cy, aspect ratio, height (Kalman measurement)
    WIDTH = 11

    def __init__(self, data: np.ndarray, n_high: int) -> None:
        self.data = data  # (M, WIDTH)
        self.n_high = n_high  # rows [0, n_high) are high-score

    def __len__(self) -> int:
        return len(self.data)

    @property
    def box(self) -> np.ndarray:
        return self.data[:, self.BOX]

    @property
    def score(self) -> np.ndarray:
        return self.data[:, self.SCORE]

    @property
    def class_id(self) -> np.ndarray:
        return self.data[:, self.CLASS_ID]


class _TrackArrays:
    """Tracks: one row each of one float64 array (integers are stored exactly, up to 2^53), the
    fields named column views, so that selecting or joining tracks is one numpy call."""

    __slots__ = ("data",)
    MEAN = slice(0, 8)  # Kalman mean: box cx, cy, a, h and its velocity
    COVARIANCE = slice(8, 72)  # Kalman covariance, 8 x 8 row by row
    BOX = slice(72, 76)  # x1, y1, x2, y2 of the mean (new track: its detection's box)
    # score, class and input index of the detection last matched, frame of that match, frame the
    # track was created, track ID (0 until the track is first reported)
    SCORE, CLASS_ID, DET_INDEX, LAST_FRAME, START_FRAME, TRACK_ID = range(76, 82)
    MATCHED = slice(76, 79)  # score, class id, det index: ``_Detections.MATCHED``
    WIDTH = 82

    def __init__(self, data: np.ndarray) -> None:
        self.data = data  # (N, WIDTH)

    @classmethod
    def empty(cls, n: int = 0) -> _TrackArrays:
        return cls(np.empty((n, cls.WIDTH)))

    def __len__(self) -> int:
        return len(self.data)

    def rows(self, rows: slice) -> _TrackArrays:
        """The tracks ``rows``, sharing this array's memory."""
        return _TrackArrays(self.data[rows])

    def take(self, rows: np.ndarray) -> _TrackArrays:
        return _TrackArrays(self.data.take(rows, axis=0))

    @property
    def mean(self) -> np.ndarray:
        return self.data[:, self.MEAN]

    @property
    def covariance(self) -> np.ndarray:
        """(N, 8, 8) view."""
        return self.data[:, self.COVARIANCE].reshape(-1, 8, 8)

    @property
    def box(self) -> np.ndarray:
        return self.data[:, self.BOX]

    @property
    def class_id(self) -> np.ndarray:
        return self.data[:, self.CLASS_ID]

    @property
    def last_frame(self) -> np.ndarray:
        return self.data[:, self.LAST_FRAME]

    @property
    def track_id(self) -> np.ndarray:
        return self.data[:, self.TRACK_ID]

    @property
    def age(self) -> np.ndarray:
        """(N,) frames from creation to the last match."""
        return self.data[:, self.LAST_FRAME] - self.data[:, self.START_FRAME]

    def start(self, dets: np.ndarray, frame: int) -> None:
        """Make these rows new tracks at the detections ``dets`` (rows of a ``_Detections``
        array), created in ``frame``, not numbered yet."""
        kf.initiate(dets[:, _Detections.XYAH], self.mean, self.covariance)
        data = self.data
        data[:, self.BOX] = dets[:, _Detections.BOX]
        data[:, self.MATCHED] = dets[:, _Detections.MATCHED]
        data[:, self.LAST_FRAME : self.TRACK_ID] = frame  # and START_FRAME
        data[:, self.TRACK_ID] = 0.0

    def predict(self, steps: int) -> None:
        """Advance the Kalman state by ``steps`` frame periods."""
        mean = self.mean
        kf.predict(mean, self.covariance, steps)
        xyah_to_xyxy(mean[:, :4], out=self.box)

    def correct(self, dets: np.ndarray, frame: int) -> None:
        """Kalman update with the matched detections ``dets`` (rows of a ``_Detections`` array),
        one per track, whose score, class and index the tracks take."""
        mean, data = self.mean, self.data
        kf.update(mean, self.covariance, dets[:, _Detections.XYAH])
        xyah_to_xyxy(mean[:, :4], out=data[:, self.BOX])
        data[:, self.MATCHED] = dets[:, _Detections.MATCHED]
        data[:, self.LAST_FRAME] = frame


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
        steps = self._advance(stamp)
        self._frame += steps
        if steps > self._max_lost:
            self._clear_tracks()
        dets = self._detections(boxes, scores, class_ids)
        self._predict(steps)
        matched, det_rows, unmatched, starts = self._associate(dets)
        lost = self._still_lost(unmatched)
        tracks = self._next_tracks(matched, det_rows, lost, starts, dets)
        # Rows of ``tracks``: tracked (matched now) | lost | new; the first frame reports its new
        # tracks at once (there are no others then).
        n_tracked = len(tracks) if self._frame == 1 else len(matched)
        self._number(tracks.data[:n_tracked, _TrackArrays.TRACK_ID])
        self._tracks, self._n_tracked, self._n_lost = self._remove_duplicates(
            tracks, n_tracked, len(lost)
        )
        reported = self._tracks.data[: self._n_tracked]
        ints = reported[:, _REPORTED_INTEGERS].T.astype(np.int64, order="C")
        return Tracks(
            reported[:, _TrackArrays.BOX].astype(np.float32),
            reported[:, _TrackArrays.SCORE].astype(np.float32),
            *ints,
        )

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
    ) -> _Detections:
        """The usable detections, high-score ones first, each group in input order.

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
        d = _Detections
        if not m:
            return _Detections(np.empty((0, d.WIDTH)), 0)
        data = np.empty((m, d.WIDTH))
        data[:, d.BOX] = b
        data[:, d.SCORE] = s
        if class_ids is None:
            data[:, d.CLASS_ID] = 0.0
        else:
            classes = np.asarray(class_ids).reshape(-1)
            if len(classes) != m:
                raise ValueError(f"{m} scores but {len(classes)} class ids")
            data[:, d.CLASS_ID] = classes.astype(np.int64, copy=False)
        score = data[:, d.SCORE]
        usable = np.isfinite(data[:, : d.SCORE + 1]).all(axis=1)  # box and score
        usable &= (data[:, 2:4] > data[:, 0:2]).all(axis=1)
        usable &= score > self._config.track_low_thresh
        high = usable & (score >= self._config.track_high_thresh)
        high_rows = high.nonzero()[0]
        rows = np.concatenate((high_rows, (usable ^ high).nonzero()[0]))
        data = data.take(rows, 0)
        data[:, d.INDEX] = rows
        xyxy_to_xyah(data[:, d.BOX], out=data[:, d.XYAH])
        return _Detections(data, len(high_rows))

    def _predict(self, steps: int) -> None:
        """Kalman prediction of the tracked and lost tracks, lost ones without height velocity (as
        Ultralytics). Unconfirmed tracks stay as started."""
        n_tracked, n_pool = self._n_tracked, self._n_tracked + self._n_lost
        if n_pool:
            pool = self._tracks.rows(slice(0, n_pool))
            pool.data[n_tracked:, 7] = 0.0  # mean vh of the lost tracks
            pool.predict(steps)

    def _associate(
        self, dets: _Detections
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """ByteTrack's three associations on one IoU matrix of every track with every detection.

        Returns the matched track rows and their detection rows (association 1, 2, 3 in turn),
        the tracked and lost tracks left unmatched, and the high-score detections left unmatched
        that score enough to start a track.
        """
        cfg, tracks = self._config, self._tracks
        n_tracked, n_pool, n_high = self._n_tracked, self._n_tracked + self._n_lost, dets.n_high
        score = dets.score
        # Rows: tracks (tracked | lost | unconfirmed); columns: detections (high | low score).
        overlap = self._iou(tracks.box, tracks.class_id, dets.box, dets.class_id)
        track_free = np.ones(len(tracks), bool)
        det_free = np.ones(n_high, bool)

        # 1. High-score detections vs tracked and lost tracks.
        t1, d1 = self._match(overlap[:n_pool, :n_high], score[:n_high], cfg.match_thresh)
        track_free[t1] = det_free[d1] = False
        # 2. Low-score detections vs the tracked tracks still free, IoU only.
        t2 = d2 = _NO_ROWS
        if n_tracked and n_high < len(dets):
            rows = track_free[:n_tracked].nonzero()[0]
            t2, d2 = self._match(overlap[rows, n_high:], None, _SECOND_MATCH_THRESH)
            t2, d2 = rows[t2], d2 + n_high
            track_free[t2] = False
        # 3. Unconfirmed tracks vs the high-score detections still free; unmatched, they end.
        t3 = d3 = _NO_ROWS
        if n_pool < len(tracks) and n_high:
            cols = det_free.nonzero()[0]
            t3, d3 = self._match(overlap[n_pool:, cols], score[cols], _UNCONFIRMED_MATCH_THRESH)
            t3, d3 = t3 + n_pool, cols[d3]
            det_free[d3] = False

        starts = (det_free & (score[:n_high] >= cfg.new_track_thresh)).nonzero()[0]
        unmatched = track_free[:n_pool].nonzero()[0]
        return np.concatenate((t1, t2, t3)), np.concatenate((d1, d2, d3)), unmatched, starts

    def _iou(
        self,
        boxes_a: np.ndarray,
        classes_a: np.ndarray,
        boxes_b: np.ndarray,
        classes_b: np.ndarray,
    ) -> np.ndarray:
        """IoU matrix of two box sets; with ``class_aware``, other classes do not overlap."""
        if not len(boxes_a) or not len(boxes_b):
            return np.zeros((len(boxes_a), len(boxes_b)))
        overlap = iou(boxes_a, boxes_b)
        if self._config.class_aware:
            overlap[classes_a[:, None] != classes_b] = 0.0
        return overlap

    def _match(
        self, overlap: np.ndarray, det_scores: np.ndarray | None, thresh: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Optimal matching of tracks (rows) and detections (columns) by their IoU matrix
        ``overlap``, at a cost below ``thresh``: 1 - IoU, or 1 - IoU * score with ``det_scores``
        when ``fuse_score`` is on. Returns the matched rows (ascending) and columns."""
        if not overlap.size:
            return _NO_ROWS, _NO_ROWS
        scores = det_scores if self._config.fuse_score else None
        return matching.linear_assignment(matching.iou_cost(overlap, scores), thresh)

    def _still_lost(self, unmatched: np.ndarray) -> np.ndarray:
        """The rows ``unmatched`` (tracked or lost tracks, matched in no association) that are
        still within the lost buffer."""
        last = self._tracks.data[:, _TrackArrays.LAST_FRAME].take(unmatched)
        return unmatched[last >= self._frame - self._max_lost]

    def _next_tracks(
        self,
        matched: np.ndarray,
        det_rows: np.ndarray,
        lost: np.ndarray,
        starts: np.ndarray,
        dets: _Detections,
    ) -> _TrackArrays:
        """The tracks after this frame, rows: the ``matched`` ones corrected with their detections
        ``det_rows``, the ``lost`` ones as predicted, and new tracks at the detections
        ``starts``."""
        n_matched, n_kept = len(matched), len(matched) + len(lost)
        tracks = _TrackArrays.empty(n_kept + len(starts))
        if n_kept:
            rows = np.concatenate((matched, lost))
            self._tracks.data.take(rows, 0, out=tracks.data[:n_kept])
        if n_matched:
            tracks.rows(slice(0, n_matched)).correct(dets.data.take(det_rows, 0), self._frame)
        if len(starts):
            tracks.rows(slice(n_kept, None)).start(dets.data.take(starts, 0), self._frame)
        return tracks

    def _number(self, track_ids: np.ndarray) -> None:
        """Give IDs to the tracks that have none (0: reported for the first time), in row order;
        ``track_ids`` is a view of their ID column."""
        unnumbered = (track_ids == 0.0).nonzero()[0]
        if len(unnumbered):
            track_ids[unnumbered] = np.arange(self._next_id, self._next_id + len(unnumbered))
            self._next_id += len(unnumbered)

    def _remove_duplicates(
        self, tracks: _TrackArrays, n_tracked: int, n_lost: int
    ) -> tuple[_TrackArrays, int, int]:
        """Ultralytics' duplicate rule: of an active (tracked or new) and a lost track with IoU
        above 0.85, the one followed for fewer frames goes (the active one on a tie). Returns the
        tracks left and how many of them are tracked and lost."""
        lost = slice(n_tracked, n_tracked + n_lost)
        if not n_lost or n_lost == len(tracks):
            return tracks, n_tracked, n_lost
        # IoU of every track with the lost ones; lost with lost is not a duplicate.
        overlap = self._iou(tracks.box, tracks.class_id, tracks.box[lost], tracks.class_id[lost])
        overlap[lost] = 0.0
        a, b = (1 - overlap < _DUPLICATE_IOU_DISTANCE).nonzero()
        if not len(a):
            return tracks, n_tracked, n_lost
        b += n_tracked
        age = tracks.age
        active_older = age[a] > age[b]
        keep = np.ones(len(tracks), bool)
        keep[a[~active_older]] = keep[b[active_older]] = False
        n_tracked, n_lost = int(keep[:n_tracked].sum()), int(keep[lost].sum())
        return tracks.take(keep.nonzero()[0]), n_tracked, n_lost


_NO_ROWS = np.zeros(0, np.int64)
# Integer fields of the reported tracks, in the order of ``Tracks``.
_REPORTED_INTEGERS = [_TrackArrays.CLASS_ID, _TrackArrays.TRACK_ID, _TrackArrays.DET_INDEX]
