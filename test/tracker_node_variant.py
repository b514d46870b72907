"""``python -m tracker_node_variant --ros-args ...``: yolo_tracker with the changes named in
$TRACKER_NODE_VARIANT (comma-separated), for process tests of situations this machine lacks.

- ``humble``: rclpy without ``Subscription.get_publisher_count`` (rclpy 3.x, ROS 2 Humble);
- ``failing_reset``: ``~/reset_tracker`` raises, as a callback with a bug would;
- ``slow_destroy``: Ctrl-C raises KeyboardInterrupt (as in a terminal or under ros2 launch, even
  where the test runner ignores SIGINT), and ``destroy_node`` prints ``destroying`` and takes 2 s.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from rclpy.subscription import Subscription

from yolo_trt_ros.ros import tracker_node

VARIANT_ENV = "TRACKER_NODE_VARIANT"


def _failing_reset(self: Any, request: Any, response: Any) -> Any:
    raise RuntimeError("reset broke")


def _slow_destroy(self: Any) -> None:
    print("destroying", flush=True)
    time.sleep(2.0)
    _destroy(self)


_destroy = tracker_node.TrackerNode.destroy_node


if __name__ == "__main__":
    variant = os.environ.get(VARIANT_ENV, "").split(",")
    if "humble" in variant and hasattr(Subscription, "get_publisher_count"):
        del Subscription.get_publisher_count
    if "failing_reset" in variant:
        tracker_node.TrackerNode._on_reset_tracker = _failing_reset  # type: ignore[method-assign]
    if "slow_destroy" in variant:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        tracker_node.TrackerNode.destroy_node = _slow_destroy  # type: ignore[method-assign]
    tracker_node.main()
