"""The cameras of ``yolo_tracker`` and their inference thread, as one unit the node configures,
starts, stops and resets.

Made at configure (a ``Camera`` per (name, topic), publishers created; with several cameras each
has a ``~/<name>/reset_tracker`` service; if one cannot be made, those made are released);
``start`` subscribes every camera and starts the ``InferenceLoop``; ``stop`` undoes that. A
parameter change or a tracker reset waits for the batch being tracked and published, so it never
meets a frame half through tracking.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from rclpy.lifecycle import LifecycleNode
from rclpy.qos import QoSProfile
from rclpy.service import Service
from std_srvs.srv import Trigger

from yolo_trt_ros.pipeline import FramePipeline, PipelineConfig
from yolo_trt_ros.ros import diagnostics
from yolo_trt_ros.ros.camera import Camera
from yolo_trt_ros.ros.inference_loop import InferenceLoop


class CameraRig:
    """The node's cameras (see the module docstring)."""

    def __init__(
        self,
        node: LifecycleNode,
        pipeline: FramePipeline,
        named_topics: Sequence[tuple[str, str]],
        stamp_tolerance_s: float,
        log_period_s: float,
        annotate: Callable[[], bool],
    ) -> None:
        self._node = node
        self._log_period_s = log_period_s
        self._output_lock = threading.Lock()
        self.loop: InferenceLoop | None = None
        self.cameras: list[Camera] = []
        self._services: list[Service] = []
        several = len(named_topics) > 1
        try:
            for index, (name, topic) in enumerate(named_topics):
                own = pipeline if index == 0 else pipeline.sibling(Camera.converter(topic))
                camera = Camera(
                    node,
                    index,
                    name,
                    topic,
                    own,
                    name if several else "",
                    stamp_tolerance_s,
                    log_period_s,
                    annotate,
                )
                self.cameras.append(camera)
                camera.outputs.create()
                if several:
                    self._services.append(
                        node.create_service(
                            Trigger, f"~/{name}/reset_tracker", self._reset_one(camera)
                        )
                    )
        except Exception:
            self.release()
            raise

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cameras]

    def start(self, qos: QoSProfile) -> None:
        """Subscribe every camera and start the inference thread; on a failed subscription
        (ValueError naming the camera) nothing stays subscribed."""
        self.loop = InferenceLoop(self.cameras, self._output_lock, self._log_inference_error)
        for camera in self.cameras:
            try:
                camera.subscribe(qos, self.loop.deliver)
            except Exception as exc:
                self.stop()
                raise ValueError(
                    f"cannot subscribe to {camera.topic!r} (camera {camera.name}): {exc}"
                ) from exc
        self.loop.start()

    def stop(self) -> None:
        """Unsubscribe every camera, then stop the inference thread (after its batch in
        flight)."""
        for camera in self.cameras:
            camera.input.unsubscribe()
        if self.loop is not None:
            self.loop.stop()
            self.loop = None

    def release(self) -> None:
        self.stop()
        for camera in self.cameras:
            camera.release()
        for service in self._services:
            self._node.destroy_service(service)
        self.cameras, self._services = [], []

    def configure(self, config: PipelineConfig, stamp_tolerance_s: float) -> None:
        """Apply run-time settings to every camera (between batches)."""
        with self._output_lock:
            for camera in self.cameras:
                camera.pipeline.configure(config)
                camera.frames.stamps.tolerance_s = stamp_tolerance_s

    def reset(self, response: Trigger.Response, cameras: list[Camera]) -> Trigger.Response:
        """Forget the tracks of ``cameras`` (IDs restart at 1); the reset services' answer."""
        with self._output_lock:
            dropped = sum(camera.frames.reset_tracker() for camera in cameras)
        which = cameras[0].name if len(cameras) == 1 < len(self.cameras) else "all cameras"
        response.success = True
        response.message = f"tracker reset ({which}): {dropped} tracks dropped, IDs restart at 1"
        self._node.get_logger().info(response.message)
        return response

    def reports(
        self, node: diagnostics.NodeState, input_timeout_s: float | None
    ) -> list[tuple[str, diagnostics.Report]]:
        """Each camera's /diagnostics status ("detector" for a single camera)."""
        several = len(self.cameras) > 1
        return [
            (c.name if several else "detector", c.report(node, input_timeout_s))
            for c in self.cameras
        ]

    def _reset_one(
        self, camera: Camera
    ) -> Callable[[Trigger.Request, Trigger.Response], Trigger.Response]:
        def reset(request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
            return self.reset(response, [camera])

        return reset

    def _log_inference_error(self, text: str) -> None:
        self._node.get_logger().error(text, throttle_duration_sec=self._log_period_s)
