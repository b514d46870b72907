"""Forward Python ``logging`` records (the TensorRT backend's engine build/cache messages) to an
rclpy logger."""

from __future__ import annotations

import logging

from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.logging import LoggingSeverity


class RclpyLogHandler(logging.Handler):
    """A ``logging.Handler`` that re-emits each record on ``ros_logger`` at the matching severity.

    ``attach(name)`` adds it to the Python logger ``name`` (level INFO, or DEBUG when the ROS
    logger shows debug); ``detach()`` removes it again.
    """

    def __init__(self, ros_logger: RcutilsLogger) -> None:
        super().__init__()
        self._ros_logger = ros_logger
        self._attached: logging.Logger | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            if record.levelno >= logging.ERROR:
                self._ros_logger.error(message)
            elif record.levelno >= logging.WARNING:
                self._ros_logger.warning(message)
            elif record.levelno >= logging.INFO:
                self._ros_logger.info(message)
            else:
                self._ros_logger.debug(message)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)

    def attach(self, name: str) -> None:
        if self._attached is not None:
            return
        logger = logging.getLogger(name)
        debug = self._ros_logger.is_enabled_for(LoggingSeverity.DEBUG)
        logger.setLevel(logging.DEBUG if debug else logging.INFO)
        logger.addHandler(self)
        self._attached = logger

    def detach(self) -> None:
        if self._attached is not None:
            self._attached.removeHandler(self)
            self._attached = None
