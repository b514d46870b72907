"""ByteTrack multi-object tracker (Zhang et al., ECCV 2022), vectorized over tracks.

Behaves as Ultralytics' ``BYTETracker`` (8.4) with the same parameters: a constant-velocity Kalman filter per track,
a first association of the high-score detections with all tracked and lost tracks (IoU, optionally score-fused), a
second association of the low-score detections with the still unmatched tracked tracks (IoU only), unconfirmed
tracks that need a second detection to be reported, new tracks from unmatched high-score detections, lost tracks
kept for ``max_frames_lost`` frames, and tracked/lost duplicates removed. With the same input and
``class_aware=False`` (or one class) its output equals Ultralytics' frame by frame (``test/test_bytetrack.py`` checks
golden files). Differences, all deliberate: class-aware association (on by default: a track keeps its class),
header-stamp time (dropped frames), a lost buffer scaled by ``frame_rate`` (as ByteTrack; Ultralytics 8.4 dropped
the scaling), the rejection of non-finite input, and IoU/cost arithmetic in float64 instead of float32.

Speed: all track state lives in one array (structure of arrays: one row per quantity, one column per track), so a
frame costs a fixed number of numpy calls whatever the track count, and those calls, not the arithmetic, are the
cost at typical sizes (a call on a few numbers takes ~0.5 us). So the Kalman prediction and the box corners are one
matrix product each, IoU is computed once for all three associations (small problems gather pairs instead of
broadcasting; the class comparison is skipped while only one class has been seen), detections of small frames and
the association bookkeeping are plain Python, and the assignment solver only runs when candidates conflict.

Time: ``update(..., stamp=t)`` counts ``round((t - t_prev) * frame_rate)`` frame periods since the previous frame,
so the filter predicts over dropped frames and lost tracks age in time. A missing or non-finite stamp, and a stamp
not later than the previous one (repeated, out of order, or a driver that leaves stamps at zero), count as one
period; a stamp that goes back starts the count from it. A gap longer than the lost-track buffer ends every track
(as ByteTrack would have dropped them by then); IDs keep counting. ``reset()`` clears the tracks and numbering.

IDs: a track is numbered when it is first reported (confirmed), so one-frame blips that never become tracks use up no
IDs and the numbers a robot sees stay small and consecutive. Ultralytics numbers tracks at creation; the partition of
detections into tracks is the same, only the numbers differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from . import kalman_filter as kf
from .matching import BOX_ROWS, linear_assignment, overlaps

# Rows of the track table (one column per track): the Kalman state, then the detection last matched (score, frame,
# input index), start frame and ID, then the box (x1, y1, x2, y2, area: matching.BOX_ROWS) and class. Detections
# are prepared in the same layout, so matching one to a track copies rows _SCORE.._DET (and _CLASS), a new track is
# a detection column, and IoU reads tracks and detections alike.
_START, _ID, _SCORE, _LAST, _DET = range(kf.STATE_ROWS, kf.STATE_ROWS + 5)
_BOX = slice(kf.STATE_ROWS + 5, kf.STATE_ROWS + 5 + BOX_ROWS)
_CLASS = _BOX.stop
_ROWS = _CLASS + 1
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


_EMPTY_TABLE = np.empty((_ROWS, 0))


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
        # Classes of the detections since the reset, collected until there are two: with a single class,
        # class-aware IoU equals plain IoU and skips the class comparison.
        self._classes: set[float] = set()

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
        """Track IDs issued since the last reset: the highest ID reported so far (IDs are issued when reported)."""
        return self._next_id - 1

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
        boxes: ArrayLike,
        scores: ArrayLike,
        class_ids: ArrayLike | None = None,
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
        table, n_tracked, n_lost = self._table, self._n_tracked, self._n_lost
        if steps > self._max_lost:
            table, n_tracked, n_lost = _EMPTY_TABLE, 0, 0
        n_pool = n_tracked + n_lost
        n = table.shape[1]
        dets, n_high = self._detections(boxes, scores, class_ids, frame)
        n_det = dets.shape[1]

        # Predict tracked and lost tracks (lost ones without height velocity); unconfirmed ones stay as created.
        if n_pool:
            if n_lost:
                table[_VH, n_tracked:n_pool] = 0.0
            kf.predict(table[: kf.STATE_ROWS, :n_pool], steps)
            _set_boxes(table[:, :n_pool])
        # Overlapping (track, detection, IoU), once for all three associations; every other pair has IoU 0.
        pairs = overlaps(table[_BOX.start :], dets[_BOX.start :], self._class_aware) if n and n_det else []
        det_scores = dets[_SCORE].tolist()
        fuse = cfg.fuse_score
        # Pool tracks not (yet) matched, lost ones only while within the buffer.
        oldest = frame - self._max_lost
        left = [last >= oldest for last in table[_LAST, :n_pool].tolist()]

        # 1. High-score detections vs tracked + lost tracks.
        rows: list[int] = []  # matched tracks (table columns) and their detections
        dets_matched: list[int] = []
        if n_pool and n_high:
            costs = [(t, d, 1 - iou * det_scores[d] if fuse else 1 - iou)
                     for t, d, iou in pairs if t < n_pool and d < n_high]
            rows, dets_matched = linear_assignment(costs, (n_pool, n_high), cfg.match_thresh)
            for r in rows:
                left[r] = False
        taken = set(dets_matched)
        dets_left = [d for d in range(n_high) if d not in taken]

        # 2. Low-score detections vs the tracked tracks still unmatched (IoU only); the rest become lost.
        if n_det > n_high and n_tracked:
            rows_left = {t: i for i, t in enumerate(t for t in range(n_tracked) if left[t])}
            if rows_left:
                costs = [(rows_left[t], d - n_high, 1 - iou) for t, d, iou in pairs if t in rows_left and d >= n_high]
                r2, d2 = linear_assignment(costs, (len(rows_left), n_det - n_high), _SECOND_MATCH_THRESH)
                tracks_left = list(rows_left)
                for r, d in zip(r2, d2):
                    left[tracks_left[r]] = False
                    rows.append(tracks_left[r])
                    dets_matched.append(d + n_high)

        # 3. Unconfirmed tracks vs the high-score detections still unmatched; unmatched unconfirmed ones end.
        confirmed_now = False  # an unconfirmed track was matched: it gets its ID below
        if n > n_pool and dets_left:
            cols_left = {d: j for j, d in enumerate(dets_left)}
            costs = [(t - n_pool, cols_left[d], 1 - iou * det_scores[d] if fuse else 1 - iou)
                     for t, d, iou in pairs if t >= n_pool and d in cols_left]
            r3, d3 = linear_assignment(costs, (n - n_pool, len(dets_left)), _UNCONFIRMED_MATCH_THRESH)
            if r3:
                confirmed_now = True
                rows += [r + n_pool for r in r3]
                new_matches = [dets_left[d] for d in d3]
                dets_matched += new_matches
                taken = set(new_matches)
                dets_left = [d for d in dets_left if d not in taken]

        # Correct every matched track at once.
        tracked = table.take(rows, 1)
        if rows:
            measured = dets.take(dets_matched, 1)
            kf.update(tracked[: kf.STATE_ROWS], measured[kf.POS])
            tracked[_SCORE : _DET + 1] = measured[_SCORE : _DET + 1]
            if not cfg.class_aware:
                tracked[_CLASS] = measured[_CLASS]
            _set_boxes(tracked)

        # 4. New tracks from the remaining high-score detections; reported from their second frame (or frame 1).
        new = _EMPTY_TABLE
        if dets_left:
            dets_left = [d for d in dets_left if det_scores[d] >= cfg.new_track_thresh]
            if dets_left:
                new = dets.take(dets_left, 1)
                kf.initiate(new[: kf.STATE_ROWS])
                new[_START] = frame
                new[_ID] = 0  # numbered when first reported, so tracks that never are use up no IDs
        if frame == 1 and new.shape[1]:
            tracked, new = np.concatenate((tracked, new), 1), _EMPTY_TABLE
            confirmed_now = True
        if confirmed_now:
            unnumbered = np.flatnonzero(tracked[_ID] == 0)
            tracked[_ID, unnumbered] = np.arange(self._next_id, self._next_id + len(unnumbered))
            self._next_id += len(unnumbered)

        # 5. Lost tracks: unmatched pool tracks within the buffer; then tracked/lost duplicates go.
        lost = table.take([r for r, unmatched in enumerate(left) if unmatched], 1)
        if lost.shape[1] and tracked.shape[1] + new.shape[1]:
            tracked, new, lost = self._remove_duplicates(tracked, new, lost)
        self._table = np.concatenate((tracked, lost, new), 1)
        self._n_tracked, self._n_lost = tracked.shape[1], lost.shape[1]
        ints = tracked[_ID : _CLASS + 1].astype(np.int64)
        return Tracks(tracked[_BOX.start : _BOX.start + 4].T.astype(np.float32), tracked[_SCORE].astype(np.float32),
                      ints[_CLASS - _ID], ints[0], ints[_DET - _ID])

    def _detections(
        self, boxes: ArrayLike, scores: ArrayLike, class_ids: ArrayLike | None, frame: int
    ) -> tuple[np.ndarray, int]:
        """The usable detections, high-score ones first, as track-table columns (box as Kalman measurement, zero
        velocity, score, frame, input index, corners, area, class), and how many are high-score."""
        b = np.asarray(boxes, dtype=np.float32)
        s = np.asarray(scores, dtype=np.float32)
        m = len(s)
        if b.shape != (m, 4):
            b = b.reshape(-1, 4)
            if len(b) != m:
                raise ValueError(f"{len(b)} boxes but {m} scores")
        if class_ids is not None:
            cls = np.asarray(class_ids).reshape(-1)
            if len(cls) != m:
                raise ValueError(f"{m} scores but {len(cls)} class ids")
        cfg = self._config
        if m <= _PYTHON_SELECT_MAX:
            classes = cls.tolist() if class_ids is not None else [0] * m
            if len(self._classes) < 2:
                self._classes.update(classes)
            return _detections_small(b, s, classes, cfg, frame)
        if len(self._classes) < 2:
            self._classes.update(np.unique(cls).tolist() if class_ids is not None else [0])
        sel, n_high = _select(b, s, cfg.track_high_thresh, cfg.track_low_thresh)
        k = len(sel)
        dets = np.zeros((_ROWS, k))
        if k == 0:
            return dets, 0
        box = dets[_BOX]
        box[:4] = b.take(sel, 0).T
        size = dets[2:4]  # w, h; row 2 becomes the aspect ratio w / h below
        np.subtract(box[2:4], box[:2], out=size)
        np.multiply(size[0], size[1], out=box[4])  # area
        np.add(box[:2], box[2:4], out=dets[0:2])
        dets[0:2] *= 0.5  # cx, cy
        dets[2] /= dets[3]
        dets[_SCORE] = s.take(sel)
        dets[_LAST] = frame
        dets[_DET] = sel
        if class_ids is not None:
            dets[_CLASS] = cls.take(sel)
        return dets, n_high

    @property
    def _class_aware(self) -> bool:
        """Whether IoU must compare classes: class-aware association and more than one class seen."""
        return self._config.class_aware and len(self._classes) > 1

    def _remove_duplicates(
        self, tracked: np.ndarray, new: np.ndarray, lost: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Drop the younger of each active/lost pair with IoU above 0.85 (Ultralytics' duplicate rule).

        Active means reported (``tracked``) and new unreported tracks alike. Returns the three groups kept.
        """
        n_reported = tracked.shape[1]
        active = np.concatenate((tracked, new), 1) if new.shape[1] else tracked
        pairs = [(a, b) for a, b, iou in overlaps(active[_BOX.start :], lost[_BOX.start :], self._class_aware)
                 if 1 - iou < _DUPLICATE_IOU_DISTANCE]
        if not pairs:
            return tracked, new, lost
        age_active = (active[_LAST] - active[_START]).tolist()
        age_lost = (lost[_LAST] - lost[_START]).tolist()
        keep_active = np.ones(active.shape[1], dtype=bool)
        keep_lost = np.ones(lost.shape[1], dtype=bool)
        for a, b in pairs:
            if age_active[a] > age_lost[b]:
                keep_lost[b] = False
            else:
                keep_active[a] = False
        return tracked[:, keep_active[:n_reported]], new[:, keep_active[n_reported:]], lost[:, keep_lost]


