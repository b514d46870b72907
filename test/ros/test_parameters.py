"""The parameter table and the checks and conversions around it, without a node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from yolo_trt_ros.ros.image_conversion import image_frame
from yolo_trt_ros.ros.parameters import (
    BY_NAME,
    SPECS,
    STRUCTURAL,
    ConfigurationError,
    backend_options,
    change_refused,
    load_pipeline,
    pipeline_config,
)


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
