"""Tracking accuracy on MOT16-05: ours vs Ultralytics' BYTETracker vs supervision's ByteTrack, same
detections.

Two inputs, each fed identically to every tracker, each tracker at its defaults (plus, for ours,
the variants named):
- all 837 frames of the public DPM detections (``det/det.txt``, scores min-max normalised over the
  file);
- the 48 frames that have images, through our Detector (YOLOv8n ONNX, ONNX Runtime, class person,
  conf 0.1 as Ultralytics' track mode uses).
Scores: TrackEval under the MOTChallenge rules (``yolo_trt_ros.evaluation.mot``: pedestrians with
flag 1 at IoU 0.5, distractor-matched boxes removed). Ours and Ultralytics report Kalman-filtered
boxes, supervision the detection boxes; every tracker's boxes are clipped to the image (as
Ultralytics' ``track()`` and ``yolo-trt-ros eval-mot`` do). "node defaults, frame_rate=14": the
node's defaults with ``frame_rate`` set to the sequence's rate as the README says, frames stamped
at that rate as image headers are. "as published" (detector table): what the node publishes, the
frame pipeline's detector boxes with their track IDs (as ``eval-mot --model`` scores). Prints
markdown tables for BENCHMARKS.md.

Needs the reference environment (``bash bench/setup_ref_env.sh``, which installs supervision and
TrackEval):
    .venv-ref/bin/python bench/eval_trackers.py [--seq DIR] [--model M] [--skip-detector]
"""

from __future__ import annotations

import argparse
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

import data_paths
from yolo_trt_ros.evaluation.mot import (
    TABLE_HEADER,
    Frames,
    evaluate,
    load_detections,
    person_pipeline,
    pipeline_rows,
    read_seqinfo,
    track_sequence,
)
from yolo_trt_ros.evaluation.mot_format import MotRow, rows_from_boxes
from yolo_trt_ros.tracking.bytetrack import TrackerConfig


def ours(fps: float) -> list[tuple[str, TrackerConfig, bool]]:
    """Our variants at a sequence rate of ``fps``: (name, config, stamp frames at ``fps``?)."""
    node = TrackerConfig(frame_rate=fps)
    return [
        ("yolo_trt_ros, Ultralytics-equivalent (defaults, no stamps)", TrackerConfig(), False),
        (f"yolo_trt_ros, node defaults, frame_rate={fps:g}", node, True),
        ("yolo_trt_ros, node defaults, frame_rate left at 30", TrackerConfig(), True),
        (
            f"yolo_trt_ros, node, frame_rate={fps:g}, match_thresh=0.9",
            replace(node, match_thresh=0.9),
            True,
        ),
        (
            f"yolo_trt_ros, node, frame_rate={fps:g}, fuse_score=False",
            replace(node, fuse_score=False),
            True,
        ),
        (
            f"yolo_trt_ros, node, frame_rate={fps:g}, fuse_score=False, match_thresh=0.9",
            replace(node, fuse_score=False, match_thresh=0.9),
            True,
        ),
    ]


def ultralytics_rows(frames: Frames, image_hw: tuple[int, int]) -> list[MotRow]:
    from ultralytics.cfg import get_cfg
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import ROOT

    tracker = BYTETracker(get_cfg(ROOT / "cfg" / "trackers" / "bytetrack.yaml"))
    rows: list[MotRow] = []
    for index, (boxes, scores) in enumerate(frames):
        data = np.column_stack((boxes, scores, np.zeros_like(scores))).astype(np.float32)
        out = tracker.update(Boxes(data, image_hw)).reshape(-1, 8)
        rows += rows_from_boxes(
            index + 1, out[:, :4], out[:, 5], out[:, 4].astype(int).tolist(), image_hw[::-1]
        )
    return rows


def supervision_rows(frames: Frames, image_hw: tuple[int, int]) -> list[MotRow]:
    import supervision as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ByteTrack is deprecated in 0.30 (removed in 0.31)
        tracker = sv.ByteTrack()
    rows: list[MotRow] = []
    for index, (boxes, scores) in enumerate(frames):
        detections = sv.Detections(
            xyxy=boxes.astype(np.float64),
            confidence=scores,
            class_id=np.zeros(len(scores), dtype=int),
        )
        out = tracker.update_with_detections(detections)
        rows += rows_from_boxes(
            index + 1, out.xyxy, out.confidence, out.tracker_id.tolist(), image_hw[::-1]
        )
    return rows


def detector_frames(seq_dir: Path, model: Path) -> Frames:
    from yolo_trt_ros.detection.detector import Detector, DetectorConfig
    from yolo_trt_ros.sources import open_mot_sequence

    detector = Detector.from_model(
        model,
        backend="onnxruntime",
        config=DetectorConfig(conf_threshold=0.1, classes=("person",)),
    )
    try:
        return [
            (d.boxes, d.scores)
            for d in (detector(image) for _, image in open_mot_sequence(seq_dir))
        ]
    finally:
        detector.close()


def published_rows(
    seq_dir: Path, model: Path, fps: float, image_size: tuple[int, int]
) -> list[MotRow]:
    """What the node publishes at its defaults with ``frame_rate`` = ``fps`` (frame pipeline:
    detector boxes with track IDs), frames stamped at ``fps``."""
    pipeline = person_pipeline(model, TrackerConfig(frame_rate=fps), 0.1, "onnxruntime")
    try:
        return pipeline_rows(pipeline, seq_dir, fps, image_size)
    finally:
        pipeline.close()


def table(
    title: str,
    gt: Path,
    frames: Frames,
    fps: float,
    image_hw: tuple[int, int],
    published: list[MotRow] | None = None,
) -> None:
    """Score every tracker on ``frames``; ``published``: the node's own rows, scored too."""
    size = (image_hw[1], image_hw[0])
    results = {
        name: track_sequence(frames, config, fps if stamps else None, size)
        for name, config, stamps in ours(fps)
    }
    if published is not None:
        name = f"yolo_trt_ros as published (detector boxes), node defaults, frame_rate={fps:g}"
        results[name] = published
    results["Ultralytics BYTETracker (bytetrack.yaml)"] = ultralytics_rows(frames, image_hw)
    results["supervision ByteTrack (defaults)"] = supervision_rows(frames, image_hw)
    # TrackEval wants file-system-safe tracker names
    keys = {name: f"t{i}" for i, name in enumerate(results)}
    scores = evaluate(gt, {keys[name]: rows for name, rows in results.items()}, len(frames))
    dets = sum(len(s) for _, s in frames)
    print(f"\n{title}: {len(frames)} frames, {dets} detections\n")
    print(TABLE_HEADER)
    for name in results:
        print(scores[keys[name]].row(name))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq", type=Path, default=data_paths.mot_sequence("MOT16-05"))
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument(
        "--skip-detector", action="store_true", help="only the public-detection table"
    )
    args = parser.parse_args()
    info = read_seqinfo(args.seq)
    gt = args.seq / "gt" / "gt.txt"
    hw = (info.height, info.width)
    public = load_detections(args.seq / "det" / "det.txt", info.length)
    table(f"{info.name}, public DPM detections", gt, public, info.frame_rate, hw)
    if not args.skip_detector:
        table(
            f"{info.name}, YOLOv8n detections ({args.model.name}, person, conf 0.1)",
            gt,
            detector_frames(args.seq, args.model),
            info.frame_rate,
            hw,
            published_rows(args.seq, args.model, info.frame_rate, (info.width, info.height)),
        )


if __name__ == "__main__":
    main()