_PYTHON_SELECT_MAX = 24  # up to this many detections, preparing them in plain Python is cheaper than numpy
_DET_ROW_COUNT = 4 + _CLASS + 1 - _SCORE  # numbers a detection fills in: Kalman mean, then _SCORE to _CLASS


def _detections_small(
    boxes: np.ndarray, scores: np.ndarray, classes: list[float], cfg: TrackerConfig, frame: int
) -> tuple[np.ndarray, int]:
    """``ByteTracker._detections`` for a few detections, in plain Python: the same selection and the same float64
    arithmetic (cx, cy, a, h, corners, area) as ``_select`` and the numpy path, a handful of numpy calls in all."""
    high: list[float] = []  # one detection's row after another (flat: cheaper to convert)
    low: list[float] = []
    for i, ((x1, y1, x2, y2), s) in enumerate(zip(boxes.tolist(), scores.tolist())):
        # every comparison with NaN is False; x2 - x1 + ... is inf or NaN for any infinite input
        if s > cfg.track_low_thresh and x2 > x1 and y2 > y1 and x2 - x1 + y2 - y1 + s < math.inf:
            w, h = x2 - x1, y2 - y1
            (high if s >= cfg.track_high_thresh else low).extend((
                (x1 + x2) * 0.5, (y1 + y2) * 0.5, w / h, h, s, frame, i, x1, y1, x2, y2, w * h, classes[i]
            ))
    k = (len(high) + len(low)) // _DET_ROW_COUNT
    dets = np.zeros((_ROWS, k))
    if k:
        # rows in the order of the table: Kalman mean (0-3), then _SCORE, _LAST, _DET, _BOX, _CLASS (contiguous)
        columns = np.array(high + low, dtype=np.float64).reshape(k, _DET_ROW_COUNT).T
        dets[kf.POS] = columns[:4]
        dets[_SCORE : _CLASS + 1] = columns[4:]
    return dets, len(high) // _DET_ROW_COUNT


