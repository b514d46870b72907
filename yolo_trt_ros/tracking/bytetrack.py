"""ByteTrack multi-object tracker (Zhang et al., ECCV 2022).

Behaves as Ultralytics' ``BYTETracker`` (8.4) with the same parameters: a constant-velocity Kalman filter per track,
a first association of the high-score detections with all tracked and lost tracks (IoU, optionally score-fused), a
second association of the low-score detections with the still unmatched tracked tracks (IoU only), unconfirmed
tracks that need a second detection to be reported, new tracks from unmatched high-score detections, lost tracks
kept for ``max_frames_lost`` frames, and tracked/lost duplicates removed. With the same input its output equals
Ultralytics' frame by frame (``test/tracking/test_bytetrack.py`` checks golden files). Differences, all deliberate:
header-stamp time (dropped frames), a lost buffer scaled by ``frame_rate`` (as ByteTrack; Ultralytics 8.4 dropped
the scaling), the rejection of non-finite input, IoU/cost arithmetic in float64 instead of float32, and the option
of class-aware association.

Classes: by default association ignores classes, as Ultralytics does, so a track survives a detector that flips an
object's class from frame to frame (car/truck); a track reports the class of the detection it matched in this frame.
``class_aware=True`` matches detections only to tracks of their class: a class flip then ends the track and starts a
new ID (useful when objects of different classes overlap, at the cost of those flips).

Speed: a frame holds a few to a few dozen tracks, where a numpy call costs more than the arithmetic it does
(~0.3 us whatever its size), so the frame is done in plain Python floats: detections are screened and converted in
one loop, each track's Kalman filter is stepped on its own (``kalman_filter``), IoU is computed once for all three
associations and only for boxes that overlap, and the assignment solver only runs when candidates conflict. numpy
is used where it pays: IoU of large frames, the solver, and the output arrays.

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
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from . import kalman_filter as kf
from .matching import Box, linear_assignment, overlaps

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
    class_aware: bool = False  # match detections only to tracks of their class (a class flip starts a new ID)

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


# A usable detection: input index, score, Kalman measurement (cx, cy, a, h) and box (with class).
_Detection = tuple[int, float, tuple[float, float, float, float], Box]


@dataclass(slots=True, eq=False)
class _Track:
    """One track: its Kalman state, box, and the detection it was last matched to."""

    kf: list[float]  # Kalman state (see kalman_filter)
    box: Box  # the Kalman mean as a box (x1, y1, x2, y2, area), and the class of the detection last matched
    score: float  # score of the detection last matched
    last: int  # frame of that match
    det: int  # input index of that detection
    start: int  # frame the track was created
    id: int = 0  # 0 until the track is first reported

    @classmethod
    def start_at(cls, det: _Detection, frame: int) -> _Track:
        index, score, xyah, box = det
        return cls(kf.initiate(xyah), box, score, frame, index, frame)

    def predict(self, steps: int) -> None:
        self.kf = x = kf.predict(self.kf, steps)
        self.box = _box(x, self.box[5])

    def correct(self, det: _Detection, frame: int) -> None:
        """Kalman update with the matched detection ``det``, whose score, index and class the track takes."""
        index, score, xyah, box = det
        self.kf = x = kf.update(self.kf, xyah)
        self.box, self.score, self.last, self.det = _box(x, box[5]), score, frame, index


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
        # In this order: tracked (confirmed) | lost | unconfirmed (created last frame, not yet reported).
        self._tracks: list[_Track] = []
        self._n_tracked = self._n_lost = 0
        self._frame = 0
        self._next_id = 1
        self._last_stamp: float | None = None
        # Classes of the detections since the reset, collected until there are two: with a single class,
        # class-aware IoU equals plain IoU and skips the class comparison.
        self._classes: set[Any] = set()

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
        tracks, n_tracked, n_lost = self._tracks, self._n_tracked, self._n_lost
        if steps > self._max_lost:
            tracks, n_tracked, n_lost = [], 0, 0
        n_pool = n_tracked + n_lost
        dets, n_high = self._detections(boxes, scores, class_ids)
        n_det = len(dets)

        # Predict tracked and lost tracks (lost ones without height velocity); unconfirmed ones stay as created.
        for track in tracks[n_tracked:n_pool]:
            track.kf[kf.VH] = 0.0
        for track in tracks[:n_pool]:
            track.predict(steps)
        # Overlapping (track, detection, IoU), once for all three associations; every other pair has IoU 0.
        pairs = overlaps([t.box for t in tracks], [d[3] for d in dets], self._class_aware) if tracks and dets else []
        det_scores = [d[1] for d in dets]
        fuse = cfg.fuse_score
        # Pool tracks not (yet) matched, lost ones only while within the buffer.
        oldest = frame - self._max_lost
        left = [t.last >= oldest for t in tracks[:n_pool]]

        # 1. High-score detections vs tracked + lost tracks.
        rows: list[int] = []  # matched tracks (positions in tracks) and their detections
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
        if len(tracks) > n_pool and dets_left:
            cols_left = {d: j for j, d in enumerate(dets_left)}
            costs = [(t - n_pool, cols_left[d], 1 - iou * det_scores[d] if fuse else 1 - iou)
                     for t, d, iou in pairs if t >= n_pool and d in cols_left]
            r3, d3 = linear_assignment(costs, (len(tracks) - n_pool, len(dets_left)), _UNCONFIRMED_MATCH_THRESH)
            if r3:
                confirmed_now = True
                rows += [r + n_pool for r in r3]
                new_matches = [dets_left[d] for d in d3]
                dets_matched += new_matches
                taken = set(new_matches)
                dets_left = [d for d in dets_left if d not in taken]

        # Correct the matched tracks; each takes the detection's score, index and class.
        tracked = [tracks[r] for r in rows]
        for track, d in zip(tracked, dets_matched):
            track.correct(dets[d], frame)

        # 4. New tracks from the remaining high-score detections; reported from their second frame (or frame 1).
        new_tracks = [_Track.start_at(dets[d], frame) for d in dets_left if det_scores[d] >= cfg.new_track_thresh]
        if frame == 1 and new_tracks:
            tracked, new_tracks = new_tracks, []
            confirmed_now = True
        if confirmed_now:
            for track in tracked:
                if not track.id:
                    track.id = self._next_id
                    self._next_id += 1

        # 5. Lost tracks: unmatched pool tracks within the buffer; then tracked/lost duplicates go.
        lost = [tracks[r] for r, unmatched in enumerate(left) if unmatched]
        self._tracks = tracked + lost + new_tracks
        self._n_tracked, self._n_lost = len(tracked), len(lost)
        if lost and (tracked or new_tracks):
            self._remove_duplicates()
        tracked = self._tracks[: self._n_tracked]
        ints = np.array([[t.box[5] for t in tracked], [t.id for t in tracked], [t.det for t in tracked]], np.int64)
        return Tracks(np.array([t.box[:4] for t in tracked], dtype=np.float32).reshape(-1, 4),
                      np.array([t.score for t in tracked], dtype=np.float32), ints[0], ints[1], ints[2])

    def _detections(
        self, boxes: ArrayLike, scores: ArrayLike, class_ids: ArrayLike | None
    ) -> tuple[list[_Detection], int]:
        """The usable detections, high-score ones first, each group in input order, and how many are high-score.

        Unusable: a score not above ``track_low_thresh``, a non-finite coordinate or score, or an empty box.
        """
        b = np.asarray(boxes, dtype=np.float32)
        s = np.asarray(scores, dtype=np.float32)
        m = len(s)
        if b.shape != (m, 4):
            b = b.reshape(-1, 4)
            if len(b) != m:
                raise ValueError(f"{len(b)} boxes but {m} scores")
        if class_ids is None:
            classes: list[Any] = [0] * m
        else:
            classes = np.asarray(class_ids).reshape(-1).tolist()
            if len(classes) != m:
                raise ValueError(f"{m} scores but {len(classes)} class ids")
        if len(self._classes) < 2:
            self._classes.update(classes)
        low_thresh, high_thresh = self._config.track_low_thresh, self._config.track_high_thresh
        high: list[_Detection] = []
        low: list[_Detection] = []
        for i, ((x1, y1, x2, y2), score, cls) in enumerate(zip(b.tolist(), s.tolist(), classes)):
            # every comparison with NaN is False; x2 - x1 + ... is inf or NaN for any infinite input
            if score > low_thresh and x2 > x1 and y2 > y1 and x2 - x1 + y2 - y1 + score < math.inf:
                w, h = x2 - x1, y2 - y1
                (high if score >= high_thresh else low).append(
                    (i, score, ((x1 + x2) * 0.5, (y1 + y2) * 0.5, w / h, h), (x1, y1, x2, y2, w * h, cls))
                )
        return high + low, len(high)

    @property
    def _class_aware(self) -> bool:
        """Whether IoU must compare classes: class-aware association and more than one class seen."""
        return self._config.class_aware and len(self._classes) > 1

    def _remove_duplicates(self) -> None:
        """Drop the younger of each active/lost pair with IoU above 0.85 (Ultralytics' duplicate rule).

        Active means reported (tracked) and new unreported tracks alike.
        """
        tracks, n_tracked, n_lost = self._tracks, self._n_tracked, self._n_lost
        lost = tracks[n_tracked : n_tracked + n_lost]
        active = tracks[:n_tracked] + tracks[n_tracked + n_lost :]
        pairs = [(a, b) for a, b, iou in overlaps([t.box for t in active], [t.box for t in lost], self._class_aware)
                 if 1 - iou < _DUPLICATE_IOU_DISTANCE]
        if not pairs:
            return
        drop = set()
        for a, b in pairs:
            if active[a].last - active[a].start > lost[b].last - lost[b].start:
                drop.add(n_tracked + b)
            else:
                drop.add(a if a < n_tracked else a + n_lost)
        self._tracks = [t for i, t in enumerate(tracks) if i not in drop]
        self._n_tracked -= sum(i < n_tracked for i in drop)
        self._n_lost -= sum(n_tracked <= i < n_tracked + n_lost for i in drop)


def _box(x: list[float], cls: Any) -> Box:
    """The box (x1, y1, x2, y2, area, class) of the Kalman mean of the track state ``x`` and class ``cls``."""
    cx, cy, a, h = x[:4]
    w = a * h
    return cx - w * 0.5, cy - h * 0.5, cx + w * 0.5, cy + h * 0.5, w * h, cls
