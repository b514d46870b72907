"""Command-line options shared by the subcommands: the detector's and the tracker's (one flag per
field)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

from yolo_trt_ros.detection.detector import DetectorConfig
from yolo_trt_ros.inference.selection import CHOICES as BACKEND_CHOICES
from yolo_trt_ros.pipeline import FramePipeline, PipelineConfig
from yolo_trt_ros.tracking.assignment import TRACKER_FIELDS
from yolo_trt_ros.tracking.bytetrack import TrackerConfig

PROG = "yolo-trt-ros"


def add_detector_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="YOLOv8 detection model: .onnx (Ultralytics export) or TensorRT .engine",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="auto",
        help="inference backend; auto: TensorRT when it imports and sees a GPU, else ONNX Runtime "
        "(%(default)s)",
    )
    parser.add_argument(
        "--names-file", type=Path, help="class names file (default: names in the model metadata)"
    )
    parser.add_argument(
        "--conf", type=float, default=0.25, help="confidence threshold (%(default)s)"
    )
    parser.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (%(default)s)")
    parser.add_argument(
        "--classes",
        default="",
        metavar="NAMES",
        help="comma-separated class names to keep, e.g. person,car (default: all)",
    )


def load_pipeline(args: argparse.Namespace, tracker: TrackerConfig | None = None) -> FramePipeline:
    """The frame pipeline of ``args``: tracking with ``tracker``, detection only without; says
    which backend."""
    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    config = PipelineConfig(
        detector=DetectorConfig(conf_threshold=args.conf, iou_threshold=args.iou, classes=classes),
        tracker=tracker or TrackerConfig(),
        tracking=tracker is not None,
    )
    pipeline = FramePipeline.from_model(
        args.model, config, backend=args.backend, names_file=args.names_file
    )
    for warning, note in pipeline.detector.load_notes("give them with --names-file"):
        print(f"{PROG}: {'warning: ' if warning else ''}{note}", file=sys.stderr)
    return pipeline


def add_tracker_options(parser: argparse.ArgumentParser, exclude: Collection[str] = ()) -> None:
    """Add ``--track-high-thresh`` etc., one flag per ``TrackerConfig`` field (default: the field's
    default)."""
    group = parser.add_argument_group("tracker (ByteTrack) options")
    defaults = TrackerConfig()
    for name in TRACKER_FIELDS:
        if name in exclude:
            continue
        flag = "--" + name.replace("_", "-")
        default = getattr(defaults, name)
        if isinstance(default, bool):
            group.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=default,
                help="tracker parameter (%(default)s)",
            )
        else:
            group.add_argument(
                flag, type=type(default), default=default, help="tracker parameter (%(default)s)"
            )


def tracker_config(args: argparse.Namespace, **fixed: Any) -> TrackerConfig:
    """``TrackerConfig`` from the flags of ``add_tracker_options``, ``fixed`` for excluded or
    overridden fields."""
    values = {name: getattr(args, name) for name in TRACKER_FIELDS if name not in fixed}
    return TrackerConfig(**values, **fixed)