def _select(boxes: np.ndarray, scores: np.ndarray, high_thresh: float, low_thresh: float) -> tuple[np.ndarray, int]:
    """Indices of the usable detections, high-score (>= high_thresh) first then low-score (> low_thresh), each in
    input order, and how many are high-score. Unusable: a non-finite coordinate or score, or an empty box."""
    with np.errstate(invalid="ignore"):  # a faulty model's inf boxes: inf - inf
        size = boxes[:, 2:] - boxes[:, :2]
        valid = np.minimum(size[:, 0], size[:, 1]) > 0
        valid &= (size[:, 0] + size[:, 1] + scores) < np.inf  # NaN and inf fail both tests
    high_mask = scores >= high_thresh
    high_mask &= valid
    low_mask = scores > low_thresh
    low_mask &= valid
    sel_high = high_mask.nonzero()[0]
    sel_low = np.greater(low_mask, high_mask).nonzero()[0]  # low and not high
    return np.concatenate((sel_high, sel_low)), len(sel_high)


def _set_boxes(columns: np.ndarray) -> None:
    """Write the corners and area of the Kalman mean box into the box rows of table ``columns``, in place."""
    box = columns[_BOX]
    np.multiply(columns[2], columns[3], out=box[4])  # w = a * h, for the moment in the area row
    box[:4] = _CORNERS @ columns  # cx -+ w / 2, cy -+ h / 2
    box[4] *= columns[3]  # area = w * h


def _corners() -> np.ndarray:
    """The (4, _ROWS) matrix that maps a table column holding w in its area row to x1, y1, x2, y2."""
    m = np.zeros((4, _ROWS))
    w = _BOX.stop - 1  # the area row
    for row, (center, size, sign) in enumerate(((0, w, -1), (1, 3, -1), (0, w, 1), (1, 3, 1))):
        m[row, center] = 1.0
        m[row, size] = sign * 0.5
    m.flags.writeable = False
    return m


_CORNERS = _corners()
