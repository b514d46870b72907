"""Helpers for tests that run ROS nodes in separate processes.

- ``FramePublisher``: a child process (this file run as a script) that publishes sensor_msgs/Image
  messages on command (sensor_msgs/CompressedImage, JPEG, on a topic ending in ``/compressed``):
  real frames read from disk, or deliberately malformed ones (any field overridden; ``data_len``
  bytes of zeros as the data). Each command is answered once the message is published, so the
  test decides what goes out and when. ``wait_for_subscriber()`` waits until the node under test
  has matched the publisher, starting the process again if Fast DDS missed the discovery.
- ``RosListener``: this process's side: its own context and domain, a lifecycle client for the node
  under test, subscriptions that collect messages, and ``spin_until(condition)`` waits (generous
  timeouts, no sleeps).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy

from yolo_trt_ros.demo.processes import stop_process
from yolo_trt_ros.ros.lifecycle_client import LifecycleClient

TIMEOUT_S = 60.0
"""Upper bound for any single wait: generous for a loaded 2-core CI machine."""
DISCOVERY_RETRY_S = 10.0
"""Fast DDS participants started at the same moment on one host now and then never discover each
other: a process not discovered after this long is started again (``with_discovery_retry``)."""


def processes_with(marker: str) -> list[int]:
    """Pids whose command line contains ``marker`` (a test's unique namespace)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if marker.encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def kill_processes_with(marker: str) -> None:
    """SIGKILL the processes of ``processes_with(marker)``: nodes a failed or killed run left
    behind (in their own sessions), which must not run on into later tests."""
    for pid in processes_with(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def with_discovery_retry(discovered: Callable[[float], bool], restart: Callable[[], bool]) -> bool:
    """``discovered(timeout_s)`` within ``DISCOVERY_RETRY_S``, else once more within ``TIMEOUT_S``
    after ``restart()``, which returns False when it did not start the process again (it exited:
    not a discovery problem)."""
    return discovered(DISCOVERY_RETRY_S) or (restart() and discovered(TIMEOUT_S))


class FramePublisher:
    """Publishes Images from a separate process; ``publish(**fields)`` returns once the message is
    sent."""

    def __init__(
        self, env: Mapping[str, str], log: Path, topic: str = "image_raw", reliable: bool = True
    ) -> None:
        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        self._args = [
            sys.executable,
            str(Path(__file__).resolve()),
            topic,
            "reliable" if reliable else "best_effort",
        ]
        self._env = dict(env)
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            self._args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self._env,
        )

    def wait_for_subscriber(self) -> None:
        """Return once a subscription has matched the publisher (QoS-compatible); the process is
        started again once if none has after ``DISCOVERY_RETRY_S``."""

        def matched(timeout_s: float) -> bool:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if self._command({"subscribers": True})["count"] > 0:
                    return True
                time.sleep(0.1)
            return False

        def restart() -> bool:
            self._stop()
            self.proc = self._start()
            return True

        if not with_discovery_retry(matched, restart):
            raise AssertionError(f"no subscriber matched {self._args[2]} after a restart")

    def publish(
        self,
        image: Path | None = None,
        frame_id: str = "camera_optical",
        stamp_ns: int | None = None,
        data_len: int | None = None,
        image_encoding: str = "bgr8",
        **fields: Any,
    ) -> int:
        """Publish ``image`` (read with OpenCV, sent as bgr8 or as a camera of ``image_encoding``
        delivers it: ``camera_raw``) or zeros of ``data_len`` bytes; ``fields`` override
        height/width/step/encoding. Returns the stamp (ns) put in the header: now, unless given."""
        stamp_ns = time.time_ns() if stamp_ns is None else stamp_ns
        command = {
            "image": str(image) if image else None,
            "image_encoding": image_encoding,
            "frame_id": frame_id,
            "stamp_ns": stamp_ns,
            "data_len": data_len,
            "fields": fields,
        }
        self._command(command)
        return stamp_ns

    def _command(self, command: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            raise RuntimeError(f"frame publisher did not answer (exit code {self.proc.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if not reply["ok"]:
            raise RuntimeError(f"frame publisher failed: {reply['error']}")
        return reply

    def _stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        stop_process(self.proc)

    def close(self) -> None:
        self._stop()
        self._log.close()


class RosListener:
    """This process's ROS side: a context on ``domain_id``, subscriptions and a lifecycle
    client."""

    def __init__(self, domain_id: int, target_node: str, name: str = "test_listener") -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lifecycle = LifecycleClient(target_node, timeout_s=TIMEOUT_S, context=self.context)

    def collect(
        self, msg_type: Any, topic: str, depth: int = 100, reliable: bool = True
    ) -> list[Any]:
        """Subscribe to ``topic``; received messages are appended to the returned list while
        spinning."""
        received: list[Any] = []
        qos = QoSProfile(
            depth=depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def spin_until(self, condition: Callable[[], bool], timeout_s: float = TIMEOUT_S) -> bool:
        """Spin until ``condition()`` holds (True) or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.executor.spin_once(timeout_sec=0.05)
        return True

    def spin_for(self, seconds: float) -> None:
        """Spin for a fixed time: only to observe that something does NOT happen."""
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        self.lifecycle.destroy_node()
        self.executor.shutdown()
        self.node.destroy_node()
        # rclpy objects go while their context is alive, not in a later test's teardown
        gc.collect()
        rclpy.try_shutdown(context=self.context)


def _publisher_main(topic: str, reliability: str) -> None:
    """Child process: read JSON commands on stdin, publish one Image per command, answer on
    stdout."""
    import array

    import cv2
    from rclpy._rclpy_pybind11 import RCLError
    from sensor_msgs.msg import CompressedImage, Image

    from camera_raw import camera_raw
    from yolo_trt_ros.ros.image_conversion import array_to_image

    rclpy.init()
    node = rclpy.create_node("test_frame_publisher")
    policy = (
        ReliabilityPolicy.RELIABLE if reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    compressed = topic.rstrip("/").endswith("/compressed")
    msg_type = CompressedImage if compressed else Image
    publisher = node.create_publisher(msg_type, topic, QoSProfile(depth=1, reliability=policy))
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("subscribers"):
            count = publisher.get_subscription_count()
            print(json.dumps({"ok": True, "count": count}), flush=True)
            continue
        msg = msg_type()
        if command["image"]:
            frame = cv2.imread(command["image"])
            if frame is None:
                print(
                    json.dumps({"ok": False, "error": f"cannot read {command['image']}"}),
                    flush=True,
                )
                continue
            if compressed:
                msg.format = "jpeg"
                msg.data = array.array("B", cv2.imencode(".jpg", frame)[1].tobytes())
            else:
                encoding = command["image_encoding"]
                raw = frame if encoding == "bgr8" else camera_raw(frame, encoding)
                array_to_image(raw, encoding, msg)
        if command["data_len"] is not None:
            msg.data = array.array("B", bytes(command["data_len"]))
        for key, value in command["fields"].items():
            setattr(msg, key, value)
        msg.header.frame_id = command["frame_id"]
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(command["stamp_ns"], 1_000_000_000)
        try:
            publisher.publish(msg)
            reply: dict[str, Any] = {"ok": True}
        except RCLError as exc:
            reply = {"ok": False, "error": str(exc)}
        print(json.dumps(reply), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == "__main__":
    _publisher_main(sys.argv[1], sys.argv[2])
