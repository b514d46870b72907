"""Fixtures shared by the TensorRT tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def calib(tmp_path: Path, mot_dir: Path) -> Path:
    """A folder of three MOT16-05 frames: INT8 calibration images."""
    folder = tmp_path / "calib"
    folder.mkdir()
    for frame in sorted((mot_dir / "img1").glob("*.jpg"))[:3]:
        shutil.copy(frame, folder)
    return folder
