"""FramePipeline: the one frame path (convert, detect, track) that the node, the CLI and the
benchmarks run."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.pipeline import (
    STAGES,
    FramePipeline,
    FrameResult,
    PipelineConfig,
    StageFailed,
    run_batch,
)
from yolo_trt_ros.tracking.assignment import UNTRACKED
from yolo_trt_ros.tracking.bytetrack import TrackerConfig


@pytest.fixture(scope="module")
def frames(mot_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(mot_dir / "img1" / f"{i:06d}.jpg")) for i in (1, 2, 3)]


@pytest.fixture
def pipeline(model_path: Path):
    pipeline = FramePipeline.from_model(model_path, backend="onnxruntime")
    yield pipeline
    pipeline.close()


def test_detection_only_is_the_detector_at_the_published_threshold(
    model_path: Path, frames
) -> None:
    config = PipelineConfig(DetectorConfig(conf_threshold=0.4), tracking=False)
    with_pipeline = FramePipeline.from_model(model_path, config, backend="onnxruntime")
    detector = Detector.from_model(model_path, config=DetectorConfig(conf_threshold=0.4))
    try:
        result = with_pipeline(frames[0], None)
        expected = detector(frames[0])
    finally:
        with_pipeline.close()
        detector.close()
    assert result.track_ids is None and len(result.detections) > 0
    np.testing.assert_array_equal(result.detections.boxes, expected.boxes)
    np.testing.assert_array_equal(result.detections.class_ids, expected.class_ids)
    assert list(result.times_ms) == [s for s in STAGES if s != "track"]
    assert all(v >= 0 for v in result.times_ms.values()) and result.encoding == "bgr8"


def test_tracking_lowers_the_detector_threshold_and_numbers_tracks_from_one(
    pipeline, frames
) -> None:
    assert pipeline.detector.config.conf_threshold == TrackerConfig().track_low_thresh == 0.1
    first = pipeline(frames[0], 0.0)
    assert list(first.times_ms) == list(STAGES)
    ids = (
        first.track_ids.tolist()
    )  # as Ultralytics, the first frame's tracks are confirmed at once
    assert len(ids) > 3 and UNTRACKED not in ids and sorted(ids) == list(range(1, len(ids) + 1))
    later = pipeline(frames[2], 2 / 30)
    assert set(later.track_ids.tolist()) >= set(ids[: len(ids) // 2])  # people keep their IDs
    pipeline.reset()
    again = pipeline(frames[1], 10.0)
    assert sorted(again.track_ids.tolist()) == list(range(1, len(again.detections) + 1))


def test_publish_untracked_adds_unconfirmed_detections_above_the_published_threshold(
    pipeline, frames
) -> None:
    mirrored = np.ascontiguousarray(
        frames[0][:, ::-1]
    )  # new objects: unconfirmed tracks on the second frame
    pipeline(frames[0], 0.0)
    tracked_only = pipeline(mirrored, 1 / 30)
    pipeline.reset()
    pipeline.configure(PipelineConfig(publish_untracked=True))
    pipeline(frames[0], 0.0)
    result = pipeline(mirrored, 1 / 30)
    untracked = result.track_ids == UNTRACKED
    assert (
        untracked.sum() > 0
        and len(result.detections) == len(tracked_only.detections) + untracked.sum()
    )
    assert result.detections.scores[untracked].min() >= 0.25


def test_configure_checks_before_it_changes_anything(pipeline) -> None:
    before = pipeline.config
    with pytest.raises(ValueError, match="conf_threshold must be in"):
        pipeline.configure(PipelineConfig(DetectorConfig(conf_threshold=2.0)))
    with pytest.raises(ValueError, match="unknown class 'unicorn'"):
        pipeline.configure(PipelineConfig(DetectorConfig(classes=("unicorn",))))
    assert pipeline.config is before and pipeline.detector.config.conf_threshold == 0.1


def test_bad_input_is_rejected_and_internal_errors_name_their_stage(
    model_path: Path, frames
) -> None:
    def convert(frame: object) -> tuple[np.ndarray, str]:
        if frame == "broken":
            raise KeyError("no such field")
        return frames[0], "16UC1" if frame == "depth" else "bgr8"

    pipeline = FramePipeline.from_model(model_path, backend="onnxruntime", convert=convert)
    try:
        assert len(pipeline("frame", 0.0).image) == 480  # the converter's image goes through
        with pytest.raises(ImageRejected):
            pipeline("depth", 0.1)
        with pytest.raises(StageFailed, match="convert failed: KeyError") as failed:
            pipeline("broken", 0.2)
        assert failed.value.stage == "convert" and isinstance(failed.value.__cause__, KeyError)
        pipeline.tracker.update = None  # type: ignore[assignment,method-assign]
        with pytest.raises(StageFailed) as failed:
            pipeline("frame", 0.3)
        assert failed.value.stage == "track"
    finally:
        pipeline.close()


@pytest.mark.parametrize("batched", [True, False])
def test_cameras_sharing_a_detector_run_as_one_batch_and_track_apart(
    small_dynamic_model: Path, small_static_model: Path, frames, batched: bool
) -> None:
    """Three cameras, one detector: one inference for all (dynamic-batch model) or one per frame
    (batch-1 model), each camera's detections those of its frame alone, each camera's tracks
    numbered from 1; a bad frame is that camera's problem only."""
    path = small_dynamic_model if batched else small_static_model
    first = FramePipeline.from_model(path, PipelineConfig(tracking=False), "onnxruntime")
    cameras = [first, first.sibling(), first.sibling()]
    alone = Detector.from_model(path)
    shapes: list[tuple[int, ...]] = []
    infer = first.detector.backend.infer

    def counted(x: np.ndarray) -> np.ndarray:
        shapes.append(x.shape)
        return infer(x)

    first.detector.backend.infer = counted  # type: ignore[method-assign]
    try:
        batch = [(camera, frames[i], 0.0) for i, camera in enumerate(cameras)]
        for (_, frame, _), result in zip(batch, run_batch(batch), strict=True):
            assert isinstance(result, FrameResult)
            want = alone(frame)
            assert (
                len(want) > 0 and result.detections.class_ids.tolist() == want.class_ids.tolist()
            )
            np.testing.assert_allclose(result.detections.boxes, want.boxes, atol=1e-3)
        assert shapes == ([(3, 3, 288, 352)] if batched else [(1, 3, 352, 352)] * 3)

        for camera in cameras:
            camera.configure(PipelineConfig())  # tracking on
        for step in range(3):
            results = run_batch([(c, frames[step], step / 10) for c in cameras])
        # the same frames on every camera: the same tracks, each camera numbering its own from 1
        ids = [r.track_ids.tolist() for r in results if isinstance(r, FrameResult)]
        assert len(ids) == 3 and ids[0] == ids[1] == ids[2] and min(ids[0]) == 1

        bad = np.zeros((10, 10), np.uint16)
        results = run_batch([(cameras[0], bad, 0.3), (cameras[1], frames[0], 0.3)])
        assert isinstance(results[0], ImageRejected) and isinstance(results[1], FrameResult)
    finally:
        cameras[1].close()  # a sibling leaves the shared detector open
        assert len(first.detector(frames[0])) > 0
        first.close()
        alone.close()
