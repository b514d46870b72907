"""MOTChallenge evaluation: run the tracker over a sequence and score it with TrackEval (HOTA,
MOTA, IDF1, IDsw).

Scoring follows the MOTChallenge rules as implemented by TrackEval's ``MotChallenge2DBox`` (the
official HOTA code), run on the sequence's ``gt/gt.txt``
(``frame,id,x,y,w,h,flag,class,visibility``) at IoU 0.5:
- tracker boxes matched (Hungarian, IoU >= 0.5) to a ground-truth box of a distractor class (2
  person_on_vehicle, 7 static_person, 8 distractor, 12 reflection) are removed before scoring, as
  are the other classes' gt boxes;
- of the ground truth, only pedestrians (class 1) with flag 1 are scored: every row with flag 0
  (ignore) and every other class (vehicles, occluders, crowd, ...) is dropped, so a tracker box on
  one of those (say, a car) counts as a false positive unless it was removed as a distractor above;
- scores cover frames 1..N (N = seqLength, or fewer: then gt rows after frame N are dropped too).
TrackEval is imported only when scoring (``trackeval==1.3.0``; it needs numpy and scipy only; its
pip metadata also asks for matplotlib, opencv-python, pycocotools, pillow and tabulate, used for
plots and other datasets, so it is installed with ``--no-deps``). py-motmetrics was not used: 1.4.0
calls ``np.asfarray``, removed in NumPy 2.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolo_trt_ros.detection.detector import DetectorConfig
from yolo_trt_ros.evaluation.mot_format import MotRow, rows_from_boxes, write_rows
from yolo_trt_ros.pipeline import FramePipeline, PipelineConfig
from yolo_trt_ros.sources import open_mot_sequence
from yolo_trt_ros.sources import read_seqinfo as _read_seqinfo_section
from yolo_trt_ros.tracking.bytetrack import ByteTracker, TrackerConfig

Frames = Sequence[tuple[np.ndarray, np.ndarray]]  # per frame: boxes xyxy (N, 4), scores (N,)


@dataclass(frozen=True)
class SequenceInfo:
    """``seqinfo.ini`` of a MOTChallenge sequence."""

    name: str
    frame_rate: float
    length: int
    width: int
    height: int


def read_seqinfo(seq_dir: str | Path) -> SequenceInfo:
    """Read ``<seq_dir>/seqinfo.ini``; ValueError names the file when an entry is missing or
    invalid."""
    section = _read_seqinfo_section(seq_dir)
    try:
        return SequenceInfo(
            section["name"],
            float(section["framerate"]),
            int(section["seqlength"]),
            int(section["imwidth"]),
            int(section["imheight"]),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(
            f"{Path(seq_dir) / 'seqinfo.ini'}: missing or invalid entry {exc}"
        ) from exc


def load_detections(path: str | Path, num_frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Public detections (``det.txt``) per frame: ``[(boxes xyxy float32 (N, 4), scores float32
    (N,)), ...]``.

    Index 0 is frame 1; frames without detections get empty arrays, rows beyond ``num_frames`` are
    ignored. Scores are min-max normalised over the whole file, ``s' = (s - min) / (max - min)``,
    because DPM scores are not in [0, 1] and tracker thresholds expect them there (every tracker
    compared gets the same scores).
    """
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape[1] < 7:
        raise ValueError(
            f"{path}: MOTChallenge detections need at least 7 columns, got {rows.shape[1]}"
        )
    scores = rows[:, 6]
    if len(scores):
        lo, hi = scores.min(), scores.max()
        scores = (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
    frames = rows[:, 0].astype(np.int64)
    boxes = np.column_stack(
        (rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5])
    )
    result = []
    for frame in range(1, num_frames + 1):
        mask = frames == frame
        result.append((boxes[mask].astype(np.float32), scores[mask].astype(np.float32)))
    return result


def track_sequence(
    frames: Frames,
    config: TrackerConfig | None = None,
    fps: float | None = None,
    image_size: tuple[int, int] | None = None,
) -> list[MotRow]:
    """Run ``ByteTracker`` over per-frame detections; MOT rows of the reported tracks (Kalman
    boxes).

    With ``fps`` each frame is stamped ``(index) / fps`` seconds, as a camera driver would, so the
    tracker's time rule applies; without, every update counts as one frame (as Ultralytics' tracker
    does). With ``image_size = (width, height)`` the boxes are clipped to the image; without, they
    are the tracker's own.
    """
    tracker = ByteTracker(config)
    rows: list[MotRow] = []
    for index, (boxes, scores) in enumerate(frames):
        tracks = tracker.update(boxes, scores, stamp=None if fps is None else index / fps)
        rows += rows_from_boxes(
            index + 1, tracks.boxes, tracks.scores, tracks.track_ids.tolist(), image_size
        )
    return rows


def person_pipeline(
    model: str | Path, tracker: TrackerConfig, conf_threshold: float, backend: str = "auto"
) -> FramePipeline:
    """The node's frame pipeline as MOTChallenge scores it: ``model`` detecting persons only, at
    ``conf_threshold``, tracked with ``tracker``."""
    detector = DetectorConfig(conf_threshold=conf_threshold, classes=("person",))
    return FramePipeline.from_model(model, PipelineConfig(detector, tracker), backend=backend)


