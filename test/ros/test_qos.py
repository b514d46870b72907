"""ros.qos: the image QoS from parameters, and the sentence that explains a reliability
mismatch."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from yolo_trt_ros.ros.qos import image_qos, reliability_mismatch


def test_image_qos_from_parameters() -> None:
    qos = image_qos("best_effort", 1)
    assert (qos.reliability, qos.history, qos.depth, qos.durability) == (
        ReliabilityPolicy.BEST_EFFORT,
        HistoryPolicy.KEEP_LAST,
        1,
        DurabilityPolicy.VOLATILE,
    )
    assert image_qos("reliable", 5).reliability == ReliabilityPolicy.RELIABLE
    with pytest.raises(
        ValueError, match="qos_reliability must be one of best_effort, reliable, got 'sometimes'"
    ):
        image_qos("sometimes", 1)


def publisher(reliability: ReliabilityPolicy) -> SimpleNamespace:
    return SimpleNamespace(qos_profile=QoSProfile(depth=1, reliability=reliability))


def test_only_a_reliable_subscription_can_miss_best_effort_publishers() -> None:
    mixed = [publisher(ReliabilityPolicy.BEST_EFFORT), publisher(ReliabilityPolicy.RELIABLE)]
    text = reliability_mismatch(ReliabilityPolicy.RELIABLE, "/cam", mixed)  # type: ignore[arg-type]
    assert text == (
        "publisher on /cam is BEST_EFFORT but this subscription requires RELIABLE: no frames will "
        "arrive from 1 of 2 publisher(s); set qos_reliability:=best_effort"
    )
    assert reliability_mismatch(ReliabilityPolicy.BEST_EFFORT, "/cam", mixed) == ""  # type: ignore[arg-type]
    assert reliability_mismatch(ReliabilityPolicy.RELIABLE, "/cam", mixed[1:]) == ""  # type: ignore[arg-type]
    assert reliability_mismatch(ReliabilityPolicy.RELIABLE, "/cam", []) == ""
