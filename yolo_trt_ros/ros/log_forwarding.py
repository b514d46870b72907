"""Forward Python ``logging`` records (the TensorRT backend's engine build/cache messages) to an
rclpy logger."""

from __future__ import annotations

import logging
from collections.abc import Callable

from rclpy.impl.rcutils_logger import RcutilsLogger
from rclpy.logging import LoggingSeverity


class RclpyLogHandler(logging.Handler):
    """A ``logging.Handler`` that re-emits each record on ``ros_logger`` at the matching severity.

    ``attach(name)`` adds it to the Python logger ``name`` (level INFO, or DEBUG when the ROS
    logger shows debug); ``detach()`` removes it again. The messages of logger
    ``progress_logger`` (below ``name``) also go to ``progress``, e.g. engine build progress shown
    on /diagnostics while configure blocks.
    """

    def __init__(
        self,
        ros_logger: RcutilsLogger,
        progress_logger: str = "",
        progress: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self._ros_logger = ros_logger
        self._progress_logger, self._progress = progress_logger, progress
        self._attached: logging.Logger | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self._progress is not None and record.name == self._progress_logger:
                self._progress(record.getMessage())
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
