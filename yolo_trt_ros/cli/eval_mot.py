"""``yolo-trt-ros eval-mot``: track a MOTChallenge sequence and score it (``evaluation.mot``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from yolo_trt_ros.cli.options import add_tracker_options, tracker_config
from yolo_trt_ros.evaluation.mot import (
    TABLE_HEADER,
    evaluate,
    load_detections,
    person_pipeline,
    pipeline_rows,
    read_seqinfo,
    track_sequence,
)
from yolo_trt_ros.evaluation.mot_format import MotRow, write_rows
from yolo_trt_ros.sources import open_mot_sequence
from yolo_trt_ros.tracking.bytetrack import TrackerConfig


def register(subparsers: Any) -> None:
    """Add the ``eval-mot`` subcommand to the ``yolo-trt-ros`` parser (it calls
    ``args.run(args)``)."""
    parser = subparsers.add_parser(
        "eval-mot",
        help="track a MOTChallenge sequence and print HOTA, MOTA, IDF1 and ID switches",
        description="Track a MOTChallenge sequence and score it against gt/gt.txt with "
        "TrackEval under the MOTChallenge rules: pedestrians (class 1) with flag 1 at IoU 0.5; "
        "tracker boxes on distractor classes (2, 7, 8, 12) removed; flag-0 rows and other "
        "classes ignored. "
        "Input: the public detections (det/det.txt, scores min-max normalised), tracked by "
        "ByteTrack, whose Kalman boxes are scored (as ByteTrack and Ultralytics write them); or, "
        "with --model, the frames that have images, through the node's frame pipeline (detector "
        "and tracker), whose published boxes are scored: the detector's, with their track IDs. "
        "Boxes are clipped to the image (imWidth x imHeight of seqinfo.ini) before scoring and "
        "writing.",
    )
    parser.add_argument(
        "--seq",
        type=Path,
        required=True,
        help="sequence folder with seqinfo.ini, gt/, det/, img1/",
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--dets", type=Path, help="MOTChallenge detections file (default: SEQ/det/det.txt)"
    )
    source.add_argument("--model", type=Path, help="run this detector model on SEQ/img1 instead")
    parser.add_argument(
        "--backend", default="auto", help="detector backend with --model (%(default)s)"
    )
    parser.add_argument(
        "--conf",
        type=float,
        default=0.1,
        help="detector confidence threshold with --model "
        "(%(default)s, as Ultralytics' track mode)",
    )
    parser.add_argument(
        "--frames", type=int, default=0, metavar="N", help="only frames 1..N (0 = all)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="also write the tracker's MOTChallenge result rows here (boxes "
        "clipped to the image, as scored)",
    )
    add_tracker_options(parser)
    parser.add_argument(
        "--stamps",
        action="store_true",
        help="stamp frames at the sequence's frame rate (frame i at i/fps s) instead of counting "
        "updates; use with --frame-rate equal to it for a time-scaled lost buffer",
    )
    parser.set_defaults(run=run_eval_mot)


def run_eval_mot(args: argparse.Namespace) -> int:
    info = read_seqinfo(args.seq)
    config = tracker_config(args)
    fps = info.frame_rate if args.stamps else None
    size = (info.width, info.height)
    if args.model is not None:
        rows = _track_through_pipeline(args, config, fps, size)
        images = len(open_mot_sequence(args.seq).files)
        length = min(args.frames or images, images)
    else:
        frames = load_detections(args.dets or args.seq / "det" / "det.txt", info.length)
        if args.frames:
            frames = frames[: args.frames]
        rows = track_sequence(frames, config, fps, size)
        length = len(frames)
    if args.out is not None:
        with open(args.out, "w") as f:
            write_rows(f, rows)
    scores = evaluate(args.seq / "gt" / "gt.txt", {"bytetrack": rows}, length)["bytetrack"]
    source = f"detector {args.model}" if args.model else "public detections"
    print(f"{info.name}, frames 1-{length}, {source}; {config}")
    print(TABLE_HEADER)
    print(scores.row("yolo_trt_ros ByteTracker"))
    return 0


def _track_through_pipeline(
    args: argparse.Namespace, config: TrackerConfig, fps: float | None, size: tuple[int, int]
) -> list[MotRow]:
    """The frame pipeline (detector and tracker, as the node runs them) over the sequence's
    images, persons only; rows of what it publishes."""
    pipeline = person_pipeline(args.model, config, args.conf, args.backend)
    print(f"eval-mot: {pipeline.detector.backend_reason}", file=sys.stderr)
    try:
        return pipeline_rows(pipeline, args.seq, fps, size, args.frames)
    finally:
        pipeline.close()
