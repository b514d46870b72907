"""The camera subscription and its watch: warns once per silent episode and says why no frame
arrives.

The reasons a robotics engineer meets most: no publisher on the topic (driver down, wrong name or
remap), or a publisher whose QoS the subscription cannot match (a best-effort camera and a reliable
subscription), which DDS reports as an event and otherwise delivers nothing. Only graph calls that
Humble has are used.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSPolicyKind, QoSProfile
from rclpy.subscription import Subscription

from yolo_trt_ros.ros.log_text import printable
from yolo_trt_ros.ros.qos import reliability_mismatch

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

MESSAGE_INFO = hasattr(Subscription, "CallbackType")
"""Iron and later pass MessageInfo (publication sequence numbers, for drop counting) to
two-argument callbacks."""

FrameCallback = Callable[[Any, "Mapping[str, Any] | None"], None]


class InputMonitor:
    """The input subscription of ``node`` and the state of its topic: publishers, a QoS problem,
    silence."""

    def __init__(self, node: Node) -> None:
        self._node = node
        self._subscription: Subscription[Any] | None = None
        self._since = 0.0
        self.qos_problem = ""
        self.silent = False
        """A silent-input warning was given and no frame arrived since."""

    def subscribe(
        self, msg_type: type, topic: str, qos: QoSProfile, callback: FrameCallback
    ) -> None:
        """Subscribe (at activate); ``callback(msg, message_info or None)`` gets each frame.
        Raises what ``create_subscription`` raises (e.g. for an invalid topic name)."""

        def arrived(msg: Any, info: Mapping[str, Any] | None) -> None:
            self.silent = False
            callback(msg, info)

        events = SubscriptionEventCallbacks(incompatible_qos=self.on_incompatible_qos)
        self._subscription = self._node.create_subscription(
            msg_type,
            topic,
            arrived if MESSAGE_INFO else lambda msg: arrived(msg, None),
            qos,
            event_callbacks=events,
        )
        self._since = time.monotonic()
        self.qos_problem = ""
        self.silent = False

    def unsubscribe(self) -> None:
        if self._subscription is not None:
            self._node.destroy_subscription(self._subscription)
            self._subscription = None

    @property
    def topic(self) -> str:
        return self._subscription.topic_name if self._subscription is not None else ""

    def publishers(self) -> int | None:
        """Publishers on the topic in the graph, matched or not (None while not subscribed)."""
        return self._node.count_publishers(self.topic) if self._subscription is not None else None

    def on_incompatible_qos(self, event: Any) -> None:
        """Subscription event callback; ``event``: QoSRequestedIncompatibleQoSInfo."""
        policy = QoSPolicyKind(event.last_policy_kind)
        self.qos_problem = self._reliability_mismatch() or (
            f"publisher on {printable(self.topic)} offers a QoS incompatible with this "
            "subscription "
            f"(policy {policy.name}): no frames will arrive from it"
        )
        self._node.get_logger().warning(
            f"{self.qos_problem} ({event.total_count} incompatible publisher(s) so far)"
        )

    def check(self, last_input_age_s: float | None, timeout_s: float) -> None:
        """Warn once per silent episode when no frame arrived for ``timeout_s``, naming the likely
        cause."""
        silent_for = min(
            time.monotonic() - self._since,
            float("inf") if last_input_age_s is None else last_input_age_s,
        )
        if silent_for < timeout_s or self.silent or self._subscription is None:
            return
        self.silent = True
        publishers = self.publishers()
        topic = printable(self.topic)
        logger = self._node.get_logger()
        if not publishers:
            logger.warning(
                f"no publisher on {topic} for {silent_for:.0f} s: check the camera driver and the "
                "topic "
                "name (input_topic or a remap)"
            )
            return
        self.qos_problem = self._reliability_mismatch() or self.qos_problem
        logger.warning(
            f"{publishers} publisher(s) on {topic} but no frame for {silent_for:.0f} s"
            f"{': ' + self.qos_problem if self.qos_problem else ''}"
        )

    def _reliability_mismatch(self) -> str:
        if self._subscription is None:
            return ""
        return reliability_mismatch(
            self._subscription.qos_profile.reliability,
            printable(self.topic),
            self._node.get_publishers_info_by_topic(self.topic),
        )
