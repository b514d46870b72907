"""Shared fixtures: data locations (``$YOLO_TRT_ROS_DATA`` or ``../shared/data``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_trt_ros import data_paths


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = data_paths.data_dir()
    if not path.is_dir():
        pytest.fail(f"test data not found at {path}: set {data_paths.DATA_ENV} or place shared/data beside the repo")
    return path


@pytest.fixture(scope="session")
def model_path(data_dir: Path) -> Path:
    return data_paths.default_model()


@pytest.fixture(scope="session")
def mot_dir(data_dir: Path) -> Path:
    return data_paths.mot_sequence()
