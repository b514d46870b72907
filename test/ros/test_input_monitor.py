"""ros.input_monitor without ROS: a fake node (graph, subscriptions, logger) and a fake monotonic
clock; each warning, once per silent episode, and the quiet cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from rclpy.qos import QoSPolicyKind, QoSProfile
from rclpy.topic_endpoint_info import TopicEndpointInfo
from sensor_msgs.msg import Image

from yolo_trt_ros.ros import input_monitor
from yolo_trt_ros.ros.input_monitor import InputMonitor
from yolo_trt_ros.ros.qos import image_qos

TOPIC = "/camera/image_raw"
TIMEOUT_S = 5.0
NO_PUBLISHER = (
    f"no publisher on {TOPIC} for 5 s: check the camera driver and the topic name (input_topic or "
    "a remap)"
)
RELIABILITY_MISMATCH = (
    f"publisher on {TOPIC} is BEST_EFFORT but this subscription requires RELIABLE: no frames will "
    "arrive from 1 of 1 publisher(s); set qos_reliability:=best_effort"
)
DURABILITY_PROBLEM = (
    f"publisher on {TOPIC} offers a QoS incompatible with this subscription (policy DURABILITY): "
    "no frames will arrive from it"
)


@dataclass
class FakeSubscription:
    topic_name: str
    qos_profile: QoSProfile
    callback: Callable[..., None]
    event_callbacks: Any


@dataclass
class FakeLogger:
    warnings: list[str] = field(default_factory=list)

    def warning(self, message: str) -> None:
        self.warnings.append(message)


@dataclass
class FakeNode:
    """The part of rclpy's Node that InputMonitor uses, with a graph of publishers by topic."""

    logger: FakeLogger = field(default_factory=FakeLogger)
    graph: dict[str, list[TopicEndpointInfo]] = field(default_factory=dict)
    subscriptions: list[FakeSubscription] = field(default_factory=list)
    destroyed: list[FakeSubscription] = field(default_factory=list)

    def create_subscription(
        self,
        msg_type: type,
        topic: str,
        callback: Callable[..., None],
        qos: QoSProfile,
        *,
        event_callbacks: Any = None,
    ) -> FakeSubscription:
        assert msg_type is Image
        subscription = FakeSubscription(topic, qos, callback, event_callbacks)
        self.subscriptions.append(subscription)
        return subscription

    def destroy_subscription(self, subscription: FakeSubscription) -> bool:
        self.destroyed.append(subscription)
        return True

    def count_publishers(self, topic: str) -> int:
        return len(self.graph.get(topic, []))

    def get_publishers_info_by_topic(self, topic: str) -> list[TopicEndpointInfo]:
        return list(self.graph.get(topic, []))

    def get_logger(self) -> FakeLogger:
        return self.logger

    def add_publisher(self, reliability: str, topic: str = TOPIC) -> None:
        info = TopicEndpointInfo(node_name="camera", qos_profile=image_qos(reliability, 1))
        self.graph.setdefault(topic, []).append(info)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(input_monitor, "time", fake)  # the module's ``time``, not the real one
    return fake


@pytest.fixture
def node() -> FakeNode:
    return FakeNode()


@dataclass
class Frames:
    received: list[tuple[Any, Any]] = field(default_factory=list)

    def __call__(self, msg: Any, info: Any) -> None:
        self.received.append((msg, info))


def subscribed(node: FakeNode, reliability: str = "best_effort") -> tuple[InputMonitor, Frames]:
    monitor = InputMonitor(node)  # type: ignore[arg-type]
    frames = Frames()
    monitor.subscribe(Image, TOPIC, image_qos(reliability, 1), frames)
    return monitor, frames


def deliver(subscription: FakeSubscription, msg: Any) -> dict[str, int] | None:
    """Call the subscription callback as rclpy does (with MessageInfo on Iron and later); returns
    the info passed."""
    if input_monitor.MESSAGE_INFO:
        info = {"publication_sequence_number": 7, "reception_sequence_number": 7}
        subscription.callback(msg, info)
        return info
    subscription.callback(msg)
    return None


