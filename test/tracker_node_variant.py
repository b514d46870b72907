"""``python -m tracker_node_variant --ros-args ...``: yolo_tracker with the changes named in
$TRACKER_NODE_VARIANT (comma-separated), for process tests of situations this machine lacks.

- ``humble``: rclpy without ``Subscription.get_publisher_count`` (rclpy 3.x, ROS 2 Humble);
- ``failing_reset``: ``~/reset_tracker`` raises, as a callback with a bug would.
"""

from __future__ import annotations

import os
from typing import Any

from rclpy.subscription import Subscription

from yolo_trt_ros.ros import tracker_node

VARIANT_ENV = "TRACKER_NODE_VARIANT"


def _failing_reset(self: Any, request: Any, response: Any) -> Any:
    raise RuntimeError("reset broke")


if __name__ == "__main__":
    variant = os.environ.get(VARIANT_ENV, "").split(",")
    if "humble" in variant and hasattr(Subscription, "get_publisher_count"):
        del Subscription.get_publisher_count
    if "failing_reset" in variant:
        tracker_node.TrackerNode._on_reset_tracker = _failing_reset  # type: ignore[method-assign]
    tracker_node.main()
