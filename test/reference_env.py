"""The reference environment of tests marked ``reference`` (``bash bench/setup_ref_env.sh``:
Ultralytics, torch, lap, ...): ``$YOLO_TRT_ROS_REF_PYTHON`` or ``.venv-ref/bin/python``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REF_PYTHON = Path(os.environ.get("YOLO_TRT_ROS_REF_PYTHON", REPO / ".venv-ref" / "bin" / "python"))


def ref_python(*modules: str) -> Path:
    """The reference interpreter; skips the calling test where it is missing or cannot import
    ``modules`` (CI)."""
    if REF_PYTHON.is_file():
        probe = [str(REF_PYTHON), "-c", f"import {', '.join(modules) or 'sys'}"]
        if subprocess.run(probe, capture_output=True, timeout=120).returncode == 0:
            return REF_PYTHON
    pytest.skip(f"no reference environment with {', '.join(modules)} at {REF_PYTHON}")
