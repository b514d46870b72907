"""Where the test, benchmark and demo data live (``../shared/data`` beside the repo by default)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "YOLO_TRT_ROS_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """Return the data directory: ``$YOLO_TRT_ROS_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def default_model() -> Path:
    """The YOLOv8n COCO ONNX model shipped in the data directory."""
    return data_dir() / "models" / "yolov8n-coco-fp32.onnx"


def mot_sequence(name: str = "MOT16-05") -> Path:
    """A MOTChallenge sequence folder (``seqinfo.ini``, ``img1/``, ``gt/``, ``det/``)."""
    return data_dir() / "mot" / name


def default_video() -> Path:
    """The indoor people clip used by the demo."""
    return data_dir() / "videos" / "one-by-one-person-detection.mp4"
