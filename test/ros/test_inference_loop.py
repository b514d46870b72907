"""InferenceLoop without ROS: real pipelines on one YOLOv8n detector (dynamic batch, two ONNX
Runtime runs at once), cameras whose frame handling records what it is given."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from yolo_trt_ros.pipeline import FramePipeline, FrameResult
from yolo_trt_ros.ros.frame_handler import Received
from yolo_trt_ros.ros.inference_loop import InferenceLoop


@dataclass
class Msg:
    camera: int
    seq: int
    image: Any


@dataclass
class RecordingFrames:
    """A camera's ``frames``: what was published (seq, track ids) or dropped, in order."""

    fail_on: int | None = None
    published: list[tuple[int, list[int]]] = field(default_factory=list)
    dropped: list[tuple[int, Exception]] = field(default_factory=list)
    superseded_frames: int = 0

    def superseded(self) -> None:
        self.superseded_frames += 1

    def check_stamp(self, frame: Received) -> SimpleNamespace:
        return SimpleNamespace(time=frame.msg.seq / 10)

    def publish(self, frame: Received, check: Any, result: FrameResult) -> None:
        if frame.msg.seq == self.fail_on:
            raise RuntimeError("publisher gone")
        assert result.track_ids is not None
        self.published.append((frame.msg.seq, result.track_ids.tolist()))

    def drop(self, frame: Received, problem: Exception) -> None:
        self.dropped.append((frame.msg.seq, problem))


@dataclass
class FakeCamera:
    index: int
    pipeline: FramePipeline
    frames: RecordingFrames = field(default_factory=RecordingFrames)

    @property
    def stats(self) -> RecordingFrames:
        return self.frames


@pytest.fixture(scope="module")
def images(mot_dir: Path) -> list[np.ndarray]:
    return [cv2.imread(str(mot_dir / "img1" / f"{i:06d}.jpg")) for i in range(1, 7)]


@pytest.fixture
def cameras(small_dynamic_model: Path):
    first = FramePipeline.from_model(
        small_dynamic_model,
        backend="onnxruntime",
        backend_options={"onnxruntime": {"intra_op_threads": 1, "parallel_runs": 2}},
        convert=lambda msg: (msg.image, "bgr8"),
    )
    pipelines = [first] + [first.sibling() for _ in range(3)]
    yield [FakeCamera(i, p) for i, p in enumerate(pipelines)]
    for pipeline in reversed(pipelines):
        pipeline.close()


def run(
    cameras: list[FakeCamera], images: list[np.ndarray], serve_each: bool
) -> tuple[InferenceLoop, list[str]]:
    """Deliver each image to every camera, one round after another (each round served before
    the next with ``serve_each``, else 50 ms apart); the loop and the errors it logged."""
    errors: list[str] = []
    loop = InferenceLoop(cameras, threading.Lock(), errors.append)  # type: ignore[arg-type]
    loop.start()
    try:
        for seq, image in enumerate(images):
            for camera in cameras:
                loop.deliver(camera, Received(Msg(camera.index, seq, image), seq / 10))  # type: ignore[arg-type]
            if serve_each:
                assert loop.wait_idle(60.0)
            else:
                time.sleep(0.05)
        assert loop.wait_idle(60.0)
    finally:
        loop.stop()
    return loop, errors


@pytest.mark.parametrize("batch_size", [1, 4])
def test_each_camera_is_published_in_order_and_every_frame_accounted_for(
    cameras, images, batch_size: int
) -> None:
    """Two runs at once, each of one frame (the default) or of a batch (the waiting frames shared
    out: two each)."""
    cameras[0].pipeline.detector.batch_size = batch_size
    loop, errors = run(cameras, images, serve_each=False)
    assert (loop._workers, loop._batch_size) == (2, {1: 1, 4: 2}[batch_size])
    assert errors == []
    for camera in cameras:
        seqs = [seq for seq, _ in camera.frames.published]
        assert seqs == sorted(set(seqs)) and seqs[-1] == len(images) - 1
        assert camera.frames.dropped == []
        assert len(seqs) + camera.frames.superseded_frames == len(images)
        ids = [set(track_ids) for _, track_ids in camera.frames.published]
        assert len(ids[0]) > 3 and len(ids[-1] & ids[0]) >= len(ids[0]) // 2  # people keep IDs
    # the cameras show the same images: each camera's tracker numbers its own tracks from 1
    firsts = [camera.frames.published[0] for camera in cameras]
    assert all(min(track_ids) == 1 for _, track_ids in firsts)


def test_an_output_error_is_logged_and_the_loop_goes_on(cameras, images) -> None:
    cameras[1].frames.fail_on = 2
    _, errors = run(cameras, images[:5], serve_each=True)
    assert len(errors) == 1 and errors[0].startswith("output failed: RuntimeError: publisher gone")
    assert [seq for seq, _ in cameras[1].frames.published] == [0, 1, 3, 4]
    assert [seq for seq, _ in cameras[0].frames.published] == [0, 1, 2, 3, 4]


def test_stop_drops_waiting_frames_and_joins_its_threads(cameras, images) -> None:
    loop = InferenceLoop(cameras, threading.Lock(), print)  # type: ignore[arg-type]
    loop.start()
    for camera in cameras:
        loop.deliver(camera, Received(Msg(camera.index, 0, images[0]), 0.0))  # type: ignore[arg-type]
    loop.stop(timeout_s=30.0)
    assert loop._threads == [] and loop.wait_idle(0.0)
    assert not any(t.name.startswith("yolo_tracker_") for t in threading.enumerate())