def incompatible(policy: QoSPolicyKind, total_count: int) -> SimpleNamespace:
    """A QoSRequestedIncompatibleQoSInfo as rclpy hands it to the event callback."""
    return SimpleNamespace(
        total_count=total_count, total_count_change=1, last_policy_kind=policy.value
    )


def test_subscribe_passes_topic_qos_and_the_incompatible_qos_event(
    node: FakeNode, clock: FakeClock
) -> None:
    monitor = InputMonitor(node)  # type: ignore[arg-type]
    assert (monitor.topic, monitor.publishers(), monitor.qos_problem, monitor.silent) == (
        "",
        None,
        "",
        False,
    )
    frames = Frames()
    qos = image_qos("reliable", 3)
    monitor.subscribe(Image, TOPIC, qos, frames)
    (subscription,) = node.subscriptions
    assert subscription.topic_name == TOPIC and subscription.qos_profile is qos
    assert subscription.event_callbacks.incompatible_qos == monitor.on_incompatible_qos
    assert (monitor.topic, monitor.publishers()) == (TOPIC, 0)
    node.add_publisher("reliable")
    assert monitor.publishers() == 1
    msg = Image()
    info = deliver(subscription, msg)
    assert len(frames.received) == 1
    assert frames.received[0][0] is msg and frames.received[0][1] == info

    monitor.unsubscribe()
    assert node.destroyed == [subscription]
    assert (monitor.topic, monitor.publishers()) == ("", None)
    monitor.unsubscribe()  # a second time: nothing to destroy
    assert node.destroyed == [subscription]


def test_no_publisher_warns_once_per_silent_episode(node: FakeNode, clock: FakeClock) -> None:
    monitor, _ = subscribed(node)
    clock.now += TIMEOUT_S - 0.01
    monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings == [] and not monitor.silent
    clock.now += 0.01
    monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings == [NO_PUBLISHER] and monitor.silent
    for _ in range(3):  # still silent, later and later: no repeat
        clock.now += 60.0
        monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings == [NO_PUBLISHER] and monitor.silent
    assert monitor.qos_problem == ""


def test_a_frame_ends_the_episode_and_the_next_silence_warns_again(
    node: FakeNode, clock: FakeClock
) -> None:
    monitor, frames = subscribed(node)
    clock.now += 100.0
    monitor.check(None, TIMEOUT_S)
    assert monitor.silent and len(node.logger.warnings) == 1
    deliver(node.subscriptions[0], Image())
    assert not monitor.silent and len(frames.received) == 1
    # Frames flowing (the last one recent): quiet, however long ago the subscription was made.
    monitor.check(0.1, TIMEOUT_S)
    monitor.check(TIMEOUT_S - 0.01, TIMEOUT_S)
    assert len(node.logger.warnings) == 1 and not monitor.silent
    # The camera stops again: the silence is counted from the last frame, not the subscription.
    monitor.check(7.4, TIMEOUT_S)
    assert node.logger.warnings[1:] == [NO_PUBLISHER.replace("for 5 s", "for 7 s")]
    monitor.check(70.0, TIMEOUT_S)
    assert len(node.logger.warnings) == 2 and monitor.silent


def test_resubscribing_starts_a_new_episode(node: FakeNode, clock: FakeClock) -> None:
    monitor, frames = subscribed(node, "reliable")
    node.add_publisher("best_effort")
    clock.now += TIMEOUT_S
    monitor.check(None, TIMEOUT_S)
    assert monitor.silent and monitor.qos_problem == RELIABILITY_MISMATCH
    monitor.unsubscribe()
    monitor.check(None, TIMEOUT_S)  # not subscribed: quiet
    monitor.subscribe(Image, TOPIC, image_qos("best_effort", 1), frames)
    assert not monitor.silent and monitor.qos_problem == ""
    clock.now += TIMEOUT_S - 0.01
    monitor.check(None, TIMEOUT_S)  # the time since the new subscription counts
    assert len(node.logger.warnings) == 1
    clock.now += 0.01
    monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings[1:] == [f"1 publisher(s) on {TOPIC} but no frame for 5 s"]


