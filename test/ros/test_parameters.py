"""The parameter table and the checks and conversions around it, without a node."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from yolo_trt_ros.ros.image_conversion import image_frame
from yolo_trt_ros.ros.parameters import (
    BY_NAME,
    PARAMS_FILE_WIDTH,
    SPECS,
    STRUCTURAL,
    ConfigurationError,
    backend_options,
    change_refused,
    load_pipeline,
    params_file_text,
    pipeline_config,
)
from yolo_trt_ros.tracking.bytetrack import TrackerConfig

PARAMS_FILE = Path(__file__).resolve().parents[2] / "config" / "tracker.yaml"


def defaults(**changes: Any) -> dict[str, Any]:
    values = {spec.name: spec.coerce(spec.default) for spec in SPECS}
    values.update(changes)
    return values


def test_every_default_passes_its_own_check() -> None:
    assert [spec.check(spec.default) for spec in SPECS] == [""] * len(SPECS)


def test_structural_parameters_change_only_while_unconfigured() -> None:
    assert "model_path" in STRUCTURAL
    assert change_refused({"model_path": "/m.onnx"}, "unconfigured") == ""
    reason = change_refused({"model_path": "/m.onnx", "conf_threshold": 0.5}, "active")
    assert reason.startswith("model_path can only change while unconfigured (now active)")
    assert change_refused({"conf_threshold": 0.5}, "active") == ""


def test_bad_values_are_refused_with_each_reason() -> None:
    reason = change_refused({"conf_threshold": 2.0, "qos_depth": 0, "unknown": 1}, "unconfigured")
    assert "conf_threshold = 2.0 is out of range" in reason and "qos_depth = 0" in reason
    assert BY_NAME["backend"].check("cuda").startswith("backend = 'cuda' is not allowed: one of")


def test_pipeline_config_follows_the_values() -> None:
    config = pipeline_config(defaults(conf_threshold=0.4, classes=("person",), tracking=False))
    assert config.detector.conf_threshold == 0.4 and config.detector.classes == ("person",)
    assert not config.tracking


def test_onnxruntime_runs_two_frames_at_once_for_several_cameras() -> None:
    def runs(**changes: Any) -> int:
        return int(backend_options(defaults(**changes))["onnxruntime"]["parallel_runs"])

    assert runs() == 1 and runs(input_topics=("/a", "/b")) == 2
    assert (
        runs(ort_parallel_runs=3) == 3
        and runs(input_topics=("/a", "/b"), ort_parallel_runs=1) == 1
    )


def test_load_pipeline_names_the_problem(tmp_path: Path, model_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="model_path is empty"):
        load_pipeline(defaults(), convert=image_frame)
    missing = tmp_path / "missing.onnx"
    with pytest.raises(ConfigurationError, match=str(missing)):
        load_pipeline(defaults(model_path=str(missing)), convert=image_frame)
    with pytest.raises(ConfigurationError, match="tracker parameters: track_low_thresh"):
        load_pipeline(
            defaults(model_path=str(model_path), track_low_thresh=0.5, track_high_thresh=0.3),
            convert=image_frame,
        )
    pipeline = load_pipeline(
        defaults(model_path=str(model_path), backend="onnxruntime"), image_frame
    )
    try:
        assert pipeline.detector.names[0] == "person"
    finally:
        pipeline.close()


def test_config_file_is_generated_from_the_table() -> None:
    assert PARAMS_FILE.read_text() == params_file_text(), (
        "config/tracker.yaml differs from SPECS in yolo_trt_ros/ros/parameters.py: regenerate it "
        "with `.venv/bin/python -m yolo_trt_ros.ros.parameters > config/tracker.yaml`"
    )


def test_params_file_has_each_default_with_its_type() -> None:
    text = params_file_text()
    in_file = yaml.safe_load(text)["/**/yolo_tracker"]["ros__parameters"]
    assert list(in_file) == [spec.name for spec in SPECS]
    for spec in SPECS:
        assert in_file[spec.name] == spec.default and type(in_file[spec.name]) is spec.kind
    assert max(len(line) for line in text.splitlines()) <= PARAMS_FILE_WIDTH
    assert "# Range (0, 1].\n    match_thresh: 0.8\n" in text


def test_params_file_header_lists_every_structural_parameter() -> None:
    header_lines = params_file_text().split("\n/**/yolo_tracker:")[0].splitlines()
    header = " ".join(line.removeprefix("# ") for line in header_lines)
    listed = re.search(r"only while unconfigured \([^)]*\): ([^.]*)\.", header)
    assert listed is not None, header
    assert listed[1].split(", ") == list(STRUCTURAL)
    assert {"input_topics", "camera_names", "max_batch", "model_path"} <= set(STRUCTURAL)
    assert "python -m yolo_trt_ros.ros.parameters > config/tracker.yaml" in header


@pytest.mark.parametrize("value", [-0.1, 0.0, 1e-9, 0.5, 1.0, 1.0001, math.nan])
def test_match_thresh_range_is_the_trackers(value: float) -> None:
    """match_thresh 0 is refused when set, not only by TrackerConfig at configure."""
    problem = BY_NAME["match_thresh"].check(value)
    try:
        TrackerConfig(match_thresh=value)
    except ValueError:
        assert problem == f"match_thresh = {value!r} is out of range: allowed (0, 1]"
    else:
        assert problem == ""


def test_match_thresh_zero_is_refused_at_run_time() -> None:
    reason = change_refused({"match_thresh": 0.0}, "active")
    assert reason == "match_thresh = 0.0 is out of range: allowed (0, 1]"
    assert "(0, 1]" in BY_NAME["match_thresh"].descriptor().description
    assert BY_NAME["track_high_thresh"].check(0.0) == ""  # the other thresholds include 0