def pipeline_rows(
    pipeline: FramePipeline,
    seq_dir: str | Path,
    fps: float | None = None,
    image_size: tuple[int, int] | None = None,
    max_frames: int = 0,
) -> list[MotRow]:
    """Run ``pipeline`` over the images of a MOTChallenge sequence (frames 1..``max_frames``, 0:
    all); MOT rows of what it publishes, as the node does: the detector's boxes with their track
    IDs (``tracking.assignment``). ``fps`` and ``image_size`` as in ``track_sequence``."""
    rows: list[MotRow] = []
    for index, image in open_mot_sequence(seq_dir):
        if max_frames and index >= max_frames:
            break
        result = pipeline(image, None if fps is None else index / fps)
        ids = None if result.track_ids is None else result.track_ids.tolist()
        detections = result.detections
        rows += rows_from_boxes(index + 1, detections.boxes, detections.scores, ids, image_size)
    return rows


@dataclass(frozen=True)
class MotScores:
    """TrackEval's MOTChallenge scores of one tracker on one sequence (fractions, not percent)."""

    hota: float
    deta: float
    assa: float
    mota: float
    motp: float
    idf1: float
    id_switches: int
    false_positives: int
    misses: int
    gt_tracks: int
    tracks: int

    def row(self, name: str) -> str:
        """A markdown table row: name, HOTA, DetA, AssA, MOTA, IDF1, IDsw, FP, FN, tracks."""
        return (
            f"| {name} | {self.hota:.3f} | {self.deta:.3f} | {self.assa:.3f} | {self.mota:.3f} | "
            f"{self.idf1:.3f} | "
            f"{self.id_switches} | {self.false_positives} | {self.misses} | {self.tracks} |"
        )


TABLE_HEADER = (
    "| tracker | HOTA | DetA | AssA | MOTA | IDF1 | IDsw | FP | FN | IDs |\n"
    "|---|---|---|---|---|---|---|---|---|---|"
)


def evaluate(
    gt_file: str | Path, results: Mapping[str, Iterable[MotRow]], num_frames: int
) -> dict[str, MotScores]:
    """Score each tracker's rows against ``gt_file`` over frames 1..``num_frames`` (rules: module
    docstring)."""
    trackeval = _import_trackeval()
    gt = np.loadtxt(gt_file, delimiter=",", ndmin=2)
    if gt.shape[1] < 9:
        raise ValueError(
            f"{gt_file}: MOTChallenge ground truth needs 9 columns, got {gt.shape[1]}"
        )
    seq = "seq"
    with tempfile.TemporaryDirectory(prefix="yolo_trt_ros_mot_") as tmp:
        gt_dir = Path(tmp, "gt", seq, "gt")
        gt_dir.mkdir(parents=True)
        np.savetxt(gt_dir / "gt.txt", gt[gt[:, 0] <= num_frames], fmt="%.6g", delimiter=",")
        for name, rows in results.items():
            data = Path(tmp, "trackers", name, "data")
            data.mkdir(parents=True)
            with open(data / f"{seq}.txt", "w") as f:
                write_rows(f, (r for r in rows if r.frame <= num_frames))
        dataset = trackeval.datasets.MotChallenge2DBox(
            {
                "GT_FOLDER": str(Path(tmp, "gt")),
                "TRACKERS_FOLDER": str(Path(tmp, "trackers")),
                "TRACKERS_TO_EVAL": list(results),
                "SEQ_INFO": {seq: num_frames},
                "SKIP_SPLIT_FOL": True,
                "BENCHMARK": "MOT16",
                "PRINT_CONFIG": False,
            }
        )
        evaluator = trackeval.Evaluator(
            {
                "USE_PARALLEL": False,
                "PRINT_RESULTS": False,
                "PRINT_CONFIG": False,
                "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False,
                "OUTPUT_DETAILED": False,
                "PLOT_CURVES": False,
                "OUTPUT_EMPTY_CLASSES": False,
            }
        )
        quiet = {"PRINT_CONFIG": False}
        metrics = [
            trackeval.metrics.HOTA(quiet),
            trackeval.metrics.CLEAR(quiet),
            trackeval.metrics.Identity(quiet),
        ]
        with contextlib.redirect_stdout(io.StringIO()):
            output, messages = evaluator.evaluate([dataset], metrics)
    scores = {}
    for name in results:
        if messages["MotChallenge2DBox"][name] != "Success":
            raise RuntimeError(
                f"TrackEval failed on {name}: {messages['MotChallenge2DBox'][name]}"
            )
        res = output["MotChallenge2DBox"][name][seq]["pedestrian"]
        hota, clear, ident = res["HOTA"], res["CLEAR"], res["Identity"]
        scores[name] = MotScores(
            hota=float(np.mean(hota["HOTA"])),
            deta=float(np.mean(hota["DetA"])),
            assa=float(np.mean(hota["AssA"])),
            mota=float(clear["MOTA"]),
            motp=float(clear["MOTP"]),
            idf1=float(ident["IDF1"]),
            id_switches=int(clear["IDSW"]),
            false_positives=int(clear["CLR_FP"]),
            misses=int(clear["CLR_FN"]),
            gt_tracks=int(res["Count"]["GT_IDs"]),
            tracks=int(res["Count"]["IDs"]),
        )
    return scores


def _import_trackeval() -> Any:
    try:
        with contextlib.redirect_stdout(
            io.StringIO()
        ):  # it prints a note about an optional dataset's dependency
            import trackeval
    except ImportError as exc:
        raise RuntimeError(
            "MOT evaluation needs TrackEval: pip install --no-deps trackeval==1.3.0 scipy"
        ) from exc
    return trackeval
