"""ros.diagnostics: the node's /diagnostics status and values from its state and a stats snapshot,
without ROS."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from yolo_trt_ros.inference.selection import Selection, choose_backend
from yolo_trt_ros.ros.diagnostics import (
    WARN_FOR_S,
    Level,
    ModelInfo,
    NodeState,
    TrackerInfo,
    report,
    status,
)
from yolo_trt_ros.ros.frame_stats import StatsSnapshot

IDLE = StatsSnapshot(
    input_hz=0.0,
    processed_hz=0.0,
    latency_p50_ms=None,
    latency_p99_ms=None,
    received=0,
    processed=0,
    dropped=0,
    drops_known=False,
    rejected=0,
)
BUSY = StatsSnapshot(
    input_hz=30.0,
    processed_hz=29.5,
    latency_p50_ms=41.234,
    latency_p99_ms=80.0,
    received=100,
    processed=95,
    dropped=2,
    drops_known=True,
    rejected=3,
    rejected_by_reason={"zero_size": 2, "bad_data": 1},
    failed_by_stage={"track": 1},
    stamp_glitches={"zero": 4},
    latency_excluded=4,
    stage_p50_ms={"annotate": 2.0, "infer": 30.0, "convert": 0.01},
)
MODEL = ModelInfo(
    "tensorrt", "backend auto -> tensorrt: GPU found", 640, 480, 80, {"gpu": "Orin", "engine": "x"}
)


def active(**fields: object) -> NodeState:
    return NodeState(
        **{
            "state": "active",
            "input_topic": "/cam/image_raw",
            "model_path": "/m.onnx",
            "backend": "auto",
            "tracking": True,
            **fields,
        }
    )


def test_unconfigured_node_reports_its_parameters() -> None:
    node = NodeState(
        state="unconfigured", input_topic="image_raw", model_path="", backend="auto", tracking=True
    )
    result = report(node, IDLE)
    assert (result.level, result.message) == (Level.OK, "unconfigured")
    values = dict(result.values)
    assert (
        values["backend"] == "auto"
        and values["dropped"] == "unknown"
        and values["latency_p50_ms"] == "n/a"
    )
    assert "tracks_active" not in values and "input_publishers" not in values


def test_active_node_reports_model_tracks_rates_counts_and_stage_times_in_pipeline_order() -> None:
    node = active(model=MODEL, tracks=TrackerInfo(3, 1, 7), input_publishers=1)
    result = report(node, BUSY)
    assert (result.level, result.message) == (
        Level.OK,
        "running",
    )  # the failure is not recent (no problem ages)
    keys = [k for k, _ in result.values]
    assert len(keys) == len(set(keys))
    values = dict(result.values)
    assert values["backend"] == "tensorrt" and values["model_input_size"] == "640x480"
    assert (
        values["class_count"] == "80"
        and values["gpu"] == "Orin"
        and values["input_publishers"] == "1"
    )
    assert (values["tracks_active"], values["tracks_lost"], values["track_id_max"]) == (
        "3",
        "1",
        "7",
    )
    assert (
        values["latency_p50_ms"] == "41.23"
        and values["dropped"] == "2"
        and values["failed"] == "1"
    )
    assert values["rejected.zero_size"] == "2" and values["stamp_glitches.zero"] == "4"
    stages = [k for k in keys if k.startswith("stage_p50_ms.")]
    assert stages == ["stage_p50_ms.convert", "stage_p50_ms.infer", "stage_p50_ms.annotate"]


def test_the_most_serious_current_problem_sets_the_level() -> None:
    fresh = {"failed": 1.0, "rejected": 1.0, "stamp": 1.0}
    assert status(active(error="configure failed: model x: file not found"), fresh) == (
        Level.ERROR,
        "configure failed: model x: file not found",
    )
    assert status(active(qos_problem="BEST_EFFORT vs RELIABLE"), fresh) == (
        Level.WARN,
        "BEST_EFFORT vs RELIABLE",
    )
    assert status(active(last_failure="frames failing in track: ValueError: x"), fresh) == (
        Level.WARN,
        "frames failing in track: ValueError: x",
    )
    assert (
        status(active(), {"rejected": 1.0, "stamp": 1.0})[1]
        == "dropping bad frames (see rejected.*)"
    )
    assert status(active(), {"stamp": 1.0})[1].startswith("header stamp glitches")
    assert status(active(input_silent=True), {}) == (Level.WARN, "no input on /cam/image_raw")
    assert status(active(), {}) == (Level.OK, "running")


def test_a_problem_warns_only_while_it_recurs() -> None:
    assert status(active(), {"failed": WARN_FOR_S - 0.1})[0] == Level.WARN
    assert status(active(), {"failed": WARN_FOR_S + 0.1}) == (Level.OK, "running")


def test_an_inactive_node_is_ok_unless_a_transition_failed() -> None:
    assert status(
        active(state="inactive", qos_problem="x", input_silent=True), {"failed": 0.0}
    ) == (Level.OK, "inactive")
    assert (
        status(active(state="inactive", error="activate failed: bad topic"), {})[0] == Level.ERROR
    )


GPU_UNUSED = (
    "NVIDIA GPU unused (/dev/nvidia0), running on the CPU with ONNX Runtime: pycuda is not "
    "importable (No module named 'pycuda'); fix: pip install pycuda (see docs/tensorrt.md)"
)
FALLBACK = ModelInfo(
    "onnxruntime", "backend auto -> onnxruntime: ...", 640, 640, 80, gpu_unused=GPU_UNUSED
)


def test_a_degraded_fallback_warns_that_the_gpu_is_unused_and_why() -> None:
    assert report(active(model=FALLBACK), BUSY).level == Level.WARN
    assert status(active(model=FALLBACK), {}) == (Level.WARN, GPU_UNUSED)
    assert status(active(model=FALLBACK, state="inactive"), {}) == (
        Level.WARN,
        f"inactive; {GPU_UNUSED}",
    )
    # A current problem is more pressing than the lasting fallback; an error more still.
    assert status(active(model=FALLBACK, input_silent=True), {}) == (
        Level.WARN,
        "no input on /cam/image_raw",
    )
    failing = active(model=FALLBACK, last_failure="frames failing in infer: RuntimeError: x")
    assert status(failing, {"failed": 1.0})[1] == "frames failing in infer: RuntimeError: x"
    assert status(active(model=FALLBACK, error="activate failed: x"), {})[0] == Level.ERROR
    assert status(active(model=FALLBACK, state="unconfigured"), {}) == (Level.OK, "unconfigured")
    assert status(active(model=MODEL), {}) == (Level.OK, "running")


def _detector(selection: Selection) -> Any:
    backend = SimpleNamespace(name="onnxruntime", input_shape=(1, 3, 640, 640))
    return SimpleNamespace(
        backend=backend,
        backend_reason=selection.reason,
        gpu_unused=selection.warning,
        names=["person"],
    )


@pytest.mark.parametrize(("gpu", "warns"), [(True, True), (False, False)])
def test_model_info_reports_a_degraded_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gpu: bool, warns: bool
) -> None:
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    if gpu:
        (tmp_path / "dev").mkdir()
        (tmp_path / "dev" / "nvidia0").touch()
    chosen = choose_backend("auto", tmp_path)
    info = ModelInfo.of(_detector(chosen))
    assert info.gpu_unused == chosen.warning
    assert bool(info.gpu_unused) == warns
    if warns:
        assert info.gpu_unused.startswith(
            "NVIDIA GPU unused (/dev/nvidia0), running on the CPU with ONNX Runtime: TensorRT is "
            "not importable ("
        )
        assert info.gpu_unused.endswith(
            'fix: pip install "tensorrt-cu12<11" (see docs/tensorrt.md)'
        )
    assert status(active(model=info), {})[0] == (Level.WARN if warns else Level.OK)


def test_a_transition_in_progress_shows_what_it_does() -> None:
    building = active(state="unconfigured", activity="building engine: Building engine started")
    assert status(building, {}) == (
        Level.OK,
        "unconfigured; configuring: building engine: Building engine started",
    )
    failed = active(state="unconfigured", activity="x", error="configure failed: y")
    assert status(failed, {}) == (Level.ERROR, "configure failed: y")
