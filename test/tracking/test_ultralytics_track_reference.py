"""Ultralytics ``track()`` (ByteTrack), the reference of the tracking benchmarks, runs in the
reference environment with autoinstall off: ``bench/setup_ref_env.sh`` installs everything it
imports (``lap``). Skips where that environment is absent (CI)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from reference_env import ref_python

pytestmark = pytest.mark.reference

TRACK = """
import sys
from ultralytics import YOLO
model = YOLO(sys.argv[1])
for frame in sys.argv[2:]:
    boxes = model.track(frame, persist=True, tracker="bytetrack.yaml", verbose=False)[0].boxes
    print(0 if boxes.id is None else len(boxes.id))
"""


def test_track_needs_nothing_installed_at_run_time(data_dir: Path, mot_dir: Path) -> None:
    python = ref_python("ultralytics")
    frames = [str(p) for p in sorted((mot_dir / "img1").glob("*.jpg"))[:3]]
    weights = data_dir / "models" / "yolov8n-coco-reconstructed.pt"
    env = {**os.environ, "YOLO_AUTOINSTALL": "false", "YOLO_OFFLINE": "true"}
    result = subprocess.run(
        [str(python), "-c", TRACK, str(weights), *frames],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tracked = [int(line) for line in result.stdout.split()]
    assert len(tracked) == 3 and min(tracked) > 3, result.stdout  # MOT16-05: people, tracked
