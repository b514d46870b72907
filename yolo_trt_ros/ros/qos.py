"""QoS for camera images, and what to tell a user whose publisher cannot match the subscription."""

from __future__ import annotations

from collections.abc import Sequence

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.topic_endpoint_info import TopicEndpointInfo

RELIABILITY = {
    "best_effort": ReliabilityPolicy.BEST_EFFORT,
    "reliable": ReliabilityPolicy.RELIABLE,
}
"""Parameter value -> policy (``qos_reliability`` of both nodes)."""


def image_qos(reliability: str, depth: int) -> QoSProfile:
    """Volatile keep-last QoS; ``reliability`` "best_effort" (sensor data) or "reliable";
    ValueError otherwise."""
    if reliability not in RELIABILITY:
        raise ValueError(
            f"qos_reliability must be one of {', '.join(RELIABILITY)}, got {reliability!r}"
        )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=RELIABILITY[reliability],
        durability=DurabilityPolicy.VOLATILE,
    )


def reliability_mismatch(
    wanted: ReliabilityPolicy, topic: str, publishers: Sequence[TopicEndpointInfo]
) -> str:
    """A sentence about the ``publishers`` a ``wanted``-reliability subscription cannot match (""
    if none)."""
    if wanted != ReliabilityPolicy.RELIABLE:
        return ""
    offered = [
        info
        for info in publishers
        if info.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT
    ]
    if not offered:
        return ""
    return (
        f"publisher on {topic} is BEST_EFFORT but this subscription requires RELIABLE: no frames "
        "will arrive "
        f"from {len(offered)} of {len(publishers)} publisher(s); set qos_reliability:=best_effort"
    )
