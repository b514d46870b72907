"""The node's inference thread: batches of the newest frame of each camera.

Subscription callbacks only count a frame and ``deliver`` it (``latest_frames``: it replaces the
camera's frame still waiting, counted as superseded); this thread takes the waiting frames, up to
the model's batch size, and runs them through the pipeline as one batch (``pipeline.run_batch``),
then each camera publishes its own. Frames keep arriving while the model runs, and no stale frame
is ever queued. ``lock`` is held while a batch is processed: a reset or a parameter change waits
for it.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable, Sequence

from yolo_trt_ros.latest_frames import LatestFrames
from yolo_trt_ros.pipeline import FrameResult, StageFailed, run_batch
from yolo_trt_ros.ros.camera import Camera
from yolo_trt_ros.ros.frame_handler import Received
from yolo_trt_ros.ros.log_text import printable


class InferenceLoop:
    """Runs ``cameras``' frames in a thread between ``start`` and ``stop``."""

    def __init__(
        self,
        cameras: Sequence[Camera],
        lock: threading.Lock,
        log_error: Callable[[str], None],
    ) -> None:
        self._cameras = list(cameras)
        self._latest: LatestFrames[Received] = LatestFrames(len(self._cameras))
        self._lock = lock
        self._log_error = log_error
        self._unfinished = 0  # frames delivered and not yet published or dropped
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def deliver(self, camera: Camera, frame: Received) -> None:
        """A subscription callback's frame: the camera's newest, waiting for inference."""
        with self._count_lock:
            if self._latest.put(camera.index, frame) is None:
                self._unfinished += 1
            else:
                camera.stats.superseded()

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="yolo_tracker_inference", daemon=True
        )
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop taking frames (those waiting are dropped) and wait for the batch in flight."""
        with self._count_lock:
            self._unfinished -= len(self._latest.close())
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no frame waits and no batch runs; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._unfinished:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def _run(self) -> None:
        detector = self._cameras[0].pipeline.detector
        while True:
            taken = self._latest.take(limit=detector.batch_size, timeout_s=None)
            if not taken:  # closed
                return
            try:
                with self._lock:
                    self._process(taken)
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one batch
                tb = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
                self._log_error(f"inference failed: {type(exc).__name__}: {printable(exc)}\n{tb}")
            finally:
                with self._count_lock:
                    self._unfinished -= len(taken)

    def _process(self, taken: list[tuple[int, Received]]) -> None:
        batch = []
        for index, frame in taken:
            camera = self._cameras[index]
            try:
                batch.append((camera, frame, camera.frames.check_stamp(frame)))
            except Exception as exc:  # noqa: BLE001 - e.g. a malformed header
                camera.frames.drop(frame, StageFailed("stamp", exc))
        results = run_batch([(c.pipeline, f.msg, check.time) for c, f, check in batch])
        for (camera, frame, check), result in zip(batch, results, strict=True):
            if isinstance(result, FrameResult):
                camera.frames.publish(frame, check, result)
            else:
                camera.frames.drop(frame, result)
