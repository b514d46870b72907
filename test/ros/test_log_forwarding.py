"""RclpyLogHandler: Python logging records reach the ROS logger at their severity, until
detached."""

from __future__ import annotations

import logging

from rclpy.logging import LoggingSeverity

from yolo_trt_ros.ros.log_forwarding import RclpyLogHandler


class RecordingLogger:
    """Stands in for an rclpy logger: records (severity, message)."""

    def __init__(self, debug: bool) -> None:
        self.debug_enabled = debug
        self.lines: list[tuple[str, str]] = []

    def is_enabled_for(self, severity: LoggingSeverity) -> bool:
        return self.debug_enabled or severity != LoggingSeverity.DEBUG

    def debug(self, message: str) -> None:
        self.lines.append(("debug", message))

    def info(self, message: str) -> None:
        self.lines.append(("info", message))

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


def test_forwards_by_severity_until_detached() -> None:
    ros = RecordingLogger(debug=False)
    handler = RclpyLogHandler(ros)  # type: ignore[arg-type]
    log = logging.getLogger("yolo_trt_ros.test_bridge")
    handler.attach(log.name)
    handler.attach(log.name)  # idempotent: one handler, no duplicate lines
    try:
        log.debug("hidden")
        log.info("building %s", "m.fp16.engine")
        log.warning("GPU preprocessing disabled")
        log.error("refused")
        log.critical("fatal")
    finally:
        handler.detach()
    log.error("after detach")
    assert ros.lines == [
        ("info", "building m.fp16.engine"),
        ("warning", "GPU preprocessing disabled"),
        ("error", "refused"),
        ("error", "fatal"),
    ]
    assert handler not in log.handlers


def test_debug_when_the_ros_logger_shows_debug() -> None:
    ros = RecordingLogger(debug=True)
    handler = RclpyLogHandler(ros)  # type: ignore[arg-type]
    handler.attach("yolo_trt_ros.test_bridge_debug")
    try:
        logging.getLogger("yolo_trt_ros.test_bridge_debug").debug("engine bindings")
    finally:
        handler.detach()
    assert ros.lines == [("debug", "engine bindings")]
