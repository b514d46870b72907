"""The node's frame threads: batches of the newest frame of each camera.

Subscription callbacks only count a frame and ``deliver`` it (``latest_frames``: it replaces the
camera's frame still waiting, counted as superseded). An inference thread takes the waiting
frames, up to the model's batch size, and detects them as one batch (``pipeline.detect_frames``);
the output thread checks each frame's stamp, tracks it in its camera's pipeline and publishes it,
in the order the batches were taken, while inference goes on. There are as many inference threads
as the detector allows runs at once (``Detector.parallel_runs``, ONNX Runtime's
``ort_parallel_runs``), and at most one more batch taken than they hold: no stale frame is ever
queued. ``output_lock`` is held while a batch is tracked and published: a parameter change or a
tracker reset waits for it (a detection in flight finishes with the settings it started with).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence

from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.latest_frames import LatestFrames
from yolo_trt_ros.pipeline import FrameResult, StageFailed, detect_frames
from yolo_trt_ros.ros.camera import Camera
from yolo_trt_ros.ros.frame_handler import Received
from yolo_trt_ros.ros.log_text import printable

Detected = list[tuple[Camera, Received, FrameResult | ImageRejected | StageFailed]]
"""A detected batch: each frame with its untracked result or why it is dropped."""


class InferenceLoop:
    """Runs ``cameras``' frames in threads between ``start`` and ``stop``."""

    def __init__(
        self,
        cameras: Sequence[Camera],
        output_lock: threading.Lock,
        log_error: Callable[[str], None],
    ) -> None:
        self._cameras = list(cameras)
        detector = self._cameras[0].pipeline.detector
        self._workers = max(1, detector.parallel_runs)
        # the waiting frames are shared out over the runs
        self._batch_size = -(-min(detector.batch_size, len(self._cameras)) // self._workers)
        self._latest: LatestFrames[Received] = LatestFrames(len(self._cameras))
        self._take_lock = threading.Lock()  # a batch's number is the order it was taken in
        self._taken = 0
        self._in_flight = threading.Semaphore(self._workers + 1)  # taken, not yet published
        self._done = threading.Condition()
        self._detected: dict[int, Detected] = {}
        self._workers_left = 0
        self._output_lock = output_lock
        self._log_error = log_error
        self._unfinished = 0  # frames delivered and not yet published or dropped
        self._count_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def deliver(self, camera: Camera, frame: Received) -> None:
        """A subscription callback's frame: the camera's newest, waiting for inference."""
        with self._count_lock:
            if self._latest.put(camera.index, frame) is None:
                self._unfinished += 1
            else:
                camera.stats.superseded()

    def start(self) -> None:
        self._workers_left = self._workers
        self._threads = [
            threading.Thread(target=self._detect_loop, name=f"yolo_tracker_inference_{i}")
            for i in range(self._workers)
        ]
        output = threading.Thread(target=self._output_loop, name="yolo_tracker_output")
        self._threads.append(output)
        for thread in self._threads:
            thread.daemon = True
            thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop taking frames (those waiting are dropped) and wait for the batches in flight."""
        self._finished(len(self._latest.close()))
        for thread in self._threads:
            thread.join(timeout_s)
        self._threads = []

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no frame waits and no batch runs; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._unfinished:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _finished(self, frames: int) -> None:
        with self._count_lock:
            self._unfinished -= frames

    def _detect_loop(self) -> None:
        try:
            while True:
                self._in_flight.acquire()
                with self._take_lock:
                    taken = self._latest.take(limit=self._batch_size, timeout_s=None)
                    number, self._taken = self._taken, self._taken + bool(taken)
                if not taken:  # closed
                    return
                frames = [(self._cameras[index], frame) for index, frame in taken]
                batch = [(c.pipeline, f.msg) for c, f in frames]
                try:
                    results = detect_frames(batch)
                except Exception as exc:  # noqa: BLE001 - the thread must outlive any one batch
                    results = [StageFailed("detect", exc)] * len(frames)
                detected = [(c, f, r) for (c, f), r in zip(frames, results, strict=True)]
                with self._done:
                    self._detected[number] = detected
                    self._done.notify_all()
        finally:
            with self._done:
                self._workers_left -= 1
                self._done.notify_all()

    def _output_loop(self) -> None:
        number = 0
        while (batch := self._next_detected(number)) is not None:
            with self._output_lock:
                for camera, frame, result in batch:
                    try:
                        self._output(camera, frame, result)
                    except Exception as exc:  # noqa: BLE001 - the thread outlives any one frame
                        tb = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
                        self._log_error(
                            f"output failed: {type(exc).__name__}: {printable(exc)}\n{tb}"
                        )
            self._finished(len(batch))
            self._in_flight.release()
            number += 1

    def _next_detected(self, number: int) -> Detected | None:
        """Batch ``number`` once detected; None once every inference thread has ended without
        it (every batch taken is detected before its thread ends)."""
        with self._done:
            self._done.wait_for(lambda: number in self._detected or not self._workers_left)
            return self._detected.pop(number, None)

    @staticmethod
    def _output(
        camera: Camera, frame: Received, result: FrameResult | ImageRejected | StageFailed
    ) -> None:
        """Stamp check, tracking and publishing of one detected frame, or its drop."""
        if not isinstance(result, FrameResult):
            camera.frames.drop(frame, result)
            return
        try:
            check = camera.frames.check_stamp(frame)
        except Exception as exc:  # noqa: BLE001 - e.g. a malformed header
            camera.frames.drop(frame, StageFailed("stamp", exc))
            return
        try:
            tracked = camera.pipeline.track(result, check.time)
        except StageFailed as exc:
            camera.frames.drop(frame, exc)
            return
        camera.frames.publish(frame, check, tracked)