def test_publishers_but_no_frame_warns_once(node: FakeNode, clock: FakeClock) -> None:
    monitor, _ = subscribed(node)
    node.add_publisher("best_effort")
    node.add_publisher("reliable")
    clock.now += 12.6
    monitor.check(None, TIMEOUT_S)
    monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings == [f"2 publisher(s) on {TOPIC} but no frame for 13 s"]
    assert monitor.qos_problem == ""


def test_silence_with_a_best_effort_publisher_names_the_reliability_mismatch(
    node: FakeNode, clock: FakeClock
) -> None:
    """Found from the graph at the check, without an incompatible-QoS event."""
    monitor, _ = subscribed(node, "reliable")
    node.add_publisher("best_effort")
    clock.now += TIMEOUT_S
    monitor.check(None, TIMEOUT_S)
    monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings == [
        f"1 publisher(s) on {TOPIC} but no frame for 5 s: {RELIABILITY_MISMATCH}"
    ]
    assert monitor.qos_problem == RELIABILITY_MISMATCH


def test_incompatible_qos_event_names_the_reliability_mismatch(
    node: FakeNode, clock: FakeClock
) -> None:
    monitor, _ = subscribed(node, "reliable")
    node.add_publisher("best_effort")
    events = node.subscriptions[0].event_callbacks
    events.incompatible_qos(incompatible(QoSPolicyKind.RELIABILITY, 1))
    assert monitor.qos_problem == RELIABILITY_MISMATCH
    assert node.logger.warnings == [f"{RELIABILITY_MISMATCH} (1 incompatible publisher(s) so far)"]
    # Each event (DDS gives one per newly found incompatible publisher) is logged, with the count.
    node.add_publisher("best_effort")
    events.incompatible_qos(incompatible(QoSPolicyKind.RELIABILITY, 2))
    assert node.logger.warnings[1:] == [
        RELIABILITY_MISMATCH.replace("1 of 1", "2 of 2") + " (2 incompatible publisher(s) so far)"
    ]


def test_incompatible_qos_event_for_another_policy_names_the_policy(
    node: FakeNode, clock: FakeClock
) -> None:
    monitor, _ = subscribed(node)  # best effort: no reliability mismatch possible
    node.add_publisher("best_effort")
    node.subscriptions[0].event_callbacks.incompatible_qos(
        incompatible(QoSPolicyKind.DURABILITY, 1)
    )
    assert monitor.qos_problem == DURABILITY_PROBLEM
    assert node.logger.warnings == [f"{DURABILITY_PROBLEM} (1 incompatible publisher(s) so far)"]
    # The silence warning then repeats the problem the event reported.
    clock.now += TIMEOUT_S
    monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings[1:] == [
        f"1 publisher(s) on {TOPIC} but no frame for 5 s: {DURABILITY_PROBLEM}"
    ]


def test_quiet_while_frames_arrive_or_before_the_timeout(node: FakeNode, clock: FakeClock) -> None:
    monitor = InputMonitor(node)  # type: ignore[arg-type]
    monitor.check(None, TIMEOUT_S)  # never subscribed
    monitor.check(1e6, TIMEOUT_S)
    monitor, _ = subscribed(node)
    node.add_publisher("best_effort")
    monitor.check(None, TIMEOUT_S)  # just subscribed
    clock.now += 3600.0
    for age in (0.0, 1.0, TIMEOUT_S - 1e-6):
        monitor.check(age, TIMEOUT_S)
    assert node.logger.warnings == []
    assert (monitor.silent, monitor.qos_problem) == (False, "")


def test_the_topic_is_logged_printable(node: FakeNode, clock: FakeClock) -> None:
    monitor = InputMonitor(node)  # type: ignore[arg-type]
    monitor.subscribe(Image, "/cam\nforged", image_qos("best_effort", 1), Frames())
    clock.now += TIMEOUT_S
    monitor.check(None, TIMEOUT_S)
    assert node.logger.warnings == [NO_PUBLISHER.replace(TOPIC, "/cam\\nforged")]
